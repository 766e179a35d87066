// Package profiling serves Go's pprof handlers on a loopback address when
// KANADE_PPROF names one, for `make bench BENCH_FLAGS='-profile DIR'` and
// for an engineer chasing a slow server or swarm. It is off by default and
// refuses any address that is not loopback: profiles show memory and
// command lines.
//
// `kanade serve` and the load simulator `kanade-swarm` use it; the
// production agent does not link it (agent/deps_test.go).
package profiling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"
)

// Env is the variable that turns profiling on: KANADE_PPROF=127.0.0.1:6060.
const Env = "KANADE_PPROF"

// FromEnv starts the listener if Env is set, and stops it when ctx is done.
// It returns an error (naming Env) for an address that is not loopback or
// cannot be listened on.
func FromEnv(ctx context.Context, log *slog.Logger) error {
	addr := os.Getenv(Env)
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s: %q is not host:port: %w", Env, addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%s: %q is not a loopback address; profiles are served on 127.0.0.1 or ::1 only", Env, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: %w", Env, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof listener stopped", "err", err)
		}
	}()
	log.Info("pprof listening (KANADE_PPROF)", "addr", ln.Addr().String())
	return nil
}
