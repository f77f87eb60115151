package webhooks

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/dialplan"
)

// The directory administration routes (/v1/tenants...): thin handlers over app.Admin, which
// holds every rule (who may change what, preconditions, validation, audit). The edge parses
// the conditional headers, binds bodies, and answers each resource with its ETag and the
// directory revision (X-Earpiece-Directory-Revision).

// Admin is what the administration routes ask of the app (*app.Admin).
type Admin interface {
	Tenants(ctx context.Context, p app.Principal) (app.Versioned[app.TenantList], error)
	Tenant(ctx context.Context, p app.Principal, id string) (app.Versioned[app.TenantView], error)
	CreateTenant(ctx context.Context, p app.Principal, req app.TenantCreate, pc app.Precondition) (app.Versioned[app.TenantView], error)
	UpdateTenant(ctx context.Context, p app.Principal, id string, req app.TenantPatch, pc app.Precondition) (app.Versioned[app.TenantView], error)
	DeleteTenant(ctx context.Context, p app.Principal, id string, pc app.Precondition) (int64, error)

	Extensions(ctx context.Context, p app.Principal, tenant string) (app.Versioned[app.ExtensionList], error)
	Extension(ctx context.Context, p app.Principal, tenant, number string) (app.Versioned[app.ExtensionView], error)
	CreateExtension(ctx context.Context, p app.Principal, tenant string, req app.ExtensionView, pc app.Precondition) (app.Versioned[app.ExtensionView], error)
	UpdateExtension(ctx context.Context, p app.Principal, tenant, number string, req app.ExtensionPatch, pc app.Precondition) (app.Versioned[app.ExtensionView], error)
	DeleteExtension(ctx context.Context, p app.Principal, tenant, number string, pc app.Precondition) (int64, error)

	HuntGroups(ctx context.Context, p app.Principal, tenant string) (app.Versioned[app.HuntGroupList], error)
	HuntGroup(ctx context.Context, p app.Principal, tenant, name string) (app.Versioned[app.HuntGroupView], error)
	CreateHuntGroup(ctx context.Context, p app.Principal, tenant string, req app.HuntGroupView, pc app.Precondition) (app.Versioned[app.HuntGroupView], error)
	UpdateHuntGroup(ctx context.Context, p app.Principal, tenant, name string, req app.HuntGroupPatch, pc app.Precondition) (app.Versioned[app.HuntGroupView], error)
	DeleteHuntGroup(ctx context.Context, p app.Principal, tenant, name string, pc app.Precondition) (int64, error)

	Members(ctx context.Context, p app.Principal, tenant, group string) (app.Versioned[app.MemberList], error)
	Member(ctx context.Context, p app.Principal, tenant, group, ext string) (app.Versioned[app.MemberView], error)
	CreateMember(ctx context.Context, p app.Principal, tenant, group string, req app.MemberView, pc app.Precondition) (app.Versioned[app.MemberView], error)
	UpdateMember(ctx context.Context, p app.Principal, tenant, group, ext string, req app.MemberPatch, pc app.Precondition) (app.Versioned[app.MemberView], error)
	DeleteMember(ctx context.Context, p app.Principal, tenant, group, ext string, pc app.Precondition) (int64, error)

	DialingRules(ctx context.Context, p app.Principal, tenant string) (app.Versioned[dialplan.Rules], error)
	SetDialingRules(ctx context.Context, p app.Principal, tenant string, rules dialplan.Rules, pc app.Precondition) (app.Versioned[dialplan.Rules], error)
	Announce(ctx context.Context, p app.Principal, tenant string) (app.Versioned[app.AnnounceView], error)
	SetAnnounce(ctx context.Context, p app.Principal, tenant string, req app.AnnounceView, pc app.Precondition) (app.Versioned[app.AnnounceView], error)
	HelpPolicy(ctx context.Context, p app.Principal, tenant string) (app.Versioned[app.HelpPolicyView], error)
	SetHelpPolicy(ctx context.Context, p app.Principal, tenant string, req app.HelpPolicyView, pc app.Precondition) (app.Versioned[app.HelpPolicyView], error)

	Webhooks(ctx context.Context, p app.Principal, tenant string) (app.Versioned[app.WebhookList], error)
	Webhook(ctx context.Context, p app.Principal, tenant, id string) (app.Versioned[app.WebhookView], error)
	CreateWebhook(ctx context.Context, p app.Principal, tenant string, req app.WebhookCreate, pc app.Precondition) (app.Versioned[app.WebhookView], error)
	DeleteWebhook(ctx context.Context, p app.Principal, tenant, id string, pc app.Precondition) (int64, error)
}

