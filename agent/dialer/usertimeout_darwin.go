package dialer

import (
	"syscall"
	"time"
)

const supported = true

const optionName = "TCP_RXT_CONNDROPTIME"

func setUserTimeout(fd uintptr, d time.Duration) error {
	return syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_RXT_CONNDROPTIME, optionValue(d, time.Second))
}
