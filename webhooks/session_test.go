package webhooks

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/earpiece/earpiece/config"
)

// dashSession is a signed-in dashboard: its cookie and CSRF token.
type dashSession struct {
	cookie *http.Cookie
	csrf   string
	body   sessionJSON
}

// signIn signs in with key (hdr: name, value pairs) and fails the test unless it works.
func (e *env) signIn(key string, hdr ...string) dashSession {
	e.t.Helper()
	rec := e.do(http.MethodPost, "/v1/session", "", fmt.Sprintf(`{"key":%q}`, key), hdr...)
	if rec.Code != http.StatusCreated {
		e.t.Fatalf("sign in: %d %s", rec.Code, rec.Body)
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 {
		e.t.Fatalf("sign in set %d cookies", len(cookies))
	}
	var body sessionJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		e.t.Fatal(err)
	}
	return dashSession{cookie: cookies[0], csrf: body.CSRFToken, body: body}
}

// withCookie serves one request carrying the session's cookie (and, when csrf, its CSRF
// token), with no Authorization header. hdr is name, value pairs.
func (e *env) withCookie(s dashSession, csrf bool, method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	all := []string{"Cookie", s.cookie.Name + "=" + s.cookie.Value}
	if csrf {
		all = append(all, HeaderCSRF, s.csrf)
	}
	return e.do(method, path, "", body, append(all, hdr...)...)
}

// TestSessionSignIn: a sign-in answers a cookie no script can read and no other site makes the
// browser send, scoped to the API over plain HTTP, Secure with the __Host- prefix over TLS; the
// answer is never cached and carries the CSRF token; the session itself is in Redis under the
// token's hash, never the token or the key.
func TestSessionSignIn(t *testing.T) {
	e := newEnv(t)
	s := e.signIn(keySup)
	c := s.cookie
	if c.Name != cookiePlain || c.Path != "/v1" || !c.HttpOnly || c.Secure || c.SameSite != http.SameSiteStrictMode ||
		c.MaxAge != 0 || !c.Expires.IsZero() || c.Domain != "" {
		t.Errorf("cookie = %+v", c)
	}
	if _, ok := parseSessionToken(c.Value); !ok {
		t.Errorf("cookie value %q is not a session token", c.Value)
	}
	if s.body.Role != "supervisor" || s.body.Tenant != "acme" || s.body.Extension != "200" || s.body.KeyName != "sup-key" ||
		s.csrf == "" || s.csrf == c.Value || !s.body.ExpiresAt.Equal(t0.Add(DefaultSessionLifetime)) ||
		s.body.IdleTimeoutSeconds != int64(DefaultSessionIdle/time.Second) || !s.body.Directory {
		t.Errorf("session = %+v", s.body)
	}
	keys, err := e.rdb.Keys(t.Context(), "*websession*").Result()
	if err != nil || len(keys) != 1 || strings.Contains(keys[0], c.Value) {
		t.Fatalf("session keys %v (%v)", keys, err)
	}
	stored, _ := e.rdb.HGetAll(t.Context(), keys[0]).Result()
	for _, v := range stored {
		if strings.Contains(v, c.Value) || strings.Contains(v, keySup) {
			t.Errorf("Redis holds the token or the key: %v", stored)
		}
	}
	if ttl := e.rdb.PTTL(t.Context(), keys[0]).Val(); ttl <= 0 || ttl > DefaultSessionIdle {
		t.Errorf("session TTL %v, want at most the idle timeout", ttl)
	}

	rec := e.do(http.MethodPost, "/v1/session", "", fmt.Sprintf(`{"key":%q}`, keyAdmin), "X-Forwarded-Proto", "https")
	if rec.Code != http.StatusCreated || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("sign in over TLS: %d %v", rec.Code, rec.Header())
	}
	tls := rec.Result().Cookies()[0]
	if tls.Name != cookieSecure || tls.Path != "/" || !tls.Secure || !tls.HttpOnly || tls.SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie over TLS = %+v", tls)
	}
	// The __Host- cookie is the one read over TLS; the plain one is not.
	get := func(cookie *http.Cookie, proto string) int {
		return e.do(http.MethodGet, "/v1/session", "", "", "Cookie", cookie.Name+"="+cookie.Value, "X-Forwarded-Proto", proto).Code
	}
	if got := get(tls, "https"); got != http.StatusOK {
		t.Errorf("__Host- cookie over TLS: %d", got)
	}
	if got := get(tls, "http"); got != http.StatusUnauthorized {
		t.Errorf("__Host- cookie over plain HTTP: %d", got)
	}
	if got := get(c, "https"); got != http.StatusUnauthorized {
		t.Errorf("plain cookie over TLS: %d", got)
	}
}

