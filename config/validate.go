package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/earpiece/earpiece/dialplan"
)

// maxIDLen caps tenant ids (they end up in Redis keys, URLs and Asterisk
// context names, which Asterisk limits to 79 characters).
const maxIDLen = 64

// Validate checks the whole configuration and reports every problem at once
// (errors.Join), in file order. Each message starts with where the problem
// is, e.g.
//
//	tenants[acme].hunt_groups[support].members[2]: unknown extension "799"
//
// Tenants, hunt groups and API keys are named by their id or name when it is
// usable and not a repeat, otherwise by index; extensions and members are
// named by index. Dialing-rule problems keep the dialplan sentinels
// (errors.Is(err, dialplan.ErrConflict) works through the join).
//
// Each problem is a *FieldError (FieldErrors lists them), so that a caller
// can show the field and the message apart without parsing the text.
//
// Validate expects defaults to have been applied (Load does it); without
// them, empty fields are reported as missing.
func (c *Config) Validate() error {
	var v validator
	c.validateServices(&v)
	v.endpoints = map[string]string{}
	v.keyHashes = map[string]string{}
	// Operator keys first, so that a tenant key reusing one is reported at the tenant key.
	c.validateOperatorKeys(&v)
	v.endpointRanges(c.Tenants)
	tenantIDs := map[string]int{}
	for i := range c.Tenants {
		t := &c.Tenants[i]
		where := fmt.Sprintf("tenants[%d]", i)
		switch first, dup := tenantIDs[t.ID]; {
		case t.ID == "":
			v.add(where, "id: required")
		case !validID(t.ID):
			v.add(where, "id %q: want 1-%d characters from a-z, 0-9, '-' and '_'", t.ID, maxIDLen)
		case dup:
			v.add(where, "id %q already used by tenants[%d]", t.ID, first)
		default:
			tenantIDs[t.ID] = i
			where = fmt.Sprintf("tenants[%s]", t.ID)
		}
		v.tenant(where, i, t)
		for j, w := range t.Webhooks {
			wh := fmt.Sprintf("%s.webhooks[%d]", where, j)
			if err := CheckWebhookURL(w.URL, w.AllowLocal); err != nil {
				v.add(wh+".url", "%v", err)
			}
			// The same decoding the outbound hub does, so that what passes here is sent.
			if w.Secret == "" {
				v.add(wh, "secret: required (or secret_env naming a set variable)")
			} else if _, err := WebhookSigningKey(w.Secret); err != nil {
				v.add(wh, "%v", err)
			}
		}
	}
	return errors.Join(v.errs...)
}

func (c *Config) validateServices(v *validator) {
	if u, ok := v.url("ari.url", c.ARI.URL); ok && u.Scheme != "http" && u.Scheme != "https" {
		v.add("ari.url", "%q: scheme must be http or https", c.ARI.URL)
	}
	if c.ARI.User == "" {
		v.add("ari.user", "required")
	}
	if !validName(c.ARI.App) {
		v.add("ari.app", "%q: want 1-64 ASCII letters, digits, '-' or '_'", c.ARI.App)
	}
	if c.Redis.URL == "" {
		v.add("redis.url", "required")
	} else if err := CheckRedisURL(c.Redis.URL); err != nil { // one server, Sentinel or Cluster (redisurl.go)
		v.add("redis.url", "%v", err)
	}
	if c.Redis.AuditRetentionDays < 0 {
		v.add("redis.audit_retention_days", "%d: want 0 (the default) or more", c.Redis.AuditRetentionDays)
	}
	if c.HTTP.Listen == "" {
		v.add("http.listen", "required")
	} else if _, port, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		v.add("http.listen", "%q: want host:port: %v", c.HTTP.Listen, err)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.add("http.listen", "%q: port must be a number from 0 to 65535", c.HTTP.Listen)
	}
	if p := c.HTTP.Published; p != "" && strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == '/' }) {
		v.add("http.published", "%q: want a host or address (127.0.0.1), optionally with :port", p)
	}
	es := c.HTTP.EventStreams
	for _, n := range []struct {
		name string
		v    int
	}{{"max", es.Max}, {"max_per_tenant", es.MaxPerTenant}, {"max_per_key", es.MaxPerKey}} {
		if n.v < 0 {
			v.add("http.event_streams."+n.name, "%d: want 0 (the default) or more", n.v)
		}
	}
	if es.MaxLifetime < 0 {
		v.add("http.event_streams.max_lifetime", "%v: want 0 (the default) or more", es.MaxLifetime)
	}
	rl := c.HTTP.RateLimits
	for _, r := range []struct {
		name string
		r    Rate
	}{{"per_key", rl.PerKey}, {"per_address", rl.PerAddress}, {"failed_auth_per_address", rl.FailedAuthPerAddress}} {
		if r.r.PerSecond < 0 || r.r.Burst < 0 {
			v.add("http.rate_limits."+r.name, "per_second %v, burst %d: want 0 (the default) or more", r.r.PerSecond, r.r.Burst)
		}
	}
	c.Dialplan.validate(v)
}

