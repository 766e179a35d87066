//go:build !windows

package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kanadehq/kanade/app/config"
)

// An agent killed (SIGKILL) in the middle of a script and never brought
// back: its running targets end lost once their timeout and the grace
// have passed, /wait answers, and a rollout whose canary wave held one of
// them goes on to its next wave (one failure is within max_failures).
func TestLost_AgentKilledMidRun(t *testing.T) {
	skipIfShort(t)
	bin, err := buildBinaries()
	if err != nil {
		t.Fatal(err)
	}
	s := startServerWith(t, t.TempDir(), "", func(c *config.Config) { c.Execution.LostGrace = config.Duration(time.Second) })
	dead := startProc(t, filepath.Join(bin, "kanade-agent"), "--server", s.NATSURL, "--credentials", s.Creds,
		"--pc-id", "dead", "--groups", "canary", "--data", t.TempDir(), "--heartbeat", "1s")
	startAgent(t, s, "c-ok", []string{"canary"}, "")
	startAgent(t, s, "f1", []string{"fleet"}, "")
	s.waitOnline(t, "dead", "c-ok", "f1")

	// The dead agent's script runs until its agent is gone; the others end at once.
	script := `if [ "$KANADE_PC_ID" = dead ]; then while kill -0 $PPID 2>/dev/null; do sleep 0.2; done; fi; echo ok`
	const timeout = "8s"
	var ro execution
	yaml := fmt.Sprintf("id: lost-canary\nversion: \"1\"\ntarget:\n  groups: [canary, fleet]\nexecute:\n  shell: sh\n  script: %s\n  timeout: %s\nrollout:\n  waves:\n    - name: canary\n      group: canary\n      max_failures: 1\n    - name: fleet\n      group: fleet\n",
		shQuote(script), timeout)
	if code := s.deploy(t, yaml, &ro); code != http.StatusAccepted {
		t.Fatalf("deploy: %d %+v", code, ro)
	}
	adhoc := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"dead"}}, "shell": "sh", "script": script, "timeout": timeout})

	// Both of its targets run, and its heartbeats list them.
	for _, id := range []string{ro.ExecID, adhoc.ExecID} {
		s.waitExec(t, id, targetIn("dead", "running"))
	}
	checkFor(t, 20*time.Second, func() error {
		var a struct {
			RunningExecs []string `json:"running_execs"`
		}
		s.get(t, "/api/agents/dead", &a)
		if !slices.Contains(a.RunningExecs, ro.ExecID) || !slices.Contains(a.RunningExecs, adhoc.ExecID) {
			return fmt.Errorf("running_execs = %v", a.RunningExecs)
		}
		return nil
	})
	killedAt := time.Now()
	if err := dead.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = dead.cmd.Wait()

	// /wait answers once the target is lost (within the timeout, the
	// grace, three missed heartbeats and a sweep).
	var waited execution
	if code := s.get(t, "/api/executions/"+adhoc.ExecID+"/wait?timeout=60s", &waited); code != http.StatusOK {
		t.Fatalf("wait = %d", code)
	}
	if waited.Status != "completed" || waited.Counts["lost"] != 1 || waited.Counts["running"] != 0 {
		t.Fatalf("wait answered %s %v, want completed with the target lost", waited.Status, waited.Counts)
	}
	t.Logf("lost %s after the kill (timeout %s, grace 1s, heartbeat 1s, a sweep every 5s)", time.Since(killedAt).Round(100*time.Millisecond), timeout)
	got := s.waitExec(t, adhoc.ExecID, completed)
	if tr := got.Targets[0]; tr.State != "lost" || !strings.Contains(tr.Reason, "offline") {
		t.Errorf("target = %s %q, want lost because the agent went offline", tr.State, tr.Reason)
	}

	// The canary wave ends with one lost target (within max_failures 1)
	// and the fleet wave runs.
	r := s.waitRollout(t, ro.ExecID, "the fleet wave to finish", func(r rolloutExec) bool {
		return r.Status == "completed" && len(r.Waves) == 2 && r.Waves[1].State == "succeeded"
	})
	if r.Waves[0].State != "succeeded" || r.Waves[0].Counts["lost"] != 1 || r.Waves[0].Counts["succeeded"] != 1 || r.Waves[1].Counts["succeeded"] != 1 {
		t.Errorf("waves = %+v", r.Waves)
	}
	var lost struct {
		Results []targetResult `json:"results"`
		Total   int            `json:"total"`
	}
	if code := s.get(t, "/api/results?state=lost", &lost); code != http.StatusOK || lost.Total != 2 {
		t.Errorf("GET /api/results?state=lost = %d, %d results; want 2", code, lost.Total)
	}
}

