//go:build !windows

package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kanadehq/kanade/app/backup"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/config"
)

// A backup of a running server restores onto a fresh data directory: a
// server started on it at the same broker address shows the same agents,
// executions, audit trail and schedules, and a real agent process that
// enrolled with the first server comes back online with the credential
// it has, without enrolling again, and runs the new server's commands.
func TestBackup_RestoreKeepsAgentsAndHistory(t *testing.T) {
	skipIfShort(t)
	bin, err := buildBinaries()
	if err != nil {
		t.Fatal(err)
	}
	jobs, dataA, natsAddr := jobsDir(t), t.TempDir(), freeAddr(t)
	adjust := func(c *config.Config) { c.Server.JobsDir = jobs }
	a := startServerWith(t, dataA, natsAddr, adjust)
	agentDir := t.TempDir()
	agent := startProc(t, filepath.Join(bin, "kanade-agent"), "--server", a.NATSURL, "--credentials", a.Creds,
		"--pc-id", "bk-1", "--groups", "lab", "--data", agentDir, "--heartbeat", "1s")
	a.waitOnline(t, "bk-1")
	keyBefore, err := os.ReadFile(filepath.Join(agentDir, "identity.nk"))
	if err != nil {
		t.Fatal(err)
	}

	e := a.run(t, map[string]any{"target": map[string]any{"pcs": []string{"bk-1"}}, "shell": "sh", "script": "echo before backup", "timeout": "30s"})
	a.waitExec(t, e.ExecID, completed)
	if code := a.post(t, "/api/schedules", map[string]any{"id": "yearly", "cron": "0 0 3 1 1 *", "job_id": "tick"}, nil); code != http.StatusCreated {
		t.Fatalf("create schedule: %d", code)
	}
	var auditA struct {
		Total int `json:"total"`
	}
	checkFor(t, 20*time.Second, func() error {
		a.get(t, "/api/audit?limit=1", &auditA)
		if auditA.Total < 2 {
			return fmt.Errorf("audit total %d", auditA.Total)
		}
		return nil
	})

	out := filepath.Join(t.TempDir(), "kanade-backup.tar.gz")
	kanade := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, "kanade"), args...)
		cmd.Env = append(os.Environ(), "KANADE_DB_DSN=", "KANADE_SECRETS=")
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kanade %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return string(b)
	}
	if got := kanade("backup", "--data", dataA, "--nats-listen", natsAddr, "--out", out); !strings.Contains(got, "wrote "+out) {
		t.Errorf("kanade backup printed %q", got)
	}
	rec, ok, err := backup.ReadRecord(dataA)
	if err != nil || !ok || rec.File != out {
		t.Fatalf("backup record %+v %v %v", rec, ok, err)
	}
	var metrics bytes.Buffer
	resp := a.open(t, t.Context(), "/metrics")
	_, _ = metrics.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(metrics.String(), "kanade_backup_age_seconds ") {
		t.Errorf("/metrics lacks kanade_backup_age_seconds")
	}
	resp = a.open(t, t.Context(), "/settings/backups")
	var page bytes.Buffer
	_, _ = page.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(page.String(), `data-testid="backup-at"`) || !strings.Contains(page.String(), ">"+bus.SizeText(rec.Size)+"<") {
		t.Errorf("Settings › Backups does not show the backup of %d bytes:\n%s", rec.Size, page.String())
	}
	a.stop()

	dataB := filepath.Join(t.TempDir(), "restored")
	if got := kanade("restore", "--in", out, "--data", dataB); !strings.Contains(got, "restored the backup") {
		t.Errorf("kanade restore printed %q", got)
	}
	// A second restore into the now full directory is refused.
	cmd := exec.Command(filepath.Join(bin, "kanade"), "restore", "--in", out, "--data", dataB)
	if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "is not empty") {
		t.Errorf("restore into a full directory: %v %s", err, b)
	}

	b := startServerWith(t, dataB, natsAddr, adjust)
	b.waitOnline(t, "bk-1")
	got := b.waitExec(t, e.ExecID, completed)
	if len(got.Targets) != 1 || got.Targets[0].Stdout != "before backup\n" {
		t.Errorf("execution after restore = %+v", got)
	}
	var scheds struct {
		Schedules []struct {
			ID string `json:"id"`
		} `json:"schedules"`
	}
	if b.get(t, "/api/schedules", &scheds); len(scheds.Schedules) != 1 || scheds.Schedules[0].ID != "yearly" {
		t.Errorf("schedules after restore = %+v", scheds)
	}
	var auditB struct {
		Total int `json:"total"`
	}
	if b.get(t, "/api/audit?limit=1", &auditB); auditB.Total < auditA.Total {
		t.Errorf("audit after restore: %d events, before %d", auditB.Total, auditA.Total)
	}
	e2 := b.run(t, map[string]any{"target": map[string]any{"pcs": []string{"bk-1"}}, "shell": "sh", "script": "echo after restore", "timeout": "30s"})
	got = b.waitExec(t, e2.ExecID, completed)
	if len(got.Targets) != 1 || got.Targets[0].Stdout != "after restore\n" {
		t.Errorf("run after restore = %+v", got)
	}
	// The agent renews its credential on each connection, signed by the
	// same keys; it never enrolls again, and keeps its key.
	if keyAfter, err := os.ReadFile(filepath.Join(agentDir, "identity.nk")); err != nil || !bytes.Equal(keyAfter, keyBefore) {
		t.Errorf("the agent's key changed (%v)", err)
	}
	if n := strings.Count(agent.output(), "msg=enrolled "); n != 1 {
		t.Errorf("the agent enrolled %d times, want once", n)
	}
}
