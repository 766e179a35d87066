package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoad_FileEnvPrecedence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kanade.toml")
	err := os.WriteFile(path, []byte(`
[server]
http = "127.0.0.1:9000"
data = "/srv/kanade"
[execution]
default_timeout = "5m"
output_cap = "512KiB"
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, []string{"KANADE_DATA=/env/data", "KANADE_EXECUTION_DEFAULT_DEADLINE=2h", "KANADE_LOG_LEVEL=debug", "OTHER=x"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.HTTP != "127.0.0.1:9000" || c.Server.Data != "/env/data" {
		t.Errorf("server = %+v", c.Server)
	}
	if c.Execution.DefaultTimeout.D() != 5*time.Minute || c.Execution.DefaultDeadline.D() != 2*time.Hour || c.Execution.OutputCap != 512<<10 {
		t.Errorf("execution = %+v", c.Execution)
	}
	if c.Log.Level != "debug" || c.NATS.Listen != "127.0.0.1:4222" {
		t.Errorf("log = %+v, nats = %+v", c.Log, c.NATS)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestLoad_Errors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kanade.toml")
	if err := os.WriteFile(path, []byte("[server]\nhtp = \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, nil); err == nil || !strings.Contains(err.Error(), "server.htp") {
		t.Errorf("unknown key: %v", err)
	}
	if err := os.WriteFile(path, []byte("[server]\nhttp = 80\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, nil); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("wrong type: %v", err)
	}
	if _, err := Load("", []string{"KANADE_EXECUTION_DEFAULT_TIMEOUT=soon"}); err == nil || !strings.Contains(err.Error(), "KANADE_EXECUTION_DEFAULT_TIMEOUT") {
		t.Errorf("bad env: %v", err)
	}
}

func TestValidate_ReportsEverything(t *testing.T) {
	c := Default()
	c.Server.HTTP = "nohost"
	c.DB.Driver = "mysql"
	c.Execution.DefaultTimeout = 0
	c.Log.Format = "xml"
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"server.http", "db.driver", "execution.default_timeout", "log.format"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	if d := Default(); d.Validate() != nil {
		t.Errorf("defaults invalid: %v", d.Validate())
	}
}

func TestMetrics_FileEnvValidate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kanade.toml")
	if err := os.WriteFile(path, []byte("[metrics]\ntoken = \"short\"\nlisten = \"127.0.0.1:9100\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, []string{"KANADE_METRICS_LISTEN=nohost"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Metrics.Token != "short" || c.Metrics.Listen != "nohost" {
		t.Errorf("metrics = %+v, want the file's token and the environment's listen", c.Metrics)
	}
	err = c.Validate()
	for _, want := range []string{"metrics.token", "metrics.listen"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %s", err, want)
		}
	}
	c, err = Load("", []string{"KANADE_METRICS_TOKEN=" + strings.Repeat("x", MinMetricsTokenLen), "KANADE_METRICS_LISTEN=0.0.0.0:9100"})
	if err != nil || c.Validate() != nil {
		t.Errorf("valid metrics settings: %v, %v", err, c.Validate())
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:8080": true, "localhost:1": true, "[::1]:80": true, "0.0.0.0:8080": false, ":8080": false, "10.0.0.1:80": false} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"1MiB": 1 << 20, "512KiB": 512 << 10, "2GiB": 2 << 30, "1000": 1000, "1GB": 1e9} {
		var b ByteSize
		if err := b.UnmarshalText([]byte(in)); err != nil || b != want {
			t.Errorf("ByteSize(%q) = %d, %v; want %d", in, b, err, want)
		}
	}
	var b ByteSize
	if err := b.UnmarshalText([]byte("lots")); err == nil {
		t.Error("bad size accepted")
	}
	if out, _ := ByteSize(8 << 20).MarshalText(); string(out) != "8MiB" {
		t.Errorf("MarshalText = %s", out)
	}
}

func TestEnvNames_CoverContract(t *testing.T) {
	names := strings.Join(EnvNames(), " ")
	for _, want := range []string{"KANADE_DATA", "KANADE_HTTP", "KANADE_NATS_LISTEN", "KANADE_NATS_URL", "KANADE_DB_DSN",
		"KANADE_OIDC_ISSUER", "KANADE_OIDC_CLIENT_ID", "KANADE_OIDC_CLIENT_SECRET", "KANADE_OIDC_REDIRECT_URL", "KANADE_OIDC_ROLES_CLAIM"} {
		if !strings.Contains(names, want) {
			t.Errorf("EnvNames lacks %s", want)
		}
	}
}

func TestOIDC_FileAndEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kanade.toml")
	err := os.WriteFile(path, []byte(`
[oidc]
issuer = "https://login.example.com/realms/corp"
client_id = "kanade"
redirect_url = "https://kanade.example.com/auth/callback"
roles_claim = "realm_access.roles"
[oidc.roles]
"kanade-admins" = "admin"
helpdesk = "operator"
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, []string{"KANADE_OIDC_CLIENT_SECRET=s3cret", "KANADE_OIDC_SCOPES=openid, email,groups"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if c.DevMode() || c.OIDC.ClientSecret != "s3cret" || c.OIDC.Roles["kanade-admins"] != "admin" || strings.Join(c.OIDC.Scopes, " ") != "openid email groups" {
		t.Errorf("oidc = %+v", c.OIDC)
	}
	if !c.SecureCookies() {
		t.Error("an https redirect URL should make cookies Secure")
	}
	c, err = Load("", []string{"KANADE_OIDC_ISSUER=https://idp.example.com", "KANADE_OIDC_CLIENT_ID=k",
		"KANADE_OIDC_REDIRECT_URL=http://10.0.0.5:8080/auth/callback", "KANADE_OIDC_ROLES=it=admin, desk=operator", "KANADE_OIDC_ROLES_CLAIM=roles"})
	if err != nil || c.Validate() != nil {
		t.Fatalf("env-only OIDC: %v / %v", err, c.Validate())
	}
	if c.OIDC.Roles["desk"] != "operator" || c.OIDC.RolesClaim != "roles" || c.SecureCookies() {
		t.Errorf("env-only oidc = %+v, secure %v", c.OIDC, c.SecureCookies())
	}
	if _, err := Load("", []string{"KANADE_OIDC_ROLES=admin"}); err == nil || !strings.Contains(err.Error(), "KANADE_OIDC_ROLES") {
		t.Errorf("bad roles env: %v", err)
	}
}

func TestOIDC_ValidateReportsEverything(t *testing.T) {
	c := Default()
	c.OIDC = OIDC{Issuer: "http://idp.example.com", RedirectURL: "https://kanade.example.com/callback",
		Roles: map[string]string{"it": "root"}, DefaultRole: "boss"}
	c.Session.IdleTimeout = Duration(24 * time.Hour)
	c.Session.SecureCookies = "maybe"
	err := c.Validate()
	for _, want := range []string{"oidc.issuer", "oidc.client_id", "oidc.redirect_url", "oidc.roles_claim", "oidc.roles.it", "oidc.default_role",
		"session.idle_timeout", "session.secure_cookies"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	c = Default()
	c.OIDC = OIDC{Issuer: "https://idp.example.com", ClientID: "k", RedirectURL: "https://k.example.com/auth/callback", RolesClaim: "groups"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "nobody can sign in") {
		t.Errorf("no roles and no default role: %v", err)
	}
}

func TestStreams_SizesAndAuto(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kanade.toml")
	err := os.WriteFile(path, []byte(`
[server]
disk_warn_percent = 90
[streams]
inventory_max_bytes = "2GiB"
audit_max_bytes = "auto"
fleet_max_bytes = "4MiB"
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, []string{"KANADE_STREAMS_RESULTS_MAX_BYTES=512MiB", "KANADE_STREAMS_EXEC_MAX_BYTES=auto"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	want := Streams{ExecMaxBytes: AutoStreamSize, ResultsMaxBytes: 512 << 20, InventoryMaxBytes: 2 << 30, AuditMaxBytes: AutoStreamSize, FleetMaxBytes: 4 << 20}
	got := c.Streams
	got.ExecMaxAge, got.ResultsMaxAge, got.OutputMaxAge, got.AuditMaxAge = 0, 0, 0, 0
	if got != want {
		t.Errorf("streams = %+v, want %+v", got, want)
	}
	if c.Server.DiskWarnPercent != 90 {
		t.Errorf("disk_warn_percent = %d", c.Server.DiskWarnPercent)
	}
	for in, want := range map[string]string{"auto": "auto", "2GiB": "2GiB", "1536MiB": "1536MiB"} {
		var s StreamSize
		if err := s.UnmarshalText([]byte(in)); err != nil {
			t.Errorf("StreamSize(%q): %v", in, err)
		}
		if out, _ := s.MarshalText(); string(out) != want {
			t.Errorf("StreamSize(%q) = %s, want %s", in, out, want)
		}
	}
	for _, bad := range []string{"0", "lots", "-1GiB", ""} {
		var s StreamSize
		if err := s.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("StreamSize(%q) accepted", bad)
		}
	}
}

func TestStreams_ValidateSizes(t *testing.T) {
	c := Default()
	c.Streams.ExecMaxBytes = 1 << 10
	c.Streams.InventoryMaxBytes = 2 << 20 // below one inventory report
	c.Streams.FleetMaxBytes = 512 << 10
	c.Server.DiskWarnPercent = 100
	err := c.Validate()
	for _, want := range []string{"streams.exec_max_bytes: must be \"auto\" or at least 1MiB", "streams.inventory_max_bytes: must be \"auto\" or at least 4MiB",
		"streams.fleet_max_bytes", "server.disk_warn_percent"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to say %q", err, want)
		}
	}
}

func TestValidRole(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"viewer", true}, {"operator", true}, {"approver", true}, {"admin", true},
		{"Admin", false}, {" admin", false}, {"", false}, {"root", false},
	}
	for _, tt := range tests {
		if got := validRole(tt.in); got != tt.want {
			t.Errorf("validRole(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
