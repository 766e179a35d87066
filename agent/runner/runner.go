// Package runner runs one script as a child process on the endpoint and
// reports how it ended.
//
// The script is written to a private file and run by the shell it names
// (sh, cmd, powershell or pwsh). The child and everything it starts form one
// tree — a process group on Unix, a Job Object on Windows — and a kill or a
// timeout kills the whole tree at once. The tree is also killed after the
// main process exits, so left-over background children never outlive a run.
// Output is read as bytes, capped per stream and decoded lossily.
//
// The command lines, script file contents and the classification of an
// ending are pure functions (plan.go, outcome.go, output.go), tested on every
// OS; runner_unix.go and runner_windows.go hold only process-tree handling.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
)

// DefaultOutputCap is the most bytes kept per output stream when
// Spec.OutputCap is 0.
const DefaultOutputCap = 1 << 20

// pipeGrace is how long Run keeps reading output after the main process has
// exited and its tree was killed. Only a process that escaped the tree (for
// example with setsid) can hold the pipes open longer; Run then stops reading
// and says so in Outcome.Reason.
const pipeGrace = time.Second

// Spec describes one run.
type Spec struct {
	// Shell is wire.ShellSh, wire.ShellCmd, wire.ShellPowerShell or wire.ShellPwsh.
	Shell  string
	Script string
	// Timeout counts from the real start of the child; 0 means no timeout.
	Timeout time.Duration
	// OutputCap is the most bytes kept per stream (stdout, stderr);
	// 0 or less means DefaultOutputCap.
	OutputCap int
	// Dir is the directory where the script file is written. It is created
	// (0700) if missing; "" means os.TempDir().
	Dir string
	// Env holds extra environment entries ("KEY=value") appended to os.Environ().
	Env []string
	// OnOutput, if set, is called as output arrives with the raw bytes that
	// were kept (never beyond the cap), from the reader goroutines; stream is
	// wire.Stdout or wire.Stderr. It must not block for long. p is never
	// modified afterwards and may be retained.
	OnOutput func(stream string, p []byte)
	// Logger receives warnings (a failed kill, a script file that could not
	// be removed); nil means slog.Default().
	Logger *slog.Logger
}

// Outcome is how a run ended.
type Outcome struct {
	// State is wire.StateSucceeded, StateFailed, StateTimedOut, StateKilled
	// or StateSkipped.
	State wire.State
	// Reason is a human sentence such as "exit code 3", "timed out after
	// 1m0s", "killed: killed by alice" or "pwsh is not installed". It is
	// empty for a plain success.
	Reason string
	// ExitCode is nil when the process never ran, was killed or timed out,
	// or ended without an exit status (a signal).
	ExitCode *int
	// Stdout and Stderr are decoded lossily (invalid UTF-8 → U+FFFD) and
	// never hold more than the cap.
	Stdout, Stderr string
	// Truncated is set when either stream hit the cap.
	Truncated bool
	// StartedAt is when the child started (zero if it never did);
	// FinishedAt is when Run finished.
	StartedAt, FinishedAt time.Time
}

// Available reports whether shell can run on this machine, and why not.
func Available(shell string) (ok bool, reason string) {
	_, reason = resolve(localHost(), shell)
	return reason == "", reason
}

// localHost describes the machine Run runs on.
func localHost() host {
	return host{
		goos:       runtime.GOOS,
		systemRoot: os.Getenv("SystemRoot"),
		lookPath:   exec.LookPath,
		stub:       stubReason,
	}
}

// Run runs the script and blocks until the whole tree is gone. Cancelling
// ctx kills the tree; the Outcome is then StateKilled and Reason includes
// context.Cause(ctx). A timeout gives StateTimedOut. Exit 0 → succeeded,
// anything else → failed. A shell that cannot run here gives StateSkipped.
func Run(ctx context.Context, s Spec) Outcome {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	p, reason := makePlan(localHost(), s.Shell, s.Script)
	if reason != "" {
		return Outcome{State: wire.StateSkipped, Reason: reason, FinishedAt: time.Now()}
	}
	if ctx.Err() != nil {
		return Outcome{State: wire.StateKilled, Reason: killReason(ctx), FinishedAt: time.Now()}
	}
	dir := s.Dir
	if dir == "" {
		dir = os.TempDir()
	}
	file, written, err := p.write(dir)
	defer func() {
		for _, f := range written {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				log.Warn("runner: remove script file", "file", f, "err", err)
			}
		}
	}()
	if err != nil {
		return Outcome{State: wire.StateFailed, Reason: err.Error(), FinishedAt: time.Now()}
	}
	return execute(ctx, s, p, file, log)
}

