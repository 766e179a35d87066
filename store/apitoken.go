package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// APIToken is a bearer token for scripts. Its secret is never stored, only
// a hash of it.
type APIToken struct {
	ID, Name, Role string
	CreatedAt      time.Time
	CreatedBy      string
	ExpiresAt      time.Time // zero: never
	RevokedAt      time.Time
	RevokedBy      string
	LastUsedAt     time.Time
	// AuditPending / RevokeAuditPending: created / revoked outside the
	// server (the CLI); the audit event has not been published yet.
	AuditPending, RevokeAuditPending bool
}

// Usable reports why the token cannot be used now, or "".
func (t APIToken) Usable(now time.Time) string {
	switch {
	case !t.RevokedAt.IsZero():
		return "the API token was revoked"
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		return "the API token expired"
	}
	return ""
}

type apiTokenRow struct {
	bun.BaseModel `bun:"table:api_tokens,alias:k"`
	ID            string `bun:"id,pk"`
	Name          string `bun:"name"`
	Role          string `bun:"role"`
	SecretHash    string `bun:"secret_hash"`
	CreatedAt     int64  `bun:"created_at"`
	CreatedBy     string `bun:"created_by"`
	ExpiresAt     *int64 `bun:"expires_at"`
	RevokedAt     *int64 `bun:"revoked_at"`
	RevokedBy     string `bun:"revoked_by"`
	LastUsedAt    *int64 `bun:"last_used_at"`
	AuditPending  bool   `bun:"audit_pending"`
	RevokePending bool   `bun:"revoke_audit_pending"`
}

func (r apiTokenRow) token() APIToken {
	return APIToken{ID: r.ID, Name: r.Name, Role: r.Role, CreatedAt: time.UnixMilli(r.CreatedAt).UTC(), CreatedBy: r.CreatedBy,
		ExpiresAt: fromMillis(r.ExpiresAt), RevokedAt: fromMillis(r.RevokedAt), RevokedBy: r.RevokedBy,
		LastUsedAt: fromMillis(r.LastUsedAt), AuditPending: r.AuditPending, RevokeAuditPending: r.RevokePending}
}

// CreateAPIToken stores a new token; secretHash is the SHA-256 (hex) of
// its secret. An existing id wraps ErrExists.
func (s *Store) CreateAPIToken(ctx context.Context, t APIToken, secretHash string) error {
	r := apiTokenRow{ID: t.ID, Name: t.Name, Role: t.Role, SecretHash: secretHash, CreatedAt: t.CreatedAt.UnixMilli(),
		CreatedBy: t.CreatedBy, ExpiresAt: millis(t.ExpiresAt), AuditPending: t.AuditPending}
	res, err := s.w().NewInsert().Model(&r).On("CONFLICT DO NOTHING").Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: api token %s: %w", t.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: api token %s: %w", t.ID, ErrExists)
	}
	return nil
}

// APITokenBySecret finds the token whose secret hashes to secretHash.
func (s *Store) APITokenBySecret(ctx context.Context, secretHash string) (APIToken, error) {
	var r apiTokenRow
	err := s.db.NewSelect().Model(&r).Where("k.secret_hash = ?", secretHash).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return APIToken{}, fmt.Errorf("store: api token: %w", ErrNotFound)
	}
	if err != nil {
		return APIToken{}, fmt.Errorf("store: api token: %w", err)
	}
	return r.token(), nil
}

// APITokens lists every token, newest first.
func (s *Store) APITokens(ctx context.Context) ([]APIToken, error) {
	var rows []apiTokenRow
	if err := s.db.NewSelect().Model(&rows).OrderExpr("k.created_at DESC, k.id").Scan(ctx); err != nil {
		return nil, fmt.Errorf("store: api tokens: %w", err)
	}
	out := make([]APIToken, len(rows))
	for i, r := range rows {
		out[i] = r.token()
	}
	return out, nil
}

// RevokeAPIToken ends a token; revoking it again keeps the first time.
// fromCLI marks the revocation for the server to audit. It returns the
// token.
func (s *Store) RevokeAPIToken(ctx context.Context, id, by string, at time.Time, fromCLI bool) (APIToken, error) {
	var r apiTokenRow
	err := s.InTx(ctx, func(tx *Store) error {
		_, err := tx.db.NewUpdate().Table("api_tokens").Set("revoked_at = ?, revoked_by = ?, revoke_audit_pending = ?", at.UnixMilli(), by, fromCLI).
			Where("id = ? AND revoked_at IS NULL", id).Exec(ctx)
		if err != nil {
			return err
		}
		return tx.db.NewSelect().Model(&r).Where("k.id = ?", id).Scan(ctx)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return APIToken{}, fmt.Errorf("store: api token %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return APIToken{}, fmt.Errorf("store: api token %s: %w", id, err)
	}
	return r.token(), nil
}

// TouchAPIToken records a use of the token.
func (s *Store) TouchAPIToken(ctx context.Context, id string, at time.Time) error {
	if _, err := s.w().NewUpdate().Table("api_tokens").Set("last_used_at = ?", at.UnixMilli()).Where("id = ?", id).Exec(ctx); err != nil {
		return fmt.Errorf("store: api token %s: %w", id, err)
	}
	return nil
}

// APITokensAuditPending lists the tokens whose creation or revocation is
// not audited yet.
func (s *Store) APITokensAuditPending(ctx context.Context) ([]APIToken, error) {
	var rows []apiTokenRow
	if err := s.db.NewSelect().Model(&rows).Where("k.audit_pending OR k.revoke_audit_pending").OrderExpr("k.created_at").Scan(ctx); err != nil {
		return nil, fmt.Errorf("store: api tokens: %w", err)
	}
	out := make([]APIToken, len(rows))
	for i, r := range rows {
		out[i] = r.token()
	}
	return out, nil
}

// APITokenAudited clears a token's pending audit flags.
func (s *Store) APITokenAudited(ctx context.Context, id string) error {
	if _, err := s.w().NewUpdate().Table("api_tokens").Set("audit_pending = ?, revoke_audit_pending = ?", false, false).Where("id = ?", id).Exec(ctx); err != nil {
		return fmt.Errorf("store: api token %s: %w", id, err)
	}
	return nil
}
