package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

func TestExecutionCountsByStatus(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		got, err := s.ExecutionCountsByStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]int{}, got); diff != "" {
			t.Errorf("empty store (-want +got):\n%s", diff)
		}
		for i, id := range []string{"e1", "e2", "e3"} {
			mustCreate(t, s, execution(id, t0.Add(time.Duration(i)*time.Second)), "pc1")
		}
		if err := s.RequestKill(ctx, "e2", "alice", t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		got, err = s.ExecutionCountsByStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{string(store.StatusRunning): 2, string(store.StatusKilled): 1}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("counts (-want +got):\n%s", diff)
		}
	})
}

func TestUpsertAgents_Resources(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		a := agent("pc1", t0)
		mustUpsert(t, s, a) // an agent that does not report them
		steps := []struct {
			name     string
			lastSeen time.Time
			rss      int64
			cpu      float64
			wantRSS  int64
			wantCPU  float64
		}{
			{"first report", t0.Add(time.Second), 42 << 20, 1.5, 42 << 20, 1.5},
			{"newer report", t0.Add(2 * time.Second), 40 << 20, 0.25, 40 << 20, 0.25},
			{"older report ignored", t0.Add(time.Millisecond), 99 << 20, 99, 40 << 20, 0.25},
		}
		got, err := s.Agent(ctx, "pc1")
		if err != nil {
			t.Fatal(err)
		}
		if got.RSSBytes != 0 || got.CPUPercent != 0 {
			t.Errorf("before any report: rss %d, cpu %v; want 0, 0", got.RSSBytes, got.CPUPercent)
		}
		for _, st := range steps {
			a := agent("pc1", st.lastSeen)
			a.RSSBytes, a.CPUPercent = st.rss, st.cpu
			mustUpsert(t, s, a)
			got, err := s.Agent(ctx, "pc1")
			if err != nil {
				t.Fatal(err)
			}
			if got.RSSBytes != st.wantRSS || got.CPUPercent != st.wantCPU {
				t.Errorf("%s: rss %d, cpu %v; want %d, %v", st.name, got.RSSBytes, got.CPUPercent, st.wantRSS, st.wantCPU)
			}
		}
	})
}
