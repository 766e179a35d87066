package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/config"
	"github.com/kanadehq/kanade/store"
)

// newAuth builds sign-in from the configuration: OIDC when an issuer is
// set (discovered now to warn early, and again on first sign-in if the
// issuer is down), dev mode otherwise. The cookie keys live in
// DATA/secrets/session-keys.
func newAuth(cfg config.Config, st *store.Store, log *slog.Logger) (*auth.Service, error) {
	keys, err := auth.LoadKeys(filepath.Join(cfg.Server.Data, bus.SecretsDir, "session-keys"))
	if err != nil {
		return nil, err
	}
	ac := auth.Config{Lifetime: cfg.Session.Lifetime.D(), IdleTimeout: cfg.Session.IdleTimeout.D(),
		SecureCookies: cfg.SecureCookies(), Keys: keys, Log: log}
	if !cfg.DevMode() {
		roles := map[string]auth.Role{}
		for v, name := range cfg.OIDC.Roles {
			if roles[v], err = auth.ParseRole(name); err != nil {
				return nil, fmt.Errorf("oidc.roles.%s: %w", v, err)
			}
		}
		def := auth.RoleNone
		if cfg.OIDC.DefaultRole != "" {
			if def, err = auth.ParseRole(cfg.OIDC.DefaultRole); err != nil {
				return nil, fmt.Errorf("oidc.default_role: %w", err)
			}
		}
		ac.OIDC = auth.NewOIDC(auth.OIDCConfig{Issuer: cfg.OIDC.Issuer, ClientID: cfg.OIDC.ClientID, ClientSecret: cfg.OIDC.ClientSecret,
			RedirectURL: cfg.OIDC.RedirectURL, Scopes: cfg.OIDC.Scopes, RolesClaim: cfg.OIDC.RolesClaim, NameClaim: cfg.OIDC.NameClaim,
			RoleMap: roles, DefaultRole: def})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ac.OIDC.Check(ctx); err != nil {
			log.Warn("the OIDC issuer is unreachable; sign-in will retry it", "issuer", cfg.OIDC.Issuer, "err", err)
		}
	}
	return auth.New(st, ac)
}

// authHousekeeping prunes ended sessions and audits the API tokens made or
// revoked with `kanade token` on the server host, until ctx is done.
func authHousekeeping(ctx context.Context, a *auth.Service, st *store.Store, rec *audit.Recorder, log *slog.Logger) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		if n, err := a.Prune(ctx); err != nil && ctx.Err() == nil {
			log.Warn("pruning sessions", "err", err)
		} else if n > 0 {
			log.Debug("sessions pruned", "n", n)
		}
		pending, err := st.APITokensAuditPending(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("api tokens to audit", "err", err)
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
				_ = st.APITokenAudited(ctx, tok.ID)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
