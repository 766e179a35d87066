//go:build !windows

package main

import (
	"os"
	"path/filepath"
)

// defaultDataDirs returns the default data directory and that of earlier
// releases ("" when it has not changed).
func defaultDataDirs() (current, legacy string) {
	if os.Geteuid() == 0 {
		return "/var/lib/kanade", "/var/lib/kanade-agent"
	}
	if d, err := os.UserHomeDir(); err == nil {
		return filepath.Join(d, ".local", "state", "kanade-agent"), ""
	}
	return "kanade-agent-data", ""
}

func defaultDataDir() string {
	d, _ := defaultDataDirs()
	return d
}
