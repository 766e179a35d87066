package bus

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
)

// ResponsePrefix starts every reply subject the broker maps a request that
// came through a service import to. A responder that answers anything
// else would publish inside kanade's account on a subject the requester
// chose.
const ResponsePrefix = "_R_."

// Requester is who sent a request through a shared service import (the
// broker's Nats-Request-Info header).
type Requester struct {
	Account string `json:"acc"`
	User    string `json:"user"` // the user's public key
	Name    string `json:"name_tag"`
}

// ErrReply refuses a request whose reply subject was not mapped by the
// broker, or that does not say who sent it.
var ErrReply = errors.New("refused: the request did not come through the agents' service import")

// CheckRequest is what every responder to endpoints calls before it
// answers: the reply subject must be one the broker mapped back into the
// importing account, the import must share the requester's identity, and,
// with the embedded broker, the request must come from the agents'
// account. It returns the requester.
func (b *Bus) CheckRequest(m *nats.Msg) (Requester, error) {
	var r Requester
	if !strings.HasPrefix(m.Reply, ResponsePrefix) {
		return r, fmt.Errorf("%w (reply subject %q)", ErrReply, m.Reply)
	}
	info := m.Header.Get("Nats-Request-Info")
	if info == "" {
		return r, fmt.Errorf("%w (no requester information)", ErrReply)
	}
	if err := json.Unmarshal([]byte(info), &r); err != nil {
		return r, fmt.Errorf("%w (requester information: %v)", ErrReply, err)
	}
	if b.ID != nil && r.Account != b.ID.AgentAccountPublicKey() {
		return r, fmt.Errorf("%w (account %s)", ErrReply, r.Account)
	}
	return r, nil
}