// validator collects problems, and the cross-tenant uniqueness indexes.
type validator struct {
	errs      []error
	endpoints map[string]string // normalised endpoint -> where first seen
	keyHashes map[string]string // lower-case hex sha256 -> where first seen
	// ranges are every tenant's valid endpoints patterns; rangeProblems, the problems of each
	// tenant's patterns (endpoints.go).
	ranges        []endpointRange
	rangeProblems map[int][]error
}

func (v *validator) add(where, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Field: where, Err: fmt.Errorf(format, args...)})
}

// clash is add for a value that must be unique and was first used at first.
func (v *validator) clash(where, first, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Field: where, Err: fmt.Errorf(format, args...), Conflict: first})
}

// FieldError is one problem Validate found: Field is where it is, as check-config names it
// (tenants[acme].hunt_groups[support].members[2]), and Err what it is. Its text is
// "Field: Err".
type FieldError struct {
	Field string
	Err   error
	// Conflict, for a value that must be unique (an endpoint across tenants, a key's hash), is
	// where the same value was met first; "" otherwise.
	Conflict string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// FieldErrors returns the *FieldError problems in err's tree (a Validate result, however
// wrapped), in order.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		if fe, ok := err.(*FieldError); ok { //nolint:errorlint // walking the tree by hand
			out = append(out, fe)
			return
		}
		switch u := err.(type) { //nolint:errorlint // walking the tree by hand
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			if e := u.Unwrap(); e != nil {
				walk(e)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// validateOperatorKeys checks operator_keys: names present and unique, hashes well formed and
// never another key's.
func (c *Config) validateOperatorKeys(v *validator) {
	names := map[string]int{}
	for i, k := range c.OperatorKeys {
		w := fmt.Sprintf("operator_keys[%d]", i)
		switch first, dup := names[k.Name]; {
		case k.Name == "":
			v.add(w, "name: required")
		case dup:
			v.add(w, "name %q already used by operator_keys[%d]", k.Name, first)
		default:
			names[k.Name] = i
			w = fmt.Sprintf("operator_keys[%s]", k.Name)
		}
		v.keyHash(w, k.SHA256)
	}
}

// keyHash checks an API key's sha256 at where and records it, so that no two keys (of any
// tenant or the operator) are the same key: authentication finds a key by its hash alone.
func (v *validator) keyHash(where, sha string) {
	if sum, err := hex.DecodeString(sha); err != nil || len(sum) != 32 {
		v.add(where, "sha256: want the key's SHA-256 as 64 hex digits")
	} else if first, dup := v.keyHashes[strings.ToLower(sha)]; dup {
		v.clash(where, first, "sha256: same key as %s", first)
	} else {
		v.keyHashes[strings.ToLower(sha)] = where
	}
}

// url parses an absolute URL with a host, reporting why not.
func (v *validator) url(where, raw string) (*url.URL, bool) {
	if raw == "" {
		v.add(where, "required")
		return nil, false
	}
	// Messages show the URL without its password (a redis:// URL may carry one).
	u, err := url.Parse(raw)
	if err != nil {
		v.add(where, "%s", redactError(err, raw))
		return nil, false
	}
	if u.Scheme == "" || u.Host == "" {
		v.add(where, "%q: want an absolute URL with a host", RedactURL(raw))
		return nil, false
	}
	return u, true
}

// tenant checks tenant i (t), named where.
func (v *validator) tenant(where string, i int, t *Tenant) {
	if !t.Announce.Valid() {
		v.add(where+".announce", "%q: want none or beep", t.Announce)
	}
	if !t.RequestSignatures.Valid() {
		v.add(where+".request_signatures", "%q: want optional or required", t.RequestSignatures)
	}
	if err := t.DialingRules.Validate(); err != nil {
		for _, e := range unjoin(err) {
			v.errs = append(v.errs, &FieldError{Field: where + ".dialing_rules", Err: e})
		}
	}
	t.HelpRequests.validate(v, where+".help_requests")
	v.errs = append(v.errs, v.rangeProblems[i]...)

	numbers := map[string]int{}
	exts := map[string]*Extension{}
	for j := range t.Extensions {
		e := &t.Extensions[j]
		w := fmt.Sprintf("%s.extensions[%d]", where, j)
		switch first, dup := numbers[e.Number]; {
		case e.Number == "":
			v.add(w, "number: required")
		case !dialplan.ValidTarget(e.Number):
			v.add(w, "number %q: want 1-%d digits", e.Number, dialplan.MaxTargetLen)
		case dup:
			v.add(w, "number %q already used by extensions[%d]", e.Number, first)
		default:
			numbers[e.Number] = j
			exts[e.Number] = e
		}
		switch norm, ok := normalizeEndpoint(e.Endpoint); {
		case e.Endpoint == "":
			v.add(w, "endpoint: required")
		case !ok:
			v.add(w, "endpoint %q: want TECH/resource, e.g. PJSIP/744", e.Endpoint)
		default:
			if first, dup := v.endpoints[norm]; dup {
				v.clash(w, first, "endpoint %q already used by %s", e.Endpoint, first)
			} else {
				v.endpoints[norm] = w
			}
			v.endpointInRange(w, i, t, e.Endpoint, norm)
		}
		if !e.Role.Valid() {
			v.add(w, "role %q: want agent, supervisor or admin", e.Role)
		}
	}

	groups := map[string]int{}
	for i := range t.HuntGroups {
		g := &t.HuntGroups[i]
		w := fmt.Sprintf("%s.hunt_groups[%d]", where, i)
		switch first, dup := groups[g.Name]; {
		case g.Name == "":
			v.add(w, "name: required")
		case dup:
			v.add(w, "name %q already used by hunt_groups[%d]", g.Name, first)
		default:
			groups[g.Name] = i
			w = fmt.Sprintf("%s.hunt_groups[%s]", where, g.Name)
		}
		members := map[string]int{}
		for j, m := range g.Members {
			mw := fmt.Sprintf("%s.members[%d]", w, j)
			first, dup := members[m.Extension]
			switch e, known := exts[m.Extension]; {
			case m.Extension == "":
				v.add(mw, "extension: required")
			case !known:
				v.add(mw, "unknown extension %q", m.Extension)
			case dup:
				v.add(mw, "extension %q already listed at members[%d]", m.Extension, first)
			case m.SupervisionAllowed && !e.Role.MaySupervise():
				v.add(mw, "supervision_allowed: extension %q has role %s (want supervisor or admin)", m.Extension, e.Role)
			}
			if !dup {
				members[m.Extension] = j
			}
		}
	}

	names := map[string]int{}
	for i := range t.APIKeys {
		k := &t.APIKeys[i]
		w := fmt.Sprintf("%s.api_keys[%d]", where, i)
		switch first, dup := names[k.Name]; {
		case k.Name == "":
			v.add(w, "name: required")
		case dup:
			v.add(w, "name %q already used by api_keys[%d]", k.Name, first)
		default:
			names[k.Name] = i
			w = fmt.Sprintf("%s.api_keys[%s]", where, k.Name)
		}
		switch {
		case k.Role == "":
			v.add(w, "role: required")
		case k.Role == RoleOperator:
			v.add(w, "role operator: a tenant's key cannot be an operator's (operator_keys, at the top level, are)")
		case !k.Role.Valid():
			v.add(w, "role %q: want agent, supervisor or admin", k.Role)
		}
		v.keyHash(w, k.SHA256)
		switch {
		case k.SigningSecret != "" && len(k.SigningSecret) < MinSigningSecretLen:
			v.add(w, "signing_secret: want at least %d characters (openssl rand -hex 32)", MinSigningSecretLen)
		case k.SigningSecret == "" && t.RequestSignatures == SignaturesRequired:
			v.add(w, "signing_secret: required, the tenant requires signed requests (or signing_secret_env naming a set variable)")
		}
		e, known := exts[k.Extension]
		switch k.Role {
		case RoleAdmin:
			if k.Extension != "" {
				v.add(w, "extension %q: admin keys act for the whole tenant and name no extension", k.Extension)
			}
		case RoleSupervisor, RoleAgent:
			switch {
			case k.Extension == "":
				v.add(w, "extension: required for a %s key", k.Role)
			case !known:
				v.add(w, "unknown extension %q", k.Extension)
			case k.Role == RoleSupervisor && !e.Role.MaySupervise():
				v.add(w, "extension %q has role %s; a supervisor key needs a supervisor or admin extension", k.Extension, e.Role)
			}
		default:
			// An unknown or missing role is reported above.
		}
	}
}

// unjoin splits an errors.Join result into its parts.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// validID reports whether s is a usable tenant id.
func validID(s string) bool {
	if len(s) == 0 || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validName reports whether s is a usable Stasis application name.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// normalizeEndpoint checks TECH/resource and returns it with the technology
// upper-cased: Asterisk matches channel technologies case-insensitively
// (pjsip/744 and PJSIP/744 are the same device) but resources exactly.
//
// TECH is a letter then letters, digits or '_'; the resource is letters,
// digits and . _ - + @.
func normalizeEndpoint(s string) (string, bool) {
	tech, res, ok := strings.Cut(s, "/")
	if !ok || res == "" || !validTech(tech) || !validResource(res) {
		return "", false
	}
	return strings.ToUpper(tech) + "/" + res, true
}
