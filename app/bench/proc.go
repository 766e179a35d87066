package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"
)

// procSample is a process's CPU time so far and its resident memory.
type procSample struct {
	At  time.Time
	CPU time.Duration // user + system
	RSS int64         // bytes
	HWM int64         // peak RSS since the process started, bytes (0: unknown)
}

// cpuPercent is the CPU used between a and b in % of one core.
func cpuPercent(a, b procSample) float64 {
	wall := b.At.Sub(a.At)
	if wall <= 0 {
		return 0
	}
	return 100 * float64(b.CPU-a.CPU) / float64(wall)
}

// child is a process the bench started, in its own process group, so that
// stopping it stops everything it started too.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string // where its stderr (and unclaimed stdout) goes
	done chan struct{}
	err  error // valid after done is closed
	file *os.File
}

// startChild starts bin with args in dir. Stderr goes to logPath; stdout
// goes to stdout when set, else to the log as well.
func startChild(name, dir, logPath string, stdout io.Writer, env []string, bin string, args ...string) (*child, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stderr = f
	cmd.Stdout = f
	if stdout != nil {
		cmd.Stdout = io.MultiWriter(stdout, f)
	}
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{}), file: f}
	go func() {
		c.err = cmd.Wait()
		f.Close()
		close(c.done)
	}()
	return c, nil
}

// pid is the child's process id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports an error when the child is no longer running.
func (c *child) exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("%s exited (%v); last lines of %s:\n%s", c.name, c.err, c.log, tail(c.log, 15))
	default:
		return nil
	}
}

// stop asks the child's process group to end, and kills it after grace.
func (c *child) stop(grace time.Duration) {
	select {
	case <-c.done:
		return
	default:
	}
	_ = signalGroup(c.cmd.Process, false)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		progress("%s did not stop within %s: killing it", c.name, grace)
		_ = signalGroup(c.cmd.Process, true)
		<-c.done
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(bytes.ToValidUTF8(b, nil)), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// childEnv is this process's environment without KANADE_* variables, so
// that a developer's settings do not change what is measured.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KANADE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// snap samples a process; when that is impossible (not Linux, or the
// process is gone) the sample has only its time and the tables show "–".
func snap(pid int) procSample {
	p, err := readProc(pid)
	if err != nil {
		return procSample{At: time.Now()}
	}
	return p
}
