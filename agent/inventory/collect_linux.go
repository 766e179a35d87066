package inventory

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kanadehq/kanade/agent/wire"
)

func collectors() []collector {
	return []collector{
		{wire.SectionOS, "", collectOS},
		{wire.SectionHardware, "", collectHardware},
		{wire.SectionDisks, "", collectDisks},
		{wire.SectionNetwork, "", collectNetwork},
		{wire.SectionSoftware, "", collectSoftware},
	}
}

func collectOS(ctx context.Context, inv *wire.Inventory) error {
	b, err := os.ReadFile("/etc/os-release")
	if errors.Is(err, fs.ErrNotExist) {
		b, err = os.ReadFile("/usr/lib/os-release")
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	inv.OS = osFromOSRelease(parseOSRelease(string(b)), string(kernel))
	if st, serr := os.ReadFile("/proc/stat"); serr == nil {
		if t, ok := parseBootTime(string(st)); ok {
			inv.OS.LastBoot = t
		}
	}
	if err != nil {
		return fmt.Errorf("os-release: %w", err)
	}
	return nil
}

func collectHardware(ctx context.Context, inv *wire.Inventory) error {
	var errs []error
	h := &inv.Hardware
	if b, err := os.ReadFile("/proc/cpuinfo"); err != nil {
		errs = append(errs, err)
	} else {
		h.CPUModel, h.CPUCores, h.CPULogical = parseCPUInfo(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err != nil {
		errs = append(errs, err)
	} else if n, err := parseMeminfo(string(b)); err != nil {
		errs = append(errs, err)
	} else {
		h.RAMBytes = n
	}
	// DMI (x86; product_serial needs root), else the device tree (ARM
	// boards). Missing files are normal.
	read := func(path string) string {
		b, _ := os.ReadFile(path)
		return meaningful(strings.TrimRight(string(b), "\x00\n"))
	}
	h.Manufacturer = read("/sys/class/dmi/id/sys_vendor")
	h.Model = first(read("/sys/class/dmi/id/product_name"), read("/proc/device-tree/model"))
	h.SerialNumber = first(read("/sys/class/dmi/id/product_serial"), read("/proc/device-tree/serial-number"))
	h.BIOSVersion = read("/sys/class/dmi/id/bios_version")
	return errors.Join(errs...)
}

// collectDisks lists local file systems with their size and the space
// available to users (what df shows).
func collectDisks(ctx context.Context, inv *wire.Inventory) error {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return fmt.Errorf("mounts: %w", err)
	}
	for _, m := range localMounts(parseMounts(string(b))) {
		if err := ctx.Err(); err != nil {
			return err
		}
		var st unix.Statfs_t
		if err := unix.Statfs(m.Path, &st); err != nil {
			continue // unmounted meanwhile, or not ours to read
		}
		bs := int64(st.Frsize)
		if bs <= 0 {
			bs = int64(st.Bsize)
		}
		size, free := int64(st.Blocks)*bs, int64(st.Bavail)*bs
		if size <= 0 {
			continue
		}
		inv.Disks = append(inv.Disks, wire.Disk{Mount: m.Path, Device: m.Device, FS: m.FS, SizeBytes: size, FreeBytes: free})
	}
	return nil
}

// collectSoftware reads dpkg's status file, or asks rpm where there is no
// dpkg. A system with neither has no software section.
func collectSoftware(ctx context.Context, inv *wire.Inventory) error {
	f, err := os.Open("/var/lib/dpkg/status")
	if err == nil {
		defer f.Close()
		inv.Software, err = parseDpkgStatus(f)
		return err
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("dpkg: %w", err)
	}
	rpm, err := exec.LookPath("rpm")
	if err != nil {
		return nil
	}
	out, err := exec.CommandContext(ctx, rpm, "-qa", "--qf", rpmQueryFormat).Output()
	if err != nil {
		return fmt.Errorf("rpm -qa: %w", err)
	}
	inv.Software = parseRPM(string(out))
	return nil
}
