package sign

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
)

func release() wire.Release {
	return wire.Release{Version: "v1.4.0", OS: "windows", Arch: "amd64", SHA256: strings.Repeat("ab", 32), Size: 15 << 20,
		Object: wire.ReleaseObject("v1.4.0", "windows", "amd64")}
}

// TestSignRelease: a record signed by the release keyring verifies with
// the keys the agents are given, and any change to it, another key or no
// signature is refused.
func TestSignRelease(t *testing.T) {
	now := time.Date(2026, 12, 8, 9, 0, 0, 0, time.UTC)
	rk, err := LoadRelease(filepath.Join(t.TempDir(), "release-keys"))
	if err != nil {
		t.Fatal(err)
	}
	sr, err := rk.SignRelease(release(), now)
	if err != nil {
		t.Fatal(err)
	}
	if err := wire.VerifyRelease(ed25519.Verify, rk.Trusted(), sr); err != nil {
		t.Fatalf("VerifyRelease() of a signed record = %v", err)
	}
	// The record survives the JSON of a command.
	b, _ := json.Marshal(wire.Update{Release: sr})
	var u wire.Update
	if err := json.Unmarshal(b, &u); err != nil || wire.VerifyRelease(ed25519.Verify, rk.Trusted(), u.Release) != nil {
		t.Fatalf("the record does not verify after JSON: %v (%s)", err, b)
	}
	other, err := Load(filepath.Join(t.TempDir(), "command-keys"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(*wire.SignedRelease)
		keys   []wire.CommandKey
		want   error
	}{
		{"version", func(r *wire.SignedRelease) {
			r.Version = "v1.4.1"
			r.Object = wire.ReleaseObject("v1.4.1", "windows", "amd64")
		}, nil, wire.ErrReleaseBadSig},
		{"os", func(r *wire.SignedRelease) { r.OS = "linux"; r.Object = wire.ReleaseObject("v1.4.0", "linux", "amd64") }, nil, wire.ErrReleaseBadSig},
		{"hash", func(r *wire.SignedRelease) { r.SHA256 = strings.Repeat("cd", 32) }, nil, wire.ErrReleaseBadSig},
		{"size", func(r *wire.SignedRelease) { r.Size++ }, nil, wire.ErrReleaseBadSig},
		{"signing time", func(r *wire.SignedRelease) { r.SignedAt = r.SignedAt.Add(time.Millisecond) }, nil, wire.ErrReleaseBadSig},
		{"object", func(r *wire.SignedRelease) { r.Object = "kanade-agent/other" }, nil, wire.ErrReleaseBadSig},
		{"unsigned", func(r *wire.SignedRelease) { r.Sig = nil }, nil, wire.ErrReleaseUnsigned},
		{"a command key is not a release key", nil, other.Trusted(), wire.ErrReleaseUnknownKey},
		{"no trusted keys", nil, []wire.CommandKey{}, wire.ErrReleaseUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sr
			r.Sig = append([]byte(nil), sr.Sig...)
			if tt.change != nil {
				tt.change(&r)
			}
			keys := rk.Trusted()
			if tt.keys != nil {
				keys = tt.keys
			}
			if err := wire.VerifyRelease(ed25519.Verify, keys, r); !errors.Is(err, tt.want) {
				t.Errorf("VerifyRelease() = %v, want %v", err, tt.want)
			}
		})
	}
	bad := release()
	bad.SHA256 = "not hex"
	if _, err := rk.SignRelease(bad, now); err == nil {
		t.Error("SignRelease() signed a record with a bad hash")
	}
}

// TestReleaseKeyRotation: the release keys are kept on disk like the
// command keys, and a rotation keeps the older keys trusted (up to Keep).
// app/control tests their announcement.
func TestReleaseKeyRotation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "release-keys")
	rk, err := LoadRelease(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	before, err := rk.SignRelease(release(), now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rk.Rotate(now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	after, err := rk.SignRelease(release(), now)
	if err != nil {
		t.Fatal(err)
	}
	if before.Kid == after.Kid {
		t.Fatal("the rotation did not change the signing key")
	}
	trusted := rk.Trusted()
	if len(trusted) != 2 {
		t.Fatalf("trusted release keys %v, want 2", trusted)
	}
	for _, sr := range []wire.SignedRelease{before, after} {
		if err := wire.VerifyRelease(ed25519.Verify, trusted, sr); err != nil {
			t.Errorf("a record signed by %s does not verify with the trusted keys: %v", sr.Kid, err)
		}
	}
	again, err := LoadRelease(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := again.Trusted(); len(got) != 2 || got[1].Kid != after.Kid {
		t.Errorf("reloaded keys %v, want both, %s last", got, after.Kid)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.key"), []byte("zz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRelease(dir); err == nil || !strings.Contains(err.Error(), "release key bad.key") {
		t.Errorf("LoadRelease() of a bad key file = %v", err)
	}
}

// TestRotateFrom: the Signer a rotation returns signs with the replaced
// key (what agents trust before they hear of the new one), the ring with
// the new one.
func TestRotateFrom(t *testing.T) {
	now := time.Date(2026, 12, 8, 9, 0, 0, 0, time.UTC)
	k, err := Load(filepath.Join(t.TempDir(), "command-keys"))
	if err != nil {
		t.Fatal(err)
	}
	before := k.Trusted()
	prev, err := k.RotateFrom(now)
	if err != nil {
		t.Fatal(err)
	}
	after := k.Trusted()
	if len(after) != 2 || after[0].Kid != before[0].Kid {
		t.Fatalf("trusted after the rotation %v, want %s and a new key", after, before[0].Kid)
	}
	m := prev.Msg(wire.ControlAll, []byte("{}"), now)
	if _, err := wire.Verify(before, m.Subject, m.Header.Get, m.Data, now, wire.MaxControlAge); err != nil {
		t.Errorf("the Signer's message does not verify with the keys from before: %v", err)
	}
	m = k.Msg(wire.ControlAll, []byte("{}"), now)
	if _, err := wire.Verify(before, m.Subject, m.Header.Get, m.Data, now, wire.MaxControlAge); err == nil {
		t.Error("the ring still signs with the replaced key")
	}
	if _, err := wire.Verify(after[1:], m.Subject, m.Header.Get, m.Data, now, wire.MaxControlAge); err != nil {
		t.Errorf("the ring's message does not verify with the new key: %v", err)
	}
}