// TestSessionSamePrincipal: a request with the cookie reaches the same handlers as one with
// the key, with the same principal: same role, tenant, extension and key name, for every kind
// of key (configuration, operator, created through the API), hence the same answers and the
// same refusals.
func TestSessionSamePrincipal(t *testing.T) {
	e := newEnv(t)
	created := e.createKey(keyAdmin, `{"name":"dash-sup","role":"supervisor","extension":"201"}`)
	for _, key := range []string{keyAgent, keySup, keyAdmin, keyGlobexSup, keyOperator, created} {
		s := e.signIn(key)
		for _, path := range []string{"/v1/session", "/v1/supervisions", "/v1/calls", "/v1/api-keys", "/v1/help-requests", "/v1/tenants"} {
			byKey := e.do(http.MethodGet, path, key, "")
			byCookie := e.withCookie(s, false, http.MethodGet, path, "")
			if path == "/v1/session" {
				var a, b sessionJSON
				_ = json.Unmarshal(byKey.Body.Bytes(), &a)
				_ = json.Unmarshal(byCookie.Body.Bytes(), &b)
				a.CSRFToken, a.ExpiresAt, a.IdleTimeoutSeconds = b.CSRFToken, b.ExpiresAt, b.IdleTimeoutSeconds
				if byKey.Code != http.StatusOK || a != b || b.CSRFToken == "" {
					t.Errorf("%s: GET /v1/session by key %+v, by cookie %+v", key, a, b)
				}
				continue
			}
			if byKey.Code != byCookie.Code || byKey.Body.String() != byCookie.Body.String() {
				t.Errorf("%s: GET %s by key %d %s, by cookie %d %s", key, path, byKey.Code, byKey.Body, byCookie.Code, byCookie.Body)
			}
		}
	}
}

