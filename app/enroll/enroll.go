// Package enroll gives agents their own NATS identity. An agent sends its
// public key, pc_id and an enrollment token over the shared enrollment
// credential; the server checks the token and the key, binds the pc_id to
// the key (held for an admin's approval unless the token auto-approves)
// and answers with a user credential naming the pc_id, which NATS then
// pins to that PC's own subjects. Admins approve, reject and revoke.
package enroll

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"golang.org/x/time/rate"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/control"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/sign"
	"github.com/kanadehq/kanade/store"
)

// DefaultTokenID is the token written into DATA/agent-credentials.
const DefaultTokenID = "default"

// maxClockSkew bounds how old or new a signed request may be.
const maxClockSkew = 10 * time.Minute

// Service answers enrollment and renewal requests.
type Service struct {
	st   *store.Store
	b    *bus.Bus
	keys *sign.Keyring
	ev   *events.Broker
	log  *slog.Logger
	now  func() time.Time
	// RetryAfter is what pending agents are told to wait.
	RetryAfter time.Duration
	// Audit records decisions (nil records nothing).
	Audit *audit.Recorder
	// Lifetime is how long an issued credential is valid (at most
	// bus.AgentJWTLifetime, which bounds the revocation list).
	Lifetime time.Duration

	// MaxPending bounds the requests of one token that wait for an admin.
	MaxPending int
	// BrokerCA returns the PEM of the CA that signs the broker's TLS
	// certificate (nil: plain text, or the system's roots). Bundles carry
	// it so agents pin it.
	BrokerCA func() []byte
	// SecretsDir holds the default token's secret and broker user
	// ("" = DATA/secrets).
	SecretsDir string
	// ReleaseKeys are the keys that sign agent releases (nil: replies
	// carry none, and agents refuse every update).
	ReleaseKeys *sign.Keyring

	limits   *tokenLimits
	logLimit *rate.Limiter
	// curve seals enrollment replies (wire.SealedReply).
	curve nkeys.KeyPair
	// bundleMu serialises writing and rotating the default bundle, which
	// lives in dataDir.
	bundleMu sync.Mutex
	dataDir  string
}

// New returns a service; b must run the embedded broker.
func New(st *store.Store, b *bus.Bus, keys *sign.Keyring, ev *events.Broker, log *slog.Logger) *Service {
	curve, err := nkeys.CreateCurveKeys()
	if err != nil {
		panic(fmt.Sprintf("enroll: curve key: %v", err)) // crypto/rand failed
	}
	return &Service{curve: curve, st: st, b: b, keys: keys, ev: ev, log: log, now: func() time.Time { return time.Now().UTC() }, RetryAfter: 10 * time.Second,
		Lifetime: bus.AgentJWTLifetime, MaxPending: MaxPendingPerToken, limits: newTokenLimits(), logLimit: rate.NewLimiter(1, 5)}
}

// Revocations are the keys the broker must refuse, for its start.
func Revocations(ctx context.Context, st *store.Store, now time.Time) ([]bus.Revocation, error) {
	keys, err := st.RevokedKeys(ctx, now.Add(-bus.AgentJWTLifetime-time.Hour))
	if err != nil {
		return nil, err
	}
	out := make([]bus.Revocation, 0, len(keys))
	for _, k := range keys {
		out = append(out, bus.Revocation{PublicKey: k.PublicKey, At: k.RevokedAt, Forever: k.PCID == ""})
	}
	return out, nil
}

// HashSecret is how token secrets are stored.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// NewSecret returns a random token secret.
func NewSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "kanade-enroll-" + base64.RawURLEncoding.EncodeToString(b)
}

// secretsDir is where the default token's secret and broker user live:
// SecretsDir, else DATA/secrets.
func (s *Service) secretsDir(dataDir string) string {
	if s.SecretsDir != "" {
		return s.SecretsDir
	}
	return filepath.Join(dataDir, bus.SecretsDir)
}

// Token block markers in the agent credentials file.
const (
	TokenBegin = "-----BEGIN KANADE ENROLLMENT TOKEN-----"
	TokenEnd   = "------END KANADE ENROLLMENT TOKEN------"
)

