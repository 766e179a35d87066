package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/agentinstall"
	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/app/backup"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/catalog"
	"github.com/kanadehq/kanade/app/catchup"
	"github.com/kanadehq/kanade/app/certs"
	"github.com/kanadehq/kanade/app/commandkeys"
	"github.com/kanadehq/kanade/app/config"
	"github.com/kanadehq/kanade/app/control"
	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/app/enroll"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/fleet"
	"github.com/kanadehq/kanade/app/health"
	"github.com/kanadehq/kanade/app/memtrim"
	"github.com/kanadehq/kanade/app/metrics"
	"github.com/kanadehq/kanade/app/profiling"
	"github.com/kanadehq/kanade/app/projector"
	"github.com/kanadehq/kanade/app/release"
	"github.com/kanadehq/kanade/app/rollout"
	"github.com/kanadehq/kanade/app/schedule"
	"github.com/kanadehq/kanade/app/sign"
	"github.com/kanadehq/kanade/app/web"
	"github.com/kanadehq/kanade/jobs"
	"github.com/kanadehq/kanade/store"
)

// serveOptions are what a run of the server needs besides its
// configuration.
type serveOptions struct {
	// Stdout gets the banner: where to open the GUI, how agents connect.
	Stdout io.Writer
	Log    *slog.Logger
	// Ready, when set, is called once, when every listener is bound and
	// the banner is written, with the addresses the server listens on (a
	// test harness runs it on random ports).
	Ready func(Listening)
	// Clock is the time schedules fire and rollout waves wait by (nil:
	// the real clock); a test passes one it moves instead of waiting.
	Clock clockwork.Clock
}

// Listening is where a running server can be reached.
type Listening struct {
	// URL is the GUI and API: http://host:port, or https:// with [server] tls_cert.
	URL string
	// NATS is the broker's client URL: the embedded broker's, or the
	// external one the server connected to ([nats] url).
	NATS string
	// Credentials is DATA/agent-credentials, what agents enroll with
	// ("" with an external broker, where the server writes none).
	Credentials string
	// Metrics is the metrics listener's URL ("" without [metrics] listen).
	Metrics string
}

