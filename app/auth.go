package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/app/config"
	"github.com/kanadehq/kanade/store"
)

// newAuth builds sign-in from the configuration: OIDC when an issuer is
// set (discovered now to warn early, and again on first sign-in if the
// issuer is down), dev mode otherwise. The cookie keys live in
// SECRETS/session-keys (DATA/secrets by default).
func newAuth(cfg config.Config, st *store.Store, log *slog.Logger) (*auth.Service, error) {
	keys, err := auth.LoadKeys(filepath.Join(cfg.SecretsDir(), "session-keys"))
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
