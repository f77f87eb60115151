package config

import (
	"fmt"
	"strings"
)

// A tenant's endpoints (Tenant.Endpoints) are the devices the operator has given it, as
// patterns: an extension of the tenant may only use an endpoint one of them matches, so a
// tenant admin cannot give an extension another customer's phone (and then supervise it).
//
// The syntax is deliberately small, so that what a pattern covers is obvious:
//
//	PJSIP/744      exactly that endpoint
//	PJSIP/7*       every PJSIP endpoint whose resource starts with "7" (PJSIP/7, PJSIP/744)
//	PJSIP/acme-*   every PJSIP endpoint whose resource starts with "acme-"
//	PJSIP/*        every PJSIP endpoint (the whole technology: the operator's choice)
//
// That is: a literal TECH/ (a letter, then letters, digits or '_'), a literal resource prefix
// (the characters an endpoint's resource may have: letters, digits and . _ - + @), and at most
// one '*', last, standing for any rest of the resource (none included). Nothing else is special:
// no '?', no classes, no '*' in the middle. As for endpoints, the technology matches in any
// letter case and the resource exactly, as Asterisk does.
//
// Patterns of two tenants may not overlap (no endpoint may match both), and an extension may not
// use an endpoint another tenant's pattern matches: a pattern gives its tenant those endpoints,
// alone.

// EndpointPattern is a parsed entry of Tenant.Endpoints.
type EndpointPattern struct {
	tech   string // upper case
	prefix string // the resource, or its literal start when wild
	wild   bool   // a trailing '*': any rest of the resource
}

// ParseEndpointPattern parses one entry of a tenant's endpoints (see the syntax above).
func ParseEndpointPattern(s string) (EndpointPattern, error) {
	bad := func(why string) (EndpointPattern, error) {
		return EndpointPattern{}, fmt.Errorf("%q: %s; want TECH/resource, optionally ending in * (PJSIP/744, PJSIP/7*)", s, why)
	}
	tech, res, ok := strings.Cut(s, "/")
	if !ok || tech == "" {
		return bad("no TECH/")
	}
	wild := strings.HasSuffix(res, "*")
	prefix := strings.TrimSuffix(res, "*")
	switch {
	case strings.Contains(prefix, "*"):
		return bad("'*' only as the last character")
	case prefix == "" && !wild:
		return bad("no resource")
	}
	if !validTech(tech) {
		return bad("bad TECH")
	}
	if !validResource(prefix) {
		return bad("bad resource")
	}
	return EndpointPattern{tech: strings.ToUpper(tech), prefix: prefix, wild: wild}, nil
}

// String is the pattern in its canonical form (the technology upper case).
func (p EndpointPattern) String() string {
	s := p.tech + "/" + p.prefix
	if p.wild {
		s += "*"
	}
	return s
}

// Match reports whether endpoint (TECH/resource, as an extension's) is one p covers. An
// endpoint that is not TECH/resource matches nothing.
func (p EndpointPattern) Match(endpoint string) bool {
	norm, ok := normalizeEndpoint(endpoint)
	if !ok {
		return false
	}
	return p.matchNorm(norm)
}

func (p EndpointPattern) matchNorm(norm string) bool {
	tech, res, _ := strings.Cut(norm, "/")
	if tech != p.tech {
		return false
	}
	if p.wild {
		return strings.HasPrefix(res, p.prefix)
	}
	return res == p.prefix
}

// Overlaps reports whether some endpoint matches both p and q.
func (p EndpointPattern) Overlaps(q EndpointPattern) bool {
	if p.tech != q.tech {
		return false
	}
	switch {
	case p.wild && q.wild:
		return strings.HasPrefix(p.prefix, q.prefix) || strings.HasPrefix(q.prefix, p.prefix)
	case p.wild:
		return strings.HasPrefix(q.prefix, p.prefix)
	case q.wild:
		return strings.HasPrefix(p.prefix, q.prefix)
	default:
		return p.prefix == q.prefix
	}
}

