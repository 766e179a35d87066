// Package datadir creates and guards the agent's data directory, which
// holds its identity key and credential: on Windows with a protected
// ACL of SYSTEM and Administrators only, elsewhere owned by the agent's
// user with mode 0700 (secret files 0600). A directory another user owns
// is refused rather than used.
package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Secret files in the data directory: readable by the agent's user only.
var secretFiles = []string{"identity.nk", "credential.json", "enrollment-bundle"}

// Prepare creates dir if needed and makes it private to the agent (see
// the package doc), repairing wider permissions. It returns what it
// changed, for the log.
func Prepare(dir string) (changed []string, err error) {
	if dir == "" {
		return nil, errors.New("data directory: empty path")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("data directory %s: not a directory", dir)
	}
	changed, err = protect(dir)
	if err != nil {
		return changed, fmt.Errorf("data directory %s: %w", dir, err)
	}
	return changed, nil
}

// InUse reports whether dir holds an agent identity (a key or a
// credential): such a directory must keep being used, or the agent
// would enroll as a new PC.
func InUse(dir string) bool {
	for _, f := range secretFiles[:2] {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

// Choose picks the data directory when none was configured: current,
// unless only legacy (the default of earlier releases; "" for none)
// holds an identity. usedLegacy says which.
func Choose(current, legacy string) (dir string, usedLegacy bool) {
	if legacy != "" && InUse(legacy) && !InUse(current) {
		return legacy, true
	}
	return current, false
}
