package config_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/earpiece/earpiece/config"
)

// TestEndpointPatternSyntax: what a tenant's endpoints entry may be, and its canonical form.
func TestEndpointPatternSyntax(t *testing.T) {
	for s, want := range map[string]string{
		"PJSIP/744":    "PJSIP/744",
		"pjsip/744":    "PJSIP/744",
		"PJSIP/7*":     "PJSIP/7*",
		"PJSIP/acme-*": "PJSIP/acme-*",
		"PJSIP/*":      "PJSIP/*",
		"SIP/a.b+c@d*": "SIP/a.b+c@d*",
		"IAX2/x_1":     "IAX2/x_1",
	} {
		p, err := config.ParseEndpointPattern(s)
		if err != nil || p.String() != want {
			t.Errorf("ParseEndpointPattern(%q) = %q, %v; want %q", s, p, err, want)
		}
	}
	for _, s := range []string{
		"", "PJSIP", "PJSIP/", "/744", "*", "PJSIP*", "PJ*/744", "PJSIP/7**", "PJSIP/*7", "PJSIP/7*4",
		"PJSIP/7?", "PJSIP/[7]*", "PJSIP/7 *", "PJSIP/a/b", "1PJSIP/7", "PJ-SIP/7", "PJSIP/ 7", "PJSIP/7*\n",
	} {
		if p, err := config.ParseEndpointPattern(s); err == nil {
			t.Errorf("ParseEndpointPattern(%q) = %q, want an error", s, p)
		}
	}
}

// TestEndpointPatternMatch: the technology in any case, the resource exactly; '*' any rest.
func TestEndpointPatternMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, endpoint string
		want              bool
	}{
		{"PJSIP/744", "PJSIP/744", true},
		{"PJSIP/744", "pjsip/744", true},
		{"pjsip/744", "PJSIP/744", true},
		{"PJSIP/744", "PJSIP/7440", false},
		{"PJSIP/744", "SIP/744", false},
		{"PJSIP/7*", "PJSIP/7", true},
		{"PJSIP/7*", "PJSIP/744", true},
		{"PJSIP/7*", "PJSIP/847", false},
		{"PJSIP/7*", "PJSIP/7*", false}, // not an endpoint
		{"PJSIP/acme-*", "PJSIP/acme-100", true},
		{"PJSIP/acme-*", "PJSIP/ACME-100", false}, // resources are case-sensitive
		{"PJSIP/acme-*", "PJSIP/acme", false},
		{"PJSIP/*", "PJSIP/anything", true},
		{"PJSIP/*", "IAX2/anything", false},
		{"PJSIP/7*", "PJSIP/7/x", false},
		{"PJSIP/7*", "", false},
	} {
		p, err := config.ParseEndpointPattern(c.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Match(c.endpoint); got != c.want {
			t.Errorf("%q matches %q = %v, want %v", c.pattern, c.endpoint, got, c.want)
		}
	}
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"PJSIP/7*", "PJSIP/74*", true},
		{"PJSIP/7*", "PJSIP/744", true},
		{"PJSIP/7*", "pjsip/7", true},
		{"PJSIP/7*", "PJSIP/8*", false},
		{"PJSIP/7*", "SIP/7*", false},
		{"PJSIP/744", "PJSIP/744", true},
		{"PJSIP/744", "PJSIP/745", false},
		{"PJSIP/*", "PJSIP/x", true},
		{"PJSIP/acme-*", "PJSIP/acm*", true},
		{"PJSIP/acme-*", "PJSIP/acmf*", false},
	} {
		a, _ := config.ParseEndpointPattern(c.a)
		b, _ := config.ParseEndpointPattern(c.b)
		if a.Overlaps(b) != c.want || b.Overlaps(a) != c.want {
			t.Errorf("%q overlaps %q = %v/%v, want %v", c.a, c.b, a.Overlaps(b), b.Overlaps(a), c.want)
		}
	}
}

