// Package config loads kanade.toml: one struct with a default for every
// key, overridden by KANADE_* environment variables and then by flags, and
// validated as a whole so that every mistake is reported at once.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/jobs"
)

// Config is the whole server configuration.
type Config struct {
	Server    Server    `toml:"server"`
	NATS      NATS      `toml:"nats"`
	DB        DB        `toml:"db"`
	Execution Execution `toml:"execution"`
	Streams   Streams   `toml:"streams"`
	Log       Log       `toml:"log"`
	Rollout   Rollout   `toml:"rollout"`
	Scheduler Scheduler `toml:"scheduler"`
	OIDC      OIDC      `toml:"oidc"`
	Session   Session   `toml:"session"`
	Metrics   Metrics   `toml:"metrics"`
	Secrets   Secrets   `toml:"secrets"`
	Update    Update    `toml:"update"`
}

// Update configures agent self-update (docs/UPDATE.md).
type Update struct {
	// MaxDownloads is how many agents may download a release at once
	// from this server (the download permits).
	MaxDownloads int `toml:"max_downloads"`
}

// MaxUpdateDownloads bounds [update] max_downloads.
const MaxUpdateDownloads = 100_000

// Secrets locates the keys every replica of one installation shares
// (docs/SECRETS.md): `kanade init` writes them, `kanade serve` reads them
// and creates the missing ones.
type Secrets struct {
	// Dir holds the keys ("" = DATA/secrets).
	Dir string `toml:"dir"`
}

// Metrics configures who may read /metrics. In dev mode anyone may (the
// server listens on loopback only); with sign-in configured a scrape on
// the web listener needs a bearer token: Token, or any API token.
type Metrics struct {
	// Token is a bearer token for Prometheus that opens /metrics and
	// nothing else ("" = none; API tokens still work).
	Token string `toml:"token"`
	// Listen is a second listener that serves /metrics alone without any
	// token (host:port; "" = none), for a scraper on a network the web
	// listener's clients are not on.
	Listen string `toml:"listen"`
}

// MinMetricsTokenLen is the shortest metrics.token accepted.
const MinMetricsTokenLen = 24

// Rollout holds the defaults of wave rollouts.
type Rollout struct {
	// FourEyes forbids whoever started a rollout to approve its waves
	// (a manifest's four_eyes overrides it).
	FourEyes bool `toml:"four_eyes"`
	// MaxFailures of a wave without its own: a count ("0") or a percentage ("10%").
	MaxFailures string `toml:"max_failures"`
}

// Scheduler configures schedules.
type Scheduler struct {
	// MisfireGrace: a fire missed while no server ran is made up once at
	// start when it is at most this old; older ones are skipped.
	MisfireGrace Duration `toml:"misfire_grace"`
}

// OIDC configures sign-in with an OpenID Connect issuer. Without an issuer
// kanade runs in dev mode: nobody signs in, loopback listeners only.
type OIDC struct {
	Issuer       string `toml:"issuer"`
	ClientID     string `toml:"client_id"`
	ClientSecret string `toml:"client_secret"`
	// RedirectURL is this server's callback as the issuer knows it:
	// https://kanade.example.com/auth/callback.
	RedirectURL string   `toml:"redirect_url"`
	Scopes      []string `toml:"scopes"`
	// RolesClaim carries the values mapped by Roles ("groups"; a dotted
	// path reaches nested claims: "realm_access.roles").
	RolesClaim string `toml:"roles_claim"`
	// NameClaim names the user in the nav and the audit log (empty:
	// preferred_username, then email, then name, then sub).
	NameClaim string `toml:"name_claim"`
	// Roles maps claim values to viewer, operator, approver or admin.
	Roles map[string]string `toml:"roles"`
	// DefaultRole is given to users no value maps; empty refuses them.
	DefaultRole string `toml:"default_role"`
}

// Session configures browser sessions.
type Session struct {
	Lifetime    Duration `toml:"lifetime"`
	IdleTimeout Duration `toml:"idle_timeout"`
	// SecureCookies: "auto" (Secure when redirect_url is https), "true" or "false".
	SecureCookies string `toml:"secure_cookies"`
}

