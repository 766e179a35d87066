package profiling

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestFromEnv(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct{ addr, want string }{
		{"0.0.0.0:0", "not a loopback address"},
		{"10.1.2.3:6060", "not a loopback address"},
		{"example.com:6060", "not a loopback address"},
		{"6060", "not host:port"},
	} {
		t.Setenv(Env, tc.addr)
		err := FromEnv(t.Context(), log)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), Env) {
			t.Errorf("%s: err = %v, want one naming %s and saying %q", tc.addr, err, Env, tc.want)
		}
	}

	t.Setenv(Env, "")
	if err := FromEnv(t.Context(), log); err != nil {
		t.Fatalf("unset: %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	t.Setenv(Env, addr)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := FromEnv(ctx, log); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("status %d, body %.100q", resp.StatusCode, body)
	}
}
