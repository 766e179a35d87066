package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The update wave (-update): a release of updateSize bytes is uploaded
// for every platform the swarm pretends to run, rolled out in one wave to
// every agent, and timed until every target is final. Meanwhile the
// broker's bytes out (kanade_nats_bytes_total{direction="out"} on
// /metrics) are sampled for its peak throughput, and the swarm's
// "swarm updates:" lines give the downloads in flight.

// updateSize is the release's size: about an agent binary's.
const updateSize = 15 << 20

// updatePlatforms are the swarm's platforms (swarm.Templates).
var updatePlatforms = [][2]string{{"windows", "amd64"}, {"linux", "amd64"}, {"linux", "arm64"}}

// updateResult is the update wave's figures.
type updateResult struct {
	Version      string
	Targets      int
	Wall         time.Duration // rollout POST → every target final
	Succeeded    int
	Failed       int
	Other        int     // skipped, expired, killed…
	PeakOut      float64 // broker bytes out per second, highest 1 s window
	BytesOut     float64 // broker bytes out during the wave
	PeakInFlight int64   // downloads in flight at once (the swarm's peak)
	Load         string  // uptime after the wave
}

// updateWave uploads the release and rolls it out.
// With injected failures (failRate > 0) the wave tolerates any number of
// them, so that the server's auto-halt (max_failures 0 by default) does
// not end it at the first.
func updateWave(ctx context.Context, c *client, n int, lines *swarmLines, failRate float64, timeout time.Duration) (r updateResult, err error) {
	r.Version = "bench-" + time.Now().UTC().Format("20060102-150405")
	bin := make([]byte, updateSize)
	rng := rand.NewChaCha8([32]byte{'k', 'a', 'n', 'a', 'd', 'e'})
	_, _ = rng.Read(bin)
	for _, p := range updatePlatforms {
		path := fmt.Sprintf("/api/agent-releases?version=%s&os=%s&arch=%s", r.Version, p[0], p[1])
		if _, err := c.post(ctx, path, "application/octet-stream", bin, http.StatusCreated); err != nil {
			return r, err
		}
	}
	progress("N=%d: update: release %s uploaded (%d MiB for %d platforms); rolling it out in one wave", n, r.Version, updateSize>>20, len(updatePlatforms))
	sampler := startOutSampler(ctx, c)
	t0 := time.Now()
	body := `{}`
	if failRate > 0 {
		body = `{"rollout": {"waves": [{"name": "all", "percent": 100, "max_failures": "100%"}]}}`
	}
	out, err := c.post(ctx, "/api/agent-releases/"+r.Version+"/rollout", "application/json", []byte(body), http.StatusAccepted)
	if err != nil {
		sampler.stop()
		return r, err
	}
	var e execution
	if err := json.Unmarshal(out, &e); err != nil || e.ExecID == "" {
		sampler.stop()
		return r, fmt.Errorf("rollout: no exec_id in %s", snippet(out))
	}
	doneAt, _, err := c.waitDone(ctx, e.ExecID, timeout)
	r.PeakOut, r.BytesOut = sampler.stop()
	if err != nil {
		return r, err
	}
	r.Wall = doneAt.Sub(t0)
	if err := c.getJSON(ctx, "/api/executions/"+e.ExecID, &e); err != nil {
		return r, err
	}
	r.Targets = e.TargetCount
	r.Succeeded, r.Failed = e.Counts["succeeded"], e.Counts["failed"]
	r.Other = r.Targets - r.Succeeded - r.Failed
	if l, ok := lines.last("swarm updates:"); ok {
		r.PeakInFlight = parseUpdatePeak(l.text)
	}
	r.Load = loadAverage()
	progress("N=%d: update: %d targets final after %s (%d succeeded, %d failed, %d other); broker peak %s/s out; %d downloads in flight at most",
		n, r.Targets, fmtDur(r.Wall), r.Succeeded, r.Failed, r.Other, fmtMiB(int64(r.PeakOut)), r.PeakInFlight)
	return r, nil
}

// loadAverage is the machine's load average over 1, 5 and 15 minutes
// (as uptime prints it), from /proc/loadavg; "–" where there is none.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], ", ")
	}
	return "–"
}

// last returns the latest line with prefix.
func (s *swarmLines) last(prefix string) (swarmLine, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(s.lines[i].text, prefix) {
			return s.lines[i], true
		}
	}
	return swarmLine{}, false
}

// parseUpdatePeak reads the peak from "swarm updates: D downloading, P
// peak, …" (-1: not such a line).
func parseUpdatePeak(line string) int64 {
	var downloading, peak int64
	if _, err := fmt.Sscanf(line, "swarm updates: %d downloading, %d peak", &downloading, &peak); err != nil {
		return -1
	}
	return peak
}

// natsBytesOut reads kanade_nats_bytes_total{direction="out"} from a
// /metrics scrape.
func natsBytesOut(text string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || name != `kanade_nats_bytes_total{direction="out"}` {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		return v, err == nil
	}
	return 0, false
}

// outSampler scrapes the broker's bytes out every 250 ms.
type outSampler struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	at     []time.Time
	bytes  []float64
}

func startOutSampler(ctx context.Context, c *client) *outSampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &outSampler{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if text, _, err := c.get(ctx, "/metrics"); err == nil {
				if v, ok := natsBytesOut(string(text)); ok {
					s.mu.Lock()
					s.at, s.bytes = append(s.at, time.Now()), append(s.bytes, v)
					s.mu.Unlock()
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the highest rate over any window of
// at least a second, and the bytes out from the first sample to the last.
func (s *outSampler) stop() (peak, total float64) {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return peakRate(s.at, s.bytes, time.Second)
}

// peakRate is the highest (bytes[j]-bytes[i])/(at[j]-at[i]) over the
// shortest windows of at least min, and the total from first to last.
func peakRate(at []time.Time, bytes []float64, min time.Duration) (peak, total float64) {
	if len(at) < 2 {
		return 0, 0
	}
	j := 0
	for i := range at {
		for j < len(at) && at[j].Sub(at[i]) < min {
			j++
		}
		if j == len(at) {
			break
		}
		if r := (bytes[j] - bytes[i]) / at[j].Sub(at[i]).Seconds(); r > peak {
			peak = r
		}
	}
	return peak, bytes[len(bytes)-1] - bytes[0]
}

// post sends body to path and returns the answer's body; any status but
// want is an error.
func (c *client) post(ctx context.Context, path, contentType string, body []byte, want int) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", path, err)
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("POST %s: status %d: %s", path, resp.StatusCode, snippet(out))
	}
	return out, nil
}
