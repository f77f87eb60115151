package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
)

func TestLoadSample(t *testing.T) {
	cfg := loadTestdata(t, "sample.yaml")
	if got, want := cfg.ARI, (config.ARI{URL: "http://127.0.0.1:8088/ari", User: "earpiece", App: "earpiece"}); got != want {
		t.Errorf("ARI = %+v, want %+v", got, want)
	}
	if cfg.Redis.URL != "redis://127.0.0.1:6379/0" || cfg.HTTP.Listen != "127.0.0.1:8080" {
		t.Errorf("Redis, HTTP = %+v, %+v", cfg.Redis, cfg.HTTP)
	}
	if len(cfg.Tenants) != 3 {
		t.Fatalf("%d tenants, want 3", len(cfg.Tenants))
	}
	acme, globex, initech := cfg.Tenants[0], cfg.Tenants[1], cfg.Tenants[2]
	if acme.ID != "acme" || !acme.SupervisionEnabled || acme.Announce != config.AnnounceNone {
		t.Errorf("acme = %+v", acme)
	}
	if acme.DialingRules != dialplan.DefaultRules() {
		t.Errorf("acme rules = %+v, want defaults", acme.DialingRules)
	}
	if want := (config.Extension{Number: "700", Endpoint: "PJSIP/700", Name: "Adam", Role: config.RoleSupervisor}); acme.Extensions[3] != want {
		t.Errorf("acme.extensions[3] = %+v, want %+v", acme.Extensions[3], want)
	}
	if m := acme.HuntGroups[0].Members[2]; m != (config.Member{Extension: "700", SupervisionAllowed: true}) {
		t.Errorf("support member 2 = %+v", m)
	}
	if k := acme.APIKeys[1]; k.Role != config.RoleSupervisor || k.Extension != "700" || k.SHA256 != config.SHA256Hex("example-acme-adam-key") {
		t.Errorf("acme.api_keys[1] = %+v", k)
	}
	if globex.Announce != config.AnnounceBeep || globex.DialingRules.BargePrefix != "*23" || globex.DialingRules.BargeDTMF != "3" {
		t.Errorf("globex = %+v", globex)
	}
	if globex.Extensions[0].Role != config.RoleAgent {
		t.Errorf("role default: globex.extensions[0].role = %q, want agent", globex.Extensions[0].Role)
	}
	wantInitech := dialplan.DefaultRules()
	wantInitech.SpyPrefix = "#61"
	if initech.SupervisionEnabled || initech.DialingRules != wantInitech || initech.Announce != config.AnnounceNone {
		t.Errorf("initech = %+v", initech)
	}
}

