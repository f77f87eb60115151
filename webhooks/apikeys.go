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
	sourceAPI    = "api"    // created with POST /v1/api-keys
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

// POST /v1/api-keys (admin): create a key of the admin's tenant.
func (s *Server) createAPIKey(c *echo.Context) error {
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
		if _, ok := s.cfg.Directory.Current().Extension(p.Tenant, b.Extension); !ok {
			return fieldError("extension", "%q is not an extension of tenant %s", b.Extension, p.Tenant)
		}
	}
	if s.bootstrapKey(p.Tenant, b.Name) != nil {
		return newError(http.StatusConflict, codeNameTaken, "the configuration already has a key named %q", b.Name)
	}
	key := keyPrefix + randomToken()
	rec := store.APIKey{
		Name: b.Name, Tenant: p.Tenant, Role: string(role), Extension: b.Extension,
		SHA256: config.SHA256Hex(key), RequireSignatures: b.RequireSignatures,
		SigningSecret: signingSecretPrefix + randomToken(),
		CreatedAt:     s.now().UTC(), CreatedBy: p.KeyName,
	}
	ctx, cancel := s.detached(c.Request().Context())
	defer cancel()
	if err := s.cfg.Service.AuditAdmin(ctx, p, app.AuditAPIKeyCreate, rec.Name,
		map[string]string{"role": rec.Role, "extension": rec.Extension}); err != nil {
		return err
	}
	if err := s.cfg.Store.CreateAPIKey(ctx, rec); err != nil {
		if errors.Is(err, store.ErrExists) {
			return newError(http.StatusConflict, codeNameTaken, "a key named %q exists", b.Name)
		}
		return unavailable("creating the key", err)
	}
	s.log.Info().Str("tenant", p.Tenant).Str("key_name", rec.Name).Str("role", rec.Role).
		Str("by", p.KeyName).Msg("api key created")
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
	p := principal(c)
	recs, err := s.cfg.Store.APIKeys(c.Request().Context(), p.Tenant)
	if err != nil {
		return unavailable("listing keys", err)
	}
	out := []apiKeyJSON{}
	signs := s.tenantSigns(p.Tenant)
	if t, ok := s.cfg.Directory.Current().Tenant(p.Tenant); ok {
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
	p := principal(c)
	name := c.Param("name")
	if s.bootstrapKey(p.Tenant, name) != nil {
		return newError(http.StatusConflict, codeBootstrapKey,
			"key %q comes from the configuration file; remove it there", name)
	}
	ctx, cancel := s.detached(c.Request().Context())
	defer cancel()
	if err := s.cfg.Service.AuditAdmin(ctx, p, app.AuditAPIKeyRevoke, name, nil); err != nil {
		return err
	}
	if _, err := s.cfg.Store.RevokeAPIKey(ctx, p.Tenant, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return newError(http.StatusNotFound, codeNotFound, "no api key named %q", name)
		}
		return unavailable("revoking the key", err)
	}
	// Its open event streams end now on this instance, within KeyCheckInterval on the others.
	s.streams.revoke(keyID(app.Principal{Tenant: p.Tenant, KeyName: name}))
	s.log.Info().Str("tenant", p.Tenant).Str("key_name", name).Str("by", p.KeyName).Msg("api key revoked")
	return c.NoContent(http.StatusNoContent)
}
