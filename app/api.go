package app

import (
	"errors"
	"fmt"
	"time"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/store"
)

// The app's API for the HTTP edge (package webhooks): what a CRM or dashboard may ask of it.
// Errors are domain errors; the edge maps them to status codes. Who may ask what is in authz.go.

// Domain errors of the API. Refusals also carry a stable code (see *Error).
var (
	ErrNotFound    = errors.New("not found")
	ErrForbidden   = errors.New("forbidden")
	ErrConflict    = errors.New("conflict")
	ErrInvalid     = errors.New("invalid request")
	ErrUnavailable = errors.New("temporarily unavailable")
)

// Error is an API error with a stable code ("not_allowed", "no_active_call", ...) wrapping one
// of the domain errors above.
type Error struct {
	Kind    error  // ErrNotFound, ErrForbidden, ErrConflict, ErrInvalid or ErrUnavailable
	Code    string // stable, snake_case
	Message string // for clients: written here, never a Redis or ARI error's text
	Field   string // the request field at fault, when there is one
	// Fields are the problems of an invalid directory change (admin.go), each naming the
	// directory field at fault as check-config does.
	Fields []FieldProblem
}

// FieldProblem is one problem of a field.
type FieldProblem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }
func (e *Error) Unwrap() error { return e.Kind }
func apiError(kind error, code, msg string) *Error {
	return &Error{Kind: kind, Code: code, Message: msg}
}

// apiFailure is an API error caused by cause (Redis, ARI, a deadline): errors.As finds the
// *Error, whose Message is all a client sees, and the whole error, cause included, is what the
// edge logs.
func apiFailure(kind error, code, msg string, cause error) error {
	return fmt.Errorf("%w: %w", apiError(kind, code, msg), cause)
}

// Principal is who makes an API request: an API key's tenant, role and (for agent and supervisor
// keys) extension.
type Principal struct {
	Tenant    string
	Role      config.Role
	Extension string // "" for admin keys
	KeyName   string
}

// Call is a call in progress, as listed by the API.
type Call struct {
	ID             string        `json:"call_id"` // the agent's channel id
	Tenant         string        `json:"-"`
	Agent          string        `json:"agent"`           // extension number
	CustomerNumber string        `json:"customer_number"` // the other party's caller id number
	Direction      string        `json:"direction"`       // "inbound" (customer called) or "outbound"
	StartedAt      time.Time     `json:"started_at"`      // when the agent's channel was answered
	Supervisors    []Participant `json:"supervisors"`
	// NeedsHelp: the agent asked for help on this call and nobody accepted yet; HelpRequest is
	// the call's open or in-progress help request ("" for none).
	NeedsHelp   bool   `json:"needs_help"`
	HelpRequest string `json:"help_request_id,omitempty"`
}

// Participant is a supervisor on a call.
type Participant struct {
	SessionID string `json:"session_id"`
	Extension string `json:"extension"`
	Mode      string `json:"mode"`
	State     string `json:"state"`
}

// JoinRequest asks earpiece to call a supervisor's phone and join them to a call.
type JoinRequest struct {
	CallID     string        // either CallID or Agent
	Agent      string        // agent extension
	Supervisor string        // supervisor extension ("" = the principal's own)
	Mode       dialplan.Mode // initial mode
	// HelpRequest is the help request this supervision answers ("" for none; set by Accept).
	HelpRequest string
}

// SessionView is a supervision session as clients see it, in API answers, events and webhooks
// alike. It leaves out what is earpiece's own business: Asterisk channel and bridge ids, the
// instance that runs the session.
type SessionView struct {
	ID          string           `json:"id"`
	CallID      string           `json:"call_id"`
	Agent       string           `json:"agent"`
	Supervisor  string           `json:"supervisor"`
	Mode        string           `json:"mode"`
	State       string           `json:"state"`
	Origin      string           `json:"origin"`
	StartedAt   time.Time        `json:"started_at"`
	UpdatedAt   time.Time        `json:"updated_at"`
	EndedAt     time.Time        `json:"ended_at,omitzero"`
	EndReason   string           `json:"end_reason,omitempty"`
	ModeSeconds map[string]int64 `json:"mode_seconds"` // time in each mode until now
}

// ViewSession is rec as clients see it at now.
func ViewSession(rec store.Session, now time.Time) SessionView {
	secs := map[string]int64{}
	for m, d := range rec.ModeTotals(now) {
		secs[m] = int64(d / time.Second)
	}
	return SessionView{
		ID: rec.ID, CallID: rec.CallID, Agent: rec.Agent, Supervisor: rec.Supervisor,
		Mode: rec.Mode, State: rec.State, Origin: rec.Origin,
		StartedAt: rec.StartedAt, UpdatedAt: rec.UpdatedAt, EndedAt: rec.EndedAt,
		EndReason: rec.EndReason, ModeSeconds: secs,
	}
}

// Notification is an event for dashboards (SSE) and CRMs (outbound webhooks).
type Notification struct {
	Type   string    `json:"type"` // call.started, call.ended, supervision.ringing, supervision.started, supervision.mode_changed, supervision.ended
	Tenant string    `json:"tenant"`
	Time   time.Time `json:"time"`
	Data   any       `json:"data"`
}

// Notifier receives notifications. Notify must not block: a slow or dead receiver never delays
// call handling.
type Notifier interface {
	Notify(n Notification)
}

// Notification types.
const (
	NoteCallStarted        = "call.started"
	NoteCallEnded          = "call.ended"
	NoteSupervisionRinging = "supervision.ringing"
	NoteSupervisionStarted = "supervision.started"
	NoteSupervisionMode    = "supervision.mode_changed"
	NoteSupervisionEnded   = "supervision.ended"
)
