package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/problem"
	"github.com/kanadehq/kanade/app/rollout"
	"github.com/kanadehq/kanade/jobs"
	"github.com/kanadehq/kanade/store"
)

// DeployRequest deploys a job manifest.
type DeployRequest struct {
	Manifest jobs.Manifest
	// Version overrides the manifest's version ("" keeps it).
	Version string
	// Target overrides the manifest's target (nil keeps it).
	Target *store.Target
	Actor  string
	// ActorSubject is the actor's stable identity (store.Execution.InitiatorSubject).
	ActorSubject string
	// AllowMismatch deploys a job whose id and version are in the jobs
	// directory with another script (see Deploy).
	AllowMismatch bool
	// Title is what people call this deploy; optional, see CheckTitle.
	Title string
}

// Deploy pins the job's version, records the execution and publishes the
// command on the job's own subjects, where it replaces the command of an
// older version for PCs that have not picked it up yet (layer 1). The pin
// comes first, so an agent that checks it right before starting never
// sees a newer command than the pin (layer 2, kanade #258).
//
// A job whose id and version are in the jobs directory (Catalog) must run
// the same shell and script as the file there: one version, one script,
// so that a version number in a result or the audit log says what ran.
// AllowMismatch lifts the check. The audit event records the script's
// SHA-256.
func (d *Dispatcher) Deploy(ctx context.Context, r DeployRequest) (store.Execution, error) {
	m := r.Manifest
	if ps := m.Validate(); len(ps) > 0 {
		return store.Execution{}, &problem.Error{Problems: problem.FromJobs(ps)}
	}
	var tps []problem.Problem
	if r.Title, tps = CheckTitle(r.Title); len(tps) > 0 {
		return store.Execution{}, &problem.Error{Problems: tps}
	}
	if m.Rollout != nil && len(m.Rollout.Waves) > 0 && d.Rollouts == nil {
		return store.Execution{}, fmt.Errorf("%w: job %s rolls out in waves, which this server does not run", ErrConflict, m.ID)
	}
	version := m.Version
	if r.Version != "" {
		version = r.Version
	}
	target := store.Target{All: m.Target.All, Groups: m.Target.Groups, PCs: m.Target.PCs}
	if r.Target != nil {
		target = *r.Target
	}
	target.Groups = wire.NormalizeGroups(target.Groups)
	if ps := ValidateTarget(target); len(ps) > 0 {
		return store.Execution{}, &problem.Error{Problems: ps}
	}
	if err := d.checkKnown(ctx, target); err != nil {
		return store.Execution{}, err
	}
	if err := wire.ValidateID("version", versionToken(version)); err != nil || len(version) > 64 {
		return store.Execution{}, problem.New("version", "must be 1–64 characters of letters, digits, '.', '-' and '_'")
	}
	if ps := d.checkCatalog(m, version, r.AllowMismatch); len(ps) > 0 {
		return store.Execution{}, &problem.Error{Problems: ps}
	}
	if err := d.checkNotStopped(ctx); err != nil {
		return store.Execution{}, err
	}
	if status, err := d.JobStatus(ctx, m.ID); err != nil {
		return store.Execution{}, err
	} else if status == wire.StatusRevoked {
		return store.Execution{}, fmt.Errorf("%w: job %s is revoked; unrevoke it before deploying", ErrConflict, m.ID)
	}
	now := d.now()
	pcs, _, err := d.st.ResolveTarget(ctx, target.All, target.Groups, target.PCs, now)
	if err != nil {
		return store.Execution{}, fmt.Errorf("resolve target: %w", err)
	}
	if len(pcs) == 0 {
		return store.Execution{}, problem.New("target", "matches no agent")
	}
	deadline := m.Deadline.D()
	if deadline <= 0 {
		deadline = d.lim.DefaultDeadline
	}
	timeout := m.Execute.Timeout.D()
	if timeout <= 0 {
		timeout = d.lim.DefaultTimeout
	}
	if m.Rollout != nil && len(m.Rollout.Waves) > 0 {
		return d.deployRollout(ctx, r, version, target, pcs, timeout, deadline)
	}
	e := store.Execution{
		ExecID: NewExecID(now), JobID: m.ID, Version: version, Shell: m.Execute.Shell, Script: m.Execute.Script, Title: r.Title,
		Timeout: timeout, Jitter: m.Execute.Jitter.D(), Target: target, InitiatedBy: r.Actor, InitiatorSubject: r.ActorSubject, Status: store.StatusRunning,
		CreatedAt: now, DeadlineAt: now.Add(deadline),
	}
	cmd := wire.Command{
		Protocol: wire.ProtocolVersion, ExecID: e.ExecID, JobID: m.ID, Version: version, Shell: e.Shell, Script: e.Script,
		Timeout: wire.Duration(timeout), Jitter: m.Execute.Jitter, IssuedAt: now, DeadlineAt: e.DeadlineAt, OutputCap: d.lim.OutputCap,
	}
	if err := d.Audit.Record(ctx, r.Actor, audit.Deploy, e.ExecID, deployDetail(r, m, version, target, len(pcs))); err != nil {
		return store.Execution{}, err
	}
	// Pin first (layer 2 must never see a command newer than the pin).
	if err := d.kvPut(ctx, wire.KVScriptCurrent, m.ID, version); err != nil {
		d.Audit.Failed(ctx, r.Actor, audit.Deploy, e.ExecID, err)
		return store.Execution{}, err
	}
	if err := d.st.CreateExecution(ctx, e, pcs); err != nil {
		err = fmt.Errorf("record execution: %w", err)
		d.Audit.Failed(ctx, r.Actor, audit.Deploy, e.ExecID, err)
		return store.Execution{}, err
	}
	if err := d.publish(ctx, cmd, target, m.ID); err != nil {
		if derr := d.st.DeleteExecution(context.WithoutCancel(ctx), e.ExecID); derr != nil {
			d.log.Error("cannot remove an execution that was not published", "exec_id", e.ExecID, "err", derr)
		}
		err = fmt.Errorf("publish: %w", err)
		d.Audit.Failed(ctx, r.Actor, audit.Deploy, e.ExecID, err)
		return store.Execution{}, err
	}
	d.log.Info("job deployed", "exec_id", e.ExecID, "job_id", m.ID, "version", version, "targets", len(pcs), "by", r.Actor)
	d.ev.Publish(events.Executions)
	return d.st.Execution(ctx, e.ExecID)
}

