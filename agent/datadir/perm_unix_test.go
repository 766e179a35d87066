//go:build !windows

package datadir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestPrepareCreatesPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "lib", "kanade")
	changed, err := Prepare(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 0 {
		t.Errorf("a new directory needed changes: %v", changed)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("new data directory mode %04o, want 0700", m)
	}
}

// TestPrepareTightens: a directory left readable by others (an older
// release, or a hand-made one) and a readable key are made private.
func TestPrepareTightens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // past the umask
		t.Fatal(err)
	}
	key := filepath.Join(dir, "identity.nk")
	bundle := filepath.Join(dir, "enrollment-bundle")
	other := filepath.Join(dir, "ledger.jsonl")
	for _, f := range []string{key, bundle, other} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	changed, err := Prepare(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("data directory mode %04o, want 0700", m)
	}
	for _, f := range []string{key, bundle} {
		if m := mode(t, f); m != 0o600 {
			t.Errorf("%s mode %04o, want 0600", filepath.Base(f), m)
		}
	}
	if len(changed) != 3 || !strings.Contains(strings.Join(changed, "\n"), "mode 0755 → 0700") {
		t.Errorf("changed = %q, want the directory and two secret files", changed)
	}
	if again, err := Prepare(dir); err != nil || len(again) != 0 {
		t.Errorf("second Prepare() = %v, %v; want no changes", again, err)
	}
}

func TestPrepareRefusesASymlinkedKey(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.WriteFile(target, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "identity.nk")); err != nil {
		t.Fatal(err)
	}
	if _, err := Prepare(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Prepare() = %v, want a refusal of the symlinked key", err)
	}
	if m := mode(t, target); m != 0o644 {
		t.Errorf("the link's target was changed to %04o", m)
	}
}

// TestPrepareRefusesAnotherOwner needs root to hand a directory to
// another user.
func TestPrepareRefusesAnotherOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown a directory to another user (running as uid", os.Geteuid(), ")")
	}
	for _, victim := range []string{"", "identity.nk"} {
		dir := filepath.Join(t.TempDir(), "data")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		path := dir
		if victim != "" {
			path = filepath.Join(dir, victim)
			if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chown(path, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		_, err := Prepare(dir)
		if err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Errorf("Prepare() with %q owned by nobody = %v, want a refusal", victim, err)
		}
		if victim != "" {
			if m := mode(t, path); m != 0o644 {
				t.Errorf("the refused key's mode was changed to %04o", m)
			}
		}
	}
}
