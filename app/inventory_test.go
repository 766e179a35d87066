package main

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/kanadehq/kanade/agent/inventory"
	"github.com/kanadehq/kanade/agent/worker"
)

// An agent collects this machine's real inventory at start; the server
// projects it, the API and the agent page show it, and Refresh inventory
// brings a new report.
func TestInventory_AgentToPages(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	startAgentWith(t, s, "inv1", []string{"lab"}, "", func(c *worker.Config) {
		c.Inventory, c.InventoryInterval = inventory.Collect, time.Hour
		c.Jitter = func(time.Duration) time.Duration { return 0 }
	})
	s.waitOnline(t, "inv1")
	type agentInv struct {
		Inventory *struct {
			CollectedAt time.Time `json:"collected_at"`
			RAMBytes    int64     `json:"ram_bytes"`
			OS          struct{ Name string }
			Disks       []struct{ Mount string }
			Network     []struct{ Name string }
			Software    []struct{ Name string }
		} `json:"inventory"`
	}
	var a agentInv
	checkFor(t, 60*time.Second, func() error {
		a = agentInv{}
		s.get(t, "/api/agents/inv1", &a)
		if a.Inventory == nil {
			return fmt.Errorf("no inventory yet")
		}
		return nil
	})
	inv := a.Inventory
	if inv.OS.Name == "" || inv.RAMBytes <= 0 || len(inv.Disks) == 0 || len(inv.Network) == 0 {
		t.Errorf("inventory of this machine = %+v", inv)
	}
	first := inv.CollectedAt
	resp, err := http.Get(s.URL + "/agents/inv1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("agent page: %d", resp.StatusCode)
	}
	if code := s.post(t, "/api/agents/inv1/inventory", map[string]any{}, nil); code != http.StatusAccepted {
		t.Fatalf("refresh: %d", code)
	}
	checkFor(t, 60*time.Second, func() error {
		a = agentInv{}
		s.get(t, "/api/agents/inv1", &a)
		if a.Inventory == nil || !a.Inventory.CollectedAt.After(first) {
			return fmt.Errorf("no new report after the refresh")
		}
		return nil
	})
	if len(inv.Software) > 0 {
		var list struct{ Total int }
		s.get(t, "/api/agents?software="+url.QueryEscape(inv.Software[0].Name), &list)
		if list.Total != 1 {
			t.Errorf("software search for %q found %d agents", inv.Software[0].Name, list.Total)
		}
	}
}

// Ping measures the round trip to an agent; an agent that is gone does
// not answer.
func TestPing(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	a := startAgent(t, s, "ping1", nil, "")
	s.waitOnline(t, "ping1")
	var ok struct {
		PCID  string  `json:"pc_id"`
		RTTMS float64 `json:"rtt_ms"`
	}
	if code := s.post(t, "/api/agents/ping1/ping", map[string]any{}, &ok); code != 200 || ok.PCID != "ping1" || ok.RTTMS <= 0 {
		t.Errorf("ping: %d %+v", code, ok)
	}
	t.Logf("ping round trip %.1f ms", ok.RTTMS)
	a.stop()
	var bad struct {
		Error struct{ Code string } `json:"error"`
	}
	if code := s.post(t, "/api/agents/ping1/ping", map[string]any{}, &bad); code != http.StatusGatewayTimeout || bad.Error.Code != "no_answer" {
		t.Errorf("ping a stopped agent: %d %+v", code, bad)
	}
}
