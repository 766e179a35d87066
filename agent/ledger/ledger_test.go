package ledger

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLedger_ClaimOnceAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger")
	now := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	l, err := Open(path, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   string
		want bool
	}{{"a", true}, {"a", false}, {"b", true}} {
		got, err := l.Claim(tc.id, now)
		if err != nil || got != tc.want {
			t.Fatalf("Claim(%q) = %v, %v; want %v", tc.id, got, err, tc.want)
		}
	}
	if err := l.Finish("a"); err != nil {
		t.Fatal(err)
	}
	l.Close()

	l2, err := Open(path, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if ok, _ := l2.Claim("a", now); ok {
		t.Error("a claimed again after restart")
	}
	if diff := cmp.Diff([]string{"b"}, l2.Unfinished()); diff != "" {
		t.Errorf("Unfinished (-want +got):\n%s", diff)
	}
	if !l2.Created().Equal(now) {
		t.Errorf("Created = %v, want %v", l2.Created(), now)
	}
}

func TestLedger_TornLineAndRetention(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger")
	old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	content := `{"e":"old","t":` + itoa(old.UnixMilli()) + "}\n" +
		`{"e":"old","d":true,"t":` + itoa(old.UnixMilli()) + "}\n" +
		`{"e":"new","t":` + itoa(old.Add(Retention).UnixMilli()) + "}\n" +
		`{"e":"torn","t":12`
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path, old.Add(Retention+time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Seen("old") {
		t.Error("finished entry past retention was kept")
	}
	if !l.Seen("new") {
		t.Error("recent entry was dropped")
	}
	if l.Seen("torn") {
		t.Error("torn line was read")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestLedger_TreeAcrossRestart: the process tree of a running execution
// survives a restart (so the next agent can kill its leftovers) and is
// forgotten once the execution finished.
func TestLedger_TreeAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger")
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	l, err := Open(path, now)
	if err != nil {
		t.Fatal(err)
	}
	const tree = `{"pgid":4242,"start":1234567,"boot":"b1","token":"t1"}`
	for _, id := range []string{"a", "b"} {
		if ok, err := l.Claim(id, now); !ok || err != nil {
			t.Fatalf("Claim(%s) = %v, %v", id, ok, err)
		}
	}
	if err := l.Started("a", []byte(" {\n \"pgid\": 4242, \"start\": 1234567, \"boot\": \"b1\", \"token\": \"t1\"}")); err != nil {
		t.Fatal(err)
	}
	if err := l.Started("b", []byte(`{"pgid":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := l.Finish("b"); err != nil {
		t.Fatal(err)
	}
	if err := l.Started("unclaimed", []byte(`{"pgid":2}`)); err != nil || l.Tree("unclaimed") != nil {
		t.Errorf("Started for an unclaimed execution: %v, tree %s; want nothing recorded", err, l.Tree("unclaimed"))
	}
	if err := l.Started("a", []byte("{not json")); err == nil {
		t.Error("Started accepted a tree that is not JSON")
	}
	if got := string(l.Tree("b")); got != "" {
		t.Errorf("Tree(b) = %s after Finish, want none", got)
	}
	l.Close()

	l, err = Open(path, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(l.Tree("a")); got != tree {
		t.Errorf("Tree(a) after a restart = %s, want %s", got, tree)
	}
	if l.Tree("b") != nil {
		t.Errorf("Tree(b) = %s, want none for a finished execution", l.Tree("b"))
	}
	if diff := cmp.Diff([]string{"a"}, l.Unfinished()); diff != "" {
		t.Errorf("Unfinished (-want +got):\n%s", diff)
	}
	if err := l.Finish("a"); err != nil {
		t.Fatal(err)
	}
	l.Close()

	// The next open compacts: two executions, each claimed and done.
	l, err = Open(path, now.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Tree("a") != nil || len(l.Unfinished()) != 0 {
		t.Errorf("after finishing: Tree(a) = %s, Unfinished %v; want none", l.Tree("a"), l.Unfinished())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != 4 || strings.Contains(string(b), "pgid") {
		t.Errorf("compacted ledger holds %d lines:\n%s\nwant 4, without trees", n, b)
	}
}
