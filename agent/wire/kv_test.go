package wire

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"
)

func TestKVValue(t *testing.T) {
	hdr := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	tests := []struct {
		name     string
		get      func(string) string
		want     string
		notFound bool
		err      bool
	}{
		{"value", hdr("Nats-Stream", "KV_fleet", "Nats-Sequence", "3"), "v", false, false},
		{"no headers", hdr(), "v", false, false},
		{"no such message", hdr("Status", "404", "Description", "Message Not Found"), "", true, false},
		{"deleted", hdr("KV-Operation", "DEL"), "", true, false},
		{"purged", hdr("KV-Operation", "PURGE"), "", true, false},
		{"other status", hdr("Status", "408", "Description", "Request Timeout"), "", false, true},
		{"unknown operation", hdr("KV-Operation", "MERGE"), "", false, true},
	}
	for _, tt := range tests {
		v, err := KVValue(tt.get, []byte("v"))
		switch {
		case tt.notFound && !errors.Is(err, ErrKVNotFound):
			t.Errorf("%s: err = %v, want ErrKVNotFound", tt.name, err)
		case tt.err && (err == nil || errors.Is(err, ErrKVNotFound)):
			t.Errorf("%s: err = %v, want another error", tt.name, err)
		case !tt.notFound && !tt.err && (err != nil || string(v) != tt.want):
			t.Errorf("%s: = %q, %v; want %q", tt.name, v, err, tt.want)
		}
	}
}

// A signed value verifies only under its own bucket and key, unaltered,
// with a trusted key.
func TestVerifyKV(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	keys := []CommandKey{{Kid: KeyID(pub), Key: pub}}
	now := time.Now()
	sign := func(priv ed25519.PrivateKey, bucket, key, v string) func(string) string {
		h := Sign(priv, KVSubject(bucket, key), []byte(v), now)
		return func(k string) string { return h[k] }
	}
	tests := []struct {
		name           string
		get            func(string) string
		bucket, key, v string
		wantErr        bool
	}{
		{"signed", sign(priv, KVScriptStatus, "j1", StatusActive), KVScriptStatus, "j1", StatusActive, false},
		{"unsigned", func(string) string { return "" }, KVScriptStatus, "j1", StatusActive, true},
		{"other key", sign(other, KVScriptStatus, "j1", StatusActive), KVScriptStatus, "j1", StatusActive, true},
		{"moved to another job", sign(priv, KVScriptStatus, "j2", StatusActive), KVScriptStatus, "j1", StatusActive, true},
		{"moved to another bucket", sign(priv, KVScriptCurrent, "j1", StatusActive), KVScriptStatus, "j1", StatusActive, true},
		{"altered", sign(priv, KVScriptStatus, "j1", StatusRevoked), KVScriptStatus, "j1", StatusActive, true},
	}
	for _, tt := range tests {
		err := VerifyKV(ed25519.Verify, keys, tt.bucket, tt.key, tt.get, []byte(tt.v), now.Add(24*time.Hour))
		if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrKVUnverified)) {
			t.Errorf("%s: err = %v, want error %v (ErrKVUnverified)", tt.name, err, tt.wantErr)
		}
	}
}
