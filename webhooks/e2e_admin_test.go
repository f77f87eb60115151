package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/internal/e2etest"
	"github.com/earpiece/earpiece/internal/testphone"
)

// TestE2ELiveAdministration drives live administration through the HTTP API on the real stack
// (an Asterisk of its own, whose dialplan earpiece rewrites; Redis; SIP phones judged by ear),
// while a supervision session runs the whole time and must survive every change:
//   - the tenant admin changes acme's codes: the new code supervises on the next dial (heard),
//     the old one no longer exists; the time from the API request to the new code answered by
//     earpiece is measured;
//   - a supervisor outside the hunt group is refused (heard), added with "supervision allowed"
//     and joins at once, then loses the right and is refused again;
//   - the operator switches acme's supervision off (refusal heard) and on again (works).
func TestE2ELiveAdministration(t *testing.T) {
	r := e2etest.NewPrivate(t, e2etest.Owned{BridgeNamePrefix: app.BridgeNamePrefix})
	const adminKey, operatorKey = "e2e-admin-key", "e2e-operator-key"
	base, err := config.Decode(strings.NewReader(fmt.Sprintf(`
operator_keys:
  - {name: ops, sha256: %s}
tenants:
  - id: acme
    supervision_enabled: true
    extensions:
      - {number: "700", endpoint: PJSIP/700, role: supervisor}
      - {number: "701", endpoint: PJSIP/701, role: supervisor}
      - {number: "744", endpoint: PJSIP/744, role: agent}
    hunt_groups:
      - name: support
        members: [{extension: "744"}, {extension: "700", supervision_allowed: true}]
    api_keys:
      - {name: admin, role: admin, sha256: %s}
`, config.SHA256Hex(operatorKey), config.SHA256Hex(adminKey))))
	if err != nil {
		t.Fatal(err)
	}
	etc := r.Ast.EtcDir()
	base.Dialplan.ExtensionsFile = filepath.Join(etc, "extensions_earpiece.conf")
	base.Dialplan.FeaturesFile = filepath.Join(etc, "features_earpiece.conf")
	sync := app.NewDirectorySync(r.Store, base, func(string) (string, bool) { return "", false }, r.Log)
	sup := app.New(app.Config{AppName: e2etest.AppName, Instance: "admin-e2e", Logger: r.Log,
		RefusalTone: 800 * time.Millisecond}, r.Client, r.Store, sync.Live())
	sync.Audit = sup.AuditDirectory
	dw, err := app.NewDialplanWriter(app.DialplanWriterConfig{
		ExtensionsFile: base.Dialplan.ExtensionsFile, FeaturesFile: base.Dialplan.FeaturesFile,
		AppName: e2etest.AppName, ARI: r.Client, Live: sync.Live(), Logger: r.Log,
	})
	if err != nil {
		t.Fatal(err)
	}
	sync.OnChange = dw.OnChange
	if _, err := sync.Import(r.Ctx, base.Tenants, "file", false); err != nil {
		t.Fatal(err)
	}
	r.Go(func(ctx context.Context) { sync.Run(ctx) })
	r.Start(sup)
	srv := New(Config{Directory: sync.Live(), Admin: app.NewAdmin(sync, sup, r.Store, r.Log), Store: r.Store,
		Logger: r.Log, Service: sup, RateLimits: config.RateLimits{PerKey: config.Rate{PerSecond: 1000, Burst: 1000},
			PerAddress: config.Rate{PerSecond: 1000, Burst: 1000}}})
	web := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		web.Close()
	})
	ctx, cancel := context.WithTimeout(r.Ctx, 2*time.Minute)
	defer cancel()
	api := func(key, method, path, body string) (int, map[string]any) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequestWithContext(ctx, method, web.URL+path, rd)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	must := func(want int, key, method, path, body string) map[string]any {
		t.Helper()
		code, out := api(key, method, path, body)
		if code != want {
			t.Fatalf("%s %s %s: %d %v, want %d", method, path, body, code, out, want)
		}
		return out
	}

	c := r.Connect(r.Phone("800", testphone.ToneCustomer, testphone.AutoAnswer), r.Phone("744", testphone.ToneAgent, testphone.AutoAnswer), "744")
	adam := r.Phone("700", testphone.ToneSupervisor, testphone.AutoAnswer)
	beth := r.Phone("701", e2etest.ToneSupervisor2, testphone.AutoAnswer)
	live, _ := r.Dial(adam, "*90744")
	r.Hears(live, testphone.ToneCustomer, "Adam spying with the file's code")
	survives := func(when string) {
		t.Helper()
		r.HearsAfter(live, time.Now(), testphone.ToneCustomer, true, "Adam's session "+when)
		select {
		case <-live.Done():
			t.Fatalf("Adam's session ended %s", when)
		default:
		}
	}
	// joins dials code and says whether earpiece let the supervisor in (heard the customer) or
	// refused them (heard the refusal tone, or the code does not exist: SIP 404).
	joins := func(p *testphone.Phone, code string) bool {
		t.Helper()
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		call, err := p.Call(dctx, code)
		if err != nil {
			return false
		}
		defer func() {
			hctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_ = call.Hangup(hctx)
		}()
		for {
			if call.Heard(testphone.ToneCustomer, time.Time{}, time.Now()).Present >= 5 {
				return true
			}
			if call.Heard(e2etest.ToneRefusalLow, time.Time{}, time.Now()).Present >= 5 {
				return false
			}
			select {
			case <-call.Done():
				return false
			case <-dctx.Done():
				t.Fatalf("%s dialing %s heard neither the call nor a refusal", p.User(), code)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}

	// New codes, heard on the next dial; the time from the request to the new code answered.
	rules := must(http.StatusOK, adminKey, http.MethodGet, "/v1/tenants/acme/dialing-rules", "")
	var latencies []time.Duration
	for i, prefix := range []string{"*70", "*80", "*70"} {
		next := map[string]any{}
		for k, v := range rules {
			next[k] = v
		}
		next["spy_prefix"], next["whisper_prefix"], next["barge_prefix"] = prefix, prefix[:2]+"1", prefix[:2]+"2"
		body, _ := json.Marshal(next)
		start := time.Now()
		must(http.StatusOK, adminKey, http.MethodPut, "/v1/tenants/acme/dialing-rules", string(body))
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		call, err := beth.Call(dctx, prefix+"744") // answered by earpiece (refused: 701 is not allowed yet)
		cancel()
		if err != nil {
			t.Fatalf("change %d: 701 dialing the new code %s744: %v", i, prefix, err)
		}
		latencies = append(latencies, time.Since(start))
		r.Hears(call, e2etest.ToneRefusalLow, "701 refused on the new code (not in the group yet)")
		hctx, hcancel := context.WithTimeout(ctx, 3*time.Second)
		_ = call.Hangup(hctx)
		hcancel()
	}
	slices.Sort(latencies)
	t.Logf("API change -> new code answered by earpiece: median %v (of %v)", latencies[len(latencies)/2], latencies)
	if joins(adam, "*90744") {
		t.Error("the old code *90 still supervises after the change")
	}
	survives("after the code changes")

	// Beth: refused, added to the group with supervision allowed, joins at once.
	if joins(beth, "*70744") {
		t.Fatal("701 joined before being allowed")
	}
	must(http.StatusCreated, adminKey, http.MethodPost, "/v1/tenants/acme/hunt-groups/support/members", `{"extension":"701","supervision_allowed":true}`)
	if !joins(beth, "*70744") {
		t.Fatal("701 refused right after being allowed")
	}
	must(http.StatusOK, adminKey, http.MethodPatch, "/v1/tenants/acme/hunt-groups/support/members/701", `{"supervision_allowed":false}`)
	if joins(beth, "*70744") {
		t.Fatal("701 joined after losing the right")
	}
	survives("after the group changes")

	// The operator's switch; the admin may not flip it.
	must(http.StatusForbidden, adminKey, http.MethodPatch, "/v1/tenants/acme", `{"supervision_enabled":false}`)
	must(http.StatusOK, operatorKey, http.MethodPatch, "/v1/tenants/acme", `{"supervision_enabled":false}`)
	if joins(beth, "*70744") {
		t.Fatal("joined with supervision switched off")
	}
	must(http.StatusOK, operatorKey, http.MethodPatch, "/v1/tenants/acme", `{"supervision_enabled":true}`)
	must(http.StatusOK, adminKey, http.MethodPatch, "/v1/tenants/acme/hunt-groups/support/members/701", `{"supervision_allowed":true}`)
	if !joins(beth, "*70744") {
		t.Fatal("refused with supervision switched back on")
	}
	survives("after the operator's switch")

	// Every change is in the audit trail, with before and after.
	var changes int
	for _, e := range r.Audit("acme") {
		if strings.HasPrefix(e.Action, "directory_") || strings.HasPrefix(e.Action, "tenant_supervision_") {
			changes++
			before, after := e.Extra["before"] != "", e.Extra["after"] != ""
			switch {
			case e.Action == app.AuditDirectoryImport:
			case strings.HasSuffix(e.Action, "_create") && (before || !after),
				strings.HasSuffix(e.Action, "_delete") && (!before || after),
				!strings.HasSuffix(e.Action, "_create") && !strings.HasSuffix(e.Action, "_delete") && (!before || !after):
				t.Errorf("audit entry without its before/after: %+v", e)
			}
		}
	}
	if changes < 8 {
		t.Errorf("%d directory changes audited, want at least 8", changes)
	}
	r.HearsAfter(c.Customer, time.Now(), testphone.ToneAgent, true, "the customer, after every change")
	hctx, hcancel := context.WithTimeout(ctx, 3*time.Second)
	defer hcancel()
	_ = live.Hangup(hctx)
}
