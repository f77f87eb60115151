package webhooks

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/store"
)

// HelpService is what the help-request routes ask of the app (implemented by *app.App). Who may
// do what (agents their own requests, supervisors those of their hunt groups' agents, admins the
// tenant's) is the app's rule: these routes only authenticate.
type HelpService interface {
	Raise(ctx context.Context, p app.Principal, req app.RaiseRequest) (store.HelpRequest, error)
	HelpRequests(ctx context.Context, p app.Principal, f app.HelpFilter) ([]store.HelpRequest, error)
	HelpRequest(ctx context.Context, p app.Principal, id string) (store.HelpRequest, error)
	Accept(ctx context.Context, p app.Principal, id string, req app.AcceptRequest) (app.HelpAccepted, error)
	CloseHelp(ctx context.Context, p app.Principal, id string) (store.HelpRequest, error)
	CancelHelp(ctx context.Context, p app.Principal, id string) (store.HelpRequest, error)
}

var _ HelpService = (*app.App)(nil)

// helpJSON is a help request as the API shows it.
type helpJSON struct {
	ID             string    `json:"id"`
	Agent          string    `json:"agent"`
	CallID         string    `json:"call_id"`
	Reason         string    `json:"reason,omitempty"`
	Status         string    `json:"status"`
	RaisedBy       string    `json:"raised_by"`
	Via            string    `json:"via"`
	CreatedAt      time.Time `json:"created_at"`
	Escalated      bool      `json:"escalated,omitempty"`
	EscalatedAt    time.Time `json:"escalated_at,omitzero"`
	AcceptedAt     time.Time `json:"accepted_at,omitzero"`
	HelpProvidedBy string    `json:"help_provided_by,omitempty"`
	SessionID      string    `json:"session_id,omitempty"`
	ClosedAt       time.Time `json:"closed_at,omitzero"`
	CloseReason    string    `json:"close_reason,omitempty"`
}

func helpView(h store.HelpRequest) helpJSON {
	return helpJSON{
		ID: h.ID, Agent: h.Agent, CallID: h.CallID, Reason: h.Reason, Status: h.State, RaisedBy: h.RaisedBy,
		Via: h.Via, CreatedAt: h.CreatedAt, Escalated: h.Escalated, EscalatedAt: h.EscalatedAt,
		AcceptedAt: h.AcceptedAt, HelpProvidedBy: h.HelpProvidedBy,
		SessionID: h.SessionID, ClosedAt: h.ClosedAt, CloseReason: h.CloseReason,
	}
}

// helpRoutes registers the help-request routes on v1, each with mw (rate limit, authentication),
// when the Service implements HelpService.
func (s *Server) helpRoutes(v1 *echo.Group, mw ...echo.MiddlewareFunc) {
	hs, ok := s.cfg.Service.(HelpService)
	if !ok {
		return
	}
	h := helpHandlers{s: s, svc: hs}
	v1.POST("/help-requests", h.raise, mw...)
	v1.GET("/help-requests", h.list, mw...)
	v1.GET("/help-requests/:id", h.get, mw...)
	v1.POST("/help-requests/:id/accept", h.accept, mw...)
	v1.POST("/help-requests/:id/close", h.close, mw...)
	v1.POST("/help-requests/:id/cancel", h.cancel, mw...)
}

type helpHandlers struct {
	s   *Server
	svc HelpService
}

type raiseBody struct {
	Agent  string `json:"agent"`
	Reason string `json:"reason"`
}

// POST /v1/help-requests: 201 with the open request.
func (h helpHandlers) raise(c *echo.Context) error {
	var b raiseBody
	if _, err := bindJSON(c, &b); err != nil {
		return err
	}
	switch {
	case b.Agent != "" && !dialplan.ValidTarget(b.Agent):
		return fieldError("agent", "want an extension number (1-32 digits)")
	case len(b.Reason) > app.MaxHelpReason:
		return fieldError("reason", "longer than %d bytes", app.MaxHelpReason)
	}
	ctx, cancel := h.s.detached(c.Request().Context())
	defer cancel()
	req, err := h.svc.Raise(ctx, principal(c), app.RaiseRequest{Agent: b.Agent, Reason: b.Reason})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, helpView(req))
}

// GET /v1/help-requests?status=&agent=&from=&to=
func (h helpHandlers) list(c *echo.Context) error {
	q := c.Request().URL.Query()
	f := app.HelpFilter{Status: q.Get("status"), Agent: q.Get("agent")}
	if f.Agent != "" && !dialplan.ValidTarget(f.Agent) {
		return fieldError("agent", "want an extension number (1-32 digits)")
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return fieldError(p.name, "want an RFC 3339 time, e.g. 2026-03-01T09:00:00Z")
			}
			*p.dst = t
		}
	}
	list, err := h.svc.HelpRequests(c.Request().Context(), principal(c), f)
	if err != nil {
		return err
	}
	out := make([]helpJSON, 0, len(list))
	for _, r := range list {
		out = append(out, helpView(r))
	}
	return c.JSON(http.StatusOK, map[string]any{"help_requests": out})
}

// GET /v1/help-requests/{id}
func (h helpHandlers) get(c *echo.Context) error {
	r, err := h.svc.HelpRequest(c.Request().Context(), principal(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, helpView(r))
}

type acceptBody struct {
	Supervisor string `json:"supervisor"`
	Mode       string `json:"mode"`
}

// POST /v1/help-requests/{id}/accept: 200 with the request (in progress) and, when a mode was
// given, the supervision started for it (its phone rings).
func (h helpHandlers) accept(c *echo.Context) error {
	var b acceptBody
	if c.Request().ContentLength != 0 {
		if _, err := bindJSON(c, &b); err != nil {
			return err
		}
	}
	if b.Supervisor != "" && !dialplan.ValidTarget(b.Supervisor) {
		return fieldError("supervisor", "want an extension number (1-32 digits)")
	}
	req := app.AcceptRequest{Supervisor: b.Supervisor}
	if b.Mode != "" {
		m, err := dialplan.ParseMode(b.Mode)
		if err != nil {
			return fieldError("mode", "%q is not spy, whisper or barge", b.Mode)
		}
		req.Mode = m
	}
	ctx, cancel := h.s.detached(c.Request().Context())
	defer cancel()
	acc, err := h.svc.Accept(ctx, principal(c), c.Param("id"), req)
	if err != nil {
		return err
	}
	out := map[string]any{"help_request": helpView(acc.Help)}
	if acc.Session != nil {
		out["supervision"] = h.s.sessionView(*acc.Session)
	}
	return c.JSON(http.StatusOK, out)
}

// POST /v1/help-requests/{id}/close
func (h helpHandlers) close(c *echo.Context) error {
	ctx, cancel := h.s.detached(c.Request().Context())
	defer cancel()
	r, err := h.svc.CloseHelp(ctx, principal(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, helpView(r))
}

// POST /v1/help-requests/{id}/cancel
func (h helpHandlers) cancel(c *echo.Context) error {
	ctx, cancel := h.s.detached(c.Request().Context())
	defer cancel()
	r, err := h.svc.CancelHelp(ctx, principal(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, helpView(r))
}
