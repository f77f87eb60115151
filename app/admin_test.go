package app

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/internal/redistest"
	"github.com/earpiece/earpiece/store"
)

var (
	operator   = Principal{Role: config.RoleOperator, KeyName: "ops"}
	acmeAdmin  = Principal{Tenant: "acme", Role: config.RoleAdmin, KeyName: "crm"}
	globexAdmn = Principal{Tenant: "globex", Role: config.RoleAdmin, KeyName: "gcrm"}
)

// adminRig is the administration over a real Redis: the e2e directory imported, the App
// auditing (not running: no Asterisk here).
type adminRig struct {
	t     *testing.T
	st    *store.Store
	base  *config.Config
	sync  *DirectorySync
	app   *App
	admin *Admin
}

func newAdminRig(t *testing.T) *adminRig {
	t.Helper()
	rs := redistest.Start(t)
	st := store.New(rs.Client(t), store.Options{})
	cfg, err := config.Load("testdata/e2e.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sync := NewDirectorySync(st, cfg, nil, zerolog.Nop())
	if _, err := sync.Import(t.Context(), cfg.Tenants, "file", false); err != nil {
		t.Fatal(err)
	}
	a := New(Config{Instance: "admin-test", Logger: zerolog.Nop()}, nil, st, sync.Live())
	return &adminRig{t: t, st: st, base: cfg, sync: sync, app: a, admin: NewAdmin(sync, a, st, zerolog.Nop())}
}

func (r *adminRig) audit(tenant string) []store.AuditEntry {
	r.t.Helper()
	es, err := r.st.Audit(context.Background(), tenant, time.Time{}, time.Now().Add(time.Minute), 1000)
	if err != nil {
		r.t.Fatal(err)
	}
	return es
}

// giveEndpoints sets tenant's endpoints, as the operator's file would.
func (r *adminRig) giveEndpoints(tenant string, patterns ...string) {
	r.t.Helper()
	if _, err := r.sync.Update(r.t.Context(), "file", func(ts []config.Tenant) ([]config.Tenant, error) {
		for i := range ts {
			if ts[i].ID == tenant {
				ts[i].Endpoints = patterns
			}
		}
		return ts, nil
	}); err != nil {
		r.t.Fatal(err)
	}
}

// run starts a second instance's DirectorySync on the same Redis, stopped at the test's end.
func (r *adminRig) instance() *DirectorySync {
	r.t.Helper()
	other := NewDirectorySync(r.st, r.base, nil, zerolog.Nop())
	if err := other.Load(r.t.Context()); err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); other.Run(ctx) }()
	r.t.Cleanup(func() { cancel(); <-done })
	return other
}

// TestAdminAuditEntries: each change is in the tenant's audit trail, with its actor and key,
// the resource before and after as JSON, and no secret; the chain still verifies.
func TestAdminAuditEntries(t *testing.T) {
	r := newAdminRig(t)
	ctx := t.Context()
	r.giveEndpoints("acme", "PJSIP/7*") // so that acme's admin may choose 747
	off := false
	if _, err := r.admin.UpdateTenant(ctx, operator, "acme", TenantPatch{SupervisionEnabled: &off}, Precondition{}); err != nil {
		t.Fatal(err)
	}
	const secret = "whsec_c2VjcmV0LXZhbHVlLTEyMzQ1Ng=="
	if _, err := r.admin.CreateWebhook(ctx, acmeAdmin, "acme", WebhookCreate{URL: "https://crm.acme.example/in", Secret: secret}, Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.admin.CreateExtension(ctx, acmeAdmin, "acme", ExtensionView{Number: "747", Endpoint: "PJSIP/747", Name: "Mia"}, Precondition{}); err != nil {
		t.Fatal(err)
	}
	// Refused changes leave no entry.
	if _, err := r.admin.DeleteExtension(ctx, acmeAdmin, "acme", "744", Precondition{}); apiCode(err) != "extension_in_use" {
		t.Fatalf("delete a member's extension: %v", err)
	}

	es := r.audit("acme")
	var got []string
	for _, e := range es {
		if strings.Contains(e.Action, "directory_") && e.Action != AuditDirectoryImport || strings.HasPrefix(e.Action, "tenant_") {
			got = append(got, e.Action)
		}
		if strings.Contains(e.Extra["after"]+e.Extra["before"], "c2VjcmV0") {
			t.Errorf("entry %s carries the webhook secret: %v", e.Action, e.Extra)
		}
	}
	want := []string{AuditSupervisionOff, AuditWebhookCreate, AuditExtensionCreate}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("admin entries %v, want %v", got, want)
	}
	find := func(action string) store.AuditEntry {
		for _, e := range es {
			if e.Action == action {
				return e
			}
		}
		t.Fatalf("no %s", action)
		return store.AuditEntry{}
	}
	off1 := find(AuditSupervisionOff)
	var before, after TenantView
	if err := json.Unmarshal([]byte(off1.Extra["before"]), &before); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(off1.Extra["after"]), &after); err != nil {
		t.Fatal(err)
	}
	if off1.Actor != "operator:ops" || off1.KeyID != "ops" || off1.Target != "acme" || !before.SupervisionEnabled || after.SupervisionEnabled {
		t.Errorf("supervision off entry %+v", off1)
	}
	ext := find(AuditExtensionCreate)
	if ext.Actor != "key:crm" || ext.Target != "747" || ext.Extra["before"] != "" || !strings.Contains(ext.Extra["after"], `"endpoint":"PJSIP/747"`) || !strings.Contains(ext.Extra["after"], `"role":"agent"`) {
		t.Errorf("extension create entry %+v", ext)
	}
	v, err := r.st.VerifyAudit(ctx, "acme")
	if err != nil || !v.OK {
		t.Errorf("audit chain: %+v %v", v, err)
	}
}

