//go:build !windows

package main

import (
	"os"
	"path/filepath"
)

func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/kanade-agent"
	}
	if d, err := os.UserHomeDir(); err == nil {
		return filepath.Join(d, ".local", "state", "kanade-agent")
	}
	return "kanade-agent-data"
}
