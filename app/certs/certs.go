// Package certs provides TLS certificates for kanade's listeners: files an
// operator supplies (the broker's or the web listener's), or, for the
// embedded broker, a private CA and a server certificate that kanade makes
// and renews itself. The CA is what enrollment bundles carry, so agents pin
// it instead of trusting the system's roots.
//
// The listener asks for the certificate on every handshake, so a renewed or
// replaced certificate takes effect without a restart and without touching
// connected clients.
package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Files below the TLS directory (DATA/tls) in auto mode.
const (
	CAFile        = "ca.pem"
	caKeyFile     = "ca-key.pem"
	serverFile    = "server.pem"
	serverKeyFile = "server-key.pem"
)

// Lifetimes of what auto mode makes. The server certificate is renewed
// when less than RenewBefore of it is left (checked at start and by Run).
const (
	CALifetime     = 10 * 365 * 24 * time.Hour
	ServerLifetime = 365 * 24 * time.Hour
	RenewBefore    = 30 * 24 * time.Hour
)

// Source holds the broker's current certificate.
type Source struct {
	mu   sync.RWMutex
	cert *tls.Certificate
	leaf *x509.Certificate
	ca   []byte

	// auto mode
	dir   string
	hosts []string
	// files mode
	certFile, keyFile, caFile string
	mtime                     time.Time

	now func() time.Time
	log *slog.Logger
}

// Auto loads, makes or renews the private CA and the server certificate in
// dir. hosts are the server certificate's names and addresses; a
// certificate that lacks one of them is replaced.
func Auto(dir string, hosts []string, now func() time.Time, log *slog.Logger) (*Source, error) {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Source{dir: dir, hosts: slices.Compact(slices.Sorted(slices.Values(hosts))), now: now, log: log}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	if err := s.Refresh(); err != nil {
		return nil, err
	}
	return s, nil
}

// Files uses an operator's certificate and key. caFile (optional) is the
// CA that agents are given to verify the certificate; without it they use
// the system's roots.
func Files(certFile, keyFile, caFile string, now func() time.Time, log *slog.Logger) (*Source, error) {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Source{certFile: certFile, keyFile: keyFile, caFile: caFile, now: now, log: log}
	if err := s.Refresh(); err != nil {
		return nil, err
	}
	return s, nil
}

// TLSConfig is the broker's client-listener configuration.
func (s *Source) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			s.mu.RLock()
			defer s.mu.RUnlock()
			return s.cert, nil
		},
	}
}

// CA returns the PEM of the CA agents pin (nil: the system's roots).
func (s *Source) CA() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return bytes.Clone(s.ca)
}

// Leaf returns the certificate the broker presents.
func (s *Source) Leaf() *x509.Certificate {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.leaf
}

// Run refreshes the certificate every interval until ctx is done: auto
// mode renews it before it expires; files mode picks up replaced files.
func (s *Source) Run(done <-chan struct{}, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if err := s.Refresh(); err != nil {
				s.log.Error("TLS certificate", "err", err)
			}
		}
	}
}

// Refresh reloads the certificate; auto mode renews a server certificate
// that is near its end or lacks a host.
func (s *Source) Refresh() error {
	if s.dir != "" {
		return s.refreshAuto()
	}
	return s.refreshFiles()
}

func (s *Source) refreshFiles() error {
	st, err := os.Stat(s.certFile)
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	kst, err := os.Stat(s.keyFile)
	if err != nil {
		return fmt.Errorf("key: %w", err)
	}
	mtime := st.ModTime()
	if kst.ModTime().After(mtime) {
		mtime = kst.ModTime()
	}
	s.mu.RLock()
	same := s.cert != nil && mtime.Equal(s.mtime)
	s.mu.RUnlock()
	if same {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		return fmt.Errorf("certificate %s and key %s: %w", s.certFile, s.keyFile, err)
	}
	var ca []byte
	if s.caFile != "" {
		if ca, err = os.ReadFile(s.caFile); err != nil {
			return fmt.Errorf("CA: %w", err)
		}
		if _, err := Pool(ca); err != nil {
			return fmt.Errorf("CA %s: %w", s.caFile, err)
		}
	}
	if cert.Leaf == nil {
		return fmt.Errorf("certificate %s: no certificate in it", s.certFile)
	}
	if s.now().After(cert.Leaf.NotAfter) {
		s.log.Error("the TLS certificate has expired: clients refuse it until it is replaced", "file", s.certFile, "not_after", cert.Leaf.NotAfter)
	}
	s.mu.Lock()
	replaced := s.cert != nil
	s.cert, s.leaf, s.ca, s.mtime = &cert, cert.Leaf, ca, mtime
	s.mu.Unlock()
	if replaced {
		s.log.Info("TLS certificate reloaded", "file", s.certFile, "not_after", cert.Leaf.NotAfter)
	}
	return nil
}

