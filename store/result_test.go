package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

func TestApplyResults_Precedence(t *testing.T) {
	started := t0.Add(time.Second)
	running := wire.Result{ExecID: "e", PCID: "pc1", State: wire.StateRunning, StartedAt: started}
	succeeded := wire.Result{ExecID: "e", PCID: "pc1", State: wire.StateSucceeded, ExitCode: exit(0), Stdout: "ok",
		StartedAt: started, FinishedAt: t0.Add(3 * time.Second)}
	failed := wire.Result{ExecID: "e", PCID: "pc1", State: wire.StateFailed, ExitCode: exit(1), Stderr: "boom", Truncated: true}
	expire := func(t *testing.T, s *store.Store) {
		if _, err := s.ExpireOverdue(context.Background(), t0.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	kill := func(t *testing.T, s *store.Store) {
		if err := s.RequestKill(context.Background(), "e", "bob", t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	apply := func(rs ...wire.Result) func(t *testing.T, s *store.Store) {
		return func(t *testing.T, s *store.Store) { mustApply(t, s, t0.Add(10*time.Second), rs...) }
	}
	type step = func(t *testing.T, s *store.Store)
	tests := []struct {
		name        string
		before      []step
		report      wire.Result
		want        store.Result // UpdatedAt is checked separately
		wantTouched []string
		wantStatus  store.Status
	}{
		{
			name:        "pending to running",
			report:      running,
			want:        store.Result{ExecID: "e", PCID: "pc1", State: wire.StateRunning, StartedAt: started},
			wantTouched: []string{"e"}, wantStatus: store.StatusRunning,
		},
		{
			name:   "pending to final",
			report: succeeded,
			want: store.Result{ExecID: "e", PCID: "pc1", State: wire.StateSucceeded, ExitCode: exit(0), Stdout: "ok",
				StartedAt: started, FinishedAt: t0.Add(3 * time.Second)},
			wantTouched: []string{"e"}, wantStatus: store.StatusCompleted,
		},
		{
			name:   "running to final keeps started_at",
			before: []step{apply(running)},
			report: failed,
			want: store.Result{ExecID: "e", PCID: "pc1", State: wire.StateFailed, ExitCode: exit(1), Stderr: "boom",
				Truncated: true, StartedAt: started},
			wantTouched: []string{"e"}, wantStatus: store.StatusCompleted,
		},
		{
			name:   "late running after final is ignored",
			before: []step{apply(succeeded)},
			report: running,
			want: store.Result{ExecID: "e", PCID: "pc1", State: wire.StateSucceeded, ExitCode: exit(0), Stdout: "ok",
				StartedAt: started, FinishedAt: t0.Add(3 * time.Second)},
			wantTouched: nil, wantStatus: store.StatusCompleted,
		},
		{
			name:   "duplicate final is a no-op",
			before: []step{apply(succeeded)},
			report: succeeded,
			want: store.Result{ExecID: "e", PCID: "pc1", State: wire.StateSucceeded, ExitCode: exit(0), Stdout: "ok",
				StartedAt: started, FinishedAt: t0.Add(3 * time.Second)},
			wantTouched: nil, wantStatus: store.StatusCompleted,
		},
		{
			name:   "another final after final is ignored",
			before: []step{apply(succeeded)},
			report: failed,
			want: store.Result{ExecID: "e", PCID: "pc1", State: wire.StateSucceeded, ExitCode: exit(0), Stdout: "ok",
				StartedAt: started, FinishedAt: t0.Add(3 * time.Second)},
			wantTouched: nil, wantStatus: store.StatusCompleted,
		},
		{
			name:   "final over server-expired",
			before: []step{expire},
			report: failed,
			want: store.Result{ExecID: "e", PCID: "pc1", State: wire.StateFailed, ExitCode: exit(1), Stderr: "boom",
				Truncated: true},
			wantTouched: []string{"e"}, wantStatus: store.StatusCompleted,
		},
		{
			name:        "running over server-expired reopens the execution",
			before:      []step{expire},
			report:      running,
			want:        store.Result{ExecID: "e", PCID: "pc1", State: wire.StateRunning, StartedAt: started},
			wantTouched: []string{"e"}, wantStatus: store.StatusRunning,
		},
		{
			name:   "final over server-killed",
			before: []step{kill},
			report: succeeded,
			want: store.Result{ExecID: "e", PCID: "pc1", State: wire.StateSucceeded, ExitCode: exit(0), Stdout: "ok",
				StartedAt: started, FinishedAt: t0.Add(3 * time.Second)},
			wantTouched: []string{"e"}, wantStatus: store.StatusKilled,
		},
		{
			name:        "unknown execution is inserted (a replay before its row)",
			report:      wire.Result{ExecID: "ghost", PCID: "pc1", State: wire.StateRunning},
			want:        store.Result{ExecID: "ghost", PCID: "pc1", State: wire.StateRunning},
			wantTouched: []string{"ghost"}, wantStatus: store.StatusRunning,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			storetest.ForEach(t, func(t *testing.T, s *store.Store) {
				e := execution("e", t0)
				e.DeadlineAt = t0.Add(time.Hour)
				mustCreate(t, s, e, "pc1")
				for _, st := range tt.before {
					st(t, s)
				}
				before, _ := s.Result(context.Background(), tt.report.ExecID, tt.report.PCID)
				now := t0.Add(3 * time.Hour)
				touched := mustApply(t, s, now, tt.report)
				if diff := cmp.Diff(tt.wantTouched, touched); diff != "" {
					t.Errorf("touched (-want +got):\n%s", diff)
				}
				got := mustResult(t, s, tt.report.ExecID, tt.report.PCID)
				wantUpdated := now
				if tt.wantTouched == nil {
					wantUpdated = before.UpdatedAt
				}
				if !got.UpdatedAt.Equal(wantUpdated) {
					t.Errorf("UpdatedAt = %v, want %v", got.UpdatedAt, wantUpdated)
				}
				got.UpdatedAt = time.Time{}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("Result (-want +got):\n%s", diff)
				}
				if ex := mustExecution(t, s, "e"); ex.Status != tt.wantStatus {
					t.Errorf("execution status = %q, want %q", ex.Status, tt.wantStatus)
				}
			})
		})
	}
}

func TestApplyResults_SameCall(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		mustCreate(t, s, execution("e", t0), "pc1", "pc2", "pc3")
		started := t0.Add(time.Second)
		touched := mustApply(t, s, t0.Add(time.Minute),
			wire.Result{ExecID: "e", PCID: "pc1", State: wire.StateRunning, StartedAt: started},
			wire.Result{ExecID: "e", PCID: "pc2", State: wire.StateSucceeded, ExitCode: exit(0)},
			wire.Result{ExecID: "e", PCID: "pc1", State: wire.StateSucceeded, ExitCode: exit(0)},
			wire.Result{ExecID: "e", PCID: "pc2", State: wire.StateFailed, ExitCode: exit(3)},
			wire.Result{ExecID: "e", PCID: "pc1", State: wire.StateRunning},
			wire.Result{ExecID: "e", PCID: "pc3", State: wire.StateRunning},
			wire.Result{ExecID: "e", PCID: "pc3", State: wire.StateRunning, StartedAt: started},
			wire.Result{ExecID: "other", PCID: "pc1", State: wire.StateRunning},
		)
		if diff := cmp.Diff([]string{"e", "other"}, touched); diff != "" {
			t.Errorf("touched (-want +got):\n%s", diff)
		}
		want := map[string]wire.State{"pc1": wire.StateSucceeded, "pc2": wire.StateSucceeded, "pc3": wire.StateRunning}
		for pc, st := range want {
			r := mustResult(t, s, "e", pc)
			if r.State != st {
				t.Errorf("%s = %s, want %s", pc, r.State, st)
			}
			if pc != "pc2" && !r.StartedAt.Equal(started) {
				t.Errorf("%s started_at = %v, want %v", pc, r.StartedAt, started)
			}
		}
	})
}

