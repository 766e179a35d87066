//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// wineHost is a Wine prefix of one test: a copy of the prefix that
// .ci/wine/wine-env prepares (with the bcryptprimitives.dll Go needs on
// Wine 8), run by a wineserver of its own, so that the test's services
// and processes touch no other prefix and all end with it.
type wineHost struct {
	prefix string
	env    []string
}

// startWine skips the test when Wine cannot run here, and says why.
func startWine(t *testing.T) *wineHost {
	t.Helper()
	if _, err := exec.LookPath("wine"); err != nil {
		t.Skip("wine is not installed: make test installs it (as root with apt), see docs/WINDOWS.md")
	}
	var stderr bytes.Buffer
	cmd := exec.Command("../.ci/wine/wine-env", "--no-server", "env", "-0")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode() == 3 {
		t.Skipf("Wine cannot run the agent here: %s", strings.TrimSpace(stderr.String()))
	}
	if err != nil {
		t.Fatalf(".ci/wine/wine-env: %v\n%s", err, stderr.String())
	}
	env := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	i := slices.IndexFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "WINEPREFIX=") })
	if i < 0 {
		t.Fatal(".ci/wine/wine-env set no WINEPREFIX")
	}
	dir := t.TempDir()
	w := &wineHost{prefix: filepath.Join(dir, "prefix")}
	if out, err := exec.Command("cp", "-a", strings.TrimPrefix(env[i], "WINEPREFIX="), w.prefix).CombinedOutput(); err != nil {
		t.Fatalf("copy the Wine prefix: %v\n%s", err, out)
	}
	env[i] = "WINEPREFIX=" + w.prefix
	w.env = env

	// The watchdog ends the prefix's processes and removes the copy (700
	// MB) when this test process ends, also by a panic or a go test
	// timeout, which run no cleanup: its stdin closes then.
	watchdog := w.command("sh", "-c", `read _; wineserver -k 2>/dev/null; wineserver -w 2>/dev/null; rm -rf "$0"`, dir)
	watchdog.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // not stopped by the terminal's Ctrl+C
	alive, err := watchdog.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watchdog.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		alive.Close()
		_ = watchdog.Wait()
	})
	w.boot(t)
	t.Cleanup(func() { w.shutdown(t) })
	return w
}

// command is a command in the prefix's environment.
func (w *wineHost) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = w.env
	return cmd
}

// boot starts the wineserver (persistent until shutdown) and Wine's own
// processes, which start the services set to start automatically. Both
// run without output: they keep the stdout and stderr of the program
// that starts them, and a pipe they hold is never closed.
func (w *wineHost) boot(t *testing.T) {
	t.Helper()
	if err := w.command("wineserver", "-p").Run(); err != nil {
		t.Fatalf("wineserver -p: %v", err)
	}
	if err := w.command("wine", "cmd", "/c", "exit 0").Run(); err != nil {
		t.Fatalf("start Wine: %v", err)
	}
}

// shutdown ends every process of the prefix, like a power cut.
func (w *wineHost) shutdown(t *testing.T) {
	t.Helper()
	_ = w.command("wineserver", "-k").Run()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "wineserver", "-w")
	cmd.Env = w.env
	if err := cmd.Run(); err != nil {
		t.Errorf("wineserver -w: %v", err)
	}
}

// processes lists the live processes of this prefix whose program is
// name (ping for ping.exe), from the host's process table.
func (w *wineHost) processes(t *testing.T, name string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !slices.Contains(strings.Split(string(env), "\x00"), "WINEPREFIX="+w.prefix) {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		fields := strings.Fields(strings.ReplaceAll(string(cmdline), "\x00", " "))
		if err != nil || len(fields) == 0 { // a zombie: dead already
			continue
		}
		prog := strings.ToLower(fields[0][strings.LastIndexAny(fields[0], `\/`)+1:])
		if strings.TrimSuffix(prog, ".exe") == name {
			found = append(found, e.Name()+" "+strings.Join(fields, " "))
		}
	}
	return found
}

