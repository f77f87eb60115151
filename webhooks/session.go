package webhooks

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

// Dashboard sessions: how the browser dashboard (dashboard.go) uses the /v1 API without
// keeping an API key in the page.
//
//   - Sign-in (POST /v1/session {"key"}) checks the key exactly as a Bearer request would
//     (bootstrap, operator or created key; a published sample key from loopback only) and
//     answers with a session cookie: a random 256-bit token, HttpOnly (no script reads it),
//     SameSite=Strict (no other site's page makes the browser send it), Secure when the
//     request came over TLS (then named with the __Host- prefix, so that no sibling subdomain
//     can plant one), and no expiry of its own. Redis keeps the session under the token's
//     SHA-256 (store/websession.go), with the SHA-256 of the key and a CSRF token.
//   - A key that must sign its requests (its own require_signatures, or its tenant's
//     request_signatures: required) cannot sign in: a browser session cannot sign, and would
//     otherwise be the way around that requirement.
//   - Every request that carries the cookie and no Authorization header is authenticated by
//     it: the session must be alive, and its key is resolved again, every time, into the same
//     Principal a Bearer request with that key gets (role, tenant, extension, key name), so it
//     reaches the same handlers under the same rules and budgets. A key revoked, removed from
//     the configuration or given another role or extension changes its sessions at once; their
//     open event streams end within KeyCheckInterval (at once for a revocation on this
//     instance).
//   - CSRF: besides SameSite=Strict, every state-changing request (any method but GET, HEAD
//     and OPTIONS) authenticated by the cookie must carry the session's CSRF token in
//     X-Earpiece-CSRF (which only the dashboard's own script, having read it from GET
//     /v1/session, can send), and must not come from another site (Sec-Fetch-Site, or the
//     Origin when a browser sends no Sec-Fetch-Site).
//   - A session ends at the first of: SessionLifetime after sign-in (8 h: a shift), SessionIdle
//     without a request (1 h; an open event stream counts as activity, so an open dashboard
//     stays signed in, and a closed one does not for long), sign-out (DELETE /v1/session), or
//     its key's revocation.

// HeaderCSRF carries a dashboard session's CSRF token on state-changing requests.
const HeaderCSRF = "X-Earpiece-CSRF"

// Session cookie names: the __Host- prefix (Secure, Path=/, no Domain) when the request came
// over TLS; browsers refuse it on plain HTTP, where the other name, limited to /v1, serves.
const (
	cookieSecure = "__Host-earpiece_session"
	cookiePlain  = "earpiece_session"
)

// Session bounds (Config.SessionLifetime and Config.SessionIdle when zero).
const (
	DefaultSessionLifetime = 8 * time.Hour
	DefaultSessionIdle     = time.Hour
)

// ctxSession is the echo context key of the *webSession a request was authenticated by.
const ctxSession = "earpiece.session"

// codeCSRF is the refusal of a cookie-authenticated change without the session's CSRF token,
// or from another site.
const codeCSRF = "csrf_failed"

// SessionStore is what dashboard sessions need of the store (*store.Store). The sessions
// routes are served when Config.Store implements it.
type SessionStore interface {
	CreateWebSession(ctx context.Context, token string, ws store.WebSession, idleTTL time.Duration, now time.Time) error
	TouchWebSession(ctx context.Context, token string, idleTTL time.Duration, now time.Time) (store.WebSession, error)
	DeleteWebSession(ctx context.Context, token string) error
}

var _ SessionStore = (*store.Store)(nil)

// webSession is the session a request was authenticated by.
type webSession struct {
	token string
	rec   store.WebSession
}

// webSessionOf is the session c was authenticated by, or nil (a Bearer request).
func webSessionOf(c *echo.Context) *webSession {
	ws, _ := c.Get(ctxSession).(*webSession)
	return ws
}

func (s *Server) sessionStore() (SessionStore, bool) {
	ss, ok := s.cfg.Store.(SessionStore)
	return ss, ok
}

func (s *Server) sessionLifetime() time.Duration {
	if s.cfg.SessionLifetime > 0 {
		return s.cfg.SessionLifetime
	}
	return DefaultSessionLifetime
}

func (s *Server) sessionIdle() time.Duration {
	if s.cfg.SessionIdle > 0 {
		return s.cfg.SessionIdle
	}
	return DefaultSessionIdle
}

// sessionRoutes registers sign-in, the session's description and sign-out, when the store keeps
// sessions.
func (s *Server) sessionRoutes(v1 *echo.Group, limit, auth echo.MiddlewareFunc) {
	if _, ok := s.sessionStore(); !ok {
		return
	}
	v1.POST("/session", s.signIn, limit)
	v1.GET("/session", s.getSession, limit, auth)
	v1.DELETE("/session", s.signOut, limit)
}

