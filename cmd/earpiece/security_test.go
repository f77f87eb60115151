package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/earpiece/earpiece/config"
)

// clearEnv unsets the variables that override the configuration, so the tests see the file.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"EARPIECE_CONFIG", config.EnvARIURL, config.EnvARIUser, config.EnvARIPassword,
		config.EnvARIApp, config.EnvRedisURL, config.EnvHTTPListen, config.EnvHTTPPublished} {
		t.Setenv(k, "")
	}
}

// TestServeRefusesSampleCredentialsBeyondLoopback: docker/earpiece.yaml carries the sample admin
// key and listens on 0.0.0.0. serve and check-config refuse it unless the listener is published
// on loopback only (what compose says with EARPIECE_HTTP_PUBLISHED), and refuse the compose
// file's default ARI password the same way.
func TestServeRefusesSampleCredentialsBeyondLoopback(t *testing.T) {
	const file = "../../docker/earpiece.yaml"
	for _, tc := range []struct {
		name      string
		env       map[string]string
		refused   bool
		mentioned string
	}{
		{"sample key on 0.0.0.0", nil, true, "published sample key"},
		{"published on loopback (compose's default)", map[string]string{config.EnvHTTPPublished: "127.0.0.1"}, false, ""},
		{"published everywhere (EARPIECE_BIND=0.0.0.0)", map[string]string{config.EnvHTTPPublished: "0.0.0.0"}, true, "published sample key"},
		{"listening on loopback", map[string]string{config.EnvHTTPListen: "127.0.0.1:8080"}, false, ""},
		{"default ARI password published everywhere", map[string]string{config.EnvHTTPPublished: "0.0.0.0", config.EnvARIPassword: config.DefaultARIPassword}, true, "ari.password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var out, errb bytes.Buffer
			code := run([]string{"check-config", "--config", file}, &out, &errb)
			if (code != 0) != tc.refused {
				t.Fatalf("check-config: exit %d, want refused %v: %s%s", code, tc.refused, out.String(), errb.String())
			}
			if tc.refused && (!strings.Contains(errb.String(), tc.mentioned) || !strings.Contains(errb.String(), config.EnvHTTPPublished)) {
				t.Errorf("check-config says %q: want it to name %q and %s", errb.String(), tc.mentioned, config.EnvHTTPPublished)
			}
			if !tc.refused {
				return
			}
			// serve refuses the same way, before connecting to anything.
			errb.Reset()
			if code := run([]string{"serve", "--config", file}, &out, &errb); code != 1 || !strings.Contains(errb.String(), tc.mentioned) {
				t.Errorf("serve: exit %d, %s", code, errb.String())
			}
		})
	}
}

// TestComposePublishesItsAddress: docker/compose.yml tells earpiece where it publishes port
// 8080 (EARPIECE_HTTP_PUBLISHED), with the same expression as the port mapping, so that the
// stack starts with the sample configuration on the host's loopback and refuses it when
// EARPIECE_BIND publishes it further.
func TestComposePublishesItsAddress(t *testing.T) {
	data, err := os.ReadFile("../../docker/compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
			Ports       []string          `yaml:"ports"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatal(err)
	}
	ep := compose.Services["earpiece"]
	published, ok := ep.Environment[config.EnvHTTPPublished]
	if !ok {
		t.Fatalf("compose.yml gives earpiece no %s: serve refuses the sample configuration on 0.0.0.0", config.EnvHTTPPublished)
	}
	var mapping string
	for _, p := range ep.Ports {
		if strings.HasSuffix(p, ":8080:8080") {
			mapping = strings.TrimSuffix(p, ":8080:8080")
		}
	}
	if mapping == "" || mapping != published {
		t.Errorf("earpiece publishes 8080 on %q but tells itself %s=%q", mapping, config.EnvHTTPPublished, published)
	}
}

// TestCheckConfigRefusesWhatServeRefuses: a whsec_ secret the hub cannot decode fails
// check-config, not only serve (a container would restart forever).
func TestCheckConfigRefusesWhatServeRefuses(t *testing.T) {
	clearEnv(t)
	path := filepath.Join(t.TempDir(), "earpiece.yaml")
	if err := os.WriteFile(path, []byte(`
tenants:
  - id: acme
    extensions: [{number: "700", endpoint: PJSIP/700}]
    webhooks: [{url: "https://crm.example/hook", secret: "whsec_!!not-base64"}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"check-config", "--config", path}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "whsec_") {
		t.Errorf("check-config: exit %d, %s%s", code, out.String(), errb.String())
	}
}

// TestRedisURLPasswordNotShown: a Redis URL that fails to parse is reported without its
// password, by check-config (validation) and by serve's wiring (go-redis's own parsing).
func TestRedisURLPasswordNotShown(t *testing.T) {
	const pw = "hunter2-of-redis"
	clearEnv(t)
	t.Setenv(config.EnvHTTPPublished, "127.0.0.1")
	for _, u := range []string{"redis://default:" + pw + "@[::1", "http://default:" + pw + "@redis:6379"} {
		t.Setenv(config.EnvRedisURL, u)
		var out, errb bytes.Buffer
		if code := run([]string{"check-config", "--config", "../../docker/earpiece.yaml"}, &out, &errb); code != 1 {
			t.Errorf("%s: exit %d", u, code)
		}
		if strings.Contains(errb.String(), pw) || !strings.Contains(errb.String(), "redis.url") {
			t.Errorf("check-config with a bad Redis URL says %q", errb.String())
		}
	}
	// Valid for the configuration, refused by go-redis.
	t.Setenv(config.EnvRedisURL, "")
	cfg, err := loadConfig("../../docker/earpiece.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Redis.URL = "redis://default:" + pw + "@redis:6379/not-a-db"
	if _, err := build(cfg, "test", zerolog.Nop()); err == nil || strings.Contains(err.Error(), pw) {
		t.Errorf("build: %v", err)
	}
}

// TestRedisLogsAreJSON: what go-redis logs becomes a JSON line of earpiece's log.
func TestRedisLogsAreJSON(t *testing.T) {
	var buf bytes.Buffer
	l := redisLogger{log: zerolog.New(&buf)}
	l.Printf(context.Background(), "redis: %s: connection pool: %v\n", "127.0.0.1:6379", "dial tcp: refused")
	var line map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &line); err != nil {
		t.Fatalf("log line %q is not JSON: %v", buf.String(), err)
	}
	if line["level"] != "warn" || line["message"] != "redis: 127.0.0.1:6379: connection pool: dial tcp: refused" {
		t.Errorf("log line = %v", line)
	}
}
