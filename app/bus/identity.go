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

// Identity is the NATS operator-mode trust chain of one installation:
// an operator, the system account, kanade's account, the scoped signing
// key that mints agent credentials, and the users the server and the
// enrollment credential connect as. Seeds live in DATA/secrets, readable
// only by the server's user.
type Identity struct {
	Operator    nkeys.KeyPair
	SysAccount  nkeys.KeyPair
	Account     nkeys.KeyPair
	AgentSigner nkeys.KeyPair
	ServerUser  nkeys.KeyPair
	SysUser     nkeys.KeyPair
	EnrollUser  nkeys.KeyPair
}

// AgentRole is the role of the scoped signing key for agents.
const AgentRole = "agent"

// AgentJWTLifetime is how long an agent credential is valid; agents renew
// it when a third is left. Revocations older than this are pruned.
const AgentJWTLifetime = 30 * 24 * time.Hour

// LoadIdentity reads the keys from dir, creating the missing ones.
func LoadIdentity(dir string) (*Identity, error) {
	var id Identity
	for _, k := range []struct {
		file   string
		create func() (nkeys.KeyPair, error)
		dst    *nkeys.KeyPair
	}{
		{"operator.nk", nkeys.CreateOperator, &id.Operator},
		{"system-account.nk", nkeys.CreateAccount, &id.SysAccount},
		{"account.nk", nkeys.CreateAccount, &id.Account},
		{"agent-signer.nk", nkeys.CreateAccount, &id.AgentSigner},
		{"server-user.nk", nkeys.CreateUser, &id.ServerUser},
		{"system-user.nk", nkeys.CreateUser, &id.SysUser},
		{"enroll-user.nk", nkeys.CreateUser, &id.EnrollUser},
	} {
		kp, err := loadOrCreateKey(filepath.Join(dir, k.file), k.create)
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
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	kp, err := create()
	if err != nil {
		return nil, err
	}
	seed, _ := kp.Seed()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, append(seed, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return kp, nil
}

func pub(kp nkeys.KeyPair) string {
	p, _ := kp.PublicKey()
	return p
}

// AccountPublicKey is kanade's account.
func (id *Identity) AccountPublicKey() string { return pub(id.Account) }

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

// Revocation is an agent key that may no longer connect.
type Revocation struct {
	PublicKey string
	At        time.Time
}

// AgentTemplate is what every agent credential may do, with {{name()}}
// standing for its pc_id and {{tag(group)}} for each of its groups. An
// agent reads only its own commands and the commands of its groups, and
// publishes only under its own pc_id.
func AgentTemplate() jwt.UserPermissionLimits {
	var p jwt.UserPermissionLimits
	p.Sub.Allow.Add(
		wire.CommandAllWildcard, "commands.group.{{tag(group)}}.>", "commands.pc.{{name()}}.>",
		wire.KillWildcard, wire.ControlAll, "control.pc.{{name()}}", wire.AgentInboxPrefix("{{name()}}")+".>",
	)
	p.Pub.Allow.Add(
		wire.ResultSubject("{{name()}}"), wire.OutputSubject("{{name()}}"), "heartbeat.{{name()}}", "inventory.{{name()}}",
		wire.RenewSubject("{{name()}}"), wire.CatchupSubject("{{name()}}"),
		// Read-only KV: subject-form direct gets only. No other JetStream
		// API (catch-up is a request to the server): each permission
		// subject costs the broker memory on every connection.
		wire.KVDirectGetPrefix(wire.KVScriptCurrent)+".>", wire.KVDirectGetPrefix(wire.KVScriptStatus)+".>",
		wire.KVDirectGetPrefix(wire.KVFleet)+".>",
	)
	return p
}

// AccountJWT is kanade's account with the agent template and the
// revocations of the last AgentJWTLifetime (older credentials have
// expired anyway, which keeps the list bounded).
func (id *Identity) AccountJWT(revoked []Revocation, now time.Time) (string, error) {
	ac := jwt.NewAccountClaims(pub(id.Account))
	ac.Name = "KANADE"
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{DiskStorage: -1, MemoryStorage: -1, Streams: -1, Consumer: -1}
	sc := jwt.NewUserScope()
	sc.Key = pub(id.AgentSigner)
	sc.Role = AgentRole
	sc.Template = AgentTemplate()
	ac.SigningKeys.AddScopedSigner(sc)
	sort.Slice(revoked, func(i, j int) bool { return revoked[i].PublicKey < revoked[j].PublicKey })
	for _, r := range revoked {
		if now.Sub(r.At) <= AgentJWTLifetime+time.Hour {
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

// EnrollUserJWT is the shared enrollment credential: it can send an
// enrollment request and read the reply, nothing else.
func (id *Identity) EnrollUserJWT() (string, error) {
	var p jwt.Permissions
	p.Pub.Allow.Add(wire.EnrollSubject)
	p.Sub.Allow.Add(wire.EnrollInboxPrefix + ".>")
	return userJWT(id.EnrollUser, id.Account, "kanade-enroll", &p)
}

// MintAgent signs the credential of one agent: its public key, its pc_id
// as the name and its groups as tags; the permissions come from the
// account's template.
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
	uc.IssuerAccount = pub(id.Account)
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

// EnrollCreds is the .creds body of the shared enrollment credential.
func (id *Identity) EnrollCreds() ([]byte, error) {
	j, err := id.EnrollUserJWT()
	if err != nil {
		return nil, err
	}
	seed, err := id.EnrollUser.Seed()
	if err != nil {
		return nil, err
	}
	return FormatCreds(j, seed)
}
