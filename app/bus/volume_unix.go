//go:build !windows

package bus

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// StatVolume reports the file system dir is on: its size, the space this
// process may still use, and its device as the ID.
func StatVolume(dir string) (Volume, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return Volume{}, fmt.Errorf("volume of %s: %w", dir, err)
	}
	bs := uint64(st.Bsize)
	v := Volume{Path: dir, Total: int64(uint64(st.Blocks) * bs), Used: int64((uint64(st.Blocks) - uint64(st.Bfree)) * bs), Free: int64(uint64(st.Bavail) * bs)}
	if fi, err := os.Stat(dir); err == nil {
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			v.ID = fmt.Sprint(sys.Dev)
		}
	}
	return v, nil
}
