package bus

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/kanadehq/kanade/agent/wire"
)

// Identity is the NATS operator-mode trust chain of one installation: an
// operator, the system account, kanade's account (the server, every
// stream and bucket), the agents' account (every endpoint credential:
// agents and enrollment bundles), the scoped signing key that mints agent
// credentials, and the users the server and the default enrollment bundle
// connect as. Seeds live in DATA/secrets, readable only by the server's
// user.
//
// Endpoints never share an account with the server. What crosses between
// the two is listed in Crossings: the server's messages to agents are
// stream exports, agents' messages and requests to the server are service
// exports. A reply subject an endpoint names is mapped by the broker to a
// one-time response subject, and the answer goes back into the agents'
// account: nothing an endpoint publishes, as a subject or as a reply
// subject, is ever published inside kanade's account on a subject of its
// choosing (docs/SECURITY.md).
type Identity struct {
	Operator     nkeys.KeyPair
	SysAccount   nkeys.KeyPair
	Account      nkeys.KeyPair
	AgentAccount nkeys.KeyPair
	AgentSigner  nkeys.KeyPair
	ServerUser   nkeys.KeyPair
	SysUser      nkeys.KeyPair
	EnrollUser   nkeys.KeyPair
}

// AgentRole is the role of the scoped signing key for agents.
const AgentRole = "agent"

// AgentJWTLifetime is how long an agent credential is valid; agents renew
// it when a third is left. Revocations older than this are pruned.
const AgentJWTLifetime = 30 * 24 * time.Hour

// AgentMaxPayload is the largest message an endpoint may publish: an
// inventory report and its envelope. The broker closes the connection of
// an endpoint that sends more.
const AgentMaxPayload = wire.MaxInventoryBytes + 64<<10

// LoadIdentity reads the keys from dir, creating the missing ones.
func LoadIdentity(dir string) (*Identity, error) { return loadIdentity(dir, true) }

// ReadIdentity reads the keys from dir and creates nothing: a missing key
// is an error (a backup, for one, must not invent keys).
func ReadIdentity(dir string) (*Identity, error) { return loadIdentity(dir, false) }

func loadIdentity(dir string, create bool) (*Identity, error) {
	var id Identity
	for _, k := range []struct {
		file   string
		create func() (nkeys.KeyPair, error)
		dst    *nkeys.KeyPair
	}{
		{"operator.nk", nkeys.CreateOperator, &id.Operator},
		{"system-account.nk", nkeys.CreateAccount, &id.SysAccount},
		{"account.nk", nkeys.CreateAccount, &id.Account},
		{"agent-account.nk", nkeys.CreateAccount, &id.AgentAccount},
		{"agent-signer.nk", nkeys.CreateAccount, &id.AgentSigner},
		{"server-user.nk", nkeys.CreateUser, &id.ServerUser},
		{"system-user.nk", nkeys.CreateUser, &id.SysUser},
		{"enroll-user.nk", nkeys.CreateUser, &id.EnrollUser},
	} {
		mk := k.create
		if !create {
			mk = nil
		}
		kp, err := loadOrCreateKey(filepath.Join(dir, k.file), mk)
		if err != nil {
			return nil, err
		}
		*k.dst = kp
	}
	return &id, nil
}

func loadOrCreateKey(path string, create func() (nkeys.KeyPair, error)) (nkeys.KeyPair, error) {
	if b, err := os.ReadFile(path); err == nil {
		kp, err := nkeys.ParseDecoratedNKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: not an nkey seed: %w", path, err)
		}
		return kp, nil
	} else if !errors.Is(err, os.ErrNotExist) || create == nil {
		return nil, err
	}
	kp, err := create()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := writeKey(path, kp); err != nil {
		return nil, err
	}
	return kp, nil
}