func TestApplyResults_Invalid(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		mustCreate(t, s, execution("e", t0), "pc1", "pc2")
		for _, bad := range []wire.Result{
			{ExecID: "e", PCID: "pc2", State: wire.StatePending},
			{ExecID: "e", PCID: "pc2", State: "done"},
			{ExecID: "", PCID: "pc2", State: wire.StateSucceeded},
		} {
			rs := []wire.Result{{ExecID: "e", PCID: "pc1", State: wire.StateSucceeded}, bad}
			if _, err := s.ApplyResults(ctx, rs, t0); err == nil {
				t.Errorf("ApplyResults with %+v = nil error, want one", bad)
			}
		}
		if r := mustResult(t, s, "e", "pc1"); r.State != wire.StatePending {
			t.Errorf("a failed call wrote pc1 = %s", r.State)
		}
		if ids, err := s.ApplyResults(ctx, nil, t0); err != nil || len(ids) != 0 {
			t.Errorf("ApplyResults(nil) = %v, %v", ids, err)
		}
	})
}

func TestApplyResults_UntrustedText(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		mustApply(t, s, t0, wire.Result{ExecID: "e", PCID: "pc1", State: wire.StateFailed,
			Stdout: "a\x00b", Stderr: "bad \xff\xfe utf8", Reason: "it's 100% \\ fine?"})
		r := mustResult(t, s, "e", "pc1")
		got := []string{r.Stdout, r.Stderr, r.Reason}
		want := []string{"a\uFFFDb", "bad \uFFFD utf8", "it's 100% \\ fine?"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("stored text (-want +got):\n%s", diff)
		}
	})
}