// serve runs the server until ctx is done, then shuts down gracefully.
func serve(ctx context.Context, cfg config.Config, opts serveOptions) error {
	stdout, log := opts.Stdout, opts.Log
	// Without sign-in configured the server runs in dev mode, which must
	// not be reachable from other machines.
	devMode := cfg.DevMode()
	if devMode {
		if !config.IsLoopback(cfg.Server.HTTP) {
			return fmt.Errorf("server.http %s: no OIDC issuer is configured, so kanade runs in dev mode (no sign-in), which listens on loopback only; use 127.0.0.1:PORT, or configure sign-in: [oidc] issuer, client_id, redirect_url and roles in kanade.toml or KANADE_OIDC_* (README: Sign-in)", cfg.Server.HTTP)
		}
		if cfg.NATS.URL == "" && !config.IsLoopback(cfg.NATS.Listen) {
			return fmt.Errorf("nats.listen %s: dev mode (no OIDC issuer configured) listens on loopback only; use 127.0.0.1:PORT, or configure sign-in ([oidc] in kanade.toml, README: Sign-in)", cfg.NATS.Listen)
		}
	}
	if cfg.NATS.URL == "" && !cfg.NATS.TLSEnabled() && !config.IsLoopback(cfg.NATS.Listen) && !cfg.NATS.InsecurePlaintext {
		return fmt.Errorf("nats.listen %s: agents would cross the network in plain text; turn TLS on with --nats-tls auto (or [nats] tls = \"auto\", or tls_cert and tls_key), or accept plain text with --insecure-plaintext", cfg.NATS.Listen)
	}
	if err := cfg.PrepareData(); err != nil {
		return err
	}
	brokerTLS, err := brokerCertificates(ctx, cfg, log)
	if err != nil {
		return err
	}
	if err := profiling.FromEnv(ctx, log); err != nil {
		return err
	}
	gogc := memtrim.TuneGC(os.Getenv)
	st, err := store.Open(ctx, cfg.DB.Driver, cfg.DBDSN())
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	revoked, err := enroll.Revocations(ctx, st, time.Now())
	if err != nil {
		return err
	}
	limits := streamLimits(cfg)
	busOpts := bus.Options{
		DataDir: cfg.Server.Data, SecretsDir: cfg.SecretsDir(), Listen: cfg.NATS.Listen, URL: cfg.NATS.URL, Credentials: cfg.NATS.Credentials,
		MaxPayload: int32(cfg.NATS.MaxPayload), Logger: log, Revoked: revoked, Streams: limits,
	}
	if brokerTLS != nil {
		busOpts.TLS = brokerTLS.TLSConfig()
	}
	b, err := bus.Open(ctx, busOpts)
	if err != nil {
		return err
	}
	defer b.Close()

	authSvc, err := newAuth(cfg, st, log)
	if err != nil {
		return err
	}
	keys, err := sign.Load(filepath.Join(cfg.SecretsDir(), "command-keys"))
	if err != nil {
		return err
	}
	releaseKeys, err := sign.LoadRelease(filepath.Join(cfg.SecretsDir(), "release-keys"))
	if err != nil {
		return err
	}
	jobCatalog, err := catalog.New(cfg.Server.JobsDir, log)
	if err != nil {
		return fmt.Errorf("server.jobs_dir: %w", err)
	}
	ev := events.New()
	disp := dispatch.New(st, b.CmdNC, b.CmdJS, keys, ev, dispatch.Limits{
		DefaultTimeout: cfg.Execution.DefaultTimeout.D(), MaxTimeout: cfg.Execution.MaxTimeout.D(),
		DefaultDeadline: cfg.Execution.DefaultDeadline.D(), OutputCap: int(cfg.Execution.OutputCap),
		FourEyes: cfg.Rollout.FourEyes, MaxFailures: cfg.Rollout.MaxFailures, LostGrace: cfg.Execution.LostGrace.D(),
	}, log)
	// Streams and buckets deleted while the server runs come back.
	provisioner := b.NewProvisioner(log)
	disp.Provisioner = provisioner
	disp.Catalog = func(id string) (jobs.Manifest, bool) {
		if e, ok := jobCatalog.Get(id); ok && e.Kind == jobs.KindJob && e.Valid && e.Manifest != nil {
			return *e.Manifest, true
		}
		return jobs.Manifest{}, false
	}
	recorder := audit.New(b.JS, log)
	recorder.Provisioner = provisioner
	disp.Audit = recorder
	// Agents read a missing emergency stop as on: store a signed "off"
	// before any agent connects.
	if err := disp.EnsureEmergencyStop(ctx); err != nil {
		return fmt.Errorf("emergency stop: %w", err)
	}
	clock := opts.Clock
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	rollouts := rollout.NewEngine(st, disp, ev, recorder, clock, log)
	disp.Rollouts = rollouts

	workCtx, stopWork := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	goWork := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(workCtx); err != nil && workCtx.Err() == nil {
				log.Error(name+" stopped", "err", err)
			}
		}()
	}
	pongs := projector.NewPongs()
	mx := metrics.New()
	mx.Watch(metrics.Sources{Store: st, NC: b.NC, JS: b.JS, Broker: b.Stats, Log: log, Consumers: []metrics.Consumer{
		{Stream: wire.StreamResults, Durable: projector.ResultsConsumer}, {Stream: wire.StreamAudit, Durable: "audit-projector"},
		{Stream: wire.StreamInventory, Durable: projector.InventoryConsumer},
	}})
	// The projectors start again when their stream was deleted (and
	// re-provisioned), which creates their consumers again.
	goKeep := func(name string, fn func(context.Context) error) {
		goWork(name, func(ctx context.Context) error { projector.Keep(ctx, name, log, fn); return nil })
	}
	goWork("stream check", func(ctx context.Context) error { provisioner.Run(ctx, bus.CheckInterval); return nil })
	goKeep("results projector", func(ctx context.Context) error {
		return projector.Results(ctx, b.JS, st, ev, log, mx.ResultsIngested)
	})
	goWork("heartbeat projector", func(ctx context.Context) error {
		return projector.Heartbeats(ctx, b.NC, st, ev, log, time.Second, pongs)
	})
	goWork("catch-up", func(ctx context.Context) error { return catchup.Serve(ctx, b, st, log) })
	goWork("expiry", func(ctx context.Context) error { disp.ExpireLoop(ctx, 5*time.Second); return nil })
	goKeep("inventory projector", func(ctx context.Context) error { return projector.Inventory(ctx, b.JS, st, ev, log) })
	goKeep("audit projector", func(ctx context.Context) error { return audit.Project(ctx, b.JS, st, ev, log) })
	goWork("jobs catalog", jobCatalog.Run)
	goWork("rollouts", rollouts.Run)
	sched := schedule.New(st, jobCatalog, disp, cfg.Scheduler.MisfireGrace.D(), clock, log)
	goWork("scheduler", sched.Run)
	// Health: the broker stores, the database writes, the disk has room;
	// JetStream comes back by itself after a full disk.
	monitor := newHealthMonitor(cfg, b, st, log)
	mx.Registry.MustRegister(monitor.Collector())
	mx.Registry.MustRegister(backup.NewCollector(cfg.Server.Data, nil))
	goWork("health", func(ctx context.Context) error { monitor.Run(ctx, health.Interval); return nil })
	goWork("memory trim", func(ctx context.Context) error {
		memtrim.Run(ctx, memtrim.Interval, memtrim.MinFree, mx.MemoryTrims, log)
		return nil
	})
	goWork("sign-in housekeeping", func(ctx context.Context) error {
		authSvc.Housekeeping(ctx, st, recorder, auth.HousekeepingInterval, log)
		return nil
	})
	var enroller *enroll.Service
	credsPath := ""
	if b.Embedded() {
		enroller = enroll.New(st, b, keys, ev, log)
		enroller.Audit = recorder
		enroller.SecretsDir = cfg.SecretsDir()
		enroller.ReleaseKeys = releaseKeys
		if brokerTLS != nil {
			enroller.BrokerCA = brokerTLS.CA
		}
		// Dev mode approves agents that enroll with the default token; otherwise an admin does.
		if credsPath, err = enroller.WriteAgentCredentials(ctx, cfg.Server.Data, devMode, nil, devAllowGroups(devMode)); err != nil {
			stopWork()
			wg.Wait()
			return fmt.Errorf("agent credentials: %w", err)
		}
		goWork("enrollment", enroller.Run)
	}

	liveNC, liveJS, err := b.LiveConn()
	if err != nil {
		stopWork()
		wg.Wait()
		return err
	}
	defer liveNC.Close()
	agentBins, err := agentinstall.NewBinaries(cfg.Server.AgentDownloads)
	if err != nil {
		stopWork()
		wg.Wait()
		return fmt.Errorf("server.agent_downloads: %w", err)
	}
	var built []string
	for _, p := range agentBins.Available() {
		built = append(built, p.String())
	}
	log.Info("agent downloads", "dir", agentBins.Dir(), "built", strings.Join(built, ","))
	brokerURL := ""
	if b.Embedded() {
		brokerURL = b.ClientURL()
	}
	host, _ := os.Hostname()
	// Control messages go on the connection for what goes to agents, in
	// order with the commands and kills.
	ctl := control.New(b.CmdNC, keys, nil)
	// Agent self-update: releases, their rollouts, download permits.
	releases := release.New(release.Options{Store: st, JS: b.JS, Provisioner: provisioner, Keys: releaseKeys, Control: ctl,
		Dispatcher: disp, Audit: recorder, Log: log})
	permits := release.NewPermits(b, st, release.PermitOptions{Max: cfg.Update.MaxDownloads}, log)
	mx.WatchUpdateDownloads(permits.InFlight, permits.Max())
	goWork("update permits", permits.Serve)
	goWork("built-in agent releases", func(ctx context.Context) error {
		if err := releases.OfferBuiltIn(ctx, agentBins, version); err != nil && ctx.Err() == nil {
			log.Warn("the agents this server was built with are not offered as releases", "version", version, "err", err)
		}
		return nil
	})
	handler := web.New(web.Deps{
		Store: st, Dispatcher: disp, Enroller: enroller, Audit: recorder, Events: ev, JS: b.JS, Catalog: jobCatalog, NATSHealthy: b.Healthy, Log: log, Version: version,
		DevMode: devMode, Auth: authSvc, Fleet: fleet.New(st, ctl, pongs, log), CommandKeys: commandkeys.New(keys, ctl, disp, recorder, nil, log), Rollouts: rollouts, Schedules: schedule.NewService(sched, recorder, nil), FourEyes: cfg.Rollout.FourEyes, OIDCIssuer: cfg.OIDC.Issuer, RolesClaim: cfg.OIDC.RolesClaim, LocalPC: wire.PCIDFromHostname(host), OutputCap: int(cfg.Execution.OutputCap),
		SSEMaxLifetime: cfg.Server.SSEMaxLifetime.D(), Metrics: mx, MetricsToken: cfg.Metrics.Token, LiveJS: liveJS,
		AgentBinaries: agentBins, AgentURL: cfg.NATS.AgentURL, BrokerURL: brokerURL, Health: monitor, Releases: releases,
		LastBackup: func() (backup.Record, bool, error) { return backup.ReadRecord(cfg.Server.Data) }, DBDriver: cfg.DB.Driver,
	})
	ln, err := net.Listen("tcp", cfg.Server.HTTP)
	if err != nil {
		stopWork()
		wg.Wait()
		return fmt.Errorf("server.http: %w", err)
	}
	// The metrics listener serves /metrics alone, without a token: for a
	// scraper on a network of its own.
	var metricsSrv *http.Server
	var metricsLn net.Listener
	if cfg.Metrics.Listen != "" {
		if metricsLn, err = net.Listen("tcp", cfg.Metrics.Listen); err != nil {
			_ = ln.Close()
			stopWork()
			wg.Wait()
			return fmt.Errorf("metrics.listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET "+metrics.MetricsPath, mx.Handler())
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: time.Minute}
	}
	scheme := "http"
	var webTLS *tls.Config
	if cfg.Server.TLSCert != "" {
		webCert, err := certs.Files(cfg.Server.TLSCert, cfg.Server.TLSKey, "", nil, log)
		if err != nil {
			_ = ln.Close()
			if metricsLn != nil {
				_ = metricsLn.Close()
			}
			stopWork()
			wg.Wait()
			return fmt.Errorf("server.tls_cert: %w", err)
		}
		go webCert.Run(ctx.Done(), time.Minute)
		webTLS, scheme = webCert.TLSConfig(), "https"
		ln = tls.NewListener(ln, webTLS)
	}
	baseCtx, cancelBase := context.WithCancel(context.Background())
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      2 * time.Minute, // SSE handlers lift it for their own connection
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		TLSConfig:         webTLS,
	}
	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(ln) }()
	metricsURL := ""
	if metricsSrv != nil {
		go func() { serveErr <- metricsSrv.Serve(metricsLn) }()
		metricsURL = "http://" + metricsLn.Addr().String() + metrics.MetricsPath
		log.Info("metrics listener", "url", metricsURL)
	}

	url := scheme + "://" + ln.Addr().String()
	log.Info("kanade is running", "url", url, "nats", b.ClientURL(), "data", cfg.Server.Data, "db", cfg.DB.Driver, "dev_mode", devMode, "oidc_issuer", cfg.OIDC.Issuer, "gogc", gogc, "version", version)
	fmt.Fprintf(stdout, "kanade is running: open %s\n", url)
	if credsPath != "" {
		fmt.Fprintf(stdout, "agents connect with: kanade-agent --server %s --credentials %s\n", b.ClientURL(), credsPath)
	}
	switch {
	case brokerTLS != nil:
		fmt.Fprintf(stdout, "agents connect over TLS; the enrollment bundles carry the broker's CA%s\n", caNote(cfg))
	case b.Embedded() && !config.IsLoopback(cfg.NATS.Listen):
		fmt.Fprintf(stdout, "WARNING: the broker listens on %s in PLAIN TEXT (--insecure-plaintext): anyone on the network path can read credentials and scripts\n", cfg.NATS.Listen)
		log.Warn("the broker's client listener is plain text on a non-loopback address", "listen", cfg.NATS.Listen)
	}
	if opts.Ready != nil {
		opts.Ready(Listening{URL: url, NATS: b.ClientURL(), Credentials: credsPath, Metrics: metricsURL})
	}

	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	log.Info("shutting down")
	cancelBase() // ends live streams
	shCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := srv.Shutdown(shCtx); serr != nil {
		log.Warn("http shutdown", "err", serr)
	}
	if metricsSrv != nil {
		_ = metricsSrv.Shutdown(shCtx)
	}
	stopWork()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// streamLimits are the configured bounds of the streams and buckets.
