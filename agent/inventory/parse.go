package inventory

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
)

// This file parses what Linux and macOS report (files under /etc and
// /proc, command output). It has no build tags so that every parser is
// tested with fixtures on any OS.

// parseOSRelease reads os-release(5): KEY=value lines, values optionally
// quoted with shell-style escapes; comments and junk are skipped.
func parseOSRelease(s string) map[string]string {
	kv := map[string]string{}
	for line := range strings.Lines(s) {
		line = strings.TrimSpace(line)
		k, v, ok := strings.Cut(line, "=")
		if !ok || line == "" || line[0] == '#' || strings.ContainsAny(k, " \t") {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			q := v[0]
			v = v[1 : len(v)-1]
			if q == '"' {
				var b strings.Builder
				for i := 0; i < len(v); i++ {
					if v[i] == '\\' && i+1 < len(v) && strings.IndexByte("\"\\$`", v[i+1]) >= 0 {
						i++
					}
					b.WriteByte(v[i])
				}
				v = b.String()
			}
		}
		kv[k] = v
	}
	return kv
}

// osFromOSRelease builds the OS section of a Linux system from its
// os-release and kernel release.
func osFromOSRelease(kv map[string]string, kernel string) wire.OSInfo {
	o := wire.OSInfo{
		Name:    first(text(kv["PRETTY_NAME"]), text(kv["NAME"]+" "+kv["VERSION"]), "Linux"),
		Version: text(kv["VERSION_ID"]),
		Release: text(kv["VERSION_CODENAME"]),
		Build:   text(kernel),
	}
	switch v := strings.ToLower(kv["VARIANT_ID"]); {
	case strings.Contains(v, "server"):
		o.Kind = wire.KindServer
	case strings.Contains(v, "workstation"), strings.Contains(v, "desktop"):
		o.Kind = wire.KindWorkstation
	}
	return o
}

// parseCPUInfo reads /proc/cpuinfo: the CPU model, the physical cores
// (distinct physical id/core id pairs, else "cpu cores" per socket, else
// the logical count) and the logical processors.
func parseCPUInfo(s string) (model string, cores, logical int) {
	type core struct{ pkg, id string }
	seen := map[core]bool{}
	pkgs := map[string]bool{}
	var pkg, perSocket string
	var alt string // a model from ARM/PowerPC/MIPS keys
	for line := range strings.Lines(s) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), text(v)
		switch k {
		case "processor":
			logical++
			pkg = ""
		case "model name":
			if model == "" {
				model = v
			}
		case "Processor", "cpu model", "cpu", "Hardware":
			if alt == "" && v != "" && !digits(v) {
				alt = v
			}
		case "physical id":
			pkg = v
			pkgs[v] = true
		case "core id":
			seen[core{pkg, v}] = true
		case "cpu cores":
			perSocket = v
		}
	}
	switch n, err := strconv.Atoi(perSocket); {
	case len(seen) > 0:
		cores = len(seen)
	case err == nil && n > 0:
		cores = n * max(len(pkgs), 1)
	default:
		cores = logical
	}
	return first(model, alt), cores, logical
}

// parseMeminfo returns MemTotal from /proc/meminfo in bytes.
func parseMeminfo(s string) (int64, error) {
	for line := range strings.Lines(s) {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("meminfo: MemTotal %q: not a number", f[0])
			}
			if len(f) > 1 && strings.EqualFold(f[1], "kB") {
				n *= 1024
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("meminfo: no MemTotal")
}

// parseBootTime reads the btime line of /proc/stat (seconds since 1970).
func parseBootTime(s string) (time.Time, bool) {
	for line := range strings.Lines(s) {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || n <= 0 {
				return time.Time{}, false
			}
			return time.Unix(n, 0).UTC(), true
		}
	}
	return time.Time{}, false
}

// mount is one line of /proc/self/mounts.
type mount struct{ Device, Path, FS string }

// parseMounts reads /proc/self/mounts (fstab format; spaces and tabs in
// paths are octal escapes such as \040).
func parseMounts(s string) []mount {
	var out []mount
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		out = append(out, mount{Device: unescapeMount(f[0]), Path: unescapeMount(f[1]), FS: f[2]})
	}
	return out
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// pseudoFS are file systems that hold no user data (kernel interfaces,
// memory, read-only images such as snaps).
var pseudoFS = map[string]bool{
	"proc": true, "sysfs": true, "devtmpfs": true, "devpts": true, "tmpfs": true, "ramfs": true, "rootfs": true,
	"cgroup": true, "cgroup2": true, "securityfs": true, "pstore": true, "bpf": true, "debugfs": true, "tracefs": true,
	"configfs": true, "fusectl": true, "mqueue": true, "hugetlbfs": true, "autofs": true, "binfmt_misc": true,
	"rpc_pipefs": true, "nsfs": true, "efivarfs": true, "squashfs": true, "selinuxfs": true, "nfsd": true,
	"aufs": true, "devfs": true, "fuse.lxcfs": true, "fuse.gvfsd-fuse": true, "fuse.portal": true, "fuse.snapfuse": true,
	"overlay": true, "zram": true, "iso9660": true, "udf": true,
}

