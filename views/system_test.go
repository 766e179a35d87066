package views

import (
	"strings"
	"testing"
)

func TestPage_HealthBanner(t *testing.T) {
	tests := []struct {
		name      string
		l         Layout
		wantClass string // "" : no banner
		wantLink  bool
	}{
		{"healthy", Layout{Role: "viewer"}, "", false},
		{"disk filling up, viewer", Layout{Role: "viewer", Health: "disk: 85% full", HealthLevel: "warning"}, "banner banner-warn", false},
		{"cannot store, admin", Layout{Role: "admin", Health: "disk: full", HealthLevel: "unavailable", HealthURL: "/system"}, "banner banner-danger", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, doc := render(t, ErrorPage(tt.l, ErrorModel{Title: "x"}))
			banners := find(doc, byAttr("data-testid", "health-banner"))
			if tt.wantClass == "" {
				if len(banners) != 0 {
					t.Fatalf("%d health banners, want none", len(banners))
				}
				return
			}
			if len(banners) != 1 {
				t.Fatalf("%d health banners, want 1", len(banners))
			}
			b := banners[0]
			if class, _ := attr(b, "class"); class != tt.wantClass {
				t.Errorf("class %q, want %q", class, tt.wantClass)
			}
			if !strings.Contains(text(b), tt.l.Health) {
				t.Errorf("banner %q does not say %q", text(b), tt.l.Health)
			}
			if links := find(b, byAttr("href", "/system")); (len(links) == 1) != tt.wantLink {
				t.Errorf("%d links to /system, want %v", len(links), tt.wantLink)
			}
		})
	}
}

func TestSystemPage(t *testing.T) {
	m := SystemModel{Status: "unavailable", Problems: []string{"disk: the volume of data (/d) is full: 0 B free of 1 GiB"}, WarnPercent: 80,
		Volumes: []VolumeRow{{Path: "/d", Roles: "data, nats", Total: "1 GiB", Free: "0 B", UsedPercent: 100, Status: "unavailable"}},
		Streams: []StreamRow{
			{Name: "RESULTS", Kind: "stream", Messages: "3", Bytes: "1 KiB", Limit: "51 MiB", Setting: "[streams] results_max_bytes (auto)", Leader: "this server", WriteError: "no space left on device", Consumers: 1},
			{Name: "KV_fleet", Kind: "bucket", Messages: "1", Bytes: "292 B", Limit: "2 MiB", Leader: "this server"},
		},
		Consumers: []ConsumerRow{{Stream: "RESULTS", Name: "results-projector", Pending: "3", AckPending: "0", Leader: "this server"}},
		Broker:    BrokerFacts{Embedded: true, StoreDir: "/d/nats", Reserved: "300 MiB", MaxStore: "300 MiB", Headroom: "64 MiB", Restarts: 2},
		Database:  DatabaseFacts{Driver: "sqlite", Size: "296 KiB"},
		Leaders:   []LeaderRow{{Work: "scheduler", Replica: "this server"}},
	}
	_, doc := render(t, SystemPage(Layout{Nav: "system", Role: "admin"}, m))
	ids := testids(doc)
	for id, want := range map[string]int{"system-status": 1, "system-problems": 1, "volume-row": 1, "stream-row": 2, "consumer-row": 1, "leader-row": 1, "reserved": 1, "jetstream-restarts": 1} {
		if ids[id] != want {
			t.Errorf("%s: %d, want %d", id, ids[id], want)
		}
	}
	rows := find(doc, byAttr("data-stream", "RESULTS"))
	if len(rows) != 1 || !strings.Contains(text(rows[0]), "write error") || !strings.Contains(text(rows[0]), "results_max_bytes (auto)") {
		t.Errorf("RESULTS row: %q", text(rows[0]))
	}
}
