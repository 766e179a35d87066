// Package dialer dials the agent's broker connection with a bound on how
// long sent data may stay unacknowledged before the kernel gives up on the
// connection (TCP_USER_TIMEOUT on Linux, TCP_MAXRT on Windows,
// TCP_RXT_CONNDROPTIME on macOS).
//
// An agent sends a heartbeat every 30 s, so on a dead path (a laptop that
// slept, a NAT or firewall that dropped its state, a pulled cable) it
// always has data waiting for an acknowledgement, and the kernel ends the
// connection once it has waited UserTimeout. Without the bound the kernel
// retransmits for about 15 minutes (Linux) and NATS pings had to find the
// dead path instead, each of them a wake-up and a write in the broker for
// every agent. With it, the agent pings the broker rarely (see
// PingInterval): a ping then only catches a broker process that hangs
// while its kernel still acknowledges.
package dialer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// UserTimeout is how long the agent's sent data may stay unacknowledged.
const UserTimeout = 2 * time.Minute

// Timeout bounds one dial (nats.go's own default).
const Timeout = 2 * time.Second

// Supported reports whether this OS has an option that bounds
// unacknowledged data. Whether the running system accepts it is Probe's
// answer.
const Supported = supported

// PingInterval is how often an agent pings the broker. Where the kernel
// bounds unacknowledged data (supported: Probe succeeded), pings only
// need to catch a broker that hangs with its kernel still acknowledging
// (two missed pings: 20–30 minutes); elsewhere they must find dead paths
// too (4–6 minutes).
func PingInterval(supported bool) time.Duration {
	if supported {
		return 10 * time.Minute
	}
	return 2 * time.Minute
}

// New returns a dialer for nats.SetCustomDialer that sets the bound on
// every TCP connection it dials. Setting it is best effort: a kernel that
// refuses the option does not fail the dial, it is logged once.
func New(bound time.Duration, log *slog.Logger) *net.Dialer {
	var warned atomic.Bool
	return &net.Dialer{
		Timeout: Timeout,
		Control: func(network, _ string, rc syscall.RawConn) error {
			if !strings.HasPrefix(network, "tcp") {
				return nil
			}
			var err error
			if cerr := rc.Control(func(fd uintptr) { err = setUserTimeout(fd, bound) }); cerr != nil {
				err = cerr
			}
			if err != nil && warned.CompareAndSwap(false, true) {
				log.Warn("cannot bound unacknowledged data on the broker connection; a dead network path is found by pings only",
					"option", optionName, "err", err)
			}
			return nil
		},
	}
}

// Probe reports whether the bound can be set on this system, by setting it
// to bound on a TCP socket that is never bound nor connected. The OS alone
// does not tell: Wine (WSAENOPROTOOPT) and old kernels refuse the option
// at run time. An agent chooses its ping interval from the answer before
// it dials (nats.go fixes the interval when it connects).
func Probe(bound time.Duration) error {
	return probe(func(fd uintptr) error { return setUserTimeout(fd, bound) })
}

// errProbed ends a probe's listen before the socket is bound.
var errProbed = errors.New("probed")

// probe runs set on a new TCP socket, which is closed unbound.
func probe(set func(fd uintptr) error) error {
	var err error
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		if cerr := rc.Control(func(fd uintptr) { err = set(fd) }); cerr != nil {
			err = cerr
		}
		return errProbed
	}}
	ln, lerr := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	switch {
	case lerr == nil: // Control always fails the listen; never reached
		ln.Close()
		return errors.New("probe: the socket was bound")
	case !errors.Is(lerr, errProbed):
		return fmt.Errorf("probe: %w", lerr)
	}
	return err
}

// optionValue is d in units of unit, rounded up, at least 1 and at most
// the largest int32 (socket options are C ints).
func optionValue(d, unit time.Duration) int {
	n := (d + unit - 1) / unit
	return int(min(max(n, 1), 1<<31-1))
}