// WriteAgentCredentials makes sure the default token exists (its secret
// kept in DATA/secrets/enroll-token, its broker user in
// DATA/secrets/enroll-user.nk) and writes DATA/agent-credentials: the
// enrollment bundle's credential followed by the token. autoApprove says
// whether agents enrolling with it are approved without an admin;
// allowGroups are the groups they may ask for ("*": any).
func (s *Service) WriteAgentCredentials(ctx context.Context, dataDir string, autoApprove bool, groups, allowGroups []string) (string, error) {
	s.bundleMu.Lock()
	defer s.bundleMu.Unlock()
	secretPath := filepath.Join(s.secretsDir(dataDir), "enroll-token")
	secret := ""
	if b, err := os.ReadFile(secretPath); err == nil {
		secret = strings.TrimSpace(string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if secret == "" {
		secret = NewSecret()
		if err := writeFileAtomic(secretPath, []byte(secret+"\n")); err != nil {
			return "", err
		}
	}
	s.dataDir = dataDir
	user := s.b.ID.EnrollUser
	tok := store.EnrollmentToken{ID: DefaultTokenID, Name: "Default (DATA/agent-credentials)", DefaultGroups: groups, AllowGroups: allowGroups,
		NATSUser: pubKey(user), AutoApprove: autoApprove, CreatedAt: s.now(), CreatedBy: "kanade"}
	if err := s.st.CreateEnrollmentToken(ctx, tok, HashSecret(secret)); err != nil {
		return "", err
	}
	body, err := s.bundle(user, tok, secret)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dataDir, "agent-credentials")
	return path, writeFileAtomic(path, body)
}

// RotateDefault gives the default token a new secret and a new broker
// user, rewrites DATA/agent-credentials and revokes the old user at the
// broker: PCs holding the old file can no longer even connect. Agents
// that are enrolled keep their own credentials.
func (s *Service) RotateDefault(ctx context.Context, by string) error {
	tok, err := s.st.EnrollmentToken(ctx, DefaultTokenID)
	if err != nil {
		return err
	}
	s.bundleMu.Lock()
	dataDir, old := s.dataDir, pubKey(s.b.ID.EnrollUser)
	s.bundleMu.Unlock()
	if dataDir == "" {
		return fmt.Errorf("%w: no default enrollment bundle was written", ErrState)
	}
	if err := s.Audit.Record(ctx, by, audit.TokenRotate, DefaultTokenID, map[string]any{"old_user": old}); err != nil {
		return err
	}
	fail := func(err error) error {
		s.Audit.Failed(ctx, by, audit.TokenRotate, DefaultTokenID, err)
		return fmt.Errorf("rotate the default enrollment bundle: %w", err)
	}
	s.bundleMu.Lock()
	_, err = s.b.ID.RotateEnrollUser(s.secretsDir(dataDir))
	if err == nil {
		err = writeFileAtomic(filepath.Join(s.secretsDir(dataDir), "enroll-token"), []byte(NewSecret()+"\n"))
	}
	s.bundleMu.Unlock()
	if err != nil {
		return fail(err)
	}
	if _, err := s.WriteAgentCredentials(ctx, dataDir, tok.AutoApprove, tok.DefaultGroups, tok.AllowGroups); err != nil {
		return fail(err)
	}
	if err := s.st.RevokeKey(ctx, old, "", by, s.now()); err != nil {
		return fail(err)
	}
	if err := s.pushRevocations(ctx); err != nil {
		return fail(err)
	}
	s.ev.Publish(events.Enrollments)
	s.log.Warn("default enrollment bundle rotated", "by", by)
	return nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

func pubKey(kp nkeys.KeyPair) string {
	p, _ := kp.PublicKey()
	return p
}

// Run serves enrollment and renewal requests until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	nc := s.b.NC
	sub1, err := nc.QueueSubscribe(wire.EnrollSubject, "kanade-enroll", func(m *nats.Msg) {
		if r, ok := s.requester(m); ok {
			s.respondSealed(m, s.handleEnroll(ctx, r, m.Data), replyKey(m.Data))
		}
	})
	if err != nil {
		return err
	}
	defer sub1.Unsubscribe()
	sub2, err := nc.QueueSubscribe(wire.RenewWildcard, "kanade-enroll", func(m *nats.Msg) {
		if r, ok := s.requester(m); ok {
			s.respond(m, s.handleRenew(ctx, r, wire.LastToken(m.Subject)))
		}
	})
	if err != nil {
		return err
	}
	defer sub2.Unsubscribe()
	if err := nc.Flush(); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// requester checks the reply subject and the requester of a request; a
// request that fails is not answered at all.
func (s *Service) requester(m *nats.Msg) (bus.Requester, bool) {
	r, err := s.b.CheckRequest(m)
	if err != nil {
		s.warn("enroll: request not answered", "subject", m.Subject, "err", err)
		return r, false
	}
	return r, true
}

// warn logs at most one warning a second, so that a flood of hostile
// requests cannot flood the log.
func (s *Service) warn(msg string, args ...any) {
	if s.logLimit.Allow() {
		s.log.Warn(msg, args...)
	}
}

func (s *Service) respond(m *nats.Msg, r wire.EnrollReply) {
	b, _ := json.Marshal(r)
	if err := m.Respond(b); err != nil {
		s.log.Warn("enroll: reply", "err", err)
	}
}

// replyKey is the curve key an enrollment request asks its reply to be
// sealed to ("" for none, or an undecodable request).
func replyKey(data []byte) string {
	var r struct {
		ReplyKey string `json:"reply_key"`
	}
	_ = json.Unmarshal(data, &r)
	return r.ReplyKey
}

// respondSealed answers an enrollment request: sealed to the request's
// reply key when it has one (every holder of the enrollment file can read
// the enrollment inbox).
func (s *Service) respondSealed(m *nats.Msg, r wire.EnrollReply, replyKey string) {
	if replyKey == "" {
		s.respond(m, r)
		return
	}
	b, _ := json.Marshal(r)
	sealed, err := s.curve.Seal(b, replyKey)
	if err != nil {
		s.respond(m, rejected("the reply key is not a curve public key"))
		return
	}
	out, _ := json.Marshal(wire.SealedReply{Sealed: sealed, From: pubKey(s.curve)})
	if err := m.Respond(out); err != nil {
		s.log.Warn("enroll: reply", "err", err)
	}
}

func rejected(reason string) wire.EnrollReply {
	return wire.EnrollReply{Status: wire.EnrollRejected, Reason: reason}
}

func (s *Service) handleEnroll(ctx context.Context, from bus.Requester, data []byte) wire.EnrollReply {
	var req wire.EnrollRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return rejected("undecodable request")
	}
	req.Groups = wire.NormalizeGroups(req.Groups)
	if err := req.Validate(); err != nil {
		return rejected("invalid request: " + err.Error())
	}
	now := s.now()
	log := s.log.With("pc_id", req.PCID, "public_key", req.PublicKey)
	kp, err := nkeys.FromPublicKey(req.PublicKey)
	if err != nil || !nkeys.IsValidPublicUserKey(req.PublicKey) {
		return rejected("public_key is not a user key")
	}
	if kp.Verify(req.SigningBytes(), req.Signature) != nil {
		s.warn("enroll: bad signature", "pc_id", req.PCID)
		return rejected("the signature does not match the public key")
	}
	if d := now.Sub(req.At); d > maxClockSkew || d < -maxClockSkew {
		return rejected("the request is too old or from the future; check the PC's clock")
	}
	tok, err := s.st.EnrollmentTokenBySecret(ctx, HashSecret(req.Token))
	if errors.Is(err, store.ErrNotFound) {
		s.warn("enroll: unknown token", "pc_id", req.PCID)
		return rejected("the enrollment token is not valid")
	}
	if err != nil {
		log.Error("enroll", "err", err)
		return rejected("server error; try again")
	}
	if why := tok.Usable(now); why != "" {
		return rejected(why)
	}
	// The token and the broker user must come from the same bundle: a
	// token secret copied into another bundle is refused.
	if tok.NATSUser == "" || tok.NATSUser != from.User {
		s.warn("enroll: token used with another bundle's credential", "token", tok.ID, "user", from.User)
		return rejected("this credentials file does not belong to this enrollment token; use the file the token was created with")
	}
	if !s.limits.allow(tok.ID) {
		return busy("too many enrollment requests with this token; try again later", s.RetryAfter)
	}
	if revoked, err := s.st.KeyRevoked(ctx, req.PublicKey); err != nil || revoked {
		return rejected("this key was revoked; the agent must create a new key")
	}
	cur, err := s.st.AgentKey(ctx, req.PCID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		log.Error("enroll", "err", err)
		return rejected("server error; try again")
	case cur.PublicKey == req.PublicKey:
		switch cur.Status {
		case store.KeyApproved:
			return s.mint(ctx, cur) // the agent lost its credential: same key, new one
		case store.KeyPending:
			return wire.EnrollReply{Status: wire.EnrollPending, Reason: "waiting for an admin to approve", RetryAfter: wire.Duration(s.RetryAfter)}
		default:
			return rejected("enrollment " + cur.Status + ": " + cur.Reason)
		}
	case cur.Reenroll != nil && cur.Reenroll.PublicKey == req.PublicKey:
		return wire.EnrollReply{Status: wire.EnrollPending, Reason: "waiting for an admin to approve the re-enrollment", RetryAfter: wire.Duration(s.RetryAfter)}
	case cur.Status == store.KeyApproved:
		return s.requestReenroll(ctx, tok, cur, req)
	case cur.Status == store.KeyPending:
		s.warn("enroll: pc_id bound to another key", "pc_id", req.PCID)
		return rejected(fmt.Sprintf("pc_id %s already waits for approval with another key; an admin must reject that request first", req.PCID))
	}
	// A request that waits for an admin carries every group it asks for:
	// the admin sees them on the Pending page and decides. One that the
	// token approves gets only the groups the token allows.
	k := store.AgentKey{PCID: req.PCID, PublicKey: req.PublicKey, Status: store.KeyPending, Hostname: req.Hostname,
		OS: req.OS, Arch: req.Arch, Groups: wire.NormalizeGroups(append(slices.Clone(tok.DefaultGroups), req.Groups...)),
		TokenID: tok.ID, RequestedAt: now}
	var ignored []string
	// A token approves only PCs the server has never heard of: a PC whose
	// earlier key was revoked or rejected, or that the server already
	// knows (it reported before, or an admin entered it), needs an admin,
	// so that a leaked token cannot take over a PC's name.
	if tok.AutoApprove && cur.PublicKey == "" {
		switch _, err := s.st.Agent(ctx, req.PCID); {
		case errors.Is(err, store.ErrNotFound):
			k.Status, k.DecidedAt, k.DecidedBy, k.Reason = store.KeyApproved, now, "token "+tok.ID, "approved by token "+tok.ID
			k.Groups, ignored = GrantGroups(tok, req.Groups)
		case err != nil:
			log.Error("enroll", "err", err)
			return rejected("server error; try again")
		}
	}
	if k.Status == store.KeyPending {
		if full := s.pendingFull(ctx, tok.ID, log); full != nil {
			return *full
		}
	}
	if err := s.st.PutAgentKey(ctx, k); err != nil {
		log.Error("enroll", "err", err)
		return rejected("server error; try again")
	}
	if err := s.st.CountTokenUse(ctx, tok.ID); err != nil {
		log.Error("enroll", "err", err)
	}
	s.ev.Publish(events.Enrollments)
	log.Info("enrollment request", "status", k.Status, "token", tok.ID, "groups", k.Groups, "groups_ignored", ignored)
	if k.Status != store.KeyApproved {
		return wire.EnrollReply{Status: wire.EnrollPending, Reason: "waiting for an admin to approve", RetryAfter: wire.Duration(s.RetryAfter)}
	}
	return s.mint(ctx, k)
}

// pendingFull is the answer to a request that would wait for an admin
// when the token may not add one more (nil: it may): new pending requests
// are rate limited, and at most MaxPending of a token wait.
func (s *Service) pendingFull(ctx context.Context, tokenID string, log *slog.Logger) *wire.EnrollReply {
	if !s.limits.allowPending(tokenID) {
		r := busy("too many new enrollment requests with this token; try again later", s.RetryAfter)
		return &r
	}
	n, err := s.st.CountAgentKeys(ctx, store.KeyPending, tokenID)
	if err != nil {
		log.Error("enroll", "err", err)
		r := rejected("server error; try again")
		return &r
	}
	if n >= s.MaxPending {
		s.warn("enroll: too many pending requests", "token", tokenID, "pending", n)
		r := busy(fmt.Sprintf("%d enrollment requests of this token already wait for an admin; try again later", n), 10*s.RetryAfter)
		return &r
	}
	return nil
}

// requestReenroll records a known PC's request to be bound to a new key
// (the PC was reinstalled or lost its data directory). It always waits for
// an admin: a token cannot move a PC's name to another key, or whoever
// holds a leaked token could take over any PC. The bound key keeps working
// until an admin approves; then it is revoked.
func (s *Service) requestReenroll(ctx context.Context, tok store.EnrollmentToken, cur store.AgentKey, req wire.EnrollRequest) wire.EnrollReply {
	log := s.log.With("pc_id", req.PCID, "public_key", req.PublicKey)
	if full := s.pendingFull(ctx, tok.ID, log); full != nil {
		return *full
	}
	detail := map[string]any{"public_key": req.PublicKey, "bound_key": cur.PublicKey, "hostname": req.Hostname, "token": tok.ID}
	if cur.Reenroll != nil {
		detail["replaces_request_of"] = cur.Reenroll.PublicKey
	}
	if err := s.Audit.Record(ctx, "agent:"+req.PCID, audit.EnrollmentReenrollRequest, req.PCID, detail); err != nil {
		log.Error("enroll", "err", err)
		return rejected("server error; try again")
	}
	cur.Reenroll = &store.Reenrollment{PublicKey: req.PublicKey, Hostname: req.Hostname, OS: req.OS, Arch: req.Arch, TokenID: tok.ID, RequestedAt: s.now()}
	if err := s.st.PutAgentKey(ctx, cur); err != nil {
		log.Error("enroll", "err", err)
		return rejected("server error; try again")
	}
	if err := s.st.CountTokenUse(ctx, tok.ID); err != nil {
		log.Error("enroll", "err", err)
	}
	s.ev.Publish(events.Enrollments)
	log.Warn("a known PC asks to enroll with a new key; an admin must approve it (Pending agents)", "bound_key", cur.PublicKey, "token", tok.ID)
	return wire.EnrollReply{Status: wire.EnrollPending, Reason: "this PC is known with another key: waiting for an admin to approve the re-enrollment", RetryAfter: wire.Duration(s.RetryAfter)}
}

// MaxPendingPerToken bounds the requests of one token that wait for an
// admin (Service.MaxPending).
const MaxPendingPerToken = 1000

// GrantGroups is what an enrolling PC gets: the token's default groups,
// and those of the groups it asked for that the token allows ("*" allows
// any). ignored lists the rest.
func GrantGroups(tok store.EnrollmentToken, requested []string) (groups, ignored []string) {
	anyGroup := slices.Contains(tok.AllowGroups, "*")
	groups = slices.Clone(tok.DefaultGroups)
	for _, g := range requested {
		if anyGroup || slices.Contains(tok.AllowGroups, g) {
			groups = append(groups, g)
		} else if !slices.Contains(tok.DefaultGroups, g) {
			ignored = append(ignored, g)
		}
	}
	return wire.NormalizeGroups(groups), ignored
}

// busy asks the agent to try again later.
func busy(reason string, after time.Duration) wire.EnrollReply {
	return wire.EnrollReply{Status: wire.EnrollPending, Reason: reason, RetryAfter: wire.Duration(after)}
}

// mint signs a fresh credential for an approved key.
func (s *Service) mint(ctx context.Context, k store.AgentKey) wire.EnrollReply {
	expiry := s.now().Add(min(s.Lifetime, bus.AgentJWTLifetime))
	j, err := s.b.ID.MintAgent(k.PublicKey, k.PCID, k.Groups, expiry)
	if err != nil {
		s.log.Error("enroll: mint", "pc_id", k.PCID, "err", err)
		return rejected("server error; try again")
	}
	k.JWTExpiresAt = expiry
	if err := s.st.PutAgentKey(ctx, k); err != nil {
		s.log.Error("enroll", "err", err)
		return rejected("server error; try again")
	}
	rep := wire.EnrollReply{Status: wire.EnrollApproved, JWT: j, Groups: k.Groups, Expiry: expiry, CommandKeys: s.keys.Trusted()}
	if s.ReleaseKeys != nil {
		rep.ReleaseKeys = s.ReleaseKeys.Trusted()
	}
	return rep
}

// handleRenew re-mints the credential of an enrolled agent. Only that
// agent's own credential may publish on its renewal subject, and the
// requester must be the key the pc_id is bound to.
func (s *Service) handleRenew(ctx context.Context, from bus.Requester, pc string) wire.EnrollReply {
	k, err := s.st.AgentKey(ctx, pc)
	if err != nil || k.Status != store.KeyApproved {
		return rejected("not enrolled")
	}
	if k.PublicKey != from.User {
		s.warn("enroll: renewal by another key", "pc_id", pc, "user", from.User)
		return rejected("not enrolled")
	}
	return s.mint(ctx, k)
}

// Approve lets a pending (or rejected) agent in; its next request gets a credential.
func (s *Service) Approve(ctx context.Context, pc, by string) error {
	k, err := s.st.AgentKey(ctx, pc)
	if err != nil {
		return err
	}
	if k.Reenroll != nil {
		return s.approveReenroll(ctx, k, by)
	}
	if k.Status == store.KeyRevoked {
		return fmt.Errorf("%w: the key of %s was revoked; the agent must enroll with a new key", ErrState, pc)
	}
	if err := s.Audit.Record(ctx, by, audit.EnrollmentApprove, pc, map[string]any{"public_key": k.PublicKey, "groups": k.Groups, "hostname": k.Hostname}); err != nil {
		return err
	}
	k.Status, k.DecidedAt, k.DecidedBy, k.Reason = store.KeyApproved, s.now(), by, "approved by "+by
	if err := s.st.PutAgentKey(ctx, k); err != nil {
		s.Audit.Failed(ctx, by, audit.EnrollmentApprove, pc, err)
		return err
	}
	s.ev.Publish(events.Enrollments)
	s.log.Info("enrollment approved", "pc_id", pc, "by", by)
	return nil
}

// approveReenroll binds pc to the key of its re-enrollment request and
// revokes the key it was bound to, at the broker too.
func (s *Service) approveReenroll(ctx context.Context, k store.AgentKey, by string) error {
	re, old, now := k.Reenroll, k.PublicKey, s.now()
	if err := s.Audit.Record(ctx, by, audit.EnrollmentApprove, k.PCID, map[string]any{"reenrollment": true, "public_key": re.PublicKey,
		"previous_key": old, "groups": k.Groups, "hostname": re.Hostname}); err != nil {
		return err
	}
	nk := store.AgentKey{PCID: k.PCID, PublicKey: re.PublicKey, Status: store.KeyApproved, Hostname: re.Hostname, OS: re.OS, Arch: re.Arch,
		Groups: k.Groups, TokenID: re.TokenID, RequestedAt: re.RequestedAt, DecidedAt: now, DecidedBy: by, Reason: "re-enrollment approved by " + by}
	err := s.st.InTx(ctx, func(tx *store.Store) error {
		if err := tx.PutAgentKey(ctx, nk); err != nil {
			return err
		}
		return tx.RevokeKey(ctx, old, k.PCID, by, now)
	})
	if err == nil {
		err = s.pushRevocations(ctx)
	}
	if err != nil {
		s.Audit.Failed(ctx, by, audit.EnrollmentApprove, k.PCID, err)
		return err
	}
	s.ev.Publish(events.Enrollments)
	s.log.Info("re-enrollment approved", "pc_id", k.PCID, "by", by, "public_key", re.PublicKey, "revoked_key", old)
	return nil
}

// ErrState reports an action that does not fit the enrollment's state.
var ErrState = errors.New("conflict")

// Reject refuses a pending agent.
func (s *Service) Reject(ctx context.Context, pc, by string) error {
	k, err := s.st.AgentKey(ctx, pc)
	if err != nil {
		return err
	}
	if re := k.Reenroll; re != nil {
		// The new key is not this PC's: it is refused for good, so the
		// requester cannot simply ask again.
		if err := s.Audit.Record(ctx, by, audit.EnrollmentReject, pc, map[string]any{"reenrollment": true, "public_key": re.PublicKey, "hostname": re.Hostname}); err != nil {
			return err
		}
		k.Reenroll = nil
		err := s.st.InTx(ctx, func(tx *store.Store) error {
			if err := tx.PutAgentKey(ctx, k); err != nil {
				return err
			}
			return tx.RevokeKey(ctx, re.PublicKey, pc, by, s.now())
		})
		if err != nil {
			s.Audit.Failed(ctx, by, audit.EnrollmentReject, pc, err)
			return err
		}
		s.ev.Publish(events.Enrollments)
		return nil
	}
	if k.Status != store.KeyPending {
		return fmt.Errorf("%w: %s is %s, not pending", ErrState, pc, k.Status)
	}
	if err := s.Audit.Record(ctx, by, audit.EnrollmentReject, pc, map[string]any{"public_key": k.PublicKey, "hostname": k.Hostname}); err != nil {
		return err
	}
	k.Status, k.DecidedAt, k.DecidedBy, k.Reason = store.KeyRejected, s.now(), by, "rejected by "+by
	if err := s.st.PutAgentKey(ctx, k); err != nil {
		s.Audit.Failed(ctx, by, audit.EnrollmentReject, pc, err)
		return err
	}
	s.ev.Publish(events.Enrollments)
	return nil
}

// Revoke cuts an agent off: its key is added to the account's revocations
// and pushed to the broker, which drops the connection at once; the key can
// never connect or enroll again.
func (s *Service) Revoke(ctx context.Context, pc, by string) error {
	now := s.now()
	k, err := s.st.AgentKey(ctx, pc)
	if err != nil {
		return err
	}
	if err := s.Audit.Record(ctx, by, audit.AgentRevoke, pc, map[string]any{"public_key": k.PublicKey}); err != nil {
		return err
	}
	if _, err := s.st.RevokeAgentKey(ctx, pc, by, now); err != nil {
		s.Audit.Failed(ctx, by, audit.AgentRevoke, pc, err)
		return err
	}
	if err := s.pushRevocations(ctx); err != nil {
		s.Audit.Failed(ctx, by, audit.AgentRevoke, pc, err)
		return err
	}
	s.ev.Publish(events.Enrollments)
	s.log.Info("agent revoked", "pc_id", pc, "by", by)
	return nil
}

// pushRevocations hands the broker the agents' account with every
// revoked key; their connections drop at once.
func (s *Service) pushRevocations(ctx context.Context) error {
	revs, err := Revocations(ctx, s.st, s.now())
	if err != nil {
		return err
	}
	return s.b.UpdateAccount(ctx, revs)
}

// RevokeToken stops a token from enrolling more agents and revokes its
// bundle's broker user: PCs holding its credentials file can no longer
// connect. Agents that enrolled with it keep their own credentials.
func (s *Service) RevokeToken(ctx context.Context, id, by string) error {
	if _, err := s.st.EnrollmentToken(ctx, id); err != nil {
		return err
	}
	if err := s.Audit.Record(ctx, by, audit.TokenRevoke, id, nil); err != nil {
		return err
	}
	if err := s.st.RevokeEnrollmentToken(ctx, id, by, s.now()); err != nil {
		s.Audit.Failed(ctx, by, audit.TokenRevoke, id, err)
		return err
	}
	if err := s.pushRevocations(ctx); err != nil {
		s.Audit.Failed(ctx, by, audit.TokenRevoke, id, err)
		return err
	}
	s.ev.Publish(events.Enrollments)
	s.log.Info("enrollment token revoked", "id", id, "by", by)
	return nil
}

// TokenRequest describes a new enrollment token.
type TokenRequest struct {
	Name          string
	DefaultGroups []string
	// AllowGroups are the groups an enrolling PC may ask for ("*": any).
	AllowGroups []string
	ExpiresIn   time.Duration // 0: never
	MaxUses     int           // 0: unlimited
	AutoApprove bool
	By          string
}

// Issued is a new token with what is shown once: its secret and its
// bundle (the credentials file PCs enroll with). Only the secret's hash
// and the bundle user's public key are stored.
type Issued struct {
	Token  store.EnrollmentToken
	Secret string
	Bundle []byte
}

// CreateToken makes an enrollment token with a broker user of its own.
func (s *Service) CreateToken(ctx context.Context, r TokenRequest) (Issued, error) {
	var ps []string
	r.Name = strings.TrimSpace(r.Name)
	if r.Name == "" || len(r.Name) > 100 {
		ps = append(ps, "name: give the token a name of at most 100 characters")
	}
	r.DefaultGroups = wire.NormalizeGroups(r.DefaultGroups)
	for _, g := range r.DefaultGroups {
		if err := wire.ValidateGroup(g); err != nil {
			ps = append(ps, "default_groups: "+err.Error())
		}
	}
	r.AllowGroups = wire.NormalizeGroups(r.AllowGroups)
	for _, g := range r.AllowGroups {
		if err := wire.ValidateGroup(g); g != "*" && err != nil {
			ps = append(ps, "allow_groups: "+err.Error())
		}
	}
	if r.ExpiresIn < 0 || r.MaxUses < 0 {
		ps = append(ps, "expires_in and max_uses must not be negative")
	}
	if len(ps) > 0 {
		return Issued{}, fmt.Errorf("%w: %s", ErrInvalid, strings.Join(ps, "; "))
	}
	user, err := nkeys.CreateUser()
	if err != nil {
		return Issued{}, err
	}
	now := s.now()
	t := store.EnrollmentToken{ID: tokenID(), Name: r.Name, DefaultGroups: r.DefaultGroups, AllowGroups: r.AllowGroups,
		NATSUser: pubKey(user), AutoApprove: r.AutoApprove, MaxUses: r.MaxUses, CreatedAt: now, CreatedBy: r.By}
	if r.ExpiresIn > 0 {
		t.ExpiresAt = now.Add(r.ExpiresIn)
	}
	secret := NewSecret()
	bundle, err := s.bundle(user, t, secret)
	if err != nil {
		return Issued{}, err
	}
	if err := s.Audit.Record(ctx, r.By, audit.TokenCreate, t.ID, map[string]any{"name": t.Name, "default_groups": t.DefaultGroups,
		"auto_approve": t.AutoApprove, "max_uses": t.MaxUses, "expires_at": t.ExpiresAt, "allow_groups": t.AllowGroups, "nats_user": t.NATSUser}); err != nil {
		return Issued{}, err
	}
	if err := s.st.CreateEnrollmentToken(ctx, t, HashSecret(secret)); err != nil {
		s.Audit.Failed(ctx, r.By, audit.TokenCreate, t.ID, err)
		return Issued{}, err
	}
	s.log.Info("enrollment token created", "id", t.ID, "name", t.Name, "by", r.By)
	return Issued{Token: t, Secret: secret, Bundle: bundle}, nil
}

// ErrInvalid reports a bad request.
var ErrInvalid = errors.New("invalid")

func tokenID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "tok-" + hex.EncodeToString(b)
}

