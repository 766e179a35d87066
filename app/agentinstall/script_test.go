package agentinstall

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const testSecret = "kanade-enroll-AbC_d-123"

var testBundle = []byte("-----BEGIN NATS USER JWT-----\neyJ0eXAi.x.y\n------END NATS USER JWT------\n\n" +
	"-----BEGIN USER NKEY SEED-----\nSUAEXAMPLE\n------END USER NKEY SEED------\n\n" +
	"-----BEGIN KANADE ENROLLMENT TOKEN-----\n" + testSecret + "\n------END KANADE ENROLLMENT TOKEN------\n")

func testInstall(os string) Install {
	return Install{Platform: Platform{os, "amd64"}, DownloadURL: "http://kanade.example.com:8080/download/agent/" + os + "-amd64",
		SHA256: sum([]byte("agent")), AgentURL: "tls://kanade.example.com:4222", Bundle: testBundle, Secret: testSecret, Groups: []string{"Lab", "canary"}}
}

// Values a shell or PowerShell would read are refused before any
// command is written.
func TestInstall_HostileValues(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Install)
		want   string
	}{
		{"quote in the URL", func(in *Install) { in.DownloadURL = "http://x'; rm -rf /;'/d" }, "download URL"},
		{"command substitution in the host", func(in *Install) { in.DownloadURL = "http://$(id)/d" }, "download URL"},
		{"backtick", func(in *Install) { in.DownloadURL = "http://a`b/d" }, "download URL"},
		{"not http", func(in *Install) { in.DownloadURL = "file:///etc/passwd" }, "download URL"},
		{"short hash", func(in *Install) { in.SHA256 = "abc" }, "SHA-256"},
		{"upper-case hash", func(in *Install) { in.SHA256 = strings.ToUpper(in.SHA256) }, "SHA-256"},
		{"agent URL scheme", func(in *Install) { in.AgentURL = "http://kanade:4222" }, "agent URL"},
		{"agent URL with a space", func(in *Install) { in.AgentURL = "nats://a b:4222" }, "agent URL"},
		{"second agent URL bad", func(in *Install) { in.AgentURL = "nats://a:4222,nats://$x:4222" }, "agent URL"},
		{"secret", func(in *Install) { in.Secret = "kanade-enroll-'x" }, "secret"},
		{"group", func(in *Install) { in.Groups = []string{"a;b"} }, "group"},
		{"no bundle", func(in *Install) { in.Bundle = nil }, "bundle"},
	} {
		for _, os := range []string{"windows", "linux"} {
			in := testInstall(os)
			tc.change(&in)
			if got, err := in.Command(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s (%s): %q, %v; want an error about %s", tc.name, os, got, err, tc.want)
			}
		}
	}
	in := testInstall("linux")
	in.AgentURL = "nats://a:4222, nats://b:4222"
	if got, err := in.Shell(); err != nil || !strings.Contains(got, "s='nats://a:4222,nats://b:4222'") {
		t.Errorf("two agent URLs: %v", err)
	}
	if _, err := testInstall("linux").PowerShell(); err == nil {
		t.Error("a PowerShell command for Linux")
	}
	if _, err := testInstall("windows").Shell(); err == nil {
		t.Error("a shell command for Windows")
	}
}

