package schedule

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/app/problem"
	"github.com/kanadehq/kanade/jobs"
	"github.com/kanadehq/kanade/store"
)

// Service owns the schedules kept in the database (created in the GUI or
// the API): it validates, audits, stores and then kicks the Scheduler, so
// that an edit applies before the next instant. A schedule defined by a
// file in the jobs directory wins: its id cannot be created, changed or
// deleted here. Refusals are *problem.Error (every bad field),
// errors wrapping dispatch.ErrConflict, and store.ErrNotFound.
type Service struct {
	sched *Scheduler
	audit *audit.Recorder
	now   func() time.Time
}

// NewService returns the service over sched (whose store, jobs catalog and
// dispatcher it checks against); rec records every change before it is
// made. now stamps the changes (nil: the real clock in UTC).
func NewService(sched *Scheduler, rec *audit.Recorder, now func() time.Time) *Service {
	if now == nil {
		now = func() time.Time { return time.Now().UTC() }
	}
	return &Service{sched: sched, audit: rec, now: now}
}

// Input is a schedule as the API and the New schedule form send it.
type Input struct {
	ID, Description, Cron, Timezone, JobID string
	// Target nil: the job's own target.
	Target *store.Target
	// Enabled nil: enabled.
	Enabled *bool
}

// Listed is a schedule with when it fires next and how it last fired.
type Listed struct {
	Def
	// NextFire is zero when it does not fire.
	NextFire time.Time
	// LastFire is nil when it never fired.
	LastFire *store.Fire
}

// List returns every schedule by id, from the files and the database
// (Scheduler.Defs), with its next and last fire.
func (s *Service) List(ctx context.Context) ([]Listed, error) {
	defs, err := s.sched.Defs(ctx)
	if err != nil {
		return nil, err
	}
	last, err := s.sched.st.LastFires(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]Listed, 0, len(defs))
	for _, d := range defs {
		l := Listed{Def: d, NextFire: NextFire(d, now)}
		if f, ok := last[d.ID]; ok {
			l.LastFire = &f
		}
		out = append(out, l)
	}
	return out, nil
}

// Create stores a new schedule by actor by.
func (s *Service) Create(ctx context.Context, in Input, by string) (store.Schedule, error) {
	return s.save(ctx, in, by, true)
}

// Update replaces the stored schedule in.ID (store.ErrNotFound when there
// is none in the database).
func (s *Service) Update(ctx context.Context, in Input, by string) (store.Schedule, error) {
	if _, err := s.sched.st.Schedule(ctx, in.ID); err != nil {
		return store.Schedule{}, err
	}
	return s.save(ctx, in, by, false)
}

// Toggle enables the stored schedule id when it is disabled, and disables
// it otherwise.
func (s *Service) Toggle(ctx context.Context, id, by string) (store.Schedule, error) {
	sc, err := s.sched.st.Schedule(ctx, id)
	if err != nil {
		return sc, err
	}
	enabled := !sc.Enabled
	return s.save(ctx, Input{ID: sc.ID, Description: sc.Description, Cron: sc.Cron, Timezone: sc.Timezone,
		JobID: sc.JobID, Target: sc.Target, Enabled: &enabled}, by, false)
}

// Delete removes the stored schedule id. What it ran stays.
func (s *Service) Delete(ctx context.Context, id, by string) error {
	if err := s.audit.Record(ctx, by, audit.ScheduleDelete, id, nil); err != nil {
		return err
	}
	if err := s.sched.st.DeleteSchedule(ctx, id); err != nil {
		s.audit.Failed(ctx, by, audit.ScheduleDelete, id, err)
		if src := s.sched.FileSource(id); src != "" && errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: schedule %s is defined by %s in the jobs directory; delete or disable it there", dispatch.ErrConflict, id, src)
		}
		return err
	}
	s.sched.Kick()
	return nil
}

func (s *Service) save(ctx context.Context, in Input, by string, create bool) (store.Schedule, error) {
	sc, err := s.check(ctx, in)
	if err != nil {
		return sc, err
	}
	now := s.now()
	sc.UpdatedAt = now
	action := audit.ScheduleUpdate
	if create {
		action = audit.ScheduleCreate
	}
	if err := s.audit.Record(ctx, by, action, sc.ID, map[string]any{"cron": sc.Cron, "job_id": sc.JobID, "target": sc.Target, "enabled": sc.Enabled, "timezone": sc.Timezone}); err != nil {
		return sc, err
	}
	if create {
		sc.CreatedAt, sc.CreatedBy = now, by
		err = s.sched.st.CreateSchedule(ctx, sc)
		if errors.Is(err, store.ErrExists) {
			err = fmt.Errorf("%w: schedule %s exists; change it with PUT /api/schedules/%s", dispatch.ErrConflict, sc.ID, sc.ID)
		}
	} else {
		err = s.sched.st.UpdateSchedule(ctx, sc)
	}
	if err != nil {
		s.audit.Failed(ctx, by, action, sc.ID, err)
		return sc, err
	}
	s.sched.Kick()
	return sc, nil
}

// check validates in, naming every bad field, and returns the schedule to
// store. An id a file in the jobs directory defines is a conflict.
func (s *Service) check(ctx context.Context, in Input) (store.Schedule, error) {
	var ps []problem.Problem
	bad := func(f, m string) { ps = append(ps, problem.Problem{Field: f, Message: m}) }
	if err := wire.ValidateID("id", in.ID); err != nil {
		bad("id", err.Error())
	}
	if _, err := ParseCron(in.Cron, ""); err != nil {
		bad("cron", err.Error())
	}
	if in.Timezone != "" {
		if _, err := ParseCron("@daily", in.Timezone); err != nil {
			bad("timezone", err.Error())
		}
	}
	if err := wire.ValidateID("job_id", in.JobID); err != nil {
		bad("job_id", err.Error())
	} else if !s.isJob(in.JobID) {
		bad("job_id", fmt.Sprintf("there is no job %q in the jobs directory", in.JobID))
	}
	if in.Target != nil {
		in.Target.Groups = wire.NormalizeGroups(in.Target.Groups)
		tps := dispatch.ValidateTarget(*in.Target)
		ps = append(ps, tps...)
		if len(tps) == 0 && len(in.Target.PCs) > 0 && s.sched.disp != nil {
			// As a run would be: a PC no agent has ever had is a typo.
			unknown, err := s.sched.disp.UnknownPCs(ctx, in.Target.PCs)
			if err != nil {
				return store.Schedule{}, err
			}
			if len(unknown) > 0 {
				bad("target.pcs", dispatch.UnknownPCsMessage(unknown))
			}
		}
	}
	if len(in.Description) > 500 {
		bad("description", "is longer than 500 characters")
	}
	if len(ps) > 0 {
		return store.Schedule{}, &problem.Error{Problems: ps}
	}
	sc := store.Schedule{ID: in.ID, Description: strings.TrimSpace(in.Description), Cron: strings.Join(strings.Fields(in.Cron), " "),
		Timezone: in.Timezone, JobID: in.JobID, Target: in.Target, Enabled: in.Enabled == nil || *in.Enabled}
	if src := s.sched.FileSource(sc.ID); src != "" {
		return sc, fmt.Errorf("%w: schedule %s is defined by %s in the jobs directory; edit that file", dispatch.ErrConflict, sc.ID, src)
	}
	return sc, nil
}

// isJob reports whether the jobs directory has a job (not a schedule) id.
func (s *Service) isJob(id string) bool {
	if s.sched.cat == nil {
		return false
	}
	e, ok := s.sched.cat.Get(id)
	return ok && e.Kind == jobs.KindJob
}