// TestSessionCSRF: every change made with the cookie needs the session's CSRF token and must
// come from the same site; reads need neither. A refused change never reaches the app.
func TestSessionCSRF(t *testing.T) {
	e := newEnv(t)
	s := e.signIn(keySup)
	other := e.signIn(keySup) // another session of the same key: its token is not this one's
	join := `{"agent":"100","mode":"spy"}`
	for _, tc := range []struct {
		name string
		hdr  []string
	}{
		{"no token", nil},
		{"empty token", []string{HeaderCSRF, ""}},
		{"another session's token", []string{HeaderCSRF, other.csrf}},
		{"the cookie as token", []string{HeaderCSRF, s.cookie.Value}},
	} {
		rec := e.withCookie(s, false, http.MethodPost, "/v1/supervisions", join, tc.hdr...)
		if rec.Code != http.StatusForbidden || apiErr(t, rec).Code != codeCSRF {
			t.Errorf("%s: %d %s", tc.name, rec.Code, rec.Body)
		}
	}
	for _, tc := range []struct{ name, header, value string }{
		{"cross-site fetch", "Sec-Fetch-Site", "cross-site"},
		{"same-site subdomain", "Sec-Fetch-Site", "same-site"},
		{"another origin", "Origin", "https://evil.example"},
		{"opaque origin", "Origin", "null"},
	} {
		rec := e.withCookie(s, true, http.MethodPost, "/v1/supervisions", join, tc.header, tc.value)
		if rec.Code != http.StatusForbidden || apiErr(t, rec).Code != codeCSRF {
			t.Errorf("%s: %d %s", tc.name, rec.Code, rec.Body)
		}
	}
	for _, method := range []string{http.MethodPatch, http.MethodDelete} {
		if rec := e.withCookie(s, false, method, "/v1/supervisions/sup-own", `{"mode":"whisper"}`); rec.Code != http.StatusForbidden {
			t.Errorf("%s without token: %d", method, rec.Code)
		}
	}
	if n := e.svc.count("Join") + e.svc.count("SetMode") + e.svc.count("Leave"); n != 0 {
		t.Fatalf("refused changes reached the app %d times", n)
	}
	// With the token, from the page's own origin: done.
	rec := e.withCookie(s, true, http.MethodPost, "/v1/supervisions", join, "Origin", "http://example.com", "Sec-Fetch-Site", "same-origin")
	if rec.Code != http.StatusAccepted || e.svc.count("Join") != 1 {
		t.Fatalf("join with the token: %d %s", rec.Code, rec.Body)
	}
	// Behind a proxy that rewrites Host: the browser's Sec-Fetch-Site, or an Origin naming the
	// forwarded host, is what counts.
	for _, hdr := range [][]string{
		{"Origin", "https://earpiece.example", "Sec-Fetch-Site", "same-origin"},
		{"Origin", "https://earpiece.example", "X-Forwarded-Host", "earpiece.example"},
	} {
		rec := e.withCookie(s, true, http.MethodPost, "/v1/supervisions", join, hdr...)
		if rec.Code != http.StatusAccepted {
			t.Errorf("behind a proxy %v: %d %s", hdr, rec.Code, rec.Body)
		}
	}
	if rec := e.withCookie(s, true, http.MethodPost, "/v1/supervisions", join, "Origin", "https://evil.example",
		"X-Forwarded-Host", "earpiece.example"); rec.Code != http.StatusForbidden {
		t.Errorf("another origin behind a proxy: %d", rec.Code)
	}
	// Reads need no token.
	if rec := e.withCookie(s, false, http.MethodGet, "/v1/supervisions", ""); rec.Code != http.StatusOK {
		t.Errorf("GET without token: %d", rec.Code)
	}
	// Sign-in from another site is refused too (no signing a victim in to the attacker's key).
	if rec := e.do(http.MethodPost, "/v1/session", "", fmt.Sprintf(`{"key":%q}`, keySup), "Origin", "https://evil.example"); rec.Code != http.StatusForbidden {
		t.Errorf("cross-site sign-in: %d", rec.Code)
	}
	// A form post (not JSON) cannot sign in.
	if rec := e.do(http.MethodPost, "/v1/session", "", "key="+keySup, "Content-Type", "application/x-www-form-urlencoded"); rec.Code != http.StatusUnsupportedMediaType {
		t.Errorf("form sign-in: %d", rec.Code)
	}
}

// TestSessionSignOut: sign-out needs the token, deletes the session and clears the cookie;
// the cookie then authenticates nothing, and a second sign-out is harmless.
func TestSessionSignOut(t *testing.T) {
	e := newEnv(t)
	s := e.signIn(keyAdmin)
	if rec := e.withCookie(s, false, http.MethodDelete, "/v1/session", ""); rec.Code != http.StatusForbidden {
		t.Fatalf("sign-out without token: %d", rec.Code)
	}
	if rec := e.withCookie(s, false, http.MethodGet, "/v1/session", ""); rec.Code != http.StatusOK {
		t.Fatalf("the refused sign-out ended the session: %d", rec.Code)
	}
	rec := e.withCookie(s, true, http.MethodDelete, "/v1/session", "")
	if rec.Code != http.StatusNoContent {
		t.Fatalf("sign-out: %d %s", rec.Code, rec.Body)
	}
	if cs := rec.Result().Cookies(); len(cs) != 1 || cs[0].Name != cookiePlain || cs[0].MaxAge >= 0 {
		t.Errorf("sign-out cookies %+v, want ours expired", cs)
	}
	if rec := e.withCookie(s, true, http.MethodGet, "/v1/api-keys", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("after sign-out: %d", rec.Code)
	}
	if rec := e.withCookie(s, true, http.MethodDelete, "/v1/session", ""); rec.Code != http.StatusNoContent {
		t.Errorf("second sign-out: %d", rec.Code)
	}
	// Signing in again from a browser that holds a session replaces it: the old one ends.
	first := e.signIn(keySup)
	second := e.signIn(keyAdmin, "Cookie", first.cookie.Name+"="+first.cookie.Value)
	if rec := e.withCookie(first, false, http.MethodGet, "/v1/session", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("the replaced session: %d", rec.Code)
	}
	if rec := e.withCookie(second, true, http.MethodDelete, "/v1/session", ""); rec.Code != http.StatusNoContent {
		t.Errorf("signing the new one out: %d", rec.Code)
	}
	if n, _ := e.rdb.Keys(t.Context(), "*websession*").Result(); len(n) != 0 {
		t.Errorf("sessions left in Redis: %v", n)
	}
}