// sessionJSON is GET /v1/session and the answer to a sign-in: who the dashboard acts as.
type sessionJSON struct {
	Role      string `json:"role"`
	Tenant    string `json:"tenant,omitempty"`
	Extension string `json:"extension,omitempty"`
	KeyName   string `json:"key_name"`
	// CSRFToken is what state-changing requests of the session carry in X-Earpiece-CSRF
	// (cookie sessions only).
	CSRFToken          string    `json:"csrf_token,omitempty"`
	ExpiresAt          time.Time `json:"expires_at,omitzero"`
	IdleTimeoutSeconds int64     `json:"idle_timeout_seconds,omitempty"`
	// Directory: the directory administration routes (/v1/tenants...) are served.
	Directory bool `json:"directory"`
}

func (s *Server) dashboardSession(p app.Principal, ws *webSession) sessionJSON {
	out := sessionJSON{Role: p.Role.String(), Tenant: p.Tenant, Extension: p.Extension, KeyName: p.KeyName,
		Directory: s.cfg.Admin != nil}
	if ws != nil {
		out.CSRFToken, out.ExpiresAt = ws.rec.CSRF, ws.rec.ExpiresAt
		out.IdleTimeoutSeconds = int64(s.sessionIdle() / time.Second)
	}
	return out
}

type signInBody struct {
	Key string `json:"key"`
}

var errSessionSigns = newError(http.StatusForbidden, codeSignatureRequired,
	"this API key must sign every request, which a browser session cannot do; sign in with another key")

// POST /v1/session {"key"}: sign in; 201 with the session cookie and the session.
func (s *Server) signIn(c *echo.Context) error {
	req := c.Request()
	if !sameSite(req) {
		return errCrossSite
	}
	addr := clientAddr(req)
	if wait, spent := s.limits.failedAuth.spent(addr, time.Now()); spent {
		s.met.rateLimited.WithLabelValues(budgetFailedAuth).Inc()
		return tooMany(wait, "too many failed authentications from this address; retry later")
	}
	var b signInBody
	if _, err := bindJSON(c, &b); err != nil {
		return err
	}
	failed := func(err error) error {
		if status, d := classify(err); status == http.StatusUnauthorized || status == http.StatusForbidden {
			s.met.authFailures.WithLabelValues(d.Code).Inc()
			s.limits.failedAuth.take(addr, time.Now())
		}
		return err
	}
	key := strings.TrimSpace(b.Key)
	if key == "" || len(key) > maxKeyLen {
		return failed(fieldError("key", "want an API key"))
	}
	p, auth, err := s.lookupKey(req.Context(), key)
	if err != nil {
		return failed(err)
	}
	if sampleKeys[auth.sha] && !fromLoopback(req) {
		return failed(errSampleKey)
	}
	if auth.requireSig || s.tenantSigns(p.Tenant) {
		return failed(errSessionSigns)
	}
	if wait, ok := s.limits.perKey.take(keyID(p), time.Now()); !ok {
		s.met.rateLimited.WithLabelValues(budgetKey).Inc()
		return tooMany(wait, "too many requests with this API key; retry later")
	}
	ss, _ := s.sessionStore()
	now := s.now()
	ws := &webSession{token: randomToken(), rec: store.WebSession{
		KeySHA256: auth.sha, CSRF: randomToken(), CreatedAt: now, ExpiresAt: now.Add(s.sessionLifetime()),
	}}
	ctx, cancel := s.detached(req.Context())
	defer cancel()
	if err := ss.CreateWebSession(ctx, ws.token, ws.rec, s.sessionIdle(), now); err != nil {
		return unavailable("signing in", err)
	}
	secure := overTLS(req)
	// The browser's previous session, if any, ends: its cookie is replaced by this one.
	if prev, ok := sessionCookie(req, secure); ok && prev != "" {
		if err := ss.DeleteWebSession(ctx, prev); err != nil {
			log := s.requestLog(c)
			log.Warn().Err(err).Msg("sign-in: deleting the previous session")
		}
	}
	cookie := &http.Cookie{Name: cookiePlain, Value: ws.token, Path: "/v1", HttpOnly: true, SameSite: http.SameSiteStrictMode}
	if secure {
		cookie.Name, cookie.Path, cookie.Secure = cookieSecure, "/", true
	}
	c.SetCookie(cookie)
	c.Response().Header().Set("Cache-Control", "no-store")
	log := s.requestLog(c)
	log.Info().Str("tenant", p.Tenant).Str("key_name", p.KeyName).Str("role", p.Role.String()).
		Msg("dashboard signed in")
	return c.JSON(http.StatusCreated, s.dashboardSession(p, ws))
}

// GET /v1/session: who the request acts as; for a cookie session also its CSRF token and end.
func (s *Server) getSession(c *echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, s.dashboardSession(principal(c), webSessionOf(c)))
}