func TestApplyResults_LargeOutputs(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ids := pcs(30)
		mustCreate(t, s, execution("e", t0), ids...)
		out := strings.Repeat("x", 150<<10) // 30 × 300 KiB: more than one statement's worth
		var rs []wire.Result
		for _, pc := range ids {
			rs = append(rs, wire.Result{ExecID: "e", PCID: pc, State: wire.StateSucceeded, Stdout: out, Stderr: out, Truncated: true})
		}
		mustApply(t, s, t0, rs...)
		e := mustExecution(t, s, "e")
		if e.Counts != (store.Counts{Succeeded: 30}) || e.Status != store.StatusCompleted {
			t.Errorf("Execution = %s %+v, want completed with 30 succeeded", e.Status, e.Counts)
		}
		if r := mustResult(t, s, "e", ids[29]); len(r.Stdout) != len(out) || len(r.Stderr) != len(out) {
			t.Errorf("stored output %d/%d bytes, want %d", len(r.Stdout), len(r.Stderr), len(out))
		}
	})
}

func TestApplyResults_10k(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ids := pcs(10000)
		mustCreate(t, s, execution("e", t0), ids...)
		var rs []wire.Result
		for i, pc := range ids {
			st := wire.StateSucceeded
			if i%10 == 0 {
				st = wire.StateFailed
			}
			rs = append(rs, wire.Result{ExecID: "e", PCID: pc, State: st, ExitCode: exit(i % 2), Stdout: "done"})
		}
		start := time.Now()
		touched := mustApply(t, s, t0.Add(time.Minute), rs...)
		t.Logf("ApplyResults of 10,000 results took %v", time.Since(start))
		if diff := cmp.Diff([]string{"e"}, touched); diff != "" {
			t.Errorf("touched (-want +got):\n%s", diff)
		}
		e := mustExecution(t, s, "e")
		if e.Counts != (store.Counts{Succeeded: 9000, Failed: 1000}) || e.Status != store.StatusCompleted {
			t.Errorf("Execution = %s %+v", e.Status, e.Counts)
		}
	})
}

