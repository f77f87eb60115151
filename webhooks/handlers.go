package webhooks

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/store"
)

// callJSON is a call in progress as GET /v1/calls shows it.
type callJSON struct {
	CallID          string            `json:"call_id"`
	Agent           string            `json:"agent"`
	CustomerNumber  string            `json:"customer_number"`
	Direction       string            `json:"direction"`
	StartedAt       time.Time         `json:"started_at"`
	DurationSeconds int64             `json:"duration_seconds"` // at the time of the answer
	Supervisors     []app.Participant `json:"supervisors"`
	NeedsHelp       bool              `json:"needs_help"`                // an open help request nobody accepted yet
	HelpRequest     string            `json:"help_request_id,omitempty"` // the call's open or in-progress help request
}

// sessionView is a session as the API shows it: the app's view, the same that events and
// webhooks carry (no Asterisk channel or bridge ids, no instance).
func (s *Server) sessionView(sess store.Session) app.SessionView {
	return app.ViewSession(sess, s.now())
}

// detached is ctx without its cancellation, bounded by ActionTimeout: app calls that change
// state run to completion even if the client hangs up half-way.
func (s *Server) detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ActionTimeout)
}

// GET /v1/calls
func (s *Server) listCalls(c *echo.Context) error {
	calls, err := s.cfg.Service.Calls(c.Request().Context(), principal(c))
	if err != nil {
		return err
	}
	now := s.now()
	out := make([]callJSON, 0, len(calls))
	for _, cl := range calls {
		sups := cl.Supervisors
		if sups == nil {
			sups = []app.Participant{}
		}
		out = append(out, callJSON{
			CallID: cl.ID, Agent: cl.Agent, CustomerNumber: cl.CustomerNumber, Direction: cl.Direction,
			StartedAt: cl.StartedAt, DurationSeconds: max(int64(now.Sub(cl.StartedAt)/time.Second), 0),
			Supervisors: sups, NeedsHelp: cl.NeedsHelp, HelpRequest: cl.HelpRequest,
		})
	}
	return c.JSON(http.StatusOK, map[string]any{"calls": out})
}

// joinBody is POST /v1/supervisions.
type joinBody struct {
	CallID     string `json:"call_id"`
	Agent      string `json:"agent"`
	Supervisor string `json:"supervisor"`
	Mode       string `json:"mode"`
}

// joinRequest validates b. Who may be named supervisor is the app's rule.
func joinRequest(b joinBody) (app.JoinRequest, error) {
	switch {
	case b.CallID != "" && b.Agent != "":
		return app.JoinRequest{}, fieldError("call_id", "give exactly one of call_id and agent, not both")
	case b.CallID == "" && b.Agent == "":
		return app.JoinRequest{}, fieldError("call_id", "give exactly one of call_id and agent")
	case b.CallID != "" && !validCallID(b.CallID):
		return app.JoinRequest{}, fieldError("call_id", "want 1-128 printable characters without spaces")
	case b.Agent != "" && !dialplan.ValidTarget(b.Agent):
		return app.JoinRequest{}, fieldError("agent", "want an extension number (1-32 digits)")
	case b.Supervisor != "" && !dialplan.ValidTarget(b.Supervisor):
		return app.JoinRequest{}, fieldError("supervisor", "want an extension number (1-32 digits)")
	case b.Mode == "":
		return app.JoinRequest{}, fieldError("mode", "required: spy, whisper or barge")
	}
	mode, err := parseMode(b.Mode)
	if err != nil {
		return app.JoinRequest{}, err
	}
	return app.JoinRequest{CallID: b.CallID, Agent: b.Agent, Supervisor: b.Supervisor, Mode: mode}, nil
}

// parseMode reads a mode as the API spells it: spy, whisper or barge, in lower case (the
// OpenAPI enum), exactly.
func parseMode(v string) (dialplan.Mode, error) {
	mode, err := dialplan.ParseMode(v)
	if err != nil || mode.String() != v {
		return dialplan.ModeUnknown, fieldError("mode", "%q is not spy, whisper or barge", v)
	}
	return mode, nil
}

