package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// Enrollment statuses of an agent key.
const (
	KeyPending  = "pending"
	KeyApproved = "approved"
	KeyRejected = "rejected"
	KeyRevoked  = "revoked"
)

// EnrollmentToken lets agents ask for an identity.
type EnrollmentToken struct {
	ID, Name      string
	DefaultGroups []string
	// AllowGroups are the groups an enrolling PC may ask for ("*": any);
	// it gets the DefaultGroups and those of its requested groups listed here.
	AllowGroups []string
	// NATSUser is the public key of the broker user in the token's bundle.
	NATSUser      string
	AutoApprove   bool
	MaxUses, Uses int // MaxUses 0 = unlimited
	ExpiresAt     time.Time
	RevokedAt     time.Time
	CreatedAt     time.Time
	CreatedBy     string
}

// Usable reports why the token cannot be used now, or "".
func (t EnrollmentToken) Usable(now time.Time) string {
	switch {
	case !t.RevokedAt.IsZero():
		return "the enrollment token was revoked"
	case !t.ExpiresAt.IsZero() && now.After(t.ExpiresAt):
		return "the enrollment token expired"
	case t.MaxUses > 0 && t.Uses >= t.MaxUses:
		return "the enrollment token was used up"
	}
	return ""
}

type tokenRow struct {
	bun.BaseModel `bun:"table:enrollment_tokens,alias:t"`
	ID            string `bun:"id,pk"`
	Name          string `bun:"name"`
	SecretHash    string `bun:"secret_hash"`
	DefaultGroups string `bun:"default_groups"`
	AllowGroups   string `bun:"allow_groups"`
	NATSUser      string `bun:"nats_user"`
	AutoApprove   bool   `bun:"auto_approve"`
	MaxUses       int    `bun:"max_uses"`
	Uses          int    `bun:"uses"`
	ExpiresAt     *int64 `bun:"expires_at"`
	RevokedAt     *int64 `bun:"revoked_at"`
	CreatedAt     int64  `bun:"created_at"`
	CreatedBy     string `bun:"created_by"`
}

func (r tokenRow) token() EnrollmentToken {
	return EnrollmentToken{ID: r.ID, Name: r.Name, DefaultGroups: splitList(r.DefaultGroups), AllowGroups: splitList(r.AllowGroups),
		NATSUser: r.NATSUser, AutoApprove: r.AutoApprove,
		MaxUses: r.MaxUses, Uses: r.Uses, ExpiresAt: fromMillis(r.ExpiresAt), RevokedAt: fromMillis(r.RevokedAt),
		CreatedAt: time.UnixMilli(r.CreatedAt).UTC(), CreatedBy: r.CreatedBy}
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// CreateEnrollmentToken stores a token; secretHash is the SHA-256 (hex)
// of its secret. An existing id is replaced.
func (s *Store) CreateEnrollmentToken(ctx context.Context, t EnrollmentToken, secretHash string) error {
	r := tokenRow{ID: t.ID, Name: t.Name, SecretHash: secretHash, DefaultGroups: strings.Join(t.DefaultGroups, ","),
		AllowGroups: strings.Join(t.AllowGroups, ","), NATSUser: t.NATSUser, AutoApprove: t.AutoApprove, MaxUses: t.MaxUses, ExpiresAt: millis(t.ExpiresAt), CreatedAt: t.CreatedAt.UnixMilli(), CreatedBy: t.CreatedBy}
	_, err := s.w().NewInsert().Model(&r).On("CONFLICT (id) DO UPDATE").
		Set("name = EXCLUDED.name, secret_hash = EXCLUDED.secret_hash, default_groups = EXCLUDED.default_groups, allow_groups = EXCLUDED.allow_groups, nats_user = EXCLUDED.nats_user, auto_approve = EXCLUDED.auto_approve, max_uses = EXCLUDED.max_uses, expires_at = EXCLUDED.expires_at").
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: enrollment token %s: %w", t.ID, err)
	}
	return nil
}

// EnrollmentTokenBySecret finds the token whose secret hashes to secretHash.
func (s *Store) EnrollmentTokenBySecret(ctx context.Context, secretHash string) (EnrollmentToken, error) {
	var r tokenRow
	err := s.db.NewSelect().Model(&r).Where("t.secret_hash = ?", secretHash).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return EnrollmentToken{}, fmt.Errorf("store: enrollment token: %w", ErrNotFound)
	}
	if err != nil {
		return EnrollmentToken{}, fmt.Errorf("store: enrollment token: %w", err)
	}
	return r.token(), nil
}

