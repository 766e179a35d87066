//go:build !windows

package datadir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// protect makes dir 0700 and its secret files 0600, refusing a directory
// or secret file owned by another user: its owner could read or replace
// the agent's identity whatever the mode says.
func protect(dir string) ([]string, error) {
	var changed []string
	uid := os.Geteuid()
	check := func(path string, want fs.FileMode) error {
		fi, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if path != dir && !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file", path)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid {
			return fmt.Errorf("%s is owned by uid %d, not by the agent's user (uid %d): chown it, or choose another --data", path, st.Uid, uid)
		}
		if fi.Mode().Perm()&^want != 0 {
			if err := os.Chmod(path, want); err != nil {
				return err
			}
			changed = append(changed, fmt.Sprintf("%s: mode %04o → %04o", path, fi.Mode().Perm(), want))
		}
		return nil
	}
	// Stat (not Lstat) for the directory itself: a symbolic link to the
	// data directory is the admin's choice; its target is checked.
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, err
	}
	dir = real
	if err := check(dir, 0o700); err != nil {
		return changed, err
	}
	for _, f := range secretFiles {
		if err := check(filepath.Join(dir, f), 0o600); err != nil {
			return changed, err
		}
	}
	return changed, nil
}
