package health

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/kanadehq/kanade/app/bus"
)

// System is what Admin › System and GET /api/system show: the health
// report, every stream and bucket against its limit with its consumers'
// backlog, the volumes, the database's size, and which replica leads what.
type System struct {
	Health   Report             `json:"health"`
	Broker   Broker             `json:"broker"`
	Streams  []bus.StreamStatus `json:"streams"`
	Database Database           `json:"database"`
	Leaders  []Leader           `json:"leaders"`
}

// Broker describes the broker and what its streams reserve.
type Broker struct {
	Embedded bool `json:"embedded"`
	// StoreDir, MaxStore, Reserved and Headroom: the embedded broker's
	// store and storage plan (zero with an external broker).
	StoreDir string `json:"store_dir,omitempty"`
	MaxStore int64  `json:"max_store_bytes,omitempty"`
	Reserved int64  `json:"reserved_bytes,omitempty"`
	Headroom int64  `json:"headroom_bytes,omitempty"`
	// Restarts counts the JetStream restarts after write errors.
	Restarts         int        `json:"jetstream_restarts"`
	LastRestart      *time.Time `json:"last_restart,omitempty"`
	LastRestartError string     `json:"last_restart_error,omitempty"`
}

// Database is the database's driver and size.
type Database struct {
	Driver string `json:"driver"`
	Bytes  int64  `json:"bytes"`
	Error  string `json:"error,omitempty"`
}

// Leader says which replica does one kind of work.
type Leader struct {
	Work    string `json:"work"`
	Replica string `json:"replica"`
}

// leadWork is the work one replica does for all: a single server does
// all of it.
var leadWork = []string{"rollout engine", "scheduler", "results, inventory and audit projectors", "expiry of pending targets"}

// System gathers the System page's facts.
func (m *Monitor) System(ctx context.Context) (System, error) {
	s := System{Health: m.Check(ctx)}
	if b := m.o.Bus; b != nil {
		p := b.Plan()
		s.Broker = Broker{Embedded: b.Embedded(), StoreDir: p.Dir, MaxStore: p.MaxStore, Headroom: p.Headroom}
		if b.Embedded() {
			s.Broker.Reserved = p.Reserved()
		}
		n, last, err := b.Restarts()
		s.Broker.Restarts = n
		if !last.IsZero() {
			s.Broker.LastRestart = &last
		}
		if err != nil {
			s.Broker.LastRestartError = err.Error()
		}
		streams, err := b.Streams(ctx, true)
		if err != nil {
			return s, fmt.Errorf("health: %w", err)
		}
		s.Streams = streams
	}
	if st := m.o.Store; st != nil {
		s.Database.Driver = st.Driver()
		n, err := st.Size(ctx)
		s.Database.Bytes = n
		if err != nil {
			s.Database.Error = err.Error()
		}
	}
	for _, w := range leadWork {
		s.Leaders = append(s.Leaders, Leader{Work: w, Replica: bus.ThisServer})
	}
	return s, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
