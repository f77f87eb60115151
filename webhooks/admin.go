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

// ---- tenants

func (h adminHandlers) listTenants(c *echo.Context) error {
	v, err := h.adm.Tenants(c.Request().Context(), principal(c))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) createTenant(c *echo.Context) error {
	var b app.TenantCreate
	pc, err := bind(c, &b)
	if err != nil {
		return err
	}
	ctx, cancel := h.detached(c)
	defer cancel()
	v, err := h.adm.CreateTenant(ctx, principal(c), b, pc)
	if err == nil {
		c.Response().Header().Set("Location", "/v1/tenants/"+url.PathEscape(v.Value.ID))
	}
	return answer(c, http.StatusCreated, v, err)
}

func (h adminHandlers) getTenant(c *echo.Context) error {
	v, err := h.adm.Tenant(c.Request().Context(), principal(c), param(c, "tenant"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) patchTenant(c *echo.Context) error {
	var b app.TenantPatch
	pc, err := bind(c, &b)
	if err != nil {
		return err
	}
	ctx, cancel := h.detached(c)
	defer cancel()
	v, err := h.adm.UpdateTenant(ctx, principal(c), param(c, "tenant"), b, pc)
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) deleteTenant(c *echo.Context) error {
	pc, err := precondition(c)
	if err != nil {
		return err
	}
	ctx, cancel := h.detached(c)
	defer cancel()
	rev, err := h.adm.DeleteTenant(ctx, principal(c), param(c, "tenant"), pc)
	return deleted(c, rev, err)
}

// ---- extensions

func (h adminHandlers) listExtensions(c *echo.Context) error {
	v, err := h.adm.Extensions(c.Request().Context(), principal(c), param(c, "tenant"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) createExtension(c *echo.Context) error {
	var b app.ExtensionView
	pc, err := bind(c, &b)
	if err != nil {
		return err
	}
	ctx, cancel := h.detached(c)
	defer cancel()
	tenant := param(c, "tenant")
	v, err := h.adm.CreateExtension(ctx, principal(c), tenant, b, pc)
	if err == nil {
		c.Response().Header().Set("Location", "/v1/tenants/"+url.PathEscape(tenant)+"/extensions/"+url.PathEscape(v.Value.Number))
	}
	return answer(c, http.StatusCreated, v, err)
}

func (h adminHandlers) getExtension(c *echo.Context) error {
	v, err := h.adm.Extension(c.Request().Context(), principal(c), param(c, "tenant"), param(c, "number"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) patchExtension(c *echo.Context) error {
	var b app.ExtensionPatch
	pc, err := bind(c, &b)
	if err != nil {
		return err
	}
	ctx, cancel := h.detached(c)
	defer cancel()
	v, err := h.adm.UpdateExtension(ctx, principal(c), param(c, "tenant"), param(c, "number"), b, pc)
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) deleteExtension(c *echo.Context) error {
	pc, err := precondition(c)
	if err != nil {
		return err
	}
	ctx, cancel := h.detached(c)
	defer cancel()
	rev, err := h.adm.DeleteExtension(ctx, principal(c), param(c, "tenant"), param(c, "number"), pc)
	return deleted(c, rev, err)
}

// ---- hunt groups and members

func (h adminHandlers) listHuntGroups(c *echo.Context) error {
	v, err := h.adm.HuntGroups(c.Request().Context(), principal(c), param(c, "tenant"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) createHuntGroup(c *echo.Context) error {
	var b app.HuntGroupView
	pc, err := bind(c, &b)
	if err != nil {
		return err
	}
	ctx, cancel := h.detached(c)
	defer cancel()
	tenant := param(c, "tenant")
	v, err := h.adm.CreateHuntGroup(ctx, principal(c), tenant, b, pc)
	if err == nil {
		c.Response().Header().Set("Location", "/v1/tenants/"+url.PathEscape(tenant)+"/hunt-groups/"+url.PathEscape(v.Value.Name))
	}
	return answer(c, http.StatusCreated, v, err)
}

func (h adminHandlers) getHuntGroup(c *echo.Context) error {
	v, err := h.adm.HuntGroup(c.Request().Context(), principal(c), param(c, "tenant"), param(c, "name"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) patchHuntGroup(c *echo.Context) error {
	var b app.HuntGroupPatch
	pc, err := bind(c, &b)
	if err != nil {
		return err
	}
	ctx, cancel := h.detached(c)
	defer cancel()
	v, err := h.adm.UpdateHuntGroup(ctx, principal(c), param(c, "tenant"), param(c, "name"), b, pc)
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) deleteHuntGroup(c *echo.Context) error {
	pc, err := precondition(c)
	if err != nil {
		return err
	}
	ctx, cancel := h.detached(c)
	defer cancel()
	rev, err := h.adm.DeleteHuntGroup(ctx, principal(c), param(c, "tenant"), param(c, "name"), pc)
	return deleted(c, rev, err)
}

func (h adminHandlers) listMembers(c *echo.Context) error {
	v, err := h.adm.Members(c.Request().Context(), principal(c), param(c, "tenant"), param(c, "name"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) createMember(c *echo.Context) error {
	var b app.MemberView
	pc, err := bind(c, &b)
	if err != nil {
		return err
	}
	ctx, cancel := h.detached(c)
	defer cancel()
	tenant, group := param(c, "tenant"), param(c, "name")
	v, err := h.adm.CreateMember(ctx, principal(c), tenant, group, b, pc)
	if err == nil {
		c.Response().Header().Set("Location", "/v1/tenants/"+url.PathEscape(tenant)+"/hunt-groups/"+
			url.PathEscape(group)+"/members/"+url.PathEscape(v.Value.Extension))
	}
	return answer(c, http.StatusCreated, v, err)
}

func (h adminHandlers) getMember(c *echo.Context) error {
	v, err := h.adm.Member(c.Request().Context(), principal(c), param(c, "tenant"), param(c, "name"), param(c, "extension"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) patchMember(c *echo.Context) error {
	var b app.MemberPatch
	pc, err := bind(c, &b)
	if err != nil {
		return err
	}
	ctx, cancel := h.detached(c)
	defer cancel()
	v, err := h.adm.UpdateMember(ctx, principal(c), param(c, "tenant"), param(c, "name"), param(c, "extension"), b, pc)
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) deleteMember(c *echo.Context) error {
	pc, err := precondition(c)
	if err != nil {
		return err
	}
	ctx, cancel := h.detached(c)
	defer cancel()
	rev, err := h.adm.DeleteMember(ctx, principal(c), param(c, "tenant"), param(c, "name"), param(c, "extension"), pc)
	return deleted(c, rev, err)
}

// ---- rules and policies

func (h adminHandlers) getDialingRules(c *echo.Context) error {
	v, err := h.adm.DialingRules(c.Request().Context(), principal(c), param(c, "tenant"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) putDialingRules(c *echo.Context) error {
	var b dialplan.Rules
	pc, err := bind(c, &b)
	if err != nil {
		return err
	}
	ctx, cancel := h.detached(c)
	defer cancel()
	v, err := h.adm.SetDialingRules(ctx, principal(c), param(c, "tenant"), b, pc)
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) getAnnounce(c *echo.Context) error {
	v, err := h.adm.Announce(c.Request().Context(), principal(c), param(c, "tenant"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) putAnnounce(c *echo.Context) error {
	var b app.AnnounceView
	pc, err := bind(c, &b)
	if err != nil {
		return err
	}
	ctx, cancel := h.detached(c)
	defer cancel()
	v, err := h.adm.SetAnnounce(ctx, principal(c), param(c, "tenant"), b, pc)
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) getHelpPolicy(c *echo.Context) error {
	v, err := h.adm.HelpPolicy(c.Request().Context(), principal(c), param(c, "tenant"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) putHelpPolicy(c *echo.Context) error {
	var b app.HelpPolicyView
	pc, err := bind(c, &b)
	if err != nil {
		return err
	}
	ctx, cancel := h.detached(c)
	defer cancel()
	v, err := h.adm.SetHelpPolicy(ctx, principal(c), param(c, "tenant"), b, pc)
	return answer(c, http.StatusOK, v, err)
}

// ---- webhooks

func (h adminHandlers) listWebhooks(c *echo.Context) error {
	v, err := h.adm.Webhooks(c.Request().Context(), principal(c), param(c, "tenant"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) createWebhook(c *echo.Context) error {
	var b app.WebhookCreate
	pc, err := bind(c, &b)
	if err != nil {
		return err
	}
	ctx, cancel := h.detached(c)
	defer cancel()
	tenant := param(c, "tenant")
	v, err := h.adm.CreateWebhook(ctx, principal(c), tenant, b, pc)
	if err == nil {
		c.Response().Header().Set("Location", "/v1/tenants/"+url.PathEscape(tenant)+"/webhooks/"+url.PathEscape(v.Value.ID))
	}
	return answer(c, http.StatusCreated, v, err)
}

func (h adminHandlers) getWebhook(c *echo.Context) error {
	v, err := h.adm.Webhook(c.Request().Context(), principal(c), param(c, "tenant"), param(c, "id"))
	return answer(c, http.StatusOK, v, err)
}

func (h adminHandlers) deleteWebhook(c *echo.Context) error {
	pc, err := precondition(c)
	if err != nil {
		return err
	}
	ctx, cancel := h.detached(c)
	defer cancel()
	rev, err := h.adm.DeleteWebhook(ctx, principal(c), param(c, "tenant"), param(c, "id"), pc)
	return deleted(c, rev, err)
}