var _ Admin = (*app.Admin)(nil)

// headerRevision carries the directory revision a resource was read from or written to.
const headerRevision = "X-Earpiece-Directory-Revision"

// adminRoutes registers the administration routes on v1, each with mw.
func (s *Server) adminRoutes(v1 *echo.Group, mw ...echo.MiddlewareFunc) {
	h := adminHandlers{s: s, adm: s.cfg.Admin}
	v1.GET("/tenants", h.listTenants, mw...)
	v1.POST("/tenants", h.createTenant, mw...)
	v1.GET("/tenants/:tenant", h.getTenant, mw...)
	v1.PATCH("/tenants/:tenant", h.patchTenant, mw...)
	v1.DELETE("/tenants/:tenant", h.deleteTenant, mw...)

	v1.GET("/tenants/:tenant/extensions", h.listExtensions, mw...)
	v1.POST("/tenants/:tenant/extensions", h.createExtension, mw...)
	v1.GET("/tenants/:tenant/extensions/:number", h.getExtension, mw...)
	v1.PATCH("/tenants/:tenant/extensions/:number", h.patchExtension, mw...)
	v1.DELETE("/tenants/:tenant/extensions/:number", h.deleteExtension, mw...)

	v1.GET("/tenants/:tenant/hunt-groups", h.listHuntGroups, mw...)
	v1.POST("/tenants/:tenant/hunt-groups", h.createHuntGroup, mw...)
	v1.GET("/tenants/:tenant/hunt-groups/:name", h.getHuntGroup, mw...)
	v1.PATCH("/tenants/:tenant/hunt-groups/:name", h.patchHuntGroup, mw...)
	v1.DELETE("/tenants/:tenant/hunt-groups/:name", h.deleteHuntGroup, mw...)
	v1.GET("/tenants/:tenant/hunt-groups/:name/members", h.listMembers, mw...)
	v1.POST("/tenants/:tenant/hunt-groups/:name/members", h.createMember, mw...)
	v1.GET("/tenants/:tenant/hunt-groups/:name/members/:extension", h.getMember, mw...)
	v1.PATCH("/tenants/:tenant/hunt-groups/:name/members/:extension", h.patchMember, mw...)
	v1.DELETE("/tenants/:tenant/hunt-groups/:name/members/:extension", h.deleteMember, mw...)

	v1.GET("/tenants/:tenant/dialing-rules", h.getDialingRules, mw...)
	v1.PUT("/tenants/:tenant/dialing-rules", h.putDialingRules, mw...)
	v1.GET("/tenants/:tenant/announce", h.getAnnounce, mw...)
	v1.PUT("/tenants/:tenant/announce", h.putAnnounce, mw...)
	v1.GET("/tenants/:tenant/help-policy", h.getHelpPolicy, mw...)
	v1.PUT("/tenants/:tenant/help-policy", h.putHelpPolicy, mw...)

	v1.GET("/tenants/:tenant/webhooks", h.listWebhooks, mw...)
	v1.POST("/tenants/:tenant/webhooks", h.createWebhook, mw...)
	v1.GET("/tenants/:tenant/webhooks/:id", h.getWebhook, mw...)
	v1.DELETE("/tenants/:tenant/webhooks/:id", h.deleteWebhook, mw...)
}

type adminHandlers struct {
	s   *Server
	adm Admin
}

// param is a path parameter, unescaped: echo leaves a value raw when the path had escapes that
// its decoded form would not round-trip (a %2F).
func param(c *echo.Context, name string) string {
	v := c.Param(name)
	if c.Request().URL.RawPath != "" {
		if u, err := url.PathUnescape(v); err == nil {
			return u
		}
	}
	return v
}