// TestAdminOperatorSwitch: the operator's switch off makes the tenant's supervision refused
// (CanSupervise: ErrTenantDisabled); a tenant admin may not touch it.
func TestAdminOperatorSwitch(t *testing.T) {
	r := newAdminRig(t)
	ctx := t.Context()
	if err := r.sync.Live().Current().CanSupervise("acme", "700", "744"); err != nil {
		t.Fatalf("before: %v", err)
	}
	off := false
	if _, err := r.admin.UpdateTenant(ctx, acmeAdmin, "acme", TenantPatch{SupervisionEnabled: &off}, Precondition{}); !errors.Is(err, ErrForbidden) || apiCode(err) != "operator_only" {
		t.Fatalf("admin switching supervision: %v", err)
	}
	if err := r.sync.Live().Current().CanSupervise("acme", "700", "744"); err != nil {
		t.Fatalf("after a refused switch: %v", err)
	}
	v, err := r.admin.UpdateTenant(ctx, operator, "acme", TenantPatch{SupervisionEnabled: &off}, Precondition{})
	if err != nil || v.Value.SupervisionEnabled {
		t.Fatalf("operator off: %+v %v", v, err)
	}
	if err := r.sync.Live().Current().CanSupervise("acme", "700", "744"); !errors.Is(err, config.ErrTenantDisabled) {
		t.Errorf("CanSupervise after the operator's off = %v, want ErrTenantDisabled", err)
	}
	on := true
	if _, err := r.admin.UpdateTenant(ctx, operator, "acme", TenantPatch{SupervisionEnabled: &on}, Precondition{}); err != nil {
		t.Fatal(err)
	}
	if err := r.sync.Live().Current().CanSupervise("acme", "700", "744"); err != nil {
		t.Errorf("after on: %v", err)
	}
}

