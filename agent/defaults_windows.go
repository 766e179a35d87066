package main

import (
	"os"
	"path/filepath"
)

// defaultDataDirs returns the default data directory and that of earlier
// releases. (Windows paths ignore case: the earlier one is a subdirectory
// of the current one.)
func defaultDataDirs() (current, legacy string) {
	base := os.Getenv("ProgramData")
	if base == "" {
		base = `C:\ProgramData`
	}
	return filepath.Join(base, "kanade"), filepath.Join(base, "Kanade", "agent")
}

func defaultDataDir() string {
	d, _ := defaultDataDirs()
	return d
}
