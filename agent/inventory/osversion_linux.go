package inventory

import (
	"errors"
	"io/fs"
	"os"
)

// OSVersion names the running OS for the heartbeat: os-release's
// PRETTY_NAME ("Debian GNU/Linux 13 (trixie)"), or "" when it has none.
func OSVersion() string {
	b, err := os.ReadFile("/etc/os-release")
	if errors.Is(err, fs.ErrNotExist) {
		b, err = os.ReadFile("/usr/lib/os-release")
	}
	if err != nil {
		return ""
	}
	kv := parseOSRelease(string(b))
	return first(text(kv["PRETTY_NAME"]), text(kv["NAME"]+" "+kv["VERSION"]))
}
