package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/runner"
	"github.com/kanadehq/kanade/agent/update"
	"github.com/kanadehq/kanade/agent/wire"
)

// runningAfter is how long a run goes before the agent reports it as
// running (the live output's first chunk waits as long: chunkEvery).
const runningAfter = chunkEvery

// killMemory is how long a kill is remembered, so that a command that
// arrives after its kill (catch-up, slow delivery) is not started.
const killMemory = 24 * time.Hour

// handleCommand takes a command from a live subscription or from
// catch-up. It runs each execution at most once per PC.
func (w *Worker) handleCommand(runCtx context.Context, subject string, hdr nats.Header, data []byte, catchup bool) {
	if hdr.Get(wire.HeaderWithdrawn) != "" {
		return // a kill replaced the command: nothing to run
	}
	if !catchup && hdr.Get(wire.HeaderSubject) != "" {
		// A catch-up answer arriving on a live subject: another agent
		// named this subject as the reply of its own catch-up request
		// (the broker routes answers back into the agents' account). It
		// was meant for that agent; claiming it here would refuse it.
		w.log.Debug("ignoring a catch-up answer on a live subject", "subject", subject)
		return
	}
	addr, ok := wire.ParseCommandSubject(subject)
	if !ok || !addr.For(w.cfg.PCID, w.Groups()) {
		w.log.Warn("ignoring command on a subject not addressed to this agent", "subject", subject)
		return
	}
	cmd, err := wire.DecodeCommand(data)
	if err != nil || wire.ValidateID("exec_id", cmd.ExecID) != nil {
		w.log.Error("dropping undecodable command", "subject", subject, "err", err)
		return
	}
	if w.ledger.Seen(cmd.ExecID) {
		return // a PC matched by several subjects, a redelivery or a replay
	}
	now := time.Now().UTC()
	// Issued before this agent existed: it was meant for the fleet of that
	// time. From catch-up that is routine (the stream keeps the newest
	// command of each subject); live it is a replay of a stored command,
	// refused and reported.
	early := addr.Scope != wire.ScopePC && cmd.IssuedAt.Before(w.ledger.Created())
	if early && catchup {
		return
	}
	claimed, err := w.ledger.Claim(cmd.ExecID, now)
	if err != nil {
		w.log.Error("cannot record the execution; not running it", "exec_id", cmd.ExecID, "err", err)
		return
	}
	if !claimed {
		return
	}
	fail := func(state wire.State, reason string) {
		w.finish(wire.Result{ExecID: cmd.ExecID, State: state, Reason: reason, FinishedAt: time.Now().UTC()})
	}
	if err := w.verify(runCtx, subject, hdr, data, 0); err != nil {
		w.log.Warn("refusing a command", "subject", subject, "exec_id", cmd.ExecID, "err", err)
		fail(wire.StateSkipped, err.Error())
		return
	}
	if early {
		reason := fmt.Sprintf("issued at %s, before this agent existed (%s)", cmd.IssuedAt.Format(time.RFC3339), w.ledger.Created().UTC().Format(time.RFC3339))
		w.log.Warn("refusing a live command issued before this agent existed", "subject", subject, "exec_id", cmd.ExecID, "issued_at", cmd.IssuedAt)
		fail(wire.StateSkipped, reason)
		return
	}
	if err := cmd.Validate(); err != nil {
		fail(wire.StateFailed, "invalid command: "+err.Error())
		return
	}
	var upd *wire.UpdateCommand
	if cmd.Kind == wire.KindUpdate {
		uc, err := wire.DecodeUpdateCommand(data)
		if err == nil {
			err = uc.Validate()
		}
		if err != nil {
			fail(wire.StateFailed, "invalid update command: "+err.Error())
			return
		}
		if w.cfg.Update == nil {
			fail(wire.StateSkipped, "this agent does not update itself")
			return
		}
		upd = &uc
	}
	if w.wasKilled(cmd.ExecID) {
		fail(wire.StateKilled, "killed before it started")
		return
	}
	if err := w.knowEmergencyStop(runCtx); err != nil {
		fail(wire.StateSkipped, "the emergency stop could not be read: "+err.Error())
		return
	}
	if reason := w.stopped(cmd); reason != "" {
		fail(wire.StateSkipped, reason)
		return
	}
	if now.After(cmd.DeadlineAt) {
		fail(wire.StateExpired, fmt.Sprintf("received after its deadline (%s)", cmd.DeadlineAt.Format(time.RFC3339)))
		return
	}
	ctx, cancel := context.WithCancelCause(runCtx)
	w.mu.Lock()
	w.running[cmd.ExecID] = cancel
	w.mu.Unlock()
	w.runs.Add(1)
	go func() {
		defer w.runs.Done()
		defer func() {
			w.mu.Lock()
			delete(w.running, cmd.ExecID)
			w.mu.Unlock()
			cancel(nil)
		}()
		if upd != nil {
			w.runUpdate(ctx, *upd)
			return
		}
		w.execute(ctx, cmd)
	}()
}

