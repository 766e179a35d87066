// Package catalog keeps the job manifests and schedules of the jobs
// directory (kanade.toml server.jobs_dir) in memory, and follows edits,
// new files and deleted files without a restart.
//
// It loads every *.yaml and *.yml file under the directory, also in
// sub-directories, except hidden ones (a name starting with "." or "_") and
// testdata directories. Invalid files are kept with their problems and
// their text, so that the GUI can show what is wrong instead of hiding
// them. Ids must be unique across the directory (jobs and schedules
// share one namespace): files that share an id are all invalid.
//
// The directory is polled (every 2 s by default) rather than watched with
// inotify/fsnotify: polling a few hundred small files costs nothing, and
// it works the same on every OS and file system, including network shares,
// bind mounts and the symlink swaps of Kubernetes ConfigMaps and of
// editors that save by renaming, where change notifications are
// unreliable or missing.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/jobs"
)

// DefaultInterval is how often the directory is polled.
const DefaultInterval = 2 * time.Second

// racyWindow: a file modified this recently is read again on every poll
// even when its size and time look unchanged, because a second edit within
// the file system's time resolution would not change its mtime.
const racyWindow = 2 * time.Second

// Entry is one file of the catalog.
type Entry struct {
	// ID is the manifest's or schedule's id; a file without a usable id
	// is listed under its Source.
	ID string
	// Source is the file's path relative to the directory, with forward
	// slashes ("windows/clean-temp.yaml").
	Source string
	Kind   jobs.Kind
	// Manifest (Kind job) or Schedule (Kind schedule) is what could be
	// read, also when the file is invalid. Treat them as read-only.
	Manifest *jobs.Manifest
	Schedule *jobs.Schedule
	// Valid is true when the file has no problem.
	Valid    bool
	Problems []jobs.Problem
	// YAML is the file's text ("" when it is larger than jobs.MaxSize).
	YAML    string
	ModTime time.Time
}

// Version returns the manifest's version ("" for a schedule).
func (e Entry) Version() string {
	if e.Manifest != nil {
		return e.Manifest.Version
	}
	return ""
}

// Description returns the manifest's or schedule's description.
func (e Entry) Description() string {
	switch {
	case e.Manifest != nil:
		return e.Manifest.Description
	case e.Schedule != nil:
		return e.Schedule.Description
	}
	return ""
}

// Catalog is the loaded jobs directory. It is safe for concurrent use.
type Catalog struct {
	dir      string
	log      *slog.Logger
	interval time.Duration

	scanMu sync.Mutex           // one scan at a time
	files  map[string]fileState // by Source; owned by the scanner
	absent bool                 // the directory was missing at the last scan

	mu      sync.RWMutex
	entries []Entry // sorted by ID, then Source
}

// fileState is what the last scan saw of a file.
type fileState struct {
	size  int64
	mod   time.Time
	entry Entry // before the checks across files
}

// Option configures a Catalog.
type Option func(*Catalog)

// WithInterval sets how often Run polls the directory.
func WithInterval(d time.Duration) Option {
	return func(c *Catalog) {
		if d > 0 {
			c.interval = d
		}
	}
}

// New loads dir. A directory that does not exist is not an error: the
// catalog is empty (with a warning in the log) until it appears.
func New(dir string, log *slog.Logger, opts ...Option) (*Catalog, error) {
	if dir == "" {
		return nil, errors.New("catalog: the jobs directory is not set")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return nil, fmt.Errorf("catalog: %s is not a directory", dir)
	}
	c := &Catalog{dir: dir, log: log, interval: DefaultInterval, files: map[string]fileState{}}
	for _, o := range opts {
		o(c)
	}
	c.scan(true)
	return c, nil
}

// Dir returns the directory the catalog loads.
func (c *Catalog) Dir() string { return c.dir }

// Run polls the directory until ctx is done.
func (c *Catalog) Run(ctx context.Context) error {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.scan(false)
		}
	}
}

// List returns every entry, sorted by id.
func (c *Catalog) List() []Entry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.Clone(c.entries)
}

// Get returns the entry with this id (the first by source when several
// files share it).
func (c *Catalog) Get(id string) (Entry, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	i, ok := slices.BinarySearchFunc(c.entries, id, func(e Entry, id string) int { return strings.Compare(e.ID, id) })
	if !ok {
		return Entry{}, false
	}
	return c.entries[i], true
}