// bundle is the credentials file of a token: its broker user's
// credential (valid as long as the token) and its secret; what an admin
// hands to the PCs that should enroll with it.
func (s *Service) bundle(user nkeys.KeyPair, t store.EnrollmentToken, secret string) ([]byte, error) {
	creds, err := s.b.ID.EnrollCreds(user, t.ID, t.ExpiresAt)
	if err != nil {
		return nil, err
	}
	b := append(creds, []byte("\n"+TokenBegin+"\n"+secret+"\n"+TokenEnd+"\n")...)
	if s.BrokerCA != nil {
		if ca := s.BrokerCA(); len(ca) > 0 {
			b = append(b, "\n# The broker's TLS CA: the agent trusts only a broker certificate it signed.\n"...)
			b = append(b, ca...)
		}
	}
	return b, nil
}

// SetGroups changes an agent's groups. An enrolled agent gets a re-minted
// credential pushed on control.pc.<pc> (signed), follows it at once and
// reconnects, so NATS itself lets it read the new groups' commands and
// no longer the old ones'. An agent that is offline fetches it when it
// reconnects.
func (s *Service) SetGroups(ctx context.Context, pc string, groups []string, by string) ([]string, error) {
	groups = wire.NormalizeGroups(groups)
	for _, g := range groups {
		if err := wire.ValidateGroup(g); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	if err := s.Audit.Record(ctx, by, audit.AgentGroups, pc, map[string]any{"groups": groups}); err != nil {
		return nil, err
	}
	if err := s.st.SetGroups(ctx, pc, groups); err != nil {
		s.Audit.Failed(ctx, by, audit.AgentGroups, pc, err)
		return nil, err
	}
	s.ev.Publish(events.Agents)
	s.log.Info("agent groups changed", "pc_id", pc, "groups", groups, "by", by)
	k, err := s.st.AgentKey(ctx, pc)
	if errors.Is(err, store.ErrNotFound) || (err == nil && k.Status != store.KeyApproved) {
		return groups, nil
	}
	if err != nil {
		return nil, err
	}
	rep := s.mint(ctx, k)
	if rep.Status != wire.EnrollApproved {
		return nil, fmt.Errorf("re-mint the credential of %s: %s", pc, rep.Reason)
	}
	if err := control.New(s.b.NC, s.keys, s.now).Credential(pc, rep); err != nil {
		return nil, err
	}
	return groups, nil
}
