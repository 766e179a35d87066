// Package bus connects the server to NATS: it runs the embedded broker
// (JetStream, nkey authentication, per-role permissions) or dials an
// external one, and provisions every stream create-or-update. It holds no
// business logic.
package bus

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// Options configure the connection.
type Options struct {
	// DataDir holds the embedded store (DataDir/nats) and the generated keys.
	DataDir string
	// SecretsDir holds the keys ("" = DataDir/secrets).
	SecretsDir string
	// Listen is the embedded broker's client listener (host:port; port 0 = random).
	Listen string
	// URL of an external broker; empty runs the embedded one.
	URL string
	// Credentials for the server's connection to an external broker
	// (.creds file or nkey seed file).
	Credentials string
	// MaxPayload is the embedded broker's largest message.
	MaxPayload int32
	Streams    StreamLimits
	// Revoked lists the agent keys that may not connect (embedded broker).
	Revoked []Revocation
	// TLS, when set, makes the embedded broker's client listener TLS only
	// (the server's own in-process connections do not use it).
	TLS    *tls.Config
	Logger *slog.Logger
}

// StreamLimits bound the streams by age and the streams and buckets by
// size. A size of 0 is "auto": a share of the store's volume (Resolve).
type StreamLimits struct {
	ExecMaxAge, ResultsMaxAge, OutputMaxAge, AuditMaxAge         time.Duration
	ExecMaxBytes, ResultsMaxBytes, OutputMaxBytes, AuditMaxBytes int64
	InventoryMaxBytes                                            int64
	ScriptCurrentMaxBytes, ScriptStatusMaxBytes, FleetMaxBytes   int64
	// ReleasesMaxBytes bounds the agent_releases Object Store.
	ReleasesMaxBytes int64
}

// Bus is the server's NATS connection.
type Bus struct {
	NC *nats.Conn
	JS jetstream.JetStream
	// CmdNC and CmdJS are a second connection for what goes to agents
	// (commands, kills, control). The broker delivers a fleet-wide
	// message to every subscriber on the publishing connection before it
	// reads that connection's next message: at 10,000 agents that takes
	// most of a second, which the server's other traffic (projector
	// acknowledgements, audit events, API reads) must not queue behind.
	CmdNC *nats.Conn
	CmdJS jetstream.JetStream
	srv   *server.Server
	log   *slog.Logger
	// ID is the operator-mode identity (embedded broker only; nil otherwise).
	ID *Identity
	// sys is a system-account connection that pushes account updates.
	sys *nats.Conn
	// limits are the stream limits with every auto size resolved.
	limits StreamLimits
	// plan is what the streams reserve on the embedded broker's volume.
	plan StoragePlan
	// opts are the embedded broker's options (RestartJetStream reloads them).
	opts *server.Options
	// restarts counts RestartJetStream calls that brought JetStream back.
	restarts restartLog
	// provMu keeps the bus's provisioners out while JetStream restarts.
	provMu sync.Mutex
}

// SecretsDir is where the keys live, below the data directory.
const SecretsDir = "secrets"

