package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestSwarmMoved: `kanade-agent swarm` says where the simulator is, in one
// line, and exits 2, whatever flags an old script passes.
func TestSwarmMoved(t *testing.T) {
	for _, args := range [][]string{{"swarm"}, {"swarm", "--server", "nats://127.0.0.1:4222", "--credentials", "c", "--count", "10"}} {
		var stdout, stderr bytes.Buffer
		err := run(args, &stdout, &stderr)
		var code exitCode
		if !errors.As(err, &code) || code != 2 {
			t.Errorf("run(%q) = %v, want exit code 2", args, err)
		}
		out := stderr.String()
		if !strings.Contains(out, "the simulator is bin/kanade-swarm (make build)") || strings.Count(out, "\n") != 1 || stdout.Len() != 0 {
			t.Errorf("run(%q): stdout %q, stderr %q; want one line on stderr naming bin/kanade-swarm", args, stdout.String(), out)
		}
	}
}
