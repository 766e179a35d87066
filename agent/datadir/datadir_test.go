package datadir

import (
	"os"
	"path/filepath"
	"testing"
)

func TestChoose(t *testing.T) {
	tests := []struct {
		name            string
		current, legacy []string // files present; nil = the directory does not exist
		noLegacy        bool
		wantLegacy      bool
	}{
		{"fresh install", nil, nil, false, false},
		{"current in use", []string{"identity.nk"}, nil, false, false},
		{"only legacy in use", nil, []string{"identity.nk", "ledger.jsonl"}, false, true},
		{"legacy has only a credential", nil, []string{"credential.json"}, false, true},
		{"current exists but holds no identity", []string{"logs"}, []string{"identity.nk"}, false, true},
		{"both in use: current wins", []string{"identity.nk"}, []string{"identity.nk"}, false, false},
		{"legacy exists without an identity", nil, []string{"ledger.jsonl"}, false, false},
		{"no legacy default", nil, nil, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			current, legacy := filepath.Join(root, "kanade"), filepath.Join(root, "kanade-agent")
			for dir, files := range map[string][]string{current: tt.current, legacy: tt.legacy} {
				if files == nil {
					continue
				}
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				for _, f := range files {
					if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			if tt.noLegacy {
				legacy = ""
			}
			dir, used := Choose(current, legacy)
			want := current
			if tt.wantLegacy {
				want = legacy
			}
			if dir != want || used != tt.wantLegacy {
				t.Errorf("Choose() = %s, %v; want %s, %v", dir, used, want, tt.wantLegacy)
			}
		})
	}
}

func TestPrepareRefusesAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Prepare(path); err == nil {
		t.Fatal("Prepare() of a regular file succeeded")
	}
	if _, err := Prepare(""); err == nil {
		t.Fatal("Prepare(\"\") succeeded")
	}
}
