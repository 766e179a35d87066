package catalog

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/jobs"
)

func job(id, version string) string {
	return "id: " + id + "\nversion: " + version + "\ntarget:\n  all: true\nexecute:\n  shell: sh\n  script: echo " + id + "\n  timeout: 1m\n"
}

func write(t *testing.T, dir, name, text string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// summary is what the tests compare of an entry.
type summary struct {
	ID, Source string
	Kind       jobs.Kind
	Valid      bool
	Problems   int
}

func summarise(es []Entry) []summary {
	var out []summary
	for _, e := range es {
		out = append(out, summary{e.ID, e.Source, e.Kind, e.Valid, len(e.Problems)})
	}
	return out
}

// run starts the catalog's loop for the test.
func run(t *testing.T, c *Catalog) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestNew_Load(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "disk-report.yaml", job("disk-report", "1.0.0"))
	write(t, dir, "nightly.yml", "id: nightly\ncron: '0 3 * * *'\njob_id: disk-report\n")
	write(t, dir, "broken.yaml", "version: 1\ntarget: {all: true}\n")
	write(t, dir, "linux/clean-tmp.yaml", job("clean-tmp", "2.0.0"))
	write(t, dir, "bad-id.yaml", "id: bad id\n")
	write(t, dir, "notes.txt", "not a manifest")
	write(t, dir, ".hidden.yaml", job("hidden", "1"))
	write(t, dir, "_drafts/draft.yaml", job("draft", "1"))
	write(t, dir, "testdata/fixture.yaml", job("fixture", "1"))

	c, err := New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []summary{
		{"bad-id.yaml", "bad-id.yaml", jobs.KindJob, false, 4},
		{"broken.yaml", "broken.yaml", jobs.KindJob, false, 2},
		{"clean-tmp", "linux/clean-tmp.yaml", jobs.KindJob, true, 0},
		{"disk-report", "disk-report.yaml", jobs.KindJob, true, 0},
		{"nightly", "nightly.yml", jobs.KindSchedule, true, 0},
	}
	if diff := cmp.Diff(want, summarise(c.List())); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	e, ok := c.Get("disk-report")
	if !ok || e.Manifest == nil || e.Manifest.Version != "1.0.0" || e.YAML != job("disk-report", "1.0.0") || e.ModTime.IsZero() {
		t.Errorf("Get(disk-report) = %+v, %v", e, ok)
	}
	if e, ok := c.Get("broken.yaml"); !ok || e.Manifest == nil || e.Manifest.Version != "1" {
		t.Errorf("Get(broken.yaml) = %+v, %v; want the invalid file under its name, with what could be read", e, ok)
	}
	if _, ok := c.Get("hidden"); ok {
		t.Error("Get(hidden) found a hidden file")
	}
	if c.Dir() != dir {
		t.Errorf("Dir() = %q, want %q", c.Dir(), dir)
	}
}

func TestNew_Errors(t *testing.T) {
	if _, err := New("", nil); err == nil {
		t.Error(`New("") succeeded`)
	}
	f := filepath.Join(t.TempDir(), "file")
	write(t, filepath.Dir(f), "file", "x")
	if _, err := New(f, nil); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("New(file) = %v, want not a directory", err)
	}
}

