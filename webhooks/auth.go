package webhooks

import (
	"context"
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

// maxKeyLen bounds the Bearer token read (keys are ~46 characters).
const maxKeyLen = 512

// ctxPrincipal is the echo context key of the authenticated app.Principal; ctxAuth, of its
// authInfo.
const (
	ctxPrincipal = "earpiece.principal"
	ctxAuth      = "earpiece.auth"
)

// principal is the caller authenticated by authenticate.
func principal(c *echo.Context) app.Principal {
	p, _ := c.Get(ctxPrincipal).(app.Principal)
	return p
}

// authInfo is what authentication learnt about the key beyond its principal.
type authInfo struct {
	sha           string // the key's SHA-256 (hex)
	fromStore     bool   // created through the API (revocable), not a configuration key
	requireSig    bool   // the key itself requires signed requests
	signingSecret string // the HMAC key of its signed requests; "" when it has none
}

// authOf is the authInfo of the request's key.
func authOf(c *echo.Context) authInfo {
	a, _ := c.Get(ctxAuth).(authInfo)
	return a
}

// authenticate resolves "Authorization: Bearer <key>" to a Principal (see authenticateKey), then
// spends the key's request budget. Failed authentications are counted, and budgeted per client
// address: once an address has spent its budget it gets 429 before its key is even looked at,
// so guessing keys is slow, and a flood of wrong keys costs no Redis lookups.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		addr := clientAddr(c.Request())
		if wait, spent := s.limits.failedAuth.spent(addr, time.Now()); spent {
			s.met.rateLimited.WithLabelValues(budgetFailedAuth).Inc()
			return tooMany(wait, "too many failed authentications from this address; retry later")
		}
		p, auth, err := s.authenticateKey(c)
		if err != nil {
			if status, d := classify(err); status == http.StatusUnauthorized || status == http.StatusForbidden {
				s.met.authFailures.WithLabelValues(d.Code).Inc()
				s.limits.failedAuth.take(addr, time.Now())
			}
			return err
		}
		if wait, ok := s.limits.perKey.take(keyID(p), time.Now()); !ok {
			s.met.rateLimited.WithLabelValues(budgetKey).Inc()
			return tooMany(wait, "too many requests with this API key; retry later")
		}
		c.Set(ctxPrincipal, p)
		c.Set(ctxAuth, auth)
		return next(c)
	}
}

// authenticateKey finds the key's principal: first among the configuration's bootstrap keys
// (in memory), then among the keys created through the API (Redis, by SHA-256). It then
// checks the request signature when one is sent or required. Keys are never logged or kept.
func (s *Server) authenticateKey(c *echo.Context) (app.Principal, authInfo, error) {
	if c.Request().Header.Get(echo.HeaderAuthorization) == "" {
		// No key: the dashboard's session cookie, if any (session.go).
		if p, auth, ok, err := s.authenticateSession(c); ok {
			return p, auth, err
		}
	}
	key, ok := bearer(c.Request().Header.Get(echo.HeaderAuthorization))
	if !ok {
		return app.Principal{}, authInfo{}, newError(http.StatusUnauthorized, codeUnauthorized, "missing or malformed Authorization: Bearer header")
	}
	p, auth, err := s.lookupKey(c.Request().Context(), key)
	if err != nil {
		return app.Principal{}, authInfo{}, err
	}
	if sampleKeys[config.SHA256Hex(key)] && !fromLoopback(c.Request()) {
		return app.Principal{}, authInfo{}, errSampleKey
	}
	if err := s.verifySignature(c, p, auth, auth.requireSig || s.tenantSigns(p.Tenant)); err != nil {
		return app.Principal{}, authInfo{}, err
	}
	return p, auth, nil
}

func bearer(h string) (string, bool) {
	scheme, key, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	key = strings.TrimSpace(key)
	if key == "" || len(key) > maxKeyLen {
		return "", false
	}
	return key, true
}

var errBadKey = newError(http.StatusUnauthorized, codeUnauthorized, "invalid API key")

