package wire

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Headers of a signed message (command, kill, control). The signature
// covers the subject, the time and the body, so a signed message cannot be
// moved to another subject or altered.
const (
	HeaderSig   = "Kanade-Sig"
	HeaderKid   = "Kanade-Sig-Kid"
	HeaderSigAt = "Kanade-Sig-At" // unix milliseconds
)

// CommandKey is a server public key agents trust for signed messages.
type CommandKey struct {
	Kid string `json:"kid"`
	Key []byte `json:"key"` // ed25519 public key
}

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// SignedBytes is what the server signs.
func SignedBytes(subject string, atMillis int64, body []byte) []byte {
	b := make([]byte, 0, len(subject)+len(body)+40)
	b = append(b, "kanade-sig-v1\n"...)
	b = append(b, subject...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, atMillis, 10)
	b = append(b, '\n')
	return append(b, body...)
}

// Sign returns the header values of a message signed with priv.
func Sign(priv ed25519.PrivateKey, subject string, body []byte, at time.Time) map[string]string {
	ms := at.UnixMilli()
	sig := ed25519.Sign(priv, SignedBytes(subject, ms, body))
	return map[string]string{
		HeaderSig:   base64.StdEncoding.EncodeToString(sig),
		HeaderKid:   KeyID(priv.Public().(ed25519.PublicKey)),
		HeaderSigAt: strconv.FormatInt(ms, 10),
	}
}

// Errors of Verify; the agent reports them as the reason a command was skipped.
var (
	ErrUnsigned   = errors.New("refused: the message is not signed")
	ErrUnknownKey = errors.New("refused: signed with a key this agent does not trust")
	ErrBadSig     = errors.New("refused: the signature does not match (forged or altered)")
	ErrTooOld     = errors.New("refused: the signature is too old (replayed?)")
	ErrFuture     = errors.New("refused: the signature is from the future (clock skew?)")
)

// MaxClockSkew is how far in the future a signature may be.
const MaxClockSkew = 5 * time.Minute

// SigCheck reports whether sig is pub's signature of msg; ed25519.Verify
// is one.
type SigCheck func(pub ed25519.PublicKey, msg, sig []byte) bool

// Verify checks a signed message against the trusted keys. get reads a
// header. maxAge bounds how old the signature may be (0: no bound). It
// returns the signature time.
func Verify(keys []CommandKey, subject string, get func(string) string, body []byte, now time.Time, maxAge time.Duration) (time.Time, error) {
	return VerifyWith(ed25519.Verify, keys, subject, get, body, now, maxAge)
}

// VerifyWith is Verify with the signature checked by check.
func VerifyWith(check SigCheck, keys []CommandKey, subject string, get func(string) string, body []byte, now time.Time, maxAge time.Duration) (time.Time, error) {
	sigText, kid, atText := get(HeaderSig), get(HeaderKid), get(HeaderSigAt)
	if sigText == "" || kid == "" || atText == "" {
		return time.Time{}, ErrUnsigned
	}
	ms, err := strconv.ParseInt(atText, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: bad %s", ErrBadSig, HeaderSigAt)
	}
	at := time.UnixMilli(ms)
	sig, err := base64.StdEncoding.DecodeString(sigText)
	if err != nil {
		return at, fmt.Errorf("%w: bad %s", ErrBadSig, HeaderSig)
	}
	var key ed25519.PublicKey
	for _, k := range keys {
		if k.Kid == kid && len(k.Key) == ed25519.PublicKeySize {
			key = k.Key
		}
	}
	if key == nil {
		return at, fmt.Errorf("%w (kid %s)", ErrUnknownKey, kid)
	}
	if !check(key, SignedBytes(subject, ms, body), sig) {
		return at, ErrBadSig
	}
	if at.After(now.Add(MaxClockSkew)) {
		return at, ErrFuture
	}
	if maxAge > 0 && now.Sub(at) > maxAge {
		return at, ErrTooOld
	}
	return at, nil
}

// Control kinds.
const (
	// ControlCommandKeys replaces the keys agents trust (key rotation); it
	// must be signed by a key they already trust.
	ControlCommandKeys = "command_keys"
	// ControlCredential hands one agent a re-minted credential (its groups
	// changed); sent on control.pc.<pc>.
	ControlCredential = "credential"
	// ControlEmergencyStop turns the emergency stop on or off (control.all).
	ControlEmergencyStop = "emergency_stop"
	// ControlReleaseKeys replaces the release keys agents trust (a release
	// key rotation); like every control message it is signed by a command
	// key they trust.
	ControlReleaseKeys = "release_keys"
)

// EmergencyStop is the fleet-wide stop switch (KV fleet/emergency_stop and
// the ControlEmergencyStop message). While Active, agents kill what runs
// and refuse new work; afterwards they never run a command issued before
// LastStopAt.
type EmergencyStop struct {
	Active     bool      `json:"active"`
	Since      time.Time `json:"since,omitzero"`
	By         string    `json:"by,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	LastStopAt time.Time `json:"last_stop_at,omitzero"`
}

// Control is a signed state change pushed to agents on control.all or
// control.pc.<pc>.
type Control struct {
	Kind        string         `json:"kind"`
	CommandKeys []CommandKey   `json:"command_keys,omitempty"`
	ReleaseKeys []CommandKey   `json:"release_keys,omitempty"`
	Credential  *EnrollReply   `json:"credential,omitempty"`
	Emergency   *EmergencyStop `json:"emergency,omitempty"`
	// Nonce of a ControlPing, returned in the agent's next heartbeat.
	Nonce string `json:"nonce,omitempty"`
}

// ControlPing asks one agent to answer with a heartbeat carrying the
// nonce at once (the agent page's Ping).
const ControlPing = "ping"

// MaxControlAge bounds how old a signed kill or control message may be.
const MaxControlAge = 5 * time.Minute
