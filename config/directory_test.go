package config_test

import (
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/earpiece/earpiece/config"
)

func sampleDirectory(t *testing.T) *config.Directory {
	t.Helper()
	d, err := config.NewDirectory(loadTestdata(t, "sample.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCanSupervise(t *testing.T) {
	d := sampleDirectory(t)
	for _, tc := range []struct {
		name                      string
		tenant, supervisor, agent string
		want                      error
		wantMsg                   string
	}{
		{"same group, supervision allowed", "acme", "700", "744", nil, ""},
		{"another member of the same group", "acme", "700", "745", nil, ""},
		{"a supervisor without the flag is supervisable", "acme", "700", "702", nil, ""},
		{"other group's supervisor", "acme", "701", "746", nil, ""},
		{"admin extension with the flag", "acme", "799", "746", nil, ""},
		{"other tenant, same numbers", "globex", "700", "744", nil, ""},

		{"same group without the flag", "acme", "702", "744", config.ErrNotAllowed,
			`tenant "acme": "702" supervising "744": no shared hunt group where the supervisor has supervision allowed`},
		{"different groups", "acme", "700", "746", config.ErrNotAllowed, ""},
		{"flag in another group only", "acme", "701", "744", config.ErrNotAllowed, ""},
		{"admin extension outside its group", "acme", "799", "744", config.ErrNotAllowed, ""},
		{"nobody supervises the supervisor with the flag", "acme", "702", "700", config.ErrNotAllowed, ""},
		{"self", "acme", "700", "700", config.ErrSelf,
			`tenant "acme": extension "700": cannot supervise oneself`},
		{"disabled tenant", "initech", "101", "100", config.ErrTenantDisabled,
			`tenant "initech": supervision is not enabled for the tenant`},
		{"other tenant's extension", "acme", "700", "810", config.ErrUnknownExtension,
			`tenant "acme": agent "810": unknown extension`},
		{"other tenant's supervisor", "globex", "701", "744", config.ErrUnknownExtension,
			`tenant "globex": supervisor "701": unknown extension`},
		{"agent role trying", "acme", "744", "745", config.ErrNotSupervisor,
			`tenant "acme": supervisor "744" has role agent: role may not supervise`},
		{"agent role trying itself", "acme", "744", "744", config.ErrNotSupervisor, ""},
		{"unknown agent", "acme", "700", "799999", config.ErrUnknownExtension, ""},
		{"unknown tenant", "umbrella", "700", "744", config.ErrUnknownTenant,
			`tenant "umbrella": unknown tenant`},
		{"empty tenant", "", "700", "744", config.ErrUnknownTenant, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := d.CanSupervise(tc.tenant, tc.supervisor, tc.agent)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("CanSupervise(%s, %s, %s) = %v, want nil", tc.tenant, tc.supervisor, tc.agent, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("CanSupervise(%s, %s, %s) = %v, want %v", tc.tenant, tc.supervisor, tc.agent, err, tc.want)
			}
			if tc.wantMsg != "" && err.Error() != tc.wantMsg {
				t.Errorf("message = %q, want %q", err, tc.wantMsg)
			}
		})
	}
}

func TestCanSuperviseAsAdmin(t *testing.T) {
	d := sampleDirectory(t)
	for _, tc := range []struct {
		tenant, agent string
		want          error
	}{
		{"acme", "744", nil},
		{"acme", "746", nil}, // no hunt group needed
		{"globex", "810", nil},
		{"acme", "810", config.ErrUnknownExtension}, // globex's
		{"initech", "100", config.ErrTenantDisabled},
		{"umbrella", "744", config.ErrUnknownTenant},
	} {
		err := d.CanSuperviseAsAdmin(tc.tenant, tc.agent)
		if (tc.want == nil) != (err == nil) || !errors.Is(err, tc.want) {
			t.Errorf("CanSuperviseAsAdmin(%s, %s) = %v, want %v", tc.tenant, tc.agent, err, tc.want)
		}
	}
}

func TestTenantByEndpoint(t *testing.T) {
	d := sampleDirectory(t)
	for _, tc := range []struct {
		endpoint, tenant, number string
	}{
		{"PJSIP/744", "acme", "744"},
		{"pjsip/744", "acme", "744"},
		{"PjSip/700", "acme", "700"},
		{"PJSIP/globex-744", "globex", "744"},
		{"sip/initech-100", "initech", "100"},
		{"PJSIP/GLOBEX-744", "", ""}, // resources are case-sensitive
		{"SIP/744", "", ""},          // another technology is another device
		{"PJSIP/744-00000012", "", ""},
		{"PJSIP/", "", ""},
		{"744", "", ""},
		{"", "", ""},
	} {
		tn, ext, ok := d.TenantByEndpoint(tc.endpoint)
		if tc.tenant == "" {
			if ok {
				t.Errorf("TenantByEndpoint(%q) = %s/%s, want not found", tc.endpoint, tn.ID, ext.Number)
			}
			continue
		}
		if !ok || tn.ID != tc.tenant || ext.Number != tc.number {
			t.Errorf("TenantByEndpoint(%q) = %v, %v, %v; want %s/%s", tc.endpoint, tn, ext, ok, tc.tenant, tc.number)
		}
	}
}

func TestLookups(t *testing.T) {
	d := sampleDirectory(t)
	if tn, ok := d.Tenant("globex"); !ok || tn.Name != "Globex (migrated from a legacy PBX)" {
		t.Errorf("Tenant(globex) = %v, %v", tn, ok)
	}
	if _, ok := d.Tenant("umbrella"); ok {
		t.Error("Tenant(umbrella) found")
	}
	if e, ok := d.Extension("globex", "744"); !ok || e.Endpoint != "PJSIP/globex-744" {
		t.Errorf("Extension(globex, 744) = %v, %v", e, ok)
	}
	if _, ok := d.Extension("globex", "745"); ok {
		t.Error("Extension(globex, 745) found: acme's extension leaked into globex")
	}
	if _, ok := d.Extension("umbrella", "744"); ok {
		t.Error("Extension(umbrella, 744) found")
	}
	var ids []string
	for _, tn := range d.Tenants() {
		ids = append(ids, tn.ID)
	}
	if !slices.Equal(ids, []string{"acme", "globex", "initech"}) {
		t.Errorf("Tenants() = %v", ids)
	}
}

func TestAuthenticate(t *testing.T) {
	d := sampleDirectory(t)
	for _, tc := range []struct {
		key, tenant, name string
		role              config.Role
	}{
		{"example-acme-crm-key", "acme", "crm", config.RoleAdmin},
		{"example-acme-adam-key", "acme", "adam-crm", config.RoleSupervisor},
		{"example-acme-john-key", "acme", "john-desk", config.RoleAgent},
		{"example-globex-admin-key", "globex", "admin", config.RoleAdmin},
		{"example-acme-crm-key ", "", "", ""},
		{"", "", "", ""},
		{config.SHA256Hex("example-acme-crm-key"), "", "", ""}, // the stored hash is not a key
	} {
		tn, k, ok := d.Authenticate(tc.key)
		if tc.tenant == "" {
			if ok {
				t.Errorf("Authenticate(%q) = %s/%s, want not found", tc.key, tn.ID, k.Name)
			}
			continue
		}
		if !ok || tn.ID != tc.tenant || k.Name != tc.name || k.Role != tc.role {
			t.Errorf("Authenticate(%q) = %v, %v, %v", tc.key, tn, k, ok)
		}
	}
}

func TestSupervisorsAndSupervisees(t *testing.T) {
	d := sampleDirectory(t)
	for _, tc := range []struct {
		tenant, ext      string
		supervisors, sup []string
	}{
		{"acme", "744", []string{"700"}, nil},
		{"acme", "746", []string{"701", "799"}, nil},
		{"acme", "799", []string{"701"}, []string{"701", "746"}},
		{"acme", "700", nil, []string{"702", "744", "745"}},
		{"acme", "702", []string{"700"}, nil},
		{"globex", "744", []string{"700"}, nil},
		{"globex", "700", nil, []string{"744", "810"}},
		{"umbrella", "744", nil, nil},
	} {
		if got := d.Supervisors(tc.tenant, tc.ext); !slices.Equal(got, tc.supervisors) {
			t.Errorf("Supervisors(%s, %s) = %v, want %v", tc.tenant, tc.ext, got, tc.supervisors)
		}
		if got := d.Supervisees(tc.tenant, tc.ext); !slices.Equal(got, tc.sup) {
			t.Errorf("Supervisees(%s, %s) = %v, want %v", tc.tenant, tc.ext, got, tc.sup)
		}
	}
}

func TestNewDirectoryRefusesInvalidConfig(t *testing.T) {
	_, err := config.NewDirectory(loadTestdata(t, "invalid.yaml"))
	if err == nil {
		t.Fatal("NewDirectory(invalid) = nil error")
	}
}

// TestDirectoryIsACopy checks that changing the Config afterwards cannot
// change the Directory's answers.
func TestDirectoryIsACopy(t *testing.T) {
	cfg := loadTestdata(t, "sample.yaml")
	d, err := config.NewDirectory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Tenants[0].SupervisionEnabled = false
	cfg.Tenants[0].Extensions[0].Endpoint = "PJSIP/changed"
	cfg.Tenants[0].HuntGroups[0].Members[3].SupervisionAllowed = true
	if err := d.CanSupervise("acme", "700", "744"); err != nil {
		t.Errorf("after editing cfg: %v", err)
	}
	if err := d.CanSupervise("acme", "702", "744"); !errors.Is(err, config.ErrNotAllowed) {
		t.Errorf("after editing cfg: %v", err)
	}
	if e, ok := d.Extension("acme", "744"); !ok || e.Endpoint != "PJSIP/744" {
		t.Errorf("after editing cfg: %v", e)
	}
}

// TestDirectoryConcurrentReads is meant for go test -race.
func TestDirectoryConcurrentReads(t *testing.T) {
	d := sampleDirectory(t)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				_ = d.CanSupervise("acme", "700", "744")
				_, _, _ = d.TenantByEndpoint("pjsip/745")
				_, _, _ = d.Authenticate("example-acme-crm-key")
				_ = d.Supervisors("acme", "746")
				_ = d.Tenants()
			}
		}()
	}
	wg.Wait()
}
