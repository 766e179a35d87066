package inventory

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kanadehq/kanade/agent/wire"
)

func collectors() []collector {
	return []collector{
		{wire.SectionOS, "", collectOS},
		{wire.SectionHardware, "", collectHardware},
		{wire.SectionDisks, "", collectDisks},
		{wire.SectionNetwork, "", collectNetwork},
	}
}

func collectOS(ctx context.Context, inv *wire.Inventory) error {
	out, err := exec.CommandContext(ctx, "/usr/bin/sw_vers").Output()
	if err == nil {
		inv.OS = osFromSwVers(string(out))
	} else {
		// sysctl knows the version too (macOS 10.13.4 and later).
		v, _ := unix.Sysctl("kern.osproductversion")
		b, _ := unix.Sysctl("kern.osversion")
		inv.OS = wire.OSInfo{Name: "macOS", Version: v, Build: b}
		err = fmt.Errorf("sw_vers: %w", err)
	}
	inv.OS.Kind = wire.KindWorkstation
	if tv, terr := unix.SysctlTimeval("kern.boottime"); terr == nil && tv.Sec > 0 {
		inv.OS.LastBoot = time.Unix(tv.Unix()).UTC()
	}
	return err
}

func collectHardware(ctx context.Context, inv *wire.Inventory) error {
	var errs []error
	h := &inv.Hardware
	h.Manufacturer = "Apple Inc."
	h.Model, _ = unix.Sysctl("hw.model")
	if s, err := unix.Sysctl("machdep.cpu.brand_string"); err == nil {
		h.CPUModel = text(s)
	} else {
		errs = append(errs, fmt.Errorf("machdep.cpu.brand_string: %w", err))
	}
	if n, err := unix.SysctlUint32("hw.physicalcpu"); err == nil {
		h.CPUCores = int(n)
	}
	if n, err := unix.SysctlUint32("hw.logicalcpu"); err == nil {
		h.CPULogical = int(n)
	}
	if n, err := unix.SysctlUint64("hw.memsize"); err == nil && n < 1<<62 {
		h.RAMBytes = int64(n)
	} else if err != nil {
		errs = append(errs, fmt.Errorf("hw.memsize: %w", err))
	}
	if out, err := exec.CommandContext(ctx, "/usr/sbin/ioreg", "-rd1", "-c", "IOPlatformExpertDevice").Output(); err == nil {
		h.SerialNumber = parseIoregSerial(string(out))
	}
	return errors.Join(errs...)
}

// collectDisks lists local, browsable file systems (the APFS helper
// volumes under /System/Volumes are hidden with MNT_DONTBROWSE).
func collectDisks(ctx context.Context, inv *wire.Inventory) error {
	n, err := unix.Getfsstat(nil, unix.MNT_NOWAIT)
	if err != nil {
		return fmt.Errorf("getfsstat: %w", err)
	}
	buf := make([]unix.Statfs_t, n+4)
	n, err = unix.Getfsstat(buf, unix.MNT_NOWAIT)
	if err != nil {
		return fmt.Errorf("getfsstat: %w", err)
	}
	for _, st := range buf[:n] {
		fsType := unix.ByteSliceToString(st.Fstypename[:])
		if st.Flags&unix.MNT_LOCAL == 0 || st.Flags&unix.MNT_DONTBROWSE != 0 || pseudoFS[fsType] || fsType == "nullfs" {
			continue
		}
		size, free := int64(st.Blocks)*int64(st.Bsize), int64(st.Bavail)*int64(st.Bsize)
		if size <= 0 {
			continue
		}
		inv.Disks = append(inv.Disks, wire.Disk{
			Mount: unix.ByteSliceToString(st.Mntonname[:]), Device: unix.ByteSliceToString(st.Mntfromname[:]),
			FS: fsType, SizeBytes: size, FreeBytes: free,
		})
	}
	return nil
}
