//go:build !windows

package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/jwt/v2"

	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/config"
	"github.com/kanadehq/kanade/app/schedule"
)

// jobsDir writes a job "tick" (echo on every PC of group lab) and returns the directory.
func jobsDir(t *testing.T) string {
	dir := t.TempDir()
	m := "id: tick\nversion: \"1\"\ntarget:\n  groups: [lab]\nexecute:\n  shell: sh\n  script: echo tick\n  timeout: 30s\n"
	if err := os.WriteFile(filepath.Join(dir, "tick.yaml"), []byte(m), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

type fire struct {
	At     time.Time `json:"at"`
	Status string    `json:"status"`
	ExecID string    `json:"exec_id"`
	Reason string    `json:"reason"`
}

func (s *testServer) fires(t *testing.T, id string) []fire {
	t.Helper()
	var out struct {
		Fires []fire `json:"fires"`
	}
	if code := s.get(t, "/api/schedules/"+id+"/fires?limit=1000", &out); code != 200 {
		t.Fatalf("fires of %s: %d", id, code)
	}
	return out.Fires
}

// waitFires waits for n settled fires of schedule id (a fire is "firing"
// from its claim until its execution is recorded) and returns the settled
// ones.
func (s *testServer) waitFires(t *testing.T, id string, n int) []fire {
	t.Helper()
	var fs []fire
	checkFor(t, 30*time.Second, func() error {
		fs = fs[:0]
		for _, f := range s.fires(t, id) {
			if f.Status != "firing" {
				fs = append(fs, f)
			}
		}
		if len(fs) < n {
			return fmt.Errorf("%d settled fires of %s, want %d", len(fs), id, n)
		}
		return nil
	})
	return fs
}

// A schedule made in the API fires at its instants through the dispatcher
// (actor scheduler), on a real agent; the emergency stop suppresses it,
// disabling it leaves it without a next fire, bad input names the field.
// That a schedule not live never fires is app/schedule's
// TestScheduler_NotLiveDoesNotFire and TestScheduler_DisableAndEnable, on
// a fake clock.
func TestSchedule_FiresEnableEstop(t *testing.T) {
	skipIfShort(t)
	dir := jobsDir(t)
	s := startServerWith(t, t.TempDir(), "", func(c *config.Config) { c.Server.JobsDir = dir })
	startAgent(t, s, "pc1", []string{"lab"}, "")
	s.waitOnline(t, "pc1")
	var bad struct {
		Error struct {
			Details []struct{ Field, Message string } `json:"details"`
		} `json:"error"`
	}
	if code := s.post(t, "/api/schedules", map[string]any{"id": "x y", "cron": "61 * * * *", "job_id": "nope", "timezone": "Mars/Base"}, &bad); code != 400 || len(bad.Error.Details) != 4 {
		t.Errorf("bad schedule: %d %+v (want id, cron/timezone, job_id)", code, bad.Error.Details)
	}
	if code := s.post(t, "/api/schedules", map[string]any{"id": "every2", "cron": "*/2 * * * * *", "job_id": "tick"}, nil); code != 201 {
		t.Fatalf("create: %d", code)
	}
	if code := s.post(t, "/api/schedules", map[string]any{"id": "every2", "cron": "*/2 * * * * *", "job_id": "tick"}, nil); code != 409 {
		t.Errorf("create twice: %d, want 409", code)
	}
	if code := s.post(t, "/api/schedules", map[string]any{"id": "off", "cron": "* * * * * *", "job_id": "tick", "enabled": false}, nil); code != 201 {
		t.Fatalf("create disabled: %d", code)
	}
	fs := s.waitFires(t, "every2", 2)
	for _, f := range fs {
		if f.At.Second()%2 != 0 || f.At.Nanosecond() != 0 || f.Status != "fired" || f.ExecID == "" {
			t.Errorf("fire %+v: want an even second, fired, with an execution", f)
		}
		e := s.waitExec(t, f.ExecID, completed)
		var ex struct {
			InitiatedBy string    `json:"initiated_by"`
			CreatedAt   time.Time `json:"created_at"`
		}
		s.get(t, "/api/executions/"+f.ExecID, &ex)
		if ex.InitiatedBy != "scheduler" || e.Counts["succeeded"] != 1 || ex.CreatedAt.Truncate(time.Second) != f.At {
			t.Errorf("execution of %v: by %s created %v counts %v; want scheduler, within the fire's second, succeeded", f.At, ex.InitiatedBy, ex.CreatedAt, e.Counts)
		}
	}
	if got := s.fires(t, "off"); len(got) != 0 {
		t.Errorf("a disabled schedule fired: %+v", got)
	}
	var list struct {
		Schedules []struct {
			ID, Human, LastExecID string
			NextFireAt            *time.Time `json:"next_fire_at"`
		} `json:"schedules"`
	}
	s.get(t, "/api/schedules", &list)
	if len(list.Schedules) != 2 || list.Schedules[0].ID != "every2" || list.Schedules[0].Human != "every 2 seconds" || list.Schedules[0].NextFireAt == nil || list.Schedules[1].NextFireAt != nil {
		t.Errorf("schedules = %+v", list.Schedules)
	}
	// The emergency stop suppresses fires.
	if code := s.post(t, "/api/emergency-stop", map[string]any{"reason": "test"}, nil); code != 200 {
		t.Fatalf("estop: %d", code)
	}
	n := len(s.fires(t, "every2"))
	checkFor(t, 15*time.Second, func() error {
		fs := s.fires(t, "every2")
		if len(fs) < n+2 || fs[0].Status != "suppressed" {
			return fmt.Errorf("newest fire %+v", fs[0])
		}
		return nil
	})
	req, _ := http.NewRequest(http.MethodDelete, s.URL+"/api/emergency-stop", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	// Disabled, it has no next fire.
	if code := s.call(t, http.MethodPut, "/api/schedules/every2", "", map[string]any{"cron": "*/2 * * * * *", "job_id": "tick", "enabled": false}, nil); code != 200 {
		t.Fatalf("disable: %d", code)
	}
	s.get(t, "/api/schedules", &list)
	if len(list.Schedules) != 2 || list.Schedules[0].ID != "every2" || list.Schedules[0].NextFireAt != nil {
		t.Errorf("schedules after disabling every2 = %+v, want it without a next fire", list.Schedules)
	}
	if code := s.call(t, http.MethodDelete, "/api/schedules/every2", "", nil, nil); code != 204 {
		t.Errorf("delete: %d", code)
	}
}

// Two server processes on the same database and NATS: every instant fires
// once.
func TestSchedule_TwoServersFireOnce(t *testing.T) {
	skipIfShort(t)
	dir, data := jobsDir(t), t.TempDir()
	s1 := startServerWith(t, data, "", func(c *config.Config) { c.Server.JobsDir = dir })
	// The second process joins the first one's broker with the server's own
	// user and shares its data directory (database, keys).
	id, err := bus.LoadIdentity(filepath.Join(data, bus.SecretsDir))
	if err != nil {
		t.Fatal(err)
	}
	userJWT, err := id.ServerUserJWT()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := id.ServerUser.Seed()
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	if err != nil {
		t.Fatal(err)
	}
	credsPath := filepath.Join(t.TempDir(), "server.creds")
	if err := os.WriteFile(credsPath, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := startServerWith(t, data, "", func(c *config.Config) {
		c.Server.JobsDir, c.NATS.URL, c.NATS.Credentials = dir, s1.NATSURL, credsPath
	})
	startAgent(t, s1, "pc1", []string{"lab"}, "")
	s1.waitOnline(t, "pc1")
	if code := s2.post(t, "/api/schedules", map[string]any{"id": "both", "cron": "* * * * * *", "job_id": "tick"}, nil); code != 201 {
		t.Fatalf("create: %d", code)
	}
	fs := s1.waitFires(t, "both", 6)
	execs := map[string]bool{}
	for _, f := range fs {
		if f.ExecID == "" || execs[f.ExecID] {
			t.Errorf("fire %+v: missing or repeated execution", f)
		}
		execs[f.ExecID] = true
	}
	var list struct {
		Executions []struct {
			CreatedAt time.Time `json:"created_at"`
		} `json:"executions"`
	}
	s1.get(t, "/api/executions?job_id=tick&limit=1000", &list)
	perSecond := map[time.Time]int{}
	for _, e := range list.Executions {
		perSecond[e.CreatedAt.Truncate(time.Second)]++
	}
	for sec, n := range perSecond {
		if n != 1 {
			t.Errorf("%d executions in the second %v, want 1", n, sec)
		}
	}
	if len(list.Executions) < 6 {
		t.Errorf("%d executions for 6+ fires", len(list.Executions))
	}
	s2.stop()
}

// aheadClock is the real clock moved forward by d: a server started on it
// finds that d more of a schedule's instants have passed than really did,
// as after d of downtime.
type aheadClock struct {
	clockwork.Clock
	d time.Duration
}

func (c aheadClock) Now() time.Time { return c.Clock.Now().Add(c.d) }

// A restart neither loses nor doubles a fire: instants claimed before the
// stop are not fired again, the newest instant missed while down is made up
// once (misfire_grace), older missed ones are skipped. The second server's
// schedules run 5 s ahead of the first's, as if it had been down that long.
func TestSchedule_Restart(t *testing.T) {
	skipIfShort(t)
	dir, data, natsAddr := jobsDir(t), t.TempDir(), freeAddr(t)
	adjust := func(c *config.Config) { c.Server.JobsDir = dir }
	s := startServerWith(t, data, natsAddr, adjust)
	agentData := t.TempDir()
	a := startAgent(t, s, "pc1", []string{"lab"}, agentData)
	s.waitOnline(t, "pc1")
	if code := s.post(t, "/api/schedules", map[string]any{"id": "r", "cron": "*/2 * * * * *", "job_id": "tick"}, nil); code != 201 {
		t.Fatalf("create: %d", code)
	}
	before := s.waitFires(t, "r", 2)
	a.stop() // first: an agent whose broker is gone waits to deliver its results
	s.stop()
	s2 := startServerOpts(t, data, natsAddr, adjust, serveOptions{Clock: aheadClock{clockwork.NewRealClock(), 5 * time.Second}})
	startAgent(t, s2, "pc1", []string{"lab"}, agentData)
	after := s2.waitFires(t, "r", len(before)+3)
	seen := map[time.Time]bool{}
	for _, f := range after {
		if seen[f.At] {
			t.Errorf("instant %v fired twice", f.At)
		}
		seen[f.At] = true
	}
	// Between the last fire before the stop and the regular fires after the
	// restart there is exactly one instant: the newest missed, made up.
	lastBefore := before[0].At
	var madeUp []time.Time
	var regular []time.Time
	for _, f := range after {
		if f.At.After(lastBefore) {
			if f.Reason == schedule.MadeUp {
				madeUp = append(madeUp, f.At)
			} else {
				regular = append(regular, f.At)
			}
		}
	}
	if len(madeUp) != 1 {
		t.Fatalf("made-up fires %v, want 1; fires %+v", madeUp, after)
	}
	for _, r := range regular {
		if !r.After(madeUp[0]) {
			t.Errorf("regular fire %v at or before the made-up %v: a missed instant was not skipped", r, madeUp[0])
		}
	}
	if madeUp[0].Sub(lastBefore) <= 2*time.Second {
		t.Errorf("made up %v right after %v: nothing was missed, the test stopped too briefly", madeUp[0], lastBefore)
	}
}