// DELETE /v1/session: sign out; 204. The session (if the cookie names a live one, the request
// must carry its CSRF token and come from the dashboard's own site) is deleted, and the cookie
// cleared. Without a live session it only clears the cookie: signing out always works.
func (s *Server) signOut(c *echo.Context) error {
	req := c.Request()
	ss, _ := s.sessionStore()
	secure := overTLS(req)
	if token, ok := sessionCookie(req, secure); ok {
		rec, err := ss.TouchWebSession(req.Context(), token, s.sessionIdle(), s.now())
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return unavailable("signing out", err)
		default:
			if err := checkCSRF(req, rec.CSRF); err != nil {
				return err
			}
			ctx, cancel := s.detached(req.Context())
			defer cancel()
			if err := ss.DeleteWebSession(ctx, token); err != nil {
				return unavailable("signing out", err)
			}
		}
	}
	cookie := &http.Cookie{Name: cookiePlain, Path: "/v1", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode}
	if secure {
		cookie.Name, cookie.Path, cookie.Secure = cookieSecure, "/", true
	}
	c.SetCookie(cookie)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.NoContent(http.StatusNoContent)
}

var (
	errSessionEnded = newError(http.StatusUnauthorized, codeUnauthorized, "the dashboard session ended or expired; sign in again")
	errSessionKey   = newError(http.StatusUnauthorized, codeUnauthorized, "the API key of this dashboard session was revoked; sign in again")
	errCrossSite    = newError(http.StatusForbidden, codeCSRF, "a change must come from the dashboard's own site")
	errNoCSRF       = newError(http.StatusForbidden, codeCSRF, "a change made with a dashboard session must carry its CSRF token in "+HeaderCSRF)
)

// authenticateSession authenticates a request by its session cookie (see above). ok is false
// when the request has no session cookie at all (the caller then asks for a Bearer key).
func (s *Server) authenticateSession(c *echo.Context) (p app.Principal, auth authInfo, ok bool, err error) {
	ss, served := s.sessionStore()
	if !served {
		return p, auth, false, nil
	}
	req := c.Request()
	token, present := sessionCookie(req, overTLS(req))
	if !present {
		return p, auth, false, nil
	}
	if token == "" {
		return p, auth, true, errSessionEnded
	}
	rec, err := ss.TouchWebSession(req.Context(), token, s.sessionIdle(), s.now())
	if errors.Is(err, store.ErrNotFound) {
		return p, auth, true, errSessionEnded
	}
	if err != nil {
		return p, auth, true, unavailable("authenticating", err)
	}
	p, auth, err = s.lookupHash(req.Context(), rec.KeySHA256)
	switch {
	case errors.Is(err, errBadKey):
		return p, auth, true, errSessionKey
	case err != nil:
		return p, auth, true, err
	case sampleKeys[auth.sha] && !fromLoopback(req):
		return p, auth, true, errSampleKey
	case auth.requireSig || s.tenantSigns(p.Tenant):
		return p, auth, true, errSessionSigns
	}
	if changes(req.Method) {
		if err := checkCSRF(req, rec.CSRF); err != nil {
			return p, auth, true, err
		}
	}
	c.Set(ctxSession, &webSession{token: token, rec: rec})
	return p, auth, true, nil
}

// lookupHash is lookupKey for a key known by its SHA-256 only (a session's): the same
// principal, from the same sources in the same order.
func (s *Server) lookupHash(ctx context.Context, sum string) (app.Principal, authInfo, error) {
	dir := s.cfg.Directory.Current()
	if t, k, ok := dir.KeyByHash(sum); ok {
		return app.Principal{Tenant: t.ID, Role: k.Role, Extension: k.Extension, KeyName: k.Name},
			authInfo{sha: sum, signingSecret: k.SigningSecret}, nil
	}
	if k, ok := dir.OperatorKeyByHash(sum); ok {
		return app.Principal{Role: config.RoleOperator, KeyName: k.Name}, authInfo{sha: sum}, nil
	}
	rec, err := s.cfg.Store.APIKeyByHash(ctx, sum)
	if errors.Is(err, store.ErrNotFound) {
		return app.Principal{}, authInfo{}, errBadKey
	}
	if err != nil {
		return app.Principal{}, authInfo{}, unavailable("authenticating", err)
	}
	if subtle.ConstantTimeCompare([]byte(rec.SHA256), []byte(sum)) != 1 {
		return app.Principal{}, authInfo{}, errBadKey
	}
	role := config.Role(rec.Role)
	if _, ok := dir.Tenant(rec.Tenant); !ok || !role.Valid() {
		return app.Principal{}, authInfo{}, errBadKey
	}
	if role != config.RoleAdmin {
		if _, ok := dir.Extension(rec.Tenant, rec.Extension); !ok {
			return app.Principal{}, authInfo{}, newError(http.StatusUnauthorized, codeUnauthorized,
				"the key's extension is no longer configured")
		}
	}
	return app.Principal{Tenant: rec.Tenant, Role: role, Extension: rec.Extension, KeyName: rec.Name},
		authInfo{sha: sum, fromStore: true, requireSig: rec.RequireSignatures, signingSecret: rec.SigningSecret}, nil
}

