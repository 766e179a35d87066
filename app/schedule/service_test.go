package schedule

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/bus/bustest"
	"github.com/kanadehq/kanade/app/catalog"
	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/problem"
	"github.com/kanadehq/kanade/app/sign"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

// serviceFixture is a Service over a real store, broker, dispatcher,
// audit trail and jobs directory: the job "tick", and the file schedule
// "nightly" of it.
type serviceFixture struct {
	st  *store.Store
	js  jetstream.JetStream
	svc *Service
}

func newServiceFixture(t *testing.T) *serviceFixture {
	t.Helper()
	ctx := t.Context()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := storetest.New(t)
	b := bustest.Open(t)
	keys, err := sign.Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	disp := dispatch.New(st, b.CmdNC, b.CmdJS, keys, events.New(), dispatch.Limits{
		DefaultTimeout: time.Minute, MaxTimeout: time.Hour, DefaultDeadline: time.Hour}, log)
	dir := t.TempDir()
	files := map[string]string{
		"tick.yaml":    "id: tick\nversion: \"1\"\ntarget:\n  pcs: [pc1]\nexecute:\n  shell: sh\n  script: echo tick\n  timeout: 30s\n",
		"nightly.yaml": "id: nightly\ncron: '0 3 * * *'\njob_id: tick\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cat, err := catalog.New(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertAgents(ctx, []store.Agent{{PCID: "pc1", LastSeen: time.Now(), Interval: 30 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	sched := New(st, cat, disp, 0, clockwork.NewFakeClockAt(t0), log)
	return &serviceFixture{st: st, js: b.JS, svc: NewService(sched, audit.New(b.JS, log), func() time.Time { return t0 })}
}

// audited returns the actions recorded for schedule id, in order.
func (f *serviceFixture) audited(t *testing.T, id string) []string {
	t.Helper()
	s, err := f.js.Stream(t.Context(), wire.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for seq := uint64(1); ; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var ev struct{ Action, Target string }
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Target == id {
			out = append(out, ev.Action)
		}
	}
}

func boolPtr(b bool) *bool { return &b }

func TestService_CreateUpdateToggleDelete(t *testing.T) {
	f := newServiceFixture(t)
	ctx := t.Context()
	in := Input{ID: "every-hour", Description: "  hourly tick ", Cron: "0  *  * * *", JobID: "tick", Target: &store.Target{Groups: []string{"Lab", "lab"}}}
	sc, err := f.svc.Create(ctx, in, "alice")
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	want := store.Schedule{ID: "every-hour", Description: "hourly tick", Cron: "0 * * * *", JobID: "tick", Target: &store.Target{Groups: []string{"lab"}},
		Enabled: true, CreatedBy: "alice", CreatedAt: t0, UpdatedAt: t0}
	if diff := cmp.Diff(want, sc); diff != "" {
		t.Errorf("Create returned (-want +got):\n%s", diff)
	}
	if _, err := f.svc.Create(ctx, in, "alice"); !errors.Is(err, dispatch.ErrConflict) {
		t.Errorf("Create twice: %v, want a conflict", err)
	}
	in.Cron, in.Enabled = "*/5 * * * *", boolPtr(false)
	if sc, err = f.svc.Update(ctx, in, "bob"); err != nil || sc.Cron != "*/5 * * * *" || sc.Enabled {
		t.Errorf("Update = %+v, %v; want the new cron, disabled", sc, err)
	}
	if sc, err = f.svc.Toggle(ctx, "every-hour", "bob"); err != nil || !sc.Enabled {
		t.Errorf("Toggle = %+v, %v; want enabled", sc, err)
	}
	stored, err := f.st.Schedule(ctx, "every-hour")
	if err != nil || !stored.Enabled || stored.Cron != "*/5 * * * *" || stored.CreatedBy != "alice" {
		t.Errorf("stored = %+v, %v; want enabled, the new cron, created by alice", stored, err)
	}
	list, err := f.svc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range list {
		ids = append(ids, l.ID)
		if l.ID == "every-hour" && !l.NextFire.Equal(t0.Add(5*time.Minute)) {
			t.Errorf("next fire of every-hour = %v, want %v", l.NextFire, t0.Add(5*time.Minute))
		}
	}
	if diff := cmp.Diff([]string{"every-hour", "nightly"}, ids); diff != "" {
		t.Errorf("List ids (-want +got):\n%s", diff)
	}
	if err := f.svc.Delete(ctx, "every-hour", "bob"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := f.st.Schedule(ctx, "every-hour"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after Delete: %v, want not found", err)
	}
	if err := f.svc.Delete(ctx, "every-hour", "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Delete twice: %v, want not found", err)
	}
	wantAudit := []string{audit.ScheduleCreate, audit.ScheduleCreate, audit.ScheduleCreate + audit.FailedSuffix, audit.ScheduleUpdate, audit.ScheduleUpdate,
		audit.ScheduleDelete, audit.ScheduleDelete, audit.ScheduleDelete + audit.FailedSuffix}
	if diff := cmp.Diff(wantAudit, f.audited(t, "every-hour")); diff != "" {
		t.Errorf("audit trail (-want +got):\n%s", diff)
	}
}

// Bad input names every bad field and stores and records nothing; a file
// in the jobs directory wins over the API.
func TestService_Refusals(t *testing.T) {
	f := newServiceFixture(t)
	ctx := t.Context()
	tests := []struct {
		name       string
		in         Input
		update     bool
		wantFields []string
		wantErr    error
	}{
		{name: "every field bad", in: Input{ID: "bad id", Cron: "every day", Timezone: "Mars/Olympus", JobID: "nosuchjob", Description: strings.Repeat("x", 501)},
			wantFields: []string{"id", "cron", "timezone", "job_id", "description"}},
		{name: "a schedule is not a job", in: Input{ID: "s", Cron: "@daily", JobID: "nightly"}, wantFields: []string{"job_id"}},
		{name: "unknown pc", in: Input{ID: "s", Cron: "@daily", JobID: "tick", Target: &store.Target{PCs: []string{"pc-typo"}}}, wantFields: []string{"target.pcs"}},
		{name: "empty target", in: Input{ID: "s", Cron: "@daily", JobID: "tick", Target: &store.Target{}}, wantFields: []string{"target"}},
		{name: "a file's id", in: Input{ID: "nightly", Cron: "@daily", JobID: "tick"}, wantErr: dispatch.ErrConflict},
		{name: "update of a file's schedule", in: Input{ID: "nightly", Cron: "@daily", JobID: "tick"}, update: true, wantErr: store.ErrNotFound},
		{name: "update of nothing", in: Input{ID: "gone", Cron: "@daily", JobID: "tick"}, update: true, wantErr: store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.update {
				_, err = f.svc.Update(ctx, tt.in, "alice")
			} else {
				_, err = f.svc.Create(ctx, tt.in, "alice")
			}
			var ve *problem.Error
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			case errors.As(err, &ve):
				var fields []string
				for _, p := range ve.Problems {
					fields = append(fields, p.Field)
				}
				if diff := cmp.Diff(tt.wantFields, fields); diff != "" {
					t.Errorf("problem fields (-want +got):\n%s", diff)
				}
			default:
				t.Fatalf("err = %v, want problems with %v", err, tt.wantFields)
			}
			if got := f.audited(t, tt.in.ID); len(got) != 0 {
				t.Errorf("recorded %v for a refused change", got)
			}
		})
	}
	if err := f.svc.Delete(ctx, "nightly", "alice"); !errors.Is(err, dispatch.ErrConflict) || !strings.Contains(err.Error(), "nightly.yaml") {
		t.Errorf("Delete of a file's schedule: %v, want a conflict naming nightly.yaml", err)
	}
	if scs, err := f.st.Schedules(ctx); err != nil || len(scs) != 0 {
		t.Errorf("stored %v, %v; want nothing", scs, err)
	}
}
