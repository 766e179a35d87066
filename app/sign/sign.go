// Package sign holds the server's signing keys. Every command, kill and
// control message the server publishes carries an ed25519 signature over
// its subject, time and body by a command key; every agent release record
// carries one by a release key. Agents trust the public keys they received
// at enrollment (and in signed rotation announcements) and refuse anything
// else, so a stolen broker credential cannot run code on the fleet nor
// install a binary. The newest key of a ring signs; older keys stay
// trusted for a while so that a rotation does not need the fleet to
// re-enroll.
package sign

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/wire"
)

// Keep is how many keys (the current one and its predecessors) agents trust.
const Keep = 3

type key struct {
	priv    ed25519.PrivateKey
	kid     string
	created time.Time
	file    string
}

// Keyring is safe for concurrent use.
type Keyring struct {
	dir  string
	what string // "command" or "release", for errors
	mu   sync.Mutex
	keys []key // oldest first; the last one signs
}

// Load reads the command keys in dir (one hex ed25519 seed per *.key
// file, named by creation time) and creates the first one if there is
// none.
func Load(dir string) (*Keyring, error) { return load(dir, "command") }

// LoadRelease reads the release keys in dir, which sign agent release
// records (Keyring.SignRelease), as Load reads the command keys; they are
// kept in a directory of their own beside them (DATA/secrets/release-keys)
// and rotated the same way (Rotate, then control.Sender.ReleaseKeys).
func LoadRelease(dir string) (*Keyring, error) { return load(dir, "release") }

func load(dir, what string) (*Keyring, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%s keys: %w", what, err)
	}
	k := &Keyring{dir: dir, what: what}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%s keys: %w", what, err)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".key") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("%s keys: %w", what, err)
		}
		seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("%s key %s: not a hex ed25519 seed", what, e.Name())
		}
		info, _ := e.Info()
		priv := ed25519.NewKeyFromSeed(seed)
		k.keys = append(k.keys, key{priv: priv, kid: wire.KeyID(priv.Public().(ed25519.PublicKey)), created: info.ModTime(), file: e.Name()})
	}
	sort.Slice(k.keys, func(i, j int) bool { return k.keys[i].file < k.keys[j].file })
	if len(k.keys) == 0 {
		if _, err := k.Rotate(time.Now()); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// Rotate creates a new signing key; the oldest keys beyond Keep are
// dropped (their files removed).
func (k *Keyring) Rotate(now time.Time) (wire.CommandKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return wire.CommandKey{}, err
	}
	name := fmt.Sprintf("%020d.key", now.UnixNano())
	if err := os.WriteFile(filepath.Join(k.dir, name), []byte(hex.EncodeToString(priv.Seed())+"\n"), 0o600); err != nil {
		return wire.CommandKey{}, fmt.Errorf("%s keys: %w", k.what, err)
	}
	nk := key{priv: priv, kid: wire.KeyID(priv.Public().(ed25519.PublicKey)), created: now, file: name}
	k.keys = append(k.keys, nk)
	for len(k.keys) > Keep {
		_ = os.Remove(filepath.Join(k.dir, k.keys[0].file))
		k.keys = k.keys[1:]
	}
	return wire.CommandKey{Kid: nk.kid, Key: nk.priv.Public().(ed25519.PublicKey)}, nil
}

// RotateFrom rotates the key, as Rotate, and returns a Signer of the key
// it replaced: agents already trust that key, so it signs the
// announcement of the new trusted keys (control.Sender.RotateCommandKeys).
func (k *Keyring) RotateFrom(now time.Time) (Signer, error) {
	k.mu.Lock()
	old := k.keys[len(k.keys)-1].priv
	k.mu.Unlock()
	if _, err := k.Rotate(now); err != nil {
		return Signer{}, err
	}
	return Signer{priv: old}, nil
}

// Signer signs with one fixed key.
type Signer struct{ priv ed25519.PrivateKey }

// Msg returns a message for subject with body, signed by s's key.
func (s Signer) Msg(subject string, body []byte, now time.Time) *nats.Msg {
	return signed(s.priv, subject, body, now)
}

func signed(priv ed25519.PrivateKey, subject string, body []byte, now time.Time) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = body
	for h, v := range wire.Sign(priv, subject, body, now) {
		m.Header.Set(h, v)
	}
	return m
}

// Trusted lists the public keys agents should trust, newest last.
func (k *Keyring) Trusted() []wire.CommandKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]wire.CommandKey, 0, len(k.keys))
	for _, x := range k.keys {
		out = append(out, wire.CommandKey{Kid: x.kid, Key: x.priv.Public().(ed25519.PublicKey)})
	}
	return out
}

// Msg returns a message for subject with body, signed by the current key.
func (k *Keyring) Msg(subject string, body []byte, now time.Time) *nats.Msg {
	k.mu.Lock()
	priv := k.keys[len(k.keys)-1].priv
	k.mu.Unlock()
	return signed(priv, subject, body, now)
}

// SignRelease signs an agent release record with the current key of a
// release keyring (LoadRelease). The record must validate.
func (k *Keyring) SignRelease(r wire.Release, now time.Time) (wire.SignedRelease, error) {
	k.mu.Lock()
	priv := k.keys[len(k.keys)-1].priv
	k.mu.Unlock()
	return wire.SignRelease(priv, r, now)
}
