//go:build !windows

package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMakeRun_Point17_SaysWhatItDoesAndStopsCleanly (issue 28 point 17) runs
// `make run` as a terminal would — in its own process group — and presses
// Ctrl+C (SIGINT to the group): the recipe says what it is doing while it
// builds and starts, the server and the agent come up, and Ctrl+C stops
// both without make's "Error 130".
func TestMakeRun_Point17_SaysWhatItDoesAndStopsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server and the agent (-short)")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	tmp := t.TempDir()
	httpAddr, natsAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command("make", "run", "RUN_DIR="+filepath.Join(tmp, "run"), "RUN_BIN="+filepath.Join(tmp, "bin"),
		"HTTP_ADDR="+httpAddr, "NATS_ADDR="+natsAddr)
	cmd.Dir = ".."
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })

	var mu sync.Mutex
	var lines []string
	running := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
			if strings.Contains(sc.Text(), "Ctrl+C stops the server and the agent") {
				once.Do(func() { close(running) })
			}
		}
	}()
	output := func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(lines, "\n")
	}
	select {
	case <-running:
	case <-done:
		t.Fatalf("make run ended before it was running:\n%s", output())
	case <-time.After(8 * time.Minute):
		t.Fatalf("make run not running after 8 minutes:\n%s", output())
	}
	// The server answers and the local agent comes online.
	checkFor(t, 60*time.Second, func() error {
		resp, err := http.Get("http://" + httpAddr + "/api/agents?status=online")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var list struct {
			Total int `json:"total"`
		}
		if err := jsonDecode(resp, &list); err != nil || list.Total != 1 {
			return fmt.Errorf("online agents: %d (%v)", list.Total, err)
		}
		return nil
	})

	// Ctrl+C: the terminal signals the foreground process group.
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	werr := make(chan error, 1)
	go func() { <-done; werr <- cmd.Wait() }()
	select {
	case err = <-werr:
	case <-time.After(60 * time.Second):
		t.Fatalf("make run did not stop within 60s of Ctrl+C:\n%s", output())
	}
	text := output()
	// make dies of the SIGINT it got, as it must, and says nothing about
	// it when its recipe ended well; anything else is a failure.
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGINT) {
		t.Errorf("make run after Ctrl+C: %v", err)
	}
	for _, want := range []string{"building the server (first build takes a minute)…", "building the agent…", "starting the server…",
		"starting a local agent…", "stopping the agent and the server…", "stopped."} {
		if !strings.Contains(text, want) {
			t.Errorf("make run did not say %q:\n%s", want, text)
		}
	}
	for _, bad := range []string{"Error 130", "make: ***", "Interrupt", "job control"} {
		if strings.Contains(text, bad) {
			t.Errorf("make run said %q:\n%s", bad, text)
		}
	}
	// Both are gone: nothing listens on their ports.
	for _, addr := range []string{httpAddr, natsAddr} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still listens after Ctrl+C", addr)
		}
	}
}
