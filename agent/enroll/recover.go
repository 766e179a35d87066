package enroll

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// trust is the CA an agent verifies the broker against. It can change
// while the agent runs (a replaced enrollment bundle with the CA of a
// reinstalled server), so the TLS configuration asks it on every
// handshake instead of holding a fixed pool.
type trust struct {
	mu   sync.RWMutex
	pool *x509.CertPool // nil: the system's roots
	pem  []byte
	// onFail hears of every failed verification: nats.go reports no
	// error of a reconnect's TLS handshake.
	onFail func(error)
}

func (t *trust) set(caPEM []byte) error {
	var pool *x509.CertPool
	if len(caPEM) > 0 {
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return errors.New("the broker CA is not a PEM certificate")
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pool, t.pem = pool, caPEM
	return nil
}

func (t *trust) pinned() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.pool != nil
}

// config verifies the broker's chain and name against the current CA (the
// standard check, done in VerifyConnection so the CA can change).
func (t *trust) config() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // verified below, against the current CA
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tls: the broker sent no certificate")
			}
			t.mu.RLock()
			roots := t.pool
			t.mu.RUnlock()
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: cs.ServerName})
			if err != nil && t.onFail != nil {
				t.onFail(err)
			}
			return err
		},
	}
}

// option makes a connection use t. With a pinned CA the connection must
// be TLS (a broker speaking plain text is refused); without one, TLS is
// used when the URL or the broker asks for it, verified against the
// system's roots.
func (t *trust) option() nats.Option {
	return func(o *nats.Options) error {
		o.TLSConfig = t.config()
		if t.pinned() {
			o.Secure = true
		}
		return nil
	}
}

// recovery is what a keeper needs to enroll again on its own.
type recovery struct {
	url, credsPath string
	req            Request
	trust          *trust
	kick           chan Cause
	// lastErr is the connection error last logged, so a broker that keeps
	// refusing does not fill the log with the same line.
	lastErr string
}

// ConnError takes an error of the agent's broker connection: it is logged
// with its cause and what to do, and a refused, expired or unverifiable
// credential makes the keeper enroll again (Run does it).
func (k *Keeper) ConnError(err error) {
	if err == nil {
		return
	}
	cause, hint := Diagnose(err)
	k.mu.Lock()
	repeated := k.rec != nil && k.rec.lastErr == err.Error()
	if k.rec != nil {
		k.rec.lastErr = err.Error()
	}
	k.mu.Unlock()
	switch {
	case repeated || cause == CauseOther:
		// The worker logs these itself.
	case cause == CauseUnreachable:
		k.log.Warn("the broker cannot be reached", "err", err, "what_to_do", hint)
	default:
		k.log.Error("the broker connection failed", "err", err, "cause", string(cause), "what_to_do", hint)
	}
	switch cause {
	case CauseRefused, CauseExpired, CauseCertificate, CauseNoTLS, CauseTLSRequired:
		if k.rec != nil {
			select {
			case k.rec.kick <- cause:
			default:
			}
		}
	}
}

// reenroll re-reads the enrollment bundle (an admin may have replaced it)
// and asks for a credential again with the agent's own key, retrying with
// backoff until it gets one or ctx ends. A revoked key keeps being refused
// until an admin acts; the agent says so and keeps asking, slowly.
func (k *Keeper) reenroll(ctx context.Context, cause Cause) {
	r := k.rec
	wait := 5 * time.Second
	for attempt := 1; ; attempt++ {
		read := stamp(r.credsPath)
		err := k.reenrollOnce(ctx, cause)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			return
		}
		if strings.Contains(err.Error(), "revoked") {
			wait = max(wait, 10*time.Minute)
			k.log.Error("this PC's key was revoked: the broker refuses it and enrollment is refused; an admin can re-admit it (Agents → the PC → Rebind) or it must be reinstalled with a new key",
				"err", err, "retry_in", wait)
		} else {
			k.log.Error("enrolling again failed; will retry", "attempt", attempt, "err", err, "retry_in", wait, "credentials", r.credsPath)
		}
		if !waitOrChange(ctx, r.credsPath, read, wait) {
			return
		}
		wait = min(wait*2, 30*time.Minute)
	}
}

// stamp identifies the version of a file on disk ("" when unreadable).
func stamp(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprint(st.ModTime().UnixNano(), st.Size())
}

// waitOrChange waits d, or less when the file at path is no longer the
// version read (an admin put a new enrollment bundle in place); false
// when ctx ended.
func waitOrChange(ctx context.Context, path, read string, d time.Duration) bool {
	if stamp(path) != read {
		return true
	}
	end := time.NewTimer(d)
	defer end.Stop()
	poll := time.NewTicker(2 * time.Second)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-end.C:
			return true
		case <-poll.C:
			if stamp(path) != read {
				return true
			}
		}
	}
}

func (k *Keeper) reenrollOnce(ctx context.Context, cause Cause) error {
	r := k.rec
	b, err := os.ReadFile(r.credsPath)
	if err != nil {
		return fmt.Errorf("re-read the enrollment bundle: %w", err)
	}
	f, err := ParseEnrollmentFile(b)
	if err != nil {
		return fmt.Errorf("re-read the enrollment bundle %s: %w", r.credsPath, err)
	}
	if err := r.trust.set(f.CA); err != nil {
		return fmt.Errorf("enrollment bundle %s: %w", r.credsPath, err)
	}
	k.log.Warn("asking the server to enroll this PC again with its own key", "cause", string(cause), "credentials", r.credsPath)
	c, err := enroll(ctx, r.url, f, k.kp, r.req, k.log, nats.RetryOnFailedConnect(false))
	if err != nil {
		return err
	}
	if err := SaveCredential(k.dataDir, c); err != nil {
		return fmt.Errorf("save credential: %w", err)
	}
	k.mu.Lock()
	k.cred, k.obtained = c, time.Now()
	k.rec.lastErr = ""
	k.mu.Unlock()
	k.log.Info("enrolled again: the agent reconnects with its new credential", "groups", strings.Join(c.Groups, ","), "expiry", c.Expiry)
	return nil
}