// runUpdate hands an update command to the updater and reports its
// result; when the new binary is in place the next agent process reports
// it instead (the execution is finished in the ledger here, so that the
// next process does not report it killed by the restart).
func (w *Worker) runUpdate(ctx context.Context, uc wire.UpdateCommand) {
	started := time.Now().UTC()
	if uc.Jitter > 0 {
		wait := rand.N(uc.Jitter.D())
		if w.cfg.Jitter != nil {
			wait = w.cfg.Jitter(uc.Jitter.D())
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			w.finish(wire.Result{ExecID: uc.ExecID, State: wire.StateKilled,
				Reason: "killed before it started (waiting for jitter): " + causeText(ctx), FinishedAt: time.Now().UTC()})
			return
		case <-t.C:
		}
	}
	w.report(wire.Result{ExecID: uc.ExecID, State: wire.StateRunning, StartedAt: started})
	busy := func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.running) - 1 // the update itself is one
	}
	r, restart := w.cfg.Update.Apply(ctx, w.nc, update.Request{ExecID: uc.ExecID, IssuedAt: uc.IssuedAt, Deadline: uc.DeadlineAt,
		Timeout: uc.Timeout.D(), Update: uc.Update, Busy: busy})
	if restart {
		if err := w.ledger.Finish(uc.ExecID); err != nil {
			w.log.Error("ledger", "err", err)
		}
		return
	}
	r.ExecID, r.StartedAt = uc.ExecID, started
	if r.FinishedAt.IsZero() {
		r.FinishedAt = time.Now().UTC()
	}
	w.finish(r)
}

// reportUpdate queues the result of an update an earlier agent process
// carried out (this process is its new binary, or the previous one put
// back), once connected.
func (w *Worker) reportUpdate(ctx context.Context) {
	if w.cfg.Update == nil {
		return
	}
	r, ok := w.cfg.Update.Connected(ctx, w.nc)
	if !ok {
		return
	}
	w.finish(r)
	w.cfg.Update.Reported(r.ExecID)
}

func (w *Worker) execute(ctx context.Context, cmd wire.Command) {
	if cmd.Jitter > 0 {
		wait := rand.N(cmd.Jitter.D())
		if w.cfg.Jitter != nil {
			wait = w.cfg.Jitter(cmd.Jitter.D())
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			w.finish(wire.Result{ExecID: cmd.ExecID, State: wire.StateKilled,
				Reason: "killed before it started (waiting for jitter): " + causeText(ctx), FinishedAt: time.Now().UTC()})
			return
		case <-t.C:
		}
	}
	if time.Now().After(cmd.DeadlineAt) {
		w.finish(wire.Result{ExecID: cmd.ExecID, State: wire.StateExpired, Reason: "deadline passed while waiting for jitter", FinishedAt: time.Now().UTC()})
		return
	}
	if reason := w.stale(ctx, cmd); reason != "" {
		w.finish(wire.Result{ExecID: cmd.ExecID, State: wire.StateSkipped, Reason: reason, FinishedAt: time.Now().UTC()})
		return
	}
	started := time.Now().UTC()
	// The running report waits runningAfter: a script that ends sooner is
	// reported once, by its final result (one message, one database write
	// and, on a real agent, one fsync instead of two).
	var reported sync.Mutex
	ended := false
	running := time.AfterFunc(runningAfter, func() {
		reported.Lock()
		defer reported.Unlock()
		if !ended {
			w.report(wire.Result{ExecID: cmd.ExecID, State: wire.StateRunning, StartedAt: started})
		}
	})

	capBytes := cmd.OutputCap
	if capBytes <= 0 {
		capBytes = w.cfg.OutputCap
	}
	out := newChunker(w, cmd.ExecID)
	defer out.stop()
	o := w.cfg.Exec(ctx, runner.Spec{
		Shell: cmd.Shell, Script: cmd.Script, Timeout: cmd.Timeout.D(), OutputCap: capBytes,
		Dir:      filepath.Join(w.cfg.DataDir, "scripts"),
		Env:      []string{"KANADE_EXEC_ID=" + cmd.ExecID, "KANADE_JOB_ID=" + cmd.JobID, "KANADE_PC_ID=" + w.cfg.PCID},
		OnOutput: out.add,
		OnStart:  w.recordTree(cmd.ExecID),
	})
	out.stop()
	running.Stop()
	reported.Lock() // a running report being queued goes first
	ended = true
	reported.Unlock()
	if o.StartedAt.IsZero() {
		o.StartedAt = started
	}
	w.finish(wire.Result{ExecID: cmd.ExecID, State: o.State, Reason: o.Reason, ExitCode: o.ExitCode,
		Stdout: o.Stdout, Stderr: o.Stderr, Truncated: o.Truncated, StartedAt: o.StartedAt.UTC(), FinishedAt: o.FinishedAt.UTC()})
}

