package webhooks

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzParseSessionToken: a session cookie's value is outside input, read before anything is
// looked up. Whatever it holds, parsing does not panic, and what it accepts is exactly what
// randomToken makes: 32 bytes in unpadded base64url, which decode and encode back to the same
// text (no second spelling of one token).
func FuzzParseSessionToken(f *testing.F) {
	f.Add(randomToken())
	f.Add("")
	f.Add(strings.Repeat("A", 43))
	f.Add(strings.Repeat("A", 42) + "B")
	f.Add(strings.Repeat("_", 43))
	f.Add(strings.Repeat("A", 42) + "=")
	f.Add("\x00" + strings.Repeat("A", 42))
	f.Fuzz(func(t *testing.T, v string) {
		tok, ok := parseSessionToken(v)
		raw, err := base64.RawURLEncoding.Strict().DecodeString(v)
		canonical := err == nil && len(raw) == 32 && base64.RawURLEncoding.EncodeToString(raw) == v
		if ok != canonical {
			t.Fatalf("parseSessionToken(%q) = %v, but it is canonical base64url of 32 bytes: %v", v, ok, canonical)
		}
		if ok && tok != v {
			t.Fatalf("parseSessionToken(%q) returned %q", v, tok)
		}
	})
}

// FuzzSessionCookie: whatever a request's Cookie header holds, reading the session cookie does
// not panic; a token is found only when exactly one cookie of the session's name holds a
// well-formed one, and it is that cookie's value.
func FuzzSessionCookie(f *testing.F) {
	good := randomToken()
	f.Add(cookiePlain+"="+good, false)
	f.Add(cookieSecure+"="+good, true)
	f.Add(cookiePlain+"="+good+"; "+cookiePlain+"="+good, false)
	f.Add("a=b; "+cookiePlain+"=\""+good+"\"", false)
	f.Add(";;;=", true)
	f.Fuzz(func(t *testing.T, header string, secure bool) {
		req := &http.Request{Header: http.Header{"Cookie": {header}}}
		tok, present := sessionCookie(req, secure)
		name := cookiePlain
		if secure {
			name = cookieSecure
		}
		cs := req.CookiesNamed(name)
		if present != (len(cs) > 0) {
			t.Fatalf("Cookie %q: present = %v with %d cookies named %s", header, present, len(cs), name)
		}
		if tok != "" {
			if len(cs) != 1 || cs[0].Value != tok {
				t.Fatalf("Cookie %q: token %q from %v", header, tok, cs)
			}
			if _, ok := parseSessionToken(tok); !ok {
				t.Fatalf("Cookie %q: malformed token %q accepted", header, tok)
			}
		}
	})
}

// FuzzSameOrigin: the Origin header is outside input. Whatever it holds, the check does not
// panic, and it accepts only an http or https origin whose host is the request's, exactly.
func FuzzSameOrigin(f *testing.F) {
	f.Add("http://example.com", "example.com")
	f.Add("https://example.com:8443", "example.com:8443")
	f.Add("https://evil.example", "example.com")
	f.Add("null", "example.com")
	f.Add("http://example.com.evil.example", "example.com")
	f.Add("http://user@example.com", "example.com")
	f.Add("javascript://example.com", "example.com")
	f.Fuzz(func(t *testing.T, origin, host string) {
		if !sameOrigin(origin, host) {
			return
		}
		u, err := url.Parse(origin)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !strings.EqualFold(u.Host, host) || host == "" || u.User != nil {
			t.Fatalf("sameOrigin(%q, %q) accepted %+v", origin, host, u)
		}
	})
}
