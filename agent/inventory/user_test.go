package inventory

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/wire"
)

// A logind session file as systemd 257 writes it (trimmed).
const logindSeat0 = `# This is private data. Do not parse.
UID=1000
USER=alice
ACTIVE=1
IS_DISPLAY=1
STATE=active
REMOTE=0
TYPE=wayland
CLASS=user
SCOPE=session-2.scope
SEAT=seat0
VTNR=2
DISPLAY=:0
`

func TestParseLogindSession(t *testing.T) {
	tests := []struct {
		name string
		text string
		want loginSession
		ok   bool
	}{
		{"desktop at seat0", logindSeat0, loginSession{User: "alice", Local: true, Active: true}, true},
		{"ssh", "USER=bob\nACTIVE=1\nSTATE=active\nREMOTE=1\nTYPE=tty\nCLASS=user\nREMOTE_HOST=10.0.0.9\n", loginSession{User: "bob", Active: true, Remote: true}, true},
		{"text console", "USER=carol\nACTIVE=1\nSTATE=active\nREMOTE=0\nCLASS=user\nVTNR=3\n", loginSession{User: "carol", Local: true, Active: true}, true},
		{"greeter", "USER=gdm\nACTIVE=1\nSTATE=active\nCLASS=greeter\nSEAT=seat0\n", loginSession{}, false},
		{"background manager", "USER=alice\nSTATE=online\nCLASS=manager\n", loginSession{}, false},
		{"closing", strings.Replace(logindSeat0, "STATE=active", "STATE=closing", 1), loginSession{}, false},
		{"empty", "", loginSession{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseLogindSession(tt.text)
			if ok != tt.ok || got != tt.want {
				t.Errorf("parseLogindSession() = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// utmpRecord builds one glibc utmp record.
func utmpRecord(typ int16, line, user, host string) []byte {
	b := make([]byte, utmpSize)
	binary.LittleEndian.PutUint16(b[0:2], uint16(typ))
	copy(b[utmpLineOff:utmpLineOff+utmpFieldLen], line)
	copy(b[utmpUserOff:utmpUserOff+utmpFieldLen], user)
	copy(b[utmpHostOff:utmpHostOff+utmpHostLen], host)
	return b
}

func TestParseUtmp(t *testing.T) {
	var f []byte
	f = append(f, utmpRecord(2, "~", "reboot", "6.1.0")...) // BOOT_TIME
	f = append(f, utmpRecord(utmpUserProcess, "pts/0", "bob", "10.0.0.9")...)
	f = append(f, utmpRecord(utmpUserProcess, "tty1", "alice", "")...)
	f = append(f, utmpRecord(utmpUserProcess, "pts/1", "dora", ":0")...)
	f = append(f, utmpRecord(8, "pts/2", "", "")...) // DEAD_PROCESS
	f = append(f, 1, 2, 3)                           // a torn last record
	want := []loginSession{
		{User: "bob", Active: true, Remote: true},
		{User: "alice", Local: true, Active: true},
		{User: "dora", Local: true, Active: true},
	}
	if diff := cmp.Diff(want, parseUtmp(f)); diff != "" {
		t.Errorf("parseUtmp (-want +got):\n%s", diff)
	}
}

func TestPickUser(t *testing.T) {
	tests := []struct {
		name string
		ss   []loginSession
		want string
	}{
		{"nobody", nil, ""},
		{"the console first", []loginSession{{User: "bob", Active: true, Remote: true}, {User: "alice", Local: true, Active: true}}, "alice"},
		{"the active seat before a background one", []loginSession{{User: "carol", Local: true}, {User: "alice", Local: true, Active: true}}, "alice"},
		{"a local session", []loginSession{{User: "carol", Local: true}}, "carol"},
		{"only remote", []loginSession{{User: "bob", Active: true, Remote: true}}, "bob (remote)"},
		{"a session without a user", []loginSession{{Local: true, Active: true}, {User: `CORP\bob`, Remote: true}}, `CORP\bob (remote)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pickUser(tt.ss); got != tt.want {
				t.Errorf("pickUser() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCleanUser(t *testing.T) {
	long := strings.Repeat("é", wire.MaxUserLen) // 2 bytes each
	tests := []struct{ in, want string }{
		{" CORP\\alice ", `CORP\alice`},
		{"al\x00ice\n", "alice"},
		{"bad \xff utf-8", "bad  utf-8"},
		{long, strings.Repeat("é", wire.MaxUserLen/2)},
	}
	for _, tt := range tests {
		got := cleanUser(tt.in)
		if got != tt.want {
			t.Errorf("cleanUser(%q) = %q, want %q", tt.in, got, tt.want)
		}
		hb := wire.Heartbeat{PCID: "pc1", Interval: 1, User: got}
		if err := hb.Validate(); err != nil {
			t.Errorf("cleanUser(%q) = %q, which the heartbeat refuses: %v", tt.in, got, err)
		}
	}
}
