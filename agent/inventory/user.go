package inventory

import (
	"bytes"
	"encoding/binary"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kanadehq/kanade/agent/wire"
)

// User says who is logged on at this PC, for the heartbeat: the console's
// user, else a remote session's marked " (remote)", else "". Each OS asks
// its own source (user_windows.go: the terminal-services sessions;
// user_linux.go: systemd-logind's sessions, else utmp; user_darwin.go: the
// owner of /dev/console); a source that fails says nobody.
func User() string { return cleanUser(loggedOnUser()) }

// cleanUser makes a user name fit wire.Heartbeat.User: printable UTF-8 of
// at most wire.MaxUserLen bytes, cut at a character boundary.
func cleanUser(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	for len(s) > wire.MaxUserLen {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// loginSession is one login session as systemd-logind or utmp describes
// it.
type loginSession struct {
	User   string
	Local  bool // at the PC's own seat or console
	Active bool // in the foreground of its seat (logind), or logged in (utmp)
	Remote bool // over the network (SSH, RDP)
}

// pickUser chooses whom the heartbeat names: the active local session's
// user, else another local one's, else a remote one's marked " (remote)".
func pickUser(ss []loginSession) string {
	for _, want := range []func(loginSession) bool{
		func(s loginSession) bool { return s.Local && s.Active && !s.Remote },
		func(s loginSession) bool { return s.Local && !s.Remote },
	} {
		for _, s := range ss {
			if s.User != "" && want(s) {
				return s.User
			}
		}
	}
	for _, s := range ss {
		if s.User != "" && s.Remote {
			return s.User + " (remote)"
		}
	}
	return ""
}

// parseLogindSession reads one file of /run/systemd/sessions (KEY=value
// lines). ok is false for what is not a person's session (a greeter, a
// background manager) or one that is closing.
func parseLogindSession(text string) (s loginSession, ok bool) {
	kv := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if k, v, found := strings.Cut(strings.TrimSpace(line), "="); found && !strings.HasPrefix(k, "#") {
			kv[k] = v
		}
	}
	if !strings.HasPrefix(kv["CLASS"], "user") || kv["STATE"] == "closing" || kv["USER"] == "" {
		return s, false
	}
	return loginSession{User: kv["USER"], Local: kv["SEAT"] != "" || kv["VTNR"] != "", Active: kv["ACTIVE"] == "1",
		Remote: kv["REMOTE"] == "1"}, true
}

// utmp record layout (Linux glibc, the same on amd64 and arm64).
const (
	utmpSize        = 384
	utmpUserProcess = 7
	utmpLineOff     = 8
	utmpUserOff     = 44
	utmpHostOff     = 76
	utmpFieldLen    = 32
	utmpHostLen     = 256
)

// parseUtmp reads the logged-in users of a utmp file (USER_PROCESS
// records); one with a host is remote.
func parseUtmp(b []byte) []loginSession {
	var out []loginSession
	for ; len(b) >= utmpSize; b = b[utmpSize:] {
		if int16(binary.LittleEndian.Uint16(b[0:2])) != utmpUserProcess {
			continue
		}
		field := func(off, n int) string {
			f := b[off : off+n]
			if i := bytes.IndexByte(f, 0); i >= 0 {
				f = f[:i]
			}
			return string(f)
		}
		user, line, host := field(utmpUserOff, utmpFieldLen), field(utmpLineOff, utmpFieldLen), field(utmpHostOff, utmpHostLen)
		remote := host != "" && !strings.HasPrefix(host, ":") // ":0" is a local X display
		out = append(out, loginSession{User: user, Local: !remote && line != "", Active: true, Remote: remote})
	}
	return out
}
