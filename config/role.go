package config

import (
	"fmt"
	"strings"
)

// Role is what an extension or an API key may do (SPEC §4).
//
// Role is a string type so that a misspelt role survives decoding and is
// reported by Validate, with its location, together with every other
// problem; use Valid to check one.
type Role string

const (
	// RoleAgent handles calls and raises help requests; it never supervises.
	RoleAgent Role = "agent"
	// RoleSupervisor (the seed's manager) may supervise the members of the
	// hunt groups in which it has supervision allowed.
	RoleSupervisor Role = "supervisor"
	// RoleAdmin administers the tenant. As an extension dialing feature codes
	// it follows the same hunt-group rule as a supervisor; as an API key it
	// may name any extension of its tenant as the supervisor of a join.
	RoleAdmin Role = "admin"
)

// ParseRole returns the Role named s, in any letter case.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if !r.Valid() {
		return "", fmt.Errorf("role %q: want agent, supervisor or admin", s)
	}
	return r, nil
}

// String returns the role's name.
func (r Role) String() string { return string(r) }

// Valid reports whether r is agent, supervisor or admin.
func (r Role) Valid() bool {
	switch r {
	case RoleAgent, RoleSupervisor, RoleAdmin:
		return true
	default:
		return false
	}
}

// MaySupervise reports whether an extension with role r may supervise at
// all (supervisor or admin); hunt groups then decide whom.
func (r Role) MaySupervise() bool {
	switch r {
	case RoleSupervisor, RoleAdmin:
		return true
	case RoleAgent:
		return false
	default:
		return false
	}
}

// UnmarshalText implements encoding.TextUnmarshaler. It lower-cases and
// trims the text and never fails: unknown roles are kept for Validate, since
// a decoding error would stop at the first problem and, with yaml.v3, carry
// no line number.
func (r *Role) UnmarshalText(text []byte) error {
	*r = Role(strings.ToLower(strings.TrimSpace(string(text))))
	return nil
}

// Announce is a tenant's policy for telling the call that a supervisor has
// joined. Silent monitoring is invisible by default (SPEC §2).
type Announce string

const (
	// AnnounceNone plays nothing, in every mode.
	AnnounceNone Announce = "none"
	// AnnounceBeep plays a short beep into the call when a supervisor
	// joins, in every mode including spy, so monitoring is never silent.
	AnnounceBeep Announce = "beep"
)

// String returns the policy's name.
func (a Announce) String() string { return string(a) }

// Valid reports whether a is none or beep.
func (a Announce) Valid() bool {
	switch a {
	case AnnounceNone, AnnounceBeep:
		return true
	default:
		return false
	}
}

// UnmarshalText implements encoding.TextUnmarshaler like Role's: normalise,
// never fail, let Validate report.
func (a *Announce) UnmarshalText(text []byte) error {
	*a = Announce(strings.ToLower(strings.TrimSpace(string(text))))
	return nil
}
