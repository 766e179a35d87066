package update

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// SelftestCommand is the argument that makes kanade-agent run its
// self-test: load the configuration and identity of the run whose flags
// follow, connect to the broker, print SelftestLine and exit 0; exit
// non-zero when it cannot. It writes nothing and runs nothing.
const SelftestCommand = "selftest"

// selftestOK starts the line a passing self-test prints.
const selftestOK = "kanade-agent selftest ok: version "

// SelftestLine is what a passing self-test of version prints.
func SelftestLine(version string) string { return selftestOK + version }

// DefaultTrialTimeout bounds a trial run.
const DefaultTrialTimeout = time.Minute

// trial runs bin's self-test with the flags of this run and checks that it
// passes as version want. The error says why it did not, with the end of
// what the binary printed.
func trial(ctx context.Context, bin string, args []string, want string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out tail
	cmd := exec.CommandContext(ctx, bin, append([]string{SelftestCommand}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	said := out.String()
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("no connection within %s%s", shortDuration(timeout), quote(said))
	case err != nil:
		return fmt.Errorf("%v%s", err, quote(said))
	}
	i := strings.Index(said, selftestOK)
	if i < 0 {
		return fmt.Errorf("it exited 0 without saying that it connected%s", quote(said))
	}
	got, _, _ := strings.Cut(said[i+len(selftestOK):], "\n")
	if got = strings.TrimSpace(got); got != want {
		return fmt.Errorf("the binary is version %q, the release %q", got, want)
	}
	return nil
}

// quote returns ": " and the last line of what a trial printed, or "".
func quote(said string) string {
	said = strings.TrimSpace(said)
	if said == "" {
		return ""
	}
	if i := strings.LastIndexByte(said, '\n'); i >= 0 {
		said = said[i+1:]
	}
	return ": " + said
}

// tail keeps the last tailBytes a program writes.
type tail struct {
	mu sync.Mutex
	b  []byte
}

const tailBytes = 2048

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > tailBytes {
		t.b = append(t.b[:0], t.b[len(t.b)-tailBytes:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.ToValidUTF8(t.b, []byte("?")))
}
