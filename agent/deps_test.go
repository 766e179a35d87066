package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestAgentDoesNotLinkServerCode keeps the agent small: it must not link
// the web framework, the ORM, templates, sessions or OIDC, nor any server
// package, on any OS; nor the load simulator (package swarm and its
// profiling listener), which is bin/kanade-swarm.
func TestAgentDoesNotLinkServerCode(t *testing.T) {
	needGo(t)
	forbidden := []string{
		"github.com/labstack/echo", "github.com/uptrace/bun", "github.com/a-h/templ", "github.com/gorilla/",
		"github.com/coreos/go-oidc", "github.com/nats-io/nats-server", "modernc.org/sqlite", "github.com/jackc/pgx",
		"github.com/kanadehq/kanade/app", "github.com/kanadehq/kanade/store", "github.com/kanadehq/kanade/views",
		"github.com/kanadehq/kanade/jobs", "github.com/kanadehq/kanade/migrations",
		"github.com/kanadehq/kanade/agent/swarm",
	}
	for _, goos := range []string{"linux", "windows", "darwin"} {
		cmd := exec.Command("go", "list", "-deps", ".")
		cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH=amd64", "CGO_ENABLED=0")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list (%s): %v", goos, err)
		}
		for _, pkg := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if strings.HasPrefix(pkg, f) {
					t.Errorf("GOOS=%s: the agent links %s", goos, pkg)
				}
			}
		}
	}
}

// TestWireImportsOnlyStdlib keeps the shared wire package a leaf.
func TestWireImportsOnlyStdlib(t *testing.T) {
	needGo(t)
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./wire").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg != "github.com/kanadehq/kanade/agent/wire" {
			t.Errorf("agent/wire imports %s", pkg)
		}
	}
}

// needGo skips a test that asks the go tool about the source when there is
// none (a test binary run on another machine, or under Wine).
func needGo(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("the go tool is not on PATH: %v", err)
	}
}