// DevMode reports whether no OIDC issuer is configured.
func (c *Config) DevMode() bool { return c.OIDC.Issuer == "" }

// SecureCookies reports whether cookies get the Secure attribute.
func (c *Config) SecureCookies() bool {
	switch c.Session.SecureCookies {
	case "true":
		return true
	case "false":
		return false
	}
	return strings.HasPrefix(c.OIDC.RedirectURL, "https://")
}

// Server holds the web listener and the data directory.
type Server struct {
	// HTTP is the web/API listener address.
	HTTP string `toml:"http"`
	// Data holds the embedded NATS store, the SQLite file and generated secrets.
	Data string `toml:"data"`
	// DiskWarnPercent: the health check warns (metrics, /healthz, a
	// banner on every page) when the data volume is this full.
	DiskWarnPercent int `toml:"disk_warn_percent"`
	// SSEMaxLifetime ends a live-update stream after this long (the
	// browser reconnects), so no connection lives forever.
	SSEMaxLifetime Duration `toml:"sse_max_lifetime"`
	// JobsDir holds the job manifests and schedules (*.yaml), reloaded
	// when they change. A missing directory means no jobs, not an error.
	JobsDir string `toml:"jobs_dir"`
	// AgentDownloads holds the agent binaries served at
	// /download/agent/<os>-<arch>, laid out as `make build` writes them
	// (<os>-<arch>/kanade-agent[.exe]); "" is the directory of the
	// running kanade binary.
	AgentDownloads string `toml:"agent_downloads"`
	// TLSCert and TLSKey make the web listener serve HTTPS itself (PEM
	// files, reloaded when replaced); usually a reverse proxy does that.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
}

// NATS selects the embedded broker or an external one.
type NATS struct {
	// Listen is the embedded broker's client listener.
	Listen string `toml:"listen"`
	// URL of an external broker; empty runs the embedded one.
	URL string `toml:"url"`
	// Credentials is a .creds or nkey seed file for the server's own
	// connection to an external broker.
	Credentials string `toml:"credentials"`
	// MaxPayload is the embedded broker's largest message; a result
	// carries up to two capped output streams.
	MaxPayload ByteSize `toml:"max_payload"`
	// AgentURL is the broker URL install commands give agents
	// (nats:// or tls://, comma-separated for several); "" derives it
	// from Listen and the host name the admin's browser used.
	AgentURL string `toml:"agent_url"`
	// TLS on the embedded broker's client listener: "auto" makes a private
	// CA (DATA/tls/ca.pem) and a server certificate and renews it; "" with
	// TLSCert and TLSKey uses those files; "off" or "" without them is
	// plain text.
	// Enrollment bundles carry the CA, which agents pin.
	TLS string `toml:"tls"`
	// TLSCert and TLSKey are the broker's certificate and key (PEM),
	// reloaded when the files change.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// TLSCA is the CA (PEM) agents are given to verify TLSCert; empty:
	// the system's roots.
	TLSCA string `toml:"tls_ca"`
	// TLSHosts are the names and addresses agents use to reach the broker,
	// for the certificate "auto" makes (the listen address, the host name
	// and the interface addresses are always in it).
	TLSHosts []string `toml:"tls_hosts"`
	// InsecurePlaintext allows a plain-text client listener on a
	// non-loopback address outside dev mode: credentials and scripts then
	// cross the network readable by anyone on the path.
	InsecurePlaintext bool `toml:"insecure_plaintext"`
}

// TLSEnabled reports whether the embedded broker serves TLS.
func (n NATS) TLSEnabled() bool { return n.TLS == "auto" || (n.TLS != "off" && n.TLSCert != "") }

// DB selects the database.
type DB struct {
	// Driver is "sqlite" or "postgres".
	Driver string `toml:"driver"`
	// DSN is the SQLite file path (default DATA/kanade.db) or a Postgres URL.
	DSN string `toml:"dsn"`
}