func streamLimits(cfg config.Config) bus.StreamLimits {
	return bus.StreamLimits{
		ExecMaxAge: cfg.Streams.ExecMaxAge.D(), ExecMaxBytes: int64(cfg.Streams.ExecMaxBytes),
		ResultsMaxAge: cfg.Streams.ResultsMaxAge.D(), ResultsMaxBytes: int64(cfg.Streams.ResultsMaxBytes),
		OutputMaxAge: cfg.Streams.OutputMaxAge.D(), OutputMaxBytes: int64(cfg.Streams.OutputMaxBytes),
		AuditMaxAge: cfg.Streams.AuditMaxAge.D(), AuditMaxBytes: int64(cfg.Streams.AuditMaxBytes),
		InventoryMaxBytes: int64(cfg.Streams.InventoryMaxBytes), FleetMaxBytes: int64(cfg.Streams.FleetMaxBytes),
		ReleasesMaxBytes:      int64(cfg.Streams.ReleasesMaxBytes),
		ScriptCurrentMaxBytes: int64(cfg.Streams.ScriptCurrentMaxBytes), ScriptStatusMaxBytes: int64(cfg.Streams.ScriptStatusMaxBytes),
	}
}

// devAllowGroups lets agents of a dev-mode server (loopback only, every
// request an admin) ask for any group with the default token; otherwise
// groups are given on the server, or by tokens that allow them.
func devAllowGroups(devMode bool) []string {
	if devMode {
		return []string{"*"}
	}
	return nil
}

