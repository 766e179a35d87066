package service

import (
	"path/filepath"
	"runtime"
	"testing"
)

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Spec)
		ok     bool
	}{
		{"good", func(*Spec) {}, true},
		{"relative executable", func(s *Spec) { s.Executable = "kanade-agent" }, false},
		{"relative data", func(s *Spec) { s.DataDir = "data" }, false},
		{"newline in an argument", func(s *Spec) { s.Args = []string{"--groups", "a\nExecStartPre=/bin/evil"} }, false},
		{"NUL", func(s *Spec) { s.Args = []string{"a\x00b"} }, false},
		{"template braces", func(s *Spec) { s.Args = []string{"{{Path}}"} }, false},
	}
	root := "/"
	if runtime.GOOS == "windows" {
		root = `C:\`
	}
	good := Spec{Executable: filepath.Join(root, "kanade", "kanade-agent"), Args: []string{"service", "run", "--data", filepath.Join(root, "data")},
		DataDir: filepath.Join(root, "data")}
	for _, tt := range tests {
		s := good
		tt.change(&s)
		err := s.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tt.name, err, tt.ok)
		}
		if !tt.ok {
			if _, err := SystemdUnit(s); err == nil {
				t.Errorf("%s: SystemdUnit() rendered an invalid spec", tt.name)
			}
			if _, err := LaunchdPlist(s); err == nil {
				t.Errorf("%s: LaunchdPlist() rendered an invalid spec", tt.name)
			}
		}
	}
}