// Execution holds defaults for runs.
type Execution struct {
	DefaultTimeout  Duration `toml:"default_timeout"`
	DefaultDeadline Duration `toml:"default_deadline"`
	MaxTimeout      Duration `toml:"max_timeout"`
	// OutputCap is the most output kept per stream and target.
	OutputCap ByteSize `toml:"output_cap"`
	// LostGrace is how long past its timeout a running target waits for
	// its silent agent before the server ends it as lost.
	LostGrace Duration `toml:"lost_grace"`
}

// Streams bounds every JetStream stream by age and every stream and KV
// bucket by size. The embedded broker reserves each size on disk, so the
// sizes together must fit the volume of DATA/nats; "auto" sizes one as a
// share of that volume (app/bus).
type Streams struct {
	ExecMaxAge            Duration   `toml:"exec_max_age"`
	ExecMaxBytes          StreamSize `toml:"exec_max_bytes"`
	ResultsMaxAge         Duration   `toml:"results_max_age"`
	ResultsMaxBytes       StreamSize `toml:"results_max_bytes"`
	OutputMaxAge          Duration   `toml:"output_max_age"`
	OutputMaxBytes        StreamSize `toml:"output_max_bytes"`
	InventoryMaxBytes     StreamSize `toml:"inventory_max_bytes"`
	AuditMaxAge           Duration   `toml:"audit_max_age"`
	AuditMaxBytes         StreamSize `toml:"audit_max_bytes"`
	ScriptCurrentMaxBytes StreamSize `toml:"script_current_max_bytes"`
	ScriptStatusMaxBytes  StreamSize `toml:"script_status_max_bytes"`
	FleetMaxBytes         StreamSize `toml:"fleet_max_bytes"`
	// ReleasesMaxBytes bounds the agent_releases Object Store.
	ReleasesMaxBytes StreamSize `toml:"releases_max_bytes"`
}

// Log configures slog.
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text or json
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		Server: Server{HTTP: "127.0.0.1:8080", Data: "./data", DiskWarnPercent: 80, SSEMaxLifetime: Duration(30 * time.Minute), JobsDir: "./jobs"},
		NATS:   NATS{Listen: "127.0.0.1:4222", MaxPayload: 8 << 20},
		DB:     DB{Driver: "sqlite"},
		Execution: Execution{
			DefaultTimeout:  Duration(10 * time.Minute),
			DefaultDeadline: Duration(time.Hour),
			MaxTimeout:      Duration(24 * time.Hour),
			OutputCap:       1 << 20,
			LostGrace:       Duration(2 * time.Minute),
		},
		Streams: Streams{
			ExecMaxAge: Duration(7 * 24 * time.Hour), ResultsMaxAge: Duration(30 * 24 * time.Hour),
			OutputMaxAge: Duration(24 * time.Hour), AuditMaxAge: Duration(2 * 365 * 24 * time.Hour),
		},
		Log:       Log{Level: "info", Format: "text"},
		OIDC:      OIDC{Scopes: []string{"openid", "profile", "email"}, RolesClaim: "groups"},
		Rollout:   Rollout{MaxFailures: "0"},
		Scheduler: Scheduler{MisfireGrace: Duration(10 * time.Minute)},
		Update:    Update{MaxDownloads: 200},
		Session:   Session{Lifetime: Duration(12 * time.Hour), IdleTimeout: Duration(time.Hour), SecureCookies: "auto"},
	}
}

