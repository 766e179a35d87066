package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/enroll"
	"github.com/kanadehq/kanade/agent/update"
	"github.com/kanadehq/kanade/agent/wire"
)

// selftestTimeout bounds a self-test that cannot connect (the updater
// that runs it has its own, shorter or not).
const selftestTimeout = 2 * time.Minute

// runSelftest is `kanade-agent selftest [flags of a run]`, the trial run
// of a new binary before an update swaps it in: it loads the configuration
// and the agent's identity as a run with these flags would, connects to
// the broker and prints update.SelftestLine once the broker answered. It
// writes nothing, never enrolls (an agent that updates is enrolled) and
// runs no command; its exit status says whether it passed.
func runSelftest(args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig("kanade-agent selftest", args, os.Environ(), stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), selftestTimeout)
	defer cancel()
	b, err := os.ReadFile(cfg.Credentials)
	if err != nil {
		return fmt.Errorf("selftest: credentials: %w", err)
	}
	if enroll.IsEnrollmentFile(b) {
		// Setup would enroll (and write) without a usable credential.
		f, err := enroll.ParseEnrollmentFile(b)
		if err != nil {
			return fmt.Errorf("selftest: credentials %s: %w", cfg.Credentials, err)
		}
		c, ok := enroll.LoadCredential(cfg.Data, time.Now())
		switch {
		case !ok:
			return fmt.Errorf("selftest: no valid credential in %s", cfg.Data)
		case enroll.IssuerAccount(c.JWT) != enroll.IssuerAccount(f.JWT):
			return errors.New("selftest: the stored credential is for another broker account than the enrollment file")
		case len(c.CommandKeys) == 0:
			return errors.New("selftest: the stored credential has no command keys")
		}
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	id, err := enroll.Setup(ctx, cfg.Server, cfg.Credentials, cfg.Data, enroll.Request{PCID: cfg.PCID}, quiet)
	if err != nil {
		return fmt.Errorf("selftest: identity: %w", err)
	}
	var last error
	for {
		nc, err := nats.Connect(cfg.Server, id.Option, nats.Name("kanade-agent selftest "+cfg.PCID),
			nats.CustomInboxPrefix(wire.AgentInboxPrefix(cfg.PCID)), nats.Timeout(10*time.Second), nats.NoReconnect())
		if err == nil {
			err = nc.FlushTimeout(10 * time.Second)
			nc.Close()
			if err == nil {
				fmt.Fprintln(stdout, update.SelftestLine(version))
				return nil
			}
		}
		if last == nil || err.Error() != last.Error() {
			fmt.Fprintf(stderr, "kanade-agent selftest: connect %s: %v\n", cfg.Server, err)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("selftest: no connection to %s within %s: %w", cfg.Server, selftestTimeout, last)
		case <-time.After(time.Second):
		}
	}
}
