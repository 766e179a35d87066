package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kanadehq/kanade/agent/enroll"
	"github.com/kanadehq/kanade/app/certs"
	"github.com/kanadehq/kanade/app/config"
)

// TestBrokerTLS: with [nats] tls = "auto" agents enroll and work over
// TLS, pinning the CA from the bundle; plain-text clients and brokers of
// another CA are refused; a new server certificate (same CA) needs no
// re-enrollment.
func TestBrokerTLS(t *testing.T) {
	skipIfShort(t)
	data := t.TempDir()
	listen := freeAddr(t)
	withTLS := func(c *config.Config) { c.NATS.TLS = "auto" }
	s := startServerWith(t, data, listen, withTLS)
	if !strings.HasPrefix(s.NATSURL, "tls://") {
		t.Fatalf("agents are told to dial %s, want tls://", s.NATSURL)
	}
	bundle, err := os.ReadFile(s.Creds)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join(data, "tls", certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	f, err := enroll.ParseEnrollmentFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.CA, ca) {
		t.Fatalf("the bundle carries CA %q, want DATA/tls/ca.pem", f.CA)
	}

	agentData := t.TempDir()
	a := startAgent(t, s, "tls-pc", []string{"lab"}, agentData)
	s.waitOnline(t, "tls-pc")
	e := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"tls-pc"}}, "shell": "sh", "script": "echo over-tls"})
	e = s.waitExec(t, e.ExecID, completed)
	if got := e.Targets[0]; got.State != "succeeded" || !strings.Contains(got.Stdout, "over-tls") {
		t.Fatalf("run over TLS: %+v", got)
	}

	t.Run("plain text is refused", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", listen, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		info, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(info, `"tls_required":true`) {
			t.Fatalf("INFO does not require TLS: %s", info)
		}
		if _, err := c.Write([]byte("CONNECT {\"verbose\":false}\r\nPING\r\n")); err != nil {
			return // closed already
		}
		rest, _ := io.ReadAll(r)
		if strings.Contains(string(rest), "PONG") {
			t.Fatalf("a plain-text client was served: %q", rest)
		}
	})

	t.Run("a broker of another CA is refused", func(t *testing.T) {
		other, err := certs.Auto(filepath.Join(t.TempDir(), "tls"), []string{"127.0.0.1"}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		forged := append(bytes.Clone(bundle[:bytes.Index(bundle, ca)]), other.CA()...)
		path := filepath.Join(t.TempDir(), "bundle")
		if err := os.WriteFile(path, forged, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var logs bytes.Buffer
		_, err = enroll.Setup(ctx, s.NATSURL, path, t.TempDir(), enroll.Request{PCID: "forged-pc", Hostname: "forged-pc"}, slogTo(&logs))
		if err == nil {
			t.Fatal("enrolled against a broker whose certificate the pinned CA did not sign")
		}
		if !strings.Contains(logs.String(), "certificate") {
			t.Fatalf("the log does not name the certificate problem:\n%s", logs.String())
		}
	})

	// Rotation: the server certificate is replaced (here: removed, so the
	// restart makes a new one from the same CA). The agent reconnects with
	// the credential it has.
	a.stop()
	leaf := func() []byte {
		b, err := os.ReadFile(filepath.Join(data, "tls", "server.pem"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	before := leaf()
	s.stop()
	if err := os.Remove(filepath.Join(data, "tls", "server.pem")); err != nil {
		t.Fatal(err)
	}
	keyBefore, err := os.ReadFile(filepath.Join(agentData, "identity.nk"))
	if err != nil {
		t.Fatal(err)
	}
	s = startServerWith(t, data, listen, withTLS)
	if bytes.Equal(before, leaf()) {
		t.Fatal("the server certificate was not replaced")
	}
	startAgent(t, s, "tls-pc", []string{"lab"}, agentData)
	s.waitOnline(t, "tls-pc")
	e = s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"tls-pc"}}, "shell": "sh", "script": "echo rotated"})
	if got := s.waitExec(t, e.ExecID, completed).Targets[0]; got.State != "succeeded" {
		t.Fatalf("run after rotation: %+v", got)
	}
	keyAfter, err := os.ReadFile(filepath.Join(agentData, "identity.nk"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(keyBefore, keyAfter) {
		t.Fatal("the agent changed its identity across the certificate rotation")
	}
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// TestBrokerPlainTextOffLoopback: outside dev mode a broker listening
// beyond loopback without TLS does not start unless plain text is accepted.
func TestBrokerPlainTextOffLoopback(t *testing.T) {
	cfg := config.Default()
	cfg.Server.Data = t.TempDir()
	cfg.Server.HTTP = "127.0.0.1:0"
	cfg.NATS.Listen = "0.0.0.0:0"
	cfg.OIDC.Issuer, cfg.OIDC.ClientID, cfg.OIDC.RedirectURL = "http://127.0.0.1:1", "kanade", "http://127.0.0.1:8080/auth/callback"
	cfg.OIDC.DefaultRole = "viewer"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	err := serve(context.Background(), cfg, serveOptions{Stdout: io.Discard, Log: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "--nats-tls auto") || !strings.Contains(err.Error(), "--insecure-plaintext") {
		t.Fatalf("serve = %v, want a refusal naming --nats-tls auto and --insecure-plaintext", err)
	}
	if entries, _ := os.ReadDir(cfg.Server.Data); len(entries) != 0 {
		t.Fatalf("the refused start wrote %d entries into DATA", len(entries))
	}
}

// TestWebTLS: [server] tls_cert and tls_key serve the GUI and API over HTTPS.
func TestWebTLS(t *testing.T) {
	skipIfShort(t)
	dir := filepath.Join(t.TempDir(), "web-tls")
	src, err := certs.Auto(dir, []string{"127.0.0.1"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := startServerWith(t, t.TempDir(), "", func(c *config.Config) {
		c.Server.TLSCert, c.Server.TLSKey = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	})
	if !strings.HasPrefix(s.URL, "https://") {
		t.Fatalf("the banner says %s, want https://", s.URL)
	}
	pool, err := certs.Pool(src.CA())
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	resp, err := client.Get(s.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz over HTTPS = %d", resp.StatusCode)
	}
	if resp, err := http.Get("http://" + strings.TrimPrefix(s.URL, "https://") + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP was served")
		}
	}
}
