package worker

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kanadehq/kanade/agent/runner"
	"github.com/kanadehq/kanade/agent/wire"
)

func TestIncompleteTail(t *testing.T) {
	ja := []byte("日本") // 3 bytes each
	tests := []struct {
		name string
		b    []byte
		want int
	}{
		{"empty", nil, 0},
		{"ascii", []byte("abc"), 0},
		{"complete", ja, 0},
		{"one byte of three", ja[:4], 1},
		{"two bytes of three", ja[:5], 2},
		{"invalid byte", []byte{'a', 0xff}, 0},
	}
	for _, tt := range tests {
		if got := incompleteTail(tt.b); got != tt.want {
			t.Errorf("%s: incompleteTail(% x) = %d, want %d", tt.name, tt.b, got, tt.want)
		}
	}
}

func TestShrink_FitsAndStaysValidUTF8(t *testing.T) {
	r := wire.Result{ExecID: "e1", PCID: "pc1", State: wire.StateSucceeded,
		Stdout: strings.Repeat("日本語", 100_000), Stderr: strings.Repeat("<x>", 50_000)}
	for _, limit := range []int{1 << 20, 200_000, 1000} {
		b := shrink(r, limit)
		if len(b) > limit {
			t.Errorf("shrink(limit %d) = %d bytes", limit, len(b))
		}
		var got wire.Result
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if !got.Truncated || !utf8.ValidString(got.Stdout) || !utf8.ValidString(got.Stderr) {
			t.Errorf("limit %d: truncated=%v validUTF8=%v/%v", limit, got.Truncated, utf8.ValidString(got.Stdout), utf8.ValidString(got.Stderr))
		}
		if got.ExecID != "e1" || got.State != wire.StateSucceeded {
			t.Errorf("limit %d: identity lost: %+v", limit, got)
		}
	}
}

// TestExecute_RunningReport: a run that ends within runningAfter is
// reported once, by its final result; a longer one reports running first.
func TestExecute_RunningReport(t *testing.T) {
	tests := []struct {
		name string
		run  time.Duration
		want []wire.State
	}{
		{"quick", 0, []wire.State{wire.StateSucceeded}},
		{"long", 3 * runningAfter, []wire.State{wire.StateRunning, wire.StateSucceeded}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := New(Config{PCID: "pc1", DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Exec: func(ctx context.Context, s runner.Spec) runner.Outcome {
					start := time.Now()
					time.Sleep(tt.run)
					code := 0
					return runner.Outcome{State: wire.StateSucceeded, ExitCode: &code, StartedAt: start, FinishedAt: time.Now()}
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer w.ledger.Close()
			w.execute(context.Background(), wire.Command{ExecID: "e1", Shell: "sh", Script: "true", DeadlineAt: time.Now().Add(time.Hour)})
			items, err := w.outbox.Pending()
			if err != nil {
				t.Fatal(err)
			}
			var got []wire.State
			for _, it := range items {
				var r wire.Result
				if err := json.Unmarshal(it.Data, &r); err != nil {
					t.Fatal(err)
				}
				if it.Subject != wire.ResultSubject("pc1") || r.ExecID != "e1" {
					t.Errorf("queued on %s for %q", it.Subject, r.ExecID)
				}
				got = append(got, r.State)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("queued results %v, want %v", got, tt.want)
			}
		})
	}
}
