//go:build !windows

package service

import (
	"fmt"
	"os"
	"path/filepath"
)

// CheckExecutable refuses to install a service (run as root) from a file
// that others than its owner may change: whoever can replace it runs as
// root at the next start. The file must not be group- or world-writable,
// nor its directory world-writable without the sticky bit.
func CheckExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is writable by other users (mode %04o): install kanade-agent where only root can change it (e.g. /usr/local/bin, mode 0755)", path, fi.Mode().Perm())
	}
	dir := filepath.Dir(path)
	di, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if di.Mode().Perm()&0o002 != 0 && di.Mode()&os.ModeSticky == 0 {
		return fmt.Errorf("%s is in %s, which every user may write to: install kanade-agent where only root can change it (e.g. /usr/local/bin)", path, dir)
	}
	return nil
}