// deployRollout records a rollout: the target split into disjoint waves
// (rollout.Assign), pinned first like every deploy. The engine starts the
// first wave when its gate opens.
func (d *Dispatcher) deployRollout(ctx context.Context, r DeployRequest, version string, target store.Target, pcs []string, timeout, deadline time.Duration) (store.Execution, error) {
	m, now := r.Manifest, d.now()
	groupPCs := map[string][]string{}
	for _, w := range m.Rollout.Waves {
		if g := strings.ToLower(w.Group); g != "" {
			if _, ok := groupPCs[g]; !ok {
				members, _, err := d.st.ResolveTarget(ctx, false, []string{g}, nil, now)
				if err != nil {
					return store.Execution{}, fmt.Errorf("resolve wave group %s: %w", g, err)
				}
				groupPCs[g] = members
			}
		}
	}
	e := store.Execution{
		ExecID: NewExecID(now), JobID: m.ID, Version: version, Shell: m.Execute.Shell, Script: m.Execute.Script, Title: r.Title,
		Timeout: timeout, Jitter: m.Execute.Jitter.D(), Target: target, InitiatedBy: r.Actor, InitiatorSubject: r.ActorSubject, Status: store.StatusRunning,
		CreatedAt: now, FourEyes: d.lim.FourEyes, WaveDeadline: deadline,
	}
	if m.FourEyes != nil {
		e.FourEyes = *m.FourEyes
	}
	split, rest := rollout.Assign(e.ExecID, pcs, m.Rollout.Waves, groupPCs)
	waves := make([]store.Wave, 0, len(split))
	anyApproval := false
	for _, w := range m.Rollout.Waves {
		sw := store.Wave{Name: w.Name, Approval: w.Approval, Delay: w.Delay.D(), MaxFailures: d.lim.MaxFailures}
		if w.MaxFailures != nil {
			sw.MaxFailures = w.MaxFailures.String()
		}
		if w.MinSuccess != nil {
			sw.MinSuccess = w.MinSuccess.String()
		}
		anyApproval = anyApproval || w.Approval
		waves = append(waves, sw)
	}
	if rest {
		waves = append(waves, store.Wave{Name: rollout.RestWave, Approval: anyApproval, MaxFailures: d.lim.MaxFailures})
	}
	sizes := make([]int, len(split))
	for i, p := range split {
		sizes[i] = len(p)
	}
	detail := deployDetail(r, m, version, target, len(pcs))
	detail["waves"], detail["four_eyes"] = sizes, e.FourEyes
	if err := d.Audit.Record(ctx, r.Actor, audit.Deploy, e.ExecID, detail); err != nil {
		return store.Execution{}, err
	}
	// Agents do not read a pin for updates (the signed release is the pin).
	if m.ID != wire.UpdateJobID {
		if err := d.kvPut(ctx, wire.KVScriptCurrent, m.ID, version); err != nil {
			d.Audit.Failed(ctx, r.Actor, audit.Deploy, e.ExecID, err)
			return store.Execution{}, err
		}
	}
	if err := d.st.CreateRollout(ctx, e, waves, split); err != nil {
		err = fmt.Errorf("record rollout: %w", err)
		d.Audit.Failed(ctx, r.Actor, audit.Deploy, e.ExecID, err)
		return store.Execution{}, err
	}
	d.log.Info("rollout started", "exec_id", e.ExecID, "job_id", m.ID, "version", version, "targets", len(pcs), "waves", sizes, "by", r.Actor)
	if d.Rollouts != nil {
		d.Rollouts.Kick()
	}
	d.ev.Publish(events.Executions)
	return d.st.Execution(ctx, e.ExecID)
}

