package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

func TestUpsertAgents(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		first := agent("pc1", t0, "wave1", "canary", "canary")
		mustUpsert(t, s, first, agent("pc2", t0, "canary"))

		got, err := s.Agent(ctx, "pc1")
		if err != nil {
			t.Fatal(err)
		}
		want := first
		want.Groups = []string{"canary", "wave1"}
		want.FirstSeen = t0
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Agent after insert (-want +got):\n%s", diff)
		}

		// A later heartbeat replaces everything but FirstSeen, groups included.
		later := agent("pc1", t0.Add(time.Minute), "wave2")
		later.FirstSeen = t0.Add(time.Minute) // ignored on update
		later.AgentVersion = "1.1.0"
		later.Running = 2
		later.OfflineAfter = later.LastSeen // stopping
		mustUpsert(t, s, later)
		got, err = s.Agent(ctx, "pc1")
		if err != nil {
			t.Fatal(err)
		}
		want = later
		want.FirstSeen = t0
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Agent after update (-want +got):\n%s", diff)
		}

		// An older report changes nothing; within one call the latest counts.
		mustUpsert(t, s, agent("pc1", t0, "stale"),
			agent("pc2", t0.Add(2*time.Minute), "b"), agent("pc2", t0.Add(time.Minute), "a"))
		got, err = s.Agent(ctx, "pc1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Agent after a stale report (-want +got):\n%s", diff)
		}
		got, err = s.Agent(ctx, "pc2")
		if err != nil {
			t.Fatal(err)
		}
		if !got.LastSeen.Equal(t0.Add(2*time.Minute)) || !slices.Equal(got.Groups, []string{"b"}) {
			t.Errorf("pc2 = last seen %v, groups %v; want %v, [b]", got.LastSeen, got.Groups, t0.Add(2*time.Minute))
		}

		// Leaving every group.
		mustUpsert(t, s, agent("pc2", t0.Add(3*time.Minute)))
		if got, err := s.Agent(ctx, "pc2"); err != nil || got.Groups != nil {
			t.Errorf("pc2 after leaving its groups = %v, %v; want no groups", got.Groups, err)
		}

		// Defaults: FirstSeen = LastSeen, OfflineAfter = LastSeen + 3×Interval.
		bare := store.Agent{PCID: "bare", LastSeen: t0, Interval: 10 * time.Second}
		mustUpsert(t, s, bare)
		got, err = s.Agent(ctx, "bare")
		if err != nil {
			t.Fatal(err)
		}
		if !got.FirstSeen.Equal(t0) || !got.OfflineAfter.Equal(t0.Add(30*time.Second)) || got.Groups != nil {
			t.Errorf("bare = first %v, offline after %v, groups %v", got.FirstSeen, got.OfflineAfter, got.Groups)
		}

		if err := s.UpsertAgents(ctx, []store.Agent{{PCID: "x"}}); err == nil {
			t.Error("UpsertAgents without LastSeen = nil error, want one")
		}
		if err := s.UpsertAgents(ctx, nil); err != nil {
			t.Errorf("UpsertAgents(nil) = %v", err)
		}
	})
}

func TestUpsertAgents_Many(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		var as []store.Agent
		for i, pc := range pcs(1234) {
			gs := []string{"all"}
			if i%2 == 0 {
				gs = append(gs, "even")
			}
			as = append(as, agent(pc, t0, gs...))
		}
		mustUpsert(t, s, as...)
		mustUpsert(t, s, as...)
		_, total, err := s.Agents(ctx, store.AgentFilter{Group: "even"})
		if err != nil {
			t.Fatal(err)
		}
		if total != 617 {
			t.Errorf("agents in group even = %d, want 617", total)
		}
	})
}

