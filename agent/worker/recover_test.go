package worker

import (
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/ledger"
	"github.com/kanadehq/kanade/agent/wire"
)

// queuedResults returns the results queued in w's outbox, by execution.
func queuedResults(t *testing.T, w *Worker) map[string]wire.Result {
	t.Helper()
	items, err := w.outbox.Pending()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]wire.Result{}
	for _, it := range items {
		var r wire.Result
		if err := json.Unmarshal(it.Data, &r); err != nil {
			t.Fatal(err)
		}
		out[r.ExecID] = r
	}
	return out
}

// TestRecoverUnfinished: executions a previous agent claimed and never
// finished are reported killed ("agent restarted") once, whether or not
// a process tree was recorded, and never run again.
func TestRecoverUnfinished(t *testing.T) {
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := New(Config{PCID: "pc1", DataDir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	l := w.ledger.(*ledger.Ledger)
	for _, id := range []string{"before-start", "tree-gone", "done"} {
		if ok, err := l.Claim(id, l.Created()); !ok || err != nil {
			t.Fatalf("Claim(%s) = %v, %v", id, ok, err)
		}
	}
	// A group number no process can have (above any pid_max).
	if err := l.Started("tree-gone", []byte(`{"pgid":1073741823,"start":1,"token":"t"}`)); err != nil {
		t.Fatal(err)
	}
	if err := l.Finish("done"); err != nil {
		t.Fatal(err)
	}
	l.Close()

	w, err = New(Config{PCID: "pc1", DataDir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer w.ledger.Close()
	w.recoverUnfinished()
	got := map[string]string{}
	for id, r := range queuedResults(t, w) {
		got[id] = string(r.State) + ": " + r.Reason
		if r.PCID != "pc1" || r.FinishedAt.IsZero() {
			t.Errorf("result of %s: pc %q, finished %v", id, r.PCID, r.FinishedAt)
		}
	}
	want := map[string]string{"before-start": "killed: agent restarted", "tree-gone": "killed: agent restarted"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("queued results (-want +got):\n%s", diff)
	}
	if u := w.ledger.Unfinished(); len(u) != 0 {
		t.Errorf("Unfinished after recovery = %v", u)
	}
	if ok, _ := w.ledger.Claim("tree-gone", l.Created()); ok {
		t.Error("a recovered execution could be claimed again")
	}
}
