package app

import (
	"context"
	"slices"
	"testing"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

func TestFastAdminAudit(t *testing.T) {
	r := newFastRig(t)
	p := Principal{Tenant: "acme", Role: config.RoleAdmin, KeyName: "crm"}
	if err := r.app.AuditAdmin(context.Background(), p, AuditAPIKeyCreate, "crm-2", map[string]string{"role": "supervisor"}); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(r.audit("acme"), func(e store.AuditEntry) bool {
		return e.Action == AuditAPIKeyCreate && e.Actor == "key:crm" && e.KeyID == "crm" && e.Target == "crm-2" && e.Outcome == "allowed" && e.Extra["role"] == "supervisor"
	}) {
		t.Errorf("no api_key_create entry in %+v", r.audit("acme"))
	}
}