// EndpointAllowed reports whether t's endpoints cover endpoint: true when t lists no
// patterns (its extensions' endpoints are then set by the operator alone, see app.Admin), else
// when one of them matches. Patterns that do not parse match nothing.
func (t *Tenant) EndpointAllowed(endpoint string) bool {
	if len(t.Endpoints) == 0 {
		return true
	}
	for _, s := range t.Endpoints {
		if p, err := ParseEndpointPattern(s); err == nil && p.Match(endpoint) {
			return true
		}
	}
	return false
}

func validTech(tech string) bool {
	if tech == "" {
		return false
	}
	for i := 0; i < len(tech); i++ {
		c := tech[i]
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !(letter || i > 0 && ('0' <= c && c <= '9' || c == '_')) {
			return false
		}
	}
	return true
}

// validResource reports whether res has only the characters of an endpoint's resource (it may
// be empty: a pattern's prefix).
func validResource(res string) bool {
	for i := 0; i < len(res); i++ {
		c := res[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._-+@", c) >= 0) {
			return false
		}
	}
	return true
}

// endpointRange is one valid pattern of a tenant, and where it is (tenants[acme].endpoints[0]).
type endpointRange struct {
	tenant int // index in Config.Tenants
	where  string
	p      EndpointPattern
}

// tenantWheres names each tenant as Validate's messages do: tenants[id] when its id is usable
// and not a repeat, tenants[i] otherwise.
func tenantWheres(tenants []Tenant) []string {
	seen := map[string]bool{}
	out := make([]string, len(tenants))
	for i, t := range tenants {
		if validID(t.ID) && !seen[t.ID] {
			seen[t.ID] = true
			out[i] = "tenants[" + t.ID + "]"
		} else {
			out[i] = fmt.Sprintf("tenants[%d]", i)
		}
	}
	return out
}

// endpointRanges parses every tenant's endpoints into v.ranges, before the tenants are checked
// (an extension is checked against every tenant's patterns, later ones included). Their problems
// (a bad pattern; one that overlaps another tenant's, reported at the later one) are kept by
// tenant in v.rangeProblems, for v.tenant to report in file order.
func (v *validator) endpointRanges(tenants []Tenant) {
	wheres := tenantWheres(tenants)
	v.ranges, v.rangeProblems = nil, map[int][]error{}
	for i := range tenants {
		for j, s := range tenants[i].Endpoints {
			w := fmt.Sprintf("%s.endpoints[%d]", wheres[i], j)
			p, err := ParseEndpointPattern(s)
			if err != nil {
				v.rangeProblems[i] = append(v.rangeProblems[i], &FieldError{Field: w, Err: err})
				continue
			}
			for _, r := range v.ranges {
				if r.tenant != i && r.p.Overlaps(p) {
					v.rangeProblems[i] = append(v.rangeProblems[i], &FieldError{Field: w, Conflict: r.where,
						Err: fmt.Errorf("%q overlaps %s %q: an endpoint belongs to one tenant", s, r.where, r.p)})
					break
				}
			}
			v.ranges = append(v.ranges, endpointRange{tenant: i, where: w, p: p})
		}
	}
}

// endpointInRange checks an extension's endpoint (norm, normalised) at w of tenant i against
// the tenants' endpoints: one of its own patterns must match it when it has any, and no other
// tenant's may.
func (v *validator) endpointInRange(w string, i int, t *Tenant, endpoint, norm string) {
	own := false
	for _, r := range v.ranges {
		if !r.p.matchNorm(norm) {
			continue
		}
		if r.tenant == i {
			own = true
			continue
		}
		v.clash(w, r.where, "endpoint %q is reserved by %s", endpoint, r.where)
		return
	}
	if len(t.Endpoints) > 0 && !own {
		v.add(w, "endpoint %q is not in the tenant's endpoints (%s)", endpoint, strings.Join(t.Endpoints, ", "))
	}
}
