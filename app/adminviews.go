package app

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
)

// The resources of the administration API (admin.go) as clients see them, their entity tags,
// and the preconditions that make concurrent edits safe.
//
// A view never carries a secret (a webhook's secret, an API key's hash or signing secret): it
// is what GET answers, what an ETag is computed over and what the audit trail records as
// "before" and "after", so a secret written through the API is never read back by anyone.

// Versioned is a resource as read or written: its view, its entity tag, and the revision of the
// directory it was read from or written to.
type Versioned[T any] struct {
	Value T
	ETag  string
	Rev   int64
}

// TenantView is a tenant's own settings (GET /v1/tenants/{tenant}); its extensions, hunt
// groups, rules, policies and webhooks are resources of their own. Endpoints are the patterns
// of the devices the operator gave the tenant (config.Tenant.Endpoints; [] when none: then only
// the operator sets its extensions' endpoints).
type TenantView struct {
	ID                 string   `json:"id"`
	Name               string   `json:"name"`
	SupervisionEnabled bool     `json:"supervision_enabled"`
	RequestSignatures  string   `json:"request_signatures"`
	Endpoints          []string `json:"endpoints"`
}

// TenantCreate is a new tenant. Supervision starts disabled unless the operator says otherwise;
// it has the endpoints given (none by default).
type TenantCreate struct {
	ID                 string   `json:"id"`
	Name               string   `json:"name"`
	SupervisionEnabled bool     `json:"supervision_enabled"`
	Endpoints          []string `json:"endpoints"`
}

// TenantPatch changes a tenant's name, or (the operator only) its supervision switch or its
// endpoints (replaced whole; [] removes them). Absent fields stay as they are.
type TenantPatch struct {
	Name               *string   `json:"name"`
	SupervisionEnabled *bool     `json:"supervision_enabled"`
	Endpoints          *[]string `json:"endpoints"`
}

// ExtensionView is a phone of the tenant (also the body that creates one; role defaults to
// agent).
type ExtensionView struct {
	Number   string `json:"number"`
	Endpoint string `json:"endpoint"`
	Name     string `json:"name"`
	Role     string `json:"role"`
}

// ExtensionPatch changes an extension; its number is its identity and does not change.
type ExtensionPatch struct {
	Endpoint *string `json:"endpoint"`
	Name     *string `json:"name"`
	Role     *string `json:"role"`
}

// HuntGroupView is a hunt group with its members (also the body that creates one).
type HuntGroupView struct {
	Name    string       `json:"name"`
	Members []MemberView `json:"members"`
}

// HuntGroupPatch renames a hunt group.
type HuntGroupPatch struct {
	Name *string `json:"name"`
}

// MemberView is an extension's membership of a hunt group (also the body that adds one).
type MemberView struct {
	Extension          string `json:"extension"`
	SupervisionAllowed bool   `json:"supervision_allowed"`
}

// MemberPatch switches a member's "supervision allowed".
type MemberPatch struct {
	SupervisionAllowed *bool `json:"supervision_allowed"`
}

// AnnounceView is the tenant's announcement policy (none or beep).
type AnnounceView struct {
	Announce string `json:"announce"`
}

// HelpPolicyView is the tenant's help-request timeouts, as Go durations ("2m", "90s"), the
// configuration file's form. An empty field is the default.
type HelpPolicyView struct {
	EscalateAfter string `json:"escalate_after"`
	ExpireAfter   string `json:"expire_after"`
}

// WebhookView is an outbound webhook receiver, without its secret (write-only). ID is derived
// from the URL, which is unique in a tenant.
type WebhookView struct {
	ID         string `json:"id"`
	URL        string `json:"url"` // without its password, if it has one
	AllowLocal bool   `json:"allow_local"`
	SecretEnv  string `json:"secret_env,omitempty"`
}

// WebhookCreate is a new receiver: its secret (or, the operator only, secret_env naming a
// variable of every instance's environment), and (the operator only) allow_local.
type WebhookCreate struct {
	URL        string `json:"url"`
	Secret     string `json:"secret"`
	SecretEnv  string `json:"secret_env"`
	AllowLocal bool   `json:"allow_local"`
}

// ETag is the strong entity tag of a view: the quoted hex SHA-256 of its JSON, which
// encoding/json writes the same way every time for the same value (struct fields in order).
func ETag(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Views are plain data; this cannot happen. A tag that matches nothing is the safe
		// answer if it ever did.
		return `"unrepresentable"`
	}
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// Precondition is what a client asks of the resource's current state before a change (HTTP
// If-Match and If-None-Match, parsed by the edge). The zero value asks nothing: conditions are
// optional, but a client that sends one gets it checked against the revision its change
// replaces, atomically.
type Precondition struct {
	// IfMatch lists entity tags (quoted, as sent; a weak one, W/"...", never matches: the
	// comparison is strong); the change is made only if the resource's tag is one of them.
	IfMatch []string
	// IfMatchAny (If-Match: *): the resource must exist.
	IfMatchAny bool
	// IfNoneMatchAny (If-None-Match: *): the resource must not exist (creation only).
	IfNoneMatchAny bool
}

