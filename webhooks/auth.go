package webhooks

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

// Headers of signed requests. The signature is "v1=" + hex(HMAC-SHA256(key, timestamp + "." +
// body)) where key is the API key the request presents as Bearer and timestamp the decimal
// Unix seconds sent in X-Earpiece-Timestamp.
const (
	HeaderTimestamp = "X-Earpiece-Timestamp"
	HeaderSignature = "X-Earpiece-Signature"
)

// maxKeyLen bounds the Bearer token read (keys are ~46 characters).
const maxKeyLen = 512

// ctxPrincipal is the echo context key of the authenticated app.Principal.
const ctxPrincipal = "earpiece.principal"

// principal is the caller authenticated by authenticate.
func principal(c *echo.Context) app.Principal {
	p, _ := c.Get(ctxPrincipal).(app.Principal)
	return p
}

// authenticate resolves "Authorization: Bearer <key>" to a Principal: first among the
// configuration's bootstrap keys (in memory), then among the keys created through the API
// (Redis, by SHA-256). It then checks the request signature when one is sent or required.
// Keys are never logged or kept.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		key, ok := bearer(c.Request().Header.Get(echo.HeaderAuthorization))
		if !ok {
			return newError(http.StatusUnauthorized, codeUnauthorized, "missing or malformed Authorization: Bearer header")
		}
		p, requireSig, err := s.lookupKey(c.Request().Context(), key)
		if err != nil {
			return err
		}
		if sampleKeys[config.SHA256Hex(key)] && !fromLoopback(c.Request()) {
			return errSampleKey
		}
		if err := s.verifySignature(c, p, key, requireSig || s.tenantSigns(p.Tenant)); err != nil {
			return err
		}
		c.Set(ctxPrincipal, p)
		return next(c)
	}
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

// lookupKey finds key's principal and whether the key requires signed requests.
func (s *Server) lookupKey(ctx context.Context, key string) (app.Principal, bool, error) {
	// Directory.Authenticate looks the key's SHA-256 up in a map: no comparison of secrets.
	if t, k, ok := s.cfg.Directory.Authenticate(key); ok {
		return app.Principal{Tenant: t.ID, Role: k.Role, Extension: k.Extension, KeyName: k.Name}, false, nil
	}
	sum := config.SHA256Hex(key)
	rec, err := s.cfg.Store.APIKeyByHash(ctx, sum)
	if errors.Is(err, store.ErrNotFound) {
		return app.Principal{}, false, errBadKey
	}
	if err != nil {
		return app.Principal{}, false, unavailable("authenticating", err)
	}
	// The record was found by its hash; comparing once more, in constant time, guards
	// against a store that matched loosely.
	if subtle.ConstantTimeCompare([]byte(rec.SHA256), []byte(sum)) != 1 {
		return app.Principal{}, false, errBadKey
	}
	role := config.Role(rec.Role)
	if _, ok := s.cfg.Directory.Tenant(rec.Tenant); !ok || !role.Valid() {
		return app.Principal{}, false, errBadKey
	}
	if role != config.RoleAdmin {
		if _, ok := s.cfg.Directory.Extension(rec.Tenant, rec.Extension); !ok {
			return app.Principal{}, false, newError(http.StatusUnauthorized, codeUnauthorized,
				"the key's extension is no longer configured")
		}
	}
	return app.Principal{Tenant: rec.Tenant, Role: role, Extension: rec.Extension, KeyName: rec.Name}, rec.RequireSignatures, nil
}

// verifySignature checks X-Earpiece-Timestamp and X-Earpiece-Signature when sent (required:
// also when absent). The timestamp must be within SignatureTolerance of now; a signature seen
// before within the window is refused for requests that change something (GET and HEAD may
// repeat: a repeated read is harmless and two polls in one second would otherwise collide).
func (s *Server) verifySignature(c *echo.Context, p app.Principal, key string, required bool) error {
	h := c.Request().Header
	ts, sig := h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if ts == "" && sig == "" {
		if required {
			return newError(http.StatusUnauthorized, codeSignatureRequired,
				"this key requires signed requests (%s and %s)", HeaderTimestamp, HeaderSignature)
		}
		return nil
	}
	if ts == "" || sig == "" {
		return newError(http.StatusUnauthorized, codeInvalidSignature, "send both %s and %s", HeaderTimestamp, HeaderSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return newError(http.StatusUnauthorized, codeInvalidSignature, "%s: want Unix seconds", HeaderTimestamp)
	}
	if d := s.now().Sub(time.Unix(sec, 0)); d > s.cfg.SignatureTolerance || d < -s.cfg.SignatureTolerance {
		return newError(http.StatusUnauthorized, codeSignatureExpired,
			"%s is more than %v away from the server's time", HeaderTimestamp, s.cfg.SignatureTolerance)
	}
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(sig), "v1=")
	got, derr := hex.DecodeString(hexSig)
	if !ok || derr != nil || len(got) != sha256.Size {
		return newError(http.StatusUnauthorized, codeInvalidSignature, "%s: want v1=<hex HMAC-SHA256>", HeaderSignature)
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return newError(http.StatusUnauthorized, codeInvalidSignature, "signature does not match")
	}
	if m := c.Request().Method; m == http.MethodGet || m == http.MethodHead {
		return nil
	}
	// A timestamp is accepted from now-tolerance to now+tolerance, so a signature can be
	// valid for twice the tolerance.
	fresh, err := s.cfg.Store.ClaimNonce(c.Request().Context(), p.Tenant, "sig:"+hex.EncodeToString(got), 2*s.cfg.SignatureTolerance)
	if err != nil {
		return unavailable("checking the signature", err)
	}
	if !fresh {
		return newError(http.StatusUnauthorized, codeSignatureReplayed, "this signature was already used")
	}
	return nil
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

// tenantSigns reports whether the tenant requires every /v1 request to be signed (its
// request_signatures setting).
func (s *Server) tenantSigns(tenant string) bool {
	t, ok := s.cfg.Directory.Tenant(tenant)
	return ok && t.RequestSignatures == config.SignaturesRequired
}

// SignRequest returns the X-Earpiece-Signature value for a request made with key, at Unix
// time ts, with body (what a client computes; used by tests and client code in Go).
func SignRequest(key string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(strconv.FormatInt(ts, 10)))
	mac.Write([]byte("."))
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}
