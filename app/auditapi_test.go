package app

import (
	"reflect"
	"testing"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

// TestCompleteAudit: the entry's own fields are filled from what its writer put in Extra, and a
// refused feature code carries the target and mode its dialed code names.
func TestCompleteAudit(t *testing.T) {
	cfg, err := config.Load("testdata/e2e.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := config.NewDirectory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := &App{dir: dir}
	for _, tc := range []struct {
		name string
		in   store.AuditEntry
		want store.AuditEntry
	}{
		{"refused feature code",
			store.AuditEntry{Tenant: "acme", Actor: "700", Action: "join", Outcome: "refused", Reason: "not_allowed",
				Extra: map[string]string{"dialed": "*91746"}},
			store.AuditEntry{Target: "746", Mode: "whisper", Trigger: "feature_code"}},
		{"other tenant's codes",
			store.AuditEntry{Tenant: "globex", Actor: "900", Action: "join", Extra: map[string]string{"dialed": "*23901"}},
			store.AuditEntry{Target: "901", Mode: "barge", Trigger: "feature_code"}},
		{"dtmf in an api session",
			store.AuditEntry{Tenant: "acme", Actor: "700", Action: "mode_change", Trigger: "api", KeyID: "crm",
				Extra: map[string]string{"from": "spy", "to": "barge", "via": "dtmf"}},
			store.AuditEntry{Mode: "barge", Trigger: "dtmf", KeyID: "crm"}},
		{"admin key help accept",
			store.AuditEntry{Tenant: "acme", Actor: "key:crm", Action: "help_accept",
				Extra: map[string]string{"help_request": "h-1", "call_id": "chan-1", "via": "api", "mode": "spy"}},
			store.AuditEntry{KeyID: "crm", HelpRequest: "h-1", Call: "chan-1", Trigger: "api", Mode: "spy"}},
		{"system",
			store.AuditEntry{Tenant: "acme", Actor: "earpiece", Action: "end", Target: "744"},
			store.AuditEntry{Target: "744", Trigger: "system"}},
	} {
		got := tc.in
		a.completeAudit(&got)
		g := store.AuditEntry{Target: got.Target, Mode: got.Mode, Trigger: got.Trigger, KeyID: got.KeyID,
			HelpRequest: got.HelpRequest, Call: got.Call}
		if !reflect.DeepEqual(g, tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.name, g, tc.want)
		}
	}
}
