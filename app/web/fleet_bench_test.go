package web_test

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/web"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

// seedFleet stores n agents with realistic inventories: Windows 10/11,
// Server and Ubuntu templates, 2 disks, 1–2 NICs and 80–200 packages out
// of a pool of 3,000 names.
func seedFleet(tb testing.TB, st *store.Store, n int) {
	tb.Helper()
	ctx := tb.Context()
	now := time.Now().UTC()
	rng := rand.New(rand.NewPCG(1, 2))
	pool := make([]string, 3000)
	vendors := []string{"Google", "Microsoft", "Mozilla", "Adobe", "Oracle", "7-Zip", "Zoom", "Citrix", "VMware", "Canonical"}
	for i := range pool {
		pool[i] = fmt.Sprintf("%s Product %04d", vendors[i%len(vendors)], i)
	}
	pool[7], pool[42] = "Google Chrome", "Mozilla Firefox"
	oses := []wire.OSInfo{
		{Name: "Microsoft Windows 11 Pro", Version: "10.0.22631", Build: "22631.2715", Kind: wire.KindWorkstation},
		{Name: "Microsoft Windows 10 Enterprise", Version: "10.0.19045", Build: "19045.3693", Kind: wire.KindWorkstation},
		{Name: "Microsoft Windows Server 2022 Standard", Version: "10.0.20348", Kind: wire.KindServer},
		{Name: "Ubuntu 24.04.1 LTS", Version: "24.04", Release: "noble", Kind: wire.KindWorkstation},
	}
	const batch = 200
	for start := 0; start < n; start += batch {
		var agents []store.Agent
		var invs []wire.Inventory
		for i := start; i < min(start+batch, n); i++ {
			pc := fmt.Sprintf("pc-%05d", i)
			osi := oses[i%len(oses)]
			goos := "windows"
			if osi.Name[0] == 'U' {
				goos = "linux"
			}
			agents = append(agents, store.Agent{PCID: pc, Hostname: pc + ".corp.example", OS: goos, OSVersion: osi.Version, Arch: "amd64",
				AgentVersion: []string{"1.4.0", "1.4.1", "1.5.0"}[i%3], Protocol: wire.ProtocolVersion, Groups: []string{"site-" + strconv.Itoa(i%20)},
				Interval: 30 * time.Second, LastSeen: now, OfflineAfter: now.Add(time.Duration(i%2) * time.Hour)})
			inv := wire.Inventory{PCID: pc, CollectedAt: now, OS: osi,
				Hardware: wire.Hardware{Manufacturer: "LENOVO", Model: "20XW", CPUModel: "Intel(R) Core(TM) i7-1185G7", CPUCores: 4, CPULogical: 8, RAMBytes: 16 << 30},
				Disks:    []wire.Disk{{Mount: "C:", FS: "NTFS", SizeBytes: 512 << 30, FreeBytes: int64(rng.IntN(500)) << 30}, {Mount: "D:", FS: "NTFS", SizeBytes: 1 << 40, FreeBytes: 1 << 39}},
				Network:  []wire.NIC{{Name: "Ethernet", MAC: fmt.Sprintf("00:15:5d:%02x:%02x:%02x", i>>16&255, i>>8&255, i&255), IPv4: []string{fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)}}},
				Hotfixes: []wire.Hotfix{{ID: "KB5031356", InstalledOn: "2026-11-01"}, {ID: "KB5032190", InstalledOn: "2026-11-14"}},
			}
			for _, j := range rng.Perm(len(pool))[:80+rng.IntN(120)] {
				inv.Software = append(inv.Software, wire.Package{Name: pool[j], Version: "1." + strconv.Itoa(j%10), Publisher: vendors[j%len(vendors)], InstallDate: "2026-10-01"})
			}
			invs = append(invs, inv)
		}
		if err := st.UpsertAgents(ctx, agents); err != nil {
			tb.Fatal(err)
		}
		if err := st.PutInventories(ctx, invs, now); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkFleetPages measures the server-side latency of the agents list
// (first page, a name search, an IP search, a software search, JSON) and
// of an agent page with 10,000 agents (KANADE_BENCH_AGENTS overrides) and
// their inventories in SQLite, and reports p50/p95 per request.
//
//	go test ./app/web -run '^$' -bench FleetPages -benchtime 200x
func BenchmarkFleetPages(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("KANADE_BENCH_AGENTS")); err == nil && v > 0 {
		n = v
	}
	st := storetest.New(b)
	start := time.Now()
	seedFleet(b, st, n)
	b.Logf("seeded %d agents with inventories in %s", n, time.Since(start).Round(time.Millisecond))
	srv := httptest.NewServer(web.New(web.Deps{Store: st, Log: slog.New(slog.DiscardHandler), DevMode: true}))
	defer srv.Close()
	for _, tc := range []struct{ name, path string }{
		{"agents-first-page", "/agents"},
		{"agents-search-name", "/agents?q=pc-0123"},
		{"agents-search-ip", "/agents?q=10.0.39."},
		{"agents-search-software", "/agents?software=chrome"},
		{"agents-online-site", "/agents?status=online&group=site-3"},
		{"api-agents-100", "/api/agents?limit=100"},
		{"agent-page", "/agents/pc-04567"},
		{"api-agent-inventory", "/api/agents/pc-04567"},
		{"dashboard", "/"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				t0 := time.Now()
				resp, err := http.Get(srv.URL + tc.path)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("%s: %d", tc.path, resp.StatusCode)
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
		})
	}
}

// TestFleetPages_Inventory checks the fleet pages on a small seeded fleet:
// software and IP search find the right agents, the agent page shows its
// inventory, the dashboard its breakdown.
func TestFleetPages_Inventory(t *testing.T) {
	st := storetest.New(t)
	seedFleet(t, st, 40)
	srv := httptest.NewServer(web.New(web.Deps{Store: st, Log: slog.New(slog.DiscardHandler), DevMode: true}))
	defer srv.Close()
	for _, tc := range []struct{ path, want, notWant string }{
		{"/agents?q=10.0.0.7", "pc-00007", "pc-00008"},
		{"/agents?software=zzz-no-such", "No agents match", "pc-00001"},
		{"/agents/pc-00005", "Microsoft Windows 10 Enterprise", ""},
		{"/agents/pc-00005", `<option value="powershell" selected>`, ""}, // the inline Run form, PowerShell on Windows
		{"/agents/pc-00003", `<option value="sh" selected>`, ""},         // sh on Linux
		{"/agents/pc-00005?software=product", "Product", ""},
		{"/", "Ubuntu 24.04.1 LTS", ""},
		{"/agents?os=linux", "pc-00003", "pc-00005"},
		{"/schedules", "No schedules yet", ""}, // a server without a scheduler still shows the page
		{"/api/agents/pc-00003", `"cpu_model":"Intel(R) Core(TM) i7-1185G7"`, ""},
	} {
		code, _, body := get(t, srv.URL+tc.path)
		if code != 200 || !strings.Contains(body, tc.want) || (tc.notWant != "" && strings.Contains(body, tc.notWant)) {
			t.Errorf("GET %s: %d, want %q and not %q", tc.path, code, tc.want, tc.notWant)
		}
	}
}
