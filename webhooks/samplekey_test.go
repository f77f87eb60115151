package webhooks

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/earpiece/earpiece/config"
)

// TestSampleKeyLoopbackOnly checks that a configuration still carrying a published sample key
// accepts it from loopback only, whatever forwarding headers say, and that other bootstrap keys
// work from anywhere.
func TestSampleKeyLoopbackOnly(t *testing.T) {
	const sample = "example-acme-crm-key" // docker/earpiece.yaml's sample admin key
	cfg, err := config.Decode(strings.NewReader(`
tenants:
  - id: acme
    supervision_enabled: true
    extensions:
      - {number: "100", endpoint: PJSIP/100, role: agent}
    api_keys:
      - {name: crm, role: admin, sha256: ` + config.SHA256Hex(sample) + `}
      - {name: own, role: admin, sha256: ` + config.SHA256Hex("acme-own-key") + `}
`))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := config.NewDirectory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Directory = dir })
	for _, tc := range []struct {
		key, remote, forwarded string
		want                   int
	}{
		{sample, "127.0.0.1:40000", "", http.StatusOK},
		{sample, "127.8.9.10:40000", "", http.StatusOK},
		{sample, "[::1]:40000", "", http.StatusOK},
		{sample, "[::ffff:127.0.0.1]:40000", "", http.StatusOK},
		{sample, "192.0.2.7:40000", "", http.StatusForbidden},
		{sample, "[2001:db8::7]:40000", "", http.StatusForbidden},
		{sample, "192.0.2.7:40000", "127.0.0.1", http.StatusForbidden},
		{sample, "not-an-address", "", http.StatusForbidden},
		{"acme-own-key", "192.0.2.7:40000", "", http.StatusOK},
	} {
		req := httptest.NewRequest(http.MethodGet, "/v1/api-keys", nil)
		req.RemoteAddr = tc.remote
		req.Header.Set("Authorization", "Bearer "+tc.key)
		if tc.forwarded != "" {
			req.Header.Set("X-Forwarded-For", tc.forwarded)
			req.Header.Set("X-Real-IP", tc.forwarded)
		}
		rec := httptest.NewRecorder()
		e.srv.Handler().ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s from %s (forwarded %q): %d %s, want %d", tc.key, tc.remote, tc.forwarded, rec.Code, rec.Body, tc.want)
			continue
		}
		if tc.want == http.StatusForbidden {
			var body struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code != codeForbidden ||
				!strings.Contains(body.Error.Message, "sample") {
				t.Errorf("%s from %s: body %s, want a forbidden error naming the sample key", tc.key, tc.remote, rec.Body)
			}
		}
	}
}
