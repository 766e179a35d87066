package wire

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Agent self-update (docs/UPDATE.md). The server keeps agent binaries in
// the JetStream Object Store bucket ReleaseBucket and signs a Release
// record for each with a release key. An update is a command (Kind
// KindUpdate, body UpdateCommand) on the usual command subjects, so it
// has an execution, waves, kills, the emergency stop and catch-up like
// any job. The agent asks for a download permit, reads the object with
// direct gets (ReleaseReadSubject: agents have no other JetStream API),
// checks the record's signature and the SHA-256, tries the new binary,
// swaps it in and restarts; the new binary reports the command's result.

// ReleaseBucket is the Object Store bucket of agent binaries, and
// ReleaseStream its stream.
const (
	ReleaseBucket = "agent_releases"
	ReleaseStream = "OBJ_" + ReleaseBucket
)

// ReleaseReadSubject is the one JetStream API subject agents may use on
// the release bucket: a direct get with a JSON body (last_by_subj for an
// object's metadata, seq + next_by_subj + batch for its chunks). The
// answer to a batch is several messages, then an empty one with status
// 204 (EOB).
const ReleaseReadSubject = "$JS.API.DIRECT.GET." + ReleaseStream

// ReleaseMetaSubject is where the Object Store keeps the metadata of the
// object named name (nats.go's layout: the name in padded base64url).
func ReleaseMetaSubject(name string) string {
	return "$O." + ReleaseBucket + ".M." + base64.URLEncoding.EncodeToString([]byte(name))
}

// ReleaseChunkSubject holds the chunks of the object whose metadata names
// nuid, in order.
func ReleaseChunkSubject(nuid string) string { return "$O." + ReleaseBucket + ".C." + nuid }

// ReleaseObject is the name of the object holding the agent binary of a
// version for os/arch.
func ReleaseObject(version, os, arch string) string {
	return "kanade-agent/" + version + "/" + os + "-" + arch
}

// MaxReleaseSize bounds an agent binary.
const MaxReleaseSize = 256 << 20

// Release describes one agent binary in ReleaseBucket.
type Release struct {
	Version string `json:"version"`
	OS      string `json:"os"`   // GOOS
	Arch    string `json:"arch"` // GOARCH
	// SHA256 is the binary's SHA-256 in lower-case hex.
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Object is the binary's name in ReleaseBucket: ReleaseObject of the
	// version, OS and arch.
	Object string `json:"object"`
}

// ValidateVersion checks an agent version: 1–64 characters from
// [A-Za-z0-9._+-], starting with a letter or digit ("v1.4.0",
// "0.46.0-rc.1", "v0.45.0-12-gabc1234").
func ValidateVersion(v string) error {
	if v == "" {
		return errors.New("version is empty")
	}
	if len(v) > MaxIDLen {
		return fmt.Errorf("version %q is longer than %d characters", v, MaxIDLen)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		ok := idChar(c) || c == '.' || c == '+'
		if !ok || (i == 0 && (c == '.' || c == '+' || c == '-' || c == '_')) {
			return fmt.Errorf("version %q has %q at position %d: use letters, digits, '.', '+', '-' and '_', starting with a letter or digit", v, c, i+1)
		}
	}
	return nil
}

// Validate checks a release record.
func (r *Release) Validate() error {
	var errs []error
	if err := ValidateVersion(r.Version); err != nil {
		errs = append(errs, err)
	}
	for _, f := range []struct{ name, v string }{{"os", r.OS}, {"arch", r.Arch}} {
		if err := ValidateID(f.name, f.v); err != nil {
			errs = append(errs, err)
		} else if strings.ToLower(f.v) != f.v {
			errs = append(errs, fmt.Errorf("%s %q must be lower-case", f.name, f.v))
		}
	}
	if b, err := hex.DecodeString(r.SHA256); err != nil || len(b) != 32 || strings.ToLower(r.SHA256) != r.SHA256 {
		errs = append(errs, fmt.Errorf("sha256 %q is not 64 lower-case hex digits", r.SHA256))
	}
	if r.Size <= 0 || r.Size > MaxReleaseSize {
		errs = append(errs, fmt.Errorf("size %d is not between 1 byte and %d MiB", r.Size, MaxReleaseSize>>20))
	}
	if want := ReleaseObject(r.Version, r.OS, r.Arch); r.Object != want {
		errs = append(errs, fmt.Errorf("object %q must be %q", r.Object, want))
	}
	return errors.Join(errs...)
}