// TestSessionRevokedKey: revoking a key ends its dashboard sessions at once, open event streams
// included; so does removing a configuration key, or changing its extension.
func TestSessionRevokedKey(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.KeyCheckInterval = 100 * time.Millisecond })
	key := e.createKey(keyAdmin, `{"name":"dash","role":"supervisor","extension":"200"}`)
	s := e.signIn(key)
	ts := cookieServer(t, e, s)
	stream := openStream(t, ts, "/v1/events", "")
	if rec := e.withCookie(s, false, http.MethodGet, "/v1/calls", ""); rec.Code != http.StatusOK {
		t.Fatalf("before revoking: %d", rec.Code)
	}
	if rec := e.do(http.MethodDelete, "/v1/api-keys/dash", keyAdmin, ""); rec.Code != http.StatusNoContent {
		t.Fatalf("revoke: %d", rec.Code)
	}
	if last := stream.ended(t, 2*time.Second); !strings.Contains(last, "revoked") {
		t.Errorf("the stream ended with %q", last)
	}
	rec := e.withCookie(s, false, http.MethodGet, "/v1/calls", "")
	if rec.Code != http.StatusUnauthorized || !strings.Contains(apiErr(t, rec).Message, "revoked") {
		t.Errorf("after revoking: %d %s", rec.Code, rec.Body)
	}

	// A configuration key given another extension: the session acts as the new one at once.
	sup := e.signIn(keySup)
	cfg := testConfig(t)
	cfg.Tenants[0].APIKeys[1].Extension = "201"
	dir, err := config.NewDirectory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.sync.Live().Set(dir, 1000)
	var got sessionJSON
	rec = e.withCookie(sup, false, http.MethodGet, "/v1/session", "")
	_ = json.Unmarshal(rec.Body.Bytes(), &got)
	if got.Extension != "201" {
		t.Errorf("after the key changed: %d %+v", rec.Code, got)
	}
	// Removed from the configuration: the session is over.
	cfg.Tenants[0].APIKeys = cfg.Tenants[0].APIKeys[:1]
	if dir, err = config.NewDirectory(cfg); err != nil {
		t.Fatal(err)
	}
	e.sync.Live().Set(dir, 1001)
	if rec := e.withCookie(sup, false, http.MethodGet, "/v1/session", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("after the key was removed: %d", rec.Code)
	}
}

// cookieServer is an HTTP server for e whose requests carry s's cookie in place of the empty
// Bearer header openStream sends for key "".
func cookieServer(t *testing.T, e *env, s dashSession) *httptest.Server {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.TrimSpace(r.Header.Get("Authorization")) == "Bearer" {
			r.Header.Del("Authorization")
		}
		r.AddCookie(s.cookie)
		e.srv.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts
}

