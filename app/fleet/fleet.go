// Package fleet reaches one agent on a person's request: Ping measures the
// round trip through the broker, RefreshInventory asks for the agent's
// inventory now. Both go out as signed control messages (app/control);
// the answers come back as the agent's heartbeat and inventory, which
// app/projector reads.
package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"time"

	"github.com/kanadehq/kanade/app/control"
	"github.com/kanadehq/kanade/app/projector"
	"github.com/kanadehq/kanade/store"
)

// PingTimeout is how long Ping waits for the agent's answer.
const PingTimeout = 5 * time.Second

// ErrNoAnswer is a ping the agent did not answer within PingTimeout.
var ErrNoAnswer = errors.New("no answer")

// Service is safe for concurrent use.
type Service struct {
	st    *store.Store
	ctl   *control.Sender
	pongs *projector.Pongs
	log   *slog.Logger
}

// New returns the service; pongs is the registry the heartbeat projector
// tells of the answers to pings.
func New(st *store.Store, ctl *control.Sender, pongs *projector.Pongs, log *slog.Logger) *Service {
	return &Service{st: st, ctl: ctl, pongs: pongs, log: log}
}

// Ping sends a signed ping to agent pc and waits for its answer (a
// heartbeat carrying the ping's nonce). It returns the round trip, or
// ErrNoAnswer after PingTimeout, or store.ErrNotFound for an agent never
// seen.
func (s *Service) Ping(ctx context.Context, pc string) (time.Duration, error) {
	if _, err := s.st.Agent(ctx, pc); err != nil {
		return 0, err
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	nonce := hex.EncodeToString(b)
	answered, cancel := s.pongs.Wait(pc + "/" + nonce)
	defer cancel()
	start := time.Now()
	if err := s.ctl.Ping(pc, nonce); err != nil {
		return 0, err
	}
	t := time.NewTimer(PingTimeout)
	defer t.Stop()
	select {
	case <-answered:
		return time.Since(start), nil
	case <-t.C:
		return 0, ErrNoAnswer
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// RefreshInventory asks agent pc to collect and report its inventory now
// (store.ErrNotFound for an agent never seen); by is who asked.
func (s *Service) RefreshInventory(ctx context.Context, pc, by string) error {
	if _, err := s.st.Agent(ctx, pc); err != nil {
		return err
	}
	if err := s.ctl.Inventory(pc); err != nil {
		return err
	}
	s.log.Info("inventory requested", "pc", pc, "by", by)
	return nil
}
