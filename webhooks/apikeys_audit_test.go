package webhooks

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/earpiece/earpiece/app"
)

// Creating and revoking API keys are admin actions: audited before they take effect, and not
// done when the audit trail cannot record them.
func TestAPIKeyChangesAudited(t *testing.T) {
	e := newEnv(t)
	if rec := e.do(http.MethodPost, "/v1/api-keys", keyAdmin, `{"name":"crm-9","role":"supervisor","extension":"201"}`); rec.Code != http.StatusCreated {
		t.Fatalf("create = %d %s", rec.Code, rec.Body)
	}
	if rec := e.do(http.MethodDelete, "/v1/api-keys/crm-9", keyAdmin, ""); rec.Code != http.StatusNoContent {
		t.Fatalf("revoke = %d %s", rec.Code, rec.Body)
	}
	want := []string{"acme admin-key " + app.AuditAPIKeyCreate + " crm-9", "acme admin-key " + app.AuditAPIKeyRevoke + " crm-9"}
	if !slices.Equal(e.svc.admin, want) {
		t.Errorf("audited %q, want %q", e.svc.admin, want)
	}

	// The trail unavailable: 503, and nothing changes.
	e.svc.adminErr = fmt.Errorf("%w: redis down", app.ErrUnavailable)
	if rec := e.do(http.MethodPost, "/v1/api-keys", keyAdmin, `{"name":"crm-10","role":"supervisor","extension":"201"}`); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("create without a trail = %d %s, want 503", rec.Code, rec.Body)
	}
	keys, err := e.st.APIKeys(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.Name == "crm-10" {
			t.Error("a key was created although its audit entry could not be written")
		}
	}
	e.svc.adminErr = nil
	if rec := e.do(http.MethodPost, "/v1/api-keys", keyAdmin, `{"name":"crm-11","role":"supervisor","extension":"201"}`); rec.Code != http.StatusCreated {
		t.Fatalf("create = %d %s", rec.Code, rec.Body)
	}
	e.svc.adminErr = errors.Join(app.ErrUnavailable)
	if rec := e.do(http.MethodDelete, "/v1/api-keys/crm-11", keyAdmin, ""); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("revoke without a trail = %d %s, want 503", rec.Code, rec.Body)
	}
	e.svc.adminErr = nil
	if rec := e.do(http.MethodGet, "/v1/api-keys", keyAdmin, ""); !contains(rec.Body.Bytes(), "crm-11") {
		t.Error("the key was revoked although its audit entry could not be written")
	}
}