// Open starts the embedded broker (or dials the external one), connects
// and provisions the streams.
func Open(ctx context.Context, o Options) (*Bus, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	b := &Bus{log: o.Logger}
	var err error
	if o.URL == "" {
		err = b.startEmbedded(o)
	} else {
		// The external broker's disk is its own: auto sizes are the ceilings.
		b.limits = o.Streams.Resolve(0)
		err = b.dialExternal(o)
	}
	if err != nil {
		b.Close()
		return nil, err
	}
	if err := b.provision(ctx, b.limits); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

func (b *Bus) startEmbedded(o Options) error {
	secrets := o.SecretsDir
	if secrets == "" {
		secrets = filepath.Join(o.DataDir, SecretsDir)
	}
	id, err := LoadIdentity(secrets)
	if err != nil {
		return err
	}
	oc, err := id.OperatorClaims()
	if err != nil {
		return err
	}
	sysJWT, err := id.SysAccountJWT()
	if err != nil {
		return err
	}
	accJWT, err := id.AccountJWT()
	if err != nil {
		return err
	}
	agentsJWT, err := id.AgentAccountJWT(o.Revoked, time.Now())
	if err != nil {
		return err
	}
	resolver, err := server.NewDirAccResolver(filepath.Join(o.DataDir, "nats-accounts"), 0, 2*time.Minute, server.RenameDeleted)
	if err != nil {
		return fmt.Errorf("account resolver: %w", err)
	}
	if err := resolver.Store(pub(id.SysAccount), sysJWT); err != nil {
		return err
	}
	if err := resolver.Store(id.AccountPublicKey(), accJWT); err != nil {
		return err
	}
	if err := resolver.Store(id.AgentAccountPublicKey(), agentsJWT); err != nil {
		return err
	}

	// Every reservation must fit the volume before the broker starts, and
	// JetStream's max_store is set to them: left unset, the broker takes
	// three quarters of the free space as max_store and refuses to create
	// (or update) streams whose reservations exceed it.
	storeDir := filepath.Join(o.DataDir, "nats")
	vol, stored, onDisk, err := ReadStorage(storeDir, id.AccountPublicKey())
	if err != nil {
		return err
	}
	if b.limits, b.plan, err = PlanStorage(o.Streams, storeDir, vol, stored, onDisk); err != nil {
		return err
	}

	host, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return fmt.Errorf("nats listen %q: %w", o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("nats listen %q: bad port", o.Listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	} else if ln, err := net.Listen("tcp", o.Listen); err != nil {
		// The broker would log the failure and never become ready.
		return fmt.Errorf("nats listen %s: %w (is another kanade or NATS server running? choose another port with --nats-listen)", o.Listen, err)
	} else {
		_ = ln.Close()
	}
	opts := &server.Options{
		ServerName:       "kanade",
		Host:             host,
		Port:             port,
		JetStream:        true,
		StoreDir:         storeDir,
		NoSigs:           true,
		MaxPayload:       o.MaxPayload,
		TrustedOperators: []*jwt.OperatorClaims{oc},
		SystemAccount:    pub(id.SysAccount),
		AccountResolver:  resolver,
		JetStreamLimits:  server.JSLimitOpts{DefaultMaxConsumers: -1},
		// Records of closed connections only serve the broker's monitoring
		// endpoint, which kanade does not open; the default 10,000 would
		// hold one for each agent's short enrollment connection.
		MaxClosedClients: 100,
		// Every result goes to a subject of its own (results.<exec>.<pc>),
		// so the subject caches only fill: each agent connection's publish
		// permission list would keep up to 1,024 of its past subjects and
		// the account's routing table churns through 10,000 heartbeat
		// subjects. Matching without a cache is cheap for kanade's
		// subjects (a few literal tokens and one wildcard).
		NoSublistCache: true,
	}
	if o.TLS != nil {
		opts.TLSConfig = o.TLS
		// Handshakes queue behind each other when a fleet reconnects at once.
		opts.TLSTimeout = 10
	}
	// Explicit, so that the broker's limit is the plan checked above.
	opts.JetStreamMaxStore = b.plan.MaxStore
	if opts.MaxPayload == 0 {
		opts.MaxPayload = 8 << 20
	}
	opts.MaxPending = int64(opts.MaxPayload) * 8
	ns, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("embedded nats: %w", err)
	}
	ns.SetLoggerV2(&natsLogger{b.log.With("component", "nats")}, false, false, false)
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return errors.New("embedded nats: not ready after 30s (is the port in use?)")
	}
	b.srv, b.ID, b.opts = ns, id, opts
	b.log.Info("embedded NATS ready", "url", ns.ClientURL(), "store", opts.StoreDir, "account", id.AccountPublicKey(),
		"reserved", SizeText(b.plan.Reserved()), "volume_free", SizeText(vol.Free), "volume_total", SizeText(vol.Total))

	serverJWT, err := id.ServerUserJWT()
	if err != nil {
		return err
	}
	sysJWTUser, err := id.SysUserJWT()
	if err != nil {
		return err
	}
	// In-process connections skip TLS, and nats.go refuses a tls:// URL
	// for a connection that does not use it.
	inproc := "nats://" + ns.Addr().String()
	b.sys, err = nats.Connect(inproc, nats.InProcessServer(ns), nats.Name("kanade-system"),
		userAuth(sysJWTUser, id.SysUser), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect embedded nats (system): %w", err)
	}
	return b.setConns(func(name string) (*nats.Conn, error) {
		nc, err := nats.Connect(inproc, nats.InProcessServer(ns), nats.Name(name),
			userAuth(serverJWT, id.ServerUser), nats.MaxReconnects(-1))
		if err != nil {
			return nil, fmt.Errorf("connect embedded nats: %w", err)
		}
		return nc, nil
	})
}

// userAuth authenticates with a user JWT and the matching key.
func userAuth(userJWT string, kp nkeys.KeyPair) nats.Option {
	return nats.UserJWT(func() (string, error) { return userJWT, nil }, func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) })
}