func TestAgents_Filter(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := t0.Add(time.Minute)
		on := func(a store.Agent) store.Agent { a.LastSeen, a.OfflineAfter = now, now.Add(time.Minute); return a }
		off := func(a store.Agent) store.Agent { a.LastSeen, a.OfflineAfter = t0, now; return a }
		linux := func(a store.Agent) store.Agent { a.OS = "linux"; return a }
		host := func(h string, a store.Agent) store.Agent { a.Hostname = h; return a }
		mustUpsert(t, s,
			on(agent("PC-B", t0, "canary")),
			off(agent("pc-a", t0, "canary", "wave1")),
			on(linux(agent("pc_a", t0, "wave1"))),
			off(linux(agent("pc10", t0))),
			on(host("Reception-Desk", agent("pc2", t0, "front"))),
			on(host("100%_sure", agent("srv1", t0))),
		)
		tests := []struct {
			name  string
			f     store.AgentFilter
			want  []string
			total int
		}{
			{"all, byte order", store.AgentFilter{}, []string{"PC-B", "pc-a", "pc10", "pc2", "pc_a", "srv1"}, 6},
			{"q pc_id case-insensitive", store.AgentFilter{Q: "pc-"}, []string{"PC-B", "pc-a"}, 2},
			{"q hostname", store.AgentFilter{Q: "desk"}, []string{"pc2"}, 1},
			{"q underscore is literal", store.AgentFilter{Q: "c_"}, []string{"pc_a"}, 1},
			{"q percent is literal", store.AgentFilter{Q: "0%_s"}, []string{"srv1"}, 1},
			{"q no match", store.AgentFilter{Q: "zzz"}, []string{}, 0},
			{"group", store.AgentFilter{Group: "wave1"}, []string{"pc-a", "pc_a"}, 2},
			{"online", store.AgentFilter{Status: store.AgentOnline, Now: now}, []string{"PC-B", "pc2", "pc_a", "srv1"}, 4},
			{"offline (at OfflineAfter)", store.AgentFilter{Status: store.AgentOffline, Now: now}, []string{"pc-a", "pc10"}, 2},
			{"os", store.AgentFilter{OS: "linux"}, []string{"pc10", "pc_a"}, 2},
			{"combined", store.AgentFilter{Group: "wave1", Status: store.AgentOnline, OS: "linux", Q: "PC", Now: now}, []string{"pc_a"}, 1},
			{"paging", store.AgentFilter{Limit: 2, Offset: 2}, []string{"pc10", "pc2"}, 6},
			{"offset past the end", store.AgentFilter{Offset: 10}, []string{}, 6},
			{"negative paging", store.AgentFilter{Limit: -1, Offset: -5}, []string{"PC-B", "pc-a", "pc10", "pc2", "pc_a", "srv1"}, 6},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				as, total, err := s.Agents(ctx, tt.f)
				if err != nil {
					t.Fatal(err)
				}
				got := []string{}
				for _, a := range as {
					got = append(got, a.PCID)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" || total != tt.total {
					t.Errorf("Agents(%+v) total %d, want %d; ids (-want +got):\n%s", tt.f, total, tt.total, diff)
				}
			})
		}
		as, _, err := s.Agents(ctx, store.AgentFilter{Q: "pc-a"})
		if err != nil || len(as) != 1 || !slices.Equal(as[0].Groups, []string{"canary", "wave1"}) {
			t.Errorf("Agents(q=pc-a) = %+v, %v; want pc-a with groups [canary wave1]", as, err)
		}
		if _, _, err := s.Agents(ctx, store.AgentFilter{Status: "sleeping"}); err == nil {
			t.Error("Agents(status=sleeping) = nil error, want one")
		}
	})
}

func TestAgents_LimitClamp(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		var as []store.Agent
		for _, pc := range pcs(1001) {
			as = append(as, agent(pc, t0))
		}
		mustUpsert(t, s, as...)
		for _, tt := range []struct{ limit, want int }{{0, store.DefaultLimit}, {5000, store.MaxLimit}, {7, 7}} {
			got, total, err := s.Agents(ctx, store.AgentFilter{Limit: tt.limit})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want || total != 1001 {
				t.Errorf("Agents(limit %d) = %d agents, total %d; want %d, 1001", tt.limit, len(got), total, tt.want)
			}
		}
	})
}

func TestAgentCountsAndGroups(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		online, total, err := s.AgentCounts(ctx, t0)
		if err != nil || online != 0 || total != 0 {
			t.Errorf("AgentCounts on an empty store = %d, %d, %v; want 0, 0, nil", online, total, err)
		}
		gs, err := s.Groups(ctx)
		if err != nil || len(gs) != 0 {
			t.Errorf("Groups on an empty store = %v, %v; want none", gs, err)
		}
		mustUpsert(t, s, agent("a", t0, "z-last", "A"), agent("b", t0.Add(time.Minute), "A", "m_mid"), agent("c", t0.Add(2*time.Minute)))
		online, total, err = s.AgentCounts(ctx, t0.Add(2*time.Minute))
		if err != nil || online != 2 || total != 3 {
			t.Errorf("AgentCounts = %d, %d, %v; want 2, 3, nil", online, total, err)
		}
		gs, err = s.Groups(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"A", "m_mid", "z-last"}, gs); diff != "" {
			t.Errorf("Groups (-want +got):\n%s", diff)
		}
	})
}

