package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/app/backup"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/certs"
	"github.com/kanadehq/kanade/app/config"
)

// backupCmd is `kanade backup --out FILE`: a backup of the running
// server whose data directory is --data. The database is copied from its
// file (SQLite), the secrets and TLS authority from the disk, and the
// broker state is read from the running broker, which the command joins
// as the server's own user: its key is in the secrets the command must
// be able to read anyway, so it needs no other credential and opens no
// new way in.
func backupCmd(args []string, stdout, stderr io.Writer) error {
	var out, natsListen string
	cfg, err := loadConfig("backup", args, stderr, false, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "out", "", "the backup file to write (.tar.gz; must not exist)")
		fs.StringVar(&natsListen, "nats-listen", "", "the running server's broker listener (as given to kanade serve; default 127.0.0.1:4222)")
	})
	if err != nil {
		return err
	}
	if natsListen != "" {
		cfg.NATS.Listen = natsListen
	}
	if out == "" {
		return errors.New("--out FILE is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	nc, err := brokerConn(cfg)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	tlsDir := filepath.Join(cfg.Server.Data, "tls")
	m, err := backup.Create(ctx, backup.Source{DataDir: cfg.Server.Data, SecretsDir: cfg.SecretsDir(), TLSDir: tlsDir,
		Driver: cfg.DB.Driver, SQLitePath: cfg.DBDSN(), JS: js, KanadeVersion: version}, out)
	if err != nil {
		return err
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes, %d parts)\n", out, st.Size(), len(m.Parts))
	if !m.Database.Included {
		fmt.Fprintf(stdout, "NOTE: %s\n", m.Database.Note)
	}
	fmt.Fprintln(stdout, "the file holds the server's secrets: keep it where only administrators can read it")
	return nil
}

// brokerConn joins the running server's broker as the server's user
// (embedded broker), or with [nats] credentials (external broker).
func brokerConn(cfg config.Config) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name("kanade-backup"), nats.Timeout(10 * time.Second), nats.MaxReconnects(0)}
	if cfg.NATS.URL != "" {
		if cfg.NATS.Credentials != "" {
			opt, err := bus.CredentialsOption(cfg.NATS.Credentials)
			if err != nil {
				return nil, err
			}
			opts = append(opts, opt)
		}
		nc, err := nats.Connect(cfg.NATS.URL, opts...)
		if err != nil {
			return nil, fmt.Errorf("connect to the broker %s: %w", cfg.NATS.URL, err)
		}
		return nc, nil
	}
	id, err := bus.ReadIdentity(cfg.SecretsDir())
	if err != nil {
		return nil, fmt.Errorf("the server's keys: %w (is --data, or --secrets, the running server's?)", err)
	}
	userJWT, err := id.ServerUserJWT()
	if err != nil {
		return nil, err
	}
	kp := id.ServerUser
	opts = append(opts, nats.UserJWT(func() (string, error) { return userJWT, nil }, func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) }))
	host, port, err := net.SplitHostPort(cfg.NATS.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats.listen %q: %w", cfg.NATS.Listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	url := "nats://" + net.JoinHostPort(host, port)
	if cfg.NATS.TLSEnabled() {
		url = "tls://" + net.JoinHostPort(host, port)
		caFile := cfg.NATS.TLSCA
		if cfg.NATS.TLS == "auto" {
			caFile = filepath.Join(cfg.Server.Data, "tls", certs.CAFile)
		}
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if caFile != "" {
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return nil, fmt.Errorf("broker CA: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("broker CA %s: no certificate", caFile)
			}
		}
		opts = append(opts, nats.Secure(tc))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to the server's broker at %s: %w (kanade backup runs while the server runs, with the same --data and --nats-listen)", url, err)
	}
	return nc, nil
}

// restoreCmd is `kanade restore --in FILE`: it writes a backup into an
// empty data directory (and secrets directory).
func restoreCmd(args []string, stdout, stderr io.Writer) error {
	var in string
	cfg, err := loadConfig("restore", args, stderr, false, func(fs *flag.FlagSet) {
		fs.StringVar(&in, "in", "", "the backup file to restore (from kanade backup)")
	})
	if err != nil {
		return err
	}
	if in == "" {
		return errors.New("--in FILE is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := newLogger(stderr, config.Log{Level: "warn", Format: cfg.Log.Format})
	sqlitePath := ""
	if cfg.DB.Driver == config.DriverSQLite {
		sqlitePath = cfg.DBDSN()
	}
	secrets := ""
	if cfg.Secrets.Dir != "" {
		secrets = cfg.Secrets.Dir
	}
	m, err := backup.Restore(ctx, in, backup.Target{DataDir: cfg.Server.Data, SecretsDir: secrets, Driver: cfg.DB.Driver, SQLitePath: sqlitePath,
		Broker: func(ctx context.Context, dataDir, secretsDir string) (jetstream.JetStream, func(), error) {
			return restoreBroker(ctx, cfg, dataDir, secretsDir, log)
		}})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored the backup of %s (kanade %s) into %s\n", m.CreatedAt.Format(time.RFC3339), m.KanadeVersion, cfg.Server.Data)
	if !m.Database.Included {
		fmt.Fprintf(stdout, "NOTE: %s\n", m.Database.Note)
	}
	fmt.Fprintf(stdout, "start it with: kanade serve --data %s (on the addresses agents know)\n", cfg.Server.Data)
	return nil
}

// restoreBroker runs the embedded broker on a staged data directory, on a
// loopback port of its own, for a restore to publish into (with [nats] url,
// it joins the external broker instead).
func restoreBroker(ctx context.Context, cfg config.Config, dataDir, secretsDir string, log *slog.Logger) (jetstream.JetStream, func(), error) {
	if cfg.NATS.URL != "" {
		// An external broker keeps its streams itself: the state goes
		// back into it (the server must have provisioned it once).
		nc, err := brokerConn(cfg)
		if err != nil {
			return nil, nil, err
		}
		js, err := jetstream.New(nc)
		if err != nil {
			nc.Close()
			return nil, nil, err
		}
		return js, nc.Close, nil
	}
	b, err := bus.Open(ctx, bus.Options{DataDir: dataDir, SecretsDir: secretsDir, Listen: "127.0.0.1:0",
		MaxPayload: int32(cfg.NATS.MaxPayload), Streams: streamLimits(cfg), Logger: log})
	if err != nil {
		return nil, nil, err
	}
	return b.JS, b.Close, nil
}