// sampleKeys are the SHA-256 of the API keys published in this repository's sample
// configurations (docker/earpiece.yaml, config/testdata/sample.yaml). Anyone can read them, so
// a configuration that still carries one works only for requests from loopback (trying it out
// on the machine itself), never over the network. Docker's port mapping is not loopback: the
// compose stack needs a key of one's own.
var sampleKeys = map[string]bool{
	config.SHA256Hex("example-acme-crm-key"):     true,
	config.SHA256Hex("example-acme-adam-key"):    true,
	config.SHA256Hex("example-acme-john-key"):    true,
	config.SHA256Hex("example-globex-admin-key"): true,
}

var errSampleKey = newError(http.StatusForbidden, codeForbidden,
	"this is a published sample API key: it is accepted from loopback only; configure a key of your own")

// fromLoopback reports whether the request's TCP peer is a loopback address. Forwarding headers
// are not consulted: whoever sends them chooses them.
func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// lookupKey finds key's principal and what else authentication needs of it.
func (s *Server) lookupKey(ctx context.Context, key string) (app.Principal, authInfo, error) {
	sum := config.SHA256Hex(key)
	// Directory.Authenticate looks the key's SHA-256 up in a map: no comparison of secrets.
	if t, k, ok := s.cfg.Directory.Current().Authenticate(key); ok {
		return app.Principal{Tenant: t.ID, Role: k.Role, Extension: k.Extension, KeyName: k.Name},
			authInfo{sha: sum, signingSecret: k.SigningSecret}, nil
	}
	// An operator key (the configuration's operator_keys): no tenant, role operator.
	if k, ok := s.cfg.Directory.Current().AuthenticateOperator(key); ok {
		return app.Principal{Role: config.RoleOperator, KeyName: k.Name}, authInfo{sha: sum}, nil
	}
	rec, err := s.cfg.Store.APIKeyByHash(ctx, sum)
	if errors.Is(err, store.ErrNotFound) {
		return app.Principal{}, authInfo{}, errBadKey
	}
	if err != nil {
		return app.Principal{}, authInfo{}, unavailable("authenticating", err)
	}
	// The record was found by its hash; comparing once more, in constant time, guards
	// against a store that matched loosely.
	if subtle.ConstantTimeCompare([]byte(rec.SHA256), []byte(sum)) != 1 {
		return app.Principal{}, authInfo{}, errBadKey
	}
	role := config.Role(rec.Role)
	if _, ok := s.cfg.Directory.Current().Tenant(rec.Tenant); !ok || !role.Valid() {
		return app.Principal{}, authInfo{}, errBadKey
	}
	if role != config.RoleAdmin {
		if _, ok := s.cfg.Directory.Current().Extension(rec.Tenant, rec.Extension); !ok {
			return app.Principal{}, authInfo{}, newError(http.StatusUnauthorized, codeUnauthorized,
				"the key's extension is no longer configured")
		}
	}
	return app.Principal{Tenant: rec.Tenant, Role: role, Extension: rec.Extension, KeyName: rec.Name},
		authInfo{sha: sum, fromStore: true, requireSig: rec.RequireSignatures, signingSecret: rec.SigningSecret}, nil
}

// allow refuses principals without the app's permission perm, before the handler reads the
// request.
func (s *Server) allow(perm app.Permission) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			if err := principal(c).Authorize(perm); err != nil {
				return err
			}
			return next(c)
		}
	}
}

// inTenant refuses operator keys on the routes that act inside a tenant without a permission
// of their own (help requests): an operator administers tenants and acts in none.
func (s *Server) inTenant(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		if principal(c).Role == config.RoleOperator {
			return newError(http.StatusForbidden, codeForbidden, "an operator key administers tenants and acts in none")
		}
		return next(c)
	}
}

// tenantSigns reports whether the tenant requires every /v1 request to be signed (its
// request_signatures setting).
func (s *Server) tenantSigns(tenant string) bool {
	t, ok := s.cfg.Directory.Current().Tenant(tenant)
	return ok && t.RequestSignatures == config.SignaturesRequired
}
