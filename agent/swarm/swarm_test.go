package swarm

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"hash/fnv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/runner"
	"github.com/kanadehq/kanade/agent/wire"
)

func TestModelForScript(t *testing.T) {
	base := Model{Latency: 100 * time.Millisecond, Jitter: 50 * time.Millisecond, FailRate: 0.5, OutputBytes: 10}
	tests := []struct {
		name, script            string
		wantLatency, wantJitter time.Duration
	}{
		{"no directive", "echo hi", base.Latency, base.Jitter},
		{"both", "# swarm: latency=5s jitter=2s\necho hi", 5 * time.Second, 2 * time.Second},
		{"latency only", "# swarm: latency=0s", 0, base.Jitter},
		{"leading space and CRLF", "  # swarm: jitter=1s\r\necho hi", base.Latency, time.Second},
		{"not the first line", "echo hi\n# swarm: latency=5s", base.Latency, base.Jitter},
		{"bad and unknown values ignored", "# swarm: latency=soon jitter=-1s color=red", base.Latency, base.Jitter},
	}
	for _, tt := range tests {
		got := base.forScript(tt.script)
		if got.Latency != tt.wantLatency || got.Jitter != tt.wantJitter {
			t.Errorf("%s: forScript(%q) = %v±%v, want %v±%v", tt.name, tt.script, got.Latency, got.Jitter, tt.wantLatency, tt.wantJitter)
		}
		if got.FailRate != base.FailRate || got.OutputBytes != base.OutputBytes {
			t.Errorf("%s: forScript(%q) changed the fail rate or output size", tt.name, tt.script)
		}
	}
}

func TestModelExec(t *testing.T) {
	cancelled, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("killed by alice"))
	tests := []struct {
		name    string
		ctx     context.Context
		latency time.Duration
		timeout time.Duration
		want    wire.State
		reason  string
	}{
		{"no run time", context.Background(), 0, 0, wire.StateSucceeded, ""},
		{"no run time, with a timeout", context.Background(), 0, time.Hour, wire.StateSucceeded, ""},
		{"a run time", context.Background(), 5 * time.Millisecond, time.Hour, wire.StateSucceeded, ""},
		{"timed out", context.Background(), time.Hour, 5 * time.Millisecond, wire.StateTimedOut, "timed out after 5ms"},
		{"killed before a run of no time", cancelled, 0, 0, wire.StateKilled, "killed: killed by alice"},
		{"killed during the run", cancelled, time.Hour, time.Hour, wire.StateKilled, "killed: killed by alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var printed []byte
			m := Model{Latency: tt.latency, OutputBytes: 40}
			o := m.exec(1, "pc-1", nil)(tt.ctx, runner.Spec{Script: "echo hi", Timeout: tt.timeout,
				OnOutput: func(_ string, p []byte) { printed = append(printed, p...) }})
			if o.State != tt.want || o.Reason != tt.reason {
				t.Fatalf("state %q (%q), want %q (%q)", o.State, o.Reason, tt.want, tt.reason)
			}
			if tt.want != wire.StateSucceeded {
				if o.ExitCode != nil || o.Stdout != "" || printed != nil {
					t.Errorf("an unfinished run reported exit code %v and output %q / %q", o.ExitCode, o.Stdout, printed)
				}
				return
			}
			if o.ExitCode == nil || *o.ExitCode != 0 || len(o.Stdout) != 40 || string(printed) != o.Stdout {
				t.Errorf("exit code %v, stdout %q, printed %q; want 0 and the same 40 bytes", o.ExitCode, o.Stdout, printed)
			}
			if o.FinishedAt.Sub(o.StartedAt) < tt.latency {
				t.Errorf("ran %v, want at least %v", o.FinishedAt.Sub(o.StartedAt), tt.latency)
			}
		})
	}
}

