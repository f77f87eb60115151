package webhooks

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/store"
)

// AuditService is what the audit routes ask of the app (implemented by *app.App): a page of the
// tenant's audit trail, and the verification of its hash chain. Admin keys only (the app's rule,
// which the routes also apply).
type AuditService interface {
	Audit(ctx context.Context, p app.Principal, q app.AuditQuery) (app.AuditPage, error)
	VerifyAudit(ctx context.Context, p app.Principal) (store.AuditVerification, error)
}

var _ AuditService = (*app.App)(nil)

// auditJSON is an audit entry as the API shows it.
type auditJSON struct {
	ID            string            `json:"id"`
	Seq           int64             `json:"seq,omitempty"`
	Time          time.Time         `json:"time"`
	TimeMS        int64             `json:"time_ms"`
	Tenant        string            `json:"tenant"`
	Actor         string            `json:"actor"`
	KeyID         string            `json:"key_id,omitempty"`
	Action        string            `json:"action"`
	Agent         string            `json:"agent,omitempty"`
	CallID        string            `json:"call_id,omitempty"`
	HelpRequestID string            `json:"help_request_id,omitempty"`
	SessionID     string            `json:"session_id,omitempty"`
	Mode          string            `json:"mode,omitempty"`
	Trigger       string            `json:"trigger,omitempty"`
	Outcome       string            `json:"outcome"`
	Reason        string            `json:"reason,omitempty"`
	Repeats       int64             `json:"repeats,omitempty"`
	Extra         map[string]string `json:"extra,omitempty"`
	PrevHash      string            `json:"prev_hash,omitempty"`
	Hash          string            `json:"hash,omitempty"`
}

// hiddenExtra are Extra keys the API does not show: "detail" is a refusal's cause, which names
// Asterisk endpoints and ARI resources (it is in the log; it stays in the stored, hashed entry).
var hiddenExtra = map[string]bool{"detail": true}

func auditView(e store.AuditEntry) auditJSON {
	var extra map[string]string
	for k, v := range e.Extra {
		if !hiddenExtra[k] {
			if extra == nil {
				extra = map[string]string{}
			}
			extra[k] = v
		}
	}
	return auditJSON{
		ID: e.ID, Seq: e.Seq, Time: e.Time, TimeMS: e.Time.UnixMilli(), Tenant: e.Tenant, Actor: e.Actor,
		KeyID: e.KeyID, Action: e.Action, Agent: e.Target, CallID: e.Call, HelpRequestID: e.HelpRequest,
		SessionID: e.Session, Mode: e.Mode, Trigger: e.Trigger, Outcome: e.Outcome, Reason: e.Reason,
		Repeats: e.Repeats, Extra: extra, PrevHash: e.PrevHash, Hash: e.Hash,
	}
}

// auditRoutes registers the audit routes on v1, each with mw, when the Service implements
// AuditService.
func (s *Server) auditRoutes(v1 *echo.Group, mw ...echo.MiddlewareFunc) {
	as, ok := s.cfg.Service.(AuditService)
	if !ok {
		return
	}
	h := auditHandlers{svc: as}
	v1.GET("/audit", h.list, mw...)
	v1.GET("/audit/verify", h.verify, mw...)
}

type auditHandlers struct {
	svc AuditService
}

// maxAuditFilter bounds the actor and action filters (an actor is at most "key:" and a key name).
const maxAuditFilter = 200

// GET /v1/audit?from=&to=&actor=&agent=&action=&cursor=&limit=, as JSON or (Accept: text/csv)
// CSV, whose next cursor is in X-Next-Cursor.
func (h auditHandlers) list(c *echo.Context) error {
	q := c.Request().URL.Query()
	aq := app.AuditQuery{Actor: q.Get("actor"), Agent: q.Get("agent"), Action: q.Get("action"), Cursor: q.Get("cursor")}
	switch {
	case aq.Agent != "" && !dialplan.ValidTarget(aq.Agent):
		return fieldError("agent", "want an extension number (1-32 digits)")
	case len(aq.Actor) > maxAuditFilter:
		return fieldError("actor", "longer than %d bytes", maxAuditFilter)
	case len(aq.Action) > maxAuditFilter:
		return fieldError("action", "longer than %d bytes", maxAuditFilter)
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &aq.From}, {"to", &aq.To}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return fieldError(p.name, "want an RFC 3339 time, e.g. 2026-03-01T09:00:00Z")
			}
			*p.dst = t
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > app.MaxAuditPage {
			return fieldError("limit", "want 1 to %d", app.MaxAuditPage)
		}
		aq.Limit = n
	}
	page, err := h.svc.Audit(c.Request().Context(), principal(c), aq)
	if err != nil {
		return err
	}
	if wantsCSV(c.Request().Header.Get("Accept")) {
		return writeAuditCSV(c, page)
	}
	out := make([]auditJSON, 0, len(page.Entries))
	for _, e := range page.Entries {
		out = append(out, auditView(e))
	}
	return c.JSON(http.StatusOK, map[string]any{"entries": out, "next_cursor": page.Next})
}

// GET /v1/audit/verify: 200 with the verification, ok or not (a broken chain is a finding,
// not an error of the request).
func (h auditHandlers) verify(c *echo.Context) error {
	v, err := h.svc.VerifyAudit(c.Request().Context(), principal(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

// wantsCSV reports whether an Accept header asks for text/csv before application/json (the
// first of the two listed wins; neither: JSON).
func wantsCSV(accept string) bool {
	for _, r := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(r))
		if err != nil || params["q"] == "0" {
			continue
		}
		switch mt {
		case "text/csv":
			return true
		case "application/json":
			return false
		}
	}
	return false
}

var auditCSVHeader = []string{"id", "seq", "time", "time_ms", "tenant", "actor", "key_id", "action", "agent",
	"call_id", "help_request_id", "session_id", "mode", "trigger", "outcome", "reason", "repeats", "extra",
	"prev_hash", "hash"}

func writeAuditCSV(c *echo.Context, page app.AuditPage) error {
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="audit.csv"`)
	if page.Next != "" {
		h.Set("X-Next-Cursor", page.Next)
	}
	c.Response().WriteHeader(http.StatusOK)
	w := csv.NewWriter(c.Response())
	_ = w.Write(auditCSVHeader)
	for _, e := range page.Entries {
		v := auditView(e)
		extra := ""
		if len(v.Extra) > 0 {
			raw, _ := json.Marshal(v.Extra) // map[string]string always encodes
			extra = string(raw)
		}
		_ = w.Write([]string{v.ID, strconv.FormatInt(v.Seq, 10), v.Time.UTC().Format(time.RFC3339Nano),
			strconv.FormatInt(v.TimeMS, 10), v.Tenant, csvCell(v.Actor), csvCell(v.KeyID), csvCell(v.Action),
			v.Agent, csvCell(v.CallID), csvCell(v.HelpRequestID), csvCell(v.SessionID), csvCell(v.Mode),
			csvCell(v.Trigger), csvCell(v.Outcome), csvCell(v.Reason), strconv.FormatInt(v.Repeats, 10),
			csvCell(extra), v.PrevHash, v.Hash})
	}
	w.Flush()
	return w.Error()
}

// csvCell defuses a cell a spreadsheet would run as a formula (OWASP "CSV injection"): one
// starting with =, +, -, @, tab or CR gets a leading apostrophe.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
