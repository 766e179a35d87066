package web_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

// The agent releases API: upload, hostile input refused with 400/413/415
// and nothing stored, 409 for a second upload and for a delete during a
// rollout, a rollout to the harness's agent (202, with the agents it
// leaves out), the release keys.
func TestAgentReleasesAPI(t *testing.T) {
	h := newHarness(t, storetest.New(t))
	platform := "os=" + runtime.GOOS + "&arch=" + runtime.GOARCH
	upload := func(role, query, body, ctype string) (int, string) {
		t.Helper()
		resp, b := h.do(t, role, "POST", "/api/agent-releases?"+query, body, ctype)
		return resp.StatusCode, b
	}
	const bin = "\x7fELF an agent build"
	code, body := upload(admin, "version=v9.1.0&"+platform, bin, "application/octet-stream")
	if code != http.StatusCreated {
		t.Fatalf("upload = %d %s", code, body)
	}
	var rel struct {
		Version, OS, Arch, SHA256, Object, Kid string
		Size                                   int64
	}
	if err := json.Unmarshal([]byte(body), &rel); err != nil {
		t.Fatal(err)
	}
	if rel.Version != "v9.1.0" || rel.OS != runtime.GOOS || rel.Size != int64(len(bin)) || len(rel.SHA256) != 64 || rel.Kid == "" {
		t.Errorf("upload answer = %+v", rel)
	}

	for _, tt := range []struct {
		name, query, body, ctype string
		want                     int
	}{
		{"again", "version=v9.1.0&" + platform, "other", "application/octet-stream", http.StatusConflict},
		{"operator", "version=v9.2.0&" + platform, bin, "application/octet-stream", http.StatusForbidden},
		{"path in the version", "version=../x&" + platform, bin, "application/octet-stream", http.StatusBadRequest},
		{"path in the os", "version=v9.2.0&os=windows/../&arch=amd64", bin, "application/octet-stream", http.StatusBadRequest},
		{"no version", platform, bin, "application/octet-stream", http.StatusBadRequest},
		{"empty body", "version=v9.2.0&" + platform, "", "application/octet-stream", http.StatusBadRequest},
		{"a form", "version=v9.2.0&" + platform, "a=b", "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
	} {
		role := admin
		if tt.name == "operator" {
			role = operator
		}
		if code, body := upload(role, tt.query, tt.body, tt.ctype); code != tt.want {
			t.Errorf("%s: upload = %d %s; want %d", tt.name, code, body, tt.want)
		}
	}
	// A body announced larger than the limit is refused before it is read.
	req, err := http.NewRequestWithContext(t.Context(), "POST", h.URL+"/api/agent-releases?version=v9.3.0&"+platform, io.LimitReader(zeroReader{}, wire.MaxReleaseSize+1))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = wire.MaxReleaseSize + 1
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+h.tokens[admin])
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a huge body = %d; want 413", resp.StatusCode)
	}
	resp, body = h.do(t, viewer, "GET", "/api/agent-releases", "", "")
	var list struct{ Releases []struct{ Version string } }
	if err := json.Unmarshal([]byte(body), &list); err != nil || resp.StatusCode != http.StatusOK || len(list.Releases) != 1 {
		t.Fatalf("list = %d %s; want the one release", resp.StatusCode, body)
	}

	// A rollout to the harness's agent.
	resp, body = h.do(t, admin, "POST", "/api/agent-releases/v9.1.0/rollout", fmt.Sprintf(`{"target": {"pcs": [%q]}, "rollout": {"waves": [{"name": "one", "count": 1, "approval": true}]}}`, agentPC), "")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("rollout = %d %s", resp.StatusCode, body)
	}
	var ro struct {
		ExecID   string `json:"exec_id"`
		Targets  int
		Excluded []struct{ PCID, Reason string }
	}
	if err := json.Unmarshal([]byte(body), &ro); err != nil || ro.ExecID == "" || ro.Targets != 1 || len(ro.Excluded) != 0 {
		t.Errorf("rollout answer = %+v (%s)", ro, body)
	}
	if e, err := h.st.Execution(t.Context(), ro.ExecID); err != nil || e.JobID != wire.UpdateJobID || e.Status != store.StatusAwaitingApproval && e.Status != store.StatusRunning {
		t.Errorf("the rollout's execution = %+v, %v", e, err)
	}
	for _, tt := range []struct {
		name, url, body string
		want            int
	}{
		{"unknown version", "/api/agent-releases/v0.0.1/rollout", "", http.StatusNotFound},
		{"hostile version", "/api/agent-releases/..%2Fx/rollout", "", http.StatusBadRequest},
		{"unknown field", "/api/agent-releases/v9.1.0/rollout", `{"targets": {}}`, http.StatusBadRequest},
		{"bad wave", "/api/agent-releases/v9.1.0/rollout", `{"rollout": {"waves": [{"name": "x"}]}}`, http.StatusBadRequest},
	} {
		if resp, body := h.do(t, admin, "POST", tt.url, tt.body, ""); resp.StatusCode != tt.want {
			t.Errorf("%s: rollout = %d %s; want %d", tt.name, resp.StatusCode, body, tt.want)
		}
	}
	if resp, body := h.do(t, admin, "DELETE", "/api/agent-releases/v9.1.0", "", ""); resp.StatusCode != http.StatusConflict || !strings.Contains(body, ro.ExecID) {
		t.Errorf("delete during the rollout = %d %s; want 409 naming the execution", resp.StatusCode, body)
	}
	if resp, body := h.do(t, operator, "POST", "/api/executions/"+ro.ExecID+"/kill", "", ""); resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		t.Fatalf("kill = %d %s", resp.StatusCode, body)
	}
	if resp, body := h.do(t, admin, "DELETE", "/api/agent-releases/v9.1.0?os=windows", "", ""); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("delete with os and no arch = %d %s; want 400", resp.StatusCode, body)
	}
	if resp, body := h.do(t, admin, "DELETE", "/api/agent-releases/v9.1.0", "", ""); resp.StatusCode != http.StatusOK || !strings.Contains(body, rel.SHA256) {
		t.Errorf("delete after the kill = %d %s", resp.StatusCode, body)
	}
	if resp, _ := h.do(t, admin, "DELETE", "/api/agent-releases/v9.1.0", "", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("second delete = %d; want 404", resp.StatusCode)
	}

	// Release keys: listed for viewers, rotated by admins.
	_, body = h.do(t, viewer, "GET", "/api/release-keys", "", "")
	var keys struct{ Keys []struct{ Kid string } }
	if err := json.Unmarshal([]byte(body), &keys); err != nil || len(keys.Keys) != 1 || keys.Keys[0].Kid != rel.Kid {
		t.Errorf("release keys = %s; want the key that signed the release", body)
	}
	if resp, body := h.do(t, admin, "POST", "/api/release-keys/rotate", "", ""); resp.StatusCode != http.StatusOK || strings.Count(body, `"kid"`) != 2 {
		t.Errorf("rotate = %d %s; want two trusted keys", resp.StatusCode, body)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }
