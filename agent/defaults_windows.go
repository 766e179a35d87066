package main

import (
	"os"
	"path/filepath"
)

func defaultDataDir() string {
	base := os.Getenv("ProgramData")
	if base == "" {
		base = `C:\ProgramData`
	}
	return filepath.Join(base, "Kanade", "agent")
}