// Load reads the file at path over the defaults (a missing path is an
// error; an empty path means defaults only), then applies the
// environment. Unknown keys are errors.
func Load(path string, environ []string) (Config, error) {
	c := Default()
	if path != "" {
		md, err := toml.DecodeFile(path, &c)
		if err != nil {
			return c, fmt.Errorf("config %s: %w", path, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			var keys []string
			for _, k := range und {
				keys = append(keys, k.String())
			}
			return c, fmt.Errorf("config %s: unknown keys: %s", path, strings.Join(keys, ", "))
		}
	}
	if err := c.applyEnv(environ); err != nil {
		return c, err
	}
	c.DB.inferDriver()
	return c, nil
}

// IsPostgresURL reports whether dsn is a postgres:// or postgresql:// URL.
func IsPostgresURL(dsn string) bool {
	u, err := url.Parse(strings.TrimSpace(dsn))
	return err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql")
}

// SetURL selects the database by a URL, as --db does: a postgres:// URL
// selects PostgreSQL; anything else is an error (SQLite is the default
// and needs no URL).
func (d *DB) SetURL(dsn string) error {
	if !IsPostgresURL(dsn) {
		return fmt.Errorf("--db %q: want a postgres:// URL, like postgres://kanade:PASSWORD@db.example.com:5432/kanade?sslmode=verify-full (without --db the database is SQLite in DATA/kanade.db)", redactDSN(dsn))
	}
	d.Driver, d.DSN = DriverPostgres, strings.TrimSpace(dsn)
	return nil
}

// inferDriver makes a postgres:// DSN under the default driver select
// PostgreSQL: a SQLite file cannot be named by such a URL, so
// KANADE_DB_DSN=postgres://… alone is enough.
func (d *DB) inferDriver() {
	if d.Driver == DriverSQLite && IsPostgresURL(d.DSN) {
		d.Driver = DriverPostgres
	}
}

// Database drivers.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// redactDSN hides a password in a URL, for error messages and logs.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	return u.Redacted()
}

// SecretsDir is where the shared keys live: secrets.dir, else DATA/secrets.
func (c *Config) SecretsDir() string {
	if c.Secrets.Dir != "" {
		return c.Secrets.Dir
	}
	return filepath.Join(c.Server.Data, "secrets")
}

// envAliases are the short names the operations contract promises.
var envAliases = map[string]string{
	"KANADE_DATA":        "KANADE_SERVER_DATA",
	"KANADE_HTTP":        "KANADE_SERVER_HTTP",
	"KANADE_NATS_LISTEN": "KANADE_NATS_LISTEN",
	"KANADE_NATS_URL":    "KANADE_NATS_URL",
	"KANADE_SECRETS":     "KANADE_SECRETS_DIR",
}

// EnvNames lists every environment variable the configuration reads.
func EnvNames() []string {
	var names []string
	walk(reflect.ValueOf(&Config{}).Elem(), func(env string, _ reflect.Value) { names = append(names, env) })
	for k := range envAliases {
		names = append(names, k)
	}
	sort.Strings(names)
	return dedup(names)
}

func dedup(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func (c *Config) applyEnv(environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, "KANADE_") {
			env[k] = v
		}
	}
	for alias, full := range envAliases {
		if v, ok := env[alias]; ok {
			if _, set := env[full]; !set || alias == full {
				env[full] = v
			}
		}
	}
	var errs []error
	walk(reflect.ValueOf(c).Elem(), func(name string, f reflect.Value) {
		v, ok := env[name]
		if !ok {
			return
		}
		if err := setText(f, v); err != nil {
			errs = append(errs, fmt.Errorf("environment %s: %w", name, err))
		}
	})
	return errors.Join(errs...)
}

// walk calls fn for every leaf field with its KANADE_SECTION_KEY name.
func walk(v reflect.Value, fn func(env string, f reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sec := v.Field(i)
		secName := strings.ToUpper(t.Field(i).Tag.Get("toml"))
		st := sec.Type()
		for j := 0; j < st.NumField(); j++ {
			key := strings.ToUpper(st.Field(j).Tag.Get("toml"))
			fn("KANADE_"+secName+"_"+key, sec.Field(j))
		}
	}
}

type textUnmarshaler interface{ UnmarshalText([]byte) error }

