package dialer

import (
	"syscall"
	"time"
)

const supported = true

const optionName = "TCP_MAXRT"

// tcpMaxRT is TCP_MAXRT (ws2ipdef.h), in seconds: how long TCP
// retransmits before it drops the connection (Windows Vista and later).
const tcpMaxRT = 5

func setUserTimeout(fd uintptr, d time.Duration) error {
	return syscall.SetsockoptInt(syscall.Handle(fd), syscall.IPPROTO_TCP, tcpMaxRT, optionValue(d, time.Second))
}
