package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// client talks to a kanade server in dev mode, where requests without a
// token act as the admin.
type client struct {
	base string
	hc   *http.Client
}

func newClient(base string) *client {
	tr := &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: time.Minute, DisableCompression: true}
	return &client{base: base, hc: &http.Client{Transport: tr}}
}

// get fetches path, reads the whole body and returns it with how long
// that took; any status but 200 is an error. It gives up after a minute.
func (c *client) get(ctx context.Context, path string, header ...string) ([]byte, time.Duration, error) {
	return c.getWithin(ctx, time.Minute, path, header...)
}

// getWithin is get with its own time limit (a CPU profile takes as long
// as it profiles).
func (c *client) getWithin(ctx context.Context, limit time.Duration, path string, header ...string) ([]byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, 0, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	took := time.Since(start)
	if err != nil {
		return nil, took, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, took, fmt.Errorf("GET %s: status %d: %s", path, resp.StatusCode, snippet(body))
	}
	return body, took, nil
}

func (c *client) getJSON(ctx context.Context, path string, v any) error {
	body, _, err := c.get(ctx, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// timeGets fetches path n times in a row and summarises the latencies.
func (c *client) timeGets(ctx context.Context, n int, path string, header ...string) (spread, error) {
	ds := make([]time.Duration, 0, n)
	for range n {
		_, d, err := c.get(ctx, path, header...)
		if err != nil {
			return spread{}, err
		}
		ds = append(ds, d)
	}
	return summarize(ds), nil
}

// online returns how many agents the server lists as online.
func (c *client) online(ctx context.Context) (int, error) {
	var list struct {
		Total int `json:"total"`
	}
	err := c.getJSON(ctx, "/api/agents?status=online&limit=1", &list)
	return list.Total, err
}

// execution is the part of an Execution (API.md) the bench reads.
type execution struct {
	ExecID      string         `json:"exec_id"`
	Status      string         `json:"status"`
	TargetCount int            `json:"target_count"`
	Counts      map[string]int `json:"counts"`
}

// final is how many targets are in a final state.
func (e execution) final() int {
	return e.TargetCount - e.Counts["pending"] - e.Counts["running"]
}

// done reports whether every target is final.
func (e execution) done() bool { return e.TargetCount > 0 && e.final() >= e.TargetCount }

// run starts a run of script on every agent.
func (c *client) run(ctx context.Context, script string) (execution, error) {
	body, err := json.Marshal(map[string]any{
		"target": map[string]any{"all": true}, "shell": "sh", "script": script, "timeout": "60s",
	})
	if err != nil {
		return execution{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/api/run", bytes.NewReader(body))
	if err != nil {
		return execution{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return execution{}, fmt.Errorf("POST /api/run: %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return execution{}, fmt.Errorf("POST /api/run: %w", err)
	}
	if resp.StatusCode != http.StatusAccepted {
		return execution{}, fmt.Errorf("POST /api/run: status %d: %s", resp.StatusCode, snippet(out))
	}
	var e execution
	if err := json.Unmarshal(out, &e); err != nil {
		return execution{}, fmt.Errorf("POST /api/run: %w", err)
	}
	if e.ExecID == "" {
		return execution{}, errors.New("POST /api/run: no exec_id in the answer")
	}
	return e, nil
}

// waitDone waits until every target of execution id is final, with GET
// /api/executions/{id}/wait, which answers as soon as the server has
// committed the execution's last result (or after its timeout, when the
// bench asks again). It returns when the answer arrived and how many
// requests it took.
func (c *client) waitDone(ctx context.Context, id string, timeout time.Duration) (time.Time, int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	requests := 0
	for {
		wait := 50 * time.Second // under the client's one-minute request timeout
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(dl).Truncate(time.Second))
		}
		if wait < time.Second {
			return time.Time{}, requests, fmt.Errorf("execution %s: not every target final after %s", id, timeout)
		}
		var e execution
		requests++
		err := c.getJSON(ctx, fmt.Sprintf("/api/executions/%s/wait?timeout=%s", id, wait), &e)
		if err == nil && e.done() {
			return time.Now(), requests, nil
		}
		if err != nil && ctx.Err() != nil {
			return time.Time{}, requests, fmt.Errorf("execution %s: %w", id, err)
		}
		if err == nil && e.Status != "running" {
			return time.Time{}, requests, fmt.Errorf("execution %s is %s with %d of %d targets final", id, e.Status, e.final(), e.TargetCount)
		}
		if err != nil && sleep(ctx, 100*time.Millisecond) != nil {
			return time.Time{}, requests, err
		}
	}
}

// sseFollower records the events of one event stream.
type sseFollower struct {
	start     time.Time
	firstByte time.Duration
	mu        sync.Mutex
	events    []sseEvent
	done      chan struct{}
	err       error
}

// followSSE opens path as an event stream and records its events until ctx
// is done. It returns once the response headers arrived.
func (c *client) followSSE(ctx context.Context, path string) (*sseFollower, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	f := &sseFollower{start: time.Now(), done: make(chan struct{})}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	f.firstByte = time.Since(f.start)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: status %d: %s", path, resp.StatusCode, snippet(b))
	}
	go func() {
		defer close(f.done)
		defer resp.Body.Close()
		err := readSSE(resp.Body, time.Now, func(e sseEvent) {
			f.mu.Lock()
			f.events = append(f.events, e)
			f.mu.Unlock()
		})
		if ctx.Err() == nil {
			f.err = err
		}
	}()
	return f, nil
}

// snapshot returns the events so far.
func (f *sseFollower) snapshot() []sseEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sseEvent(nil), f.events...)
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
