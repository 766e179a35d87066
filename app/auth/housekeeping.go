package auth

import (
	"context"
	"log/slog"
	"time"

	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/store"
)

// HousekeepingInterval is how often Housekeeping prunes and audits.
const HousekeepingInterval = 30 * time.Second

// Housekeeping prunes ended sessions and records in the audit trail the API
// tokens made or revoked with `kanade token` on the server host (the CLI
// writes the database only, so the server audits them for it), every
// interval until ctx is done.
func (s *Service) Housekeeping(ctx context.Context, st *store.Store, rec *audit.Recorder, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.Prune(ctx); err != nil && ctx.Err() == nil {
			log.Warn("pruning sessions", "err", err)
		} else if n > 0 {
			log.Debug("sessions pruned", "n", n)
		}
		if err := auditCLITokens(ctx, st, rec); err != nil && ctx.Err() == nil {
			log.Warn("api tokens to audit", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// auditCLITokens records the creation and revocation of API tokens that
// the CLI has not audited, and marks them audited once recorded.
func auditCLITokens(ctx context.Context, st *store.Store, rec *audit.Recorder) error {
	pending, err := st.APITokensAuditPending(ctx)
	if err != nil {
		return err
	}
	for _, tok := range pending {
		var err error
		if tok.AuditPending {
			err = rec.Record(ctx, tok.CreatedBy, audit.APITokenCreate, tok.ID, map[string]any{"name": tok.Name, "role": tok.Role, "via": "cli"})
		}
		if err == nil && tok.RevokeAuditPending {
			err = rec.Record(ctx, tok.RevokedBy, audit.APITokenRevoke, tok.ID, map[string]any{"name": tok.Name, "via": "cli"})
		}
		if err == nil {
			err = st.APITokenAudited(ctx, tok.ID)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
