package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestServerImportsOnlyWireFromAgent keeps the two sides apart: the
// server's code (app/, store/, views/, jobs/, migrations/) imports nothing
// from agent/ but the shared contract, agent/wire, on any OS. The agent's
// side of the rule is agent/deps_test.go.
//
// Only code that is built into a binary counts: go list -deps leaves test
// files out. Tests may import agent packages (this package's harness runs
// real agents with agent/enroll and agent/worker, and every test polls
// with agent/eventually).
func TestServerImportsOnlyWireFromAgent(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("the go tool is not on PATH: %v", err)
	}
	const (
		agentTree = "github.com/kanadehq/kanade/agent"
		wire      = "github.com/kanadehq/kanade/agent/wire"
	)
	server := []string{
		"github.com/kanadehq/kanade/app/...", "github.com/kanadehq/kanade/store/...", "github.com/kanadehq/kanade/views/...",
		"github.com/kanadehq/kanade/jobs/...", "github.com/kanadehq/kanade/migrations/...",
	}
	inAgent := func(pkg string) bool { return pkg == agentTree || strings.HasPrefix(pkg, agentTree+"/") }
	for _, goos := range []string{"linux", "windows", "darwin"} {
		// Every package the server links, each with what it imports: an
		// edge from outside agent/ into it names the importer.
		cmd := exec.Command("go", append([]string{"list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}"}, server...)...)
		cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH=amd64", "CGO_ENABLED=0")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list (%s): %v", goos, err)
		}
		pkgs := 0
		for line := range strings.Lines(string(out)) {
			f := strings.Fields(line)
			if len(f) == 0 || inAgent(f[0]) {
				continue
			}
			pkgs++
			for _, imp := range f[1:] {
				if inAgent(imp) && imp != wire {
					t.Errorf("GOOS=%s: %s imports %s; the server may use agent/wire only", goos, f[0], imp)
				}
			}
		}
		if pkgs < 20 {
			t.Fatalf("GOOS=%s: go list named only %d packages of the server: the patterns match nothing", goos, pkgs)
		}
	}
}
