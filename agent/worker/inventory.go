package worker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/inventory"
	"github.com/kanadehq/kanade/agent/wire"
)

const (
	// DefaultInventoryInterval is the time between two inventory reports.
	DefaultInventoryInterval = 24 * time.Hour
	// inventoryStartDelay bounds the random wait before the first report,
	// so that a fleet starting together does not report together.
	inventoryStartDelay = time.Minute
	// inventoryRetry is the first wait after a report that did not reach
	// the broker; it doubles up to the interval.
	inventoryRetry = time.Minute
)

// inventoryTask publishes the PC's inventory on wire.InventorySubject
// (into the INVENTORY stream, acknowledged): first after a random delay of
// up to a minute (or the interval, when shorter), then every
// InventoryInterval plus up to 10 % jitter, and at once when the server
// asks (wire.ControlInventory). It runs as one of the worker's Tasks when
// Config.Inventory is set.
func (w *Worker) inventoryTask(ctx context.Context, _ *nats.Conn) {
	interval := w.cfg.InventoryInterval
	retry := min(inventoryRetry, interval)
	t := time.NewTimer(w.jitter(min(interval, inventoryStartDelay)))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.inventoryNow:
		case <-t.C:
		}
		if err := w.sendInventory(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			w.log.Warn("inventory not sent; will retry", "in", retry, "err", err)
			t.Reset(retry)
			retry = min(retry*2, interval)
			continue
		}
		retry = min(inventoryRetry, interval)
		t.Reset(interval + w.jitter(interval/10))
	}
}

// jitter picks a random wait in [0, limit) with Config.Jitter when set.
func (w *Worker) jitter(limit time.Duration) time.Duration {
	if limit <= 0 {
		return 0
	}
	if w.cfg.Jitter != nil {
		return w.cfg.Jitter(limit)
	}
	return rand.N(limit)
}

// RequestInventory makes the worker collect and send its inventory now
// (a request already waiting absorbs this one).
func (w *Worker) RequestInventory() {
	select {
	case w.inventoryNow <- struct{}{}:
	default:
	}
}

// sendInventory collects the inventory and publishes it, cut to fit the
// broker's message size.
func (w *Worker) sendInventory(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, inventory.DefaultTimeout)
	inv, err := w.cfg.Inventory(cctx)
	cancel()
	if err != nil {
		return fmt.Errorf("collect: %w", err)
	}
	inv.Protocol, inv.PCID = wire.ProtocolVersion, w.cfg.PCID
	if inv.Hostname == "" {
		inv.Hostname = w.cfg.Hostname
	}
	b, err := inventory.Encode(&inv, w.maxPayload()-4096)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := w.js.Publish(pctx, wire.InventorySubject(w.cfg.PCID), b); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	w.log.Info("inventory sent", "bytes", len(b), "packages", len(inv.Software), "failed_collectors", len(inv.Errors), "truncated", inv.Truncated)
	return nil
}