// deployDetail is a deploy's audit detail.
func deployDetail(r DeployRequest, m jobs.Manifest, version string, target store.Target, targets int) map[string]any {
	detail := map[string]any{"job_id": m.ID, "version": version, "target": target, "targets": targets,
		"shell": m.Execute.Shell, "script_sha256": ScriptSHA256(m.Execute.Script)}
	if r.AllowMismatch {
		detail["allow_mismatch"] = true
	}
	if r.Title != "" {
		detail["title"] = r.Title
	}
	return detail
}

// checkCatalog compares a deploy with the jobs directory's manifest of the
// same id and version: another shell or script is a problem unless allowed.
func (d *Dispatcher) checkCatalog(m jobs.Manifest, version string, allow bool) []problem.Problem {
	if d.Catalog == nil || allow {
		return nil
	}
	c, ok := d.Catalog(m.ID)
	if !ok || c.Version != version {
		return nil
	}
	var ps []problem.Problem
	if c.Execute.Shell != m.Execute.Shell {
		ps = append(ps, problem.Problem{Field: "execute.shell", Message: fmt.Sprintf("is %s, but version %s of job %s in the jobs directory uses %s; give this one another version, or set allow_mismatch to deploy it anyway",
			m.Execute.Shell, version, m.ID, c.Execute.Shell)})
	}
	if got, want := ScriptSHA256(m.Execute.Script), ScriptSHA256(c.Execute.Script); got != want {
		ps = append(ps, problem.Problem{Field: "execute.script", Message: fmt.Sprintf("differs from version %s of job %s in the jobs directory (sha256 %s, not %s); give this one another version, or set allow_mismatch to deploy it anyway",
			version, m.ID, got[:12], want[:12])})
	}
	return ps
}