// EnrollmentToken returns a token by id.
func (s *Store) EnrollmentToken(ctx context.Context, id string) (EnrollmentToken, error) {
	var r tokenRow
	err := s.db.NewSelect().Model(&r).Where("t.id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return EnrollmentToken{}, fmt.Errorf("store: enrollment token %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return EnrollmentToken{}, fmt.Errorf("store: enrollment token %s: %w", id, err)
	}
	return r.token(), nil
}

// CountTokenUse adds one use to a token.
func (s *Store) CountTokenUse(ctx context.Context, id string) error {
	_, err := s.w().NewUpdate().Table("enrollment_tokens").Set("uses = uses + 1").Where("id = ?", id).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: enrollment token %s: %w", id, err)
	}
	return nil
}

// AgentKey is the key a pc_id is bound to and its enrollment state.
type AgentKey struct {
	PCID, PublicKey, Status string
	Hostname, OS, Arch      string
	Groups                  []string
	TokenID                 string
	RequestedAt, DecidedAt  time.Time
	DecidedBy, Reason       string
	JWTExpiresAt            time.Time
	// Reenroll is a request of this PC to enroll with another key, waiting
	// for an admin (nil: none). The bound key keeps working meanwhile.
	Reenroll *Reenrollment
}

// Reenrollment is a known PC's request to be bound to a new key.
type Reenrollment struct {
	PublicKey, Hostname, OS, Arch, TokenID string
	RequestedAt                            time.Time
}

type keyRow struct {
	bun.BaseModel `bun:"table:agent_keys,alias:k"`
	PCID          string `bun:"pc_id,pk"`
	PublicKey     string `bun:"public_key"`
	Status        string `bun:"status"`
	Hostname      string `bun:"hostname"`
	OS            string `bun:"os"`
	Arch          string `bun:"arch"`
	Groups        string `bun:"groups"`
	TokenID       string `bun:"token_id"`
	RequestedAt   int64  `bun:"requested_at"`
	DecidedAt     *int64 `bun:"decided_at"`
	DecidedBy     string `bun:"decided_by"`
	Reason        string `bun:"reason"`
	JWTExpiresAt  *int64 `bun:"jwt_expires_at"`

	ReenrollKey         string `bun:"reenroll_key"`
	ReenrollHostname    string `bun:"reenroll_hostname"`
	ReenrollOS          string `bun:"reenroll_os"`
	ReenrollArch        string `bun:"reenroll_arch"`
	ReenrollTokenID     string `bun:"reenroll_token_id"`
	ReenrollRequestedAt *int64 `bun:"reenroll_requested_at"`
}

func (r keyRow) key() AgentKey {
	return AgentKey{PCID: r.PCID, PublicKey: r.PublicKey, Status: r.Status, Hostname: r.Hostname, OS: r.OS, Arch: r.Arch,
		Groups: splitList(r.Groups), TokenID: r.TokenID, RequestedAt: time.UnixMilli(r.RequestedAt).UTC(),
		DecidedAt: fromMillis(r.DecidedAt), DecidedBy: r.DecidedBy, Reason: r.Reason, JWTExpiresAt: fromMillis(r.JWTExpiresAt),
		Reenroll: r.reenroll()}
}

func (r keyRow) reenroll() *Reenrollment {
	if r.ReenrollKey == "" {
		return nil
	}
	return &Reenrollment{PublicKey: r.ReenrollKey, Hostname: r.ReenrollHostname, OS: r.ReenrollOS, Arch: r.ReenrollArch,
		TokenID: r.ReenrollTokenID, RequestedAt: fromMillis(r.ReenrollRequestedAt)}
}