// networkFS are remote file systems: not this PC's disks, and statfs on a
// dead server can hang.
var networkFS = map[string]bool{
	"nfs": true, "nfs4": true, "cifs": true, "smb3": true, "smbfs": true, "sshfs": true, "fuse.sshfs": true,
	"9p": true, "afs": true, "ceph": true, "glusterfs": true, "fuse.glusterfs": true, "davfs": true,
	"fuse.rclone": true, "lustre": true, "fuse.s3fs": true,
}

// localMounts keeps the mounts of local disks: no pseudo or network file
// systems (an overlay counts when it is the root, as in a container), and
// each device once, at its shortest path (bind mounts, btrfs subvolumes).
func localMounts(ms []mount) []mount {
	byDev := map[string]int{}
	var out []mount
	for _, m := range ms {
		if networkFS[m.FS] || (pseudoFS[m.FS] && !(m.FS == "overlay" && m.Path == "/")) {
			continue
		}
		if i, ok := byDev[m.Device]; ok {
			if len(m.Path) < len(out[i].Path) {
				out[i] = m
			}
			continue
		}
		byDev[m.Device] = len(out)
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b mount) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// parseDpkgStatus reads dpkg's status file (/var/lib/dpkg/status): the
// installed packages, with the maintainer's name as publisher.
func parseDpkgStatus(r io.Reader) ([]wire.Package, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var ps []wire.Package
	var cur wire.Package
	installed := false
	flush := func() {
		if installed && cur.Name != "" {
			ps = append(ps, cur)
		}
		cur, installed = wire.Package{}, false
	}
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // continuation of a multi-line field
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Package":
			cur.Name = v
		case "Version":
			cur.Version = v
		case "Maintainer":
			cur.Publisher = personName(v)
		case "Status":
			// "want flag status": only "installed" counts, not
			// config-files, half-installed, not-installed, …
			f := strings.Fields(v)
			installed = len(f) == 3 && f[2] == "installed"
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return ps, fmt.Errorf("dpkg status: %w", err)
	}
	return dedupePackages(ps), nil
}

// rpmQueryFormat is the --qf of `rpm -qa`; parseRPM reads its output.
const rpmQueryFormat = `%{NAME}\t%{VERSION}-%{RELEASE}\t%{VENDOR}\t%{INSTALLTIME}\n`

// parseRPM reads `rpm -qa --qf rpmQueryFormat`. "(none)" means empty;
// gpg-pubkey entries are keys, not software.
func parseRPM(s string) []wire.Package {
	var ps []wire.Package
	for line := range strings.Lines(s) {
		f := strings.Split(strings.TrimRight(line, "\r\n"), "\t")
		if len(f) < 2 || f[0] == "" || f[0] == "gpg-pubkey" {
			continue
		}
		for i := range f {
			if f[i] == "(none)" {
				f[i] = ""
			}
		}
		p := wire.Package{Name: f[0], Version: f[1]}
		if len(f) > 2 {
			p.Publisher = f[2]
		}
		if len(f) > 3 {
			if n, err := strconv.ParseInt(f[3], 10, 64); err == nil && n > 0 {
				p.InstallDate = time.Unix(n, 0).UTC().Format(wire.InventoryDateLayout)
			}
		}
		ps = append(ps, p)
	}
	return dedupePackages(ps)
}

// personName cuts the e-mail address off "Name <mail>".
func personName(s string) string {
	if i := strings.IndexByte(s, '<'); i > 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}

// osFromSwVers reads the output of macOS's sw_vers ("ProductName:\tmacOS").
func osFromSwVers(s string) wire.OSInfo {
	var o wire.OSInfo
	for line := range strings.Lines(s) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "ProductName":
			o.Name = text(v)
		case "ProductVersion":
			o.Version = text(v)
		case "BuildVersion":
			o.Build = text(v)
		}
	}
	return o
}

// parseIoregSerial finds IOPlatformSerialNumber in the output of
// `ioreg -rd1 -c IOPlatformExpertDevice`.
func parseIoregSerial(s string) string {
	for line := range strings.Lines(s) {
		if _, v, ok := strings.Cut(line, `"IOPlatformSerialNumber" = `); ok {
			return meaningful(strings.Trim(strings.TrimSpace(v), `"`))
		}
	}
	return ""
}

// nicFrom maps one network interface, given its addresses as net.Addr
// strings ("192.168.1.2/24"). Loopback, down and address-less interfaces
// are left out.
func nicFrom(name, mac string, up, loopback bool, addrs []string) (wire.NIC, bool) {
	if loopback || !up {
		return wire.NIC{}, false
	}
	n := wire.NIC{Name: name, MAC: normalizeMAC(mac)}
	n.IPv4, n.IPv6 = splitAddrs(addrs)
	if len(n.IPv4)+len(n.IPv6) == 0 {
		return wire.NIC{}, false
	}
	return n, true
}