// streamAuthValid checks, during an event stream, that what authenticated it still does: a key
// created through the API still exists; a dashboard session is still alive (which keeps it
// so) and its key still resolves to the stream's principal. It returns the cause to end the
// stream with, or nil (also when the check itself failed: Redis errors end streams elsewhere).
func (s *Server) streamAuthValid(ctx context.Context, p app.Principal, auth authInfo, ws *webSession) error {
	if ws != nil {
		ss, _ := s.sessionStore()
		if _, err := ss.TouchWebSession(ctx, ws.token, s.sessionIdle(), s.now()); errors.Is(err, store.ErrNotFound) {
			return errStreamSessionEnded
		}
		if q, _, err := s.lookupHash(ctx, auth.sha); err != nil || q != p {
			var ae *apiError
			if errors.As(err, &ae) && ae.status == http.StatusServiceUnavailable {
				return nil
			}
			return errKeyRevoked
		}
		return nil
	}
	if auth.fromStore {
		if _, err := s.cfg.Store.APIKeyByHash(ctx, auth.sha); errors.Is(err, store.ErrNotFound) {
			return errKeyRevoked
		}
	}
	return nil
}

// errStreamSessionEnded is the cause of a stream cut because its dashboard session ended.
var errStreamSessionEnded = errors.New("dashboard session ended")

// changes reports whether method changes state (needs the CSRF token).
func changes(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// checkCSRF refuses a change that does not carry the session's token, or comes from another site.
func checkCSRF(req *http.Request, want string) error {
	if !sameSite(req) {
		return errCrossSite
	}
	got := req.Header.Get(HeaderCSRF)
	if got == "" || want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errNoCSRF
	}
	return nil
}

// sameSite reports whether what the browser says of a request's origin allows a change.
// Browsers say it in Sec-Fetch-Site (every current one does), which no page can forge and no
// proxy rewrites: same-origin, or none (typed by the user), passes. Without it, the Origin, if
// any, must be the request's host: the Host header or, behind a proxy that rewrites it,
// X-Forwarded-Host (no other site's page can send that header without a CORS preflight, which
// earpiece never grants). Clients that are not browsers send neither.
func sameSite(req *http.Request) bool {
	switch req.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return true
	case "":
		origin := req.Header.Get("Origin")
		if origin == "" || sameOrigin(origin, req.Host) {
			return true
		}
		fwd, _, _ := strings.Cut(req.Header.Get("X-Forwarded-Host"), ",")
		return sameOrigin(origin, strings.TrimSpace(fwd))
	default:
		return false
	}
}

// sameOrigin reports whether origin (an Origin header) is an http(s) origin of host (the
// request's Host).
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return false
	}
	return host != "" && strings.EqualFold(u.Host, host)
}

// overTLS reports whether the request reached earpiece over TLS, or through a proxy that says it
// did (X-Forwarded-Proto: https). Trusting that header only ever makes the cookie Secure (which
// a browser then sends over TLS only): whoever forges it gains nothing.
func overTLS(req *http.Request) bool {
	if req.TLS != nil {
		return true
	}
	proto, _, _ := strings.Cut(req.Header.Get("X-Forwarded-Proto"), ",")
	return strings.EqualFold(strings.TrimSpace(proto), "https")
}

// sessionCookie finds the session token of the request's cookie (the name its transport
// uses). present is false when there is no such cookie; token is "" when there is one, but
// malformed.
func sessionCookie(req *http.Request, secure bool) (token string, present bool) {
	name := cookiePlain
	if secure {
		name = cookieSecure
	}
	cs := req.CookiesNamed(name)
	if len(cs) == 0 {
		return "", false
	}
	// Several cookies of the name: a planted one beside ours. Refuse rather than guess.
	if len(cs) > 1 {
		return "", true
	}
	t, ok := parseSessionToken(cs[0].Value)
	if !ok {
		return "", true
	}
	return t, true
}

// parseSessionToken checks a cookie's value: a token randomToken makes, 32 bytes in unpadded
// base64url (43 characters).
func parseSessionToken(v string) (string, bool) {
	if len(v) != 43 {
		return "", false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return "", false
		}
	}
	// The last character holds 4 bits of the 32nd byte and 2 zero bits: anything else does not
	// decode to exactly what was encoded.
	if strings.IndexByte("AEIMQUYcgkosw048", v[42]) < 0 {
		return "", false
	}
	return v, true
}
