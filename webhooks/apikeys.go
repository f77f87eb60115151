package webhooks

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

// Key sources in API answers.
const (
	sourceConfig = "config" // bootstrap key from the configuration file: read-only here
	sourceAPI    = "api"    // created with POST /v1/api-keys (or /v1/tenants/{tenant}/api-keys)
)

// keyPrefix starts every key the API creates (it makes leaked keys easy to find in logs
// and repositories).
const keyPrefix = "ek_"

var keyNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// apiKeyJSON is an API key as listed: never the key, never its hash.
type apiKeyJSON struct {
	Name              string    `json:"name"`
	Role              string    `json:"role"`
	Extension         string    `json:"extension,omitempty"`
	Source            string    `json:"source"`
	RequireSignatures bool      `json:"require_signatures"`
	CreatedAt         time.Time `json:"created_at,omitzero"`
	CreatedBy         string    `json:"created_by,omitempty"`
}

// createdKeyJSON is the answer to POST /v1/api-keys: the only time the key and its signing
// secret are shown.
type createdKeyJSON struct {
	Key           string `json:"key"`
	SigningSecret string `json:"signing_secret"`
	apiKeyJSON
}

// signingSecretPrefix starts every signing secret the API creates.
const signingSecretPrefix = "ess_"

type createKeyBody struct {
	Name              string `json:"name"`
	Role              string `json:"role"`
	Extension         string `json:"extension"`
	RequireSignatures bool   `json:"require_signatures"`
}

// The API key routes exist twice: /v1/api-keys acts in the caller's tenant (an admin key's), and
// /v1/tenants/{tenant}/api-keys in the tenant named, for the operator (any tenant: how a tenant
// created through the API gets its first admin key) or an admin (its own; another is 404, as
// on every /v1/tenants route). Both are the same handlers, audited alike in the tenant's trail.

// keysTenant is the tenant of a /v1/tenants/{tenant}/api-keys request, once the caller may act
// in it (app.AuthorizeTenant).
func (s *Server) keysTenant(c *echo.Context) (string, error) {
	tenant := param(c, "tenant")
	return tenant, app.AuthorizeTenant(principal(c), s.cfg.Directory.Current(), tenant)
}

// inTenantOf is p acting in tenant: the operator's entries go to the tenant's trail.
func inTenantOf(p app.Principal, tenant string) app.Principal {
	p.Tenant = tenant
	return p
}

// createdBy names who created a key (store.APIKey.CreatedBy): a key of the tenant by its name,
// the operator as operator:<name>.
func createdBy(p app.Principal) string {
	if p.Role == config.RoleOperator {
		return "operator:" + p.KeyName
	}
	return p.KeyName
}

// POST /v1/api-keys (admin): create a key of the admin's tenant.
func (s *Server) createAPIKey(c *echo.Context) error {
	return s.createKeyIn(c, principal(c).Tenant)
}

// POST /v1/tenants/{tenant}/api-keys (operator, or the tenant's admin): create a key of tenant.
func (s *Server) createTenantAPIKey(c *echo.Context) error {
	tenant, err := s.keysTenant(c)
	if err != nil {
		return err
	}
	return s.createKeyIn(c, tenant)
}

// createKeyIn creates a key of tenant, which the caller may administer.
func (s *Server) createKeyIn(c *echo.Context, tenant string) error {
	p := principal(c)
	var b createKeyBody
	if _, err := bindJSON(c, &b); err != nil {
		return err
	}
	role := config.Role(b.Role)
	switch {
	case !keyNamePattern.MatchString(b.Name):
		return fieldError("name", "want 1-64 characters from A-Z, a-z, 0-9, '_', '.', '-', starting with a letter or digit")
	case !role.Valid():
		return fieldError("role", "want agent, supervisor or admin")
	case role == config.RoleAdmin && b.Extension != "":
		return fieldError("extension", "an admin key acts for the whole tenant and names no extension")
	case role != config.RoleAdmin && b.Extension == "":
		return fieldError("extension", "required for an %s key", role)
	}
	if role != config.RoleAdmin {
		if _, ok := s.cfg.Directory.Current().Extension(tenant, b.Extension); !ok {
			return fieldError("extension", "%q is not an extension of tenant %s", b.Extension, tenant)
		}
	}
	if s.bootstrapKey(tenant, b.Name) != nil {
		return newError(http.StatusConflict, codeNameTaken, "the configuration already has a key named %q", b.Name)
	}
	key := keyPrefix + randomToken()
	rec := store.APIKey{
		Name: b.Name, Tenant: tenant, Role: string(role), Extension: b.Extension,
		SHA256: config.SHA256Hex(key), RequireSignatures: b.RequireSignatures,
		SigningSecret: signingSecretPrefix + randomToken(),
		CreatedAt:     s.now().UTC(), CreatedBy: createdBy(p),
	}
	ctx, cancel := s.detached(c.Request().Context())
	defer cancel()
	if err := s.cfg.Service.AuditAdmin(ctx, inTenantOf(p, tenant), app.AuditAPIKeyCreate, rec.Name,
		map[string]string{"role": rec.Role, "extension": rec.Extension}); err != nil {
		return err
	}
	if err := s.cfg.Store.CreateAPIKey(ctx, rec); err != nil {
		if errors.Is(err, store.ErrExists) {
			return newError(http.StatusConflict, codeNameTaken, "a key named %q exists", b.Name)
		}
		return unavailable("creating the key", err)
	}
	s.log.Info().Str("tenant", tenant).Str("key_name", rec.Name).Str("role", rec.Role).
		Str("by", rec.CreatedBy).Msg("api key created")
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, createdKeyJSON{Key: key, SigningSecret: rec.SigningSecret, apiKeyJSON: apiKeyView(rec)})
}

