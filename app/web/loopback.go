package web

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
)

// loopbackOnly guards dev mode, where every request without a token acts
// as the admin "dev". Listening on loopback is not enough: a web page the
// user visits can point its own host name at 127.0.0.1 (DNS rebinding)
// and then talk to the server as its origin, or post to it from its own.
// So in dev mode the Host header must name a loopback host (421
// otherwise), and an Origin header, when sent, a loopback origin (403).
func (s *server) loopbackOnly(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !s.Auth.DevMode() {
			return next(c)
		}
		r := c.Request()
		if !loopbackHost(r.Host) {
			return s.refuse(c, http.StatusMisdirectedRequest, "misdirected_request",
				fmt.Sprintf("dev mode answers only requests for localhost, 127.0.0.1 or [::1], not %q; to serve other names, configure sign-in ([oidc] in kanade.toml)", r.Host))
		}
		if o := r.Header.Get("Origin"); o != "" && !loopbackOrigin(o) {
			return s.refuse(c, http.StatusForbidden, "forbidden",
				fmt.Sprintf("dev mode answers only pages served from this machine, not %q", o))
		}
		return next(c)
	}
}

// refuse answers before any handler runs: the API's JSON error, or a
// plain-text message for a browser.
func (s *server) refuse(c echo.Context, status int, code, msg string) error {
	if isAPI(c) {
		return apiErr(status, code, msg, nil)
	}
	return c.String(status, msg)
}

// loopbackHost reports whether a Host header value (host, host:port,
// [v6]:port) names localhost or a loopback address.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loopbackOrigin reports whether an Origin header value is an http(s)
// origin on a loopback host ("null", sent by sandboxed and file pages, is
// not).
func loopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") {
		return false
	}
	return loopbackHost(u.Host)
}
