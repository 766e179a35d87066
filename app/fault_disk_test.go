//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kanadehq/kanade/app/bus/bustest"
)

// healthz is GET /healthz's body.
type healthz struct {
	Status string `json:"status"`
	NATS   string `json:"nats"`
	DB     string `json:"db"`
	Disk   string `json:"disk"`
}

// faultClient gives up on a request after a while: a server that hangs
// on a full disk fails the test instead of stalling it.
var faultClient = &http.Client{Timeout: 20 * time.Second}

// getHealthz reads /healthz; the code is 0 when there was no readable
// answer (a server still starting), for the caller's poll to try again.
func getHealthz(t *testing.T, s *testServer) (int, healthz) {
	t.Helper()
	var h healthz
	resp, err := faultClient.Get(s.URL + "/healthz")
	if err != nil {
		t.Logf("/healthz: %v", err)
		return 0, h
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Logf("/healthz: %v", err)
		return 0, h
	}
	return resp.StatusCode, h
}

// systemJSON is the part of GET /api/system this test reads.
type systemJSON struct {
	Health struct {
		Volumes []struct {
			Path  string   `json:"path"`
			Total int64    `json:"total_bytes"`
			Roles []string `json:"roles"`
		} `json:"volumes"`
	} `json:"health"`
	Broker struct {
		Reserved int64 `json:"reserved_bytes"`
		MaxStore int64 `json:"max_store_bytes"`
		Restarts int   `json:"jetstream_restarts"`
	} `json:"broker"`
	Streams []struct {
		Name     string `json:"name"`
		MaxBytes int64  `json:"max_bytes"`
	} `json:"streams"`
}

