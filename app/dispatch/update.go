package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/problem"
	"github.com/kanadehq/kanade/jobs"
	"github.com/kanadehq/kanade/store"
)

// UpdateTimeout bounds an agent's download and trial run of a release
// (the update command's timeout).
const UpdateTimeout = 30 * time.Minute

// UpdateRequest rolls an agent release out: an execution of job
// wire.UpdateJobID that goes through waves like any rollout.
type UpdateRequest struct {
	// Version is the release's; every platform it was uploaded for is
	// offered, each agent getting the record of its own OS and arch.
	Version string
	// Target selects the agents (zero: all agents).
	Target store.Target
	// Waves split the agents (empty: one wave of all of them).
	Waves []jobs.Wave
	// FourEyes overrides the server's default (nil keeps it).
	FourEyes *bool
	Actor    string
	// ActorSubject is the actor's stable identity (store.Execution.InitiatorSubject).
	ActorSubject string
	Title        string
}

// Excluded is an agent of the target the update is not sent to, and why.
type Excluded struct {
	PCID   string `json:"pc_id"`
	Reason string `json:"reason"`
}

// Why an agent of an update's target is left out.
const (
	ExcludedNoHeartbeat = "has not sent a heartbeat yet, so its platform and protocol are unknown"
	ExcludedProtocol    = "runs protocol %d; agents update themselves from protocol %d (update this one by hand)"
	ExcludedPlatform    = "is %s/%s; version %s has no release for it"
	ExcludedSameVersion = "already runs %s"
)

// DeployUpdate starts an update rollout. Only agents whose heartbeats say
// protocol ≥ wire.ProtocolVersion and a platform the version has a
// release for, and that do not run the version already, become targets;
// the others are returned as excluded (and a target with none left is
// refused). Open update rollouts are killed once the new one is
// recorded ("superseded"): their pending commands are withdrawn, so at
// most one update is offered to an agent.
func (d *Dispatcher) DeployUpdate(ctx context.Context, r UpdateRequest) (store.Execution, []Excluded, error) {
	if err := wire.ValidateVersion(r.Version); err != nil {
		return store.Execution{}, nil, &problem.Error{Problems: []problem.Problem{{Field: "version", Message: err.Error()}}}
	}
	if d.Rollouts == nil {
		return store.Execution{}, nil, fmt.Errorf("%w: updates roll out in waves, which this server does not run", ErrConflict)
	}
	releases, err := d.st.Releases(ctx, r.Version)
	if err != nil {
		return store.Execution{}, nil, err
	}
	if len(releases) == 0 {
		return store.Execution{}, nil, fmt.Errorf("release %s: %w", r.Version, store.ErrNotFound)
	}
	target := r.Target
	if !target.All && len(target.Groups) == 0 && len(target.PCs) == 0 {
		target.All = true
	}
	target.Groups = wire.NormalizeGroups(target.Groups)
	ps := ValidateTarget(target)
	var tps []problem.Problem
	r.Title, tps = CheckTitle(r.Title)
	if r.Title == "" {
		// The executions list and the tab title name what this is.
		r.Title = "Agent update to " + r.Version
	}
	if ps = append(ps, tps...); len(ps) > 0 {
		return store.Execution{}, nil, &problem.Error{Problems: ps}
	}
	if err := d.checkKnown(ctx, target); err != nil {
		return store.Execution{}, nil, err
	}
	if err := d.checkNotStopped(ctx); err != nil {
		return store.Execution{}, nil, err
	}
	pcs, _, err := d.st.ResolveTarget(ctx, target.All, target.Groups, target.PCs, d.now())
	if err != nil {
		return store.Execution{}, nil, fmt.Errorf("resolve target: %w", err)
	}
	platforms, err := d.st.Platforms(ctx, pcs)
	if err != nil {
		return store.Execution{}, nil, err
	}
	eligible, excluded := UpdateTargets(r.Version, pcs, platforms, releases)
	if len(eligible) == 0 {
		msg := "matches no agent"
		if len(excluded) > 0 {
			msg = "matches no agent that can take version " + r.Version + ": " + excludedSummary(excluded)
		}
		return store.Execution{}, excluded, &problem.Error{Problems: []problem.Problem{{Field: "target", Message: msg}}}
	}
	superseded, err := d.st.OpenExecutionsOf(ctx, wire.UpdateJobID, "")
	if err != nil {
		return store.Execution{}, nil, err
	}
	waves := r.Waves
	if len(waves) == 0 {
		waves = []jobs.Wave{{Name: "all", Percent: 100}}
	}
	m := jobs.Manifest{ID: wire.UpdateJobID, Version: r.Version, Rollout: &jobs.Rollout{Waves: waves}, FourEyes: r.FourEyes,
		Execute: jobs.Execute{Timeout: wire.Duration(UpdateTimeout)}}
	e, err := d.deployRollout(ctx, DeployRequest{Manifest: m, Target: &target, Actor: r.Actor, ActorSubject: r.ActorSubject, Title: r.Title},
		r.Version, target, eligible, UpdateTimeout, d.lim.DefaultDeadline)
	if err != nil {
		return store.Execution{}, nil, err
	}
	for _, id := range superseded {
		if err := d.kill(ctx, id, r.Actor, "superseded by the update to "+r.Version+" ("+e.ExecID+")", false); err != nil {
			d.log.Error("update: cannot end the update it supersedes", "exec_id", id, "by", e.ExecID, "err", err)
		}
	}
	return e, excluded, nil
}

