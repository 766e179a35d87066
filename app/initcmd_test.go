package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/app/config"
)

// readTree maps every file below dir to its content.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if runtime.GOOS != "windows" {
			if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v, want 0600 (%v)", p, st.Mode().Perm(), err)
			}
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// `kanade init` writes every key a first start would, says which, keeps
// them on a second run, honours --secrets; a server given --secrets uses
// those keys and makes none of its own; docs/SECRETS.md names each file.
func TestInit_WritesSecretsOnceAndServeUsesThem(t *testing.T) {
	data := t.TempDir()
	var out, errb bytes.Buffer
	if err := run([]string{"init", "--data", data}, &out, &errb); err != nil {
		t.Fatalf("init: %v %s", err, errb.String())
	}
	secrets := filepath.Join(data, "secrets")
	first := readTree(t, secrets)
	for _, want := range []string{"operator.nk", "system-account.nk", "account.nk", "agent-account.nk", "agent-signer.nk",
		"server-user.nk", "system-user.nk", "enroll-user.nk", "enroll-token", "session-keys"} {
		if first[want] == "" {
			t.Errorf("init did not write %s", want)
		}
		if !strings.Contains(out.String(), "wrote "+want+"\n") {
			t.Errorf("init output does not say it wrote %s:\n%s", want, out.String())
		}
	}
	doc, err := os.ReadFile("../docs/SECRETS.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range first {
		if dir, _, ok := strings.Cut(name, "/"); ok {
			name = dir + "/*.key"
		}
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("docs/SECRETS.md does not describe %s", name)
		}
	}

	var help bytes.Buffer
	if err := run([]string{"help"}, &help, &errb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kanade init ", "kanade backup ", "kanade restore --in FILE", "--db postgres://", "--secrets DIR"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("kanade help does not show %q", want)
		}
	}

	out.Reset()
	if err := run([]string{"init", "--data", data}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "wrote") || !strings.Contains(out.String(), "kept  operator.nk") {
		t.Errorf("second init:\n%s", out.String())
	}
	if diff := cmp.Diff(first, readTree(t, secrets)); diff != "" {
		t.Errorf("a second init changed the keys (-first +second):\n%s", diff)
	}

	// --secrets elsewhere: the server reads them there and writes none into DATA.
	shared, data2 := filepath.Join(t.TempDir(), "shared"), t.TempDir()
	if err := run([]string{"init", "--data", data2, "--secrets", shared}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(data2, "secrets")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("init --secrets wrote DATA/secrets: %v", err)
	}
	keys := readTree(t, shared)
	s := startServerWith(t, data2, "", func(c *config.Config) { c.Secrets.Dir = shared })
	startAgent(t, s, "pc1", nil, "")
	s.waitOnline(t, "pc1")
	s.stop()
	if _, err := os.Stat(filepath.Join(data2, "secrets")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("serve --secrets wrote DATA/secrets: %v", err)
	}
	if diff := cmp.Diff(keys, readTree(t, shared)); diff != "" {
		t.Errorf("the server changed the shared keys (-init +after):\n%s", diff)
	}
}
