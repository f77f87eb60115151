package config

import (
	"net/netip"
	"strings"
	"testing"
)

// exposureConfig is a valid configuration listening on listen, with the sample admin key when
// sample is set.
func exposureConfig(t *testing.T, listen, published, ariPassword string, sample bool) *Config {
	t.Helper()
	key := SHA256Hex("acme-own-key")
	if sample {
		key = SHA256Hex("example-acme-crm-key")
	}
	cfg, err := Decode(strings.NewReader(`
tenants:
  - id: acme
    extensions: [{number: "700", endpoint: PJSIP/700}]
    api_keys: [{name: crm, role: admin, sha256: ` + key + `}]
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.Listen, cfg.HTTP.Published, cfg.ARI.Password = listen, published, ariPassword
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestCheckExposure: serving beyond loopback with a published sample key or the compose file's
// default ARI password is refused; on loopback, or published on the host's loopback only, it
// is not.
func TestCheckExposure(t *testing.T) {
	for _, tc := range []struct {
		listen, published, password string
		sample                      bool
		refused                     bool
	}{
		{"0.0.0.0:8080", "", "s3cret", true, true},
		{":8080", "", "s3cret", true, true},
		{"[::]:8080", "", "s3cret", true, true},
		{"192.0.2.10:8080", "", "s3cret", true, true},
		{"earpiece.example:8080", "", "s3cret", true, true},
		{"0.0.0.0:8080", "", DefaultARIPassword, false, true},
		{"0.0.0.0:8080", "", "s3cret", false, false}, // nothing published: fine anywhere
		{"127.0.0.1:8080", "", DefaultARIPassword, true, false},
		{"[::1]:8080", "", DefaultARIPassword, true, false},
		{"localhost:8080", "", DefaultARIPassword, true, false},
		// compose: 0.0.0.0 in the container, published on the host's loopback.
		{"0.0.0.0:8080", "127.0.0.1", DefaultARIPassword, true, false},
		{"0.0.0.0:8080", "127.0.0.1:8080", "s3cret", true, false},
		// EARPIECE_BIND=0.0.0.0: published everywhere.
		{"0.0.0.0:8080", "0.0.0.0", "s3cret", true, true},
		{"127.0.0.1:8080", "0.0.0.0", "s3cret", true, true},
	} {
		cfg := exposureConfig(t, tc.listen, tc.published, tc.password, tc.sample)
		err := cfg.CheckExposure()
		if (err != nil) != tc.refused {
			t.Errorf("listen %q published %q password %q sample %v: %v, want refused %v", tc.listen, tc.published, tc.password, tc.sample, err, tc.refused)
			continue
		}
		if err == nil {
			continue
		}
		msg := err.Error()
		if tc.sample && !strings.Contains(msg, "tenants[acme].api_keys[crm] is a published sample key") {
			t.Errorf("message does not name the sample key:\n%s", msg)
		}
		if tc.password == DefaultARIPassword && !strings.Contains(msg, "ari.password") {
			t.Errorf("message does not name the ARI password:\n%s", msg)
		}
		if !strings.Contains(msg, EnvHTTPPublished) {
			t.Errorf("message does not say how a loopback-published container says so:\n%s", msg)
		}
		if strings.Contains(msg, "s3cret") {
			t.Errorf("message shows a password:\n%s", msg)
		}
	}
}

// TestSampleKeysKnown: every sample key of the repository's sample configurations is known.
func TestSampleKeysKnown(t *testing.T) {
	cfg := func(path string) *Config {
		c, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, path := range []string{"testdata/sample.yaml", "../docker/earpiece.yaml"} {
		for _, tn := range cfg(path).Tenants {
			for _, k := range tn.APIKeys {
				if !IsSampleKeyHash(k.SHA256) {
					t.Errorf("%s: tenants[%s].api_keys[%s] is not a known sample key", path, tn.ID, k.Name)
				}
			}
		}
	}
	if IsSampleKeyHash(SHA256Hex("acme-own-key")) {
		t.Error("any key is a sample key")
	}
}

// TestURLPasswordsRedacted: a Redis or ARI URL that does not parse, or has the wrong scheme, is
// reported without its password.
func TestURLPasswordsRedacted(t *testing.T) {
	const pw = "hunter2-redis-pw"
	cfg := exposureConfig(t, "127.0.0.1:8080", "", "s3cret", false)
	for _, bad := range []string{
		"redis://user:" + pw + "@[::1",      // does not parse
		"redis://:" + pw + "@host:6379/%zz", // bad escape
		"http://user:" + pw + "@redis:6379", // wrong scheme
		"redis://user:" + pw + "@",          // no host
	} {
		cfg.Redis.URL = bad
		err := cfg.Validate()
		if err == nil {
			t.Errorf("%s: valid", bad)
			continue
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("the message shows the password: %v", err)
		}
		if !strings.Contains(err.Error(), "redis.url") {
			t.Errorf("the message does not name redis.url: %v", err)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"redis://user:" + pw + "@[::1", "redis://user:xxxxx@[::1"},
		{"redis://:" + pw + "@h:1/%zz", "redis://:xxxxx@h:1/%zz"},
		{"https://u:" + pw + "@crm.example/x", "https://u:xxxxx@crm.example/x"},
		{"https://crm.example/x", "https://crm.example/x"},
		{"not a url", "not a url"},
	} {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestWebhookTargets: webhook URLs naming loopback, link-local (metadata) or unspecified
// addresses are refused unless allow_local; a whsec_ secret the hub could not decode is
// refused here, where check-config sees it, not only when serve starts.
func TestWebhookTargets(t *testing.T) {
	for _, tc := range []struct {
		url        string
		allowLocal bool
		refused    bool
	}{
		{"https://crm.example/hook", false, false},
		{"http://10.1.2.3/hook", false, false},
		{"http://192.168.1.5:8080/hook", false, false},
		{"http://169.254.169.254/latest/meta-data/", false, true},
		{"http://[fe80::1]/hook", false, true},
		{"http://127.0.0.1:9000/hook", false, true},
		{"http://127.8.9.10/hook", false, true},
		{"http://[::1]/hook", false, true},
		{"http://[::ffff:169.254.169.254]/hook", false, true},
		{"http://0.0.0.0/hook", false, true},
		{"http://[::]/hook", false, true},
		{"http://localhost:9000/hook", false, true},
		{"http://127.0.0.1:9000/hook", true, false},
		{"http://169.254.169.254/", true, false},
	} {
		err := CheckWebhookURL(tc.url, tc.allowLocal)
		if (err != nil) != tc.refused {
			t.Errorf("CheckWebhookURL(%q, allow_local %v) = %v, want refused %v", tc.url, tc.allowLocal, err, tc.refused)
		}
	}
	if err := CheckWebhookURL("https://crm:pw-of-the-crm@127.0.0.1/h", false); err == nil || strings.Contains(err.Error(), "pw-of-the-crm") {
		t.Errorf("refusal shows the URL's password: %v", err)
	}

	cfg, err := Decode(strings.NewReader(`
tenants:
  - id: acme
    extensions: [{number: "700", endpoint: PJSIP/700}]
    webhooks:
      - {url: "http://169.254.169.254/latest", secret: s}
      - {url: "http://127.0.0.1:9000/hook", secret: s, allow_local: true}
      - {url: "https://crm.example/hook", secret: "whsec_not base64!"}
      - {url: "https://crm:hunter2-hook@crm.example/hook", secret: "whsec_"}
`))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	for _, want := range []string{
		`tenants[acme].webhooks[0].url: "http://169.254.169.254/latest": 169.254.169.254 is a loopback, link-local or unspecified address`,
		`tenants[acme].webhooks[2]: secret: whsec_ followed by invalid base64`,
		`tenants[acme].webhooks[3]: secret: whsec_ followed by invalid base64`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if err != nil && (strings.Contains(err.Error(), "webhooks[1]") || strings.Contains(err.Error(), "hunter2-hook")) {
		t.Errorf("allowed local target refused, or a URL password shown:\n%v", err)
	}
}

func TestLocalAddress(t *testing.T) {
	for s, want := range map[string]bool{
		"127.0.0.1": true, "::1": true, "169.254.169.254": true, "fe80::1": true, "0.0.0.0": true,
		"0.1.2.3": true, "::": true, "::ffff:127.0.0.1": true, "224.0.0.1": true, "ff02::1": true,
		"10.0.0.1": false, "192.168.0.1": false, "172.16.0.1": false, "fd00::1": false,
		"8.8.8.8": false, "2001:db8::1": false,
	} {
		if got := LocalAddress(netip.MustParseAddr(s)); got != want {
			t.Errorf("LocalAddress(%s) = %v, want %v", s, got, want)
		}
	}
}

// TestSigningSecrets: a tenant that requires signed requests needs a signing secret for each
// of its bootstrap keys, and a signing secret is long enough.
func TestSigningSecrets(t *testing.T) {
	cfg, err := Decode(strings.NewReader(`
tenants:
  - id: acme
    request_signatures: required
    extensions: [{number: "700", endpoint: PJSIP/700}]
    api_keys:
      - {name: a, role: admin, sha256: ` + SHA256Hex("a") + `}
      - {name: b, role: admin, sha256: ` + SHA256Hex("b") + `, signing_secret_env: B_SIGNING}
      - {name: c, role: admin, sha256: ` + SHA256Hex("c") + `, signing_secret: short}
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ApplyEnv(func(k string) (string, bool) {
		if k == "B_SIGNING" {
			return strings.Repeat("b", MinSigningSecretLen), true
		}
		return "", false
	})
	err = cfg.Validate()
	for _, want := range []string{
		"tenants[acme].api_keys[a]: signing_secret: required, the tenant requires signed requests",
		"tenants[acme].api_keys[c]: signing_secret: want at least 32 characters",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if err != nil && strings.Contains(err.Error(), "api_keys[b]") {
		t.Errorf("key b has its secret from the environment:\n%v", err)
	}
}
