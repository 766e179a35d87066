// Package agentinstall serves what a PC needs to install the agent from
// this server: the agent binaries the server was built with (found on
// disk, with their SHA-256 computed once per file version), the broker
// URL agents dial, and the one-line PowerShell and shell commands that
// download, check, enroll and install the agent.
package agentinstall

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Platform is an os-arch pair such as linux-amd64.
type Platform struct{ OS, Arch string }

// Platforms are the ones the server may serve, in the order pages list them.
var Platforms = []Platform{
	{"windows", "amd64"}, {"windows", "arm64"},
	{"linux", "amd64"}, {"linux", "arm64"},
	{"darwin", "arm64"}, {"darwin", "amd64"},
}

func (p Platform) String() string { return p.OS + "-" + p.Arch }

// BinaryName is the agent's file name on that OS.
func (p Platform) BinaryName() string {
	if p.OS == "windows" {
		return "kanade-agent.exe"
	}
	return "kanade-agent"
}

// ErrUnknownPlatform reports an os-arch the server never serves.
var ErrUnknownPlatform = errors.New("unknown platform")

// ParsePlatform reads "linux-amd64".
func ParsePlatform(s string) (Platform, error) {
	for _, p := range Platforms {
		if p.String() == s {
			return p, nil
		}
	}
	return Platform{}, fmt.Errorf("%w %q: use one of %s", ErrUnknownPlatform, s, platformList())
}

func platformList() string {
	names := make([]string, len(Platforms))
	for i, p := range Platforms {
		names[i] = p.String()
	}
	return strings.Join(names, ", ")
}

// ErrNotBuilt reports an agent binary that is not on disk.
var ErrNotBuilt = errors.New("agent binary not built")

// Binaries finds the agent binaries under one directory, laid out as
// `make build` writes them: DIR/<os>-<arch>/kanade-agent[.exe], and
// DIR/kanade-agent for the platform the server itself runs on.
type Binaries struct {
	dir string

	mu    sync.Mutex
	cache map[string]hashed
}

// hashed is a file's SHA-256, valid while its size and mtime stay.
type hashed struct {
	size  int64
	mtime time.Time
	sum   string
}

// NewBinaries looks in dir; "" means the directory of the running
// executable (symlinks resolved), where `make build` puts bin/kanade.
func NewBinaries(dir string) (*Binaries, error) {
	if dir == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("agent downloads: locate the server binary: %w", err)
		}
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		dir = filepath.Dir(exe)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("agent downloads %s: %w", dir, err)
	}
	return &Binaries{dir: abs, cache: map[string]hashed{}}, nil
}

// Dir is where the binaries are looked for.
func (b *Binaries) Dir() string { return b.dir }

// candidates are the paths tried for p, in order.
func (b *Binaries) candidates(p Platform) []string {
	out := []string{filepath.Join(b.dir, p.String(), p.BinaryName())}
	if p.OS == runtime.GOOS && p.Arch == runtime.GOARCH {
		out = append(out, filepath.Join(b.dir, p.BinaryName()))
	}
	return out
}

// Binary is an open agent binary; the caller closes File.
type Binary struct {
	Platform Platform
	Path     string
	File     *os.File
	Size     int64
	ModTime  time.Time
	SHA256   string // lower-case hex
}

// Open opens the binary for p and returns it with its SHA-256, computed
// from the open file (so the hash and the bytes served agree even while
// `make build` replaces the file) and cached by path, size and mtime.
func (b *Binaries) Open(p Platform) (*Binary, error) {
	for _, path := range b.candidates(p) {
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("agent binary %s: %w", path, err)
		}
		st, err := f.Stat()
		if err == nil && !st.Mode().IsRegular() {
			err = errors.New("not a regular file")
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("agent binary %s: %w", path, err)
		}
		sum, err := b.sum(path, f, st)
		if err != nil {
			f.Close()
			return nil, err
		}
		return &Binary{Platform: p, Path: path, File: f, Size: st.Size(), ModTime: st.ModTime(), SHA256: sum}, nil
	}
	return nil, fmt.Errorf("%w: no %s agent in %s (looked for %s); run `make build` in the source tree (it writes bin/%s/%s next to bin/kanade), or point [server] agent_downloads (KANADE_SERVER_AGENT_DOWNLOADS) at the directory that holds it",
		ErrNotBuilt, p, b.dir, strings.Join(b.candidates(p), " and "), p, p.BinaryName())
}

// Stat returns the binary's facts without keeping it open.
func (b *Binaries) Stat(p Platform) (Binary, error) {
	bin, err := b.Open(p)
	if err != nil {
		return Binary{}, err
	}
	bin.File.Close()
	bin.File = nil
	return *bin, nil
}

func (b *Binaries) sum(path string, f *os.File, st fs.FileInfo) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h, ok := b.cache[path]; ok && h.size == st.Size() && h.mtime.Equal(st.ModTime()) {
		return h.sum, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, st.Size())); err != nil {
		return "", fmt.Errorf("agent binary %s: %w", path, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	b.cache[path] = hashed{size: st.Size(), mtime: st.ModTime(), sum: sum}
	return sum, nil
}

// Available lists the platforms whose binary is on disk.
func (b *Binaries) Available() []Platform {
	var out []Platform
	for _, p := range Platforms {
		for _, path := range b.candidates(p) {
			if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
				out = append(out, p)
				break
			}
		}
	}
	return out
}
