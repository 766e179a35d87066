// Package events is the in-process broker that tells live pages (SSE)
// that something changed. A notification carries no data: subscribers
// re-read what they show, and a burst of changes collapses into one
// pending notification per subscriber.
package events

import "sync"

// Topics.
const (
	Agents      = "agents"
	Executions  = "executions"
	Enrollments = "enrollments"
	Audit       = "audit"
)

// Execution is the topic of one execution.
func Execution(execID string) string { return "exec:" + execID }

// Broker fans notifications out to subscribers.
type Broker struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

// New returns an empty broker.
func New() *Broker { return &Broker{subs: map[string]map[chan struct{}]struct{}{}} }

// Subscribe returns a channel that receives a value after changes to
// topic (at most one pending), and a function that ends the subscription.
func (b *Broker) Subscribe(topic string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	if b.subs[topic] == nil {
		b.subs[topic] = map[chan struct{}]struct{}{}
	}
	b.subs[topic][ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		delete(b.subs[topic], ch)
		if len(b.subs[topic]) == 0 {
			delete(b.subs, topic)
		}
		b.mu.Unlock()
	}
}

// Publish notifies the subscribers of topic without blocking.
func (b *Broker) Publish(topic string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs[topic] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Subscribers counts the current subscriptions (for metrics).
func (b *Broker) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, s := range b.subs {
		n += len(s)
	}
	return n
}
