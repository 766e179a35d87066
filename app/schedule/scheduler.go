package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/catalog"
	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/app/problem"
	"github.com/kanadehq/kanade/jobs"
	"github.com/kanadehq/kanade/store"
)

// Actor is who the audit log says started a scheduled execution.
const Actor = "scheduler"

// Def is a schedule from either source.
type Def struct {
	ID, Description, Cron, Timezone, JobID string
	Target                                 *store.Target
	Enabled                                bool
	// Source is the file in the jobs directory ("" = created in the GUI or API).
	Source string
	// Problem is why it cannot fire (an invalid file or cron).
	Problem string
	// Shadowed: a file defines the same id, which wins.
	Shadowed bool
}

// Timing of Run.
const (
	// reconcileEvery is how often Run reads the definitions without a
	// Kick (a file edited in the jobs directory, another server's edit).
	reconcileEvery = 2 * time.Second
	// outdated: an instant Run finds more than this late (the process was
	// stalled) is skipped rather than fired late.
	outdated = 5 * time.Second
)

// Scheduler fires the enabled schedules through the dispatcher.
type Scheduler struct {
	st    *store.Store
	cat   *catalog.Catalog
	disp  *dispatch.Dispatcher
	log   *slog.Logger
	clock clockwork.Clock
	// Grace: a fire missed while no server ran is made up once at start
	// when it is at most this old (and the schedule had fired before).
	Grace time.Duration

	kick chan struct{}
	// inflight counts the fires Run has started that have not ended.
	inflight sync.WaitGroup
}

// New returns a scheduler that fires by clock (clockwork.NewRealClock()
// in the server; tests pass a fake one and move it). cat may be nil (no
// file schedules).
func New(st *store.Store, cat *catalog.Catalog, disp *dispatch.Dispatcher, grace time.Duration, clock clockwork.Clock, log *slog.Logger) *Scheduler {
	return &Scheduler{st: st, cat: cat, disp: disp, log: log, Grace: grace, clock: clock, kick: make(chan struct{}, 1)}
}

// now is the clock's time in UTC.
func (s *Scheduler) now() time.Time { return s.clock.Now().UTC() }