func causeText(ctx context.Context) string {
	if c := context.Cause(ctx); c != nil {
		return c.Error()
	}
	return "cancelled"
}

func (w *Worker) handleKill(m *nats.Msg) {
	execID := wire.LastToken(m.Subject)
	if wire.ValidateID("exec_id", execID) != nil {
		return
	}
	if err := w.verify(context.Background(), m.Subject, m.Header, m.Data, wire.MaxControlAge); err != nil {
		w.log.Warn("refusing a kill", "subject", m.Subject, "err", err)
		return
	}
	var k wire.Kill
	_ = json.Unmarshal(m.Data, &k)
	cause := "killed"
	if k.By != "" {
		cause = "killed by " + k.By
	}
	if k.Reason != "" {
		cause += ": " + k.Reason
	}
	now := time.Now()
	w.mu.Lock()
	w.killed[execID] = now
	for id, at := range w.killed {
		if now.Sub(at) > killMemory {
			delete(w.killed, id)
		}
	}
	cancel := w.running[execID]
	w.mu.Unlock()
	if cancel != nil {
		w.log.Info("kill", "exec_id", execID, "cause", cause)
		cancel(errors.New(cause))
	}
}

func (w *Worker) wasKilled(execID string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.killed[execID]
	return ok
}

// finish queues a final result and marks the execution done.
func (w *Worker) finish(r wire.Result) {
	w.report(r)
	if err := w.ledger.Finish(r.ExecID); err != nil {
		w.log.Error("ledger", "err", err)
	}
}

// report queues a result in the durable outbox.
func (w *Worker) report(r wire.Result) {
	r.Protocol, r.PCID = wire.ProtocolVersion, w.cfg.PCID
	b, err := r.AppendJSON(nil)
	if err != nil {
		w.log.Error("encode result", "err", err)
		return
	}
	if limit := w.maxPayload() - 4096; len(b) > limit {
		b = shrink(r, limit)
	}
	if err := w.outbox.Put(wire.ResultSubject(w.cfg.PCID), b); err != nil {
		w.log.Error("cannot queue result", "exec_id", r.ExecID, "state", r.State, "err", err)
		return
	}
	w.deliver()
	if r.State.Final() {
		w.log.Info("result", "exec_id", r.ExecID, "state", r.State, "reason", r.Reason)
	}
}

func (w *Worker) maxPayload() int {
	if w.nc != nil {
		if mp := int(w.nc.MaxPayload()); mp > 0 {
			return mp
		}
	}
	return 1 << 20
}

// shrink cuts the middle out of the output of r until its encoding fits
// in limit bytes.
func shrink(r wire.Result, limit int) []byte {
	r.Truncated = true
	for {
		b, _ := json.Marshal(r)
		if len(b) <= limit || (r.Stdout == "" && r.Stderr == "") {
			return b
		}
		over := len(b) - limit
		field, enc := &r.Stdout, encoded(r.Stdout)
		if e := encoded(r.Stderr); e > enc {
			field, enc = &r.Stderr, e
		}
		// Escaping can make one byte of text six of JSON: cut in
		// proportion, at most half of the larger output at a time. The
		// middle goes, as under the runner's cap: the end is where the
		// error is.
		keep := int(int64(len(*field)) * int64(enc-min(over+1, (enc+1)/2)) / int64(enc))
		*field = runner.KeepEnds(*field, min(keep, len(*field)-1))
	}
}

// encoded is the length of s as a JSON string.
func encoded(s string) int {
	b, _ := json.Marshal(s)
	return len(b)
}

func (w *Worker) publishJSON(subject string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return w.nc.Publish(subject, b)
}

