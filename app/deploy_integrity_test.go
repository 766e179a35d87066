//go:build !windows

package main

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/kanadehq/kanade/app/config"
)

// POST /api/deploy of a job id and version that the jobs directory has
// with another script is refused, naming the field, unless
// ?allow_mismatch=true; the same script deploys.
func TestDeploy_MismatchWithTheJobsDirectory(t *testing.T) {
	skipIfShort(t)
	dir := jobsDir(t) // tick, version 1: echo tick
	// Only the answers to the deploys matter: no agent needs to run them.
	s := startServerWith(t, t.TempDir(), "", func(c *config.Config) { c.Server.JobsDir = dir })
	// Deploys name PCs some agent has had: pc1 enrolls (dev mode approves it).
	enrollPending(t, s, s.Creds, "pc1")
	checkFor(t, 20*time.Second, func() error {
		var list struct {
			Enrollments []struct {
				PCID string `json:"pc_id"`
			} `json:"enrollments"`
		}
		if code := s.get(t, "/api/enrollments?status=all", &list); code != http.StatusOK || len(list.Enrollments) == 0 {
			return fmt.Errorf("GET /api/enrollments = %d %+v, want pc1", code, list)
		}
		return nil
	})
	tests := []struct {
		name, query, script string
		want                int
		wantField           string
	}{
		{"same script", "", "echo tick", http.StatusAccepted, ""},
		{"another script", "", "echo tock", http.StatusBadRequest, "execute.script"},
		{"another script, allowed", "?allow_mismatch=true", "echo tock", http.StatusAccepted, ""},
		{"bad flag", "?allow_mismatch=maybe", "echo tock", http.StatusBadRequest, "allow_mismatch"},
		{"another version", "?version=2", "echo tock", http.StatusAccepted, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(s.URL+"/api/deploy"+tt.query, "application/yaml", bytes.NewReader([]byte(manifest("tick", "1", "pcs: [pc1]", tt.script))))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body apiErrorBody
			_ = jsonDecode(resp, &body)
			if resp.StatusCode != tt.want {
				t.Fatalf("deploy = %d %+v, want %d", resp.StatusCode, body, tt.want)
			}
			if tt.wantField != "" && (len(body.Error.Details) != 1 || body.Error.Details[0].Field != tt.wantField) {
				t.Errorf("problems %+v, want one on %s", body.Error.Details, tt.wantField)
			}
		})
	}
}