// Kick makes the scheduler pick up edits now.
func (s *Scheduler) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Defs lists every schedule by id: the files' first, then the database's
// (a database schedule whose id a file uses is Shadowed: the file wins).
func (s *Scheduler) Defs(ctx context.Context) ([]Def, error) {
	var out []Def
	files := map[string]bool{}
	if s.cat != nil {
		for _, e := range s.cat.List() {
			if e.Kind != jobs.KindSchedule || e.Schedule == nil {
				continue
			}
			sc := e.Schedule
			d := Def{ID: sc.ID, Description: sc.Description, Cron: sc.Cron, Timezone: sc.Timezone, JobID: sc.JobID, Enabled: sc.Enabled, Source: e.Source}
			if sc.Target != nil {
				d.Target = &store.Target{All: sc.Target.All, Groups: sc.Target.Groups, PCs: sc.Target.PCs}
			}
			if !e.Valid {
				d.Problem = "the file has problems; see the Jobs page"
				if len(e.Problems) > 0 {
					d.Problem = e.Problems[0].Field + ": " + e.Problems[0].Message
				}
			}
			if d.ID == "" {
				continue
			}
			files[d.ID] = true
			out = append(out, d)
		}
	}
	dbs, err := s.st.Schedules(ctx)
	if err != nil {
		return nil, err
	}
	for _, sc := range dbs {
		out = append(out, Def{ID: sc.ID, Description: sc.Description, Cron: sc.Cron, Timezone: sc.Timezone, JobID: sc.JobID,
			Target: sc.Target, Enabled: sc.Enabled, Shadowed: files[sc.ID]})
	}
	for i := range out {
		if out[i].Problem == "" {
			if _, err := ParseCron(out[i].Cron, out[i].Timezone); err != nil {
				out[i].Problem = err.Error()
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// FileSource returns the jobs-directory file that defines schedule id
// ("" when none): a file's schedule cannot be changed through the API.
func (s *Scheduler) FileSource(id string) string {
	if s.cat == nil {
		return ""
	}
	for _, e := range s.cat.List() {
		if e.Kind == jobs.KindSchedule && e.Schedule != nil && e.Schedule.ID == id {
			return e.Source
		}
	}
	return ""
}

// Live reports whether d fires.
func (d Def) Live() bool { return d.Enabled && d.Problem == "" && !d.Shadowed }

func (d Def) key() string {
	return fmt.Sprintf("%s|%s|%s|%v|%v", d.Cron, d.Timezone, d.JobID, d.Target, d.Enabled)
}

// Run schedules until ctx is done: it makes up fires missed while down
// (see Grace), then fires each live schedule at its instants. It reads
// the definitions at every wake-up (an instant, a Kick, or reconcileEvery
// at the latest), so an edit applies before the next instant. Each fire
// runs on its own goroutine; Run returns once they have ended.
func (s *Scheduler) Run(ctx context.Context) error {
	if err := s.catchUp(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("scheduler: catching up", "err", err)
	}
	defer s.inflight.Wait()
	active := map[string]*entry{}
	for {
		if err := s.reconcile(ctx, active); err != nil && ctx.Err() == nil {
			s.log.Error("scheduler: reconcile", "err", err)
		}
		now := s.now()
		wake := now.Add(reconcileEvery)
		for _, e := range active {
			for !e.next.IsZero() && !e.next.After(now) {
				if late := now.Sub(e.next); late > outdated {
					s.log.Warn("scheduler: instant skipped, found too late", "schedule", e.def.ID, "at", e.next, "late", late)
					e.advance(now)
					continue
				}
				d, at := e.def, e.next
				s.inflight.Go(func() {
					if _, err := s.Fire(ctx, d, at); err != nil && ctx.Err() == nil {
						s.log.Warn("schedule fire", "schedule", d.ID, "at", at, "err", err)
					}
				})
				e.advance(at)
			}
			if !e.next.IsZero() && e.next.Before(wake) {
				wake = e.next
			}
		}
		t := s.clock.NewTimer(wake.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.Chan():
		case <-s.kick:
			t.Stop()
		}
	}
}

// entry is a live schedule in Run: its definition, its parsed cron and
// its next instant (zero: none to come).
type entry struct {
	key  string
	def  Def
	cron Cron
	next time.Time
}

// advance sets next to e's first instant after t (zero when there is
// none, such as past a year the cron names).
func (e *entry) advance(t time.Time) {
	n, err := e.cron.Next(t)
	if err != nil {
		n = time.Time{}
	}
	e.next = n
}

// reconcile brings active in step with the definitions: a new or edited
// live schedule starts from its first instant after now, one no longer
// live leaves.
func (s *Scheduler) reconcile(ctx context.Context, active map[string]*entry) error {
	defs, err := s.Defs(ctx)
	if err != nil {
		return err
	}
	now := s.now()
	want := map[string]bool{}
	for _, d := range defs {
		if !d.Live() {
			continue
		}
		want[d.ID] = true
		if e := active[d.ID]; e != nil && e.key == d.key() {
			continue
		}
		c, err := ParseCron(d.Cron, d.Timezone)
		if err != nil {
			continue
		}
		e := &entry{key: d.key(), def: d, cron: c}
		e.advance(now)
		active[d.ID] = e
		s.log.Info("schedule active", "schedule", d.ID, "cron", d.Cron, "job_id", d.JobID)
	}
	for id := range active {
		if !want[id] {
			delete(active, id)
			s.log.Info("schedule inactive", "schedule", id)
		}
	}
	return nil
}

// Fire fires d's instant at unless it was fired already (here, before a
// restart, or by another server process): it claims the instant, then
// deploys the job through the dispatcher as the actor "scheduler". During
// the emergency stop the fire is recorded as suppressed. It returns the
// execution id ("" when nothing ran).
func (s *Scheduler) Fire(ctx context.Context, d Def, at time.Time) (string, error) {
	return s.fire(ctx, d, at, "")
}

// MadeUp is the reason recorded on a fire made up at start.
const MadeUp = "missed while no server ran; made up at start"

func (s *Scheduler) fire(ctx context.Context, d Def, at time.Time, note string) (string, error) {
	ok, err := s.st.ClaimFire(ctx, d.ID, at, s.now())
	if err != nil || !ok {
		return "", err
	}
	finish := func(status, execID, reason string) {
		if err := s.st.FinishFire(context.WithoutCancel(ctx), d.ID, at, status, execID, reason); err != nil {
			s.log.Error("scheduler: record fire", "schedule", d.ID, "err", err)
		}
	}
	if err := s.disp.Stopped(ctx); err != nil {
		s.log.Warn("schedule fire suppressed by the emergency stop", "schedule", d.ID, "at", at)
		finish(store.FireSuppressed, "", "the emergency stop is on")
		return "", nil
	}
	var m *jobs.Manifest
	if s.cat != nil {
		if e, ok := s.cat.Get(d.JobID); ok && e.Kind == jobs.KindJob && e.Valid {
			m = e.Manifest
		}
	}
	if m == nil {
		finish(store.FireFailed, "", fmt.Sprintf("job %s is not in the jobs directory or is invalid", d.JobID))
		return "", fmt.Errorf("schedule %s: job %s not found", d.ID, d.JobID)
	}
	e, err := s.disp.Deploy(ctx, dispatch.DeployRequest{Manifest: *m, Target: d.Target, Actor: Actor, Title: "schedule " + d.ID})
	if err != nil {
		reason := err.Error()
		var ve *problem.Error
		if errors.As(err, &ve) && len(ve.Problems) > 0 {
			reason = ve.Problems[0].Field + ": " + ve.Problems[0].Message
		}
		finish(store.FireFailed, "", reason)
		if errors.Is(err, audit.ErrUnavailable) {
			s.log.Error("schedule fire not run: its audit event cannot be recorded", "schedule", d.ID, "at", at, "err", err)
		} else {
			s.log.Warn("schedule fire failed", "schedule", d.ID, "at", at, "err", err)
		}
		return "", nil
	}
	finish(store.FireFired, e.ExecID, note)
	s.log.Info("schedule fired", "schedule", d.ID, "at", at, "exec_id", e.ExecID)
	return e.ExecID, nil
}

// catchUp makes up, once, the newest instant each schedule missed while no
// server ran, when it is at most Grace old and the schedule has fired
// before. Older missed instants are skipped (logged).
func (s *Scheduler) catchUp(ctx context.Context) error {
	defs, err := s.Defs(ctx)
	if err != nil {
		return err
	}
	last, err := s.st.LastFires(ctx)
	if err != nil {
		return err
	}
	now := s.now()
	for _, d := range defs {
		lf, fired := last[d.ID]
		if !d.Live() || !fired {
			continue
		}
		c, err := ParseCron(d.Cron, d.Timezone)
		if err != nil {
			continue
		}
		next, err := c.Next(lf.At)
		if err != nil || next.After(now) {
			continue // nothing missed
		}
		if prev := c.Latest(now, s.Grace); !prev.IsZero() && prev.After(lf.At) {
			s.log.Info("scheduler: making up a fire missed while down", "schedule", d.ID, "at", prev)
			if _, err := s.fire(ctx, d, prev, MadeUp); err != nil {
				s.log.Warn("scheduler: make-up fire", "schedule", d.ID, "err", err)
			}
			continue
		}
		s.log.Warn("scheduler: fires missed while down are skipped (older than the grace)", "schedule", d.ID, "since", next, "grace", s.Grace)
	}
	return nil
}

// NextFire returns when d fires next (zero when it does not).
func NextFire(d Def, now time.Time) time.Time {
	if !d.Live() {
		return time.Time{}
	}
	c, err := ParseCron(d.Cron, d.Timezone)
	if err != nil {
		return time.Time{}
	}
	n, _ := c.Next(now)
	return n
}