// PublishWave sends a rollout's command to one wave's PCs on their own
// subjects; each command's deadline is the wave's.
func (d *Dispatcher) PublishWave(ctx context.Context, e store.Execution, pcs []string, deadline time.Time) error {
	if e.JobID == wire.UpdateJobID {
		return d.publishUpdateWave(ctx, e, pcs, deadline)
	}
	now := d.now()
	cmd := wire.Command{
		Protocol: wire.ProtocolVersion, ExecID: e.ExecID, JobID: e.JobID, Version: e.Version, Shell: e.Shell, Script: e.Script,
		Timeout: wire.Duration(e.Timeout), Jitter: wire.Duration(e.Jitter), IssuedAt: now, DeadlineAt: deadline, OutputCap: d.lim.OutputCap,
	}
	return d.publish(ctx, cmd, store.Target{PCs: pcs}, e.JobID)
}

// Stopped returns ErrLocked while the emergency stop is on.
func (d *Dispatcher) Stopped(ctx context.Context) error { return d.checkNotStopped(ctx) }

// versionToken maps a version to the characters a subject token allows,
// for validation only ("1.2.0" is fine).
func versionToken(v string) string {
	b := []byte(v)
	for i, c := range b {
		if c == '.' {
			b[i] = '_'
		}
	}
	return string(b)
}

func (d *Dispatcher) kv(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	kv, err := d.js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", bucket, err)
	}
	return kv, nil
}

func (d *Dispatcher) kvPut(ctx context.Context, bucket, key, value string) error {
	return d.putSigned(ctx, bucket, key, []byte(value))
}

// JobStatus is ACTIVE or REVOKED. A stored flag that does not verify
// reads as REVOKED, as agents read it.
func (d *Dispatcher) JobStatus(ctx context.Context, jobID string) (string, error) {
	v, err := d.getSigned(ctx, wire.KVScriptStatus, jobID)
	switch {
	case errors.Is(err, wire.ErrKVNotFound):
		return wire.StatusActive, nil
	case errors.Is(err, wire.ErrKVUnverified):
		d.log.Warn("job status does not verify; treated as revoked", "job_id", jobID, "err", err)
		return wire.StatusRevoked, nil
	case err != nil:
		return "", fmt.Errorf("job status %s: %w", jobID, err)
	}
	return string(v), nil
}

// SetJobStatus revokes (REVOKED) or unrevokes (ACTIVE) a job: agents check
// it right before starting, so a revoked job's pending and offline targets
// are skipped.
func (d *Dispatcher) SetJobStatus(ctx context.Context, jobID, status, actor string) error {
	if err := wire.ValidateID("job_id", jobID); err != nil {
		return problem.New("job_id", err.Error())
	}
	action := audit.Revoke
	if status == wire.StatusActive {
		action = audit.Unrevoke
	}
	if err := d.Audit.Record(ctx, actor, action, jobID, nil); err != nil {
		return err
	}
	if err := d.kvPut(ctx, wire.KVScriptStatus, jobID, status); err != nil {
		d.Audit.Failed(ctx, actor, action, jobID, err)
		return err
	}
	d.log.Info("job status changed", "job_id", jobID, "status", status, "by", actor)
	return nil
}

