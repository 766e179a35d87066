package wire

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	keys := []CommandKey{{Kid: KeyID(pub), Key: pub}}
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"exec_id":"e1"}`)
	subj := CommandPCSubject("pc1", "j")
	good := Sign(priv, subj, body, now)
	with := func(h map[string]string, k, v string) map[string]string {
		c := map[string]string{}
		for a, b := range h {
			c[a] = b
		}
		c[k] = v
		return c
	}
	tests := []struct {
		name    string
		hdr     map[string]string
		subject string
		body    []byte
		now     time.Time
		maxAge  time.Duration
		want    error
	}{
		{"valid", good, subj, body, now, 0, nil},
		{"valid within max age", good, subj, body, now.Add(4 * time.Minute), MaxControlAge, nil},
		{"unsigned", map[string]string{}, subj, body, now, 0, ErrUnsigned},
		{"unknown key", Sign(other, subj, body, now), subj, body, now, 0, ErrUnknownKey},
		{"forged with a trusted kid", with(Sign(other, subj, body, now), HeaderKid, KeyID(pub)), subj, body, now, 0, ErrBadSig},
		{"altered body", good, subj, []byte(`{"exec_id":"e2"}`), now, 0, ErrBadSig},
		{"moved to another subject", good, CommandAllSubject("j"), body, now, 0, ErrBadSig},
		{"altered time", with(good, HeaderSigAt, "1"), subj, body, now, 0, ErrBadSig},
		{"too old (replayed kill)", good, subj, body, now.Add(6 * time.Minute), MaxControlAge, ErrTooOld},
		{"from the future", good, subj, body, now.Add(-MaxClockSkew - time.Minute), 0, ErrFuture},
		{"garbage signature", with(good, HeaderSig, "!!"), subj, body, now, 0, ErrBadSig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(keys, tt.subject, func(k string) string { return tt.hdr[k] }, tt.body, tt.now, tt.maxAge)
			if !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}
