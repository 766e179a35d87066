package dialer

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// discardAll accepts connections on ln and reads them until it closes.
func discardAll(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() { defer c.Close(); _, _ = io.Copy(io.Discard, c) }()
	}
}

// optionOf returns c's TCP_USER_TIMEOUT.
func optionOf(t *testing.T, c net.Conn) time.Duration {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var d time.Duration
	var gerr error
	if err := rc.Control(func(fd uintptr) { d, gerr = userTimeout(fd) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return d
}

func TestDialSetsUserTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go discardAll(ln)
	c, err := New(3*time.Second, slog.Default()).Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := optionOf(t, c); got != 3*time.Second {
		t.Errorf("TCP_USER_TIMEOUT = %v, want 3s", got)
	}
	plain, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if got := optionOf(t, plain); got != 0 {
		t.Errorf("a plain dial has TCP_USER_TIMEOUT %v, want 0 (the test would prove nothing)", got)
	}
}

// TestDeadPathIsDropped cuts a real network path (a veth pair into a
// network namespace whose far end goes down, so packets vanish without an
// answer) under two connections that keep sending: the one dialed with
// the bound must end with a timeout, the plain one stays open (the kernel
// would retransmit for about 15 minutes).
func TestDeadPathIsDropped(t *testing.T) {
	if testing.Short() {
		t.Skip("network namespaces: not in -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2) for a network namespace")
	}
	tag := fmt.Sprintf("%d", os.Getpid()%100000)
	ns, va, vb := "kanade-dialer-"+tag, "kda"+tag, "kdb"+tag
	ip := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	// Each test run picks its own /30 so that parallel runs do not collide.
	sub := os.Getpid() % 60
	local, remote := fmt.Sprintf("10.213.%d.1", sub), fmt.Sprintf("10.213.%d.2", sub)
	if err := ip("netns", "add", ns); err != nil {
		t.Skipf("cannot create a network namespace here: %v", err)
	}
	t.Cleanup(func() { _ = ip("netns", "del", ns); _ = ip("link", "del", va) })
	for _, args := range [][]string{
		{"link", "add", va, "type", "veth", "peer", "name", vb},
		{"link", "set", vb, "netns", ns},
		{"addr", "add", local + "/30", "dev", va},
		{"link", "set", va, "up"},
		{"-n", ns, "addr", "add", remote + "/30", "dev", vb},
		{"-n", ns, "link", "set", vb, "up"},
	} {
		if err := ip(args...); err != nil {
			t.Fatal(err)
		}
	}
	ln := listenIn(t, ns, remote+":0")
	defer ln.Close()
	go discardAll(ln)

	const bound = 2 * time.Second
	bounded, err := New(bound, slog.Default()).Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer bounded.Close()
	plain, err := (&net.Dialer{Timeout: Timeout}).Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()

	if err := ip("-n", ns, "link", "set", vb, "down"); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	// Like an agent's heartbeats: keep data in flight on both.
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := bounded.Write([]byte("heartbeat\n")); err != nil {
				ended <- err
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	go func() {
		_ = bounded.SetReadDeadline(time.Now().Add(time.Minute))
		_, err := bounded.Read(make([]byte, 1))
		ended <- err
	}()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				_, _ = plain.Write([]byte("heartbeat\n"))
			}
		}
	}()
	select {
	case err := <-ended:
		if !errors.Is(err, unix.ETIMEDOUT) {
			t.Errorf("the bounded connection ended with %v, want ETIMEDOUT", err)
		}
		t.Logf("dead path found after %v (bound %v)", time.Since(cut).Round(10*time.Millisecond), bound)
	case <-time.After(30 * time.Second):
		t.Fatalf("the bounded connection is still open 30s after its path died (bound %v)", bound)
	}
	if _, err := plain.Write([]byte("still here\n")); err != nil {
		t.Errorf("the plain connection ended too (%v): the test does not show what the bound does", err)
	}
}

// listenIn listens on addr inside network namespace ns: a socket keeps the
// namespace it was made in, so a locked thread enters ns, listens, and is
// then discarded with its goroutine.
func listenIn(t *testing.T, ns, addr string) net.Listener {
	t.Helper()
	type res struct {
		ln  net.Listener
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			ch <- res{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- res{err: fmt.Errorf("setns: %w", err)}
			return
		}
		ln, err := net.Listen("tcp", addr)
		ch <- res{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.ln
}

// TestProbe_SetsTheOption: on Linux the probe succeeds, and the option it
// sets really takes on its socket.
func TestProbe_SetsTheOption(t *testing.T) {
	if err := Probe(UserTimeout); err != nil {
		t.Fatalf("Probe = %v, want nil on Linux", err)
	}
	var got time.Duration
	err := probe(func(fd uintptr) error {
		if err := setUserTimeout(fd, 3*time.Second); err != nil {
			return err
		}
		var gerr error
		got, gerr = userTimeout(fd)
		return gerr
	})
	if err != nil || got != 3*time.Second {
		t.Errorf("probe socket TCP_USER_TIMEOUT = %v, %v; want 3s", got, err)
	}
}
