package dialer

import (
	"syscall"
	"time"
)

const supported = true

const optionName = "TCP_USER_TIMEOUT"

// tcpUserTimeout is TCP_USER_TIMEOUT (linux/tcp.h), in milliseconds;
// syscall defines it for some architectures only.
const tcpUserTimeout = 0x12

func setUserTimeout(fd uintptr, d time.Duration) error {
	return syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout, optionValue(d, time.Millisecond))
}

func userTimeout(fd uintptr) (time.Duration, error) {
	v, err := syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout)
	return time.Duration(v) * time.Millisecond, err
}
