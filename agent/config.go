package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/kanadehq/kanade/agent/datadir"
	"github.com/kanadehq/kanade/agent/wire"
)

// config is the agent configuration: file, then KANADE_AGENT_* environment, then flags.
type config struct {
	Server            string   `toml:"server"`
	Credentials       string   `toml:"credentials"`
	PCID              string   `toml:"pc_id"`
	Groups            []string `toml:"groups"`
	Data              string   `toml:"data"`
	HeartbeatInterval duration `toml:"heartbeat_interval"`
	// InventoryInterval is how often the inventory is collected and sent
	// (also at start, and when the server asks); 0 turns it off, and with
	// it the logged-on user in heartbeats.
	InventoryInterval duration `toml:"inventory_interval"`
	OutputCap         byteSize `toml:"output_cap"`
	LogLevel          string   `toml:"log_level"`

	// Where values came from, for `service install` and the log.
	args       []string // the flags of this run, as given (a trial run and a re-execution repeat them)
	configPath string   // --config, as given
	pcIDSet    bool     // pc_id was configured (not the host name)
	dataNote   string   // why the data directory is not the default
}

func defaultConfig() config {
	return config{
		Server:            "nats://127.0.0.1:4222",
		Data:              defaultDataDir(),
		HeartbeatInterval: duration(30 * time.Second),
		InventoryInterval: duration(24 * time.Hour),
		OutputCap:         1 << 20,
		LogLevel:          "info",
	}
}