// winePath is path on the host as Windows programs under Wine see it.
func winePath(path string) string { return `Z:` + strings.ReplaceAll(path, "/", `\`) }

// wineProc is a Windows program running under Wine; its output goes to a
// file, shown when the test fails.
type wineProc struct {
	cmd  *exec.Cmd
	log  string
	done chan error
}

func (w *wineHost) start(t *testing.T, exe string, args ...string) *wineProc {
	t.Helper()
	p := &wineProc{log: filepath.Join(t.TempDir(), "output"), done: make(chan error, 1)}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p.cmd = w.command("wine", append([]string{exe}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.interrupt(t)
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("output of %s:\n%s", filepath.Base(exe), b)
		}
	})
	return p
}

// interrupt is Ctrl+C (Wine turns SIGINT into a console control event);
// the program must exit cleanly.
func (p *wineProc) interrupt(t *testing.T) {
	t.Helper()
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("%s: %v after Ctrl+C", filepath.Base(p.cmd.Args[1]), err)
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not stop within 30s of Ctrl+C", filepath.Base(p.cmd.Args[1]))
	}
}

// waitOffline waits until the server lists pc as offline.
func (s *testServer) waitOffline(t testing.TB, pc string) {
	t.Helper()
	checkFor(t, 60*time.Second, func() error {
		var a struct {
			Online bool `json:"online"`
		}
		if code := s.get(t, "/api/agents/"+pc, &a); code != http.StatusOK || a.Online {
			return fmt.Errorf("agent %s online (status %d)", pc, code)
		}
		return nil
	})
}

// TestWine_WindowsAgent runs the Linux server and the Windows agent
// (GOOS=windows, under Wine) as the operations contract says: the agent
// enrolls over TLS, runs cmd scripts, has a process tree killed, and runs
// as a service of Wine's Service Control Manager, installed, started,
// restarted by a reboot, stopped and uninstalled with its own commands.
func TestWine_WindowsAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test under Wine (-short)")
	}
	w := startWine(t)
	bin, err := buildBinaries()
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(t.TempDir(), "kanade-agent.exe")
	build := exec.Command("go", "build", "-o", exe, "../agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=windows", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build the Windows agent: %v\n%s", err, out)
	}

	data := t.TempDir()
	httpAddr := freeAddr(t)
	srv := startProc(t, filepath.Join(bin, "kanade"), "serve", "--data", data, "--http", httpAddr,
		"--nats-listen", freeAddr(t), "--nats-tls", "auto")
	s := &testServer{t: t, URL: "http://" + httpAddr}
	checkFor(t, 30*time.Second, func() error {
		for _, line := range strings.Split(srv.output(), "\n") {
			if rest, ok := strings.CutPrefix(line, "agents connect with: kanade-agent --server "); ok {
				s.NATSURL, s.Creds = strings.Fields(rest)[0], strings.Fields(rest)[2]
				return nil
			}
		}
		return errors.New("no \"agents connect with\" line yet")
	})
	if !strings.HasPrefix(s.NATSURL, "tls://") {
		t.Fatalf("the broker is not on TLS: agents connect with %s", s.NATSURL)
	}

	agent := w.start(t, exe, "--server", s.NATSURL, "--credentials", winePath(s.Creds),
		"--pc-id", "wine-1", "--groups", "wine", "--data", `C:\kanade-wine-1`, "--heartbeat", "1s")
	s.waitOnline(t, "wine-1")

	t.Run("cmd", func(t *testing.T) {
		tests := []struct {
			name, script, state string
			exit                int
			stdout, stderr      string
		}{
			{"succeeds", "@echo off\r\necho hello from %KANADE_PC_ID%", "succeeded", 0, "hello from wine-1\r\n", ""},
			{"fails with its exit code", "@echo off\r\necho out\r\necho err 1>&2\r\nexit /b 3", "failed", 3, "out\r\n", "err"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"wine-1"}}, "shell": "cmd", "script": tt.script, "timeout": "1m"})
				got := s.waitExec(t, e.ExecID, completed)
				if len(got.Targets) != 1 {
					t.Fatalf("targets = %+v", got.Targets)
				}
				tr := got.Targets[0]
				if tr.State != tt.state || tr.ExitCode == nil || *tr.ExitCode != tt.exit || tr.Stdout != tt.stdout || strings.TrimSpace(tr.Stderr) != tt.stderr {
					t.Errorf("target = %+v (exit code %v), want %s, exit code %d, stdout %q, stderr %q",
						tr, derefInt(tr.ExitCode), tt.state, tt.exit, tt.stdout, tt.stderr)
				}
			})
		}
	})

	t.Run("kill a process tree", func(t *testing.T) {
		script := "@echo off\r\nstart /b ping -n 120 127.0.0.2 >nul\r\nping -n 60 127.0.0.1 >nul"
		e := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"wine-1"}}, "shell": "cmd", "script": script, "timeout": "5m"})
		checkFor(t, 30*time.Second, func() error {
			if ps := w.processes(t, "ping"); len(ps) != 2 {
				return fmt.Errorf("ping processes %q, want the two of the script", ps)
			}
			return nil
		})
		s.waitExec(t, e.ExecID, targetIn("wine-1", "running"))
		if code := s.post(t, "/api/executions/"+e.ExecID+"/kill", nil, nil); code != http.StatusAccepted {
			t.Fatalf("kill = %d", code)
		}
		got := s.waitExec(t, e.ExecID, completed)
		if got.Status != "killed" || got.Counts["killed"] != 1 {
			t.Errorf("after kill: %s %v", got.Status, got.Counts)
		}
		checkFor(t, 15*time.Second, func() error {
			if ps := append(w.processes(t, "ping"), w.processes(t, "cmd")...); len(ps) > 0 {
				return fmt.Errorf("processes of the script left: %q", ps)
			}
			return nil
		})
	})

	agent.interrupt(t)
	s.waitOffline(t, "wine-1")

	t.Run("service", func(t *testing.T) {
		// agentCmd runs a kanade-agent command to its end.
		agentCmd := func(args ...string) string {
			t.Helper()
			out, err := w.command("wine", append([]string{exe}, args...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("kanade-agent %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			return string(out)
		}
		// scState is the service's state as Wine's sc.exe says it.
		scState := func() string {
			out, err := w.command("wine", "sc", "query", "kanade-agent").CombinedOutput()
			if err != nil {
				return fmt.Sprintf("not installed (%v)", err)
			}
			for _, l := range strings.Split(string(out), "\n") {
				if f := strings.Fields(l); len(f) >= 4 && f[0] == "STATE" {
					return f[3]
				}
			}
			return "unknown: " + string(out)
		}
		wantState := func(want string) {
			t.Helper()
			checkFor(t, 30*time.Second, func() error {
				if got := scState(); got != want {
					return fmt.Errorf("service state %s, want %s", got, want)
				}
				return nil
			})
		}

		out := agentCmd("service", "install", "--server", s.NATSURL, "--credentials", winePath(s.Creds),
			"--pc-id", "wine-svc", "--groups", "wine", "--heartbeat", "1s")
		if !strings.Contains(out, "installed the service kanade-agent") {
			t.Errorf("service install said:\n%s", out)
		}
		t.Logf("service install:\n%s", out)
		wantState("STOPPED")
		agentCmd("service", "start")
		wantState("RUNNING")
		s.waitOnline(t, "wine-svc")
		e := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"wine-svc"}}, "shell": "cmd",
			"script": "@echo off\r\necho service %KANADE_PC_ID%", "timeout": "1m"})
		if got := s.waitExec(t, e.ExecID, completed); len(got.Targets) != 1 || got.Targets[0].State != "succeeded" || got.Targets[0].Stdout != "service wine-svc\r\n" {
			t.Errorf("script run by the service: %+v", got.Targets)
		}

		// A reboot: every process ends at once, and Wine's service
		// manager starts the service again when Wine starts.
		w.shutdown(t)
		s.waitOffline(t, "wine-svc")
		w.boot(t)
		s.waitOnline(t, "wine-svc")
		wantState("RUNNING")

		agentCmd("service", "stop")
		wantState("STOPPED")
		s.waitOffline(t, "wine-svc")
		agentCmd("service", "uninstall")
		if got := scState(); !strings.HasPrefix(got, "not installed") {
			t.Errorf("after uninstall the service is %s", got)
		}
		if ps := w.processes(t, "kanade-agent"); len(ps) > 0 {
			t.Errorf("agent processes left: %q", ps)
		}
	})
}

func derefInt(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}
