package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kanadehq/kanade/agent/eventually"
)

// TestStopStoppedChild: a child stopped for the other side's rounds still
// ends on SIGTERM, without waiting for the grace period's SIGKILL. Like
// kanade's processes, the child handles SIGTERM (a stopped process with
// no handler would die of it anyway).
func TestStopStoppedChild(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh:", err)
	}
	dir := t.TempDir()
	c, err := startChild("trapper", dir, filepath.Join(dir, "log"), nil, nil, sh, "-c",
		`trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done`)
	if err != nil {
		t.Fatal(err)
	}
	// The trap must be set before the child is stopped.
	eventually.Within(t, time.Minute, eventually.Holds("the child to get ready", func() bool {
		return strings.Contains(tail(filepath.Join(dir, "log"), 1), "ready")
	}))
	if err := stopProcess(c.pid(), true); err != nil {
		t.Fatal(err)
	}
	c.stop(time.Minute) // a SIGKILL would only come after a minute
	if c.err != nil {
		t.Fatalf("the stopped child ended with %v, want its SIGTERM trap's exit 0", c.err)
	}
}