func TestLoadIsStrict(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", "ari: {url: http://x/ari}\nredsi: {url: redis://x}\n", "field redsi not found"},
		{"unknown tenant key", "tenants:\n  - id: a\n    supervision_enabeld: true\n", "field supervision_enabeld not found"},
		{"unknown member key", "tenants:\n  - id: a\n    hunt_groups:\n      - name: g\n        members:\n          - {extension: \"1\", supervision: true}\n", "field supervision not found"},
		{"unknown rules key", "tenants:\n  - id: a\n    dialing_rules: {spy: \"*90\"}\n", "field spy not found"},
		{"wrong type", "tenants:\n  - id: a\n    supervision_enabled: yes-please\n", "cannot unmarshal"},
		{"not a mapping", "- 1\n- 2\n", "cannot unmarshal"},
		{"two documents", "http: {listen: ':1'}\n---\nhttp: {listen: ':2'}\n", "more than one YAML document"},
		{"empty", "", "no YAML document"},
		{"only comments", "# nothing\n", "no YAML document"},
		{"syntax", "tenants: [\n", "yaml:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "earpiece.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(path)
			if err == nil {
				t.Fatalf("Load() = %+v, want error containing %q", cfg, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("Load() error = %v, want it to contain %q and the path", err, tc.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := config.Load(path)
	if !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("Load(missing) = %v, want a not-exist error", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestDecodeMinimalAppliesDefaults(t *testing.T) {
	cfg, err := config.Decode(strings.NewReader("tenants:\n  - id: solo\n    extensions:\n      - {number: \"1\", endpoint: PJSIP/1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := config.Config{
		ARI:   config.ARI{URL: config.DefaultARIURL, User: config.DefaultARIUser, App: config.DefaultARIApp},
		Redis: config.Redis{URL: config.DefaultRedisURL},
		HTTP:  config.HTTP{Listen: config.DefaultHTTPListen},
	}
	if cfg.ARI != want.ARI || cfg.Redis != want.Redis || cfg.HTTP != want.HTTP {
		t.Errorf("defaults = %+v %+v %+v", cfg.ARI, cfg.Redis, cfg.HTTP)
	}
	tn := cfg.Tenants[0]
	if tn.Announce != config.AnnounceNone || tn.DialingRules != dialplan.DefaultRules() || tn.Extensions[0].Role != config.RoleAgent {
		t.Errorf("tenant defaults = %+v", tn)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("minimal config: %v", err)
	}
}

func TestApplyEnv(t *testing.T) {
	cfg := loadTestdata(t, "sample.yaml")
	env := map[string]string{
		"EARPIECE_ARI_URL":        "https://pbx.example:8089/ari",
		"EARPIECE_ARI_USER":       "ops",
		"EARPIECE_ARI_PASSWORD":   "s3cret",
		"EARPIECE_ARI_APP":        "earpiece-b",
		"EARPIECE_REDIS_URL":      "rediss://redis.example:6380/1",
		"EARPIECE_HTTP_LISTEN":    ":9090",
		"EARPIECE_HTTP_PUBLISHED": "127.0.0.1",
		"EARPIECE_AUDIT_KEY":      "audit-checkpoint-key",
		"EARPIECE_JOURNAL_DIR":    "/var/lib/earpiece/journal",
		"EARPIECE_DIALPLAN_FILE":  "/shared/asterisk/extensions_earpiece.conf",
		"EARPIECE_FEATURES_FILE":  "/shared/asterisk/features_earpiece.conf",
		// The secrets sample.yaml's *_env settings name.
		"EARPIECE_GLOBEX_ADMIN_SIGNING_SECRET": "globex-signing-secret-from-the-environment",
		"EARPIECE_GLOBEX_WEBHOOK_SECRET":       "globex-webhook-secret",
	}
	var asked []string
	cfg.ApplyEnv(func(k string) (string, bool) {
		asked = append(asked, k)
		v, ok := env[k]
		return v, ok
	})
	want := config.ARI{URL: "https://pbx.example:8089/ari", User: "ops", Password: "s3cret", App: "earpiece-b"}
	if cfg.ARI != want || cfg.Redis.URL != "rediss://redis.example:6380/1" || cfg.Redis.AuditKey != "audit-checkpoint-key" || cfg.HTTP.Listen != ":9090" || cfg.HTTP.Published != "127.0.0.1" {
		t.Errorf("after ApplyEnv: %+v %+v %+v", cfg.ARI, cfg.Redis, cfg.HTTP)
	}
	if cfg.Redis.JournalDir != "/var/lib/earpiece/journal" {
		t.Errorf("redis.journal_dir after ApplyEnv: %q", cfg.Redis.JournalDir)
	}
	if cfg.Dialplan != (config.Dialplan{ExtensionsFile: "/shared/asterisk/extensions_earpiece.conf", FeaturesFile: "/shared/asterisk/features_earpiece.conf"}) {
		t.Errorf("after ApplyEnv: %+v", cfg.Dialplan)
	}
	if got := cfg.Tenants[1].APIKeys[0].SigningSecret; got != env["EARPIECE_GLOBEX_ADMIN_SIGNING_SECRET"] {
		t.Errorf("globex admin signing secret = %q, want the environment's", got)
	}
	if got := cfg.Tenants[1].Webhooks[0].Secret; got != env["EARPIECE_GLOBEX_WEBHOOK_SECRET"] {
		t.Errorf("globex webhook secret = %q, want the environment's", got)
	}
	if len(asked) != len(env) {
		t.Errorf("looked up %v, want exactly the %d variables", asked, len(env))
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate after env: %v", err)
	}
}

func TestApplyEnvIgnoresUnsetAndEmpty(t *testing.T) {
	cfg := loadTestdata(t, "sample.yaml")
	before := *cfg
	cfg.ApplyEnv(func(k string) (string, bool) {
		if k == config.EnvARIURL {
			return "", true // set but empty, e.g. an unset compose interpolation
		}
		return "", false
	})
	if cfg.ARI != before.ARI || cfg.Redis != before.Redis || cfg.HTTP != before.HTTP {
		t.Errorf("ApplyEnv changed settings: %+v -> %+v", before.ARI, cfg.ARI)
	}
}

func TestRole(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    config.Role
		wantErr bool
	}{
		{"agent", config.RoleAgent, false},
		{"Supervisor", config.RoleSupervisor, false},
		{" admin ", config.RoleAdmin, false},
		{"manager", "", true},
		{"", "", true},
	} {
		got, err := config.ParseRole(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ParseRole(%q) = %q, %v", tc.in, got, err)
		}
	}
	if config.RoleAgent.MaySupervise() || !config.RoleSupervisor.MaySupervise() || !config.RoleAdmin.MaySupervise() || config.Role("x").MaySupervise() {
		t.Error("MaySupervise wrong")
	}
	var r config.Role
	if err := r.UnmarshalText([]byte("BOSS")); err != nil || r != "boss" || r.Valid() {
		t.Errorf("UnmarshalText(BOSS) = %q, %v; want kept for Validate", r, err)
	}
}