// TestModelRandom: a run's exit code depends on the seed, the PC and the
// script only (the same with a jitter, which draws first), and the fail
// rate holds over many PCs.
func TestModelRandom(t *testing.T) {
	for _, jitter := range []time.Duration{0, time.Nanosecond} {
		m := Model{FailRate: 0.3, Jitter: jitter}
		failed := 0
		for i := range 2000 {
			pc := fmt.Sprintf("pc-%d", i)
			a := m.exec(7, pc, nil)(context.Background(), runner.Spec{Script: "echo hi"})
			b := m.exec(7, pc, nil)(context.Background(), runner.Spec{Script: "echo hi"})
			if *a.ExitCode != *b.ExitCode {
				t.Fatalf("jitter %v: %s exited %d, then %d with the same seed", jitter, pc, *a.ExitCode, *b.ExitCode)
			}
			failed += *a.ExitCode
		}
		if failed < 500 || failed > 700 {
			t.Errorf("jitter %v: %d of 2000 runs failed, want about 600 (fail rate 0.3)", jitter, failed)
		}
	}
	h := fnv.New64a()
	h.Write([]byte("pc-1echo hi"))
	if got := fnv1a(fnv1a(fnvOffset, "pc-1"), "echo hi"); got != h.Sum64() {
		t.Errorf("fnv1a = %x, hash/fnv says %x", got, h.Sum64())
	}
}

func TestSigMemo(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("commands.all\n1\n{}")
	sig := ed25519.Sign(priv, msg)
	forged := append([]byte(nil), sig...)
	forged[0] ^= 1
	m := newSigMemo()
	for range 2 { // the second time from the memo
		if !m.check(pub, msg, sig) {
			t.Fatal("a good signature was refused")
		}
		if m.check(pub, msg, forged) {
			t.Fatal("a forged signature was accepted")
		}
		if m.check(pub, append(msg, '!'), sig) {
			t.Fatal("an altered message was accepted")
		}
	}
	other, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.check(other, msg, sig) {
		t.Fatal("a signature remembered for one key was accepted for another")
	}
	for i := range sigMemoMax + 10 { // the memo is bounded
		s := append([]byte(nil), sig...)
		s[1], s[2] = byte(i), byte(i>>8)
		m.check(pub, msg, s)
	}
	if len(m.seen) > sigMemoMax {
		t.Fatalf("memo holds %d answers, more than %d", len(m.seen), sigMemoMax)
	}
	if !m.check(pub, msg, sig) || m.check(pub, msg, forged) {
		t.Fatal("wrong answer after the memo started over")
	}
}

// Every run of the model is counted by its script, whatever its outcome.
func TestModelCountsRuns(t *testing.T) {
	var stats Stats
	killed, kill := context.WithCancel(context.Background())
	kill()
	m := Model{FailRate: 0.5}
	for _, r := range []struct {
		ctx    context.Context
		script string
	}{
		{context.Background(), "echo a"}, {context.Background(), "echo a"}, {killed, "echo a"},
		{context.Background(), "echo b"},
	} {
		m.exec(1, "pc-1", &stats)(r.ctx, runner.Spec{Script: r.script})
	}
	if diff := cmp.Diff(map[string]int64{"echo a": 3, "echo b": 1}, stats.Runs()); diff != "" {
		t.Errorf("Runs() (-want +got):\n%s", diff)
	}
}

// Connection errors are told apart by the last part of their text, up to
// maxErrKinds kinds.
func TestErrorKinds(t *testing.T) {
	var s Stats
	s.countError(errors.New("dial tcp 127.0.0.1:4222: connect: connection refused"))
	s.countError(errors.New("dial tcp 127.0.0.1:4223: connect: connection refused"))
	s.countError(errors.New("nats: timeout"))
	s.countError(errors.New("EOF"))
	s.countError(nil)
	want := map[string]int64{"connection refused": 2, "timeout": 1, "EOF": 1}
	if diff := cmp.Diff(want, s.ErrorKinds()); diff != "" {
		t.Errorf("ErrorKinds() (-want +got):\n%s", diff)
	}
	if n := s.ConnErrors.Load(); n != 5 {
		t.Errorf("ConnErrors = %d, want 5", n)
	}
	for i := range 2 * maxErrKinds {
		s.countError(fmt.Errorf("kind %d", i))
	}
	if k := s.ErrorKinds(); len(k) != maxErrKinds+1 || k["other"] == 0 {
		t.Errorf("after many kinds: %d kinds, %d other; want %d kinds and the rest as other", len(k), k["other"], maxErrKinds)
	}
}
