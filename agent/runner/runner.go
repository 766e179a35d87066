// Package runner runs one script as a child process on the endpoint and
// reports how it ended.
//
// The script is written to a private file and run by the shell it names
// (sh, cmd, powershell or pwsh). The child and everything it starts form one
// tree — a process group on Unix, a Job Object on Windows — and a kill or a
// timeout kills the whole tree at once. The tree is also killed after the
// main process exits, so left-over background children never outlive a run.
// Output is read as bytes, decoded to UTF-8 as it arrives (decode.go) and
// capped per stream.
//
// A tree also must not outlive the agent. On Windows the Job Object kills
// it when the agent's last handle closes, which a crash does too. On Unix
// the group is recorded (Spec.OnStart, a Tree) so that the next agent can
// kill what is left of it (KillLeftover); on Linux the main process also
// gets SIGKILL as soon as the agent dies (a parent-death signal).
//
// The command lines, script file contents, the classification of an
// ending, output decoding and the recognition of a leftover tree are pure
// functions (plan.go, outcome.go, output.go, decode.go, tree.go), tested on
// every OS; runner_unix.go, runner_windows.go and the leftover_*.go and
// decode_*.go files hold only what asks the OS.
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
	// OutputCap is the most bytes of (decoded) output kept per stream
	// (stdout, stderr): over it, the first and the last half of it with
	// a CutMarker between; 0 or less means DefaultOutputCap.
	OutputCap int
	// Dir is the directory where the script file is written. It is created
	// (0700) if missing; "" means os.TempDir().
	Dir string
	// Env holds extra environment entries ("KEY=value") appended to
	// os.Environ(). The runner adds TreeEnv.
	Env []string
	// OnOutput, if set, is called as output arrives with the head that is
	// kept of it, then once with a note that the rest is not streamed
	// (the tail shows in the Outcome), decoded to UTF-8, from the reader
	// goroutines; a character is never split between two calls. stream is
	// wire.Stdout or wire.Stderr. It must not block for long. p is never
	// modified afterwards and may be retained.
	OnOutput func(stream string, p []byte)
	// OnStart, if set, is called once the child runs in its tree, before
	// Run waits for it, with what identifies the tree after a restart of
	// the agent (see KillLeftover). The child runs meanwhile; Run goes on
	// when OnStart returns.
	OnStart func(Tree)
	// Logger receives warnings (a failed kill, a script file that could not
	// be removed); nil means slog.Default().
	Logger *slog.Logger
}

// Outcome is how a run ended.
type Outcome struct {
	// State is wire.StateSucceeded, StateFailed, StateTimedOut, StateKilled
	// or StateSkipped (a shell that does not exist on this OS).
	State wire.State
	// Reason is a human sentence such as "exit code 3", "timed out after
	// 1m0s", "killed: killed by alice" or "pwsh is not installed" (a
	// failure). It is empty for a plain success.
	Reason string
	// ExitCode is nil when the process never ran, was killed or timed out,
	// or ended without an exit status (a signal).
	ExitCode *int
	// Stdout and Stderr are decoded to UTF-8 lossily (see Decode) and
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
	_, no := resolve(localHost(), shell)
	return no.state == "", no.reason
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
// anything else → failed. A shell of another OS gives StateSkipped; one
// that belongs here but is missing, or a stub, gives StateFailed.
func Run(ctx context.Context, s Spec) Outcome {
	p, no := makePlan(localHost(), s.Shell, s.Script)
	if no.state != "" {
		return Outcome{State: no.state, Reason: no.reason, FinishedAt: time.Now()}
	}
	return runPlan(ctx, s, p)
}

// runPlan writes the planned files, runs them and removes them.
func runPlan(ctx context.Context, s Spec, p plan) Outcome {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	if ctx.Err() != nil {
		return Outcome{State: wire.StateKilled, Reason: killReason(ctx), FinishedAt: time.Now()}
	}
	dir := s.Dir
	if dir == "" {
		dir = os.TempDir()
	}
	w, err := p.write(dir)
	defer func() {
		for _, f := range w.files {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				log.Warn("runner: remove script file", "file", f, "err", err)
			}
		}
	}()
	if err != nil {
		return Outcome{State: wire.StateFailed, Reason: err.Error(), FinishedAt: time.Now()}
	}
	o := execute(ctx, s, p, w.run, log)
	if w.marker != "" && o.ExitCode != nil {
		if _, err := os.Stat(w.marker); err == nil {
			// The interpreter exited without running its first line.
			why := fmt.Sprintf("%s did not run the script: it exited with code %d without starting it (a stub, or a broken or blocked install)", p.shell, *o.ExitCode)
			if o.Reason != "" {
				why += "; " + o.Reason
			}
			o.State, o.Reason = wire.StateFailed, why
		}
	}
	return o
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
	token, err := newTreeToken()
	if err != nil {
		return failedToStart(err)
	}
	legacy := systemLegacy()
	stdout := newCapture(wire.Stdout, limit, legacy, s.OnOutput)
	stderr := newCapture(wire.Stderr, limit, legacy, s.OnOutput)

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
	cmd.Env = append(append(os.Environ(), s.Env...), TreeEnv+"="+token)
	cmd.Stdout = outW
	cmd.Stderr = errW
	prepare(cmd, p.cmdLine(file))

	if pinThread {
		// The parent-death signal fires when the thread that started the
		// child exits, not the process: the Go runtime ends a thread whose
		// goroutine exits while locked to it. Holding this thread until
		// the child has exited keeps any goroutine from taking it over.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	t, err := startTree(cmd)
	// The child has its own copies of the write ends (or never started);
	// closing ours lets the readers see EOF once the tree is gone.
	outW.Close()
	errW.Close()
	if err != nil {
		return failedToStart(fmt.Errorf("start %s: %w", p.shell, err))
	}
	started := time.Now()
	if s.OnStart != nil {
		s.OnStart(t.identity(token))
	}

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
	switch cause, err := awaitEnd(waited, ctx.Done(), timeout); cause {
	case endExited:
		e.waitErr = err
	case endKilled:
		e.killed = killReason(ctx)
		kill()
		e.waitErr = <-waited
	case endTimedOut:
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
	o.Stdout = stdout.output()
	o.Stderr = stderr.output()
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
	defer c.close()
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
