package app

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

// fieldOf is the field an *Error names.
func fieldOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

// problems is every field problem of an *Error, as "field: message" lines.
func problems(err error) string {
	var e *Error
	if !errors.As(err, &e) {
		return ""
	}
	var out []string
	for _, f := range e.Fields {
		out = append(out, f.Field+": "+f.Message)
	}
	return strings.Join(out, "\n")
}

// TestAdminEndpointsOperatorOnly: in a tenant the operator gave no endpoints, only the operator
// chooses an extension's endpoint (creating it, changing it); only the operator gives a tenant
// endpoints; once it has some, its admin chooses among them and validation refuses any other.
func TestAdminEndpointsOperatorOnly(t *testing.T) {
	r := newAdminRig(t)
	ctx := t.Context()
	forbidden := func(what string, err error, field string) {
		t.Helper()
		if !errors.Is(err, ErrForbidden) || apiCode(err) != "operator_only" || fieldOf(err) != field {
			t.Errorf("%s: %v (field %q), want 403 operator_only at %s", what, err, fieldOf(err), field)
		}
	}
	r0 := r.sync.Live().Rev()
	_, err := r.admin.CreateExtension(ctx, acmeAdmin, "acme", ExtensionView{Number: "747", Endpoint: "PJSIP/747"}, Precondition{})
	forbidden("admin creating an extension in a tenant without endpoints", err, "endpoint")
	other := "PJSIP/globex-phone"
	_, err = r.admin.UpdateExtension(ctx, acmeAdmin, "acme", "744", ExtensionPatch{Endpoint: &other}, Precondition{})
	forbidden("admin changing an endpoint", err, "endpoint")
	if r.sync.Live().Rev() != r0 {
		t.Fatal("a refused change was written")
	}
	// The same endpoint is no change of it: the rest of the patch is the admin's.
	same, name := "PJSIP/744", "Johnny"
	if v, err := r.admin.UpdateExtension(ctx, acmeAdmin, "acme", "744", ExtensionPatch{Endpoint: &same, Name: &name}, Precondition{}); err != nil || v.Value.Name != "Johnny" {
		t.Fatalf("admin renaming with its endpoint unchanged: %+v %v", v, err)
	}
	// The operator chooses.
	if _, err := r.admin.CreateExtension(ctx, operator, "acme", ExtensionView{Number: "747", Endpoint: "PJSIP/747"}, Precondition{}); err != nil {
		t.Fatalf("operator creating: %v", err)
	}
	moved := "PJSIP/7470"
	if _, err := r.admin.UpdateExtension(ctx, operator, "acme", "747", ExtensionPatch{Endpoint: &moved}, Precondition{}); err != nil {
		t.Fatalf("operator changing an endpoint: %v", err)
	}

	// Only the operator gives endpoints.
	pats := []string{"PJSIP/7*"}
	_, err = r.admin.UpdateTenant(ctx, acmeAdmin, "acme", TenantPatch{Endpoints: &pats}, Precondition{})
	forbidden("admin giving its tenant endpoints", err, "endpoints")
	v, err := r.admin.UpdateTenant(ctx, operator, "acme", TenantPatch{Endpoints: &pats}, Precondition{})
	if err != nil || !slices.Equal(v.Value.Endpoints, pats) {
		t.Fatalf("operator giving endpoints: %+v %v", v, err)
	}
	if tn, _ := r.sync.Live().Current().Tenant("acme"); !slices.Equal(tn.Endpoints, pats) {
		t.Errorf("endpoints in force %q", tn.Endpoints)
	}

	// Now acme's admin chooses among them, and nothing else.
	if _, err := r.admin.CreateExtension(ctx, acmeAdmin, "acme", ExtensionView{Number: "748", Endpoint: "PJSIP/748"}, Precondition{}); err != nil {
		t.Fatalf("admin creating within its endpoints: %v", err)
	}
	for _, c := range []struct{ endpoint, msg string }{
		{"PJSIP/555", `is not in the tenant's endpoints (PJSIP/7*)`},
		{"PJSIP/901", `already used by another tenant`}, // globex's phone
	} {
		_, err := r.admin.CreateExtension(ctx, acmeAdmin, "acme", ExtensionView{Number: "749", Endpoint: c.endpoint}, Precondition{})
		atField := slices.ContainsFunc(strings.Split(problems(err), "\n"), func(l string) bool {
			return strings.HasPrefix(l, "tenants[acme].extensions[8].endpoint: ") && strings.Contains(l, c.msg)
		})
		if apiCode(err) != "invalid_directory" || fieldOf(err) != "tenants[acme].extensions[8].endpoint" || !atField {
			t.Errorf("admin taking %s: %v (field %q), want invalid_directory ...%s", c.endpoint, problems(err), fieldOf(err), c.msg)
		}
		if strings.Contains(err.Error()+problems(err), "globex") {
			t.Errorf("admin taking %s: the answer names another tenant: %v", c.endpoint, err)
		}
	}
	out := "PJSIP/8000"
	if _, err := r.admin.UpdateExtension(ctx, acmeAdmin, "acme", "748", ExtensionPatch{Endpoint: &out}, Precondition{}); apiCode(err) != "invalid_directory" {
		t.Errorf("admin moving an extension out of its endpoints: %v", err)
	}

	// Endpoints that leave an extension out, or overlap another tenant's: the directory's refusal.
	narrow := []string{"PJSIP/74*"}
	if _, err := r.admin.UpdateTenant(ctx, operator, "acme", TenantPatch{Endpoints: &narrow}, Precondition{}); apiCode(err) != "invalid_directory" ||
		!strings.Contains(problems(err), `tenants[acme].extensions[0].endpoint: endpoint "PJSIP/700" is not in the tenant's endpoints`) {
		t.Errorf("endpoints leaving 700 out: %v", err)
	}
	overlap := []string{"PJSIP/9*", "PJSIP/71*"}
	if _, err := r.admin.UpdateTenant(ctx, operator, "globex", TenantPatch{Endpoints: &overlap}, Precondition{}); apiCode(err) != "invalid_directory" ||
		!strings.Contains(problems(err), `tenants[globex].endpoints[1]: "PJSIP/71*" overlaps tenants[acme].endpoints[0]`) {
		t.Errorf("globex endpoints overlapping acme's: %v", err)
	}
	// Removing them: the operator's choice again.
	none := []string{}
	if v, err := r.admin.UpdateTenant(ctx, operator, "acme", TenantPatch{Endpoints: &none}, Precondition{}); err != nil || v.Value.Endpoints == nil || len(v.Value.Endpoints) != 0 {
		t.Fatalf("removing endpoints: %+v %v", v, err)
	}
	_, err = r.admin.CreateExtension(ctx, acmeAdmin, "acme", ExtensionView{Number: "749", Endpoint: "PJSIP/749"}, Precondition{})
	forbidden("admin creating once the endpoints are gone", err, "endpoint")

	// Each endpoints change is audited (directory_tenant_update), before and after.
	var changes []store.AuditEntry
	for _, e := range r.audit("acme") {
		if e.Action == AuditTenantUpdate {
			changes = append(changes, e)
		}
	}
	if len(changes) != 2 || changes[0].Actor != "operator:ops" ||
		!strings.Contains(changes[0].Extra["before"], `"endpoints":[]`) || !strings.Contains(changes[0].Extra["after"], `"endpoints":["PJSIP/7*"]`) ||
		!strings.Contains(changes[1].Extra["after"], `"endpoints":[]`) {
		t.Errorf("endpoints audit entries %+v", changes)
	}
}