// loadConfig reads the configuration of a run (name is the command, for
// the usage text).
func loadConfig(name string, args, environ []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		if name == "kanade-agent" {
			fmt.Fprintln(stderr, "usage: kanade-agent [flags]   (runs the agent in the foreground)\n"+
				"       kanade-agent service install|uninstall|start|stop|status [flags]\n"+
				"       kanade-agent status [--data DIR]\n"+
				"       kanade-agent version")
		} else {
			fmt.Fprintf(stderr, "usage: %s [flags]\n", name)
		}
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "\nEnvironment: KANADE_AGENT_SERVER, KANADE_AGENT_CREDENTIALS, KANADE_AGENT_PC_ID, KANADE_AGENT_GROUPS,\n"+
			"KANADE_AGENT_DATA, KANADE_AGENT_HEARTBEAT_INTERVAL, KANADE_AGENT_INVENTORY_INTERVAL, KANADE_AGENT_OUTPUT_CAP,\n"+
			"KANADE_AGENT_LOG_LEVEL (flags win).")
	}
	def := defaultConfig()
	configPath := fs.String("config", "", "TOML config file")
	server := fs.String("server", "", "NATS URL (default "+def.Server+")")
	creds := fs.String("credentials", "", "credentials file (the server's DATA/agent-credentials)")
	pcID := fs.String("pc-id", "", "this PC's id (default: the short host name)")
	groups := fs.String("groups", "", "comma-separated groups")
	data := fs.String("data", "", "data directory: identity, logs (DATA/logs/agent.log), status (default "+def.Data+")")
	hb := fs.String("heartbeat", "", "heartbeat interval (default 30s)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	c := def
	c.Data = ""
	c.args = args
	if *configPath != "" {
		md, err := toml.DecodeFile(*configPath, &c)
		if err != nil {
			return c, fmt.Errorf("config %s: %w", *configPath, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			return c, fmt.Errorf("config %s: unknown key %s", *configPath, und[0])
		}
		c.configPath = *configPath
	}
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	var errs []error
	set := func(dst *string, envName, flagVal string) {
		if v, ok := env[envName]; ok && v != "" {
			*dst = v
		}
		if flagVal != "" {
			*dst = flagVal
		}
	}
	set(&c.Server, "KANADE_AGENT_SERVER", *server)
	set(&c.Credentials, "KANADE_AGENT_CREDENTIALS", *creds)
	set(&c.PCID, "KANADE_AGENT_PC_ID", *pcID)
	set(&c.Data, "KANADE_AGENT_DATA", *data)
	set(&c.LogLevel, "KANADE_AGENT_LOG_LEVEL", *logLevel)
	var groupList, hbText, capText string
	set(&groupList, "KANADE_AGENT_GROUPS", *groups)
	if groupList != "" {
		c.Groups = splitList(groupList)
	}
	c.Groups = wire.NormalizeGroups(c.Groups)
	set(&hbText, "KANADE_AGENT_HEARTBEAT_INTERVAL", *hb)
	if hbText != "" {
		if err := c.HeartbeatInterval.UnmarshalText([]byte(hbText)); err != nil {
			errs = append(errs, fmt.Errorf("heartbeat_interval: %w", err))
		}
	}
	var invText string
	set(&invText, "KANADE_AGENT_INVENTORY_INTERVAL", "")
	if invText != "" {
		if err := c.InventoryInterval.UnmarshalText([]byte(invText)); err != nil {
			errs = append(errs, fmt.Errorf("inventory_interval: %w", err))
		}
	}
	set(&capText, "KANADE_AGENT_OUTPUT_CAP", "")
	if capText != "" {
		if err := c.OutputCap.UnmarshalText([]byte(capText)); err != nil {
			errs = append(errs, fmt.Errorf("output_cap: %w", err))
		}
	}
	c.pcIDSet = c.PCID != ""
	if c.Data == "" {
		c.Data, c.dataNote = chooseDataDir()
	}
	if c.PCID == "" {
		host, err := os.Hostname()
		if err != nil {
			errs = append(errs, fmt.Errorf("pc_id: cannot read the host name (%v); set --pc-id", err))
		}
		c.PCID = wire.PCIDFromHostname(host)
	}
	if err := wire.ValidateID("pc_id", c.PCID); err != nil {
		errs = append(errs, fmt.Errorf("%w; set a valid one with --pc-id", err))
	}
	for _, g := range c.Groups {
		if err := wire.ValidateGroup(g); err != nil {
			errs = append(errs, err)
		}
	}
	if !strings.HasPrefix(c.Server, "nats://") && !strings.HasPrefix(c.Server, "tls://") {
		errs = append(errs, fmt.Errorf("server: %q must be a nats:// or tls:// URL", c.Server))
	}
	if c.Credentials == "" {
		errs = append(errs, errors.New("credentials: required (anonymous NATS access is not allowed); pass --credentials with the server's DATA/agent-credentials"))
	}
	if c.HeartbeatInterval.D() < time.Second {
		errs = append(errs, errors.New("heartbeat_interval: must be at least 1s"))
	}
	if d := c.InventoryInterval.D(); d != 0 && d < time.Minute {
		errs = append(errs, errors.New("inventory_interval: must be at least 1m (or 0 to turn inventory off)"))
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("log_level: %q is not debug, info, warn or error", c.LogLevel))
	}
	if c.OutputCap < 1024 {
		errs = append(errs, errors.New("output_cap: must be at least 1KiB"))
	}
	if c.Data == "" {
		errs = append(errs, errors.New("data: must not be empty"))
	}
	return c, errors.Join(errs...)
}

// chooseDataDir returns the default data directory, or that of an
// earlier release when only that one holds this PC's identity (an upgrade
// must not enroll the PC anew); the note says so.
func chooseDataDir() (dir, note string) {
	current, legacy := defaultDataDirs()
	dir, old := datadir.Choose(current, legacy)
	if old {
		note = fmt.Sprintf("using the data directory of an earlier release, which holds this PC's identity (the default is now %s; pass --data to choose)", current)
	}
	return dir, note
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

type duration time.Duration

func (d duration) D() time.Duration { return time.Duration(d) }

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration like \"30s\"", string(b))
	}
	*d = duration(v)
	return nil
}

type byteSize int64

func (s *byteSize) UnmarshalText(b []byte) error {
	t := strings.TrimSpace(string(b))
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(t, u.suf) {
			t, mult = strings.TrimSuffix(t, u.suf), u.m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size like \"1MiB\"", string(b))
	}
	*s = byteSize(n * mult)
	return nil
}
