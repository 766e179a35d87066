package inventory

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/wire"
)

func TestOSFromOSRelease(t *testing.T) {
	tests := []struct {
		name, osRelease, kernel string
		want                    wire.OSInfo
	}{
		{"Debian 13", `PRETTY_NAME="Debian GNU/Linux 13 (trixie)"
NAME="Debian GNU/Linux"
VERSION_ID="13"
VERSION="13 (trixie)"
VERSION_CODENAME=trixie
ID=debian
HOME_URL="https://www.debian.org/"
`, "6.12.48+deb13-amd64\n", wire.OSInfo{Name: "Debian GNU/Linux 13 (trixie)", Version: "13", Release: "trixie", Build: "6.12.48+deb13-amd64"}},
		{"Fedora Workstation: variant gives the kind", `NAME="Fedora Linux"
VERSION="39 (Workstation Edition)"
ID=fedora
VERSION_ID=39
PRETTY_NAME="Fedora Linux 39 (Workstation Edition)"
VARIANT="Workstation Edition"
VARIANT_ID=workstation
`, "6.5.6-300.fc39.x86_64", wire.OSInfo{Name: "Fedora Linux 39 (Workstation Edition)", Version: "39", Build: "6.5.6-300.fc39.x86_64", Kind: wire.KindWorkstation}},
		{"RHEL server variant, single quotes, comments, escapes, junk", `# a comment
NAME='Red Hat Enterprise Linux'
VERSION="9.3 (Plow)"
VARIANT_ID=server
PRETTY_NAME="Red Hat \"Enterprise\" Linux \$9.3"
not a line
BAD KEY=x
`, "", wire.OSInfo{Name: `Red Hat "Enterprise" Linux $9.3`, Kind: wire.KindServer}},
		{"no PRETTY_NAME", "NAME=Alpine\nVERSION=3.19.0\n", "", wire.OSInfo{Name: "Alpine 3.19.0"}},
		{"missing file", "", "6.1.0", wire.OSInfo{Name: "Linux", Build: "6.1.0"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, osFromOSRelease(parseOSRelease(tt.osRelease), tt.kernel)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
}

// cpuinfoX86 is two sockets of two cores with hyper-threading (8 logical).
var cpuinfoX86 = func() string {
	var b strings.Builder
	n := 0
	for pkg := range 2 {
		for core := range 2 {
			for range 2 {
				b.WriteString("processor\t: " + itoa(n) + "\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz\n" +
					"physical id\t: " + itoa(pkg) + "\nsiblings\t: 4\ncore id\t\t: " + itoa(core) + "\ncpu cores\t: 2\nflags\t\t: fpu vme de\n\n")
				n++
			}
		}
	}
	return b.String()
}()

func itoa(n int) string { return string(rune('0' + n)) }

func TestParseCPUInfo(t *testing.T) {
	tests := []struct {
		name, in       string
		model          string
		cores, logical int
	}{
		{"x86, 2 sockets, HT", cpuinfoX86, "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", 4, 8},
		{"x86 VM without core ids", "processor\t: 0\nmodel name\t: AMD EPYC 7763 64-Core Processor\ncpu cores\t: 2\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7763 64-Core Processor\ncpu cores\t: 2\n",
			"AMD EPYC 7763 64-Core Processor", 2, 2},
		{"arm64 (no model name, no core ids)", "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n\nprocessor\t: 1\nBogoMIPS\t: 108.00\n\nHardware\t: BCM2835\nRevision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n",
			"BCM2835", 2, 2},
		{"armv7", "Processor\t: ARMv7 Processor rev 4 (v7l)\nprocessor\t: 0\nBogoMIPS\t: 38.40\n", "ARMv7 Processor rev 4 (v7l)", 1, 1},
		{"empty", "", "", 0, 0},
	}
	for _, tt := range tests {
		model, cores, logical := parseCPUInfo(tt.in)
		if model != tt.model || cores != tt.cores || logical != tt.logical {
			t.Errorf("%s: parseCPUInfo = %q, %d, %d; want %q, %d, %d", tt.name, model, cores, logical, tt.model, tt.cores, tt.logical)
		}
	}
}

func TestParseMeminfo(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"MemTotal:       16318412 kB\nMemFree:         1234 kB\n", 16318412 * 1024, false},
		{"MemFree: 1 kB\nMemTotal: 2048\n", 2048, false},
		{"MemFree: 1 kB\n", 0, true},
		{"MemTotal: lots kB\n", 0, true},
		{"MemTotal:\n", 0, true},
	}
	for _, tt := range tests {
		got, err := parseMeminfo(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("parseMeminfo(%q) = %d, %v; want %d, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseBootTime(t *testing.T) {
	got, ok := parseBootTime("cpu  1 2 3\nintr 5\nctxt 9\nbtime 1764316800\nprocesses 7\n")
	if !ok || !got.Equal(time.Unix(1764316800, 0)) {
		t.Errorf("parseBootTime = %v, %v", got, ok)
	}
	if _, ok := parseBootTime("btime x\n"); ok {
		t.Error("bad btime accepted")
	}
}

func TestLocalMounts(t *testing.T) {
	in := `sysfs /sys sysfs rw,nosuid 0 0
proc /proc proc rw 0 0
udev /dev devtmpfs rw 0 0
tmpfs /run tmpfs rw 0 0
/dev/nvme0n1p2 / ext4 rw,relatime 0 0
/dev/nvme0n1p1 /boot/efi vfat rw 0 0
/dev/nvme0n1p3 /home btrfs rw,subvol=/home 0 0
/dev/nvme0n1p3 /home/snapshots btrfs rw,subvol=/snap 0 0
/dev/sdb1 /media/My\040Disk exfat rw 0 0
/dev/loop3 /snap/core22/864 squashfs ro 0 0
server:/export /mnt/nfs nfs4 rw 0 0
//nas/share /mnt/smb cifs rw 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw 0 0
overlay /var/lib/docker/overlay2/abc/merged overlay rw 0 0
short line
`
	want := []mount{
		{"/dev/nvme0n1p2", "/", "ext4"},
		{"/dev/nvme0n1p1", "/boot/efi", "vfat"},
		{"/dev/nvme0n1p3", "/home", "btrfs"},
		{"/dev/sdb1", "/media/My Disk", "exfat"},
	}
	if diff := cmp.Diff(want, localMounts(parseMounts(in))); diff != "" {
		t.Errorf("localMounts (-want +got):\n%s", diff)
	}
	// In a container the root is an overlay; bind-mounted files of the
	// host's disk are one disk, at its shortest path.
	container := "overlay / overlay rw 0 0\n/dev/sda1 /etc/resolv.conf ext4 rw 0 0\n/dev/sda1 /etc/hosts ext4 rw 0 0\n"
	want = []mount{{"overlay", "/", "overlay"}, {"/dev/sda1", "/etc/hosts", "ext4"}}
	if diff := cmp.Diff(want, localMounts(parseMounts(container))); diff != "" {
		t.Errorf("localMounts(container) (-want +got):\n%s", diff)
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/tab\011x`: "/tab\tx", `/back\134slash`: `/back\slash`, `/end\04`: `/end\04`, `/x\999`: `/x\999`} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

const dpkgStatus = `Package: adduser
Status: install ok installed
Priority: important
Maintainer: Debian Adduser Developers <adduser@packages.debian.org>
Architecture: all
Version: 3.152
Description: add and remove users and groups
 This package includes the 'adduser' and 'deluser' commands.
 .
 Package: this continuation line must not start a package

Package: libc6
Status: install ok installed
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Version: 2.41-12

Package: libc6
Status: install ok installed
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: i386
Multi-Arch: same
Version: 2.41-12

Package: oldpkg
Status: deinstall ok config-files
Version: 1.0

Package: broken
Status: install reinstreq half-installed
Version: 2.0

Package: held
Status: hold ok installed
Maintainer: nobody
Version: 0.1
`

func TestParseDpkgStatus(t *testing.T) {
	got, err := parseDpkgStatus(strings.NewReader(dpkgStatus))
	if err != nil {
		t.Fatal(err)
	}
	want := []wire.Package{
		{Name: "adduser", Version: "3.152", Publisher: "Debian Adduser Developers"},
		{Name: "held", Version: "0.1", Publisher: "nobody"},
		{Name: "libc6", Version: "2.41-12", Publisher: "GNU Libc Maintainers"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseDpkgStatus (-want +got):\n%s", diff)
	}
	// A file without a trailing blank line, with CRLF-free long lines.
	got, err = parseDpkgStatus(strings.NewReader("Package: x\nStatus: install ok installed\nDescription: " + strings.Repeat("d", 200_000)))
	if err != nil || len(got) != 1 || got[0].Name != "x" {
		t.Errorf("long line: %v, %v", got, err)
	}
}

func TestParseRPM(t *testing.T) {
	out := "bash\t5.1.8-6.el9\tRed Hat, Inc.\t1699184096\n" +
		"gpg-pubkey\tfd431d51-4ae0493b\t(none)\t1699184000\n" +
		"kernel\t5.14.0-362.8.1.el9_3\tRed Hat, Inc.\t1699184100\n" +
		"kernel\t5.14.0-284.11.1.el9_2\tRed Hat, Inc.\t1690000000\n" +
		"local-tool\t1.0-1\t(none)\t(none)\n" +
		"\n" +
		"garbage-without-tabs\n"
	want := []wire.Package{
		{Name: "bash", Version: "5.1.8-6.el9", Publisher: "Red Hat, Inc.", InstallDate: "2023-11-05"},
		{Name: "kernel", Version: "5.14.0-284.11.1.el9_2", Publisher: "Red Hat, Inc.", InstallDate: "2023-07-22"},
		{Name: "kernel", Version: "5.14.0-362.8.1.el9_3", Publisher: "Red Hat, Inc.", InstallDate: "2023-11-05"},
		{Name: "local-tool", Version: "1.0-1"},
	}
	if diff := cmp.Diff(want, parseRPM(out)); diff != "" {
		t.Errorf("parseRPM (-want +got):\n%s", diff)
	}
	if !strings.Contains(rpmQueryFormat, `\t`) || strings.Contains(rpmQueryFormat, "\t") {
		t.Error("rpmQueryFormat must pass \\t to rpm literally")
	}
}

func TestOSFromSwVers(t *testing.T) {
	got := osFromSwVers("ProductName:\t\tmacOS\nProductVersion:\t\t14.1.1\nBuildVersion:\t\t23B81\n")
	if want := (wire.OSInfo{Name: "macOS", Version: "14.1.1", Build: "23B81"}); got != want {
		t.Errorf("osFromSwVers = %+v, want %+v", got, want)
	}
}

func TestParseIoregSerial(t *testing.T) {
	out := `+-o J314sAP  <class IOPlatformExpertDevice, id 0x100000202, registered, matched, active, busy 0 (10 ms), retain 37>
    {
      "IOPlatformUUID" = "0A1B2C3D-0000-0000-0000-000000000000"
      "IOPlatformSerialNumber" = "C02XK1ZZJGH5"
      "model" = <"MacBookPro18,3">
    }`
	if got := parseIoregSerial(out); got != "C02XK1ZZJGH5" {
		t.Errorf("parseIoregSerial = %q", got)
	}
	if got := parseIoregSerial(`"IOPlatformSerialNumber" = "0"`); got != "" {
		t.Errorf("placeholder serial = %q", got)
	}
}

func TestNICFrom(t *testing.T) {
	tests := []struct {
		name, ifname, mac string
		up, loopback      bool
		addrs             []string
		want              wire.NIC
		ok                bool
	}{
		{"ethernet", "eth0", "00:15:5D:01:02:03", true, false, []string{"192.168.1.23/24", "fe80::215:5dff:fe01:203/64"},
			wire.NIC{Name: "eth0", MAC: "00:15:5d:01:02:03", IPv4: []string{"192.168.1.23"}, IPv6: []string{"fe80::215:5dff:fe01:203"}}, true},
		{"tunnel without MAC", "wg0", "", true, false, []string{"10.8.0.2/32"}, wire.NIC{Name: "wg0", IPv4: []string{"10.8.0.2"}}, true},
		{"loopback", "lo", "", true, true, []string{"127.0.0.1/8"}, wire.NIC{}, false},
		{"down", "eth1", "00:15:5d:01:02:04", false, false, []string{"10.0.0.1/8"}, wire.NIC{}, false},
		{"no addresses", "eth2", "00:15:5d:01:02:05", true, false, nil, wire.NIC{}, false},
	}
	for _, tt := range tests {
		got, ok := nicFrom(tt.ifname, tt.mac, tt.up, tt.loopback, tt.addrs)
		if ok != tt.ok || !cmp.Equal(got, tt.want) {
			t.Errorf("%s: nicFrom = %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}