func TestRun_FollowsEdits(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", job("a", "1.0.0"))
	c, err := New(dir, nil, WithInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)

	// Edit: a new version, and a mistake.
	write(t, dir, "a.yaml", job("a", "1.0.1"))
	eventually.Within(t, 10*time.Second, eventually.Holds("a is at 1.0.1", func() bool { e, _ := c.Get("a"); return e.Version() == "1.0.1" }))
	write(t, dir, "a.yaml", strings.Replace(job("a", "1.0.2"), "1m", "1 minute", 1))
	// The file may be read half-written once; wait for the whole edit.
	want := []jobs.Problem{{Field: "execute.timeout", Line: 8, Message: `"1 minute" is not a duration: write one such as "30s", "10m" or "1h30m"`}}
	eventually.Within(t, 10*time.Second, eventually.Holds("a is invalid with the timeout problem", func() bool {
		e, _ := c.Get("a")
		return !e.Valid && cmp.Diff(want, e.Problems) == ""
	}))

	// New file.
	write(t, dir, "sub/b.yaml", job("b", "1"))
	eventually.Within(t, 10*time.Second, eventually.Holds("b appears", func() bool { _, ok := c.Get("b"); return ok }))

	// Deleted file.
	if err := os.Remove(filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	eventually.Within(t, 10*time.Second, eventually.Holds("a disappears", func() bool { _, ok := c.Get("a"); return !ok }))
	if got := summarise(c.List()); len(got) != 1 || got[0].ID != "b" {
		t.Errorf("List = %+v, want only b", got)
	}
}

func TestRun_DuplicateIDs(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "one.yaml", "# first\n"+job("same", "1"))
	c, err := New(dir, nil, WithInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	write(t, dir, "two.yaml", job("same", "2"))
	eventually.Within(t, 10*time.Second, eventually.Holds("both files are listed", func() bool { return len(c.List()) == 2 }))
	want := []summary{
		{"same", "one.yaml", jobs.KindJob, false, 1},
		{"same", "two.yaml", jobs.KindJob, false, 1},
	}
	list := c.List()
	if diff := cmp.Diff(want, summarise(list)); diff != "" {
		t.Fatalf("List (-want +got):\n%s", diff)
	}
	wantProblems := [][]jobs.Problem{
		{{Field: "id", Line: 2, Message: `the id "same" is also used by two.yaml: ids must be unique in the jobs directory`}},
		{{Field: "id", Line: 1, Message: `the id "same" is also used by one.yaml: ids must be unique in the jobs directory`}},
	}
	for i, e := range list {
		if diff := cmp.Diff(wantProblems[i], e.Problems); diff != "" {
			t.Errorf("%s problems (-want +got):\n%s", e.Source, diff)
		}
	}
	if e, ok := c.Get("same"); !ok || e.Source != "one.yaml" {
		t.Errorf("Get(same) = %s, %v; want one.yaml", e.Source, ok)
	}

	// Renaming the id in one file makes both valid again.
	write(t, dir, "two.yaml", job("other", "2"))
	eventually.Within(t, 10*time.Second, eventually.Holds("both are valid", func() bool {
		for _, e := range c.List() {
			if !e.Valid {
				return false
			}
		}
		return len(c.List()) == 2
	}))
}

func TestRun_ScheduleNamesJob(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "nightly.yaml", "id: nightly\ncron: '@daily'\njob_id: report\n")
	c, err := New(dir, nil, WithInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	e, _ := c.Get("nightly")
	want := []jobs.Problem{{Field: "job_id", Line: 3, Message: `there is no job "report" in the jobs directory`}}
	if diff := cmp.Diff(want, e.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	run(t, c)
	write(t, dir, "report.yaml", job("report", "1"))
	eventually.Within(t, 10*time.Second, eventually.Holds("the schedule is valid", func() bool { e, _ := c.Get("nightly"); return e.Valid }))
}

func TestRun_MissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "jobs")
	c, err := New(dir, nil, WithInterval(10*time.Millisecond))
	if err != nil {
		t.Fatalf("New(missing dir) = %v, want no error", err)
	}
	if n := len(c.List()); n != 0 {
		t.Fatalf("List has %d entries", n)
	}
	run(t, c)
	write(t, dir, "a.yaml", job("a", "1"))
	eventually.Within(t, 10*time.Second, eventually.Holds("a appears", func() bool { _, ok := c.Get("a"); return ok }))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	eventually.Within(t, 10*time.Second, eventually.Holds("the catalog is empty", func() bool { return len(c.List()) == 0 }))
}

func TestNew_TooLarge(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "big.yaml", job("big", "1")+"description: "+strings.Repeat("x", jobs.MaxSize)+"\n")
	c, err := New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := c.Get("big.yaml")
	if !ok || e.Valid || e.YAML != "" || len(e.Problems) != 1 {
		t.Errorf("Get(big.yaml) = valid %v, %d bytes of YAML, problems %v", e.Valid, len(e.YAML), e.Problems)
	}
}

func TestKeyLine(t *testing.T) {
	tests := []struct {
		text, key string
		want      int
	}{
		{"# c\nid: a\n", "id", 2},
		{"target:\n  id: x\nid : y\n", "id", 3},
		{"idx: 1\n", "id", 0},
	}
	for _, tt := range tests {
		if got := keyLine(tt.text, tt.key); got != tt.want {
			t.Errorf("keyLine(%q, %q) = %d, want %d", tt.text, tt.key, got, tt.want)
		}
	}
}
