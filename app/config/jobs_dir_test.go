package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestLoad_JobsDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kanade.toml")
	if err := os.WriteFile(path, []byte("[server]\njobs_dir = \"/etc/kanade/jobs\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		environ []string
		want    string
	}{
		{"default", "", nil, "./jobs"},
		{"file", path, nil, "/etc/kanade/jobs"},
		{"environment beats file", path, []string{"KANADE_SERVER_JOBS_DIR=/srv/jobs"}, "/srv/jobs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.path, tt.environ)
			if err != nil {
				t.Fatal(err)
			}
			if c.Server.JobsDir != tt.want {
				t.Errorf("Server.JobsDir = %q, want %q", c.Server.JobsDir, tt.want)
			}
		})
	}
	c := Default()
	c.Server.JobsDir = ""
	if err := c.Validate(); err == nil {
		t.Error("Validate accepted an empty server.jobs_dir")
	}
}

// TestExampleConfig_Loads checks that the documented kanade.toml at the
// repository root loads and states the defaults.
func TestExampleConfig_Loads(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "kanade.toml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Default(), c, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("kanade.toml differs from Default() (-default +file):\n%s", diff)
	}
}
