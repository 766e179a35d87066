package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"time"
)

// profiler fetches pprof profiles from the server and the swarm (started
// with KANADE_PPROF) into dir, named N-process-phase-kind.pprof. A nil
// profiler does nothing.
type profiler struct {
	dir     string
	n       int
	clients map[string]*client // "server", "swarm" → their pprof listeners
}

// cpu starts a CPU profile of every process lasting d (rounded up to whole
// seconds) and returns a function that waits for them to be written.
func (p *profiler) cpu(ctx context.Context, phase string, d time.Duration) (wait func()) {
	if p == nil {
		return func() {}
	}
	secs := int(math.Ceil(d.Seconds()))
	var wg sync.WaitGroup
	for name, c := range p.clients {
		wg.Go(func() {
			p.fetch(ctx, c, name, phase, "cpu", time.Duration(secs)*time.Second+30*time.Second, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs))
		})
	}
	return wg.Wait
}

// heap writes every process's heap profile (in use, and allocated since
// the start) after a garbage collection: the runtime updates the profile
// at collections only. Two of them around a phase give what it allocated
// (go tool pprof -sample_index=alloc_space -diff_base before after).
func (p *profiler) heap(ctx context.Context, phase string) {
	if p == nil {
		return
	}
	for name, c := range p.clients {
		p.fetch(ctx, c, name, phase, "heap", time.Minute, "/debug/pprof/heap?gc=1")
	}
}

func (p *profiler) fetch(ctx context.Context, c *client, name, phase, kind string, limit time.Duration, path string) {
	body, _, err := c.getWithin(ctx, limit, path)
	if err != nil {
		progress("N=%d: %s %s profile (%s): %v", p.n, name, kind, phase, err)
		return
	}
	file := filepath.Join(p.dir, fmt.Sprintf("%d-%s-%s-%s.pprof", p.n, name, phase, kind))
	if err := os.WriteFile(file, body, 0o644); err != nil {
		progress("N=%d: %v", p.n, err)
		return
	}
	progress("N=%d: wrote %s", p.n, file)
}

// pprofEnv picks a loopback port for a child's KANADE_PPROF and returns
// the variable and a client for it; both are empty without profiling.
func pprofEnv(on bool) ([]string, *client, error) {
	if !on {
		return nil, nil, nil
	}
	port, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	return []string{"KANADE_PPROF=" + addr}, newClient("http://" + addr), nil
}

// profileSelf starts a CPU profile of this process (the baseline's broker
// and projector) into file; stop writes it.
func profileSelf(file string) (stop func(), err error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("baseline profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("baseline profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			progress("baseline profile: %v", err)
			return
		}
		progress("wrote %s", file)
	}, nil
}