// Twenty clients posting runs at once never get a 500: the database
// queues writes, and a write that waits too long is a 503 with
// Retry-After, which the client retries.
func TestBusy_ConcurrentRunsNo500(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	for _, pc := range []string{"l1", "l2", "l3"} {
		startAgent(t, s, pc, []string{"load"}, "")
	}
	s.waitOnline(t, "l1", "l2", "l3")
	const clients = 20
	period := 6 * time.Second
	if v, err := time.ParseDuration(os.Getenv("KANADE_TEST_LOAD_PERIOD")); err == nil { // longer by hand
		period = v
	}
	var mu sync.Mutex
	statuses := map[int]int{}
	var took []time.Duration
	var wg sync.WaitGroup
	end := time.Now().Add(period)
	for c := range clients {
		wg.Go(func() {
			body := fmt.Sprintf(`{"target":{"groups":["load"]},"shell":"sh","script":"echo %d"}`, c)
			for time.Now().Before(end) {
				start := time.Now()
				resp, err := http.Post(s.URL+"/api/run", "application/json", strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				_ = resp.Body.Close()
				mu.Lock()
				statuses[resp.StatusCode]++
				took = append(took, time.Since(start))
				mu.Unlock()
				if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
					t.Error("503 without Retry-After")
				}
			}
		})
	}
	wg.Wait()
	slices.Sort(took)
	if n := len(took); n > 0 {
		t.Logf("answers in %s: %v; latency p50 %s, p99 %s, max %s", period, statuses, took[n/2], took[n*99/100], took[n-1])
	}
	for code, n := range statuses {
		if code != http.StatusAccepted && code != http.StatusServiceUnavailable {
			t.Errorf("%d answers with status %d", n, code)
		}
	}
	if statuses[http.StatusAccepted] == 0 {
		t.Error("no run was accepted")
	}
	// Every accepted run completes.
	checkFor(t, 60*time.Second+5*period, func() error {
		var list struct {
			Total int `json:"total"`
		}
		if code := s.get(t, "/api/executions?status=running&limit=1", &list); code != http.StatusOK || list.Total != 0 {
			return fmt.Errorf("%d executions still running (status %d)", list.Total, code)
		}
		return nil
	})
}

// A graceful shutdown answers a pending /wait with 503 and Retry-After,
// and logs no error for it.
func TestShutdown_WaitAnswers503(t *testing.T) {
	skipIfShort(t)
	var logs syncBuffer
	s := startServerLogged(t, t.TempDir(), "", nil, slog.New(slog.NewTextHandler(&logs, nil)))
	startAgent(t, s, "w1", nil, "")
	s.waitOnline(t, "w1")
	e := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"w1"}}, "shell": "sh", "script": "sleep 30", "timeout": "60s"})
	s.waitExec(t, e.ExecID, targetIn("w1", "running"))

	type answer struct {
		status     int
		retryAfter string
		body       string
	}
	answered := make(chan answer, 1)
	sent := make(chan struct{})
	go func() {
		// A connection of its own: the shutdown closes idle ones.
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(sent) }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet,
			s.URL+"/api/executions/"+e.ExecID+"/wait?timeout=60s", nil)
		resp, err := client.Do(req)
		if err != nil {
			answered <- answer{body: err.Error()}
			return
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		answered <- answer{resp.StatusCode, resp.Header.Get("Retry-After"), b.String()}
	}()
	select {
	case <-sent:
	case a := <-answered:
		t.Fatalf("wait answered before the shutdown: %+v", a)
	}
	// The listener accepts connections in order: once a later connection
	// is served, the wait's has been accepted too, and the shutdown waits
	// for it.
	later := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := later.Get(s.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s.stop()
	select {
	case a := <-answered:
		if a.status != http.StatusServiceUnavailable || a.retryAfter == "" || !strings.Contains(a.body, `"unavailable"`) {
			t.Errorf("wait during shutdown = %d Retry-After %q %s; want 503 with Retry-After", a.status, a.retryAfter, a.body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the wait never answered")
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("the shutdown logged errors:\n%s", logs.String())
	}
}
