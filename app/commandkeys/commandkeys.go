// Package commandkeys owns the keys agents trust for signed commands,
// kills and control messages: it lists them and rotates them. A rotation
// is recorded first, announced to the fleet signed by the key it replaces
// (app/control), and re-signs the stored security values (the emergency
// stop, pins and revoked flags) with the new key before the old one leaves
// the trusted set. docs/SECURITY.md describes the trust model.
package commandkeys

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/control"
	"github.com/kanadehq/kanade/app/sign"
)

// StateSigner re-signs the signed values agents read from the broker's
// buckets with the keyring's current key (dispatch.Dispatcher).
type StateSigner interface {
	ResignState(ctx context.Context) error
}

// Service is safe for concurrent use.
type Service struct {
	keys  *sign.Keyring
	ctl   *control.Sender
	state StateSigner
	audit *audit.Recorder
	now   func() time.Time
	log   *slog.Logger
}

// New returns the service over the command keyring keys; ctl announces a
// rotation, state re-signs the stored values after it, rec records it.
// now dates the new key (nil: the real clock in UTC).
func New(keys *sign.Keyring, ctl *control.Sender, state StateSigner, rec *audit.Recorder, now func() time.Time, log *slog.Logger) *Service {
	if now == nil {
		now = func() time.Time { return time.Now().UTC() }
	}
	return &Service{keys: keys, ctl: ctl, state: state, audit: rec, now: now, log: log}
}

// Trusted lists the keys agents trust, newest last.
func (s *Service) Trusted() []wire.CommandKey { return s.keys.Trusted() }

// Rotate makes a new signing key, by actor by, and returns the trusted
// keys, newest last. It is refused when it cannot be recorded.
func (s *Service) Rotate(ctx context.Context, by string) ([]wire.CommandKey, error) {
	// Recorded before the new key exists: the event names the key it
	// replaces.
	trusted := s.keys.Trusted()
	replaced := trusted[len(trusted)-1].Kid
	if err := s.audit.Record(ctx, by, audit.CommandKeysRotate, replaced, map[string]any{"replaces": replaced}); err != nil {
		return nil, err
	}
	prev, err := s.keys.RotateFrom(s.now())
	if err != nil {
		s.audit.Failed(ctx, by, audit.CommandKeysRotate, replaced, err)
		return nil, err
	}
	trusted = s.keys.Trusted()
	if err := s.ctl.CommandKeys(prev, trusted); err != nil {
		return nil, err
	}
	if err := s.state.ResignState(ctx); err != nil {
		return nil, fmt.Errorf("re-sign the stored security values: %w", err)
	}
	s.log.Info("command signing key rotated", "by", by)
	return trusted, nil
}