func TestResolveTarget(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := t0.Add(time.Minute)
		mustUpsert(t, s,
			agent("pc1", now, "canary", "wave1"),
			agent("pc2", now, "wave1"),
			agent("pc3", t0.Add(-time.Hour), "wave2"), // offline
			agent("pc4", now),
		)
		tests := []struct {
			name       string
			all        bool
			groups     []string
			pcs        []string
			want       []string
			wantOnline int
		}{
			{"nothing", false, nil, nil, []string{}, 0},
			{"all", true, nil, nil, []string{"pc1", "pc2", "pc3", "pc4"}, 3},
			{"all plus unknown pc", true, []string{"wave1"}, []string{"pc1", "new"}, []string{"new", "pc1", "pc2", "pc3", "pc4"}, 3},
			{"one group", false, []string{"canary"}, nil, []string{"pc1"}, 1},
			{"overlapping groups", false, []string{"wave1", "canary", "wave2", "wave1"}, nil, []string{"pc1", "pc2", "pc3"}, 2},
			{"unknown group", false, []string{"nope"}, nil, []string{}, 0},
			{"groups and pcs overlap", false, []string{"wave1"}, []string{"pc2", "pc3", "pc3"}, []string{"pc1", "pc2", "pc3"}, 2},
			{"unknown pcs", false, nil, []string{"zz", "pc4", "aa"}, []string{"aa", "pc4", "zz"}, 1},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, online, err := s.ResolveTarget(ctx, tt.all, tt.groups, tt.pcs, now)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" || online != tt.wantOnline {
					t.Errorf("ResolveTarget online = %d, want %d; pcs (-want +got):\n%s", online, tt.wantOnline, diff)
				}
			})
		}
	})
}

// fleet returns n agents, a third of them offline at t0, in groups "all"
// and one of ten waves.
func fleet(n int) []store.Agent {
	as := make([]store.Agent, n)
	for i, pc := range pcs(n) {
		a := agent(pc, t0, "all", fmt.Sprintf("wave%d", i%10))
		if i%3 == 0 {
			a.OfflineAfter = t0
		}
		as[i] = a
	}
	return as
}