// FuzzEndpointPattern checks the matcher against a regular expression built from the documented
// syntax, and that Overlaps is exactly "some endpoint matches both".
func FuzzEndpointPattern(f *testing.F) {
	for _, s := range [][3]string{
		{"PJSIP/7*", "PJSIP/744", "PJSIP/74*"},
		{"pjsip/acme-*", "PJSIP/acme-1", "PJSIP/acme-1"},
		{"PJSIP/*", "SIP/1", "SIP/*"},
		{"PJSIP/744", "pjsip/744", "PJSIP/7440"},
		{"PJSIP/7**", "PJSIP/7*", "*"},
		{"IAX2/a.b+c@d*", "iax2/a.b+c@d.e", "IAX2/a.b*"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	resource := regexp.MustCompile(`^[A-Za-z0-9._+@-]*$`)
	tech := regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	f.Fuzz(func(t *testing.T, pattern, endpoint, other string) {
		p, err := config.ParseEndpointPattern(pattern)
		// The documented syntax: TECH/ + resource characters + an optional trailing '*'.
		tc, rest, hasSlash := strings.Cut(pattern, "/")
		prefix := strings.TrimSuffix(rest, "*")
		wild := prefix != rest
		syntaxOK := hasSlash && tech.MatchString(tc) && resource.MatchString(prefix) && (prefix != "" || wild)
		if (err == nil) != syntaxOK {
			t.Fatalf("ParseEndpointPattern(%q) error %v, documented syntax says valid=%v", pattern, err, syntaxOK)
		}
		if err != nil {
			if p.Match(endpoint) {
				t.Fatalf("the zero pattern matches %q", endpoint)
			}
			return
		}
		// Canonical form parses to itself.
		if q, err := config.ParseEndpointPattern(p.String()); err != nil || q != p {
			t.Fatalf("%q -> %q -> %q, %v", pattern, p, q, err)
		}
		ref := "^(?i:" + regexp.QuoteMeta(tc) + ")/" + regexp.QuoteMeta(prefix)
		if wild {
			ref += `[A-Za-z0-9._+@-]*`
		}
		// (?i) folds Unicode too (K, the Kelvin sign): the endpoint's TECH must be ASCII first.
		etech, eres, ok := strings.Cut(endpoint, "/")
		want := ok && tech.MatchString(etech) && eres != "" && resource.MatchString(eres) &&
			regexp.MustCompile(ref+"$").MatchString(endpoint)
		if got := p.Match(endpoint); got != want {
			t.Fatalf("%q matches %q = %v, reference says %v", pattern, endpoint, got, want)
		}
		q, err := config.ParseEndpointPattern(other)
		if err != nil {
			return
		}
		if p.Match(endpoint) && q.Match(endpoint) && !p.Overlaps(q) {
			t.Fatalf("%q and %q both match %q but do not overlap", pattern, other, endpoint)
		}
		if p.Overlaps(q) != q.Overlaps(p) {
			t.Fatalf("Overlaps(%q, %q) is not symmetric", pattern, other)
		}
		// Overlapping patterns share an endpoint: the longer of the two prefixes, completed when
		// it is empty (TECH/* with TECH/*).
		if p.Overlaps(q) {
			witness := strings.TrimSuffix(p.String(), "*")
			if w := strings.TrimSuffix(q.String(), "*"); len(w) > len(witness) {
				witness = w
			}
			if strings.HasSuffix(witness, "/") {
				witness += "x"
			}
			if !p.Match(witness) || !q.Match(witness) {
				t.Fatalf("%q overlaps %q, but %q does not match both", pattern, other, witness)
			}
		}
	})
}

// endpointsConfig is a configuration of two tenants, acme and globex, with the endpoints and
// extensions given (YAML flow sequences).
func endpointsConfig(t *testing.T, acmeEndpoints, acmeExts, globexEndpoints, globexExts string) *config.Config {
	t.Helper()
	y := `
tenants:
  - id: acme
    endpoints: ` + acmeEndpoints + `
    extensions: ` + acmeExts + `
  - id: globex
    endpoints: ` + globexEndpoints + `
    extensions: ` + globexExts + `
`
	cfg, err := config.Decode(strings.NewReader(y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestValidateTenantEndpoints: each extension's endpoint is within its tenant's endpoints when
// it has any, and in no other tenant's; patterns are well formed and do not overlap another
// tenant's; every problem names its field.
func TestValidateTenantEndpoints(t *testing.T) {
	ext := func(n, ep string) string { return `{number: "` + n + `", endpoint: ` + ep + `}` }
	for _, c := range []struct {
		name                 string
		acmeEP, acmeExts     string
		globexEP, globexExts string
		want                 []string // field: message, each a substring of one problem
	}{
		{name: "within", acmeEP: "[PJSIP/7*, PJSIP/acme-*]", acmeExts: "[" + ext("700", "PJSIP/700") + ", " + ext("701", "pjsip/acme-1") + "]",
			globexEP: "[PJSIP/9*]", globexExts: "[" + ext("900", "PJSIP/900") + "]"},
		{name: "no patterns, anything goes", acmeEP: "[]", acmeExts: "[" + ext("700", "PJSIP/700") + "]",
			globexEP: "[]", globexExts: "[" + ext("900", "SIP/anything") + "]"},
		{name: "outside its own", acmeEP: "[PJSIP/7*]", acmeExts: "[" + ext("700", "PJSIP/700") + ", " + ext("800", "PJSIP/800") + "]",
			globexEP: "[]", globexExts: "[]",
			want: []string{`tenants[acme].extensions[1]: endpoint "PJSIP/800" is not in the tenant's endpoints (PJSIP/7*)`}},
		{name: "another tenant's range, the tenant without patterns", acmeEP: "[PJSIP/7*]", acmeExts: "[]",
			globexEP: "[]", globexExts: "[" + ext("900", "PJSIP/744") + "]",
			want: []string{`tenants[globex].extensions[0]: endpoint "PJSIP/744" is reserved by tenants[acme].endpoints[0]`}},
		{name: "another tenant's range, later in the file", acmeEP: "[]", acmeExts: "[" + ext("700", "PJSIP/900") + "]",
			globexEP: "[PJSIP/9*]", globexExts: "[]",
			want: []string{`tenants[acme].extensions[0]: endpoint "PJSIP/900" is reserved by tenants[globex].endpoints[0]`}},
		{name: "overlapping tenants", acmeEP: "[PJSIP/7*]", acmeExts: "[]", globexEP: "[PJSIP/9*, pjsip/74*]", globexExts: "[]",
			want: []string{`tenants[globex].endpoints[1]: "pjsip/74*" overlaps tenants[acme].endpoints[0] "PJSIP/7*"`}},
		{name: "overlap within a tenant is harmless", acmeEP: "[PJSIP/7*, PJSIP/74*, PJSIP/744]", acmeExts: "[" + ext("744", "PJSIP/744") + "]",
			globexEP: "[]", globexExts: "[]"},
		{name: "bad patterns", acmeEP: `[PJSIP/7*4, "PJSIP/", "*"]`, acmeExts: "[]", globexEP: "[]", globexExts: "[]",
			want: []string{
				`tenants[acme].endpoints[0]: "PJSIP/7*4": '*' only as the last character`,
				`tenants[acme].endpoints[1]: "PJSIP/": no resource`,
				`tenants[acme].endpoints[2]: "*": no TECH/`,
			}},
		{name: "bad patterns only: nothing is within", acmeEP: `["PJSIP/7?"]`, acmeExts: "[" + ext("700", "PJSIP/700") + "]", globexEP: "[]", globexExts: "[]",
			want: []string{
				`tenants[acme].endpoints[0]: "PJSIP/7?": bad resource`,
				`tenants[acme].extensions[0]: endpoint "PJSIP/700" is not in the tenant's endpoints (PJSIP/7?)`,
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := endpointsConfig(t, c.acmeEP, c.acmeExts, c.globexEP, c.globexExts).Validate()
			var got []string
			for _, fe := range config.FieldErrors(err) {
				if strings.Contains(fe.Field, "endpoint") || strings.Contains(fe.Err.Error(), "endpoint") {
					got = append(got, fe.Error())
				}
			}
			if len(got) != len(c.want) {
				t.Fatalf("problems %q, want %q (all: %v)", got, c.want, err)
			}
			for i, w := range c.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("problem %d = %q, want %q...", i, got[i], w)
				}
			}
		})
	}
	// A clash names where the other value is (config.FieldError.Conflict), so that the admin
	// API can show a tenant admin its own field and hide the other tenant's name.
	err := endpointsConfig(t, "[PJSIP/7*]", "[]", "[]", "["+ext("900", "PJSIP/744")+"]").Validate()
	fes := config.FieldErrors(err)
	if len(fes) != 1 || fes[0].Field != "tenants[globex].extensions[0]" || fes[0].Conflict != "tenants[acme].endpoints[0]" {
		t.Errorf("reserved endpoint: %+v", fes)
	}
}

// TestEndpointsInDirectoryDocument: endpoints are part of the directory document (export,
// import, Redis), and a tenant without them encodes as before (the same document, the same
// hash: an unchanged file is not imported again after an upgrade).
func TestEndpointsInDirectoryDocument(t *testing.T) {
	cfg := endpointsConfig(t, "[PJSIP/7*, PJSIP/acme-*]", "[{number: \"700\", endpoint: PJSIP/700}]", "[]", "[]")
	doc, err := config.EncodeDirectory(cfg.Tenants)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(doc), "endpoints:") != 1 {
		t.Errorf("document:\n%s\nwant endpoints: for acme only", doc)
	}
	back, err := config.DecodeDirectory(doc)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(back[0].Endpoints, ",") != "PJSIP/7*,PJSIP/acme-*" || len(back[1].Endpoints) != 0 {
		t.Errorf("decoded endpoints %q, %q", back[0].Endpoints, back[1].Endpoints)
	}
	// Clones do not share the list.
	c := config.CloneTenants(back)
	c[0].Endpoints[0] = "PJSIP/8*"
	if back[0].Endpoints[0] != "PJSIP/7*" {
		t.Error("CloneTenants shares the endpoints")
	}
	if !back[0].EndpointAllowed("PJSIP/744") || back[0].EndpointAllowed("PJSIP/844") || !back[1].EndpointAllowed("PJSIP/844") {
		t.Error("EndpointAllowed")
	}
}