// TestAdminDeleteExtensionRevokesKeys: deleting an extension revokes the API keys created
// through the API that act as it, each audited; a refused deletion revokes nothing; keys left
// over from an extension gone some other way are revoked when its number is created again.
func TestAdminDeleteExtensionRevokesKeys(t *testing.T) {
	r := newAdminRig(t)
	ctx := t.Context()
	mk := func(name, role, ext string) {
		t.Helper()
		if err := r.st.CreateAPIKey(ctx, store.APIKey{Name: name, Tenant: "acme", Role: role, Extension: ext, SHA256: config.SHA256Hex(name)}); err != nil {
			t.Fatal(err)
		}
	}
	names := func() []string {
		t.Helper()
		ks, err := r.st.APIKeys(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range ks {
			out = append(out, k.Name)
		}
		slices.Sort(out)
		return out
	}
	mk("desk-746", "agent", "746")
	mk("desk-746-b", "agent", "746")
	mk("desk-744", "agent", "744")
	mk("crm", "admin", "")

	// 744 is in a hunt group: refused, and its key stays.
	if _, err := r.admin.DeleteExtension(ctx, acmeAdmin, "acme", "744", Precondition{}); apiCode(err) != "extension_in_use" {
		t.Fatalf("delete a member's extension: %v", err)
	}
	if _, err := r.admin.DeleteMember(ctx, acmeAdmin, "acme", "sales", "746", Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.admin.DeleteExtension(ctx, acmeAdmin, "acme", "746", Precondition{}); err != nil {
		t.Fatal(err)
	}
	if got := names(); !slices.Equal(got, []string{"crm", "desk-744"}) {
		t.Errorf("keys after deleting 746: %q", got)
	}
	var trail []string
	for _, e := range r.audit("acme") {
		switch e.Action {
		case AuditExtensionDelete, AuditAPIKeyRevoke:
			trail = append(trail, e.Action+" "+e.Target+" "+e.Actor+" "+e.Extra["extension"]+" "+e.Extra["reason"])
		}
	}
	want := []string{
		AuditExtensionDelete + " 746 key:crm  ",
		AuditAPIKeyRevoke + " desk-746 key:crm 746 extension_removed",
		AuditAPIKeyRevoke + " desk-746-b key:crm 746 extension_removed",
	}
	slices.Sort(trail[1:])
	if !slices.Equal(trail, want) {
		t.Errorf("audited %q, want %q", trail, want)
	}

	// A key left over (its extension imported away, say): revoked when the number is created
	// again, by whoever creates it, in the tenant's trail.
	mk("ghost", "supervisor", "799")
	if _, err := r.admin.CreateExtension(ctx, operator, "acme", ExtensionView{Number: "799", Endpoint: "PJSIP/799", Role: "supervisor"}, Precondition{}); err != nil {
		t.Fatal(err)
	}
	if got := names(); slices.Contains(got, "ghost") {
		t.Errorf("keys after creating 799 again: %q", got)
	}
	es := r.audit("acme")
	if last := es[len(es)-1]; last.Action != AuditAPIKeyRevoke || last.Target != "ghost" || last.Actor != "operator:ops" {
		t.Errorf("last entry %+v, want the ghost key's revocation by the operator", last)
	}
	if v, err := r.st.VerifyAudit(ctx, "acme"); err != nil || !v.OK {
		t.Errorf("audit chain: %+v %v", v, err)
	}
}
