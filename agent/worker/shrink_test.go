package worker

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kanadehq/kanade/agent/wire"
)

// TestShrink_KeepsBothEnds: a result too large for one message loses the
// middle of its output, not its end, where the error is.
func TestShrink_KeepsBothEnds(t *testing.T) {
	r := wire.Result{ExecID: "e1", PCID: "pc1", State: wire.StateFailed,
		Stdout: "first line\n" + strings.Repeat("<noise>\n", 100_000) + "Error: disk full\n",
		Stderr: "warning\n" + strings.Repeat("x", 300_000) + "fatal: gave up\n"}
	for _, limit := range []int{1 << 20, 200_000, 20_000} {
		var got wire.Result
		if err := json.Unmarshal(shrink(r, limit), &got); err != nil {
			t.Fatal(err)
		}
		for _, s := range []struct{ name, out, was, head, tail string }{
			{"stdout", got.Stdout, r.Stdout, "first line\n", "Error: disk full\n"},
			{"stderr", got.Stderr, r.Stderr, "warning\n", "fatal: gave up\n"},
		} {
			if s.out == s.was {
				continue // the other one was cut enough
			}
			if !strings.HasPrefix(s.out, s.head) || !strings.HasSuffix(s.out, s.tail) || !strings.Contains(s.out, " bytes cut …\n") {
				t.Errorf("limit %d: %s keeps %d bytes without its head, its tail or the marker", limit, s.name, len(s.out))
			}
		}
		if got.Stdout == r.Stdout {
			t.Errorf("limit %d: the larger output was not cut", limit)
		}
	}
}