// PutAgentKey creates or replaces the binding of k.PCID.
func (s *Store) PutAgentKey(ctx context.Context, k AgentKey) error {
	r := keyRow{PCID: k.PCID, PublicKey: k.PublicKey, Status: k.Status, Hostname: clean(k.Hostname), OS: clean(k.OS), Arch: clean(k.Arch),
		Groups: strings.Join(k.Groups, ","), TokenID: k.TokenID, RequestedAt: k.RequestedAt.UnixMilli(), DecidedAt: millis(k.DecidedAt),
		DecidedBy: k.DecidedBy, Reason: k.Reason, JWTExpiresAt: millis(k.JWTExpiresAt)}
	if re := k.Reenroll; re != nil {
		r.ReenrollKey, r.ReenrollHostname, r.ReenrollOS, r.ReenrollArch = re.PublicKey, clean(re.Hostname), clean(re.OS), clean(re.Arch)
		r.ReenrollTokenID, r.ReenrollRequestedAt = re.TokenID, millis(re.RequestedAt)
	}
	_, err := s.w().NewInsert().Model(&r).On("CONFLICT (pc_id) DO UPDATE").
		Set("public_key = EXCLUDED.public_key, status = EXCLUDED.status, hostname = EXCLUDED.hostname, os = EXCLUDED.os, arch = EXCLUDED.arch, groups = EXCLUDED.groups, token_id = EXCLUDED.token_id, requested_at = EXCLUDED.requested_at, decided_at = EXCLUDED.decided_at, decided_by = EXCLUDED.decided_by, reason = EXCLUDED.reason, jwt_expires_at = EXCLUDED.jwt_expires_at, " +
			"reenroll_key = EXCLUDED.reenroll_key, reenroll_hostname = EXCLUDED.reenroll_hostname, reenroll_os = EXCLUDED.reenroll_os, reenroll_arch = EXCLUDED.reenroll_arch, reenroll_token_id = EXCLUDED.reenroll_token_id, reenroll_requested_at = EXCLUDED.reenroll_requested_at").
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: agent key %s: %w", k.PCID, err)
	}
	return nil
}

// AgentKey returns the binding of a pc_id.
func (s *Store) AgentKey(ctx context.Context, pcID string) (AgentKey, error) {
	var r keyRow
	err := s.db.NewSelect().Model(&r).Where("k.pc_id = ?", pcID).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return AgentKey{}, fmt.Errorf("store: agent key %s: %w", pcID, ErrNotFound)
	}
	if err != nil {
		return AgentKey{}, fmt.Errorf("store: agent key %s: %w", pcID, err)
	}
	return r.key(), nil
}

// AgentKeys lists bindings with the given status ("" for all), oldest
// request first. Pending includes the bindings with a re-enrollment
// request (AgentKey.Reenroll).
func (s *Store) AgentKeys(ctx context.Context, status string, limit, offset int) ([]AgentKey, int, error) {
	limit, offset = page(limit, offset)
	var rows []keyRow
	q := s.db.NewSelect().Model(&rows)
	switch status {
	case "":
	case KeyPending:
		q = q.Where("k.status = ? OR k.reenroll_key <> ''", status)
	default:
		q = q.Where("k.status = ?", status)
	}
	n, err := q.Order("k.requested_at", "k.pc_id").Limit(int64(limit)).Offset(int64(offset)).ScanAndCount(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("store: agent keys: %w", err)
	}
	out := make([]AgentKey, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.key())
	}
	return out, int(n), nil
}

// RevokeAgentKey marks a pc's key revoked and remembers the key for ever
// (until its credentials have certainly expired).
func (s *Store) RevokeAgentKey(ctx context.Context, pcID, by string, at time.Time) (AgentKey, error) {
	var k AgentKey
	err := s.InTx(ctx, func(tx *Store) error {
		var err error
		k, err = tx.AgentKey(ctx, pcID)
		if err != nil {
			return err
		}
		k.Status, k.DecidedAt, k.DecidedBy, k.Reason = KeyRevoked, at, by, "revoked by "+by
		if err := tx.PutAgentKey(ctx, k); err != nil {
			return err
		}
		return tx.RevokeKey(ctx, k.PublicKey, pcID, by, at)
	})
	if err != nil {
		return AgentKey{}, fmt.Errorf("store: revoke %s: %w", pcID, err)
	}
	return k, nil
}

// RevokedKey is a key that may not connect.
type RevokedKey struct {
	PublicKey, PCID string
	RevokedAt       time.Time
}

// RevokedKeys lists agent keys revoked after since (older agent
// credentials have expired) and every revoked enrollment bundle user
// (their credentials do not expire).
func (s *Store) RevokedKeys(ctx context.Context, since time.Time) ([]RevokedKey, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT public_key, pc_id, revoked_at FROM revoked_keys WHERE revoked_at >= ? OR pc_id = '' ORDER BY public_key", since.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store: revoked keys: %w", err)
	}
	defer rows.Close()
	var out []RevokedKey
	for rows.Next() {
		var k RevokedKey
		var at int64
		if err := rows.Scan(&k.PublicKey, &k.PCID, &at); err != nil {
			return nil, fmt.Errorf("store: revoked keys: %w", err)
		}
		k.RevokedAt = time.UnixMilli(at).UTC()
		out = append(out, k)
	}
	return out, rows.Err()
}

