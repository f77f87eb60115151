package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/earpiece/earpiece/config"
)

const opKey = "the-operator-key"

func operatorConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	y := `
operator_keys:
  - {name: ops, sha256: ` + config.SHA256Hex(opKey) + `}
` + extra + `
tenants:
  - id: acme
    extensions:
      - {number: "100", endpoint: PJSIP/100}
    api_keys:
      - {name: admin, role: admin, sha256: ` + config.SHA256Hex("acme-admin") + `}
`
	cfg, err := config.Decode(strings.NewReader(y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestOperatorKeys: operator keys authenticate as no tenant's; tenant keys never as an
// operator's; both stay apart in the directory document.
func TestOperatorKeys(t *testing.T) {
	cfg := operatorConfig(t, "")
	d, err := config.NewDirectory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := d.AuthenticateOperator(opKey); !ok || k.Name != "ops" {
		t.Errorf("AuthenticateOperator = %+v, %v", k, ok)
	}
	if _, _, ok := d.Authenticate(opKey); ok {
		t.Error("an operator key authenticates as a tenant's")
	}
	if _, ok := d.AuthenticateOperator("acme-admin"); ok {
		t.Error("a tenant key authenticates as the operator's")
	}
	if _, ok := d.AuthenticateOperator(""); ok {
		t.Error("the empty key authenticates")
	}
	doc, err := config.EncodeDirectory(cfg.Tenants)
	if err != nil || strings.Contains(string(doc), "operator") || strings.Contains(string(doc), config.SHA256Hex(opKey)) {
		t.Errorf("the directory document carries the operator key: %s %v", doc, err)
	}
	// The services part keeps them across directory changes.
	next, err := cfg.WithTenants(cfg.Tenants, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d2, err := config.NewDirectory(next); err != nil {
		t.Fatal(err)
	} else if _, ok := d2.AuthenticateOperator(opKey); !ok {
		t.Error("operator key lost by WithTenants")
	}
}

func TestOperatorKeysValidation(t *testing.T) {
	bad := operatorConfig(t, "")
	bad.OperatorKeys = append(bad.OperatorKeys,
		config.OperatorKey{Name: "ops", SHA256: config.SHA256Hex("other")},
		config.OperatorKey{Name: "", SHA256: "zz"},
		config.OperatorKey{Name: "reused", SHA256: config.SHA256Hex("acme-admin")},
	)
	bad.Tenants[0].APIKeys = append(bad.Tenants[0].APIKeys, config.APIKey{Name: "op", Role: config.RoleOperator, SHA256: config.SHA256Hex("x")})
	err := bad.Validate()
	for _, want := range []string{
		`operator_keys[1]: name "ops" already used by operator_keys[0]`,
		`operator_keys[2]: name: required`,
		`operator_keys[2]: sha256: want the key's SHA-256 as 64 hex digits`,
		`tenants[acme].api_keys[admin]: sha256: same key as operator_keys[reused]`,
		`tenants[acme].api_keys[op]: role operator: a tenant's key cannot be an operator's`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v\nwant %q", err, want)
		}
	}
	// Every problem is a FieldError; a clash says where the value was met first.
	fes := config.FieldErrors(err)
	if len(fes) != len(strings.Split(err.Error(), "\n")) {
		t.Errorf("%d field errors for %d problems", len(fes), len(strings.Split(err.Error(), "\n")))
	}
	for _, fe := range fes {
		if fe.Field == "tenants[acme].api_keys[admin]" && fe.Conflict != "operator_keys[reused]" {
			t.Errorf("clash %+v", fe)
		}
	}
	if c := bad.SampleCredentials(); len(c) != 0 {
		t.Errorf("SampleCredentials = %q", c)
	}
	bad.OperatorKeys[0].SHA256 = config.SHA256Hex("example-acme-crm-key")
	if c := bad.SampleCredentials(); len(c) != 1 || !strings.Contains(c[0], "operator_keys[ops]") {
		t.Errorf("SampleCredentials = %q", c)
	}
}

// TestFieldErrorsText: the structured errors keep check-config's text, and FieldErrors finds
// them however wrapped.
func TestFieldErrorsText(t *testing.T) {
	cfg := operatorConfig(t, "")
	cfg.Tenants[0].DialingRules.SpyPrefix = "*9"
	err := cfg.Validate()
	wrapped := errors.Join(errors.New("other"), errors.Join(err))
	fes := config.FieldErrors(wrapped)
	if len(fes) == 0 {
		t.Fatal("no field errors")
	}
	for _, fe := range fes {
		if fe.Field != "tenants[acme].dialing_rules" || !strings.HasPrefix(fe.Error(), "tenants[acme].dialing_rules: spy_prefix") {
			t.Errorf("%q: field %q", fe.Error(), fe.Field)
		}
	}
	if config.FieldErrors(nil) != nil {
		t.Error("FieldErrors(nil)")
	}
}