// verify checks a message's signature when the agent has trusted keys.
// A key it does not know yet may come from a rotation it missed: the keys
// are refreshed from the server once before the message is refused.
func (w *Worker) verify(ctx context.Context, subject string, hdr nats.Header, data []byte, maxAge time.Duration) error {
	if w.cfg.Trust == nil {
		return nil
	}
	_, err := wire.VerifyWith(w.cfg.SigCheck, w.cfg.Trust.Keys(), subject, hdr.Get, data, time.Now(), maxAge)
	if errors.Is(err, wire.ErrUnknownKey) {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		rerr := w.cfg.Trust.Refresh(rctx, w.nc)
		cancel()
		if rerr != nil {
			w.log.Warn("cannot refresh the trusted keys", "err", rerr)
		}
		_, err = wire.VerifyWith(w.cfg.SigCheck, w.cfg.Trust.Keys(), subject, hdr.Get, data, time.Now(), maxAge)
	}
	return err
}

// handleControl applies a signed state change.
func (w *Worker) handleControl(m *nats.Msg) {
	if w.cfg.Trust == nil {
		return
	}
	if _, err := wire.VerifyWith(w.cfg.SigCheck, w.cfg.Trust.Keys(), m.Subject, m.Header.Get, m.Data, time.Now(), wire.MaxControlAge); err != nil {
		w.log.Warn("refusing a control message", "subject", m.Subject, "err", err)
		return
	}
	var c wire.Control
	if err := json.Unmarshal(m.Data, &c); err != nil {
		w.log.Warn("undecodable control message", "subject", m.Subject, "err", err)
		return
	}
	switch c.Kind {
	case wire.ControlCommandKeys:
		if len(c.CommandKeys) == 0 {
			return
		}
		if err := w.cfg.Trust.SetKeys(c.CommandKeys); err != nil {
			w.log.Error("cannot store the new trusted keys", "err", err)
			return
		}
		w.log.Info("trusted command keys updated", "keys", len(c.CommandKeys))
	case wire.ControlEmergencyStop:
		if c.Emergency != nil {
			w.applyEmergencyStop(*c.Emergency)
			w.heartbeat(false, "") // the acknowledgement (StopSince), at once
		}
	case wire.ControlCredential:
		if c.Credential == nil {
			return
		}
		if err := w.cfg.Trust.SetCredential(*c.Credential); err != nil {
			w.log.Error("cannot store the pushed credential", "err", err)
			return
		}
		go w.followCredentialGroups()
	case wire.ControlReleaseKeys:
		rt, ok := w.cfg.Trust.(interface {
			SetReleaseKeys(keys []wire.CommandKey) error
		})
		if !ok || len(c.ReleaseKeys) == 0 {
			return
		}
		if err := rt.SetReleaseKeys(c.ReleaseKeys); err != nil {
			w.log.Error("cannot store the new trusted release keys", "err", err)
			return
		}
		w.log.Info("trusted release keys updated", "keys", len(c.ReleaseKeys))
	case wire.ControlInventory:
		w.RequestInventory()
	case wire.ControlPing:
		if len(c.Nonce) <= 64 {
			w.heartbeat(false, c.Nonce)
		}
	default:
		w.log.Debug("ignoring an unknown control message", "kind", c.Kind)
	}
}

// stale is stop-the-bleed layer 2: right before a job's script starts
// (after its jitter), the job must not be revoked and its version must
// still be the pinned one. Ad-hoc runs (no version) are not checked. Both
// values are signed by the server; one that cannot be read or verified
// stops the run (fail closed). A job that was never revoked has no
// revoked flag; every deployed version is pinned before it is sent.
func (w *Worker) stale(ctx context.Context, cmd wire.Command) string {
	if cmd.Version == "" {
		return ""
	}
	switch v, err := w.kvGet(ctx, wire.KVScriptStatus, cmd.JobID); {
	case errors.Is(err, wire.ErrKVNotFound):
	case err != nil:
		return fmt.Sprintf("cannot verify that job %s is not revoked: %v", cmd.JobID, err)
	case string(v) == wire.StatusRevoked:
		return fmt.Sprintf("revoked: job %s was revoked before this PC started it", cmd.JobID)
	}
	switch v, err := w.kvGet(ctx, wire.KVScriptCurrent, cmd.JobID); {
	case err != nil:
		return fmt.Sprintf("cannot verify the pinned version of job %s: %v", cmd.JobID, err)
	case string(v) != cmd.Version:
		return fmt.Sprintf("stale: version %s of job %s is pinned now; this command is version %s", v, cmd.JobID, cmd.Version)
	}
	return ""
}

