//go:build !windows

package update

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTrial runs stand-ins for a new binary: only one that passes its
// self-test as the release's version passes the trial.
func TestTrial(t *testing.T) {
	tests := []struct {
		name, script, want, err string
	}{
		{"passes", `[ "$1" = selftest ] && [ "$2" = --pc-id ] && echo "` + SelftestLine("v2") + `"`, "v2", ""},
		{"exits at once", "echo starting; exit 3", "v2", "exit status 3: starting"},
		{"another version", `echo "` + SelftestLine("v1") + `"`, "v2", `the binary is version "v1", the release "v2"`},
		{"says nothing", "exit 0", "v2", "exited 0 without saying that it connected"},
		{"hangs", "echo connecting >&2; exec sleep 60", "v2", "no connection within 1s: connecting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "kanade-agent")
			if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+tt.script+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			err := trial(context.Background(), bin, []string{"--pc-id", "pc1"}, tt.want, time.Second)
			if (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("trial() = %v, want an error with %q", err, tt.err)
			}
		})
	}
}