// answer writes a resource with its ETag and revision. A GET whose If-None-Match names the
// resource's current tag gets 304 (weak comparison, as RFC 9110 asks for If-None-Match).
func answer[T any](c *echo.Context, status int, v app.Versioned[T], err error) error {
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(headerRevision, strconv.FormatInt(v.Rev, 10))
	h.Set("Cache-Control", "no-cache")
	if v.ETag != "" {
		h.Set("ETag", v.ETag)
	}
	if c.Request().Method == http.MethodGet {
		if inm := headerList(c.Request(), "If-None-Match"); inm != "" {
			tags, star, perr := parseETagList(inm)
			if perr == nil && (star || containsWeak(tags, v.ETag)) {
				return c.NoContent(http.StatusNotModified)
			}
		}
	}
	return c.JSON(status, v.Value)
}

// deleted answers a removal: 204 with the revision.
func deleted(c *echo.Context, rev int64, err error) error {
	if err != nil {
		return err
	}
	c.Response().Header().Set(headerRevision, strconv.FormatInt(rev, 10))
	return c.NoContent(http.StatusNoContent)
}

// headerList is every value of the request's header name, as one list.
func headerList(r *http.Request, name string) string {
	return strings.Join(r.Header.Values(name), ", ")
}

// precondition reads a change's If-Match and If-None-Match. Both are optional; a change
// accepts If-None-Match: * only (create only if absent).
func precondition(c *echo.Context) (app.Precondition, error) {
	var pc app.Precondition
	if v := headerList(c.Request(), "If-Match"); v != "" {
		tags, star, err := parseETagList(v)
		if err != nil {
			return pc, headerError("If-Match", err.Error())
		}
		pc.IfMatch, pc.IfMatchAny = tags, star
	}
	if v := headerList(c.Request(), "If-None-Match"); v != "" {
		if _, star, err := parseETagList(v); err != nil || !star {
			return pc, headerError("If-None-Match", "a change takes If-None-Match: * only (create only if absent)")
		}
		pc.IfNoneMatchAny = true
	}
	return pc, nil
}

func headerError(name, msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: codeInvalidHeader, field: name, msg: name + ": " + msg}
}

// bind reads a change's body into dst and its preconditions.
func bind(c *echo.Context, dst any) (app.Precondition, error) {
	if _, err := bindJSON(c, dst); err != nil {
		return app.Precondition{}, err
	}
	return precondition(c)
}

// detached is the context of a change: it runs to the end even if the client leaves (the
// directory's lock and the audit entry must not be cut half-way).
func (h adminHandlers) detached(c *echo.Context) (context.Context, context.CancelFunc) {
	return h.s.detached(c.Request().Context())
}

// change binds a change's body (B) and preconditions, runs do detached from the client's
// connection, and answers the resource it returns with status.
func change[B, V any](h adminHandlers, c *echo.Context, status int, do func(ctx context.Context, p app.Principal, b B, pc app.Precondition) (app.Versioned[V], error)) error {
	var b B
	pc, err := bind(c, &b)
	if err != nil {
		return err
	}
	ctx, cancel := h.detached(c)
	defer cancel()
	v, err := do(ctx, principal(c), b, pc)
	return answer(c, status, v, err)
}

// create is change for a creation: 201 with the new resource's Location (its path, location).
func create[B, V any](h adminHandlers, c *echo.Context, location func(v V) string, do func(ctx context.Context, p app.Principal, b B, pc app.Precondition) (app.Versioned[V], error)) error {
	return change(h, c, http.StatusCreated, func(ctx context.Context, p app.Principal, b B, pc app.Precondition) (app.Versioned[V], error) {
		v, err := do(ctx, p, b, pc)
		if err == nil {
			c.Response().Header().Set("Location", location(v.Value))
		}
		return v, err
	})
}

// remove runs a removal with the request's preconditions, detached, and answers 204.
func remove(h adminHandlers, c *echo.Context, do func(ctx context.Context, p app.Principal, pc app.Precondition) (int64, error)) error {
	pc, err := precondition(c)
	if err != nil {
		return err
	}
	ctx, cancel := h.detached(c)
	defer cancel()
	rev, err := do(ctx, principal(c), pc)
	return deleted(c, rev, err)
}

// ---- tenants

func (h adminHandlers) listTenants(c *echo.Context) error {
	v, err := h.adm.Tenants(c.Request().Context(), principal(c))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) createTenant(c *echo.Context) error {
	return create(h, c, func(v app.TenantView) string { return "/v1/tenants/" + url.PathEscape(v.ID) },
		func(ctx context.Context, p app.Principal, b app.TenantCreate, pc app.Precondition) (app.Versioned[app.TenantView], error) {
			return h.adm.CreateTenant(ctx, p, b, pc)
		})
}