// randomToken is 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

func apiKeyView(k store.APIKey) apiKeyJSON {
	return apiKeyJSON{
		Name: k.Name, Role: k.Role, Extension: k.Extension, Source: sourceAPI,
		RequireSignatures: k.RequireSignatures, CreatedAt: k.CreatedAt, CreatedBy: k.CreatedBy,
	}
}

// bootstrapKey returns the configuration's key of tenant named name, or nil.
func (s *Server) bootstrapKey(tenant, name string) *config.APIKey {
	t, ok := s.cfg.Directory.Current().Tenant(tenant)
	if !ok {
		return nil
	}
	for i := range t.APIKeys {
		if t.APIKeys[i].Name == name {
			return &t.APIKeys[i]
		}
	}
	return nil
}

// GET /v1/api-keys (admin): the tenant's keys, bootstrap and created, by name.
func (s *Server) listAPIKeys(c *echo.Context) error {
	return s.listKeysOf(c, principal(c).Tenant)
}

// GET /v1/tenants/{tenant}/api-keys (operator, or the tenant's admin): tenant's keys.
func (s *Server) listTenantAPIKeys(c *echo.Context) error {
	tenant, err := s.keysTenant(c)
	if err != nil {
		return err
	}
	return s.listKeysOf(c, tenant)
}

func (s *Server) listKeysOf(c *echo.Context, tenant string) error {
	recs, err := s.cfg.Store.APIKeys(c.Request().Context(), tenant)
	if err != nil {
		return unavailable("listing keys", err)
	}
	out := []apiKeyJSON{}
	signs := s.tenantSigns(tenant)
	if t, ok := s.cfg.Directory.Current().Tenant(tenant); ok {
		for _, k := range t.APIKeys {
			out = append(out, apiKeyJSON{Name: k.Name, Role: string(k.Role), Extension: k.Extension,
				Source: sourceConfig, RequireSignatures: signs})
		}
	}
	for _, k := range recs {
		v := apiKeyView(k)
		v.RequireSignatures = v.RequireSignatures || signs
		out = append(out, v)
	}
	slices.SortStableFunc(out, func(a, b apiKeyJSON) int { return strings.Compare(a.Name, b.Name) })
	return c.JSON(http.StatusOK, map[string]any{"api_keys": out})
}

// DELETE /v1/api-keys/{name} (admin): revoke a created key; 204. Bootstrap keys are removed
// from the configuration file instead (409 bootstrap_key).
func (s *Server) deleteAPIKey(c *echo.Context) error {
	return s.revokeKeyOf(c, principal(c).Tenant)
}

// DELETE /v1/tenants/{tenant}/api-keys/{name} (operator, or the tenant's admin): revoke a
// created key of tenant.
func (s *Server) deleteTenantAPIKey(c *echo.Context) error {
	tenant, err := s.keysTenant(c)
	if err != nil {
		return err
	}
	return s.revokeKeyOf(c, tenant)
}

func (s *Server) revokeKeyOf(c *echo.Context, tenant string) error {
	p := principal(c)
	name := param(c, "name")
	if s.bootstrapKey(tenant, name) != nil {
		return newError(http.StatusConflict, codeBootstrapKey,
			"key %q comes from the configuration file; remove it there", name)
	}
	ctx, cancel := s.detached(c.Request().Context())
	defer cancel()
	if err := s.cfg.Service.AuditAdmin(ctx, inTenantOf(p, tenant), app.AuditAPIKeyRevoke, name, nil); err != nil {
		return err
	}
	if _, err := s.cfg.Store.RevokeAPIKey(ctx, tenant, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return newError(http.StatusNotFound, codeNotFound, "no api key named %q", name)
		}
		return unavailable("revoking the key", err)
	}
	// Its open event streams end now on this instance, within KeyCheckInterval on the others.
	s.streams.revoke(keyID(app.Principal{Tenant: tenant, KeyName: name}))
	s.log.Info().Str("tenant", tenant).Str("key_name", name).Str("by", createdBy(p)).Msg("api key revoked")
	return c.NoContent(http.StatusNoContent)
}
