package config_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/earpiece/earpiece/config"
)

func TestHelpPolicy(t *testing.T) {
	cfg := loadTestdata(t, "sample.yaml")
	acme, globex := cfg.Tenants[0], cfg.Tenants[1]
	if want := (config.HelpPolicy{EscalateAfter: 90 * time.Second, ExpireAfter: 5 * time.Minute}); acme.HelpRequests != want {
		t.Errorf("acme help_requests = %+v, want %+v", acme.HelpRequests, want)
	}
	if want := (config.HelpPolicy{EscalateAfter: config.DefaultHelpEscalateAfter, ExpireAfter: config.DefaultHelpExpireAfter}); globex.HelpRequests != want {
		t.Errorf("globex help_requests (defaults) = %+v, want %+v", globex.HelpRequests, want)
	}

	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{"one field, the other default", "{escalate_after: 30s}", nil},
		{"negative", "{escalate_after: -1s, expire_after: 5m}", []string{
			"tenants[acme].help_requests.escalate_after: -1s: want 1s to 24h0m0s"}},
		{"too long", "{expire_after: 48h}", []string{
			"tenants[acme].help_requests.expire_after: 48h0m0s: want 1s to 24h0m0s"}},
		{"expiry before escalation", "{escalate_after: 5m, expire_after: 1m}", []string{
			"tenants[acme].help_requests: expire_after (1m0s) must be longer than escalate_after (5m0s)"}},
		{"equal", "{escalate_after: 5m, expire_after: 5m}", []string{
			"tenants[acme].help_requests: expire_after (5m0s) must be longer than escalate_after (5m0s)"}},
		{"sub-second", "{escalate_after: 10ms, expire_after: 1m}", []string{
			"tenants[acme].help_requests.escalate_after: 10ms: want 1s to 24h0m0s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "ari: {password: x}\ntenants:\n  - id: acme\n    help_requests: " + tc.yaml + "\n"
			cfg, err := config.Decode(strings.NewReader(src))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range messages(cfg.Validate()) {
				if strings.Contains(m, "help_requests") {
					got = append(got, m)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}
