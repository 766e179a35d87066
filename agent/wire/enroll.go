package wire

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Enrollment: an agent without an identity connects with the shared
// enrollment credential, which may only send EnrollRequest on
// EnrollSubject and read replies under EnrollInboxPrefix. An enrolled
// agent renews its credential on RenewSubject(pc).
const (
	EnrollSubject     = "enroll.request"
	EnrollInboxPrefix = "_ENROLL_INBOX"
	RenewWildcard     = "enroll.renew.*"
)

// RenewSubject is where an enrolled agent asks for a fresh credential.
func RenewSubject(pc string) string { return "enroll.renew." + pc }

// Enrollment statuses.
const (
	EnrollApproved = "approved"
	EnrollPending  = "pending"
	EnrollRejected = "rejected"
)

// EnrollRequest asks the server for a NATS identity for a public key the
// agent generated (its seed never leaves the PC).
type EnrollRequest struct {
	Protocol  int       `json:"protocol"`
	PCID      string    `json:"pc_id"`
	Hostname  string    `json:"hostname"`
	OS        string    `json:"os"`
	Arch      string    `json:"arch"`
	PublicKey string    `json:"public_key"`
	Token     string    `json:"token"`
	Groups    []string  `json:"groups,omitempty"` // requested; the server decides
	At        time.Time `json:"at"`
	// ReplyKey is a curve (X25519) public key the agent made for this
	// request: the server seals its reply to it, so that other holders of
	// the enrollment file, who can read the same inbox, cannot read it.
	ReplyKey string `json:"reply_key,omitempty"`
	// Signature is the agent key's signature over SigningBytes, proving
	// that the requester holds the seed of PublicKey.
	Signature []byte `json:"signature"`
}

// SigningBytes is what the agent signs.
func (r *EnrollRequest) SigningBytes() []byte {
	fields := []string{"kanade-enroll-v1", r.PCID, r.PublicKey, r.Token, r.At.UTC().Format(time.RFC3339Nano)}
	if r.ReplyKey != "" {
		fields = append(fields, r.ReplyKey)
	}
	return []byte(strings.Join(fields, "\n"))
}

// SealedReply is an EnrollReply sealed (nkeys curve box) to the request's
// ReplyKey by the server's curve key From.
type SealedReply struct {
	Sealed []byte `json:"sealed"`
	From   string `json:"from"`
}

// Validate checks the request's shape (not the token or the signature).
func (r *EnrollRequest) Validate() error {
	var errs []error
	if err := ValidateID("pc_id", r.PCID); err != nil {
		errs = append(errs, err)
	}
	if r.PublicKey == "" || len(r.PublicKey) > 128 {
		errs = append(errs, errors.New("public_key is missing"))
	}
	if r.Token == "" {
		errs = append(errs, errors.New("token is missing"))
	}
	for _, g := range r.Groups {
		if err := ValidateGroup(g); err != nil {
			errs = append(errs, err)
		}
	}
	if len(r.Hostname) > 255 || len(r.OS) > 64 || len(r.Arch) > 64 {
		errs = append(errs, errors.New("hostname, os or arch is too long"))
	}
	if r.At.IsZero() || len(r.Signature) == 0 {
		errs = append(errs, errors.New("at and signature are required"))
	}
	return errors.Join(errs...)
}

// EnrollReply answers an EnrollRequest or a renewal.
type EnrollReply struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	// JWT is the agent's user credential (with Status approved).
	JWT    string    `json:"jwt,omitempty"`
	Groups []string  `json:"groups,omitempty"`
	Expiry time.Time `json:"expiry,omitzero"`
	// RetryAfter tells a pending agent when to ask again.
	RetryAfter Duration `json:"retry_after,omitempty"`
	// CommandKeys are the server keys that sign commands, kills and
	// control messages; agents refuse messages not signed by one of them.
	CommandKeys []CommandKey `json:"command_keys,omitempty"`
	// ReleaseKeys are the server keys that sign release records (agent
	// self-update); agents install only binaries one of them signed.
	ReleaseKeys []CommandKey `json:"release_keys,omitempty"`
}

// ValidateGroup checks a group id: a subject token in lower case (NATS
// lower-cases credential tags, so groups are case-insensitive and kept
// lower-case).
func ValidateGroup(g string) error {
	if err := ValidateID("group", g); err != nil {
		return err
	}
	if strings.ToLower(g) != g {
		return fmt.Errorf("group %q must be lower-case", g)
	}
	return nil
}

// NormalizeGroups lower-cases, sorts and de-duplicates groups.
func NormalizeGroups(groups []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, g := range groups {
		g = strings.ToLower(strings.TrimSpace(g))
		if g != "" && !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	slices.Sort(out)
	return out
}
