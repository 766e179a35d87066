package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

func release(version, os, arch string, at time.Time) store.Release {
	return store.Release{
		Signed: wire.SignedRelease{
			Release: wire.Release{Version: version, OS: os, Arch: arch, SHA256: strings.Repeat("ab", 32), Size: 1234,
				Object: wire.ReleaseObject(version, os, arch)},
			SignedAt: at, Kid: "0011223344556677", Sig: []byte{1, 2, 3, 250},
		},
		Source: store.ReleaseUploaded, UploadedBy: "alice", UploadedAt: at,
	}
}

func TestReleases(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		if _, err := s.Release(ctx, "v1", "linux", "amd64"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("missing release = %v; want ErrNotFound", err)
		}
		a := release("v1", "linux", "amd64", t0)
		b := release("v1", "windows", "amd64", t0.Add(time.Minute))
		c := release("v2", "linux", "amd64", t0.Add(2*time.Minute))
		for _, r := range []store.Release{a, b, c} {
			if err := s.PutRelease(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.Release(ctx, "v1", "linux", "amd64")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(a, got); diff != "" {
			t.Errorf("release read back (-put +got):\n%s", diff)
		}
		// Put again replaces (a built-in release uploaded over).
		a2 := a
		a2.Signed.SHA256, a2.Source, a2.UploadedBy = strings.Repeat("cd", 32), store.ReleaseBuiltIn, "kanade"
		if err := s.PutRelease(ctx, a2); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Release(ctx, "v1", "linux", "amd64"); got.Signed.SHA256 != a2.Signed.SHA256 || got.Source != store.ReleaseBuiltIn {
			t.Errorf("replaced release = %+v", got)
		}
		all, err := s.Releases(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, r := range all {
			keys = append(keys, r.Signed.Version+" "+r.Signed.OS)
		}
		if diff := cmp.Diff([]string{"v2 linux", "v1 windows", "v1 linux"}, keys); diff != "" {
			t.Errorf("releases, newest first (-want +got):\n%s", diff)
		}
		if v1, _ := s.Releases(ctx, "v1"); len(v1) != 2 {
			t.Errorf("releases of v1 = %d; want 2", len(v1))
		}
		if err := s.DeleteRelease(ctx, "v1", "windows", "amd64"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRelease(ctx, "v1", "windows", "amd64"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second delete = %v; want ErrNotFound", err)
		}
		if v1, _ := s.Releases(ctx, "v1"); len(v1) != 1 {
			t.Errorf("releases of v1 after a delete = %d; want 1", len(v1))
		}
	})
}

func TestAgentVersionsAndPlatforms(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		a1, a2, a3 := agent("pc1", t0, "lab"), agent("pc2", t0, "lab", "canary"), agent("pc3", t0)
		a2.AgentVersion = "2.0.0"
		a3.OS, a3.Arch, a3.Protocol = "linux", "arm64", 2
		mustUpsert(t, s, a1, a2, a3)
		got, err := s.AgentVersions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		counts := map[string]int{}
		for _, v := range got {
			counts[v.Group+"|"+v.OS+"/"+v.Arch+"|"+v.AgentVersion] = v.Agents
		}
		want := map[string]int{"lab|windows/amd64|1.0.0": 1, "lab|windows/amd64|2.0.0": 1, "canary|windows/amd64|2.0.0": 1, "|linux/arm64|1.0.0": 1}
		if diff := cmp.Diff(want, counts); diff != "" {
			t.Errorf("agent versions (-want +got):\n%s", diff)
		}
		ps, err := s.Platforms(ctx, []string{"pc1", "pc3", "nobody"})
		if err != nil {
			t.Fatal(err)
		}
		wantP := map[string]store.Platform{
			"pc1": {OS: "windows", Arch: "amd64", AgentVersion: "1.0.0", Protocol: wire.ProtocolVersion},
			"pc3": {OS: "linux", Arch: "arm64", AgentVersion: "1.0.0", Protocol: 2},
		}
		if diff := cmp.Diff(wantP, ps); diff != "" {
			t.Errorf("platforms (-want +got):\n%s", diff)
		}
	})
}

// The latest finished update of each agent decides: a failure followed by
// a success is not listed, a success followed by a failure is, and kills
// and expiries do not hide an earlier failure.
func TestLatestFailuresAndOpenExecutions(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		u1, u2, other := execution("u1", t0), execution("u2", t0.Add(time.Hour)), execution("x1", t0)
		u1.JobID, u2.JobID, u1.Version, u2.Version = wire.UpdateJobID, wire.UpdateJobID, "v1", "v2"
		mustCreate(t, s, u1, "pc1", "pc2", "pc3")
		mustCreate(t, s, u2, "pc1", "pc2", "pc3")
		mustCreate(t, s, other, "pc4")
		if ids, err := s.OpenExecutionsOf(ctx, wire.UpdateJobID, ""); err != nil || !cmp.Equal(ids, []string{"u1", "u2"}) {
			t.Errorf("open updates = %v, %v", ids, err)
		}
		if ids, _ := s.OpenExecutionsOf(ctx, wire.UpdateJobID, "v2"); !cmp.Equal(ids, []string{"u2"}) {
			t.Errorf("open updates of v2 = %v", ids)
		}
		res := func(exec, pc string, st wire.State, reason string) wire.Result {
			return wire.Result{ExecID: exec, PCID: pc, State: st, Reason: reason}
		}
		mustApply(t, s, t0.Add(time.Minute),
			res("u1", "pc1", wire.StateFailed, "hash mismatch: x"), res("u1", "pc2", wire.StateSucceeded, ""),
			res("u1", "pc3", wire.StateFailed, "trial run failed: exit status 3"), res("x1", "pc4", wire.StateFailed, "boom"))
		mustApply(t, s, t0.Add(2*time.Hour),
			res("u2", "pc1", wire.StateSucceeded, ""), res("u2", "pc2", wire.StateFailed, "rolled back: no connection within 2m"))
		if err := s.RequestKill(ctx, "u2", "bob", t0.Add(3*time.Hour)); err != nil {
			t.Fatal(err)
		}
		got, err := s.LatestFailures(ctx, wire.UpdateJobID, 10)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, f := range got {
			lines = append(lines, f.PCID+" "+f.Version+" "+f.Reason)
		}
		want := []string{"pc2 v2 rolled back: no connection within 2m", "pc3 v1 trial run failed: exit status 3"}
		if diff := cmp.Diff(want, lines); diff != "" {
			t.Errorf("latest failures (-want +got):\n%s", diff)
		}
		if ids, _ := s.OpenExecutionsOf(ctx, wire.UpdateJobID, "v2"); len(ids) != 0 {
			t.Errorf("a killed update is open: %v", ids)
		}
	})
}
