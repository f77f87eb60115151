package app

import (
	"context"
	"encoding/base64"
	"strings"
	"time"

	"github.com/earpiece/earpiece/store"
)

// The audit trail through the API: reading it page by page and verifying its hash chain. Both
// are for admin keys only: the trail records every supervisor's actions and refused attempts
// on the whole tenant, which is the tenant manager's business, not a supervisor's (a supervisor
// sees its own sessions through GET /v1/supervisions).

// Audit page sizes.
const (
	DefaultAuditPage = 100
	MaxAuditPage     = 1000
)

// AuditQuery selects audit entries (GET /v1/audit). Zero fields select everything.
type AuditQuery struct {
	From, To time.Time // when the entries were recorded (the Redis server's clock), [From, To)
	Actor    string    // an extension, "key:<name>", an API key name, or "earpiece"
	Agent    string
	Action   string
	Cursor   string // where the previous page stopped (AuditPage.Next)
	Limit    int    // 1..MaxAuditPage; 0: DefaultAuditPage
}

// AuditPage is one page of entries, oldest first; Next is the cursor of the next page ("" when
// there is none). A page may hold fewer than Limit entries and still have a next one: a page
// scans a bounded stretch of the trail.
type AuditPage struct {
	Entries []store.AuditEntry
	Next    string
}

// cursorPrefix versions the cursor format.
const cursorPrefix = "a1:"

// maxCursorLen bounds a cursor before it is decoded (a stream id is at most 41 bytes).
const maxCursorLen = 96

// EncodeAuditCursor makes the opaque cursor of a page that stopped at stream id.
func EncodeAuditCursor(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + id))
}

// ParseAuditCursor returns the stream id of a cursor made by EncodeAuditCursor; ok is false for
// anything else.
func ParseAuditCursor(cursor string) (id string, ok bool) {
	if cursor == "" || len(cursor) > maxCursorLen {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return "", false
	}
	id, found := strings.CutPrefix(string(raw), cursorPrefix)
	if !found || !store.ValidStreamID(id) {
		return "", false
	}
	return id, true
}

// Audit returns a page of the tenant's audit trail.
func (a *App) Audit(ctx context.Context, p Principal, q AuditQuery) (AuditPage, error) {
	if err := p.Authorize(PermAdminister); err != nil {
		return AuditPage{}, err
	}
	invalid := func(field, msg string) error {
		e := apiError(ErrInvalid, "invalid_field", field+": "+msg)
		e.Field = field
		return e
	}
	f := store.AuditFilter{From: q.From, To: q.To, Actor: q.Actor, Agent: q.Agent, Action: q.Action}
	switch {
	case q.Limit < 0 || q.Limit > MaxAuditPage:
		return AuditPage{}, invalid("limit", "want 1 to 1000")
	case !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From):
		return AuditPage{}, invalid("to", "want a time after from")
	}
	if q.Cursor != "" {
		id, ok := ParseAuditCursor(q.Cursor)
		if !ok {
			return AuditPage{}, invalid("cursor", "not a cursor of this API (next_cursor of a previous page)")
		}
		f.After = id
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultAuditPage
	}
	entries, next, err := a.store.AuditPage(ctx, p.Tenant, f, limit)
	if err != nil {
		return AuditPage{}, storeFailure(err)
	}
	page := AuditPage{Entries: entries}
	if next != "" {
		page.Next = EncodeAuditCursor(next)
	}
	return page, nil
}

// VerifyAudit recomputes the tenant's audit hash chain (store.VerifyAudit).
func (a *App) VerifyAudit(ctx context.Context, p Principal) (store.AuditVerification, error) {
	if err := p.Authorize(PermAdminister); err != nil {
		return store.AuditVerification{}, err
	}
	v, err := a.store.VerifyAudit(ctx, p.Tenant)
	if err != nil {
		return store.AuditVerification{}, storeFailure(err)
	}
	return v, nil
}

// completeAudit fills the entry's own fields from what its writer put in Extra (the writers
// predate them): the API key, the help request, the call, the mode and the trigger ("via"); and
// for a refused feature code, the target and mode the dialed code names, so that a refused
// attempt carries its target too. Extra is kept as written.
func (a *App) completeAudit(e *store.AuditEntry) {
	x := e.Extra // reading a nil map is fine
	fill := func(dst *string, vals ...string) {
		for _, v := range vals {
			if *dst == "" {
				*dst = v
			}
		}
	}
	fill(&e.KeyID, x["key"])
	if k, ok := strings.CutPrefix(e.Actor, "key:"); ok {
		fill(&e.KeyID, k)
	}
	fill(&e.HelpRequest, x["help_request"])
	fill(&e.Call, x["call_id"])
	fill(&e.Mode, x["mode"], x["to"])
	if v := x["via"]; v != "" {
		e.Trigger = v // how this action was asked (DTMF in an API-started session, say)
	}
	if x["dialed"] != "" {
		fill(&e.Trigger, "feature_code")
		if t, ok := a.dir.Current().Tenant(e.Tenant); ok && e.Target == "" {
			if mode, target, err := t.DialingRules.Parse(x["dialed"]); err == nil {
				e.Target = target
				fill(&e.Mode, mode.String())
			}
		}
	}
	if e.Actor == "earpiece" {
		fill(&e.Trigger, "system")
	}
}