// UpdateTargets splits pcs into the agents an update to version goes to
// and those it leaves out, by what their heartbeats say (platforms) and
// the platforms the version has releases for.
func UpdateTargets(version string, pcs []string, platforms map[string]store.Platform, releases []store.Release) (eligible []string, excluded []Excluded) {
	has := map[string]bool{}
	for _, rel := range releases {
		has[rel.Signed.OS+"/"+rel.Signed.Arch] = true
	}
	for _, pc := range pcs {
		p, ok := platforms[pc]
		switch {
		case !ok:
			excluded = append(excluded, Excluded{pc, ExcludedNoHeartbeat})
		case p.Protocol < wire.ProtocolVersion:
			excluded = append(excluded, Excluded{pc, fmt.Sprintf(ExcludedProtocol, p.Protocol, wire.ProtocolVersion)})
		case !has[p.OS+"/"+p.Arch]:
			excluded = append(excluded, Excluded{pc, fmt.Sprintf(ExcludedPlatform, p.OS, p.Arch, version)})
		case p.AgentVersion == version:
			excluded = append(excluded, Excluded{pc, fmt.Sprintf(ExcludedSameVersion, version)})
		default:
			eligible = append(eligible, pc)
		}
	}
	return eligible, excluded
}

// excludedSummary counts the reasons: "2 already run v2; 1 runs protocol 2 …".
func excludedSummary(ex []Excluded) string {
	n := map[string]int{}
	for _, e := range ex {
		n[e.Reason]++
	}
	reasons := make([]string, 0, len(n))
	for r := range n {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	parts := make([]string, 0, len(reasons))
	for _, r := range reasons {
		if n[r] == 1 {
			parts = append(parts, "1 "+r)
		} else {
			parts = append(parts, fmt.Sprintf("%d agents: %s", n[r], r))
		}
	}
	return strings.Join(parts, "; ")
}

// publishUpdateWave sends an update rollout's wave: each PC gets, on its
// own subject, the signed record of the release for its platform. A PC
// whose platform has no release any more is left out (its target
// expires at the wave's deadline).
func (d *Dispatcher) publishUpdateWave(ctx context.Context, e store.Execution, pcs []string, deadline time.Time) error {
	releases, err := d.st.Releases(ctx, e.Version)
	if err != nil {
		return err
	}
	platforms, err := d.st.Platforms(ctx, pcs)
	if err != nil {
		return err
	}
	byPlatform := map[string][]string{}
	for _, pc := range pcs {
		p := platforms[pc]
		key := p.OS + "/" + p.Arch
		byPlatform[key] = append(byPlatform[key], pc)
	}
	now := d.now()
	keys := make([]string, 0, len(byPlatform))
	for k := range byPlatform {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		i := slices.IndexFunc(releases, func(r store.Release) bool { return r.Signed.OS+"/"+r.Signed.Arch == key })
		if i < 0 {
			d.log.Warn("update: no release for these agents' platform; not sent", "exec_id", e.ExecID, "version", e.Version, "platform", key, "pcs", len(byPlatform[key]))
			continue
		}
		cmd := wire.UpdateCommand{
			Command: wire.Command{Protocol: wire.ProtocolVersion, ExecID: e.ExecID, JobID: wire.UpdateJobID, Kind: wire.KindUpdate,
				Timeout: wire.Duration(e.Timeout), IssuedAt: now, DeadlineAt: deadline, OutputCap: d.lim.OutputCap},
			Update: wire.Update{Release: releases[i].Signed},
		}
		if err := cmd.Validate(); err != nil {
			return fmt.Errorf("update command: %w", err)
		}
		data, err := json.Marshal(cmd)
		if err != nil {
			return err
		}
		subjects := subjectsOf(store.Target{PCs: byPlatform[key]}, wire.UpdateJobID)
		if err := d.Provisioner.Retry(ctx, func() error { return d.publishOnce(ctx, subjects, data) }); err != nil {
			return err
		}
	}
	return nil
}