// SignedRelease is a Release with the server's release-key signature.
type SignedRelease struct {
	Release
	SignedAt time.Time `json:"signed_at"`
	Kid      string    `json:"kid"`
	Sig      []byte    `json:"sig"` // ed25519 over ReleaseSignedBytes
}

// ReleaseSignedBytes is what a release key signs: every field of the
// record, one a line (Validate keeps line breaks out of them), and the
// signing time.
func ReleaseSignedBytes(r Release, signedAt time.Time) []byte {
	b := make([]byte, 0, 160)
	b = append(b, "kanade-release-v1\n"...)
	for _, f := range []string{r.Version, r.OS, r.Arch, r.SHA256, strconv.FormatInt(r.Size, 10), r.Object} {
		b = append(b, f...)
		b = append(b, '\n')
	}
	return strconv.AppendInt(b, signedAt.UnixMilli(), 10)
}

// SignRelease signs r with priv (a release key). It refuses a record that
// does not validate.
func SignRelease(priv ed25519.PrivateKey, r Release, now time.Time) (SignedRelease, error) {
	if err := r.Validate(); err != nil {
		return SignedRelease{}, fmt.Errorf("release record: %w", err)
	}
	at := time.UnixMilli(now.UnixMilli()).UTC()
	return SignedRelease{Release: r, SignedAt: at, Kid: KeyID(priv.Public().(ed25519.PublicKey)),
		Sig: ed25519.Sign(priv, ReleaseSignedBytes(r, at))}, nil
}

// Errors of VerifyRelease.
var (
	ErrReleaseUnsigned   = errors.New("the release record is not signed")
	ErrReleaseUnknownKey = errors.New("the release record is signed with a key this agent does not trust")
	ErrReleaseBadSig     = errors.New("the release record's signature does not match (forged or altered)")
)

// VerifyRelease checks a release record and its signature against the
// trusted release keys.
func VerifyRelease(check SigCheck, keys []CommandKey, r SignedRelease) error {
	if len(r.Sig) == 0 || r.Kid == "" || r.SignedAt.IsZero() {
		return ErrReleaseUnsigned
	}
	if err := r.Release.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrReleaseBadSig, err)
	}
	var key ed25519.PublicKey
	for _, k := range keys {
		if k.Kid == r.Kid && len(k.Key) == ed25519.PublicKeySize {
			key = k.Key
		}
	}
	if key == nil {
		return fmt.Errorf("%w (kid %s)", ErrReleaseUnknownKey, r.Kid)
	}
	if !check(key, ReleaseSignedBytes(r.Release, r.SignedAt), r.Sig) {
		return ErrReleaseBadSig
	}
	return nil
}

// Command kinds (Command.Kind).
const (
	// KindScript runs Script with Shell (the empty kind).
	KindScript = ""
	// KindUpdate replaces the agent's binary; the body is an UpdateCommand.
	// It has no Shell or Script, so that an agent older than protocol 3
	// refuses it as an invalid command instead of running anything.
	KindUpdate = "update"
)

// UpdateJobID is the job of update commands: each scope's subject keeps
// only the newest update (stop-the-bleed layer 1), so an agent that comes
// back online is offered the latest release only.
const UpdateJobID = "agent-update"

// Rollback windows: how long a new binary has, from its first start, to
// connect and report before the previous one comes back.
const (
	DefaultRollbackWindow = 2 * time.Minute
	MinRollbackWindow     = time.Second
	MaxRollbackWindow     = 30 * time.Minute
)