// TestSessionSignOutEndsStream: a stream opened with a session ends once the session does
// (within KeyCheckInterval), with a note.
func TestSessionSignOutEndsStream(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.KeyCheckInterval = 100 * time.Millisecond })
	s := e.signIn(keySup)
	stream := openStream(t, cookieServer(t, e, s), "/v1/events", "")
	if rec := e.withCookie(s, true, http.MethodDelete, "/v1/session", ""); rec.Code != http.StatusNoContent {
		t.Fatalf("sign-out: %d", rec.Code)
	}
	if last := stream.ended(t, 2*time.Second); !strings.Contains(last, "session ended") {
		t.Errorf("the stream ended with %q", last)
	}
}

// TestSessionRefusedKeys: a key that must sign cannot open a session (it would be the way
// around signing); a published sample key opens one from loopback only, and its session is
// refused beyond loopback too; a wrong key spends the address's failed-authentication budget.
func TestSessionRefusedKeys(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Directory = testDirectory(t, "globex") })
	rec := e.do(http.MethodPost, "/v1/session", "", fmt.Sprintf(`{"key":%q}`, keyGlobexAdmin))
	if rec.Code != http.StatusForbidden || apiErr(t, rec).Code != codeSignatureRequired {
		t.Errorf("key of a signing tenant: %d %s", rec.Code, rec.Body)
	}
	signing := e.createKey(keyAdmin, `{"name":"signer","role":"admin","require_signatures":true}`)
	rec = e.do(http.MethodPost, "/v1/session", "", fmt.Sprintf(`{"key":%q}`, signing))
	if rec.Code != http.StatusForbidden || apiErr(t, rec).Code != codeSignatureRequired {
		t.Errorf("key that must sign: %d %s", rec.Code, rec.Body)
	}
	for _, body := range []string{`{"key":"nope"}`, `{"key":""}`, `{}`, `{"key":"` + strings.Repeat("k", maxKeyLen+1) + `"}`} {
		if rec := e.do(http.MethodPost, "/v1/session", "", body); rec.Code != http.StatusUnauthorized && rec.Code != http.StatusUnprocessableEntity {
			t.Errorf("sign in with %s: %d", body, rec.Code)
		}
	}

	const sample = "example-acme-crm-key"
	cfg := testConfig(t)
	cfg.Tenants[0].APIKeys = append(cfg.Tenants[0].APIKeys, config.APIKey{Name: "crm", Role: config.RoleAdmin, SHA256: config.SHA256Hex(sample)})
	dir, err := config.NewDirectory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.cfg.Directory = dir
	sampleIn := func(remote string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/v1/session", strings.NewReader(`{"key":"`+sample+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		e.srv.Handler().ServeHTTP(rec, req)
		return rec
	}
	if rec := sampleIn("192.0.2.7:4000"); rec.Code != http.StatusForbidden {
		t.Errorf("sample key from afar: %d", rec.Code)
	}
	rec = sampleIn("127.0.0.1:4000")
	if rec.Code != http.StatusCreated {
		t.Fatalf("sample key from loopback: %d %s", rec.Code, rec.Body)
	}
	cookie := rec.Result().Cookies()[0]
	for remote, want := range map[string]int{"127.0.0.1:4000": http.StatusOK, "192.0.2.7:4000": http.StatusForbidden} {
		req := httptest.NewRequest(http.MethodGet, "/v1/api-keys", nil)
		req.AddCookie(cookie)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		e.srv.Handler().ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("sample key's session from %s: %d, want %d", remote, rec.Code, want)
		}
	}
}

// TestSessionFailedSignInsBudget: wrong keys at sign-in are failed authentications: an address
// that spent its budget gets 429, even with a good key.
func TestSessionFailedSignInsBudget(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.RateLimits = unlimited
		c.RateLimits.FailedAuthPerAddress = config.Rate{PerSecond: 0.001, Burst: 3}
	})
	for range 3 {
		if rec := e.do(http.MethodPost, "/v1/session", "", `{"key":"wrong"}`); rec.Code != http.StatusUnauthorized {
			t.Fatalf("wrong key: %d", rec.Code)
		}
	}
	rec := e.do(http.MethodPost, "/v1/session", "", fmt.Sprintf(`{"key":%q}`, keySup))
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Errorf("after the budget: %d %v", rec.Code, rec.Header())
	}
}

// TestSessionBounds: a session ends after SessionIdle without a request (requests keep it
// alive), and SessionLifetime after sign-in whatever the activity.
func TestSessionBounds(t *testing.T) {
	var now atomic.Int64
	now.Store(t0.UnixNano())
	e := newEnv(t, func(c *Config) {
		c.SessionIdle = 400 * time.Millisecond
		c.SessionLifetime = time.Hour
		c.Clock = func() time.Time { return time.Unix(0, now.Load()).UTC() }
	})
	s := e.signIn(keySup)
	for range 6 { // 900 ms of activity: past the idle timeout, still signed in
		time.Sleep(150 * time.Millisecond)
		if rec := e.withCookie(s, false, http.MethodGet, "/v1/session", ""); rec.Code != http.StatusOK {
			t.Fatalf("active session: %d", rec.Code)
		}
	}
	time.Sleep(700 * time.Millisecond)
	if rec := e.withCookie(s, false, http.MethodGet, "/v1/session", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("idle session: %d", rec.Code)
	}

	s = e.signIn(keySup)
	now.Add(int64(59 * time.Minute))
	if rec := e.withCookie(s, false, http.MethodGet, "/v1/session", ""); rec.Code != http.StatusOK {
		t.Fatalf("before the end: %d", rec.Code)
	}
	now.Add(int64(time.Minute))
	if rec := e.withCookie(s, false, http.MethodGet, "/v1/session", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("at the end: %d", rec.Code)
	}
}

// TestSessionCookieParsing: a malformed or doubled session cookie is refused (never taken for
// "no cookie", never guessed at), and a Bearer key wins over any cookie.
func TestSessionCookieParsing(t *testing.T) {
	e := newEnv(t)
	s := e.signIn(keySup)
	for _, cookie := range []string{
		cookiePlain + "=short",
		cookiePlain + "=" + s.cookie.Value + "x",
		cookiePlain + "=" + s.cookie.Value + "; " + cookiePlain + "=" + s.cookie.Value,
		cookiePlain + "=" + strings.Repeat("A", 43), // well formed, no such session
	} {
		if rec := e.do(http.MethodGet, "/v1/session", "", "", "Cookie", cookie); rec.Code != http.StatusUnauthorized {
			t.Errorf("Cookie: %s: %d", cookie, rec.Code)
		}
	}
	rec := e.do(http.MethodGet, "/v1/session", keyAdmin, "", "Cookie", s.cookie.Name+"="+s.cookie.Value)
	var got sessionJSON
	_ = json.Unmarshal(rec.Body.Bytes(), &got)
	if got.Role != "admin" || got.CSRFToken != "" {
		t.Errorf("Bearer and cookie: %+v, want the key's principal", got)
	}
	// An unknown other cookie is no session at all: the usual 401 for a missing key.
	if rec := e.do(http.MethodGet, "/v1/session", "", "", "Cookie", "theme=dark"); rec.Code != http.StatusUnauthorized ||
		!strings.Contains(apiErr(t, rec).Message, "Authorization") {
		t.Errorf("another cookie: %d %s", rec.Code, rec.Body)
	}
}

// TestSessionAgentSeesNoSupervision: an agent's session reaches only what its key may: no
// calls, no supervisions; its help requests never name the supervision an accept started.
func TestSessionAgentSeesNoSupervision(t *testing.T) {
	e := newEnv(t)
	s := e.signIn(keyAgent)
	for _, path := range []string{"/v1/calls", "/v1/supervisions", "/v1/supervisions/sup-own", "/v1/api-keys", "/v1/audit"} {
		if rec := e.withCookie(s, false, http.MethodGet, path, ""); rec.Code != http.StatusForbidden && rec.Code != http.StatusNotFound {
			t.Errorf("agent GET %s: %d", path, rec.Code)
		}
	}
	if rec := e.withCookie(s, true, http.MethodPost, "/v1/supervisions", `{"agent":"101","mode":"spy"}`); rec.Code != http.StatusForbidden {
		t.Errorf("agent join: %d", rec.Code)
	}
}
