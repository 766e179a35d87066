package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kanadehq/kanade/app/config"
)

// metricsText returns the /metrics page.
func (s *testServer) metricsText(t testing.TB) string {
	t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d, %v", resp.StatusCode, err)
	}
	return string(b)
}

// hasLines reports the first of want that is not a line of text.
func hasLines(text string, want ...string) error {
	have := map[string]bool{}
	for _, l := range strings.Split(text, "\n") {
		have[l] = true
	}
	for _, w := range want {
		if !have[w] {
			return fmt.Errorf("/metrics has no line %q", w)
		}
	}
	return nil
}

// TestIntegration_Metrics runs one script on one agent and reads the
// product metrics and the agent's own resources off a real server.
func TestIntegration_Metrics(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	startAgent(t, s, "pc1", nil, "")
	s.waitOnline(t, "pc1")
	e := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"pc1"}}, "shell": "sh",
		"script": "sleep 0.5; echo hi", "timeout": "30s"})
	s.waitExec(t, e.ExecID, completed)

	// The running (the script outlasts the agent's 100 ms before it
	// reports running) and final results are both committed; the
	// projectors drain their consumers.
	checkFor(t, 20*time.Second, func() error {
		return hasLines(s.metricsText(t),
			"kanade_agents_online 1",
			"kanade_agents_total 1",
			`kanade_executions{status="completed"} 1`,
			`kanade_projector_pending_messages{consumer="results-projector"} 0`,
			`kanade_projector_pending_messages{consumer="audit-projector"} 0`,
			"kanade_nats_connected 1",
			"kanade_sse_clients 0",
		)
	})
	text := s.metricsText(t)
	// Running and final: at least 2 (a redelivered result counts again).
	var ingested float64
	if i := strings.Index(text, "\nkanade_results_ingested_total "); i < 0 {
		t.Error("/metrics has no kanade_results_ingested_total")
	} else if _, err := fmt.Sscan(text[i+len("\nkanade_results_ingested_total "):], &ingested); err != nil || ingested < 2 {
		t.Errorf("kanade_results_ingested_total = %v (%v), want at least 2", ingested, err)
	}
	for _, want := range []string{
		`kanade_http_request_duration_seconds_count{code="200",method="GET",route="/api/executions/:id"}`,
		`kanade_http_request_duration_seconds_count{code="202",method="POST",route="/api/run"}`,
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics has no %q", want)
		}
	}
	if strings.Contains(text, `route="/metrics"`) || strings.Contains(text, "/api/executions/"+e.ExecID) {
		t.Error("/metrics labels a request by /metrics itself or by a raw URL")
	}

	var a struct {
		RSS float64 `json:"agent_rss_bytes"`
	}
	if code := s.get(t, "/api/agents/pc1", &a); code != http.StatusOK || a.RSS < 1<<20 {
		t.Errorf("GET /api/agents/pc1 = %d, agent_rss_bytes %v; want a plausible RSS", code, a.RSS)
	}
}

// TestIntegration_MetricsTokenAndListener: with sign-in configured, the web
// listener's /metrics needs the metrics token (or an API token), and the
// metrics listener serves it without one.
func TestIntegration_MetricsTokenAndListener(t *testing.T) {
	skipIfShort(t)
	const token = "scrape-0123456789abcdef0123"
	metricsAddr := freeAddr(t)
	s, _ := startOIDCServer(t, func(c *config.Config) {
		c.Metrics.Token = token
		c.Metrics.Listen = metricsAddr
	})
	apiToken := cliToken(t, s, "viewer", "grafana")
	get := func(url, bearer string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		name, url, bearer string
		wantStatus        int
	}{
		{"web listener without a token", s.URL + "/metrics", "", http.StatusUnauthorized},
		{"web listener with the metrics token", s.URL + "/metrics", token, http.StatusOK},
		{"web listener with an API token", s.URL + "/metrics", apiToken, http.StatusOK},
		{"metrics listener without a token", "http://" + metricsAddr + "/metrics", "", http.StatusOK},
		{"metrics listener serves nothing else", "http://" + metricsAddr + "/api/agents", "", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := get(tt.url, tt.bearer)
			if code != tt.wantStatus {
				t.Fatalf("GET %s = %d, want %d: %.300s", tt.url, code, tt.wantStatus, body)
			}
			if code == http.StatusOK && !strings.Contains(body, "kanade_agents_total") {
				t.Errorf("GET %s has no kanade metrics", tt.url)
			}
		})
	}
}
