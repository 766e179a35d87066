package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
)

// maxConsumers lifts JetStream's default of 1,000 consumers per stream on
// the streams agents create (short-lived catch-up) consumers on.
const maxConsumers = 1_000_000

// StreamConfigs returns every stream kanade uses.
func StreamConfigs(l StreamLimits) []jetstream.StreamConfig {
	return []jetstream.StreamConfig{
		{
			Name:              wire.StreamExec,
			Description:       "commands; one per subject (stop-the-bleed layer 1)",
			Subjects:          []string{wire.StreamExecSubjects},
			MaxMsgsPerSubject: 1,
			MaxAge:            l.ExecMaxAge,
			MaxBytes:          l.ExecMaxBytes,
			Discard:           jetstream.DiscardOld,
			Storage:           jetstream.FileStorage,
			AllowDirect:       true,
			MaxConsumers:      maxConsumers,
			// A kill replaces a command with a withdrawal instead
			// (wire.HeaderWithdrawn): nothing may take a pending
			// command away unseen.
			DenyDelete: true,
			DenyPurge:  true,
		},
		{
			Name:        wire.StreamResults,
			Description: "per-target results from agents, stored under their PC",
			Subjects:    []string{wire.StreamResultsSubjects},
			// Agents publish on results.<pc> (the body names the execution);
			// protocol 1 agents published on results.<exec>.<pc>, which the
			// stream stores under results.<pc> too (the projector checks
			// both forms). The broker keeps an index entry in memory for
			// every distinct subject a stream holds: one per result was
			// about 120 bytes of server memory for each result of the
			// retention period (10,000 agents × 100 executions: 120 MB).
			SubjectTransform: &jetstream.SubjectTransformConfig{Source: wire.ResultV1Wildcard, Destination: wire.ResultV1Stored},
			MaxAge:           l.ResultsMaxAge,
			MaxBytes:         l.ResultsMaxBytes,
			Discard:          jetstream.DiscardOld,
			Storage:          jetstream.FileStorage,
		},
		{
			Name:        wire.StreamOutput,
			Description: "live output chunks for late viewers",
			Subjects:    []string{wire.StreamOutputSubjects},
			// Subjects are output.<pc>: a bound per PC.
			MaxMsgsPerSubject: wire.OutputChunksPerPC,
			MaxMsgSize:        wire.MaxOutputChunkBytes,
			MaxAge:            l.OutputMaxAge,
			MaxBytes:          l.OutputMaxBytes,
			Discard:           jetstream.DiscardOld,
			Storage:           jetstream.FileStorage,
			MaxConsumers:      maxConsumers,
		},
		{
			Name:              wire.StreamInventory,
			Description:       "each PC's newest inventory; projected into the inventory tables",
			Subjects:          []string{wire.StreamInventorySubjects},
			MaxMsgsPerSubject: 1,
			MaxMsgSize:        wire.MaxInventoryBytes,
			MaxBytes:          l.InventoryMaxBytes,
			Discard:           jetstream.DiscardOld,
			Storage:           jetstream.FileStorage,
		},
		{
			Name:        wire.StreamAudit,
			Description: "who did what; projected into the audit log",
			Subjects:    []string{wire.StreamAuditSubjects},
			MaxAge:      l.AuditMaxAge,
			MaxBytes:    l.AuditMaxBytes,
			Discard:     jetstream.DiscardOld,
			Storage:     jetstream.FileStorage,
			// Events leave by age and size only. The broker refuses to
			// turn these off again once they are on.
			DenyDelete: true,
			DenyPurge:  true,
		},
		{
			Name:              wire.StreamHealth,
			Description:       "the health check's canary: one message per server",
			Subjects:          []string{wire.StreamHealthSubjects},
			MaxMsgsPerSubject: 1,
			MaxAge:            time.Hour,
			MaxBytes:          HealthMaxBytes,
			Discard:           jetstream.DiscardOld,
			Storage:           jetstream.FileStorage,
		},
	}
}

// KVConfigs returns every key-value bucket kanade uses.
func KVConfigs(l StreamLimits) []jetstream.KeyValueConfig {
	return []jetstream.KeyValueConfig{
		{Bucket: wire.KVScriptCurrent, Description: "job → pinned version", History: 5, MaxBytes: l.ScriptCurrentMaxBytes, Storage: jetstream.FileStorage},
		{Bucket: wire.KVScriptStatus, Description: "job → ACTIVE or REVOKED", History: 5, MaxBytes: l.ScriptStatusMaxBytes, Storage: jetstream.FileStorage},
		{Bucket: wire.KVFleet, Description: "fleet-wide switches (emergency stop)", History: 10, MaxBytes: l.FleetMaxBytes, Storage: jetstream.FileStorage},
	}
}

// ReleaseStoreConfig is the agent_releases Object Store (nats.go sets
// AllowDirect on its stream, which the agents' reads need).
func ReleaseStoreConfig(l StreamLimits) jetstream.ObjectStoreConfig {
	return jetstream.ObjectStoreConfig{Bucket: wire.ReleaseBucket, Description: "agent releases: one object per version and platform",
		MaxBytes: l.ReleasesMaxBytes, Storage: jetstream.FileStorage}
}

// provision creates or updates every stream and bucket. Those that
// shrink go first: the broker checks each update against what all
// streams reserve at that moment, so growing one while another still
// holds its larger reservation could exceed max_store.
func (b *Bus) provision(ctx context.Context, l StreamLimits) error {
	streams, buckets := StreamConfigs(l), KVConfigs(l)
	want := map[string]int64{}
	for _, cfg := range streams {
		want[cfg.Name] = cfg.MaxBytes
	}
	for _, cfg := range buckets {
		want[kvStream(cfg.Bucket)] = cfg.MaxBytes
	}
	releases := ReleaseStoreConfig(l)
	want[wire.ReleaseStream] = releases.MaxBytes
	shrinking := map[string]bool{}
	for name, maxBytes := range want {
		if s, err := b.JS.Stream(ctx, name); err == nil && s.CachedInfo().Config.MaxBytes > maxBytes {
			shrinking[name] = true
		}
	}
	for _, first := range []bool{true, false} {
		for _, cfg := range streams {
			if shrinking[cfg.Name] != first {
				continue
			}
			if _, err := b.JS.CreateOrUpdateStream(ctx, cfg); err != nil {
				return fmt.Errorf("provision stream %s: %w", cfg.Name, err)
			}
		}
		for _, cfg := range buckets {
			if shrinking[kvStream(cfg.Bucket)] != first {
				continue
			}
			if _, err := b.JS.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
				return fmt.Errorf("provision bucket %s: %w", cfg.Bucket, err)
			}
		}
		if shrinking[wire.ReleaseStream] == first {
			if _, err := b.JS.CreateOrUpdateObjectStore(ctx, releases); err != nil {
				return fmt.Errorf("provision bucket %s: %w", releases.Bucket, err)
			}
		}
	}
	return nil
}
