package agentinstall

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestParsePlatform(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Platform
		ok   bool
	}{
		{"linux-amd64", Platform{"linux", "amd64"}, true},
		{"windows-amd64", Platform{"windows", "amd64"}, true},
		{"darwin-arm64", Platform{"darwin", "arm64"}, true},
		{"linux-386", Platform{}, false},
		{"../../etc/passwd", Platform{}, false},
		{"", Platform{}, false},
		{"LINUX-AMD64", Platform{}, false},
	} {
		got, err := ParsePlatform(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParsePlatform(%q) = %v, %v", tc.in, got, err)
		}
		if !tc.ok && (!errors.Is(err, ErrUnknownPlatform) || !strings.Contains(err.Error(), "linux-amd64")) {
			t.Errorf("ParsePlatform(%q) error %v should name the known platforms", tc.in, err)
		}
	}
	if (Platform{"windows", "amd64"}).BinaryName() != "kanade-agent.exe" || (Platform{"linux", "arm64"}).BinaryName() != "kanade-agent" {
		t.Error("binary names")
	}
}

// Binaries find the make-build layout, hash the file they open, keep the
// hash while size and mtime stay, and say where they looked and how to
// build when a binary is missing.
func TestBinaries_OpenHashAndCache(t *testing.T) {
	dir := t.TempDir()
	win := []byte("MZ windows agent")
	writeFile(t, filepath.Join(dir, "windows-amd64", "kanade-agent.exe"), win)
	b, err := NewBinaries(dir)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := b.Open(Platform{"windows", "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(bin.File)
	bin.File.Close()
	if string(body) != string(win) || bin.SHA256 != sum(win) || bin.Size != int64(len(win)) {
		t.Fatalf("open = %q %s %d", body, bin.SHA256, bin.Size)
	}

	// Same size and mtime: the cached hash (proved by content the cache
	// cannot know about).
	path := bin.Path
	st, _ := os.Stat(path)
	swapped := []byte("MZ WINDOWS AGENT")
	writeFile(t, path, swapped)
	if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Stat(Platform{"windows", "amd64"}); got.SHA256 != sum(win) {
		t.Errorf("hash not cached by size and mtime: %s", got.SHA256)
	}
	// A new mtime: hashed again.
	later := st.ModTime().Add(time.Minute)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Stat(Platform{"windows", "amd64"}); got.SHA256 != sum(swapped) {
		t.Errorf("hash after a rebuild = %s, want %s", got.SHA256, sum(swapped))
	}

	// Missing: the error names the directory and make build.
	_, err = b.Open(Platform{"linux", "arm64"})
	if !errors.Is(err, ErrNotBuilt) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "make build") ||
		!strings.Contains(err.Error(), filepath.Join(dir, "linux-arm64", "kanade-agent")) {
		t.Errorf("missing binary error = %v", err)
	}

	// A directory where the binary should be is refused.
	if err := os.MkdirAll(filepath.Join(dir, "darwin-amd64", "kanade-agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Open(Platform{"darwin", "amd64"}); err == nil || errors.Is(err, ErrNotBuilt) {
		t.Errorf("a directory as binary: %v", err)
	}

	got := b.Available()
	if len(got) != 1 || got[0] != (Platform{"windows", "amd64"}) {
		t.Errorf("available = %v", got)
	}
}

// The native build sits in the directory itself (bin/kanade-agent next
// to bin/kanade); the per-platform directory wins when both exist.
func TestBinaries_NativeFallback(t *testing.T) {
	native, err := ParsePlatform(runtime.GOOS + "-" + runtime.GOARCH)
	if err != nil {
		t.Skipf("no platform for %s-%s", runtime.GOOS, runtime.GOARCH)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, native.BinaryName()), []byte("native"))
	b, _ := NewBinaries(dir)
	got, err := b.Stat(native)
	if err != nil || got.SHA256 != sum([]byte("native")) {
		t.Fatalf("native = %+v, %v", got, err)
	}
	writeFile(t, filepath.Join(dir, native.String(), native.BinaryName()), []byte("cross"))
	if got, _ := b.Stat(native); got.SHA256 != sum([]byte("cross")) {
		t.Errorf("the per-platform build should win: %s", got.Path)
	}
}

// The default directory is the running executable's.
func TestBinaries_DefaultDir(t *testing.T) {
	b, err := NewBinaries("")
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	exe, _ = filepath.EvalSymlinks(exe)
	if b.Dir() != filepath.Dir(exe) {
		t.Errorf("dir = %s, want %s", b.Dir(), filepath.Dir(exe))
	}
}

func TestAgentURL(t *testing.T) {
	for _, tc := range []struct {
		name, public, listen string
		tls                  bool
		host, want           string
	}{
		{"explicit wins", "tls://kanade.example.com:4222", "0.0.0.0:4222", false, "x:8080", "tls://kanade.example.com:4222"},
		{"loopback listen", "", "127.0.0.1:4222", false, "localhost:8080", "nats://127.0.0.1:4222"},
		{"specific address", "", "10.1.2.3:4222", true, "kanade.corp:8080", "tls://10.1.2.3:4222"},
		{"any IPv4: the browser's host", "", "0.0.0.0:4222", false, "kanade.corp:8080", "nats://kanade.corp:4222"},
		{"any IPv6: the browser's host", "", "[::]:4333", true, "kanade.corp", "tls://kanade.corp:4333"},
		{"no host", "", ":4222", false, "[fd00::1]:8080", "nats://[fd00::1]:4222"},
	} {
		if got := AgentURL(tc.public, tc.listen, tc.tls, tc.host); got != tc.want {
			t.Errorf("%s: AgentURL = %s, want %s", tc.name, got, tc.want)
		}
	}
	if l, tls := ListenOf("tls://0.0.0.0:4222"); l != "0.0.0.0:4222" || !tls {
		t.Errorf("ListenOf tls = %s %v", l, tls)
	}
	if l, tls := ListenOf("nats://127.0.0.1:5000"); l != "127.0.0.1:5000" || tls {
		t.Errorf("ListenOf nats = %s %v", l, tls)
	}
}
