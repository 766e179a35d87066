package audit

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/projector"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

var testLimits = bus.StreamLimits{ExecMaxAge: time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour, AuditMaxAge: time.Hour,
	ExecMaxBytes: 64 << 20, ResultsMaxBytes: 64 << 20, OutputMaxBytes: 64 << 20, AuditMaxBytes: 64 << 20}

func openBus(t *testing.T) *bus.Bus {
	t.Helper()
	b, err := bus.Open(context.Background(), bus.Options{DataDir: t.TempDir(), Listen: "127.0.0.1:0", MaxPayload: 8 << 20,
		Logger: discard(), Streams: testLimits})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func auditMsgs(t *testing.T, b *bus.Bus) uint64 {
	t.Helper()
	st, err := b.JS.Stream(context.Background(), wire.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().State.Msgs
}

// Record fails closed: when the event cannot be stored its error wraps
// ErrUnavailable, for the caller to refuse the action. A deleted AUDIT is
// re-created by the provisioner and the event stored.
func TestRecord(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		break_  func(t *testing.T, b *bus.Bus)
		prov    bool
		wantErr bool
		wantN   uint64
	}{
		{"stored", func(*testing.T, *bus.Bus) {}, false, false, 1},
		{"connection closed", func(_ *testing.T, b *bus.Bus) { b.NC.Close() }, false, true, 0},
		{"AUDIT deleted, no provisioner", func(t *testing.T, b *bus.Bus) {
			if err := b.JS.DeleteStream(ctx, wire.StreamAudit); err != nil {
				t.Fatal(err)
			}
		}, false, true, 0},
		{"AUDIT deleted, re-provisioned", func(t *testing.T, b *bus.Bus) {
			if err := b.JS.DeleteStream(ctx, wire.StreamAudit); err != nil {
				t.Fatal(err)
			}
		}, true, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := openBus(t)
			r := New(b.JS, discard())
			if tt.prov {
				r.Provisioner = bus.NewProvisioner(b.CmdJS, testLimits, discard())
			}
			tt.break_(t, b)
			err := r.Record(ctx, "alice", Run, "e1", map[string]any{"script_sha256": "x"})
			if gotErr := err != nil; gotErr != tt.wantErr || (gotErr && !errors.Is(err, ErrUnavailable)) {
				t.Fatalf("Record = %v, want error %v wrapping ErrUnavailable", err, tt.wantErr)
			}
			if !tt.wantErr {
				if n := auditMsgs(t, b); n != tt.wantN {
					t.Errorf("AUDIT holds %d events, want %d", n, tt.wantN)
				}
			}
		})
	}
}

// counter counts log records.
type counter struct{ n atomic.Int64 }

func (c *counter) Enabled(context.Context, slog.Level) bool  { return true }
func (c *counter) Handle(context.Context, slog.Record) error { c.n.Add(1); return nil }
func (c *counter) WithAttrs([]slog.Attr) slog.Handler        { return c }
func (c *counter) WithGroup(string) slog.Handler             { return c }

// The projector returns when AUDIT is deleted under it (projector.Keep
// then starts it again, which creates its consumer again), after at most a
// few log lines, rather than retrying at once for ever (a warning each
// time).
func TestProject_StreamDeleted(t *testing.T) {
	b := openBus(t)
	st := storetest.New(t)
	logs := &counter{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Project(ctx, b.JS, st, events.New(), slog.New(logs)) }()
	r := New(b.JS, discard())
	if err := r.Record(ctx, "alice", Run, "e1", nil); err != nil {
		t.Fatal(err)
	}
	eventually.Within(t, 10*time.Second, func() error {
		evs, _, err := st.AuditEvents(ctx, store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 {
			return fmt.Errorf("%d events projected, want 1", len(evs))
		}
		return nil
	})
	if err := b.JS.DeleteStream(ctx, wire.StreamAudit); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !projector.Gone(err) {
			t.Errorf("Project = %v, want an error saying the stream or consumer is gone", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("Project still runs 30s after AUDIT was deleted (%d log records)", logs.n.Load())
	}
	if n := logs.n.Load(); n > 5 {
		t.Errorf("%d log records while AUDIT was missing, want a few", n)
	}
}

// TestActions_ListsEveryConstant: Actions, which the Audit page's
// sentences are tested against, holds every action constant of this
// package and nothing else.
func TestActions_ListsEveryConstant(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "audit.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var consts []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, sp := range g.Specs {
			for _, v := range sp.(*ast.ValueSpec).Values {
				if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					if s != FailedSuffix {
						consts = append(consts, s)
					}
				}
			}
		}
	}
	got := slices.Sorted(slices.Values(Actions))
	slices.Sort(consts)
	if !slices.Equal(got, consts) {
		t.Errorf("Actions = %v\nconstants = %v", got, consts)
	}
	if len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Errorf("Actions lists an action twice: %v", got)
	}
}