// bundleIn decodes the base64 bundle a command carries in b='…'.
func bundleIn(t *testing.T, cmd string) []byte {
	t.Helper()
	m := regexp.MustCompile(`\$?b='([A-Za-z0-9+/=]+)'`).FindStringSubmatch(cmd)
	if m == nil {
		t.Fatalf("no bundle in %s", cmd)
	}
	b, err := base64.StdEncoding.DecodeString(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// balanced checks the nesting of a PowerShell line outside single-quoted
// strings: every brace and parenthesis closes, and no quote is left open.
func balanced(t *testing.T, line string) {
	t.Helper()
	var stack []rune
	inSingle, inDouble := false, false
	pairs := map[rune]rune{')': '(', '}': '{', ']': '['}
	for _, r := range line {
		switch {
		case inSingle:
			inSingle = r != '\''
			continue
		case r == '\'' && !inDouble:
			inSingle = true
			continue
		case r == '"':
			inDouble = !inDouble
			continue
		}
		switch r {
		case '(', '{', '[':
			stack = append(stack, r)
		case ')', '}', ']':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				t.Fatalf("unbalanced %q in %s", r, line)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if inSingle || inDouble || len(stack) > 0 {
		t.Fatalf("unclosed quote or bracket (%v %v %q) in %s", inSingle, inDouble, string(stack), line)
	}
}

// The PowerShell command cannot run here (no PowerShell on Linux
// builders); its text is checked: one line, balanced, carrying the URL,
// hash, broker, groups and the bundle, with the administrator check, the
// hash refusal and the cleanup of the bundle file.
func TestPowerShell_Content(t *testing.T) {
	in := testInstall("windows")
	cmd, err := in.PowerShell()
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(cmd, "\r\n") {
		t.Fatal("the command is not one line")
	}
	balanced(t, cmd)
	for _, want := range []string{
		"$u='" + in.DownloadURL + "'", "$h='" + in.SHA256 + "'", "$s='tls://kanade.example.com:4222'", "$g='canary,lab'",
		"$t='" + testSecret + "'", `Authorization="Bearer $t"`, "Get-FileHash -Algorithm SHA256", "refusing to install",
		"WindowsBuiltInRole]::Administrator", "Join-Path $env:ProgramFiles 'kanade'", "'kanade-agent.exe'",
		"k 'service' 'install' @r '--credentials' $c", "k 'service' 'start'", "finally { Remove-Item", "$env:KANADE_NO_SERVICE",
	} {
		if !strings.Contains(cmd, want) {
			t.Errorf("the PowerShell command lacks %q:\n%s", want, cmd)
		}
	}
	if got := bundleIn(t, cmd); !bytes.Equal(got, testBundle) {
		t.Errorf("bundle = %q", got)
	}
	if !strings.HasPrefix(cmd, "& { ") || !strings.HasSuffix(cmd, " }") {
		t.Errorf("not one script block: %s", cmd)
	}
}

// agentRecorder is what the shell command downloads in these tests: a
// script that records how it was called and the credentials file it was
// given, so the command's calls can be checked without root or systemd.
// (The real agent runs it end to end in package main's test.)
const agentRecorder = `#!/bin/sh
echo "$*" >> "$KANADE_TEST_RECORD/calls"
prev=
for a in "$@"; do
  if [ "$prev" = --credentials ]; then cp "$a" "$KANADE_TEST_RECORD/creds"; stat -c %a "$a" > "$KANADE_TEST_RECORD/creds.mode"; echo "$a" > "$KANADE_TEST_RECORD/creds.path"; fi
  prev=$a
done
`

// downloadServer serves the recorder to the good secret only, with the
// JSON error the real server gives otherwise.
func downloadServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/download/agent/linux-amd64" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+testSecret {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"code":"invalid_token","message":"the enrollment token is not valid"}}`))
			return
		}
		_, _ = w.Write([]byte(agentRecorder))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
}

type run struct {
	prefix, record string
	out            string
	err            error
}

// runShell runs a shell command as an admin would paste it, with the
// install under a prefix and extra environment.
func runShell(t *testing.T, shell, cmd, prefix string, env ...string) run {
	t.Helper()
	r := run{prefix: prefix, record: filepath.Join(prefix, "record")}
	if err := os.MkdirAll(r.record, 0o755); err != nil {
		t.Fatal(err)
	}
	c := exec.Command(shell, "-c", cmd)
	c.Env = append(os.Environ(), append([]string{"KANADE_PREFIX=" + prefix, "KANADE_TEST_RECORD=" + r.record}, env...)...)
	out, err := c.CombinedOutput()
	r.out, r.err = string(out), err
	return r
}

func (r run) calls(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.record, "calls"))
	if err != nil {
		t.Fatalf("the agent was not called: %v\n%s", err, r.out)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func (r run) read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.record, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func linuxInstall(t *testing.T, srv *httptest.Server) Install {
	in := testInstall("linux")
	in.DownloadURL = srv.URL + "/download/agent/linux-amd64"
	in.SHA256 = sum([]byte(agentRecorder))
	return in
}

// The shell command, run for real: it downloads with the token, checks
// the hash, installs the binary, hands the bundle to `service install`
// in a private temporary file it deletes afterwards, starts the service,
// and replaces an earlier install.
func TestShell_InstallsService(t *testing.T) {
	needTools(t, "sh", "curl", "sha256sum", "base64", "stat")
	srv := downloadServer(t)
	cmd, err := linuxInstall(t, srv).Shell()
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(cmd, "\r\n") {
		t.Fatal("the command is not one line")
	}
	for _, shell := range []string{"sh", "bash"} {
		if _, err := exec.LookPath(shell); err != nil {
			continue
		}
		t.Run(shell, func(t *testing.T) {
			r := runShell(t, shell, cmd, t.TempDir())
			if r.err != nil {
				t.Fatalf("%v\n%s", r.err, r.out)
			}
			bin := filepath.Join(r.prefix, "usr/local/bin/kanade-agent")
			if st, err := os.Stat(bin); err != nil || st.Mode().Perm() != 0o755 {
				t.Fatalf("installed binary: %v %v", st, err)
			}
			if _, err := os.Stat(bin + ".download"); !os.IsNotExist(err) {
				t.Errorf("the download was left behind: %v", err)
			}
			tmp := r.read(t, "creds.path")
			want := []string{"service install --server tls://kanade.example.com:4222 --credentials " + tmp + " --groups canary,lab", "service start"}
			if diff := cmp.Diff(want, r.calls(t)); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
			if r.read(t, "creds") != strings.TrimSpace(string(testBundle)) || r.read(t, "creds.mode") != "600" {
				t.Errorf("bundle given to service install: %q mode %s", r.read(t, "creds"), r.read(t, "creds.mode"))
			}
			if _, err := os.Stat(tmp); !os.IsNotExist(err) {
				t.Errorf("the temporary bundle %s was not deleted: %v", tmp, err)
			}
			if !strings.Contains(r.out, "running as a service") {
				t.Errorf("output: %s", r.out)
			}

			// Run again: the earlier service is stopped and removed first.
			if err := os.Remove(filepath.Join(r.record, "calls")); err != nil {
				t.Fatal(err)
			}
			r2 := runShell(t, shell, cmd, r.prefix)
			if r2.err != nil {
				t.Fatalf("%v\n%s", r2.err, r2.out)
			}
			tmp = r2.read(t, "creds.path")
			want = []string{"service stop", "service uninstall", "service install --server tls://kanade.example.com:4222 --credentials " + tmp + " --groups canary,lab", "service start"}
			if diff := cmp.Diff(want, r2.calls(t)); diff != "" {
				t.Errorf("second run's calls (-want +got):\n%s", diff)
			}
		})
	}
}

// KANADE_NO_SERVICE=1 runs the agent in the foreground with its data
// (and the bundle, which it needs to enroll) under KANADE_DATA.
func TestShell_Foreground(t *testing.T) {
	needTools(t, "sh", "curl", "sha256sum", "base64", "stat")
	srv := downloadServer(t)
	in := linuxInstall(t, srv)
	in.Groups = nil
	cmd, err := in.Shell()
	if err != nil {
		t.Fatal(err)
	}
	prefix := t.TempDir()
	data := filepath.Join(prefix, "agentdata")
	r := runShell(t, "sh", cmd, prefix, "KANADE_NO_SERVICE=1", "KANADE_DATA="+data)
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.out)
	}
	creds := filepath.Join(data, "enrollment-bundle")
	want := []string{"--server tls://kanade.example.com:4222 --credentials " + creds + " --data " + data}
	if diff := cmp.Diff(want, r.calls(t)); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if b, err := os.ReadFile(creds); err != nil || !bytes.Equal(b, testBundle) {
		t.Errorf("bundle kept in the data directory: %q %v", b, err)
	}
	if st, err := os.Stat(data); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("data directory: %v %v", st, err)
	}
	if r.read(t, "creds.mode") != "600" {
		t.Errorf("bundle mode %s", r.read(t, "creds.mode"))
	}
}