// Update is what an update command asks for.
type Update struct {
	Release SignedRelease `json:"release"`
	// RollbackWindow overrides DefaultRollbackWindow.
	RollbackWindow Duration `json:"rollback_window,omitempty"`
}

// Window is the rollback window the command asks for.
func (u *Update) Window() time.Duration {
	if u.RollbackWindow == 0 {
		return DefaultRollbackWindow
	}
	return u.RollbackWindow.D()
}

// UpdateCommand is the body of a command of KindUpdate: the command's
// own fields and the update. Command.Timeout bounds the download and the
// trial run; the swap and the restart follow.
type UpdateCommand struct {
	Command
	Update Update `json:"update"`
}

// Validate checks an update command before it is published (and the
// agent before it acts on one).
func (c *UpdateCommand) Validate() error {
	var errs []error
	if c.Kind != KindUpdate {
		errs = append(errs, fmt.Errorf("kind %q is not %q", c.Kind, KindUpdate))
	}
	if err := c.Command.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Update.Release.Release.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("release: %w", err))
	}
	if len(c.Update.Release.Sig) == 0 {
		errs = append(errs, errors.New("release: not signed"))
	}
	if w := c.Update.RollbackWindow.D(); w != 0 && (w < MinRollbackWindow || w > MaxRollbackWindow) {
		errs = append(errs, fmt.Errorf("rollback_window %s is not between %s and %s", w, MinRollbackWindow, MaxRollbackWindow))
	}
	return errors.Join(errs...)
}

// Reasons an update target fails with: Result.Reason starts with one of
// them, and details follow a colon ("trial run failed: exit status 2: …",
// "rolled back: no connection within 2m").
const (
	UpdateDownloadFailed   = "download failed"
	UpdateSignatureInvalid = "signature invalid"
	UpdateHashMismatch     = "hash mismatch"
	UpdateTrialFailed      = "trial run failed"
	UpdateSwapFailed       = "swap failed"
	UpdateRolledBack       = "rolled back"
)

// UpdateReasons lists the update failure reasons.
var UpdateReasons = []string{UpdateDownloadFailed, UpdateSignatureInvalid, UpdateHashMismatch, UpdateTrialFailed, UpdateSwapFailed, UpdateRolledBack}

// UpdateReasonKind returns which of UpdateReasons a result's reason is
// ("" for none).
func UpdateReasonKind(reason string) string {
	for _, k := range UpdateReasons {
		if reason == k || strings.HasPrefix(reason, k+":") {
			return k
		}
	}
	return ""
}

// Download permits: before it reads a release, an agent asks the server
// on UpdatePermitSubject, which grants at most a configured number of
// downloads at once, and says when the download ended (Done).
const UpdatePermitWildcard = "update.permit.*"

// UpdatePermitSubject is where the agent pc asks for a download permit.
func UpdatePermitSubject(pc string) string { return "update.permit." + pc }

// PermitRequest asks for a download permit (or, with Done, returns one;
// that message expects no answer).
type PermitRequest struct {
	ExecID  string `json:"exec_id"`
	PCID    string `json:"pc_id"`
	Version string `json:"version"`
	Size    int64  `json:"size,omitempty"`
	Done    bool   `json:"done,omitempty"`
}

// PermitReply answers a PermitRequest. Not granted with a RetryAfter:
// "not now", ask again then; not granted without one: refused for good
// (the rollout ended), Reason says why.
type PermitReply struct {
	Granted    bool     `json:"granted"`
	RetryAfter Duration `json:"retry_after,omitempty"`
	Reason     string   `json:"reason,omitempty"`
}

// DecodeUpdateCommand decodes the body of a command of KindUpdate.
func DecodeUpdateCommand(data []byte) (UpdateCommand, error) {
	var c UpdateCommand
	err := json.Unmarshal(data, &c)
	return c, err
}
