package config

import (
	"net/url"
	"strconv"
	"strings"
)

// validateAgents checks the keys of agent installs: nats.agent_url is
// one or more comma-separated nats:// or tls:// URLs of a host and an
// optional port, with nothing else (no user, path or query).
func (c *Config) validateAgents(add func(field, format string, a ...any)) {
	if strings.TrimSpace(c.NATS.AgentURL) == "" {
		return
	}
	for _, s := range strings.Split(c.NATS.AgentURL, ",") {
		s = strings.TrimSpace(s)
		u, err := url.Parse(s)
		switch {
		case err != nil || (u.Scheme != "nats" && u.Scheme != "tls"):
			add("nats.agent_url", "%q must be a nats:// or tls:// URL, like tls://kanade.example.com:4222", s)
		case u.Hostname() == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
			add("nats.agent_url", "%q must be only scheme://host:port", s)
		case u.Port() != "" && !validPort(u.Port()):
			add("nats.agent_url", "%q has an invalid port", s)
		case strings.ContainsAny(u.Host, "'\"`$ ;|&<>()\\"):
			add("nats.agent_url", "%q has characters a host name cannot have", s)
		}
	}
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n > 0 && n < 65536
}
