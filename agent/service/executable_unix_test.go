//go:build !windows

package service

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCheckExecutable(t *testing.T) {
	tests := []struct {
		name          string
		dirMode, mode os.FileMode
		sticky, ok    bool
	}{
		{"root-owned layout", 0o755, 0o755, false, true},
		{"group-writable file", 0o755, 0o775, false, false},
		{"world-writable file", 0o755, 0o757, false, false},
		{"world-writable directory", 0o777, 0o755, false, false},
		{"world-writable directory with the sticky bit (/tmp)", 0o777, 0o755, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "bin")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			exe := filepath.Join(dir, "kanade-agent")
			if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o700); err != nil {
				t.Fatal(err)
			}
			dm := tt.dirMode
			if tt.sticky {
				dm |= os.ModeSticky
			}
			if err := os.Chmod(exe, tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, dm); err != nil {
				t.Fatal(err)
			}
			if err := CheckExecutable(exe); (err == nil) != tt.ok {
				t.Errorf("CheckExecutable() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}