func (h adminHandlers) getTenant(c *echo.Context) error {
	v, err := h.adm.Tenant(c.Request().Context(), principal(c), param(c, "tenant"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) patchTenant(c *echo.Context) error {
	return change(h, c, http.StatusOK, func(ctx context.Context, p app.Principal, b app.TenantPatch, pc app.Precondition) (app.Versioned[app.TenantView], error) {
		return h.adm.UpdateTenant(ctx, p, param(c, "tenant"), b, pc)
	})
}

func (h adminHandlers) deleteTenant(c *echo.Context) error {
	return remove(h, c, func(ctx context.Context, p app.Principal, pc app.Precondition) (int64, error) {
		return h.adm.DeleteTenant(ctx, p, param(c, "tenant"), pc)
	})
}

// ---- extensions

func (h adminHandlers) listExtensions(c *echo.Context) error {
	v, err := h.adm.Extensions(c.Request().Context(), principal(c), param(c, "tenant"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) createExtension(c *echo.Context) error {
	tenant := param(c, "tenant")
	return create(h, c, func(v app.ExtensionView) string {
		return "/v1/tenants/" + url.PathEscape(tenant) + "/extensions/" + url.PathEscape(v.Number)
	},
		func(ctx context.Context, p app.Principal, b app.ExtensionView, pc app.Precondition) (app.Versioned[app.ExtensionView], error) {
			return h.adm.CreateExtension(ctx, p, tenant, b, pc)
		})
}

func (h adminHandlers) getExtension(c *echo.Context) error {
	v, err := h.adm.Extension(c.Request().Context(), principal(c), param(c, "tenant"), param(c, "number"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) patchExtension(c *echo.Context) error {
	return change(h, c, http.StatusOK, func(ctx context.Context, p app.Principal, b app.ExtensionPatch, pc app.Precondition) (app.Versioned[app.ExtensionView], error) {
		return h.adm.UpdateExtension(ctx, p, param(c, "tenant"), param(c, "number"), b, pc)
	})
}

func (h adminHandlers) deleteExtension(c *echo.Context) error {
	return remove(h, c, func(ctx context.Context, p app.Principal, pc app.Precondition) (int64, error) {
		return h.adm.DeleteExtension(ctx, p, param(c, "tenant"), param(c, "number"), pc)
	})
}

// ---- hunt groups and members

func (h adminHandlers) listHuntGroups(c *echo.Context) error {
	v, err := h.adm.HuntGroups(c.Request().Context(), principal(c), param(c, "tenant"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) createHuntGroup(c *echo.Context) error {
	tenant := param(c, "tenant")
	return create(h, c, func(v app.HuntGroupView) string {
		return "/v1/tenants/" + url.PathEscape(tenant) + "/hunt-groups/" + url.PathEscape(v.Name)
	},
		func(ctx context.Context, p app.Principal, b app.HuntGroupView, pc app.Precondition) (app.Versioned[app.HuntGroupView], error) {
			return h.adm.CreateHuntGroup(ctx, p, tenant, b, pc)
		})
}

func (h adminHandlers) getHuntGroup(c *echo.Context) error {
	v, err := h.adm.HuntGroup(c.Request().Context(), principal(c), param(c, "tenant"), param(c, "name"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) patchHuntGroup(c *echo.Context) error {
	return change(h, c, http.StatusOK, func(ctx context.Context, p app.Principal, b app.HuntGroupPatch, pc app.Precondition) (app.Versioned[app.HuntGroupView], error) {
		return h.adm.UpdateHuntGroup(ctx, p, param(c, "tenant"), param(c, "name"), b, pc)
	})
}

func (h adminHandlers) deleteHuntGroup(c *echo.Context) error {
	return remove(h, c, func(ctx context.Context, p app.Principal, pc app.Precondition) (int64, error) {
		return h.adm.DeleteHuntGroup(ctx, p, param(c, "tenant"), param(c, "name"), pc)
	})
}

func (h adminHandlers) listMembers(c *echo.Context) error {
	v, err := h.adm.Members(c.Request().Context(), principal(c), param(c, "tenant"), param(c, "name"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) createMember(c *echo.Context) error {
	tenant, group := param(c, "tenant"), param(c, "name")
	return create(h, c, func(v app.MemberView) string {
		return "/v1/tenants/" + url.PathEscape(tenant) + "/hunt-groups/" + url.PathEscape(group) + "/members/" + url.PathEscape(v.Extension)
	}, func(ctx context.Context, p app.Principal, b app.MemberView, pc app.Precondition) (app.Versioned[app.MemberView], error) {
		return h.adm.CreateMember(ctx, p, tenant, group, b, pc)
	})
}

func (h adminHandlers) getMember(c *echo.Context) error {
	v, err := h.adm.Member(c.Request().Context(), principal(c), param(c, "tenant"), param(c, "name"), param(c, "extension"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) patchMember(c *echo.Context) error {
	return change(h, c, http.StatusOK, func(ctx context.Context, p app.Principal, b app.MemberPatch, pc app.Precondition) (app.Versioned[app.MemberView], error) {
		return h.adm.UpdateMember(ctx, p, param(c, "tenant"), param(c, "name"), param(c, "extension"), b, pc)
	})
}

func (h adminHandlers) deleteMember(c *echo.Context) error {
	return remove(h, c, func(ctx context.Context, p app.Principal, pc app.Precondition) (int64, error) {
		return h.adm.DeleteMember(ctx, p, param(c, "tenant"), param(c, "name"), param(c, "extension"), pc)
	})
}

// ---- rules and policies

func (h adminHandlers) getDialingRules(c *echo.Context) error {
	v, err := h.adm.DialingRules(c.Request().Context(), principal(c), param(c, "tenant"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) putDialingRules(c *echo.Context) error {
	return change(h, c, http.StatusOK, func(ctx context.Context, p app.Principal, b dialplan.Rules, pc app.Precondition) (app.Versioned[dialplan.Rules], error) {
		return h.adm.SetDialingRules(ctx, p, param(c, "tenant"), b, pc)
	})
}

func (h adminHandlers) getAnnounce(c *echo.Context) error {
	v, err := h.adm.Announce(c.Request().Context(), principal(c), param(c, "tenant"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) putAnnounce(c *echo.Context) error {
	return change(h, c, http.StatusOK, func(ctx context.Context, p app.Principal, b app.AnnounceView, pc app.Precondition) (app.Versioned[app.AnnounceView], error) {
		return h.adm.SetAnnounce(ctx, p, param(c, "tenant"), b, pc)
	})
}

func (h adminHandlers) getHelpPolicy(c *echo.Context) error {
	v, err := h.adm.HelpPolicy(c.Request().Context(), principal(c), param(c, "tenant"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) putHelpPolicy(c *echo.Context) error {
	return change(h, c, http.StatusOK, func(ctx context.Context, p app.Principal, b app.HelpPolicyView, pc app.Precondition) (app.Versioned[app.HelpPolicyView], error) {
		return h.adm.SetHelpPolicy(ctx, p, param(c, "tenant"), b, pc)
	})
}

// ---- webhooks

func (h adminHandlers) listWebhooks(c *echo.Context) error {
	v, err := h.adm.Webhooks(c.Request().Context(), principal(c), param(c, "tenant"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) createWebhook(c *echo.Context) error {
	tenant := param(c, "tenant")
	return create(h, c, func(v app.WebhookView) string {
		return "/v1/tenants/" + url.PathEscape(tenant) + "/webhooks/" + url.PathEscape(v.ID)
	},
		func(ctx context.Context, p app.Principal, b app.WebhookCreate, pc app.Precondition) (app.Versioned[app.WebhookView], error) {
			return h.adm.CreateWebhook(ctx, p, tenant, b, pc)
		})
}

func (h adminHandlers) getWebhook(c *echo.Context) error {
	v, err := h.adm.Webhook(c.Request().Context(), principal(c), param(c, "tenant"), param(c, "id"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) deleteWebhook(c *echo.Context) error {
	return remove(h, c, func(ctx context.Context, p app.Principal, pc app.Precondition) (int64, error) {
		return h.adm.DeleteWebhook(ctx, p, param(c, "tenant"), param(c, "id"), pc)
	})
}