// A download that does not hash to the command's SHA-256, or that the
// server refuses, installs nothing and says why.
func TestShell_Refuses(t *testing.T) {
	needTools(t, "sh", "curl", "sha256sum", "base64")
	srv := downloadServer(t)
	for _, tc := range []struct {
		name   string
		change func(*Install)
		want   []string
	}{
		{"hash mismatch", func(in *Install) { in.SHA256 = sum([]byte("another build")) },
			[]string{"refusing to install", sum([]byte(agentRecorder)), sum([]byte("another build")), "Settings > Add agents"}},
		{"bad token", func(in *Install) { in.Secret = "kanade-enroll-wrong" },
			[]string{"HTTP 401", "the enrollment token is not valid"}},
		{"server down", func(in *Install) { in.DownloadURL = "http://127.0.0.1:1/download/agent/linux-amd64" },
			[]string{"downloading http://127.0.0.1:1/download/agent/linux-amd64 failed (curl failed)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := linuxInstall(t, srv)
			tc.change(&in)
			cmd, err := in.Shell()
			if err != nil {
				t.Fatal(err)
			}
			r := runShell(t, "sh", cmd, t.TempDir())
			if r.err == nil {
				t.Fatalf("the command succeeded:\n%s", r.out)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.out, w) {
					t.Errorf("output lacks %q:\n%s", w, r.out)
				}
			}
			entries, _ := os.ReadDir(filepath.Join(r.prefix, "usr/local/bin"))
			if len(entries) != 0 {
				t.Errorf("left in the install directory: %v", entries)
			}
			if _, err := os.Stat(filepath.Join(r.record, "calls")); !os.IsNotExist(err) {
				t.Errorf("the agent ran: %v", err)
			}
		})
	}
}

// Without curl the command uses wget.
func TestShell_Wget(t *testing.T) {
	needTools(t, "sh", "wget", "sha256sum", "base64", "stat")
	// A PATH with the tools the command and the recorder use, but no curl.
	bin := t.TempDir()
	for _, tool := range []string{"sh", "wget", "sha256sum", "base64", "stat", "cut", "head", "mkdir", "chmod", "mv", "rm", "mktemp", "cp", "id", "cat"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("%s is not installed", tool)
		}
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	srv := downloadServer(t)
	cmd, err := linuxInstall(t, srv).Shell()
	if err != nil {
		t.Fatal(err)
	}
	r := runShell(t, filepath.Join(bin, "sh"), cmd, t.TempDir(), "PATH="+bin)
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.out)
	}
	if calls := r.calls(t); len(calls) != 2 || calls[1] != "service start" {
		t.Errorf("calls = %v", calls)
	}
}