// TestFault_DiskFull runs the real server with its data on a 1 GiB
// volume of its own (a default install: no configuration) and a real
// agent. A run is under way when the volume fills: /healthz answers 503
// with the reason, the run's result cannot be stored, an action is
// refused rather than carried out unaudited; once the filler is deleted
// the server recovers by itself — same process — and the run completes.
func TestFault_DiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test with real processes (-short)")
	}
	vol := bustest.Tmpfs(t, 1<<30)
	bin, err := buildBinaries()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	phase := func(what string) { t.Logf("%5.1fs %s", time.Since(start).Seconds(), what) }
	data := filepath.Join(vol, "data")
	httpAddr, natsAddr := freeAddr(t), freeAddr(t)
	srv := startProc(t, filepath.Join(bin, "kanade"), "serve", "--data", data, "--http", httpAddr, "--nats-listen", natsAddr)
	// A failure shows where the server stood: its goroutines go to its output.
	t.Cleanup(func() {
		if t.Failed() && srv.cmd.ProcessState == nil {
			_ = srv.cmd.Process.Signal(syscall.SIGQUIT)
		}
	})
	s := &testServer{t: t, URL: "http://" + httpAddr}
	creds := filepath.Join(data, "agent-credentials")
	checkFor(t, 30*time.Second, func() error {
		if _, err := os.Stat(creds); err != nil {
			return err
		}
		if code, h := getHealthz(t, s); code != http.StatusOK {
			return fmt.Errorf("healthz %d %+v", code, h)
		}
		return nil
	})

	// A default install fits the 1 GiB volume.
	var sys systemJSON
	if code := s.get(t, "/api/system", &sys); code != http.StatusOK {
		t.Fatalf("GET /api/system = %d", code)
	}
	if sys.Broker.Reserved <= 0 || sys.Broker.Reserved > 400<<20 || len(sys.Streams) < 9 {
		t.Fatalf("a default install on 1 GiB reserves %d bytes in %d streams", sys.Broker.Reserved, len(sys.Streams))
	}
	if len(sys.Health.Volumes) != 1 || sys.Health.Volumes[0].Total != 1<<30 {
		t.Errorf("volumes = %+v, want the one 1 GiB volume holding data, nats and the database", sys.Health.Volumes)
	}
	t.Logf("default install on 1 GiB: the streams reserve %.0f MiB (max_store %.0f MiB)", float64(sys.Broker.Reserved)/(1<<20), float64(sys.Broker.MaxStore)/(1<<20))

	startProc(t, filepath.Join(bin, "kanade-agent"), "--server", "nats://"+natsAddr, "--credentials", creds,
		"--pc-id", "fault-1", "--groups", "lab", "--data", t.TempDir(), "--heartbeat", "1s")
	s.waitOnline(t, "fault-1")

	// The script waits for the gate, then prints 300 KB: a result too
	// large to slip into the last page of a block file on a full volume.
	gate := filepath.Join(t.TempDir(), "gate")
	e := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"fault-1"}}, "shell": "sh", "timeout": "5m",
		"script": "while [ ! -e " + shQuote(gate) + " ]; do sleep 0.1; done; head -c 300000 /dev/zero | tr '\\0' x; echo; echo done"})
	s.waitExec(t, e.ExecID, targetIn("fault-1", "running"))
	pid := srv.cmd.Process.Pid

	phase("run under way; filling the volume")
	filler := bustest.Fill(t, vol)
	checkFor(t, 30*time.Second, func() error {
		code, h := getHealthz(t, s)
		if code != http.StatusServiceUnavailable || h.Status != "unavailable" || !strings.Contains(h.Disk, "is full") {
			return fmt.Errorf("healthz %d %+v", code, h)
		}
		return nil
	})
	phase("/healthz says unavailable; the script ends")
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The result meets the full disk: the stream keeps the write error
	// (and refuses it until JetStream restarts); the agent keeps the
	// result in its outbox.
	checkFor(t, 60*time.Second, func() error {
		_, h := getHealthz(t, s)
		if !strings.Contains(h.NATS, "cannot store") {
			return fmt.Errorf("no stream write error yet: %+v", h)
		}
		return nil
	})
	// An action now is refused (503) or carried out with its audit event:
	// never a 500, never unaudited.
	var refused apiErrorBody
	body := strings.NewReader(`{"target":{"pcs":["fault-1"]},"shell":"sh","script":"echo during"}`)
	resp, err := faultClient.Post(s.URL+"/api/run", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&refused)
	resp.Body.Close()
	code := resp.StatusCode
	t.Logf("POST /api/run on the full disk: %d %s", code, refused.Error.Code)
	switch {
	case code == http.StatusServiceUnavailable:
		if c := refused.Error.Code; c != "audit_unavailable" && c != "unavailable" {
			t.Errorf("refused run: code %q", c)
		}
	case code != http.StatusAccepted:
		t.Errorf("POST /api/run on a full disk = %d, want 503 (or 202 when every write fitted)", code)
	}

	phase("a stream holds the write error; freeing the volume")
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 60*time.Second, func() error {
		if code, h := getHealthz(t, s); code != http.StatusOK {
			return fmt.Errorf("healthz %d %+v", code, h)
		}
		return nil
	})
	phase("/healthz says ok")
	got := s.waitExec(t, e.ExecID, completed)
	phase("the run completed")
	if got.Counts["succeeded"] != 1 || !strings.HasSuffix(got.Targets[0].Stdout, "\ndone\n") {
		t.Errorf("run after the disk was freed: %s %v stdout %d bytes", got.Status, got.Counts, len(got.Targets[0].Stdout))
	}
	if srv.cmd.ProcessState != nil || srv.cmd.Process.Pid != pid {
		t.Fatal("the server process did not survive")
	}
	if code := s.get(t, "/api/system", &sys); code != http.StatusOK || sys.Broker.Restarts < 1 {
		t.Errorf("JetStream restarts = %d (GET /api/system %d), want the recovery to have restarted it", sys.Broker.Restarts, code)
	}
	// New work goes through, and every run on record has its audit event.
	e2 := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"fault-1"}}, "shell": "sh", "script": "echo after"})
	if got := s.waitExec(t, e2.ExecID, completed); got.Counts["succeeded"] != 1 {
		t.Errorf("run after the recovery: %v", got.Counts)
	}
	var execs struct {
		Executions []execution `json:"executions"`
	}
	s.get(t, "/api/executions?limit=100", &execs)
	checkFor(t, 30*time.Second, func() error {
		var audit struct {
			Events []struct{ Action, Target string } `json:"events"`
		}
		s.get(t, "/api/audit?action=run&limit=100", &audit)
		seen := map[string]bool{}
		for _, ev := range audit.Events {
			seen[ev.Target] = true
		}
		for _, x := range execs.Executions {
			if !seen[x.ExecID] {
				return fmt.Errorf("execution %s has no audit event", x.ExecID)
			}
		}
		return nil
	})
}
