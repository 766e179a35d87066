package ledger

import (
	"os"
	"path/filepath"
	"strconv"
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
