package config

import (
	"fmt"
	"strings"
)

// Role is what an extension or an API key may do: handle calls (agent),
// also supervise the members of its hunt groups (supervisor), or also
// administer the tenant (admin).
//
// Role is a string type so that a misspelt role survives decoding and is
// reported by Validate, with its location, together with every other
// problem; use Valid to check one.
type Role string

const (
	// RoleAgent handles calls and raises help requests; it never supervises.
	RoleAgent Role = "agent"
	// RoleSupervisor (a "manager" in PBX terms) may supervise the members of
	// the hunt groups in which it has supervision allowed.
	RoleSupervisor Role = "supervisor"
	// RoleAdmin administers the tenant. As an extension dialing feature codes
	// it follows the same hunt-group rule as a supervisor; as an API key it
	// may name any extension of its tenant as the supervisor of a join.
	RoleAdmin Role = "admin"
	// RoleOperator is the platform operator's (operator_keys): it administers the tenants
	// themselves and acts in none of them. It is not a tenant role: Valid is false for it, so
	// no tenant key or extension can have it, and no tenant permission grants it anything.
	RoleOperator Role = "operator"
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

// Valid reports whether r is agent, supervisor or admin: a role of a tenant's key or
// extension (RoleOperator is not).
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
// joined. Silent monitoring is invisible by default: nothing tells the agent
// or the customer unless the tenant chooses a policy that does.
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

// Signatures is a tenant's policy for signed API requests.
type Signatures string

const (
	// SignaturesOptional checks a signature when a request carries one
	// (and when the key itself requires it).
	SignaturesOptional Signatures = "optional"
	// SignaturesRequired refuses every unsigned /v1 request made with any
	// of the tenant's keys.
	SignaturesRequired Signatures = "required"
)

// String returns the policy's name.
func (s Signatures) String() string { return string(s) }

// Valid reports whether s is optional or required.
func (s Signatures) Valid() bool {
	switch s {
	case SignaturesOptional, SignaturesRequired:
		return true
	default:
		return false
	}
}

// UnmarshalText implements encoding.TextUnmarshaler like Role's: normalise,
// never fail, let Validate report.
func (s *Signatures) UnmarshalText(text []byte) error {
	*s = Signatures(strings.ToLower(strings.TrimSpace(string(text))))
	return nil
}