// UpdateAccount re-signs the agents' account with the given revocations
// and pushes it to the broker; connections of revoked keys drop at once.
func (b *Bus) UpdateAccount(ctx context.Context, revoked []Revocation) error {
	if b.ID == nil || b.sys == nil {
		return errors.New("account updates need the embedded broker")
	}
	accJWT, err := b.ID.AgentAccountJWT(revoked, time.Now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msg, err := b.sys.RequestWithContext(ctx, "$SYS.REQ.CLAIMS.UPDATE", []byte(accJWT))
	if err != nil {
		return fmt.Errorf("push account update: %w", err)
	}
	var resp struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err == nil && resp.Error != nil {
		return fmt.Errorf("push account update: %s", resp.Error.Description)
	}
	return nil
}

func (b *Bus) dialExternal(o Options) error {
	opts := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { b.log.Warn("nats disconnected", "err", err) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { b.log.Info("nats reconnected", "url", nc.ConnectedUrl()) })}
	if o.Credentials != "" {
		opt, err := CredentialsOption(o.Credentials)
		if err != nil {
			return err
		}
		opts = append(opts, opt)
	}
	return b.setConns(func(name string) (*nats.Conn, error) {
		nc, err := nats.Connect(o.URL, append(opts, nats.Name(name))...)
		if err != nil {
			return nil, fmt.Errorf("connect %s: %w", o.URL, err)
		}
		return nc, nil
	})
}

// setConns opens the server's two connections with dial.
func (b *Bus) setConns(dial func(name string) (*nats.Conn, error)) error {
	var conns []*nats.Conn
	var streams []jetstream.JetStream
	for _, name := range []string{"kanade-server", "kanade-server-commands"} {
		nc, err := dial(name)
		if err == nil {
			var js jetstream.JetStream
			if js, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(65536)); err == nil {
				conns, streams = append(conns, nc), append(streams, js)
				continue
			}
			nc.Close()
			err = fmt.Errorf("jetstream: %w", err)
		}
		for _, c := range conns {
			c.Close()
		}
		return err
	}
	b.NC, b.JS, b.CmdNC, b.CmdJS = conns[0], streams[0], conns[1], streams[1]
	return nil
}

// ClientURL is the URL agents dial (embedded broker), or the external URL.
func (b *Bus) ClientURL() string {
	if b.srv != nil {
		return b.srv.ClientURL()
	}
	return b.NC.ConnectedUrl()
}

// BrokerStats are the embedded broker's totals since it started.
type BrokerStats struct {
	Connections, Subscriptions                  int64
	InMsgs, OutMsgs, InBytes, OutBytes, SlowOut int64
}

// Stats reads the embedded broker's totals; ok is false with an external
// broker (whose own monitoring has them).
func (b *Bus) Stats() (st BrokerStats, ok bool, err error) {
	if b.srv == nil {
		return st, false, nil
	}
	v, err := b.srv.Varz(nil)
	if err != nil {
		return st, false, fmt.Errorf("broker stats: %w", err)
	}
	return BrokerStats{
		Connections: int64(v.Connections), Subscriptions: int64(v.Subscriptions),
		InMsgs: v.InMsgs, OutMsgs: v.OutMsgs, InBytes: v.InBytes, OutBytes: v.OutBytes, SlowOut: v.SlowConsumers,
	}, true, nil
}

// Embedded reports whether the broker runs in this process.
func (b *Bus) Embedded() bool { return b.srv != nil }

// Limits are the stream limits in use, every auto size resolved.
func (b *Bus) Limits() StreamLimits { return b.limits }

// Plan is what the streams reserve on the embedded broker's volume (zero
// with an external broker).
func (b *Bus) Plan() StoragePlan { return b.plan }

// Healthy reports whether the connection works.
func (b *Bus) Healthy(ctx context.Context) error {
	if b.NC == nil || !b.NC.IsConnected() {
		return errors.New("not connected")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := b.JS.AccountInfo(ctx); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	return nil
}

// Close drains the connection and stops the embedded broker.
func (b *Bus) Close() {
	if b.sys != nil {
		b.sys.Close()
	}
	for _, nc := range []*nats.Conn{b.CmdNC, b.NC} {
		if nc != nil {
			_ = nc.Drain()
			nc.Close()
		}
	}
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
}

// CredentialsOption returns the nats option for a .creds file or an nkey
// seed file.
func CredentialsOption(path string) (nats.Option, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	if bytes.Contains(b, []byte("BEGIN NATS USER JWT")) {
		return nats.UserCredentials(path), nil
	}
	opt, err := nats.NkeyOptionFromSeed(path)
	if err != nil {
		return nil, fmt.Errorf("credentials %s: neither a .creds file nor an nkey seed: %w", path, err)
	}
	return opt, nil
}

type natsLogger struct{ l *slog.Logger }

func (n *natsLogger) Noticef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Warnf(format string, v ...any)   { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Fatalf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Errorf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Debugf(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Tracef(format string, v ...any)  {}