func setText(f reflect.Value, s string) error {
	if u, ok := f.Addr().Interface().(textUnmarshaler); ok {
		return u.UnmarshalText([]byte(s))
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		f.SetInt(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		f.SetBool(b)
	case reflect.Slice: // []string: comma-separated
		var list []string
		for _, v := range strings.Split(s, ",") {
			if v = strings.TrimSpace(v); v != "" {
				list = append(list, v)
			}
		}
		f.Set(reflect.ValueOf(list))
	case reflect.Map: // map[string]string: "key=value,key=value"
		m := map[string]string{}
		for _, kv := range strings.Split(s, ",") {
			if strings.TrimSpace(kv) == "" {
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return fmt.Errorf("%q is not a list of key=value pairs", s)
			}
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		f.Set(reflect.ValueOf(m))
	default:
		return fmt.Errorf("unsupported type %s", f.Type())
	}
	return nil
}

// Validate reports every problem in c at once.
func (c *Config) Validate() error {
	var errs []error
	add := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	if _, _, err := net.SplitHostPort(c.Server.HTTP); err != nil {
		add("server.http", "%q is not host:port", c.Server.HTTP)
	}
	if c.Server.Data == "" {
		add("server.data", "must not be empty")
	}
	if (c.Server.TLSCert == "") != (c.Server.TLSKey == "") {
		add("server.tls_cert", "tls_cert and tls_key go together")
	}
	if c.Server.JobsDir == "" {
		add("server.jobs_dir", "must not be empty")
	}
	if c.NATS.URL == "" {
		if _, _, err := net.SplitHostPort(c.NATS.Listen); err != nil {
			add("nats.listen", "%q is not host:port", c.NATS.Listen)
		}
	} else if !strings.HasPrefix(c.NATS.URL, "nats://") && !strings.HasPrefix(c.NATS.URL, "tls://") {
		add("nats.url", "%q must start with nats:// or tls://", c.NATS.URL)
	}
	switch {
	case c.NATS.TLS != "" && c.NATS.TLS != "auto" && c.NATS.TLS != "off":
		add("nats.tls", "%q is not \"auto\" or \"off\" (or empty with tls_cert and tls_key)", c.NATS.TLS)
	case c.NATS.TLS == "auto" && (c.NATS.TLSCert != "" || c.NATS.TLSKey != ""):
		add("nats.tls", "\"auto\" makes its own certificate: remove tls_cert and tls_key, or tls = \"auto\"")
	case (c.NATS.TLSCert == "") != (c.NATS.TLSKey == ""):
		add("nats.tls_cert", "tls_cert and tls_key go together")
	case c.NATS.URL != "" && (c.NATS.TLSEnabled()):
		add("nats.tls", "applies to the embedded broker; for an external broker configure TLS there, use a tls:// url and give agents its CA with tls_ca")
	}
	c.validateAgents(add)
	if c.NATS.MaxPayload < 1<<20 || c.NATS.MaxPayload > 64<<20 {
		add("nats.max_payload", "must be between 1MiB and 64MiB")
	}
	switch c.DB.Driver {
	case "sqlite":
		if IsPostgresURL(c.DB.DSN) {
			add("db.dsn", "is a postgres:// URL but db.driver is sqlite")
		}
	case "postgres":
		if c.DB.DSN == "" {
			add("db.dsn", "is required for postgres")
		} else if !IsPostgresURL(c.DB.DSN) && !strings.Contains(c.DB.DSN, "=") {
			add("db.dsn", "%q is not a postgres:// URL (or key=value connection string)", redactDSN(c.DB.DSN))
		}
	default:
		add("db.driver", "%q is not sqlite or postgres", c.DB.Driver)
	}
	pos := map[string]Duration{
		"execution.default_timeout": c.Execution.DefaultTimeout, "execution.default_deadline": c.Execution.DefaultDeadline,
		"execution.max_timeout": c.Execution.MaxTimeout, "execution.lost_grace": c.Execution.LostGrace, "server.sse_max_lifetime": c.Server.SSEMaxLifetime,
		"streams.exec_max_age": c.Streams.ExecMaxAge, "streams.results_max_age": c.Streams.ResultsMaxAge,
		"streams.output_max_age": c.Streams.OutputMaxAge, "streams.audit_max_age": c.Streams.AuditMaxAge,
	}
	for _, k := range sortedKeys(pos) {
		if pos[k] <= 0 {
			add(k, "must be a positive duration")
		}
	}
	if c.Execution.DefaultTimeout > c.Execution.MaxTimeout {
		add("execution.default_timeout", "is longer than execution.max_timeout")
	}
	if c.Execution.OutputCap < 1024 || int64(c.Execution.OutputCap) > int64(c.NATS.MaxPayload)/2-64<<10 {
		add("execution.output_cap", "must be at least 1KiB and at most half of nats.max_payload minus 64KiB")
	}
	sizes := map[string]struct{ v, min StreamSize }{
		"streams.exec_max_bytes": {c.Streams.ExecMaxBytes, 1 << 20}, "streams.results_max_bytes": {c.Streams.ResultsMaxBytes, 1 << 20},
		"streams.output_max_bytes":         {c.Streams.OutputMaxBytes, wire.MaxOutputChunkBytes},
		"streams.inventory_max_bytes":      {c.Streams.InventoryMaxBytes, wire.MaxInventoryBytes},
		"streams.audit_max_bytes":          {c.Streams.AuditMaxBytes, 1 << 20},
		"streams.script_current_max_bytes": {c.Streams.ScriptCurrentMaxBytes, 1 << 20},
		"streams.script_status_max_bytes":  {c.Streams.ScriptStatusMaxBytes, 1 << 20}, "streams.fleet_max_bytes": {c.Streams.FleetMaxBytes, 1 << 20},
		"streams.releases_max_bytes": {c.Streams.ReleasesMaxBytes, 1 << 20},
	}
	for _, k := range sortedKeys(sizes) {
		if sz := sizes[k]; sz.v != AutoStreamSize && sz.v < max(sz.min, 1<<20) {
			add(k, "must be \"auto\" or at least %s", ByteSize(max(sz.min, 1<<20)))
		}
	}
	if p := c.Server.DiskWarnPercent; p < 1 || p > 99 {
		add("server.disk_warn_percent", "must be between 1 and 99")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		add("log.format", "%q is not text or json", c.Log.Format)
	}
	if n := c.Update.MaxDownloads; n < 1 || n > MaxUpdateDownloads {
		add("update.max_downloads", "must be between 1 and %d", MaxUpdateDownloads)
	}
	if c.Scheduler.MisfireGrace < 0 {
		add("scheduler.misfire_grace", "must not be negative (0 skips every missed fire)")
	}
	if _, err := jobs.ParseThreshold(c.Rollout.MaxFailures); err != nil {
		add("rollout.max_failures", "%v", err)
	}
	c.validateAuth(add)
	if n := len(c.Metrics.Token); n > 0 && n < MinMetricsTokenLen {
		add("metrics.token", "must be at least %d characters (e.g. openssl rand -hex 24)", MinMetricsTokenLen)
	}
	if c.Metrics.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			add("metrics.listen", "%q is not host:port", c.Metrics.Listen)
		}
	}
	return errors.Join(errs...)
}

