package worker

import (
	"time"

	"golang.org/x/sys/windows"
)

// cpuTime returns the kernel plus user CPU time the process has used
// (GetProcessTimes).
func cpuTime() (time.Duration, bool) {
	var creation, exit, kernel, user windows.Filetime
	if err := windows.GetProcessTimes(windows.CurrentProcess(), &creation, &exit, &kernel, &user); err != nil {
		return 0, false
	}
	return fileTimeSpan(kernel.HighDateTime, kernel.LowDateTime) + fileTimeSpan(user.HighDateTime, user.LowDateTime), true
}
