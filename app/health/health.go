// Package health tells whether the server can do its work, not only
// whether it answers: the broker stores (no stream holds a write error and
// a canary publish is acknowledged), the database takes a write, and the
// data volume has room (a warning when it is filling, an error when it is
// full). Its monitor also brings the embedded broker's JetStream back
// once a full disk has space again, without restarting the process, and
// it gathers what the System page shows.
package health

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/store"
)

// Defaults of Options.
const (
	// Interval between the monitor's checks.
	Interval = 5 * time.Second
	// CriticalFree: a volume with less free space makes the server
	// unavailable (every write is about to fail).
	CriticalFree = 32 << 20
	// RecoverFree: JetStream is restarted after a full disk once the
	// store's volume has this much free again.
	RecoverFree = 2 * CriticalFree
	// MinRestartGap is the least time between two JetStream restarts; it
	// doubles after each restart that did not clear the errors, up to
	// MaxRestartGap.
	MinRestartGap = 10 * time.Second
	MaxRestartGap = 5 * time.Minute
	// checkTimeout bounds one check, and partTimeout each of its parts
	// that cannot be cancelled (the broker's own health report, statfs).
	checkTimeout = 10 * time.Second
	partTimeout  = 5 * time.Second
	// reuseFor: Check answers with the last report when it is this fresh,
	// so a load balancer polling /healthz does not write on every poll.
	reuseFor = time.Second
)

