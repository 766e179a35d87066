package inventory

import (
	"os"
	"path/filepath"
	"slices"
)

// loggedOnUser asks systemd-logind's session files (what sd-login(3)
// reads; the agent is built without cgo, so without libsystemd), else
// utmp on systems without logind.
func loggedOnUser() string {
	if files, err := filepath.Glob("/run/systemd/sessions/*"); err == nil && len(files) > 0 {
		slices.Sort(files)
		var ss []loginSession
		for _, f := range files {
			if filepath.Ext(f) != "" { // *.ref fifos and temporary files
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			if s, ok := parseLogindSession(string(b)); ok {
				ss = append(ss, s)
			}
		}
		return pickUser(ss)
	}
	for _, f := range []string{"/run/utmp", "/var/run/utmp"} {
		if b, err := os.ReadFile(f); err == nil {
			return pickUser(parseUtmp(b))
		}
	}
	return ""
}
