package projector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/store"
)

// InventoryConsumer is the durable consumer name of the inventory projector.
const InventoryConsumer = "inventory-projector"

// inventoryBatch is the most reports written in one transaction (a report
// may carry thousands of packages).
const inventoryBatch = 20

// Inventory projects the INVENTORY stream (the newest report of each PC)
// into the inventory tables until ctx is done, acknowledging each batch
// after its commit.
func Inventory(ctx context.Context, js jetstream.JetStream, st *store.Store, ev *events.Broker, log *slog.Logger) error {
	cons, err := js.CreateOrUpdateConsumer(ctx, wire.StreamInventory, jetstream.ConsumerConfig{
		Durable: InventoryConsumer, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 2 * time.Minute, MaxAckPending: 1000, MaxDeliver: -1,
	})
	if err != nil {
		return err
	}
	var pause Backoff
	for ctx.Err() == nil {
		batch, err := cons.Fetch(inventoryBatch, jetstream.FetchMaxWait(time.Second))
		var msgs []jetstream.Msg
		var invs []wire.Inventory
		if err == nil {
			for m := range BatchMessages(ctx, batch) {
				inv, err := decodeInventory(m.Subject(), m.Data())
				if err != nil {
					log.Warn("inventory projector: dropping a bad report", "subject", m.Subject(), "err", err)
					_ = m.Term()
					continue
				}
				msgs, invs = append(msgs, m), append(invs, inv)
			}
			if berr := batch.Error(); berr != nil && !errors.Is(berr, jetstream.ErrNoMessages) && !errors.Is(berr, nats.ErrTimeout) {
				err = berr
			}
		}
		if err != nil && ctx.Err() == nil {
			if Gone(err) {
				return fmt.Errorf("inventory projector: %w", err) // Keep creates the consumer again
			}
			d := pause.Next()
			log.Warn("inventory projector: fetch failed; trying again", "err", err, "in", d)
			if !Wait(ctx, d) {
				return nil
			}
			continue
		}
		pause.Reset()
		if len(invs) == 0 {
			continue
		}
		if err := st.PutInventories(ctx, invs, time.Now().UTC()); err != nil {
			if ctx.Err() == nil {
				log.Error("inventory projector: database write failed; the reports come again", "reports", len(invs), "err", err)
				for _, m := range msgs {
					_ = m.NakWithDelay(5 * time.Second)
				}
			}
			continue
		}
		for _, m := range msgs {
			_ = m.Ack()
		}
		ev.Publish(events.Agents)
	}
	return nil
}

// decodeInventory trusts the subject over the body for whose report it is.
func decodeInventory(subject string, data []byte) (wire.Inventory, error) {
	var inv wire.Inventory
	if err := json.Unmarshal(data, &inv); err != nil {
		return inv, err
	}
	if wire.InventorySubject(inv.PCID) != subject {
		return inv, errors.New("the body names another PC than the subject")
	}
	return inv, inv.Validate()
}
