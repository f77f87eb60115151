package webhooks

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

// fakeService's help requests: one scripted open request of agent 100 ("help-1"); the role rules
// are the app's (tested in package app), here only what the edge does with the answers.

func (f *fakeService) Raise(_ context.Context, p app.Principal, req app.RaiseRequest) (store.HelpRequest, error) {
	f.record("Raise")
	agent := req.Agent
	if agent == "" {
		agent = p.Extension
	}
	if agent == "100" {
		return store.HelpRequest{}, &app.Error{Kind: app.ErrConflict, Code: app.RefuseHelpExists, Message: "already open"}
	}
	return store.HelpRequest{ID: "help-new", Tenant: p.Tenant, Agent: agent, CallID: "chan-" + agent, Reason: req.Reason,
		State: store.HelpOpen, RaisedBy: p.Extension, Via: "api", CreatedAt: t0}, nil
}

func (f *fakeService) helpOne(p app.Principal, id string) (store.HelpRequest, error) {
	if id != "help-1" || p.Tenant != "acme" {
		return store.HelpRequest{}, &app.Error{Kind: app.ErrNotFound, Code: "not_found", Message: "no help request " + id}
	}
	return store.HelpRequest{ID: "help-1", Tenant: "acme", Agent: "100", CallID: "chan-100", State: store.HelpOpen,
		RaisedBy: "100", Via: "api", CreatedAt: t0}, nil
}

func (f *fakeService) HelpRequests(_ context.Context, p app.Principal, _ app.HelpFilter) ([]store.HelpRequest, error) {
	f.record("HelpRequests")
	h, err := f.helpOne(p, "help-1")
	if err != nil {
		return []store.HelpRequest{}, nil
	}
	return []store.HelpRequest{h}, nil
}

func (f *fakeService) HelpRequest(_ context.Context, p app.Principal, id string) (store.HelpRequest, error) {
	f.record("HelpRequest")
	return f.helpOne(p, id)
}

func (f *fakeService) Accept(_ context.Context, p app.Principal, id string, req app.AcceptRequest) (app.HelpAccepted, error) {
	f.record("Accept")
	if p.Role == config.RoleAgent {
		return app.HelpAccepted{}, &app.Error{Kind: app.ErrForbidden, Code: "forbidden", Message: "agents may not accept"}
	}
	h, err := f.helpOne(p, id)
	if err != nil {
		return app.HelpAccepted{}, err
	}
	h.State, h.HelpProvidedBy, h.AcceptedAt = store.HelpInProgress, p.Extension, t0
	out := app.HelpAccepted{Help: h}
	if req.Mode.Valid() {
		out.Session = &store.Session{ID: "sup-help", Tenant: p.Tenant, Supervisor: p.Extension, Agent: h.Agent,
			Mode: req.Mode.String(), State: store.StateRinging, Origin: "api", HelpRequest: h.ID, StartedAt: t0, UpdatedAt: t0}
	}
	return out, nil
}

func (f *fakeService) CloseHelp(_ context.Context, p app.Principal, id string) (store.HelpRequest, error) {
	f.record("CloseHelp")
	h, err := f.helpOne(p, id)
	h.State, h.CloseReason = store.HelpClosed, store.HelpReasonAgent
	return h, err
}

func (f *fakeService) CancelHelp(_ context.Context, p app.Principal, id string) (store.HelpRequest, error) {
	f.record("CancelHelp")
	h, err := f.helpOne(p, id)
	h.State, h.CloseReason = store.HelpCancelled, store.HelpReasonCancelled
	return h, err
}

func TestHelpRoutes(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, method, path, key, body string
		status                        int
		field                         string // a JSON field of the answer that must be present
	}{
		{"raise", http.MethodPost, "/v1/help-requests", keyAdmin, `{"agent":"101","reason":"billing"}`, http.StatusCreated, "id"},
		{"raise twice", http.MethodPost, "/v1/help-requests", keyAgent, `{}`, http.StatusConflict, "error"},
		{"raise bad agent", http.MethodPost, "/v1/help-requests", keyAdmin, `{"agent":"abc"}`, http.StatusUnprocessableEntity, "error"},
		{"raise unknown field", http.MethodPost, "/v1/help-requests", keyAdmin, `{"agnt":"101"}`, http.StatusBadRequest, "error"},
		{"list", http.MethodGet, "/v1/help-requests?status=open&agent=100&from=2026-01-01T00:00:00Z", keySup, "", http.StatusOK, "help_requests"},
		{"list bad time", http.MethodGet, "/v1/help-requests?from=yesterday", keySup, "", http.StatusUnprocessableEntity, "error"},
		{"get", http.MethodGet, "/v1/help-requests/help-1", keySup, "", http.StatusOK, "status"},
		{"get other tenant", http.MethodGet, "/v1/help-requests/help-1", keyGlobexAdmin, "", http.StatusNotFound, "error"},
		{"accept", http.MethodPost, "/v1/help-requests/help-1/accept", keySup, "", http.StatusOK, "help_request"},
		{"accept with mode", http.MethodPost, "/v1/help-requests/help-1/accept", keySup, `{"mode":"whisper"}`, http.StatusOK, "supervision"},
		{"accept bad mode", http.MethodPost, "/v1/help-requests/help-1/accept", keySup, `{"mode":"shout"}`, http.StatusUnprocessableEntity, "error"},
		{"accept as agent", http.MethodPost, "/v1/help-requests/help-1/accept", keyAgent, "", http.StatusForbidden, "error"},
		{"close", http.MethodPost, "/v1/help-requests/help-1/close", keyAgent, "", http.StatusOK, "close_reason"},
		{"cancel", http.MethodPost, "/v1/help-requests/help-1/cancel", keyAgent, "", http.StatusOK, "close_reason"},
		{"no key", http.MethodGet, "/v1/help-requests", "", "", http.StatusUnauthorized, "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.do(tt.method, tt.path, tt.key, tt.body)
			if rec.Code != tt.status {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, rec.Code, rec.Body, tt.status)
			}
			var got map[string]json.RawMessage
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("answer %s: %v", rec.Body, err)
			}
			if _, ok := got[tt.field]; !ok {
				t.Errorf("answer %s has no %q", rec.Body, tt.field)
			}
		})
	}
}
