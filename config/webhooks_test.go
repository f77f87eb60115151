package config

import (
	"strings"
	"testing"
)

func TestWebhooksValidateAndEnv(t *testing.T) {
	cfg, err := Decode(strings.NewReader(`
tenants:
  - id: acme
    supervision_enabled: true
    extensions: [{number: "700", endpoint: PJSIP/700, role: supervisor}]
    webhooks:
      - {url: "https://crm.example/hook", secret_env: ACME_HOOK_SECRET}
      - {url: "ftp://crm.example/hook", secret: s}
      - {url: "", secret: s}
`))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	for _, want := range []string{
		`tenants[acme].webhooks[0]: secret: required`,
		`tenants[acme].webhooks[1].url: "ftp://crm.example/hook": scheme must be http or https`,
		`tenants[acme].webhooks[2].url: required`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing problem %q in:\n%v", want, err)
		}
	}
	cfg.ApplyEnv(func(k string) (string, bool) {
		if k == "ACME_HOOK_SECRET" {
			return "from-env", true
		}
		return "", false
	})
	if got := cfg.Tenants[0].Webhooks[0].Secret; got != "from-env" {
		t.Errorf("secret from env = %q", got)
	}
	if err := cfg.Validate(); err == nil || strings.Contains(err.Error(), "webhooks[0]") {
		t.Errorf("after ApplyEnv webhooks[0] should be valid: %v", err)
	}
}