// KeyRevoked reports whether a public key was ever revoked.
func (s *Store) KeyRevoked(ctx context.Context, publicKey string) (bool, error) {
	n, err := s.db.NewSelect().Table("revoked_keys").Where("public_key = ?", publicKey).Count(ctx)
	if err != nil {
		return false, fmt.Errorf("store: revoked key: %w", err)
	}
	return n > 0, nil
}

// EnrollmentTokens lists every token, newest first.
func (s *Store) EnrollmentTokens(ctx context.Context) ([]EnrollmentToken, error) {
	var rows []tokenRow
	if err := s.db.NewSelect().Model(&rows).Order("t.created_at DESC", "t.id").Scan(ctx); err != nil {
		return nil, fmt.Errorf("store: enrollment tokens: %w", err)
	}
	out := make([]EnrollmentToken, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.token())
	}
	return out, nil
}

// RevokeEnrollmentToken stops a token from enrolling more agents; the
// broker user of its bundle joins the revoked keys.
func (s *Store) RevokeEnrollmentToken(ctx context.Context, id, by string, at time.Time) error {
	return s.InTx(ctx, func(tx *Store) error {
		t, err := tx.EnrollmentToken(ctx, id)
		if err != nil {
			return err
		}
		if _, err := tx.db.NewUpdate().Table("enrollment_tokens").Set("revoked_at = ?", at.UnixMilli()).Where("id = ?", id).Exec(ctx); err != nil {
			return fmt.Errorf("store: enrollment token %s: %w", id, err)
		}
		if t.NATSUser == "" {
			return nil
		}
		return tx.RevokeKey(ctx, t.NATSUser, "", by, at)
	})
}

// RevokeKey adds a public key to the revoked keys (pc is the PC it
// belonged to, or "" for an enrollment bundle's user).
func (s *Store) RevokeKey(ctx context.Context, publicKey, pc, by string, at time.Time) error {
	_, err := s.w().NewRaw("INSERT INTO revoked_keys (public_key, pc_id, revoked_at, revoked_by) VALUES (?, ?, ?, ?) ON CONFLICT (public_key) DO NOTHING",
		publicKey, pc, at.UnixMilli(), by).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: revoke key: %w", err)
	}
	return nil
}

// CountAgentKeys counts the bindings with a status that came through a
// token; pending includes the re-enrollment requests made with it.
func (s *Store) CountAgentKeys(ctx context.Context, status, tokenID string) (int, error) {
	q := s.db.NewSelect().Table("agent_keys")
	if status == KeyPending {
		q = q.Where("(status = ? AND token_id = ?) OR (reenroll_key <> '' AND reenroll_token_id = ?)", status, tokenID, tokenID)
	} else {
		q = q.Where("status = ?", status).Where("token_id = ?", tokenID)
	}
	n, err := q.Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: count agent keys: %w", err)
	}
	return int(n), nil
}

// SetGroups makes groups the groups of pc: in its enrollment (the groups
// its credential carries) and in the agents list. The agent must exist in
// one of the two.
func (s *Store) SetGroups(ctx context.Context, pcID string, groups []string) error {
	return s.InTx(ctx, func(tx *Store) error {
		res, err := tx.db.NewUpdate().Table("agent_keys").Set("groups = ?", strings.Join(groups, ",")).Where("pc_id = ?", pcID).Exec(ctx)
		if err != nil {
			return fmt.Errorf("store: set groups of %s: %w", pcID, err)
		}
		keyed, _ := res.RowsAffected()
		n, err := tx.db.NewSelect().Table("agents").Where("pc_id = ?", pcID).Count(ctx)
		if err != nil {
			return fmt.Errorf("store: set groups of %s: %w", pcID, err)
		}
		if n == 0 && keyed == 0 {
			return fmt.Errorf("store: agent %s: %w", pcID, ErrNotFound)
		}
		if n > 0 {
			return tx.replaceGroups(ctx, []string{pcID}, map[string][]string{pcID: groups})
		}
		return nil
	})
}

// GrantedGroups returns, for the given PCs that are enrolled, the groups
// their credentials carry: the server's word, not the agents'.
func (s *Store) GrantedGroups(ctx context.Context, pcIDs []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, batch := range chunks(pcIDs) {
		var rows []keyRow
		if err := s.db.NewSelect().Model(&rows).Column("pc_id", "groups").
			Where("k.pc_id IN (?)", bun.List(batch)).Where("k.status = ?", KeyApproved).Scan(ctx); err != nil {
			return nil, fmt.Errorf("store: granted groups: %w", err)
		}
		for _, r := range rows {
			out[r.PCID] = splitList(r.Groups)
		}
	}
	return out, nil
}
