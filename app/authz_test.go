package app

import (
	"errors"
	"testing"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

// TestRoleRules is the table of the API's role rules (authz.go): what each kind of key may do,
// whom it supervises as, and which sessions it sees.
func TestRoleRules(t *testing.T) {
	var (
		agent = Principal{Tenant: "acme", Role: config.RoleAgent, Extension: "100"}
		sup   = Principal{Tenant: "acme", Role: config.RoleSupervisor, Extension: "200"}
		admin = Principal{Tenant: "acme", Role: config.RoleAdmin}
	)
	code := func(err error) string {
		var e *Error
		if errors.As(err, &e) {
			return e.Code
		}
		if err != nil {
			return "not an *Error: " + err.Error()
		}
		return ""
	}

	for _, tc := range []struct {
		p    Principal
		perm Permission
		want string
	}{
		{agent, PermSupervise, "forbidden"},
		{agent, PermAdminister, "forbidden"},
		{sup, PermSupervise, ""},
		{sup, PermAdminister, "forbidden"},
		{admin, PermSupervise, ""},
		{admin, PermAdminister, ""},
		{admin, Permission(0), "forbidden"},
	} {
		if got := code(tc.p.Authorize(tc.perm)); got != tc.want {
			t.Errorf("%s Authorize(%d) = %q, want %q", tc.p.Role, tc.perm, got, tc.want)
		}
	}

	for _, tc := range []struct {
		p          Principal
		named      string
		want, code string
		field      string
	}{
		{sup, "", "200", "", ""},
		{sup, "200", "200", "", ""},
		{sup, "201", "", "not_own_extension", ""},
		{admin, "201", "201", "", ""},
		{admin, "", "", "invalid_field", "supervisor"},
		{agent, "", "", "forbidden", ""},
		{agent, "100", "", "forbidden", ""},
	} {
		got, err := tc.p.SupervisorFor(tc.named)
		if got != tc.want || code(err) != tc.code {
			t.Errorf("%s SupervisorFor(%q) = %q, %v; want %q, code %q", tc.p.Role, tc.named, got, err, tc.want, tc.code)
		}
		var e *Error
		if errors.As(err, &e) && e.Field != tc.field {
			t.Errorf("%s SupervisorFor(%q): field %q, want %q", tc.p.Role, tc.named, e.Field, tc.field)
		}
	}

	own := store.Session{ID: "s1", Tenant: "acme", Supervisor: "200"}
	other := store.Session{ID: "s2", Tenant: "acme", Supervisor: "201"}
	foreign := store.Session{ID: "s3", Tenant: "globex", Supervisor: "200"}
	for _, tc := range []struct {
		p    Principal
		rec  store.Session
		kind error
		code string
	}{
		{sup, own, nil, ""},
		{sup, other, ErrForbidden, "not_own_session"},
		{sup, foreign, ErrNotFound, "not_found"},
		{admin, own, nil, ""},
		{admin, other, nil, ""},
		{admin, foreign, ErrNotFound, "not_found"},
		{agent, own, ErrForbidden, "forbidden"},
		{agent, foreign, ErrNotFound, "not_found"},
	} {
		err := tc.p.AuthorizeSession(tc.rec)
		if code(err) != tc.code || (tc.kind != nil && !errors.Is(err, tc.kind)) {
			t.Errorf("%s AuthorizeSession(%s of %s/%s) = %v, want %v/%q", tc.p.Role, tc.rec.ID, tc.rec.Tenant, tc.rec.Supervisor, err, tc.kind, tc.code)
		}
	}
}

// TestAPIFailureKeepsCauseFromClients: an API error caused by Redis or ARI shows its fixed
// message and code, and carries the cause for the log.
func TestAPIFailureKeepsCauseFromClients(t *testing.T) {
	cause := errors.New("dial tcp 10.0.0.5:6379: connect: connection refused")
	err := apiFailure(ErrUnavailable, RefuseStoreUnavailable, "the state store is unavailable", cause)
	var e *Error
	if !errors.As(err, &e) || e.Code != RefuseStoreUnavailable || e.Message != "the state store is unavailable" {
		t.Fatalf("errors.As = %+v", e)
	}
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, cause) {
		t.Errorf("%v: want it to wrap ErrUnavailable and the cause", err)
	}
}