// check applies pc to a resource that exists or not, whose view is cur.
func (pc Precondition) check(exists bool, cur any) error {
	fail := func(msg string) error {
		return apiError(ErrPrecondition, "precondition_failed", msg)
	}
	switch {
	case pc.IfNoneMatchAny && exists:
		return fail("If-None-Match: * but the resource exists")
	case (pc.IfMatchAny || len(pc.IfMatch) > 0) && !exists:
		return fail("If-Match but the resource does not exist")
	case len(pc.IfMatch) > 0 && !slices.Contains(pc.IfMatch, ETag(cur)):
		return fail("If-Match: the resource changed since that entity tag; read it again")
	}
	return nil
}

// ErrPrecondition: a change's precondition (If-Match, If-None-Match) does not hold.
var ErrPrecondition = errors.New("precondition failed")

func tenantView(t *config.Tenant) TenantView {
	return TenantView{ID: t.ID, Name: t.Name, SupervisionEnabled: t.SupervisionEnabled, RequestSignatures: string(t.RequestSignatures),
		Endpoints: append([]string{}, t.Endpoints...)}
}

func extensionView(e config.Extension) ExtensionView {
	return ExtensionView{Number: e.Number, Endpoint: e.Endpoint, Name: e.Name, Role: string(e.Role)}
}

func huntGroupView(g config.HuntGroup) HuntGroupView {
	v := HuntGroupView{Name: g.Name, Members: []MemberView{}}
	for _, m := range g.Members {
		v.Members = append(v.Members, MemberView(m))
	}
	return v
}

func helpPolicyView(h config.HelpPolicy) HelpPolicyView {
	return HelpPolicyView{EscalateAfter: h.EscalateAfter.String(), ExpireAfter: h.ExpireAfter.String()}
}

// WebhookID is the id of the webhook receiver at url.
func WebhookID(url string) string {
	sum := sha256.Sum256([]byte(url))
	return hex.EncodeToString(sum[:8])
}

func webhookView(w config.Webhook) WebhookView {
	return WebhookView{ID: WebhookID(w.URL), URL: config.RedactURL(w.URL), AllowLocal: w.AllowLocal, SecretEnv: w.SecretEnv}
}

// tenantExport is the whole of a tenant as the audit trail records a tenant created or
// deleted, so that a deleted one can be put back by hand: every view, no secret (its bootstrap
// API keys by name and role only).
type tenantExport struct {
	TenantView
	Announce     string           `json:"announce"`
	DialingRules dialplan.Rules   `json:"dialing_rules"`
	HelpRequests HelpPolicyView   `json:"help_requests"`
	Extensions   []ExtensionView  `json:"extensions"`
	HuntGroups   []HuntGroupView  `json:"hunt_groups"`
	Webhooks     []WebhookView    `json:"webhooks"`
	APIKeys      []map[string]any `json:"api_keys,omitempty"`
}

func exportTenant(t *config.Tenant) tenantExport {
	x := tenantExport{
		TenantView: tenantView(t), Announce: string(t.Announce), DialingRules: t.DialingRules,
		HelpRequests: helpPolicyView(t.HelpRequests),
		Extensions:   []ExtensionView{}, HuntGroups: []HuntGroupView{}, Webhooks: []WebhookView{},
	}
	for _, e := range t.Extensions {
		x.Extensions = append(x.Extensions, extensionView(e))
	}
	for _, g := range t.HuntGroups {
		x.HuntGroups = append(x.HuntGroups, huntGroupView(g))
	}
	for _, w := range t.Webhooks {
		x.Webhooks = append(x.Webhooks, webhookView(w))
	}
	for _, k := range t.APIKeys {
		x.APIKeys = append(x.APIKeys, map[string]any{"name": k.Name, "role": k.Role, "extension": k.Extension})
	}
	return x
}

// parseHelpPolicy reads a HelpPolicyView (client input): each field empty (the default) or a
// Go duration; the range rules are the directory's (config.Validate).
func parseHelpPolicy(v HelpPolicyView) (config.HelpPolicy, error) {
	var h config.HelpPolicy
	for _, f := range []struct {
		name, val string
		dst       *time.Duration
		def       time.Duration
	}{
		{"escalate_after", v.EscalateAfter, &h.EscalateAfter, config.DefaultHelpEscalateAfter},
		{"expire_after", v.ExpireAfter, &h.ExpireAfter, config.DefaultHelpExpireAfter},
	} {
		s := strings.TrimSpace(f.val)
		if s == "" {
			*f.dst = f.def
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			e := apiError(ErrInvalid, "invalid_field", fmt.Sprintf("%s: %q: want a duration such as 90s or 2m", f.name, f.val))
			e.Field = f.name
			return config.HelpPolicy{}, e
		}
		*f.dst = d
	}
	return h, nil
}
