package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The database comes from [db], from KANADE_DB_DSN (a postgres:// URL
// alone selects PostgreSQL) and from --db (DB.SetURL), in that order of
// precedence; what is not a database is refused with the field named.
func TestDB_FileEnvURL(t *testing.T) {
	const pg = "postgres://kanade:pw@db.example.com:5432/kanade?sslmode=verify-full"
	path := filepath.Join(t.TempDir(), "kanade.toml")
	if err := os.WriteFile(path, []byte("[db]\ndriver = \"postgres\"\ndsn = \"postgres://file@db1/kanade\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file string
		env        []string
		flag       string
		wantDriver string
		wantDSN    string
		wantErr    string // "" = valid
	}{
		{name: "default", wantDriver: "sqlite", wantDSN: "data/kanade.db"},
		{name: "file", file: path, wantDriver: "postgres", wantDSN: "postgres://file@db1/kanade"},
		{name: "env beats file", file: path, env: []string{"KANADE_DB_DSN=postgres://env@db2/kanade"}, wantDriver: "postgres", wantDSN: "postgres://env@db2/kanade"},
		{name: "env dsn alone selects postgres", env: []string{"KANADE_DB_DSN=" + pg}, wantDriver: "postgres", wantDSN: pg},
		{name: "postgresql scheme", env: []string{"KANADE_DB_DSN=postgresql://h/db"}, wantDriver: "postgres", wantDSN: "postgresql://h/db"},
		{name: "flag beats env", file: path, env: []string{"KANADE_DB_DSN=postgres://env@db2/kanade"}, flag: pg, wantDriver: "postgres", wantDSN: pg},
		{name: "flag not a URL", flag: "/var/lib/kanade.db", wantErr: "want a postgres:// URL"},
		{name: "flag hides password", flag: "mysql://root:hunter2@h/db", wantErr: "xxxxx"},
		{name: "env sqlite file", env: []string{"KANADE_DB_DSN=/srv/kanade.db"}, wantDriver: "sqlite", wantDSN: "/srv/kanade.db"},
		{name: "postgres without dsn", env: []string{"KANADE_DB_DRIVER=postgres"}, wantErr: "db.dsn: is required"},
		{name: "postgres with a path", env: []string{"KANADE_DB_DRIVER=postgres", "KANADE_DB_DSN=/srv/kanade.db"}, wantErr: "is not a postgres:// URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.file, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			c.Server.Data = "data"
			if tc.flag != "" {
				err = c.DB.SetURL(tc.flag)
			}
			if err == nil {
				err = c.Validate()
			}
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error shows the password: %v", err)
				}
			case err != nil:
				t.Fatal(err)
			case c.DB.Driver != tc.wantDriver || c.DBDSN() != tc.wantDSN:
				t.Errorf("db = %s %s, want %s %s", c.DB.Driver, c.DBDSN(), tc.wantDriver, tc.wantDSN)
			}
		})
	}
}

// The secrets directory defaults to DATA/secrets and comes from
// [secrets] dir, KANADE_SECRETS_DIR or its short form KANADE_SECRETS.
func TestSecrets_Dir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kanade.toml")
	if err := os.WriteFile(path, []byte("[server]\ndata = \"/srv/d\"\n[secrets]\ndir = \"/etc/kanade/secrets\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file string
		env  []string
		want string
	}{
		{"", []string{"KANADE_DATA=/srv/d"}, filepath.Join("/srv/d", "secrets")},
		{path, nil, "/etc/kanade/secrets"},
		{path, []string{"KANADE_SECRETS=/run/s"}, "/run/s"},
		{path, []string{"KANADE_SECRETS_DIR=/run/t"}, "/run/t"},
	} {
		c, err := Load(tc.file, tc.env)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.SecretsDir(); got != tc.want {
			t.Errorf("Load(%q, %v).SecretsDir() = %q, want %q", tc.file, tc.env, got, tc.want)
		}
	}
	names := strings.Join(EnvNames(), " ")
	for _, want := range []string{"KANADE_SECRETS", "KANADE_SECRETS_DIR", "KANADE_DB_DSN", "KANADE_DB_DRIVER"} {
		if !strings.Contains(names, want) {
			t.Errorf("EnvNames lacks %s", want)
		}
	}
	example, err := os.ReadFile("../../kanade.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(example), "[secrets]\n") {
		t.Error("kanade.toml does not document [secrets]")
	}
}