// writeKey stores a seed readable only by the server's user.
func writeKey(path string, kp nkeys.KeyPair) error {
	seed, err := kp.Seed()
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(seed, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

func pub(kp nkeys.KeyPair) string {
	p, _ := kp.PublicKey()
	return p
}

// AccountPublicKey is kanade's account.
func (id *Identity) AccountPublicKey() string { return pub(id.Account) }

// AgentAccountPublicKey is the agents' account.
func (id *Identity) AgentAccountPublicKey() string { return pub(id.AgentAccount) }

// OperatorClaims is the trusted operator.
func (id *Identity) OperatorClaims() (*jwt.OperatorClaims, error) {
	oc := jwt.NewOperatorClaims(pub(id.Operator))
	oc.Name = "kanade"
	oc.SystemAccount = pub(id.SysAccount)
	token, err := oc.Encode(id.Operator)
	if err != nil {
		return nil, err
	}
	return jwt.DecodeOperatorClaims(token)
}

// SysAccountJWT is the system account.
func (id *Identity) SysAccountJWT() (string, error) {
	ac := jwt.NewAccountClaims(pub(id.SysAccount))
	ac.Name = "SYS"
	return ac.Encode(id.Operator)
}

// Revocation is an endpoint key (an agent's, or an enrollment bundle's)
// that may no longer connect.
type Revocation struct {
	PublicKey string
	At        time.Time
	// Forever keeps the revocation past AgentJWTLifetime: enrollment
	// bundle users' credentials do not expire.
	Forever bool
}

// Crossing is one subject family that crosses between kanade's account
// and the agents' account.
type Crossing struct {
	Subject string
	// ToAgents: a stream the server publishes and agents subscribe to.
	// Otherwise a service: agents publish (or request) and the server
	// receives.
	ToAgents bool
	// Replies is how the server may answer a request on a service:
	// jwt.ResponseTypeSingleton (one message) or ResponseTypeStream
	// (several: catch-up). Empty for streams.
	Replies jwt.ResponseType
	// Share hands the server the requesting connection's identity (its
	// user key and credential) in the Nats-Request-Info header, so that a
	// responder can check who asks.
	Share bool
}

// Crossings lists everything that crosses between the two accounts: the
// wire contract's subjects but the server's own. Nothing else does.
func Crossings() []Crossing {
	var out []Crossing
	for _, c := range wire.Contract() {
		switch c.Direction {
		case wire.ToAgents:
			out = append(out, Crossing{Subject: c.Pattern, ToAgents: true})
		case wire.FromAgents:
			var r jwt.ResponseType = jwt.ResponseTypeSingleton
			if c.Stream {
				r = jwt.ResponseTypeStream
			}
			out = append(out, Crossing{Subject: c.Pattern, Replies: r, Share: c.Share})
		}
	}
	return out
}

// AgentTemplate is what every agent credential may do, with {{name()}}
// standing for its pc_id and {{tag(group)}} for each of its groups. An
// agent reads only its own commands and the commands of its groups, and
// publishes only under its own pc_id. The subjects are the agents'
// account's: only those in Crossings lead anywhere.
func AgentTemplate() jwt.UserPermissionLimits {
	var p jwt.UserPermissionLimits
	p.Sub.Allow.Add(
		wire.CommandAllWildcard, wire.CommandGroupWildcard("{{tag(group)}}"), wire.CommandPCWildcard("{{name()}}"),
		wire.KillWildcard, wire.ControlAll, wire.ControlPCSubject("{{name()}}"), wire.AgentInboxPrefix("{{name()}}")+".>",
	)
	p.Pub.Allow.Add(
		wire.ResultSubject("{{name()}}"), wire.OutputSubject("{{name()}}"), wire.HeartbeatSubject("{{name()}}"),
		wire.InventorySubject("{{name()}}"), wire.RenewSubject("{{name()}}"), wire.CatchupSubject("{{name()}}"),
		// Read-only KV: subject-form direct gets only. No other JetStream
		// API (catch-up is a request to the server): each permission
		// subject costs the broker memory on every connection.
		wire.KVDirectGetPrefix(wire.KVScriptCurrent)+".>", wire.KVDirectGetPrefix(wire.KVScriptStatus)+".>",
		wire.KVDirectGetPrefix(wire.KVFleet)+".>",
		// Self-update: its own download permits, and direct gets of the
		// release bucket (read-only; no consumer, no stream info).
		wire.UpdatePermitSubject("{{name()}}"), wire.ReleaseReadSubject,
	)
	return p
}

// EnrollPermissions is what an enrollment bundle's user may do: send an
// enrollment request and read the replies.
func EnrollPermissions() jwt.Permissions {
	var p jwt.Permissions
	p.Pub.Allow.Add(wire.EnrollSubject)
	p.Sub.Allow.Add(wire.EnrollInboxPrefix + ".>")
	return p
}

// AccountJWT is kanade's account: JetStream, and the exports of Crossings
// (to the agents' account only).
func (id *Identity) AccountJWT() (string, error) {
	ac := jwt.NewAccountClaims(pub(id.Account))
	ac.Name = "KANADE"
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{DiskStorage: -1, MemoryStorage: -1, Streams: -1, Consumer: -1}
	for _, c := range Crossings() {
		e := &jwt.Export{Name: c.Subject, Subject: jwt.Subject(c.Subject), Type: jwt.Service, ResponseType: c.Replies}
		if c.ToAgents {
			e.Type, e.ResponseType = jwt.Stream, ""
		}
		ac.Exports.Add(e)
	}
	return ac.Encode(id.Operator)
}

// AgentAccountJWT is the agents' account: no JetStream, the imports of
// Crossings, the agent template on the scoped signing key, a payload
// limit, and the revocations of the last AgentJWTLifetime (older
// credentials have expired anyway, which keeps the list bounded).
func (id *Identity) AgentAccountJWT(revoked []Revocation, now time.Time) (string, error) {
	ac := jwt.NewAccountClaims(pub(id.AgentAccount))
	ac.Name = "KANADE_AGENTS"
	ac.Limits.Payload = AgentMaxPayload
	for _, c := range Crossings() {
		im := &jwt.Import{Name: c.Subject, Subject: jwt.Subject(c.Subject), Account: pub(id.Account), Type: jwt.Service, Share: c.Share}
		if c.ToAgents {
			im.Type = jwt.Stream
		}
		ac.Imports.Add(im)
	}
	sc := jwt.NewUserScope()
	sc.Key = pub(id.AgentSigner)
	sc.Role = AgentRole
	sc.Template = AgentTemplate()
	ac.SigningKeys.AddScopedSigner(sc)
	sort.Slice(revoked, func(i, j int) bool { return revoked[i].PublicKey < revoked[j].PublicKey })
	for _, r := range revoked {
		if r.Forever || now.Sub(r.At) <= AgentJWTLifetime+time.Hour {
			ac.RevokeAt(r.PublicKey, r.At)
		}
	}
	return ac.Encode(id.Operator)
}

// userJWT signs a user of the given account with optional permissions.
func userJWT(user, account nkeys.KeyPair, name string, perms *jwt.Permissions) (string, error) {
	uc := jwt.NewUserClaims(pub(user))
	uc.Name = name
	if perms != nil {
		uc.Permissions = *perms
	}
	return uc.Encode(account)
}

// ServerUserJWT is the server's own user: full access to kanade's account.
func (id *Identity) ServerUserJWT() (string, error) {
	return userJWT(id.ServerUser, id.Account, "kanade-server", nil)
}

// SysUserJWT is the user that pushes account updates (revocations).
func (id *Identity) SysUserJWT() (string, error) {
	return userJWT(id.SysUser, id.SysAccount, "kanade-system", nil)
}

// EnrollUserJWT signs the user of one enrollment bundle in the agents'
// account: it can send an enrollment request and read the replies,
// nothing else. Each enrollment token has a user of its own, so revoking
// the token (or rotating its bundle) revokes the user at the broker.
func (id *Identity) EnrollUserJWT(userPub, tokenID string, expires time.Time) (string, error) {
	if !nkeys.IsValidPublicUserKey(userPub) {
		return "", fmt.Errorf("%q is not a user public key", userPub)
	}
	uc := jwt.NewUserClaims(userPub)
	uc.Name = "kanade-enroll " + tokenID
	uc.Permissions = EnrollPermissions()
	if !expires.IsZero() {
		uc.Expires = expires.Unix()
	}
	return uc.Encode(id.AgentAccount)
}

// MintAgent signs the credential of one agent: its public key, its pc_id
// as the name and its groups as tags; the permissions come from the
// agents' account's template.
func (id *Identity) MintAgent(agentPub, pcID string, groups []string, expires time.Time) (string, error) {
	if !nkeys.IsValidPublicUserKey(agentPub) {
		return "", fmt.Errorf("%q is not a user public key", agentPub)
	}
	if err := wire.ValidateID("pc_id", pcID); err != nil {
		return "", err
	}
	uc := jwt.NewUserClaims(agentPub)
	// A scoped signer rejects users that carry their own limits.
	uc.UserPermissionLimits = jwt.UserPermissionLimits{}
	uc.Name = pcID
	uc.IssuerAccount = pub(id.AgentAccount)
	uc.Expires = expires.Unix()
	for _, g := range groups {
		if err := wire.ValidateGroup(g); err != nil {
			return "", err
		}
		uc.Tags.Add("group:" + g)
	}
	return uc.Encode(id.AgentSigner)
}

// FormatCreds writes a .creds file body for a user JWT and its seed.
func FormatCreds(userJWT string, seed []byte) ([]byte, error) {
	return jwt.FormatUserConfig(userJWT, seed)
}

// EnrollCreds is the .creds body of an enrollment bundle's user.
func (id *Identity) EnrollCreds(user nkeys.KeyPair, tokenID string, expires time.Time) ([]byte, error) {
	j, err := id.EnrollUserJWT(pub(user), tokenID, expires)
	if err != nil {
		return nil, err
	}
	seed, err := user.Seed()
	if err != nil {
		return nil, err
	}
	return FormatCreds(j, seed)
}

// RotateEnrollUser replaces the default bundle's user key (DATA/secrets);
// the caller revokes the old one.
func (id *Identity) RotateEnrollUser(dir string) (old string, err error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", err
	}
	if err := writeKey(filepath.Join(dir, "enroll-user.nk"), kp); err != nil {
		return "", err
	}
	old = pub(id.EnrollUser)
	id.EnrollUser = kp
	return old, nil
}
