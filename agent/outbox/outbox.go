// Package outbox is the agent's durable queue of messages for JetStream:
// results are written to disk first and removed only after the broker
// acknowledged them, so a broker outage or an agent restart loses nothing.
package outbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Item is one queued message.
type Item struct {
	Name    string // file name; orders items
	Subject string
	Data    []byte
}

// Outbox is a directory of message files, safe for concurrent use.
type Outbox struct {
	dir string
	mu  sync.Mutex
	seq uint64
}

// Open opens (or creates) the outbox directory.
func Open(dir string) (*Outbox, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	o := &Outbox{dir: dir}
	items, err := o.Pending()
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		if n, err := strconv.ParseUint(strings.TrimSuffix(it.Name, ".msg"), 10, 64); err == nil && n > o.seq {
			o.seq = n
		}
	}
	return o, nil
}

// Put queues a message durably (written, fsynced and renamed into place).
func (o *Outbox) Put(subject string, data []byte) error {
	if strings.ContainsAny(subject, "\n\r") || subject == "" {
		return fmt.Errorf("outbox: bad subject %q", subject)
	}
	o.mu.Lock()
	o.seq++
	name := fmt.Sprintf("%020d.msg", o.seq)
	o.mu.Unlock()
	tmp := filepath.Join(o.dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	_, werr := f.Write(append(append([]byte(subject), '\n'), data...))
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("outbox: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(o.dir, name)); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// Pending returns the queued items, oldest first.
func (o *Outbox) Pending() ([]Item, error) {
	ents, err := os.ReadDir(o.dir)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	var items []Item
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".msg") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(o.dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
		subj, data, ok := bytes.Cut(b, []byte{'\n'})
		if !ok {
			os.Remove(filepath.Join(o.dir, e.Name())) // cannot happen after an atomic rename; drop garbage
			continue
		}
		items = append(items, Item{Name: e.Name(), Subject: string(subj), Data: data})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Name < items[j].Name })
	return items, nil
}

// Remove deletes a delivered item.
func (o *Outbox) Remove(it Item) error {
	if err := os.Remove(filepath.Join(o.dir, it.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}