// killReason is the Reason of a run killed through its context.
func killReason(ctx context.Context) string {
	cause := context.Cause(ctx)
	if cause == nil {
		cause = ctx.Err()
	}
	return "killed: " + cause.Error()
}

// execute starts the planned command on file, waits for it and its tree,
// and classifies the ending.
func execute(ctx context.Context, s Spec, p plan, file string, log *slog.Logger) Outcome {
	limit := s.OutputCap
	if limit <= 0 {
		limit = DefaultOutputCap
	}
	stdout := &capture{stream: wire.Stdout, limit: limit, onOutput: s.OnOutput}
	stderr := &capture{stream: wire.Stderr, limit: limit, onOutput: s.OnOutput}

	// The pipes are ours, not exec's: exec.Cmd.Wait then returns as soon as
	// the main process exits, the tree can be killed at that moment, and
	// a pipe still held by an escaped process is noticed (its reader does not
	// end within pipeGrace) instead of silently delaying Wait.
	outR, outW, err := os.Pipe()
	if err != nil {
		return failedToStart(fmt.Errorf("create stdout pipe: %w", err))
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return failedToStart(fmt.Errorf("create stderr pipe: %w", err))
	}
	defer outR.Close()
	defer errR.Close()

	argv := p.argv(file)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), s.Env...)
	cmd.Stdout = outW
	cmd.Stderr = errW
	prepare(cmd, p.cmdLine(file))

	t, err := startTree(cmd)
	// The child has its own copies of the write ends (or never started);
	// closing ours lets the readers see EOF once the tree is gone.
	outW.Close()
	errW.Close()
	if err != nil {
		return failedToStart(fmt.Errorf("start %s: %w", p.shell, err))
	}
	started := time.Now()

	var readers sync.WaitGroup
	readers.Go(func() { stdout.readFrom(outR) })
	readers.Go(func() { stderr.readFrom(errR) })
	readersDone := make(chan struct{})
	go func() {
		readers.Wait()
		close(readersDone)
	}()

	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	var timeout <-chan time.Time
	if s.Timeout > 0 {
		timer := time.NewTimer(s.Timeout)
		defer timer.Stop()
		timeout = timer.C
	}

	e := ending{timeout: s.Timeout, pipeGrace: pipeGrace}
	kill := func() {
		if err := t.kill(); err != nil {
			log.Warn("runner: kill process tree", "shell", p.shell, "err", err)
		}
	}
	select {
	case e.waitErr = <-waited:
	case <-ctx.Done():
		e.killed = killReason(ctx)
		kill()
		e.waitErr = <-waited
	case <-timeout:
		e.timedOut = true
		kill()
		e.waitErr = <-waited
	}
	// The main process is gone; whatever it left behind in its tree goes too.
	kill()

	grace := time.NewTimer(pipeGrace)
	select {
	case <-readersDone:
	case <-grace.C:
		e.pipesHeld = true
		outR.Close()
		errR.Close()
		<-readersDone
	}
	grace.Stop()
	if err := t.close(); err != nil {
		log.Warn("runner: release process tree", "shell", p.shell, "err", err)
	}

	if ps := cmd.ProcessState; ps != nil {
		e.exitCode = ps.ExitCode()
		e.status = ps.String()
	} else {
		e.exitCode = -1
	}
	var exitErr *exec.ExitError
	if errors.As(e.waitErr, &exitErr) {
		e.waitErr = nil
	}
	e.readErr = errors.Join(stdout.err, stderr.err)

	o := classify(e)
	o.Stdout = Decode(stdout.buf)
	o.Stderr = Decode(stderr.buf)
	o.Truncated = stdout.truncated || stderr.truncated
	o.StartedAt = started
	o.FinishedAt = time.Now()
	return o
}

// failedToStart is the Outcome of a run whose child never started.
func failedToStart(err error) Outcome {
	return Outcome{State: wire.StateFailed, Reason: err.Error(), FinishedAt: time.Now()}
}

// readFrom reads r in chunks into c until EOF or until r is closed.
func (c *capture) readFrom(r io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			c.write(buf[:n])
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				c.err = fmt.Errorf("read %s: %w", c.stream, err)
			}
			return
		}
	}
}
