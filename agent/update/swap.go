package update

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/minio/selfupdate"
)

// Names beside the agent's binary (same directory, so the same volume:
// every move is a rename).
func previousPath(exe string) string { return sideFile(exe, "previous") }
func failedPath(exe string) string   { return sideFile(exe, "failed") }

func sideFile(exe, what string) string {
	return filepath.Join(filepath.Dir(exe), "."+filepath.Base(exe)+"."+what)
}

// swap puts the binary src in place of exe and moves exe to keep, through
// selfupdate's rename dance: src is copied to a new file beside exe
// (checked against sum when sum is set), exe is renamed to keep, and the
// new file to exe. Windows lets a running program be renamed but not
// replaced or deleted, which is why the running binary is moved aside
// rather than overwritten; if the last rename fails, exe is renamed back.
// The new file is synced before it is renamed into place, and the
// directory after, so that a power cut leaves one whole binary at exe.
func swap(exe, src, keep string, sum []byte) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	mode := os.FileMode(0o755)
	if fi, err := os.Stat(exe); err == nil {
		mode = fi.Mode().Perm()
	}
	opts := selfupdate.Options{TargetPath: exe, TargetMode: mode, OldSavePath: keep, Checksum: sum}
	if err := selfupdate.PrepareAndCheckBinary(f, opts); err != nil {
		return fmt.Errorf("prepare the new binary beside %s: %w", exe, err)
	}
	// selfupdate's name for the file it prepared.
	staged := filepath.Join(filepath.Dir(exe), "."+filepath.Base(exe)+".new")
	if err := syncFile(staged); err != nil {
		_ = os.Remove(staged)
		return fmt.Errorf("sync %s: %w", staged, err)
	}
	if err := selfupdate.CommitBinary(opts); err != nil {
		if rerr := selfupdate.RollbackError(err); rerr != nil {
			return fmt.Errorf("%w; moving the previous binary back failed too (%v): %s is missing, restore it from %s", err, rerr, exe, keep)
		}
		_ = os.Remove(staged)
		return err
	}
	return syncDir(filepath.Dir(exe))
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// fileSHA256 returns the hex SHA-256 of a file.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// canReplace checks, before anything is downloaded, that this process
// may create files beside exe (where the swap renames).
func canReplace(exe string) error {
	opts := selfupdate.Options{TargetPath: exe}
	if err := opts.CheckPermissions(); err != nil {
		return fmt.Errorf("cannot write beside %s: %w", exe, err)
	}
	if _, err := os.Stat(exe); err != nil {
		return err
	}
	return nil
}

// removeQuietly removes files that may not exist.
func removeQuietly(paths ...string) error {
	var errs []error
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
