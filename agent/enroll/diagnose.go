package enroll

import (
	"crypto/x509"
	"errors"
	"strings"

	"github.com/nats-io/nats.go"
)

// Cause names why a connection to the broker failed.
type Cause string

// The causes an agent can tell apart.
const (
	CauseNone        Cause = ""
	CauseCertificate Cause = "certificate"  // TLS verification failed
	CauseNoTLS       Cause = "no-tls"       // the bundle pins a CA, the broker speaks plain text
	CauseTLSRequired Cause = "tls-required" // the broker wants TLS, the agent has no CA
	CauseRefused     Cause = "refused"      // the broker refused the credential
	CauseExpired     Cause = "expired"      // the credential expired
	CauseUnreachable Cause = "unreachable"  // network
	CauseOther       Cause = "other"
)

// Diagnose classifies a connection error and says what to do about it.
func Diagnose(err error) (Cause, string) {
	if err == nil {
		return CauseNone, ""
	}
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	msg := strings.ToLower(err.Error())
	switch {
	case errors.As(err, &unknownAuthority) || strings.Contains(msg, "certificate signed by unknown authority"):
		return CauseCertificate, "the broker's certificate is not signed by the CA in the enrollment bundle: the server was reinstalled or this is not the right server; put the server's current bundle (Settings → Add agents, or DATA/agent-credentials) in place of the agent's"
	case errors.As(err, &hostname) || strings.Contains(msg, "certificate is valid for"):
		return CauseCertificate, "the broker's certificate does not name the host in --server: use a name the certificate carries, or add it to [nats] tls_hosts on the server"
	case errors.As(err, &invalid) || strings.Contains(msg, "x509:") || strings.Contains(msg, "tls:"):
		return CauseCertificate, "the broker's TLS certificate cannot be verified (expired, or the clocks differ): check the server's certificate and this PC's clock"
	case errors.Is(err, nats.ErrSecureConnWanted):
		return CauseNoTLS, "the enrollment bundle pins a TLS CA but the broker speaks plain text: turn TLS on at the server (--nats-tls auto) or use the server's current bundle"
	case errors.Is(err, nats.ErrSecureConnRequired) || strings.Contains(msg, "secure connection") && strings.Contains(msg, "required"):
		return CauseTLSRequired, "the broker requires TLS: use a tls:// --server URL and the server's current enrollment bundle (it carries the CA)"
	case errors.Is(err, nats.ErrAuthExpired) || strings.Contains(msg, "expired"):
		return CauseExpired, "the agent's credential expired: it asks to enroll again with its own key"
	case errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthRevoked) || strings.Contains(msg, "authorization violation") ||
		strings.Contains(msg, "account") && (strings.Contains(msg, "not found") || strings.Contains(msg, "unknown")):
		return CauseRefused, "the broker refused the agent's credential (revoked, or the server was reset or restored): the agent asks to enroll again with its own key; an admin approves it on the Pending agents page"
	case strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host") || strings.Contains(msg, "i/o timeout") || strings.Contains(msg, "no servers available"):
		return CauseUnreachable, "the broker cannot be reached: check --server, the network and the server"
	}
	return CauseOther, ""
}
