package enroll

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// testCA makes a CA and a server certificate for 127.0.0.1 signed by it.
func testCA(t *testing.T) (caPEM []byte, server tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "broker"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// handshake dials a TLS server presenting cert, verifying with tr.
func handshake(t *testing.T, tr *trust, cert tls.Certificate, name string) error {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	cfg := tr.config()
	cfg.ServerName = name
	c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
	if err != nil {
		return err
	}
	return c.Close()
}

func TestTrust_FollowsTheCurrentCA(t *testing.T) {
	caA, certA := testCA(t)
	caB, certB := testCA(t)
	var failures []error
	tr := &trust{onFail: func(err error) { failures = append(failures, err) }}
	if err := tr.set(caA); err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, tr, certA, "127.0.0.1"); err != nil {
		t.Fatalf("CA A, certificate A: %v", err)
	}
	if err := handshake(t, tr, certA, "kanade.example"); err == nil {
		t.Fatal("a certificate for another name was accepted")
	}
	if err := handshake(t, tr, certB, "127.0.0.1"); err == nil {
		t.Fatal("a certificate of another CA was accepted")
	}
	if len(failures) != 2 {
		t.Fatalf("onFail heard %d failures, want 2: %v", len(failures), failures)
	}
	if cause, _ := Diagnose(failures[1]); cause != CauseCertificate {
		t.Fatalf("Diagnose(%v) = %s, want certificate", failures[1], cause)
	}
	// A new bundle with CA B: the same configuration now trusts B only.
	if err := tr.set(caB); err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, tr, certB, "127.0.0.1"); err != nil {
		t.Fatalf("after the CA changed: %v", err)
	}
	if err := handshake(t, tr, certA, "127.0.0.1"); err == nil {
		t.Fatal("the previous CA is still trusted")
	}
	if err := tr.set([]byte("junk")); err == nil {
		t.Fatal("a CA that is not PEM was accepted")
	}
	// Pinned CA: the connection must be TLS.
	var o nats.Options
	if err := tr.option()(&o); err != nil || !o.Secure || o.TLSConfig == nil {
		t.Fatalf("pinned: secure=%v config=%v err=%v", o.Secure, o.TLSConfig != nil, err)
	}
	o = nats.Options{}
	if err := (&trust{}).option()(&o); err != nil {
		t.Fatal(err)
	}
	if o.Secure {
		t.Fatal("without a CA the scheme must decide, not the option")
	}
}

func TestParseEnrollmentFile_CA(t *testing.T) {
	ca, _ := testCA(t)
	base := "-----BEGIN NATS USER JWT-----\neyJ0.eyJ1.sig\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\nSUAFAKE\n------END USER NKEY SEED------\n\n" +
		tokenBegin + "\nkanade-enroll-secret\n" + tokenEnd + "\n"
	tests := []struct {
		name    string
		body    string
		wantCA  bool
		wantErr string
	}{
		{"no CA", base, false, ""},
		{"with CA", base + "\n# The broker's TLS CA\n" + string(ca), true, ""},
		{"broken CA", base + "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", false, "broker CA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseEnrollmentFile([]byte(tc.body))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (len(f.CA) > 0) != tc.wantCA || (tc.wantCA && string(f.CA) != string(ca)) {
				t.Fatalf("CA = %q", f.CA)
			}
			if f.Token != "kanade-enroll-secret" {
				t.Fatalf("token = %q", f.Token)
			}
		})
	}
}

func TestDiagnose(t *testing.T) {
	tests := []struct {
		err  error
		want Cause
	}{
		{nil, CauseNone},
		{x509.UnknownAuthorityError{}, CauseCertificate},
		{fmt.Errorf("tls: failed to verify certificate: %w", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "a"}), CauseCertificate},
		{nats.ErrSecureConnWanted, CauseNoTLS},
		{nats.ErrSecureConnRequired, CauseTLSRequired},
		{nats.ErrAuthorization, CauseRefused},
		{errors.New("nats: Authorization Violation"), CauseRefused},
		{nats.ErrAuthRevoked, CauseRefused},
		{nats.ErrAuthExpired, CauseExpired},
		{errors.New("dial tcp 127.0.0.1:4222: connect: connection refused"), CauseUnreachable},
		{errors.New("EOF"), CauseOther},
	}
	for _, tc := range tests {
		cause, hint := Diagnose(tc.err)
		if cause != tc.want {
			t.Errorf("Diagnose(%v) = %q, want %q", tc.err, cause, tc.want)
		}
		if cause != CauseNone && cause != CauseOther && hint == "" {
			t.Errorf("Diagnose(%v): no advice", tc.err)
		}
	}
}

func TestWaitOrChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bundle")
	if err := os.WriteFile(path, []byte("a"), 0o600); err != nil {
		t.Fatal(err)
	}
	read := stamp(path)
	if !waitOrChange(t.Context(), path, "another version", time.Hour) {
		t.Fatal("a bundle replaced before the wait did not end it")
	}
	done := make(chan bool, 1)
	go func() { done <- waitOrChange(t.Context(), path, read, time.Hour) }()
	later := time.Now().Add(time.Minute)
	if err := os.WriteFile(path, []byte("bb"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(path, later, later)
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("waitOrChange = false")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a replaced bundle did not end the wait")
	}
}