func (s *Source) refreshAuto() error {
	caCert, caKey, caPEM, err := s.loadOrCreateCA()
	if err != nil {
		return err
	}
	certPath, keyPath := filepath.Join(s.dir, serverFile), filepath.Join(s.dir, serverKeyFile)
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		s.log.Warn("the broker's TLS certificate cannot be read; making a new one", "err", err)
	case s.needsRenewal(cert.Leaf, caCert):
		s.log.Info("renewing the broker's TLS certificate", "not_after", cert.Leaf.NotAfter, "hosts", s.hosts)
	default:
		s.set(&cert, caPEM)
		return nil
	}
	certPEM, keyPEM, err := issue(caCert, caKey, s.hosts, s.now())
	if err != nil {
		return err
	}
	if err := writeFile(keyPath, keyPEM); err != nil {
		return err
	}
	if err := writeFile(certPath, certPEM); err != nil {
		return err
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	s.set(&cert, caPEM)
	return nil
}

func (s *Source) set(cert *tls.Certificate, ca []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cert, s.leaf, s.ca = cert, cert.Leaf, ca
}

// needsRenewal: near its end, not from this CA, or missing a host.
func (s *Source) needsRenewal(leaf, ca *x509.Certificate) bool {
	if leaf == nil || s.now().Add(RenewBefore).After(leaf.NotAfter) {
		return true
	}
	if leaf.CheckSignatureFrom(ca) != nil {
		return true
	}
	for _, h := range s.hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
				return true
			}
		} else if !slices.Contains(leaf.DNSNames, h) {
			return true
		}
	}
	return false
}

func (s *Source) loadOrCreateCA() (*x509.Certificate, crypto.Signer, []byte, error) {
	certPath, keyPath := filepath.Join(s.dir, CAFile), filepath.Join(s.dir, caKeyFile)
	caPEM, err := os.ReadFile(certPath)
	if err == nil {
		keyPEM, kerr := os.ReadFile(keyPath)
		if kerr != nil {
			return nil, nil, nil, fmt.Errorf("tls: the CA key %s: %w (restore it from a backup, or remove %s to make a new CA, which agents must then be given by re-enrolling)", keyPath, kerr, certPath)
		}
		pair, err := tls.X509KeyPair(lastCert(caPEM), keyPEM)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("tls: the CA in %s: %w", s.dir, err)
		}
		if s.now().After(pair.Leaf.NotAfter) {
			return nil, nil, nil, fmt.Errorf("tls: the CA in %s expired on %s; move the directory away to make a new one (agents must then re-enroll)", s.dir, pair.Leaf.NotAfter.Format(time.DateOnly))
		}
		return pair.Leaf, pair.PrivateKey.(crypto.Signer), caPEM, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil, fmt.Errorf("tls: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := s.now()
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"kanade"}, CommonName: "kanade broker CA " + host},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tls: make the CA: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})); err != nil {
		return nil, nil, nil, err
	}
	if err := writeFile(certPath, caPEM); err != nil {
		return nil, nil, nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	s.log.Info("made a private CA for the broker's TLS", "file", certPath, "not_after", cert.NotAfter)
	return cert, key, caPEM, nil
}

// lastCert returns the last certificate block of a PEM bundle: the CA
// file may list an incoming CA first, the one that signs comes last.
func lastCert(b []byte) []byte {
	var last []byte
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return last
		}
		if blk.Type == "CERTIFICATE" {
			last = pem.EncodeToMemory(blk)
		}
	}
}

func issue(ca *x509.Certificate, caKey crypto.Signer, hosts []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{"kanade"}, CommonName: "kanade broker"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(ServerLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: issue the server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// Pool parses a PEM bundle of CA certificates.
func Pool(caPEM []byte) (*x509.CertPool, error) {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no PEM certificate")
	}
	return p, nil
}

// Hosts are the names and addresses a certificate for a listener on
// listen should carry: extra (configured) first, then the listen host, or
// for an unspecified host the machine's name and every interface address.
func Hosts(listen string, extra []string) []string {
	hosts := slices.Clone(extra)
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		host = listen
	}
	hosts = append(hosts, "localhost", "127.0.0.1", "::1")
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return dedup(append(hosts, host))
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		hosts = append(hosts, name)
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLinkLocalUnicast() {
				hosts = append(hosts, n.IP.String())
			}
		}
	}
	return dedup(hosts)
}

func dedup(s []string) []string {
	var out []string
	for _, v := range s {
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	return nil
}
