package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/enroll"
	"github.com/kanadehq/kanade/app/sign"
)

// initCmd is `kanade init`: it writes the keys every replica of one
// installation shares into the secrets directory (DATA/secrets, or
// --secrets) and exits. A key that exists is kept, so running it again
// changes nothing; docs/SECRETS.md says what each file protects.
func initCmd(args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig("init", args, stderr, false)
	if err != nil {
		return err
	}
	if err := cfg.PrepareData(); err != nil {
		return err
	}
	dir := cfg.SecretsDir()
	files, err := initSecrets(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "secrets in %s:\n", dir)
	for _, f := range files {
		state := "kept"
		if f.Created {
			state = "wrote"
		}
		fmt.Fprintf(stdout, "  %-5s %s\n", state, f.Path)
	}
	fmt.Fprintf(stdout, "give every replica this directory (copy it, or kanade serve --secrets %s); keep it readable by kanade's user only\n", dir)
	return nil
}

// secretFile is one file of the secrets directory.
type secretFile struct {
	// Path is relative to the secrets directory, with forward slashes.
	Path    string
	Created bool
}

// initSecrets creates the missing keys in dir, exactly as a first start
// of the server would, and lists every file of dir with whether it was
// just written.
func initSecrets(dir string) ([]secretFile, error) {
	before, err := secretFiles(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets %s: %w", dir, err)
	}
	if _, err := bus.LoadIdentity(dir); err != nil {
		return nil, err
	}
	if _, err := sign.Load(filepath.Join(dir, "command-keys")); err != nil {
		return nil, err
	}
	if _, err := sign.LoadRelease(filepath.Join(dir, "release-keys")); err != nil {
		return nil, err
	}
	if _, err := auth.LoadKeys(filepath.Join(dir, "session-keys")); err != nil {
		return nil, err
	}
	token := filepath.Join(dir, "enroll-token")
	if _, err := os.Stat(token); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(token, []byte(enroll.NewSecret()+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", token, err)
		}
	} else if err != nil {
		return nil, err
	}
	after, err := secretFiles(dir)
	if err != nil {
		return nil, err
	}
	had := map[string]bool{}
	for _, p := range before {
		had[p] = true
	}
	out := make([]secretFile, 0, len(after))
	for _, p := range after {
		out = append(out, secretFile{Path: p, Created: !had[p]})
	}
	return out, nil
}

// secretFiles lists the regular files below dir (relative, slash
// separated, sorted); a missing dir has none.
func secretFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == dir {
				return filepath.SkipDir
			}
			return err
		}
		if d.Type().IsRegular() && !strings.HasSuffix(d.Name(), ".tmp") {
			rel, err := filepath.Rel(dir, path)
			if err != nil {
				return err
			}
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("secrets %s: %w", dir, err)
	}
	sort.Strings(out)
	return out, nil
}
