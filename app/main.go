// Command kanade is the kanade server: the web GUI and JSON API, the
// dispatcher, the projectors and (by default) the embedded NATS broker.
//
//	kanade [serve] [--config FILE] [--data DIR] [--http ADDR] [--nats-listen ADDR]
//	kanade migrate [--config FILE] [--data DIR]
//	kanade init [--config FILE] [--data DIR] [--secrets DIR]
//	kanade backup [--config FILE] [--data DIR] [--nats-listen ADDR] --out FILE
//	kanade restore --in FILE [--config FILE] [--data DIR]
//	kanade token create --role ROLE --name NAME [--expires 90d] [--config FILE] [--data DIR]
//	kanade token list|revoke ID [--config FILE] [--data DIR]
//	kanade version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kanadehq/kanade/app/config"
	"github.com/kanadehq/kanade/store"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "kanade:", err)
		}
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "version":
		fmt.Fprintln(stdout, "kanade", version)
		return nil
	case "serve":
		cfg, err := loadConfig("serve", args, stderr, true)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return serve(ctx, cfg, serveOptions{Stdout: stdout, Log: newLogger(stderr, cfg.Log)})
	case "migrate":
		cfg, err := loadConfig("migrate", args, stderr, false)
		if err != nil {
			return err
		}
		ctx := context.Background()
		if err := cfg.PrepareData(); err != nil {
			return err
		}
		st, err := store.Open(ctx, cfg.DB.Driver, cfg.DBDSN())
		if err != nil {
			return err
		}
		defer st.Close()
		if err := st.Migrate(ctx); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "database is up to date")
		return nil
	case "token":
		return tokenCmd(args, stdout, stderr)
	case "init":
		return initCmd(args, stdout, stderr)
	case "backup":
		return backupCmd(args, stdout, stderr)
	case "restore":
		return restoreCmd(args, stdout, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return nil
	default:
		usage(stderr)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  kanade [serve] [--config FILE] [--data DIR] [--http ADDR] [--nats-listen ADDR]
                 [--nats-tls auto|off] [--insecure-plaintext] [--db postgres://…] [--secrets DIR]
  kanade migrate [--config FILE] [--data DIR] [--db postgres://…]
  kanade init [--config FILE] [--data DIR] [--secrets DIR]
      writes the keys replicas share (DATA/secrets) and exits; existing keys are kept
  kanade backup [--config FILE] [--data DIR] [--nats-listen ADDR] [--db postgres://…] [--secrets DIR] --out FILE
      while the server runs: database (SQLite), secrets, broker state, manifest → one .tar.gz
  kanade restore --in FILE [--config FILE] [--data DIR] [--secrets DIR]
      into an empty data directory; refuses a tampered or partial file
  kanade token create --role viewer|operator|approver|admin --name NAME [--expires 90d] [--config FILE] [--data DIR]
  kanade token list [--config FILE] [--data DIR]
  kanade token revoke ID [--config FILE] [--data DIR]
  kanade version

Configuration: kanade.toml (every key documented there), overridden by KANADE_* environment
variables (KANADE_DATA, KANADE_HTTP, KANADE_NATS_LISTEN, KANADE_NATS_URL, KANADE_NATS_TLS,
KANADE_DB_DSN, KANADE_SECRETS, KANADE_<SECTION>_<KEY>),
overridden by flags.
`)
}

// loadConfig reads the file, the environment and then the flags.
func loadConfig(name string, args []string, stderr io.Writer, serveFlags bool, extra ...func(*flag.FlagSet)) (config.Config, error) {
	fs := flag.NewFlagSet("kanade "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (default ./kanade.toml when it exists)")
	data := fs.String("data", "", "data directory (embedded NATS store, SQLite file, generated keys)")
	dbURL := fs.String("db", "", "database: a postgres:// URL (default: SQLite in DATA/kanade.db)")
	secrets := fs.String("secrets", "", "directory of the keys replicas share (default DATA/secrets; kanade init writes it)")
	var httpAddr, natsListen, natsTLS *string
	var insecurePlaintext *bool
	if serveFlags {
		httpAddr = fs.String("http", "", "web/API listener (default 127.0.0.1:8080)")
		natsListen = fs.String("nats-listen", "", "embedded NATS client listener (default 127.0.0.1:4222)")
		natsTLS = fs.String("nats-tls", "", `TLS on the broker's client listener: "auto" (a private CA in DATA/tls) or "off"`)
		insecurePlaintext = fs.Bool("insecure-plaintext", false, "allow a plain-text broker listener on a non-loopback address")
	}
	for _, f := range extra {
		f(fs)
	}
	if err := fs.Parse(args); err != nil {
		return config.Config{}, err
	}
	if fs.NArg() > 0 {
		return config.Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	file := *path
	if file == "" {
		if _, err := os.Stat("kanade.toml"); err == nil {
			file = "kanade.toml"
		}
	}
	cfg, err := config.Load(file, os.Environ())
	if err != nil {
		return cfg, err
	}
	if *data != "" {
		cfg.Server.Data = *data
	}
	if *dbURL != "" {
		if err := cfg.DB.SetURL(*dbURL); err != nil {
			return cfg, err
		}
	}
	if *secrets != "" {
		cfg.Secrets.Dir = *secrets
	}
	if serveFlags {
		if *httpAddr != "" {
			cfg.Server.HTTP = *httpAddr
		}
		if *natsListen != "" {
			cfg.NATS.Listen = *natsListen
		}
		if *natsTLS != "" {
			cfg.NATS.TLS = *natsTLS
		}
		if *insecurePlaintext {
			cfg.NATS.InsecurePlaintext = true
		}
	}
	return cfg, cfg.Validate()
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
