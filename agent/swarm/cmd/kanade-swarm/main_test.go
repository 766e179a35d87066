package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestRun_RefusesBadFlags: flags that cannot make a swarm are refused
// before anything connects or writes a data directory.
func TestRun_RefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--credentials is required"},
		{[]string{"--credentials", "c", "--fail-rate", "1.5"}, "--fail-rate must be between 0 and 1"},
		{[]string{"--credentials", "c", "--fail-rate", "-0.1"}, "--fail-rate must be between 0 and 1"},
		{[]string{"--credentials", "c", "extra"}, `unexpected argument "extra"`},
		{[]string{"--count", "many"}, `invalid value "many" for flag -count`},
	} {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), tc.args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error()+stderr.String(), tc.want) {
			t.Errorf("run(%q) = %v (stderr %q), want an error saying %q", tc.args, err, stderr.String(), tc.want)
		}
		if stdout.Len() != 0 {
			t.Errorf("run(%q) wrote %q to stdout", tc.args, stdout.String())
		}
	}
}