// scan reads what changed since the last scan and publishes a new list.
func (c *Catalog) scan(first bool) {
	c.scanMu.Lock()
	defer c.scanMu.Unlock()
	start := time.Now()
	paths, err := c.walk()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !c.absent {
			c.log.Warn("the jobs directory does not exist: no jobs until it is created", "dir", c.dir)
		}
		c.absent = true
	case err != nil:
		c.log.Warn("cannot read the jobs directory", "dir", c.dir, "err", err)
		return // keep what was loaded
	default:
		c.absent = false
	}
	seen := map[string]bool{}
	changed := false
	for _, src := range paths {
		st, err := os.Stat(filepath.Join(c.dir, filepath.FromSlash(src)))
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		seen[src] = true
		old, had := c.files[src]
		if had && old.size == st.Size() && old.mod.Equal(st.ModTime()) && start.Sub(st.ModTime()) > racyWindow {
			continue
		}
		e := c.load(src, st)
		if had && old.entry.YAML == e.YAML && old.entry.YAML != "" {
			c.files[src] = fileState{size: st.Size(), mod: st.ModTime(), entry: old.entry}
			continue
		}
		c.files[src] = fileState{size: st.Size(), mod: st.ModTime(), entry: e}
		changed = true
		if !first {
			c.log.Info("job file loaded", "source", src, "id", e.ID, "kind", e.Kind, "valid", e.Valid, "problems", len(e.Problems))
		}
	}
	for src := range c.files {
		if !seen[src] {
			delete(c.files, src)
			changed = true
			c.log.Info("job file removed", "source", src)
		}
	}
	if !changed && !first {
		return
	}
	entries := c.entriesOf()
	c.mu.Lock()
	c.entries = entries
	c.mu.Unlock()
	if first {
		invalid := 0
		for _, e := range entries {
			if !e.Valid {
				invalid++
			}
		}
		c.log.Info("jobs loaded", "dir", c.dir, "files", len(entries), "invalid", invalid)
	}
}

// walk lists the manifest files under the directory, as Sources.
func (c *Catalog) walk() ([]string, error) {
	var out []string
	err := filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == c.dir {
				return err
			}
			return nil // an unreadable sub-directory: skip it
		}
		name := d.Name()
		if d.IsDir() {
			if p != c.dir && (hidden(name) || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		ext := strings.ToLower(filepath.Ext(name))
		if hidden(name) || (ext != ".yaml" && ext != ".yml") {
			return nil
		}
		rel, err := filepath.Rel(c.dir, p)
		if err != nil {
			return nil
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	return out, err
}

func hidden(name string) bool { return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") }

// load reads and parses one file.
func (c *Catalog) load(src string, st fs.FileInfo) Entry {
	e := Entry{ID: src, Source: src, Kind: jobs.KindJob, ModTime: st.ModTime().UTC()}
	data, err := readLimited(filepath.Join(c.dir, filepath.FromSlash(src)), jobs.MaxSize+1)
	if err != nil {
		e.Problems = []jobs.Problem{{Message: "cannot read the file: " + err.Error()}}
		return e
	}
	if len(data) <= jobs.MaxSize {
		e.YAML = string(data)
	}
	f, ps := jobs.ParseFile(src, data)
	e.Kind, e.Manifest, e.Schedule, e.Problems = f.Kind, f.Manifest, f.Schedule, ps
	if id := f.ID(); wire.ValidateID("id", id) == nil {
		e.ID = id
	}
	e.Valid = len(ps) == 0
	return e
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// entriesOf builds the list from the loaded files, with the checks that
// look across files: unique ids, and schedules that name a job.
func (c *Catalog) entriesOf() []Entry {
	entries := make([]Entry, 0, len(c.files))
	byID := map[string][]int{}
	for _, fs := range c.files {
		e := fs.entry
		e.Problems = slices.Clone(e.Problems)
		byID[e.ID] = append(byID[e.ID], len(entries))
		entries = append(entries, e)
	}
	for id, idx := range byID {
		if len(idx) < 2 {
			continue
		}
		for _, i := range idx {
			var others []string
			for _, j := range idx {
				if j != i {
					others = append(others, entries[j].Source)
				}
			}
			slices.Sort(others)
			entries[i].Problems = append(entries[i].Problems, jobs.Problem{
				Field: "id", Line: keyLine(entries[i].YAML, "id"),
				Message: fmt.Sprintf("the id %q is also used by %s: ids must be unique in the jobs directory", id, strings.Join(others, ", ")),
			})
		}
	}
	for i, e := range entries {
		if e.Schedule == nil || e.Schedule.JobID == "" || wire.ValidateID("job_id", e.Schedule.JobID) != nil {
			continue
		}
		idx := byID[e.Schedule.JobID]
		msg := ""
		switch {
		case len(idx) == 0:
			msg = fmt.Sprintf("there is no job %q in the jobs directory", e.Schedule.JobID)
		case entries[idx[0]].Kind != jobs.KindJob:
			msg = fmt.Sprintf("%q is a schedule, not a job", e.Schedule.JobID)
		}
		if msg != "" {
			entries[i].Problems = append(entries[i].Problems, jobs.Problem{Field: "job_id", Line: keyLine(e.YAML, "job_id"), Message: msg})
		}
	}
	for i := range entries {
		entries[i].Valid = len(entries[i].Problems) == 0
		slices.SortStableFunc(entries[i].Problems, func(a, b jobs.Problem) int { return a.Line - b.Line })
	}
	slices.SortFunc(entries, func(a, b Entry) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return strings.Compare(a.Source, b.Source)
	})
	return entries
}

// keyLine finds the line of a top-level key in YAML text (0 when absent).
func keyLine(text, key string) int {
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(key) + `\s*:`)
	for i, line := range strings.Split(text, "\n") {
		if re.MatchString(line) {
			return i + 1
		}
	}
	return 0
}