func TestResults(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		mustCreate(t, s, execution("old", t0), "pc2", "pc1", "PC3")
		mustCreate(t, s, execution("new", t0.Add(time.Hour)), "pc1", "pc2")
		mustApply(t, s, t0.Add(time.Hour),
			wire.Result{ExecID: "old", PCID: "pc1", State: wire.StateSucceeded},
			wire.Result{ExecID: "new", PCID: "pc1", State: wire.StateRunning},
			wire.Result{ExecID: "orphan", PCID: "pc1", State: wire.StateFailed},
		)
		key := func(r store.Result) string { return r.ExecID + "/" + r.PCID }
		tests := []struct {
			name  string
			f     store.ResultFilter
			want  []string
			total int
		}{
			{"one execution by pc_id", store.ResultFilter{ExecID: "old"}, []string{"old/PC3", "old/pc1", "old/pc2"}, 3},
			{"one pc, newest execution first", store.ResultFilter{PCID: "pc1"}, []string{"new/pc1", "old/pc1", "orphan/pc1"}, 3},
			{"state", store.ResultFilter{State: wire.StatePending}, []string{"new/pc2", "old/PC3", "old/pc2"}, 3},
			{"execution and state", store.ResultFilter{ExecID: "old", State: wire.StateSucceeded}, []string{"old/pc1"}, 1},
			{"execution and pc", store.ResultFilter{ExecID: "new", PCID: "pc2"}, []string{"new/pc2"}, 1},
			{"paging", store.ResultFilter{Limit: 2, Offset: 1}, []string{"new/pc2", "old/PC3"}, 6},
			{"none", store.ResultFilter{ExecID: "nope"}, []string{}, 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				rs, total, err := s.Results(ctx, tt.f)
				if err != nil {
					t.Fatal(err)
				}
				got := []string{}
				for _, r := range rs {
					got = append(got, key(r))
				}
				if diff := cmp.Diff(tt.want, got); diff != "" || total != tt.total {
					t.Errorf("Results(%+v) total %d, want %d; (-want +got):\n%s", tt.f, total, tt.total, diff)
				}
			})
		}
	})
}