// validRole reports whether s is exactly the name of an assignable role
// (auth.Roles), as kanade.toml must spell it.
func validRole(s string) bool {
	r, err := auth.ParseRole(s)
	return err == nil && r.String() == s
}

func (c *Config) validateAuth(add func(field, format string, a ...any)) {
	if c.Session.Lifetime <= 0 {
		add("session.lifetime", "must be a positive duration")
	}
	if c.Session.IdleTimeout <= 0 {
		add("session.idle_timeout", "must be a positive duration")
	} else if c.Session.IdleTimeout > c.Session.Lifetime {
		add("session.idle_timeout", "is longer than session.lifetime")
	}
	switch c.Session.SecureCookies {
	case "auto", "true", "false":
	default:
		add("session.secure_cookies", "%q is not auto, true or false", c.Session.SecureCookies)
	}
	o := c.OIDC
	if o.Issuer == "" {
		return
	}
	if u, err := url.Parse(o.Issuer); err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && IsLoopback(hostPort(u)))) {
		add("oidc.issuer", "%q must be an https:// URL (http:// only on loopback, for testing)", o.Issuer)
	}
	if o.ClientID == "" {
		add("oidc.client_id", "is required when oidc.issuer is set")
	}
	if u, err := url.Parse(o.RedirectURL); o.RedirectURL == "" || err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		add("oidc.redirect_url", "%q must be this server's callback URL, like https://kanade.example.com/auth/callback", o.RedirectURL)
	} else if u.Path != "/auth/callback" {
		add("oidc.redirect_url", "%q must end in /auth/callback", o.RedirectURL)
	}
	if len(o.Roles) > 0 && o.RolesClaim == "" {
		add("oidc.roles_claim", "must name the claim that oidc.roles maps")
	}
	for _, k := range sortedKeys(o.Roles) {
		if !validRole(o.Roles[k]) {
			add("oidc.roles."+k, "%q is not viewer, operator, approver or admin", o.Roles[k])
		}
	}
	if o.DefaultRole != "" && !validRole(o.DefaultRole) {
		add("oidc.default_role", "%q is not viewer, operator, approver, admin or empty (refuse)", o.DefaultRole)
	}
	if len(o.Roles) == 0 && o.DefaultRole == "" {
		add("oidc.roles", "map at least one claim value to a role (or set oidc.default_role), or nobody can sign in")
	}
}