// kvGet reads the newest value of key in bucket and checks the server's
// signature on it (wire.ErrKVUnverified when it does not check out).
func (w *Worker) kvGet(ctx context.Context, bucket, key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	// One direct get by subject: no bucket binding (a stream info request)
	// first, so the agent's credential needs no stream-info permission and
	// a reconnect wave costs the broker one request per read.
	m, err := w.nc.RequestWithContext(ctx, wire.KVDirectGetSubject(bucket, key), nil)
	if err != nil {
		return nil, err
	}
	v, err := wire.KVValue(m.Header.Get, m.Data)
	if err != nil {
		return nil, err
	}
	if err := w.verify(ctx, wire.KVSubject(bucket, key), m.Header, v, 0); err != nil {
		return nil, fmt.Errorf("%w: %s/%s: %v", wire.ErrKVUnverified, bucket, key, err)
	}
	return v, nil
}

// stopped says why a command must not run because of the emergency stop:
// it is on, or the command was issued before the last stop (a catch-up
// after lifting must not run what the stop was meant to stop).
func (w *Worker) stopped(cmd wire.Command) string {
	w.mu.Lock()
	es := w.estop
	w.mu.Unlock()
	switch {
	case es.Active:
		return fmt.Sprintf("emergency stop is on (since %s, by %s: %s)", es.Since.Format(time.RFC3339), es.By, es.Reason)
	case !es.LastStopAt.IsZero() && cmd.IssuedAt.Before(es.LastStopAt):
		return fmt.Sprintf("issued before the emergency stop of %s", es.LastStopAt.Format(time.RFC3339))
	}
	return ""
}

// applyEmergencyStop takes the switch; turning on kills everything that
// runs or waits in jitter.
func (w *Worker) applyEmergencyStop(es wire.EmergencyStop) {
	w.mu.Lock()
	was := w.estop.Active
	w.estop, w.estopKnown = es, true
	var cancels []context.CancelCauseFunc
	if es.Active {
		for _, cancel := range w.running {
			cancels = append(cancels, cancel)
		}
	}
	w.mu.Unlock()
	cause := fmt.Errorf("emergency stop by %s: %s", es.By, es.Reason)
	for _, cancel := range cancels {
		cancel(cause)
	}
	if es.Active != was {
		w.log.Warn("emergency stop", "active", es.Active, "by", es.By, "reason", es.Reason, "killed", len(cancels))
	}
}

// stopSince is the Since of the emergency stop the agent applies (zero
// while it is off), which its heartbeats carry as its acknowledgement.
func (w *Worker) stopSince() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.estop.Active {
		return time.Time{}
	}
	return w.estop.Since
}

// readEmergencyStop reads the switch from the broker (on every connect,
// so an agent that was away when it changed still follows it, and before
// the first command). A value that is missing, unsigned or undecodable
// counts as on (fail closed); an error means it could not be read, and the
// switch stays as it was.
func (w *Worker) readEmergencyStop(ctx context.Context) error {
	v, err := w.kvGet(ctx, wire.KVFleet, wire.KeyEmergencyStop)
	var es wire.EmergencyStop
	switch {
	case err == nil:
		if err := json.Unmarshal(v, &es); err != nil {
			es = unknownStop(fmt.Errorf("undecodable: %w", err))
		}
	case errors.Is(err, wire.ErrKVNotFound) && w.cfg.Trust == nil:
		// An agent with a static credential checks no signatures: no
		// value means the switch was never set.
	case errors.Is(err, wire.ErrKVNotFound) || errors.Is(err, wire.ErrKVUnverified):
		es = unknownStop(err)
	default:
		return fmt.Errorf("read the emergency stop: %w", err)
	}
	w.applyEmergencyStop(es)
	return nil
}

// unknownStop is the switch an agent assumes when the stored one cannot
// be trusted: on.
func unknownStop(why error) wire.EmergencyStop {
	return wire.EmergencyStop{Active: true, Since: time.Now().UTC(), By: "this agent",
		Reason: "the fleet's emergency stop value cannot be verified (" + why.Error() + "); the server writes a signed one when it starts or when the stop is set or lifted"}
}

// knowEmergencyStop reads the switch unless a value was taken since the
// agent started; a command is never judged against a switch not read.
func (w *Worker) knowEmergencyStop(ctx context.Context) error {
	w.mu.Lock()
	known := w.estopKnown
	w.mu.Unlock()
	if known {
		return nil
	}
	return w.readEmergencyStop(ctx)
}
