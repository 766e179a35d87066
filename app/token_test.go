package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kanadehq/kanade/app/rollout"
	"github.com/kanadehq/kanade/app/schedule"
)

// TestTokenCreate_ReservedNames: `kanade token create` refuses the names
// the server records for its own actions, so that no token's actions read
// as the scheduler's or the rollout engine's.
func TestTokenCreate_ReservedNames(t *testing.T) {
	data := t.TempDir()
	for _, name := range []string{schedule.Actor, rollout.Actor, "dev", "token ops", "ops@example.com"} {
		var out, errb bytes.Buffer
		err := run([]string{"token", "create", "--role", "admin", "--name", name, "--data", data}, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), "--name: ") || out.Len() != 0 {
			t.Errorf("token create --name %q = %v, printed %q; want a --name error and no token", name, err, out.String())
		}
	}
	var out, errb bytes.Buffer
	if err := run([]string{"token", "create", "--role", "admin", "--name", "nightly report", "--data", data}, &out, &errb); err != nil {
		t.Errorf("token create --name %q: %v", "nightly report", err)
	}
}