// brokerCertificates is the embedded broker's TLS material (nil: plain
// text), refreshed every minute until ctx is done.
func brokerCertificates(ctx context.Context, cfg config.Config, log *slog.Logger) (*certs.Source, error) {
	if cfg.NATS.URL != "" || !cfg.NATS.TLSEnabled() {
		return nil, nil
	}
	var src *certs.Source
	var err error
	if cfg.NATS.TLS == "auto" {
		src, err = certs.Auto(filepath.Join(cfg.Server.Data, "tls"), certs.Hosts(cfg.NATS.Listen, cfg.NATS.TLSHosts), nil, log)
	} else {
		src, err = certs.Files(cfg.NATS.TLSCert, cfg.NATS.TLSKey, cfg.NATS.TLSCA, nil, log)
	}
	if err != nil {
		return nil, err
	}
	go src.Run(ctx.Done(), time.Minute)
	return src, nil
}

func caNote(cfg config.Config) string {
	if cfg.NATS.TLS == "auto" {
		return " (" + filepath.Join(cfg.Server.Data, "tls", certs.CAFile) + ")"
	}
	if cfg.NATS.TLSCA == "" {
		return " (none: agents verify the certificate against their system's roots)"
	}
	return " (" + cfg.NATS.TLSCA + ")"
}

// newHealthMonitor watches the data directory's volume (and the SQLite
// file's, when it lives elsewhere) besides the broker and the database.
func newHealthMonitor(cfg config.Config, b *bus.Bus, st *store.Store, log *slog.Logger) *health.Monitor {
	paths := map[string]string{"data": cfg.Server.Data}
	if cfg.DB.Driver == store.DriverSQLite {
		paths["database"] = filepath.Dir(cfg.DBDSN())
	}
	host, _ := os.Hostname()
	name := wire.PCIDFromHostname(host)
	if wire.ValidateID("server name", name) != nil {
		name = "kanade"
	}
	return health.New(health.Options{Bus: b, Store: st, Paths: paths, WarnPercent: cfg.Server.DiskWarnPercent, Name: name, Log: log})
}
