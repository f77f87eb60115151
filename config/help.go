package config

import "time"

// Help request timeouts. A request nobody accepted is escalated (the tenant's admins are told,
// the request stays open) after EscalateAfter, and expires (state expired) after ExpireAfter,
// both counted from when it was raised.
const (
	DefaultHelpEscalateAfter = 2 * time.Minute
	DefaultHelpExpireAfter   = 10 * time.Minute
	// MaxHelpTimeout bounds both: a help request belongs to a live call.
	MaxHelpTimeout = 24 * time.Hour
)

// HelpPolicy is a tenant's help_requests settings. Zero fields take the defaults.
type HelpPolicy struct {
	// EscalateAfter: an open request not accepted this long after it was raised is escalated
	// (help.escalated, for the tenant's admins); it stays open.
	EscalateAfter time.Duration `yaml:"escalate_after"`
	// ExpireAfter: an open request not accepted this long after it was raised expires
	// (help.expired). Longer than EscalateAfter.
	ExpireAfter time.Duration `yaml:"expire_after"`
}

func (h *HelpPolicy) applyDefaults() {
	if h.EscalateAfter == 0 {
		h.EscalateAfter = DefaultHelpEscalateAfter
	}
	if h.ExpireAfter == 0 {
		h.ExpireAfter = DefaultHelpExpireAfter
	}
}

// validate reports the policy's problems at where (tenants[<id>].help_requests).
func (h HelpPolicy) validate(v *validator, where string) {
	for _, d := range []struct {
		name string
		val  time.Duration
	}{{"escalate_after", h.EscalateAfter}, {"expire_after", h.ExpireAfter}} {
		if d.val < time.Second || d.val > MaxHelpTimeout {
			v.add(where+"."+d.name, "%s: want 1s to %s", d.val, MaxHelpTimeout)
		}
	}
	if h.ExpireAfter <= h.EscalateAfter {
		v.add(where, "expire_after (%s) must be longer than escalate_after (%s)", h.ExpireAfter, h.EscalateAfter)
	}
}