// TestAdminTwoInstances: a change made through one instance's DirectorySync is in force on
// another instance (its own DirectorySync on the same Redis) within a second.
func TestAdminTwoInstances(t *testing.T) {
	r := newAdminRig(t)
	other := r.instance()
	for i, change := range []func() error{
		func() error {
			name := "Johnny"
			_, err := r.admin.UpdateExtension(t.Context(), acmeAdmin, "acme", "744", ExtensionPatch{Name: &name}, Precondition{})
			return err
		},
		func() error {
			off := false
			_, err := r.admin.UpdateTenant(t.Context(), operator, "acme", TenantPatch{SupervisionEnabled: &off}, Precondition{})
			return err
		},
	} {
		start := time.Now()
		if err := change(); err != nil {
			t.Fatal(err)
		}
		want := r.sync.Live().Rev()
		for other.Live().Rev() != want {
			if time.Since(start) > time.Second {
				t.Fatalf("change %d: the other instance is at revision %d after 1 s, want %d", i, other.Live().Rev(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("change %d in force on the other instance after %v", i, time.Since(start))
	}
	if e, _ := other.Live().Current().Extension("acme", "744"); e.Name != "Johnny" {
		t.Errorf("other instance: 744 is %q", e.Name)
	}
	if err := other.Live().Current().CanSupervise("acme", "700", "744"); !errors.Is(err, config.ErrTenantDisabled) {
		t.Errorf("other instance: CanSupervise = %v, want ErrTenantDisabled", err)
	}
}

// TestAdminScope: a tenant admin finds no other tenant, exactly as one that does not exist;
// agents and supervisors may read nothing; the operator reads everything.
func TestAdminScope(t *testing.T) {
	r := newAdminRig(t)
	ctx := t.Context()
	_, errOther := r.admin.Extensions(ctx, globexAdmn, "acme")
	_, errNone := r.admin.Extensions(ctx, globexAdmn, "nope")
	if !errors.Is(errOther, ErrNotFound) || !errors.Is(errNone, ErrNotFound) || apiCode(errOther) != apiCode(errNone) {
		t.Errorf("another tenant: %v; none: %v", errOther, errNone)
	}
	if errOther.Error() != strings.ReplaceAll(errNone.Error(), "nope", "acme") {
		t.Errorf("another tenant's answer differs from a missing one's: %q, %q", errOther, errNone)
	}
	for _, p := range []Principal{
		{Tenant: "acme", Role: config.RoleSupervisor, Extension: "700", KeyName: "s"},
		{Tenant: "acme", Role: config.RoleAgent, Extension: "744", KeyName: "a"},
	} {
		if _, err := r.admin.Tenant(ctx, p, "acme"); !errors.Is(err, ErrForbidden) {
			t.Errorf("%s reads its tenant: %v", p.Role, err)
		}
		if _, err := r.admin.Tenants(ctx, p); !errors.Is(err, ErrForbidden) {
			t.Errorf("%s lists tenants: %v", p.Role, err)
		}
	}
	l, err := r.admin.Tenants(ctx, operator)
	if err != nil || len(l.Value.Tenants) != 2 {
		t.Errorf("operator's list %+v %v", l, err)
	}
	l, err = r.admin.Tenants(ctx, acmeAdmin)
	if err != nil || len(l.Value.Tenants) != 1 || l.Value.Tenants[0].ID != "acme" {
		t.Errorf("acme admin's list %+v %v", l, err)
	}
	// webhooks: secret_env and allow_local are the operator's.
	if _, err := r.admin.CreateWebhook(ctx, acmeAdmin, "acme", WebhookCreate{URL: "https://x.example/", SecretEnv: "HOME"}, Precondition{}); apiCode(err) != "operator_only" {
		t.Errorf("admin naming an environment variable: %v", err)
	}
	if _, err := r.admin.CreateWebhook(ctx, acmeAdmin, "acme", WebhookCreate{URL: "http://169.254.169.254/", Secret: "x", AllowLocal: true}, Precondition{}); apiCode(err) != "operator_only" {
		t.Errorf("admin allowing local addresses: %v", err)
	}
	// Without allow_local, the metadata address is the directory's refusal.
	if _, err := r.admin.CreateWebhook(ctx, acmeAdmin, "acme", WebhookCreate{URL: "http://169.254.169.254/", Secret: "x"}, Precondition{}); apiCode(err) != "invalid_directory" {
		t.Errorf("webhook to the metadata service: %v", err)
	}
}

// TestProblemField: the field a validation message is about.
func TestProblemField(t *testing.T) {
	for _, c := range [][3]string{
		{"tenants[a].dialing_rules", `spy_prefix "*9" is a prefix of whisper_prefix "*91": conflict`, "tenants[a].dialing_rules.spy_prefix"},
		{"tenants[a].dialing_rules", `help_raise_dtmf "1": want...`, "tenants[a].dialing_rules.help_raise_dtmf"},
		{"tenants[a].extensions[2]", `endpoint: required`, "tenants[a].extensions[2].endpoint"},
		{"tenants[a].hunt_groups[g].members[1]", `unknown extension "799"`, "tenants[a].hunt_groups[g].members[1]"},
		{"tenants[a].webhooks[0].url", `url: bad`, "tenants[a].webhooks[0].url"},
		{"tenants[a]", `name`, "tenants[a]"},
		{"tenants[a]", ``, "tenants[a]"},
		{"tenants[a]", `idx: x`, "tenants[a]"},
	} {
		if got := problemField(c[0], c[1]); got != c[2] {
			t.Errorf("problemField(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}

// FuzzParseHelpPolicy: the help policy's durations are outside input; they parse to positive
// durations or to a field error, never a panic.
func FuzzParseHelpPolicy(f *testing.F) {
	for _, s := range [][2]string{{"2m", "10m"}, {"", ""}, {"-1s", "x"}, {"1h1h", "9223372036854775807ns"}, {" 5s ", "0"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, esc, exp string) {
		h, err := parseHelpPolicy(HelpPolicyView{EscalateAfter: esc, ExpireAfter: exp})
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Field == "" || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not a field error", err)
			}
			return
		}
		if h.EscalateAfter <= 0 || h.ExpireAfter <= 0 {
			t.Fatalf("%q, %q parsed as %+v", esc, exp, h)
		}
	})
}