// hostPort returns u's host with a port, for IsLoopback.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// DBDSN returns the database DSN, defaulting SQLite to DATA/kanade.db.
func (c *Config) DBDSN() string {
	if c.DB.DSN == "" && c.DB.Driver == "sqlite" {
		return filepath.Join(c.Server.Data, "kanade.db")
	}
	return c.DB.DSN
}

// IsLoopback reports whether a host:port listens on loopback only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Duration is a time.Duration read from a Go duration string ("90s").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalText parses a duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration like \"30s\", \"10m\" or \"1h30m\"", string(b))
	}
	*d = Duration(v)
	return nil
}

// MarshalText formats a duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// ByteSize is a size read from "512KiB", "8MiB", "1GiB", "1GB" or a number of bytes.
type ByteSize int64

var units = []struct {
	suffix string
	mult   int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}

// UnmarshalText parses a size.
func (b *ByteSize) UnmarshalText(t []byte) error {
	s := strings.TrimSpace(string(t))
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size like \"512KiB\", \"8MiB\" or \"1GiB\"", string(t))
	}
	*b = ByteSize(n * mult)
	return nil
}

// String formats a size like MarshalText.
func (b ByteSize) String() string { t, _ := b.MarshalText(); return string(t) }

// StreamSize is the size of a stream or bucket: a ByteSize, or "auto"
// (AutoStreamSize), sized from the volume when the server starts.
type StreamSize int64

// AutoStreamSize is "auto".
const AutoStreamSize StreamSize = 0

// UnmarshalText parses "auto" or a size.
func (s *StreamSize) UnmarshalText(t []byte) error {
	if strings.TrimSpace(string(t)) == "auto" {
		*s = AutoStreamSize
		return nil
	}
	var b ByteSize
	if err := b.UnmarshalText(t); err != nil {
		return fmt.Errorf("%q is not \"auto\" or a size like \"512MiB\" or \"2GiB\"", string(t))
	}
	if b == 0 {
		return fmt.Errorf("%q: a stream needs a size; \"auto\" sizes it from the volume", string(t))
	}
	*s = StreamSize(b)
	return nil
}

// MarshalText formats "auto" or the size.
func (s StreamSize) MarshalText() ([]byte, error) {
	if s == AutoStreamSize {
		return []byte("auto"), nil
	}
	return ByteSize(s).MarshalText()
}

// MarshalText formats a size in the largest exact binary unit.
func (b ByteSize) MarshalText() ([]byte, error) {
	n := int64(b)
	for i := 3; i >= 0; i-- {
		if m := units[i].mult; n >= m && n%m == 0 {
			return []byte(strconv.FormatInt(n/m, 10) + units[i].suffix), nil
		}
	}
	return []byte(strconv.FormatInt(n, 10)), nil
}

// ensureDir creates dir with owner-only permissions.
func ensureDir(dir string) error { return os.MkdirAll(dir, 0o700) }

// PrepareData creates the data directory.
func (c *Config) PrepareData() error {
	if err := ensureDir(c.Server.Data); err != nil {
		return fmt.Errorf("server.data %s: %w", c.Server.Data, err)
	}
	return nil
}
