//go:build !unix && !windows

package worker

import "time"

// cpuTime is unknown on this OS.
func cpuTime() (time.Duration, bool) { return 0, false }
