package config_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func loadTestdata(t *testing.T, name string) *config.Config {
	t.Helper()
	cfg, err := config.Load(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ApplyEnv(sampleEnv)
	return cfg
}

// sampleEnv is the environment sample.yaml expects: the secrets its *_env settings name.
func sampleEnv(name string) (string, bool) {
	switch name {
	case "EARPIECE_GLOBEX_ADMIN_SIGNING_SECRET":
		return "0123456789abcdef0123456789abcdef", true
	case "EARPIECE_GLOBEX_WEBHOOK_SECRET":
		return "whsec_c2FtcGxlLXdlYmhvb2stc2VjcmV0", true
	}
	return "", false
}

// messages splits a Validate error into its messages.
func messages(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}

// TestValidateReportsEveryProblem checks every message Validate produces
// for testdata/invalid.yaml against testdata/invalid.golden (one message a
// line, in order). Run with -update to rewrite the golden file, then review
// the diff.
func TestValidateReportsEveryProblem(t *testing.T) {
	err := loadTestdata(t, "invalid.yaml").Validate()
	got := messages(err)
	golden := filepath.Join("testdata", "invalid.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, rerr := os.ReadFile(golden)
	if rerr != nil {
		t.Fatal(rerr)
	}
	want := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for i := 0; i < len(got) || i < len(want); i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Errorf("message %d:\n got: %s\nwant: %s", i, g, w)
		}
	}
	// Dialing-rule problems keep their dialplan sentinels through the join.
	for _, sentinel := range []error{dialplan.ErrInvalidRule, dialplan.ErrConflict, dialplan.ErrNotDTMFCode} {
		if !errors.Is(err, sentinel) {
			t.Errorf("Validate() does not wrap %v", sentinel)
		}
	}
}

func TestValidateSample(t *testing.T) {
	if err := loadTestdata(t, "sample.yaml").Validate(); err != nil {
		t.Fatalf("sample.yaml does not validate:\n%v", err)
	}
}

// TestValidateServices covers what a YAML file cannot reach once defaults
// are applied (required fields) and URL edge cases.
func TestValidateServices(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*config.Config)
		want []string
	}{
		{"zero value", func(c *config.Config) { *c = config.Config{} }, []string{
			"ari.url: required",
			"ari.user: required",
			`ari.app: "": want 1-64 ASCII letters, digits, '-' or '_'`,
			"redis.url: required",
			"http.listen: required",
		}},
		{"relative ARI URL", func(c *config.Config) { c.ARI.URL = "/ari" }, []string{
			`ari.url: "/ari": want an absolute URL with a host`,
		}},
		{"unparsable ARI URL", func(c *config.Config) { c.ARI.URL = "http://[::1" }, []string{
			`ari.url: parse "http://[::1": missing ']' in host`,
		}},
		{"https and rediss are fine", func(c *config.Config) {
			c.ARI.URL = "https://pbx.example:8089/ari"
			c.Redis.URL = "rediss://user:pw@redis.example:6380/2"
			c.HTTP.Listen = ":8080"
		}, nil},
		{"bad port", func(c *config.Config) { c.HTTP.Listen = "127.0.0.1:http" }, []string{
			`http.listen: "127.0.0.1:http": port must be a number from 0 to 65535`,
		}},
		{"no tenants is valid", func(c *config.Config) { c.Tenants = nil }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadTestdata(t, "sample.yaml")
			tc.edit(cfg)
			got := messages(cfg.Validate())
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("Validate() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
