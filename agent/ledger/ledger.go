// Package ledger remembers, on disk, which executions an agent has
// claimed and finished, so that a redelivered command, a catch-up replay
// or an agent restart never runs the same execution twice.
//
// While an execution runs, the ledger also keeps what identifies its
// process tree (an opaque value from the runner, see runner.Tree), so that
// the next agent can kill what a crash left running.
//
// The file is an append-only list of JSON lines, fsynced on every write;
// it is compacted on open, dropping entries older than the retention and
// the trees of finished executions.
package ledger

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Retention is how long finished entries are remembered. It must exceed
// the longest time a command can stay in the EXEC stream.
const Retention = 60 * 24 * time.Hour

type line struct {
	ExecID string          `json:"e"`
	Done   bool            `json:"d,omitempty"`
	Tree   json.RawMessage `json:"r,omitempty"` // the process tree of the running execution
	At     int64           `json:"t"`           // unix ms
}

type entry struct {
	claimed time.Time
	done    bool
	tree    json.RawMessage // while not done
}

// Ledger is safe for concurrent use.
type Ledger struct {
	mu      sync.Mutex
	path    string
	f       *os.File
	entries map[string]entry
	created time.Time
}

// Open loads (or creates) the ledger at path.
func Open(path string, now time.Time) (*Ledger, error) {
	l := &Ledger{path: path, entries: map[string]entry{}}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	lines := 0
	if f, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var ln line
			if json.Unmarshal(sc.Bytes(), &ln) != nil || ln.ExecID == "" {
				continue // a torn last line after a crash
			}
			lines++
			e := l.entries[ln.ExecID]
			if ln.Done {
				e.done = true
			}
			if len(ln.Tree) > 0 {
				e.tree = ln.Tree
			}
			if e.claimed.IsZero() {
				e.claimed = time.UnixMilli(ln.At)
			}
			l.entries[ln.ExecID] = e
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("ledger %s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	for id, e := range l.entries {
		switch {
		case e.done && now.Sub(e.claimed) > Retention:
			delete(l.entries, id)
		case e.done && e.tree != nil:
			e.tree = nil // kept only while the execution runs
			l.entries[id] = e
		}
	}
	if lines != l.lineCount() {
		if err := l.rewrite(); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	l.f = f
	if st, err := os.Stat(path + ".created"); err == nil {
		l.created = st.ModTime()
	} else {
		l.created = now
		if err := os.WriteFile(path+".created", []byte(now.UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		_ = os.Chtimes(path+".created", now, now)
	}
	return l, nil
}

// Created is when this agent's ledger was first created: commands
// issued before it were meant for a fleet this agent was not part of.
func (l *Ledger) Created() time.Time { return l.created }

func (l *Ledger) lineCount() int {
	n := 0
	for _, e := range l.entries {
		n++
		if e.done {
			n++
		}
		if e.tree != nil {
			n++
		}
	}
	return n
}

func (l *Ledger) rewrite() error {
	tmp := l.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	ids := make([]string, 0, len(l.entries))
	for id := range l.entries {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, id := range ids {
		e := l.entries[id]
		_ = enc.Encode(line{ExecID: id, At: e.claimed.UnixMilli()})
		if e.tree != nil {
			_ = enc.Encode(line{ExecID: id, Tree: e.tree, At: e.claimed.UnixMilli()})
		}
		if e.done {
			_ = enc.Encode(line{ExecID: id, Done: true, At: e.claimed.UnixMilli()})
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("ledger: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("ledger: %w", err)
	}
	f.Close()
	if err := os.Rename(tmp, l.path); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

func (l *Ledger) append(ln line) error {
	b, _ := json.Marshal(ln)
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// Claim records that execID is about to run. It returns false, without
// writing, when the execution was claimed before (by this process or a
// previous one). The claim is on disk when Claim returns true.
func (l *Ledger) Claim(execID string, now time.Time) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.entries[execID]; ok {
		return false, nil
	}
	if err := l.append(line{ExecID: execID, At: now.UnixMilli()}); err != nil {
		return false, err
	}
	l.entries[execID] = entry{claimed: now}
	return true, nil
}

// Finish records that the final result of execID is safely queued.
func (l *Ledger) Finish(execID string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[execID]
	if !ok || e.done {
		return nil
	}
	if err := l.append(line{ExecID: execID, Done: true, At: e.claimed.UnixMilli()}); err != nil {
		return err
	}
	e.done, e.tree = true, nil
	l.entries[execID] = e
	return nil
}

// Started records the process tree of a claimed execution that is
// running (tree is JSON, see runner.Tree); the record is on disk when
// Started returns. An execution that is not claimed, or is finished, is
// left as it is.
func (l *Ledger) Started(execID string, tree []byte) error {
	if !json.Valid(tree) {
		return fmt.Errorf("ledger: the tree of %s is not JSON", execID)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[execID]
	if !ok || e.done {
		return nil
	}
	t := json.RawMessage(append([]byte(nil), tree...))
	if err := l.append(line{ExecID: execID, Tree: t, At: e.claimed.UnixMilli()}); err != nil {
		return err
	}
	e.tree = t
	l.entries[execID] = e
	return nil
}

// Tree returns the process tree recorded for an unfinished execution, or
// nil.
func (l *Ledger) Tree(execID string) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[execID]
	if e.done || e.tree == nil {
		return nil
	}
	return append([]byte(nil), e.tree...)
}

// Seen reports whether execID was claimed.
func (l *Ledger) Seen(execID string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.entries[execID]
	return ok
}

// Unfinished lists executions claimed but never finished: the agent
// stopped or crashed while they ran.
func (l *Ledger) Unfinished() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []string
	for id, e := range l.entries {
		if !e.done {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// Close closes the file.
func (l *Ledger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}
