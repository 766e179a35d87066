package certs

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// handshake dials a TLS listener served from s and verifies it against caPEM.
func handshake(t *testing.T, s *Source, caPEM []byte, name string) error {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", s.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	pool, err := Pool(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: name, Time: s.now})
	if err != nil {
		return err
	}
	return c.Close()
}

func TestAuto(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s, err := Auto(dir, []string{"kanade.example", "127.0.0.1"}, clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	ca := s.CA()
	if err := handshake(t, s, ca, "kanade.example"); err != nil {
		t.Fatalf("handshake with the CA: %v", err)
	}
	if err := handshake(t, s, ca, "other.example"); err == nil {
		t.Fatal("a name outside the certificate was accepted")
	}
	for _, f := range []string{CAFile, caKeyFile, serverFile, serverKeyFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, st.Mode().Perm())
		}
	}

	// Another CA does not verify it.
	other, err := Auto(filepath.Join(t.TempDir(), "tls"), []string{"kanade.example"}, clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, s, other.CA(), "kanade.example"); err == nil {
		t.Fatal("a certificate of another CA was accepted")
	}

	// A restart keeps the CA and the certificate.
	serialBefore := s.Leaf().SerialNumber
	s2, err := Auto(dir, []string{"kanade.example", "127.0.0.1"}, clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(s2.CA()) != string(ca) || s2.Leaf().SerialNumber.Cmp(serialBefore) != 0 {
		t.Fatal("a restart replaced the CA or the certificate")
	}

	tests := []struct {
		name  string
		now   time.Time
		hosts []string
		renew bool
	}{
		{"well before the end", now.Add(ServerLifetime - RenewBefore - 24*time.Hour), []string{"kanade.example", "127.0.0.1"}, false},
		{"near the end", now.Add(ServerLifetime - RenewBefore + time.Hour), []string{"kanade.example", "127.0.0.1"}, true},
		{"a new host", now, []string{"kanade.example", "127.0.0.1", "10.0.0.7"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cur, err := Auto(dir, tc.hosts, func() time.Time { return tc.now }, nil)
			if err != nil {
				t.Fatal(err)
			}
			before := cur.Leaf().SerialNumber
			if err := cur.Refresh(); err != nil {
				t.Fatal(err)
			}
			renewed := before.Cmp(serialBefore) != 0
			if renewed != tc.renew {
				t.Fatalf("renewed = %v, want %v", renewed, tc.renew)
			}
			if string(cur.CA()) != string(ca) {
				t.Fatal("the CA changed: agents would have to re-enroll")
			}
			// Agents that pinned the CA at enrollment still verify it.
			if err := handshake(t, cur, ca, "kanade.example"); err != nil {
				t.Fatalf("handshake after renewal: %v", err)
			}
			serialBefore = cur.Leaf().SerialNumber
		})
	}
}

func TestAuto_HostileFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, CAFile), []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Auto(dir, []string{"localhost"}, nil, nil); err == nil {
		t.Fatal("a CA file without its key was accepted")
	}
	if err := os.WriteFile(filepath.Join(dir, caKeyFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Auto(dir, []string{"localhost"}, nil, nil); err == nil {
		t.Fatal("a broken CA was accepted")
	}
}

func TestFiles_ReloadsReplacedCertificate(t *testing.T) {
	// Make two certificates from one CA with auto mode, then serve them as an operator's files.
	a, err := Auto(filepath.Join(t.TempDir(), "a"), []string{"localhost"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile, caFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), filepath.Join(dir, "ca.pem")
	copyFile := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(filepath.Join(a.dir, serverFile), certFile)
	copyFile(filepath.Join(a.dir, serverKeyFile), keyFile)
	copyFile(filepath.Join(a.dir, CAFile), caFile)
	f, err := Files(certFile, keyFile, caFile, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, f, f.CA(), "localhost"); err != nil {
		t.Fatal(err)
	}
	first := f.Leaf().SerialNumber

	// The operator replaces the files; Refresh picks them up.
	b, err := Auto(a.dir, []string{"localhost", "kanade.example"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	copyFile(filepath.Join(b.dir, serverFile), certFile)
	copyFile(filepath.Join(b.dir, serverKeyFile), keyFile)
	future := time.Now().Add(time.Minute)
	for _, p := range []string{certFile, keyFile} {
		if err := os.Chtimes(p, future, future); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Refresh(); err != nil {
		t.Fatal(err)
	}
	if f.Leaf().SerialNumber.Cmp(first) == 0 {
		t.Fatal("the replaced certificate was not loaded")
	}
	if err := handshake(t, f, f.CA(), "localhost"); err != nil {
		t.Fatal(err)
	}

	if _, err := Files(filepath.Join(dir, "missing.pem"), keyFile, "", nil, nil); err == nil {
		t.Fatal("a missing certificate file was accepted")
	}
	if _, err := Files(certFile, keyFile, keyFile, nil, nil); err == nil {
		t.Fatal("a CA file without a certificate was accepted")
	}
}

func TestHosts(t *testing.T) {
	got := Hosts("10.1.2.3:4222", []string{"kanade.corp"})
	want := []string{"kanade.corp", "localhost", "127.0.0.1", "::1", "10.1.2.3"}
	if len(got) != len(want) {
		t.Fatalf("Hosts = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Hosts = %v, want %v", got, want)
		}
	}
	all := Hosts("0.0.0.0:4222", nil)
	name, _ := os.Hostname()
	found := false
	for _, h := range all {
		if h == name {
			found = true
		}
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			t.Fatalf("Hosts includes the unspecified address: %v", all)
		}
	}
	if !found {
		t.Fatalf("Hosts for 0.0.0.0 lacks the host name %q: %v", name, all)
	}
}