// Options configure a Monitor.
type Options struct {
	Bus   *bus.Bus
	Store *store.Store
	// Paths are the directories whose volumes are watched, by role
	// ("data", "database"); the embedded broker's store is added.
	Paths map[string]string
	// WarnPercent: a volume this full is a warning ([server]
	// disk_warn_percent).
	WarnPercent int
	// Name is this server's name in the canary's subject.
	Name string
	Log  *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Status is the outcome of a check.
type Status string

// The statuses, from good to bad.
const (
	OK          Status = "ok"
	Warning     Status = "warning"
	Unavailable Status = "unavailable"
)

// Volume is one watched volume.
type Volume struct {
	bus.Volume
	// Roles are what lives on it: "nats", "data", "database".
	Roles       []string `json:"roles"`
	UsedPercent int      `json:"used_percent"`
	Status      Status   `json:"status"`
}

// Report is the outcome of one check.
type Report struct {
	Status Status    `json:"status"`
	At     time.Time `json:"checked_at"`
	// NATS, DB and Disk are "ok", "warning: …" or "error: …" with every
	// problem of that part ("; " between them).
	NATS string `json:"nats"`
	DB   string `json:"db"`
	Disk string `json:"disk"`
	// Problems make the server unavailable; Warnings do not.
	Problems    []string          `json:"problems,omitempty"`
	Warnings    []string          `json:"warnings,omitempty"`
	WriteErrors []bus.StreamError `json:"write_errors,omitempty"`
	Volumes     []Volume          `json:"volumes"`
}

// Monitor checks the server's health and repairs what it can.
type Monitor struct {
	o Options

	// checking holds a token while a check runs: one at a time, and a
	// caller whose context ends stops waiting.
	checking chan struct{}
	mu       sync.Mutex
	last     Report
	gap      time.Duration // before the next restart may run
	nextTry  time.Time
}

// New returns a monitor; Run starts its checks.
func New(o Options) *Monitor {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.WarnPercent <= 0 {
		o.WarnPercent = 80
	}
	if o.Name == "" {
		o.Name = "kanade"
	}
	return &Monitor{o: o, gap: MinRestartGap, checking: make(chan struct{}, 1)}
}

// WarnPercent is how full a volume may be before it is a warning.
func (m *Monitor) WarnPercent() int { return m.o.WarnPercent }

// Last is the latest report (zero before the first check); it reads
// nothing.
func (m *Monitor) Last() Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// Check checks now, unless the last report is under a second old. While
// another check runs it waits for that one; when ctx ends first, or the
// other check takes longer than a check may, it answers with the last
// report.
func (m *Monitor) Check(ctx context.Context) Report {
	wait := time.NewTimer(checkTimeout)
	defer wait.Stop()
	select {
	case m.checking <- struct{}{}:
	case <-ctx.Done():
		return m.Last()
	case <-wait.C:
		return m.Last()
	}
	defer func() { <-m.checking }()
	if last := m.Last(); !last.At.IsZero() && m.o.Now().Sub(last.At) < reuseFor {
		return last
	}
	return m.check(ctx)
}

// check runs every part and stores the report; the caller holds a
// checking token.
func (m *Monitor) check(ctx context.Context) Report {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	r := Report{At: m.o.Now(), NATS: "ok", DB: "ok", Disk: "ok"}
	natsProblem := func(msg string) {
		r.Problems = append(r.Problems, "nats: "+msg)
		r.NATS = addTo(r.NATS, "error: ", msg)
	}
	if b := m.o.Bus; b != nil {
		if err := b.Healthy(ctx); err != nil {
			natsProblem(err.Error())
		}
		werrs, ok := bounded(ctx, partTimeout, b.WriteErrors)
		if !ok {
			natsProblem(fmt.Sprintf("the broker did not report its streams' state within %s", partTimeout))
		}
		r.WriteErrors = werrs
		jsOff := false
		for _, e := range r.WriteErrors {
			if e.Stream == "" {
				jsOff = true
				natsProblem(e.Error)
			} else {
				natsProblem(fmt.Sprintf("stream %s cannot store: %s", e.Stream, e.Error))
			}
		}
		if !jsOff {
			if err := b.Canary(ctx, m.o.Name); err != nil {
				natsProblem(err.Error())
			}
		}
	}
	if st := m.o.Store; st != nil {
		err := st.Ping(ctx)
		if err == nil {
			err = st.ProbeWrite(ctx, r.At)
		}
		if err != nil {
			r.Problems = append(r.Problems, "db: "+err.Error())
			r.DB = "error: " + err.Error()
		}
	}
	vols, ok := bounded(ctx, partTimeout, m.volumes)
	if !ok {
		msg := fmt.Sprintf("the volumes' free space could not be read within %s", partTimeout)
		r.Problems = append(r.Problems, "disk: "+msg)
		r.Disk = addTo(r.Disk, "error: ", msg)
	}
	r.Volumes = vols
	for _, v := range r.Volumes {
		where := fmt.Sprintf("the volume of %s (%s)", andList(v.Roles), v.Path)
		switch v.Status {
		case Unavailable:
			msg := fmt.Sprintf("%s is full: %s free of %s", where, bus.SizeText(v.Free), bus.SizeText(v.Total))
			r.Problems = append(r.Problems, "disk: "+msg)
			if strings.HasPrefix(r.Disk, "warning") {
				r.Disk = "ok" // an error outranks the warnings
			}
			r.Disk = addTo(r.Disk, "error: ", msg)
		case Warning:
			msg := fmt.Sprintf("%s is %d%% full (%s free of %s; warning at %d%%)", where, v.UsedPercent, bus.SizeText(v.Free), bus.SizeText(v.Total), m.o.WarnPercent)
			r.Warnings = append(r.Warnings, "disk: "+msg)
			if !strings.HasPrefix(r.Disk, "error") {
				r.Disk = addTo(r.Disk, "warning: ", msg)
			}
		}
	}
	switch {
	case len(r.Problems) > 0:
		r.Status = Unavailable
	case len(r.Warnings) > 0:
		r.Status = Warning
	default:
		r.Status = OK
	}
	m.mu.Lock()
	prev := m.last
	m.last = r
	m.mu.Unlock()
	m.logChange(prev, r)
	return r
}

// logChange logs when the status changes, or which parts fail.
func (m *Monitor) logChange(prev, r Report) {
	if signature(prev) == signature(r) {
		return
	}
	switch r.Status {
	case Unavailable:
		m.o.Log.Error("health: the server cannot do its work", "problems", strings.Join(r.Problems, "; "))
	case Warning:
		m.o.Log.Warn("health: warning", "warnings", strings.Join(r.Warnings, "; "))
	default:
		if prev.Status != "" {
			m.o.Log.Info("health: healthy again")
		}
	}
}

// volumes stats every watched volume once (paths on one volume share it).
func (m *Monitor) volumes() []Volume {
	paths := map[string]string{}
	for role, p := range m.o.Paths {
		if p != "" {
			paths[role] = p
		}
	}
	if m.o.Bus != nil {
		if dir := m.o.Bus.Plan().Dir; dir != "" {
			paths["nats"] = dir
		}
	}
	var out []Volume
	byID := map[string]int{}
	for _, role := range sortedKeys(paths) {
		v, err := bus.StatVolume(paths[role])
		if err != nil {
			// A directory that is gone is not the disk's state: the parts
			// that write there report their own errors.
			m.o.Log.Debug("health: volume", "path", paths[role], "err", err)
			continue
		}
		id := v.ID
		if id == "" {
			id = filepath.Clean(v.Path)
		}
		if i, ok := byID[id]; ok {
			out[i].Roles = append(out[i].Roles, role)
			continue
		}
		vol := Volume{Volume: v, Roles: []string{role}, UsedPercent: v.UsedPercent(), Status: OK}
		switch {
		case v.Free < CriticalFree:
			vol.Status = Unavailable
		case vol.UsedPercent >= m.o.WarnPercent:
			vol.Status = Warning
		}
		byID[id] = len(out)
		out = append(out, vol)
	}
	return out
}

// Run checks every interval until ctx is done, and restarts the embedded
// broker's JetStream when streams hold write errors (or JetStream turned
// itself off) and the store's volume has room again.
func (m *Monitor) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		// The restart runs outside the check, so /healthz answers meanwhile.
		if m.repair(ctx, m.runCheck(ctx)) {
			m.runCheck(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// runCheck checks now (Run's checks never reuse a report).
func (m *Monitor) runCheck(ctx context.Context) Report {
	select {
	case m.checking <- struct{}{}:
	case <-ctx.Done():
		return m.Last()
	}
	defer func() { <-m.checking }()
	return m.check(ctx)
}

// repair restarts JetStream when r says it needs it and it may; it
// reports whether it did.
func (m *Monitor) repair(ctx context.Context, r Report) bool {
	b := m.o.Bus
	if b == nil || !b.Embedded() || len(r.WriteErrors) == 0 || ctx.Err() != nil {
		return false
	}
	for _, v := range r.Volumes {
		if containsRole(v.Roles, "nats") && v.Free < RecoverFree {
			return false // writing would fail again at once
		}
	}
	now := m.o.Now()
	if now.Before(m.nextTry) {
		return false
	}
	m.o.Log.Warn("health: restarting JetStream to clear the streams' write errors", "errors", len(r.WriteErrors))
	err := b.RestartJetStream(ctx)
	if err == nil && len(b.WriteErrors()) == 0 {
		m.gap = MinRestartGap
	} else {
		m.gap = min(m.gap*2, MaxRestartGap)
	}
	m.nextTry = now.Add(m.gap)
	return true
}

func containsRole(roles []string, role string) bool {
	for _, r := range roles {
		if r == role {
			return true
		}
	}
	return false
}

// andList joins words as prose: "a", "a and b", "a, b and c".
func andList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

// bounded runs fn, giving up after d or when ctx ends: a part that hangs
// (a wedged disk, a stuck broker) becomes a problem instead of a check
// that never ends. fn keeps running in the background until it returns.
func bounded[T any](ctx context.Context, d time.Duration, fn func() T) (T, bool) {
	ch := make(chan T, 1)
	go func() { ch <- fn() }()
	t := time.NewTimer(d)
	defer t.Stop()
	var zero T
	select {
	case v := <-ch:
		return v, true
	case <-t.C:
		return zero, false
	case <-ctx.Done():
		return zero, false
	}
}

// addTo adds msg to a part's state: "ok" becomes prefix+msg, anything
// else gets "; "+msg.
func addTo(state, prefix, msg string) string {
	if state == "ok" {
		return prefix + msg
	}
	return state + "; " + msg
}

// signature is a report's status and the state of each part without its
// details (free space changes on every check).
func signature(r Report) string {
	state := func(s string) string { k, _, _ := strings.Cut(s, ":"); return k }
	return string(r.Status) + " " + state(r.NATS) + " " + state(r.DB) + " " + state(r.Disk)
}
