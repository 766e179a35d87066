package bus

import (
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/windows"
)

// StatVolume reports the volume dir is on: its size, the space this
// process may still use, and its mount point as the ID.
func StatVolume(dir string) (Volume, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Volume{}, fmt.Errorf("volume of %s: %w", dir, err)
	}
	p, err := windows.UTF16PtrFromString(abs)
	if err != nil {
		return Volume{}, fmt.Errorf("volume of %s: %w", dir, err)
	}
	var avail, total, free uint64
	if err := windows.GetDiskFreeSpaceEx(p, &avail, &total, &free); err != nil {
		return Volume{}, fmt.Errorf("volume of %s: %w", dir, err)
	}
	v := Volume{Path: dir, Total: int64(total), Used: int64(total - free), Free: int64(avail), ID: strings.ToLower(filepath.VolumeName(abs))}
	buf := make([]uint16, windows.MAX_PATH+1)
	if windows.GetVolumePathName(p, &buf[0], uint32(len(buf))) == nil {
		v.ID = strings.ToLower(windows.UTF16ToString(buf))
	}
	return v, nil
}
