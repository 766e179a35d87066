package projector

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/store/storetest"
)

func TestFlushHeartbeats(t *testing.T) {
	ctx := t.Context()
	st := storetest.New(t)
	known := map[string]facts{}
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	hb := func(pc, version string, groups ...string) wire.Heartbeat {
		return wire.Heartbeat{Protocol: wire.ProtocolVersion, PCID: pc, Hostname: "H-" + pc, OS: "linux", AgentVersion: version,
			Groups: groups, Interval: wire.Duration(30 * time.Second), RSSBytes: 1 << 20}
	}
	check := func(when string, pc string, version string, groups []string, seen time.Time) {
		t.Helper()
		a, err := st.Agent(ctx, pc)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if a.AgentVersion != version || !slices.Equal(a.Groups, groups) || !a.LastSeen.Equal(seen) || !a.OfflineAfter.Equal(seen.Add(90*time.Second)) {
			t.Errorf("%s: %s = version %q, groups %v, last seen %v, offline after %v; want %q, %v, %v, +90s",
				when, pc, a.AgentVersion, a.Groups, a.LastSeen, a.OfflineAfter, version, groups, seen)
		}
	}

	// First heartbeat: written whole.
	if err := flushHeartbeats(ctx, st, known, map[string]wire.Heartbeat{"pc1": hb("pc1", "1.0", "lab")}, t0); err != nil {
		t.Fatal(err)
	}
	check("first", "pc1", "1.0", []string{"lab"}, t0)

	// An admin moves it; the agent has not followed yet: its unchanged
	// heartbeat only touches last-seen and keeps the admin's groups.
	if err := st.SetGroups(ctx, "pc1", []string{"finance"}); err != nil {
		t.Fatal(err)
	}
	t1 := t0.Add(30 * time.Second)
	if err := flushHeartbeats(ctx, st, known, map[string]wire.Heartbeat{"pc1": hb("pc1", "1.0", "lab")}, t1); err != nil {
		t.Fatal(err)
	}
	check("unchanged facts", "pc1", "1.0", []string{"finance"}, t1)

	// New facts (an upgrade): written whole.
	t2 := t1.Add(30 * time.Second)
	if err := flushHeartbeats(ctx, st, known, map[string]wire.Heartbeat{"pc1": hb("pc1", "1.1", "finance")}, t2); err != nil {
		t.Fatal(err)
	}
	check("upgrade", "pc1", "1.1", []string{"finance"}, t2)

	// A row that went away behind this process's back is written whole
	// again from the heartbeat.
	known["pc9"] = factsOf(hb("pc9", "1.0"))
	if err := flushHeartbeats(ctx, st, known, map[string]wire.Heartbeat{"pc9": hb("pc9", "1.0")}, t2); err != nil {
		t.Fatal(err)
	}
	check("missing row", "pc9", "1.0", nil, t2)
	if _, ok := known["pc9"]; !ok {
		t.Error("pc9 is not remembered after its whole write")
	}

	// Someone logs on, then off: each change is written.
	for i, user := range []string{`CORP\alice`, ""} {
		h := hb("pc1", "1.1", "finance")
		h.User = user
		if err := flushHeartbeats(ctx, st, known, map[string]wire.Heartbeat{"pc1": h}, t2.Add(time.Duration(i+1)*30*time.Second)); err != nil {
			t.Fatal(err)
		}
		if a, err := st.Agent(ctx, "pc1"); err != nil || a.User != user {
			t.Errorf("after a heartbeat with user %q: stored %q, %v", user, a.User, err)
		}
	}
}

func TestDecodeResult(t *testing.T) {
	body := `{"protocol":1,"exec_id":"e1","pc_id":"pc1","state":"succeeded","exit_code":0}`
	tests := []struct {
		subject, body string
		ok            bool
	}{
		{"results.pc1", body, true},    // as the stream stores it
		{"results.e1.pc1", body, true}, // as published (streams from before the transform)
		{"results.pc2", body, false},   // another PC
		{"results.e2.pc1", body, false},
		{"results.e1.pc2", body, false},
		{"results", body, false},
		{"results.e1.pc1.x", body, false},
		{"output.e1.pc1", body, false},
		{"results.pc1", `{"protocol":1,"exec_id":"e1","pc_id":"pc1","state":"pending"}`, false},
		{"results.pc1", `not json`, false},
	}
	for _, tt := range tests {
		r, err := decodeResult(tt.subject, []byte(tt.body))
		if (err == nil) != tt.ok {
			t.Errorf("decodeResult(%q, %s) error = %v, want ok %v", tt.subject, tt.body, err, tt.ok)
		}
		if err == nil && (r.ExecID != "e1" || r.PCID != "pc1" || r.State != wire.StateSucceeded) {
			t.Errorf("decodeResult(%q) = %+v", tt.subject, r)
		}
	}
}

func TestCollect(t *testing.T) {
	filled := func(n int, closed bool) chan int {
		ch := make(chan int, n)
		for i := range n {
			ch <- i + 1
		}
		if closed {
			close(ch)
		}
		return ch
	}
	tests := []struct {
		name     string
		msgs     chan int
		max      int
		want     []int
		wantOpen bool
	}{
		{"what is waiting, in one batch", filled(4, false), 10, []int{0, 1, 2, 3, 4}, true},
		{"no more than max", filled(9, false), 3, []int{0, 1, 2}, true},
		{"a closed channel ends the batch", filled(2, true), 10, []int{0, 1, 2}, false},
		{"nothing more", filled(0, false), 10, []int{0}, true},
	}
	for _, tt := range tests {
		got, open := collect(tt.msgs, []int{0}, tt.max, time.Millisecond, 5*time.Millisecond)
		if diff := cmp.Diff(tt.want, got); diff != "" || open != tt.wantOpen {
			t.Errorf("%s: collect() open %v (want %v), batch (-want +got):\n%s", tt.name, open, tt.wantOpen, diff)
		}
	}
}

// TestCollectWaitsForAStream: results that arrive one by one, a little
// apart, are written together, not a transaction each.
func TestCollectWaitsForAStream(t *testing.T) {
	const n = 200
	msgs := make(chan int, n) // the projector's channel is buffered too
	go func() {
		defer close(msgs)
		for i := range n {
			msgs <- i
			time.Sleep(100 * time.Microsecond)
		}
	}()
	batches, total := 0, 0
	for m := range msgs {
		// A linger far longer than the gaps, and no bound on the total.
		batch, open := collect(msgs, []int{m}, n, 50*time.Millisecond, time.Hour)
		batches++
		total += len(batch)
		if !open {
			break
		}
	}
	if total != n || batches > n/10 {
		t.Errorf("%d results in %d batches, want all %d in at most %d", total, batches, n, n/10)
	}
}