func validCallID(id string) bool {
	return len(id) <= 128 && !strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r == 0x7f })
}

// POST /v1/supervisions: 202 with the session (state "ringing": the supervisor's phone is
// being called). With an Idempotency-Key, see idempotent.
func (s *Server) createSupervision(c *echo.Context) error {
	p := principal(c)
	var b joinBody
	body, err := bindJSON(c, &b)
	if err != nil {
		return err
	}
	req, err := joinRequest(b)
	if err != nil {
		return err
	}
	join := func(ctx context.Context) (int, any, error) {
		sess, err := s.cfg.Service.Join(ctx, p, req)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusAccepted, s.sessionView(sess), nil
	}
	if key := c.Request().Header.Get(HeaderIdempotencyKey); key != "" {
		return s.idempotent(c, p, key, body, join)
	}
	ctx, cancel := s.detached(c.Request().Context())
	defer cancel()
	status, v, err := join(ctx)
	if err != nil {
		return err
	}
	return c.JSON(status, v)
}

// GET /v1/supervisions: the tenant's live sessions (a supervisor key sees its own).
func (s *Server) listSupervisions(c *echo.Context) error {
	list, err := s.cfg.Service.Supervisions(c.Request().Context(), principal(c))
	if err != nil {
		return err
	}
	out := make([]app.SessionView, 0, len(list))
	for _, sess := range list {
		out = append(out, s.sessionView(sess))
	}
	return c.JSON(http.StatusOK, map[string]any{"supervisions": out})
}

// GET /v1/supervisions/{id}
func (s *Server) getSupervision(c *echo.Context) error {
	sess, err := s.cfg.Service.Supervision(c.Request().Context(), principal(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.sessionView(sess))
}

// modeBody is PATCH /v1/supervisions/{id}.
type modeBody struct {
	Mode string `json:"mode"`
}

// PATCH /v1/supervisions/{id} {"mode"}: switch mode.
func (s *Server) patchSupervision(c *echo.Context) error {
	p := principal(c)
	var b modeBody
	if _, err := bindJSON(c, &b); err != nil {
		return err
	}
	if b.Mode == "" {
		return fieldError("mode", "required: spy, whisper or barge")
	}
	mode, err := parseMode(b.Mode)
	if err != nil {
		return err
	}
	ctx, cancel := s.detached(c.Request().Context())
	defer cancel()
	sess, err := s.cfg.Service.SetMode(ctx, p, c.Param("id"), mode)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.sessionView(sess))
}

// DELETE /v1/supervisions/{id}: hang up the supervisor; 200 with the ended session.
func (s *Server) deleteSupervision(c *echo.Context) error {
	ctx, cancel := s.detached(c.Request().Context())
	defer cancel()
	sess, err := s.cfg.Service.Leave(ctx, principal(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.sessionView(sess))
}

// GET /v1/webhook-deliveries?limit=N: the tenant's most recent webhook deliveries.
func (s *Server) listDeliveries(c *echo.Context) error {
	limit := 100
	if v := c.QueryParam("limit"); v != "" {
		n, err := parseLimit(v)
		if err != nil {
			return err
		}
		limit = n
	}
	list, err := s.cfg.Store.Deliveries(c.Request().Context(), principal(c).Tenant, limit)
	if err != nil {
		return unavailable("listing deliveries", err)
	}
	return c.JSON(http.StatusOK, map[string]any{"deliveries": list})
}

// parseLimit reads ?limit: decimal digits only (no sign, space or exponent), 1 to
// DeliveriesMaxLen.
func parseLimit(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || len(v) > 4 || strings.TrimLeft(v, "0123456789") != "" || n < 1 || n > store.DeliveriesMaxLen {
		return 0, fieldError("limit", "want a whole number from 1 to %d", store.DeliveriesMaxLen)
	}
	return n, nil
}

// openAPI serves the embedded OpenAPI document (public: it holds no secrets, and clients
// and tools fetch it before they have a key).
func (s *Server) openAPI(c *echo.Context) error {
	return c.JSONBlob(http.StatusOK, openAPIDocument)
}