// BenchmarkApplyResults10k measures applying 10,000 final results for an
// execution whose 10,000 targets are pending: in one call, and in batches
// as the projector commits them (each a transaction with its status
// refresh). Results arrive in no particular order (shuffled, as agents
// answer) with make bench's 256 bytes of output: each batch rewrites
// every page it touches, so the batch size sets how many pages a round
// writes to the WAL.
func BenchmarkApplyResults10k(b *testing.B) {
	for _, batch := range []int{10000, 2000, 500} {
		b.Run(fmt.Sprintf("batch%d", batch), func(b *testing.B) {
			forEachBench(b, func(b *testing.B, s *store.Store) {
				// Cancellable, as the projector's is (drivers watch such a context).
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				ids := pcs(10000)
				rs := make([]wire.Result, len(ids))
				out := strings.Repeat("simulated output of a PC\n", 11)[:256]
				rng := rand.New(rand.NewPCG(1, 2))
				for i := 0; b.Loop(); i++ {
					b.StopTimer()
					exec := fmt.Sprintf("bench%d", i)
					if err := s.CreateExecution(ctx, execution(exec, t0), ids); err != nil {
						b.Fatal(err)
					}
					for j, pc := range ids {
						rs[j] = wire.Result{ExecID: exec, PCID: pc, State: wire.StateSucceeded, ExitCode: exit(0),
							Stdout: out, StartedAt: t0, FinishedAt: t0.Add(time.Second)}
					}
					rng.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] })
					b.StartTimer()
					for k := 0; k < len(rs); k += batch {
						if _, err := s.ApplyResults(ctx, rs[k:k+batch], t0.Add(time.Minute)); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		})
	}
}

// BenchmarkCreateExecution10k measures recording an execution with its
// 10,000 pending targets (what POST /api/run does before it publishes).
func BenchmarkCreateExecution10k(b *testing.B) {
	forEachBench(b, func(b *testing.B, s *store.Store) {
		ctx := context.Background()
		ids := pcs(10000)
		for i := 0; b.Loop(); i++ {
			if err := s.CreateExecution(ctx, execution(fmt.Sprintf("bench%d", i), t0), ids); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestApplyResults_StatementShapes applies runs of rows that take every
// statement shape of the SQLite upsert (64, 16, 4 and 1 rows: 85 = one of
// each) next to executions whose rows do not change: only the executions
// that changed are reported.
func TestApplyResults_StatementShapes(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		many, few := pcs(85), pcs(3)
		mustCreate(t, s, execution("a", t0), many...)
		mustCreate(t, s, execution("b", t0), few...)
		mustCreate(t, s, execution("c", t0), few...)
		final := func(exec string, ids []string, st wire.State) []wire.Result {
			var rs []wire.Result
			for _, pc := range ids {
				rs = append(rs, wire.Result{ExecID: exec, PCID: pc, State: st, ExitCode: exit(0), Stdout: exec + "/" + pc})
			}
			return rs
		}
		first := append(final("a", many, wire.StateSucceeded), final("b", few, wire.StateFailed)...)
		if diff := cmp.Diff([]string{"a", "b"}, mustApply(t, s, t0.Add(time.Minute), first...)); diff != "" {
			t.Errorf("touched (-want +got):\n%s", diff)
		}
		// The same reports again (final rows stay as they are) and c's first.
		again := append(append(final("a", many, wire.StateFailed), final("c", few, wire.StateSucceeded)...), final("b", few, wire.StateSucceeded)...)
		if diff := cmp.Diff([]string{"c"}, mustApply(t, s, t0.Add(2*time.Minute), again...)); diff != "" {
			t.Errorf("touched by repeats (-want +got):\n%s", diff)
		}
		for _, pc := range many {
			if r := mustResult(t, s, "a", pc); r.State != wire.StateSucceeded || r.Stdout != "a/"+pc {
				t.Errorf("a/%s = %s %q, want succeeded %q", pc, r.State, r.Stdout, "a/"+pc)
			}
		}
		if e := mustExecution(t, s, "a"); e.Counts != (store.Counts{Succeeded: 85}) || e.Status != store.StatusCompleted {
			t.Errorf("a = %s %+v", e.Status, e.Counts)
		}
		if e := mustExecution(t, s, "c"); e.Counts != (store.Counts{Succeeded: 3}) {
			t.Errorf("c = %s %+v", e.Status, e.Counts)
		}
	})
}

// A report from a PC that is not a target of the execution is dropped: an
// agent cannot add itself to an execution, add failures to it or reopen
// it once it is finished.
func TestApplyResults_OnlyTargets(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		mustCreate(t, s, execution("e", t0), "pc1")
		mustApply(t, s, t0.Add(time.Minute),
			wire.Result{ExecID: "e", PCID: "pc1", State: wire.StateSucceeded, ExitCode: exit(0)},
			wire.Result{ExecID: "e", PCID: "intruder", State: wire.StateFailed, ExitCode: exit(1)})
		if e := mustExecution(t, s, "e"); e.Status != store.StatusCompleted {
			t.Fatalf("status = %s, want completed", e.Status)
		}
		mustApply(t, s, t0.Add(2*time.Minute), wire.Result{ExecID: "e", PCID: "intruder", State: wire.StateRunning})
		if e := mustExecution(t, s, "e"); e.Status != store.StatusCompleted {
			t.Errorf("a stranger's running report reopened the execution: %s", e.Status)
		}
		rs, n, err := s.Results(ctx, store.ResultFilter{ExecID: "e"})
		if err != nil || n != 1 || rs[0].PCID != "pc1" {
			t.Errorf("results of e = %+v (%d), %v; want pc1's only", rs, n, err)
		}
	})
}
