// Package auth says who is calling and what they may do: roles, OIDC
// sign-in with server-side sessions in a signed and encrypted cookie, and
// API bearer tokens. The web package asks it for the caller of each
// request and enforces the role each route needs.
package auth

import (
	"fmt"
	"strings"
)

// Role is what a caller may do; each role includes the ones below it.
type Role int

// Roles, lowest first. RoleNone is no access at all.
const (
	RoleNone Role = iota
	Viewer        // reads everything
	Operator      // runs, deploys, kills, revokes jobs (help desk)
	Approver      // operator + approves rollout waves (manager)
	Admin         // everything: emergency stop, tokens, groups, agent identities
)

var roleNames = [...]string{"", "viewer", "operator", "approver", "admin"}

// Roles lists the assignable roles, lowest first.
func Roles() []Role { return []Role{Viewer, Operator, Approver, Admin} }

func (r Role) String() string {
	if r < 0 || int(r) >= len(roleNames) {
		return fmt.Sprintf("role(%d)", int(r))
	}
	return roleNames[r]
}

// ParseRole reads a role name.
func ParseRole(s string) (Role, error) {
	for i, n := range roleNames {
		if i > 0 && strings.EqualFold(strings.TrimSpace(s), n) {
			return Role(i), nil
		}
	}
	return RoleNone, fmt.Errorf("%q is not a role (viewer, operator, approver or admin)", s)
}

// MarshalText writes the role's name.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Kind says how a caller proved who they are.
type Kind string

// Kinds of callers.
const (
	KindUser  Kind = "user"  // signed in with OIDC; a session cookie
	KindToken Kind = "token" // an API bearer token
	KindDev   Kind = "dev"   // dev mode: nobody signs in
)

// Principal is the caller of a request.
type Principal struct {
	Kind Kind
	// Name is the actor recorded in audit events: the user's email (or
	// user name), the token's name, or "dev".
	Name string
	// Display is what the nav shows (the user's full name when known).
	Display string
	Role    Role
	// ID is the session's id hash or the token's id.
	ID string
	// Subject is who the caller is, stable across sessions and renames:
	// "user:" and the identity provider's subject, "token:" and the API
	// token's id, or "dev".
	Subject string
}

// Can reports whether the caller has at least role min.
func (p *Principal) Can(min Role) bool { return p != nil && p.Role >= min }

// userSubject is a signed-in user's Principal.Subject: empty when the
// session does not know the identity provider's subject.
func userSubject(sub string) string {
	if sub == "" {
		return ""
	}
	return "user:" + sub
}
