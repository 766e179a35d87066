package agentinstall

import (
	"net"
	"net/url"
	"strings"
)

// AgentURL is the broker URL the install commands give agents.
//
// public, when set ([nats] agent_url), is used as it is. Otherwise the
// URL is built from the broker's client listener (host:port, as bound):
// a listener on every interface (0.0.0.0, ::, or no host) is reached
// at the host the admin's browser used for this server (requestHost, a
// Host header), since that name already reaches this machine. The
// scheme is tls:// when the broker serves TLS, else nats://.
func AgentURL(public, listen string, tls bool, requestHost string) string {
	if public = strings.TrimSpace(public); public != "" {
		return public
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		host, port = listen, "4222"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = hostOnly(requestHost)
	}
	scheme := "nats"
	if tls {
		scheme = "tls"
	}
	return (&url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port)}).String()
}

// ListenOf splits a broker client URL (nats://host:port or tls://host:port,
// as the broker reports it) into its listener and whether it serves TLS.
func ListenOf(clientURL string) (listen string, tls bool) {
	u, err := url.Parse(clientURL)
	if err != nil || u.Host == "" {
		return clientURL, false
	}
	return u.Host, u.Scheme == "tls"
}

// hostOnly strips the port (and IPv6 brackets) from a Host header value.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}
