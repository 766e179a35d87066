//go:build !linux && !windows && !darwin

package dialer

import (
	"errors"
	"time"
)

const supported = false

const optionName = "none"

func setUserTimeout(uintptr, time.Duration) error { return errors.ErrUnsupported }