// BenchmarkUpsertAgents10k measures one heartbeat batch of 10,000 agents
// that are already known.
func BenchmarkUpsertAgents10k(b *testing.B) {
	forEachBench(b, func(b *testing.B, s *store.Store) {
		ctx := context.Background()
		as := fleet(10000)
		mustUpsert(b, s, as...)
		for i := 0; b.Loop(); i++ {
			for j := range as {
				as[j].LastSeen = t0.Add(time.Duration(i+1) * time.Second)
			}
			if err := s.UpsertAgents(ctx, as); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAgents10k measures one agents page (search, group, status and
// total) over 10,000 agents.
func BenchmarkAgents10k(b *testing.B) {
	forEachBench(b, func(b *testing.B, s *store.Store) {
		ctx := context.Background()
		mustUpsert(b, s, fleet(10000)...)
		f := store.AgentFilter{Q: "PC0", Group: "wave3", Status: store.AgentOnline, Now: t0, Offset: 100}
		for b.Loop() {
			as, total, err := s.Agents(ctx, f)
			if err != nil || len(as) != store.DefaultLimit || total != 666 {
				b.Fatalf("Agents = %d agents, total %d, %v", len(as), total, err)
			}
		}
	})
}

// BenchmarkResolveTarget10k measures resolving "all" and a group to
// their agents, as POST /api/run does before it records the targets.
func BenchmarkResolveTarget10k(b *testing.B) {
	forEachBench(b, func(b *testing.B, s *store.Store) {
		ctx := context.Background()
		mustUpsert(b, s, fleet(10000)...)
		for b.Loop() {
			pcs, _, err := s.ResolveTarget(ctx, true, nil, nil, t0)
			if err != nil || len(pcs) != 10000 {
				b.Fatalf("ResolveTarget(all) = %d agents, %v", len(pcs), err)
			}
			if pcs, _, err = s.ResolveTarget(ctx, false, []string{"wave3"}, nil, t0); err != nil || len(pcs) == 0 {
				b.Fatalf("ResolveTarget(wave3) = %d agents, %v", len(pcs), err)
			}
		}
	})
}

// forEachBench runs fn on SQLite and, when KANADE_TEST_POSTGRES_DSN is set,
// on PostgreSQL.
func forEachBench(b *testing.B, fn func(b *testing.B, s *store.Store)) {
	b.Run("sqlite", func(b *testing.B) { fn(b, storetest.New(b)) })
	if dsn := os.Getenv(storetest.PostgresEnv); dsn != "" {
		b.Run("postgres", func(b *testing.B) { fn(b, storetest.NewPostgres(b, dsn)) })
	}
}

func TestTouchAgents(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		a := agent("pc1", t0, "canary")
		a.RSSBytes, a.CPUPercent = 10<<20, 1.5
		mustUpsert(t, s, a, agent("pc2", t0, "wave1"))

		t1 := t0.Add(30 * time.Second)
		missed, err := s.TouchAgents(ctx, []store.Seen{
			{PCID: "pc1", LastSeen: t1, OfflineAfter: t1.Add(90 * time.Second), Running: 2, RSSBytes: 12 << 20, CPUPercent: 0.25},
			{PCID: "pc1", LastSeen: t0.Add(10 * time.Second), OfflineAfter: t0}, // older, same call: the newest counts
			{PCID: "ghost", LastSeen: t1, OfflineAfter: t1},                     // not in the table
			{PCID: "pc2", LastSeen: t0.Add(-time.Minute), OfflineAfter: t0},     // older than stored
		})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"ghost", "pc2"}, missed); diff != "" {
			t.Errorf("missed (-want +got):\n%s", diff)
		}
		got, err := s.Agent(ctx, "pc1")
		if err != nil {
			t.Fatal(err)
		}
		want := a
		want.FirstSeen = t0
		want.Groups = []string{"canary"}
		want.LastSeen, want.OfflineAfter, want.Running, want.RSSBytes, want.CPUPercent = t1, t1.Add(90*time.Second), 2, 12<<20, 0.25
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("pc1 after touch (-want +got):\n%s", diff)
		}
		if got, err := s.Agent(ctx, "pc2"); err != nil || !got.LastSeen.Equal(t0) {
			t.Errorf("pc2 after a stale touch = last seen %v, %v; want %v", got.LastSeen, err, t0)
		}
		if _, err := s.Agent(ctx, "ghost"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ghost after touch: %v, want ErrNotFound (touch never inserts)", err)
		}

		// More than one statement's worth.
		var many []store.Agent
		var seen []store.Seen
		for i := range 1203 {
			pc := fmt.Sprintf("m%04d", i)
			many = append(many, agent(pc, t0))
			seen = append(seen, store.Seen{PCID: pc, LastSeen: t1, OfflineAfter: t1.Add(time.Minute)})
		}
		mustUpsert(t, s, many...)
		if missed, err := s.TouchAgents(ctx, seen); err != nil || len(missed) != 0 {
			t.Fatalf("touch 1203 = missed %v, %v", missed, err)
		}
		if got, err := s.Agent(ctx, "m1202"); err != nil || !got.LastSeen.Equal(t1) {
			t.Errorf("m1202 = last seen %v, %v; want %v", got.LastSeen, err, t1)
		}
		if missed, err := s.TouchAgents(ctx, nil); err != nil || missed != nil {
			t.Errorf("TouchAgents(nil) = %v, %v", missed, err)
		}
	})
}

// TestUpsertAgents_User: the logged-on user a heartbeat reports is stored
// and replaced by the next report, also when nobody is logged on any more.
func TestUpsertAgents_User(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		a := agent("pc1", t0)
		a.User = `CORP\alice`
		mustUpsert(t, s, a)
		if got, err := s.Agent(ctx, "pc1"); err != nil || got.User != `CORP\alice` {
			t.Fatalf("Agent(pc1).User = %q, %v; want CORP\\alice", got.User, err)
		}
		a.LastSeen, a.User = t0.Add(time.Minute), ""
		mustUpsert(t, s, a)
		as, _, err := s.Agents(ctx, store.AgentFilter{Now: t0})
		if err != nil || len(as) != 1 || as[0].User != "" {
			t.Errorf("Agents after logoff = %+v, %v; want the user gone", as, err)
		}
	})
}
