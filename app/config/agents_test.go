package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The agent-install keys come from the file and from KANADE_* (the
// environment wins), and kanade.toml documents their defaults.
func TestAgentInstallKeys_FileAndEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kanade.toml")
	if err := os.WriteFile(path, []byte("[server]\nagent_downloads = \"/opt/kanade/bin\"\n[nats]\nagent_url = \"tls://a.example.com:4222\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, nil)
	if err != nil || c.Server.AgentDownloads != "/opt/kanade/bin" || c.NATS.AgentURL != "tls://a.example.com:4222" {
		t.Fatalf("file: %+v %+v %v", c.Server, c.NATS, err)
	}
	c, err = Load(path, []string{"KANADE_NATS_AGENT_URL=nats://b.example.com:4222,nats://c.example.com", "KANADE_SERVER_AGENT_DOWNLOADS=/srv/bin"})
	if err != nil || c.NATS.AgentURL != "nats://b.example.com:4222,nats://c.example.com" || c.Server.AgentDownloads != "/srv/bin" {
		t.Fatalf("env: %+v %+v %v", c.Server, c.NATS, err)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	names := strings.Join(EnvNames(), " ")
	for _, want := range []string{"KANADE_NATS_AGENT_URL", "KANADE_SERVER_AGENT_DOWNLOADS"} {
		if !strings.Contains(names, want) {
			t.Errorf("EnvNames lacks %s", want)
		}
	}
	example, err := os.ReadFile("../../kanade.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"agent_downloads = \"\"", "agent_url = \"\""} {
		if !strings.Contains(string(example), want) {
			t.Errorf("kanade.toml does not document %s", want)
		}
	}
}

func TestAgentURL_Validate(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string // "" = valid
	}{
		{"", ""},
		{"tls://kanade.example.com:4222", ""},
		{"nats://10.0.0.5:4222, nats://10.0.0.6:4222", ""},
		{"tls://[fd00::1]:4222", ""},
		{"tls://kanade.example.com", ""},
		{"http://kanade.example.com:4222", "must be a nats:// or tls:// URL"},
		{"kanade.example.com:4222", "must be a nats:// or tls:// URL"},
		{"tls://user:pw@kanade.example.com:4222", "only scheme://host:port"},
		{"tls://kanade.example.com:4222/path", "only scheme://host:port"},
		{"tls://kanade.example.com:4222?x=1", "only scheme://host:port"},
		{"tls://:4222", "only scheme://host:port"},
		{"tls://kanade.example.com:99999", "invalid port"},
		{"nats://a:4222,ftp://b:21", "must be a nats:// or tls:// URL"},
	} {
		c := Default()
		c.NATS.AgentURL = tc.url
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.url, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), "nats.agent_url") || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: %v, want nats.agent_url %s", tc.url, err, tc.want)
		}
	}
}