// withdrawIfLatest replaces an execution's command with a withdrawal
// (wire.HeaderWithdrawn) on each subject of its target where it is still
// the newest command, so that PCs that have not picked it up never do;
// EXEC refuses purges. A newer deployment of the job stays: the withdrawal
// is published only if the subject's last message is still the command.
func (d *Dispatcher) withdrawIfLatest(ctx context.Context, e store.Execution) error {
	token := e.JobID
	if e.JobID == AdhocJob {
		token = adhocToken(e.ExecID)
	}
	subjects := subjectsOf(e.Target, token)
	waves, err := d.st.Waves(ctx, e.ExecID)
	if err != nil {
		return fmt.Errorf("withdraw: %w", err)
	}
	if len(waves) > 0 { // a rollout's commands went to its started waves' PCs
		var pcs []string
		for _, w := range waves {
			if !w.StartedAt.IsZero() {
				p, err := d.st.WavePCs(ctx, e.ExecID, w.Index)
				if err != nil {
					return fmt.Errorf("withdraw: %w", err)
				}
				pcs = append(pcs, p...)
			}
		}
		subjects = subjectsOf(store.Target{PCs: pcs}, token)
	}
	st, err := d.js.Stream(ctx, wire.StreamExec)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil // gone with every command it held
	}
	if err != nil {
		return fmt.Errorf("withdraw: %w", err)
	}
	for _, subj := range subjects {
		m, err := st.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("withdraw %s: %w", subj, err)
		}
		var cmd wire.Command
		if m.Header.Get(wire.HeaderWithdrawn) != "" || json.Unmarshal(m.Data, &cmd) != nil || cmd.ExecID != e.ExecID {
			continue
		}
		w := d.keys.Msg(subj, nil, d.now())
		w.Header.Set(wire.HeaderWithdrawn, e.ExecID)
		_, err = d.js.PublishMsg(ctx, w, jetstream.WithExpectLastSequencePerSubject(m.Sequence))
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			continue // a newer command came in between
		}
		if err != nil {
			return fmt.Errorf("withdraw %s: %w", subj, err)
		}
	}
	return nil
}

// subjectsOf lists the command subjects of a target.
func subjectsOf(t store.Target, jobToken string) []string {
	var subjects []string
	if t.All {
		subjects = append(subjects, wire.CommandAllSubject(jobToken))
	}
	for _, g := range t.Groups {
		subjects = append(subjects, wire.CommandGroupSubject(g, jobToken))
	}
	for _, p := range t.PCs {
		subjects = append(subjects, wire.CommandPCSubject(p, jobToken))
	}
	return subjects
}

// PinnedVersion is the version agents accept for a job now ("" when none).
// A stored pin that does not verify is an error: agents run no version
// of the job until it is deployed again.
func (d *Dispatcher) PinnedVersion(ctx context.Context, jobID string) (string, error) {
	v, err := d.getSigned(ctx, wire.KVScriptCurrent, jobID)
	switch {
	case errors.Is(err, wire.ErrKVNotFound):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("pinned version of %s: %w", jobID, err)
	}
	return string(v), nil
}

// UnknownPCs returns, sorted, the pc_ids of pcs that no agent has ever
// had: no heartbeat and no enrollment. Such an id is a typo far more
// often than a PC yet to be installed, and a command for it would wait
// for nobody until its deadline.
func (d *Dispatcher) UnknownPCs(ctx context.Context, pcs []string) ([]string, error) {
	if len(pcs) == 0 {
		return nil, nil
	}
	known, err := d.st.PCsOS(ctx, pcs)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, pc := range pcs {
		if _, ok := known[pc]; !ok && !slices.Contains(out, pc) {
			out = append(out, pc)
		}
	}
	slices.Sort(out)
	return out, nil
}

// checkKnown refuses a target that names a PC no agent has ever had
// (groups and all are not checked: they select known agents only).
func (d *Dispatcher) checkKnown(ctx context.Context, t store.Target) error {
	unknown, err := d.UnknownPCs(ctx, t.PCs)
	if err != nil {
		return err
	}
	if len(unknown) == 0 {
		return nil
	}
	return problem.New("target.pcs", UnknownPCsMessage(unknown))
}

// UnknownPCsMessage names the unknown PCs: "unknown PC: PC-TYPO-99",
// "unknown PCs: a, b and 3 more".
func UnknownPCsMessage(unknown []string) string {
	const shown = 10
	head := "unknown PC: "
	if len(unknown) > 1 {
		head = "unknown PCs: "
	}
	if len(unknown) <= shown {
		return head + strings.Join(unknown, ", ")
	}
	return fmt.Sprintf("%s%s and %d more", head, strings.Join(unknown[:shown], ", "), len(unknown)-shown)
}
