package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/store"
)

// resetDirectory puts the test configuration's tenants back in force (forced import), and
// revokes every API key created through the API, so that each request of a table starts from
// the same directory and keys.
func (e *env) resetDirectory() {
	e.t.Helper()
	if _, err := e.sync.Import(context.Background(), e.base.Tenants, "test", true); err != nil {
		e.t.Fatalf("resetting the directory: %v", err)
	}
	for _, tenant := range []string{"acme", "globex"} {
		keys, err := e.st.APIKeys(context.Background(), tenant)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, k := range keys {
			if _, err := e.st.RevokeAPIKey(context.Background(), tenant, k.Name); err != nil {
				e.t.Fatal(err)
			}
		}
	}
}

// rev is the revision answered in X-Earpiece-Directory-Revision.
func rev(t testing.TB, rec *httptest.ResponseRecorder) int64 {
	t.Helper()
	n, err := strconv.ParseInt(rec.Header().Get(headerRevision), 10, 64)
	if err != nil {
		t.Fatalf("%s = %q", headerRevision, rec.Header().Get(headerRevision))
	}
	return n
}

// TestAdminAuthorizationTable: every administration route and verb, for each kind of caller:
// the operator, tenant acme's admin, tenant globex's admin (acme does not exist for it),
// acme's supervisor and agent, and no key. Each request starts from the test directory;
// setup requests run first with the operator key.
func TestAdminAuthorizationTable(t *testing.T) {
	e := newEnv(t)
	const hook = "https://crm.acme.example/hook"
	hookID := app.WebhookID(hook)
	addHook := [3]string{"POST", "/v1/tenants/acme/webhooks", `{"url":"` + hook + `","secret":"s3cret"}`}
	addExt := [3]string{"POST", "/v1/tenants/acme/extensions", `{"number":"102","endpoint":"PJSIP/102"}`}
	addKey := [3]string{"POST", "/v1/tenants/acme/api-keys", `{"name":"crm","role":"admin"}`}
	callers := []string{"operator", "admin", "gadmin", "sup", "agent", "none"}
	keys := map[string]string{"operator": keyOperator, "admin": keyAdmin, "gadmin": keyGlobexAdmin, "sup": keySup, "agent": keyAgent, "none": ""}
	type row struct {
		method, path, body string
		setup              [][3]string
		// want per caller, in the order of callers.
		want [6]int
	}
	var (
		// The operator and acme's admin may; globex's admin finds no tenant acme; supervisors
		// and agents are refused; no key is unauthorized.
		tenantAdmin = func(ok int) [6]int { return [6]int{ok, ok, 404, 403, 403, 401} }
		// The operator's alone: acme's admin is refused, globex's still finds nothing.
		operatorOnly = func(ok int) [6]int { return [6]int{ok, 403, 404, 403, 403, 401} }
	)
	rows := []row{
		{method: "GET", path: "/v1/tenants", want: [6]int{200, 200, 200, 403, 403, 401}},
		{method: "POST", path: "/v1/tenants", body: `{"id":"newco","name":"New Co"}`, want: [6]int{201, 403, 403, 403, 403, 401}},
		{method: "GET", path: "/v1/tenants/acme", want: tenantAdmin(200)},
		{method: "PATCH", path: "/v1/tenants/acme", body: `{"name":"ACME Inc"}`, want: tenantAdmin(200)},
		{method: "PATCH", path: "/v1/tenants/acme", body: `{"supervision_enabled":false}`, want: operatorOnly(200)},
		{method: "DELETE", path: "/v1/tenants/acme", want: operatorOnly(204)},
		{method: "GET", path: "/v1/tenants/nope", want: [6]int{404, 404, 404, 403, 403, 401}},

		{method: "GET", path: "/v1/tenants/acme/extensions", want: tenantAdmin(200)},
		{method: "POST", path: "/v1/tenants/acme/extensions", body: `{"number":"102","endpoint":"PJSIP/102","name":"New"}`, want: tenantAdmin(201)},
		{method: "GET", path: "/v1/tenants/acme/extensions/100", want: tenantAdmin(200)},
		{method: "PATCH", path: "/v1/tenants/acme/extensions/100", body: `{"name":"John"}`, want: tenantAdmin(200)},
		{method: "DELETE", path: "/v1/tenants/acme/extensions/102", setup: [][3]string{addExt}, want: tenantAdmin(204)},
		// Passes authorization, then the rule: 100 is in hunt group support.
		{method: "DELETE", path: "/v1/tenants/acme/extensions/100", want: tenantAdmin(409)},

		// Endpoints. acme has some (PJSIP/1*, PJSIP/2*): its admin chooses among them, and
		// validation refuses any other, the operator's choice included.
		{method: "PATCH", path: "/v1/tenants/acme/extensions/100", body: `{"endpoint":"PJSIP/150"}`, want: tenantAdmin(200)},
		{method: "POST", path: "/v1/tenants/acme/extensions", body: `{"number":"103","endpoint":"PJSIP/999"}`, want: tenantAdmin(422)},
		{method: "PATCH", path: "/v1/tenants/acme/extensions/100", body: `{"endpoint":"PJSIP/999"}`, want: tenantAdmin(422)},
		// Giving a tenant endpoints is the operator's.
		{method: "PATCH", path: "/v1/tenants/acme", body: `{"endpoints":["PJSIP/1*","PJSIP/2*","PJSIP/acme-*"]}`, want: operatorOnly(200)},
		{method: "PATCH", path: "/v1/tenants/globex", body: `{"endpoints":["PJSIP/3*"]}`, want: [6]int{200, 404, 403, 403, 403, 401}},
		{method: "POST", path: "/v1/tenants", body: `{"id":"newco","endpoints":["PJSIP/newco-*"]}`, want: [6]int{201, 403, 403, 403, 403, 401}},
		// globex has none: only the operator chooses its extensions' endpoints (creating one,
		// changing one); the rest of an extension stays its admin's.
		{method: "POST", path: "/v1/tenants/globex/extensions", body: `{"number":"302","endpoint":"PJSIP/302"}`, want: [6]int{201, 404, 403, 403, 403, 401}},
		{method: "PATCH", path: "/v1/tenants/globex/extensions/301", body: `{"endpoint":"PJSIP/3010"}`, want: [6]int{200, 404, 403, 403, 403, 401}},
		{method: "PATCH", path: "/v1/tenants/globex/extensions/301", body: `{"endpoint":"PJSIP/301","name":"Hank"}`, want: [6]int{200, 404, 200, 403, 403, 401}},
		{method: "DELETE", path: "/v1/tenants/globex/extensions/301", want: [6]int{204, 404, 204, 403, 403, 401}},

		{method: "GET", path: "/v1/tenants/acme/hunt-groups", want: tenantAdmin(200)},
		{method: "POST", path: "/v1/tenants/acme/hunt-groups", body: `{"name":"sales","members":[{"extension":"101"}]}`, want: tenantAdmin(201)},
		{method: "GET", path: "/v1/tenants/acme/hunt-groups/support", want: tenantAdmin(200)},
		{method: "PATCH", path: "/v1/tenants/acme/hunt-groups/support", body: `{"name":"helpdesk"}`, want: tenantAdmin(200)},
		{method: "DELETE", path: "/v1/tenants/acme/hunt-groups/support", want: tenantAdmin(204)},
		{method: "GET", path: "/v1/tenants/acme/hunt-groups/support/members", want: tenantAdmin(200)},
		{method: "POST", path: "/v1/tenants/acme/hunt-groups/support/members", body: `{"extension":"102"}`, setup: [][3]string{addExt}, want: tenantAdmin(201)},
		{method: "GET", path: "/v1/tenants/acme/hunt-groups/support/members/100", want: tenantAdmin(200)},
		{method: "PATCH", path: "/v1/tenants/acme/hunt-groups/support/members/200", body: `{"supervision_allowed":false}`, want: tenantAdmin(200)},
		{method: "DELETE", path: "/v1/tenants/acme/hunt-groups/support/members/100", want: tenantAdmin(204)},

		{method: "GET", path: "/v1/tenants/acme/dialing-rules", want: tenantAdmin(200)},
		{method: "PUT", path: "/v1/tenants/acme/dialing-rules", body: `{"spy_prefix":"*80"}`, want: tenantAdmin(200)},
		{method: "GET", path: "/v1/tenants/acme/announce", want: tenantAdmin(200)},
		{method: "PUT", path: "/v1/tenants/acme/announce", body: `{"announce":"beep"}`, want: tenantAdmin(200)},
		{method: "GET", path: "/v1/tenants/acme/help-policy", want: tenantAdmin(200)},
		{method: "PUT", path: "/v1/tenants/acme/help-policy", body: `{"escalate_after":"1m","expire_after":"5m"}`, want: tenantAdmin(200)},

		{method: "GET", path: "/v1/tenants/acme/webhooks", want: tenantAdmin(200)},
		{method: "POST", path: "/v1/tenants/acme/webhooks", body: addHook[2], want: tenantAdmin(201)},
		{method: "POST", path: "/v1/tenants/acme/webhooks", body: `{"url":"http://127.0.0.1:9/hook","secret":"s3cret","allow_local":true}`, want: operatorOnly(201)},
		{method: "POST", path: "/v1/tenants/acme/webhooks", body: `{"url":"https://crm.acme.example/env","secret_env":"EARPIECE_ARI_PASSWORD"}`,
			// The operator may name a variable; this instance has none set, so the directory
			// would not validate (422).
			want: operatorOnly(422)},
		{method: "GET", path: "/v1/tenants/acme/webhooks/" + hookID, setup: [][3]string{addHook}, want: tenantAdmin(200)},
		{method: "DELETE", path: "/v1/tenants/acme/webhooks/" + hookID, setup: [][3]string{addHook}, want: tenantAdmin(204)},

		// A tenant's API keys: the operator's in any tenant, an admin's in its own.
		{method: "GET", path: "/v1/tenants/acme/api-keys", want: tenantAdmin(200)},
		{method: "POST", path: "/v1/tenants/acme/api-keys", body: addKey[2], want: tenantAdmin(201)},
		{method: "POST", path: "/v1/tenants/acme/api-keys", body: `{"name":"desk","role":"agent","extension":"300"}`, want: tenantAdmin(422)}, // globex's
		{method: "DELETE", path: "/v1/tenants/acme/api-keys/crm", setup: [][3]string{addKey}, want: tenantAdmin(204)},
		{method: "DELETE", path: "/v1/tenants/acme/api-keys/admin-key", want: tenantAdmin(409)}, // the configuration's
		{method: "GET", path: "/v1/tenants/nope/api-keys", want: [6]int{404, 404, 404, 403, 403, 401}},
		{method: "POST", path: "/v1/tenants/nope/api-keys", body: addKey[2], want: [6]int{404, 404, 404, 403, 403, 401}},
	}
	// An operator key acts in no tenant: every tenant route is refused to it.
	for _, r := range [][3]string{
		{"GET", "/v1/calls", ""}, {"GET", "/v1/supervisions", ""}, {"GET", "/v1/api-keys", ""},
		{"GET", "/v1/events", ""}, {"GET", "/v1/webhook-deliveries", ""}, {"GET", "/v1/help-requests", ""},
		{"POST", "/v1/help-requests", `{"agent":"100"}`},
	} {
		rows = append(rows, row{method: r[0], path: r[1], body: r[2], want: [6]int{403, -1, -1, -1, -1, 401}})
	}
	for _, r := range rows {
		for i, who := range callers {
			if r.want[i] < 0 {
				continue
			}
			e.resetDirectory()
			for _, s := range r.setup {
				if rec := e.do(s[0], s[1], keyOperator, s[2]); rec.Code >= 300 {
					t.Fatalf("setup %s %s = %d %s", s[0], s[1], rec.Code, rec.Body)
				}
			}
			rec := e.do(r.method, r.path, keys[who], r.body)
			if rec.Code != r.want[i] {
				t.Errorf("%s %s %s as %s = %d %s, want %d", r.method, r.path, r.body, who, rec.Code, rec.Body, r.want[i])
				continue
			}
			// A tenant the caller did not name: globex on acme's routes, acme on globex's.
			other := "globex"
			if strings.HasPrefix(r.path, "/v1/tenants/globex") {
				other = "acme"
			}
			if rec.Code == 404 && strings.Contains(rec.Body.String(), other) {
				t.Errorf("%s %s as %s names another tenant: %s", r.method, r.path, who, rec.Body)
			}
			// Directory resources carry the revision and their tag (API keys are no directory
			// resource).
			directory := strings.HasPrefix(r.path, "/v1/tenants") && !strings.Contains(r.path, "/api-keys")
			if rec.Code < 300 && directory && rec.Header().Get(headerRevision) == "" {
				t.Errorf("%s %s as %s: no %s", r.method, r.path, who, headerRevision)
			}
			if rec.Code == 200 && r.method == "GET" && directory && !strings.HasPrefix(rec.Header().Get("ETag"), `"`) {
				t.Errorf("GET %s as %s: ETag %q", r.path, who, rec.Header().Get("ETag"))
			}
		}
	}
	// globex's admin sees its own tenant only.
	e.resetDirectory()
	rec := e.do("GET", "/v1/tenants", keyGlobexAdmin, "")
	var l app.TenantList
	if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil || len(l.Tenants) != 1 || l.Tenants[0].ID != "globex" {
		t.Errorf("GET /v1/tenants as globex's admin = %s", rec.Body)
	}
}

// TestAdminConcurrentIfMatch: two clients read the same ETag and both change the resource with
// If-Match: exactly one wins, the other gets 412 precondition_failed; and what the winner wrote
// is what a GET shows.
func TestAdminConcurrentIfMatch(t *testing.T) {
	e := newEnv(t)
	for round := range 5 {
		get := e.do("GET", "/v1/tenants/acme/extensions/100", keyAdmin, "")
		tag := get.Header().Get("ETag")
		if get.Code != 200 || tag == "" {
			t.Fatalf("GET = %d %s, ETag %q", get.Code, get.Body, tag)
		}
		var wg sync.WaitGroup
		codes := make([]int, 2)
		bodies := make([]string, 2)
		for i := range 2 {
			wg.Go(func() {
				rec := e.do("PATCH", "/v1/tenants/acme/extensions/100", keyAdmin,
					fmt.Sprintf(`{"name":"writer-%d-%d"}`, round, i), "If-Match", tag)
				codes[i], bodies[i] = rec.Code, rec.Body.String()
			})
		}
		wg.Wait()
		slices.Sort(codes)
		if codes[0] != 200 || codes[1] != 412 {
			t.Fatalf("round %d: codes %v (%q), want one 200 and one 412", round, codes, bodies)
		}
		for _, b := range bodies {
			if strings.Contains(b, `"error"`) && !strings.Contains(b, `"precondition_failed"`) {
				t.Errorf("loser's answer %s", b)
			}
		}
		after := e.do("GET", "/v1/tenants/acme/extensions/100", keyAdmin, "")
		if after.Header().Get("ETag") == tag {
			t.Error("the ETag did not change with the resource")
		}
	}

	// If-Match is checked whatever the verb; a stale tag never deletes.
	get := e.do("GET", "/v1/tenants/acme/hunt-groups/support/members/100", keyAdmin, "")
	stale := get.Header().Get("ETag")
	if rec := e.do("PATCH", "/v1/tenants/acme/hunt-groups/support/members/100", keyAdmin, `{"supervision_allowed":false}`); rec.Code != 200 {
		t.Fatalf("PATCH member = %d %s", rec.Code, rec.Body)
	}
	// Unchanged: the same resource, no new revision, but the same tag.
	if rec := e.do("PATCH", "/v1/tenants/acme/hunt-groups/support/members/100", keyAdmin, `{"supervision_allowed":false}`, "If-Match", stale); rec.Code != 200 || rec.Header().Get("ETag") != stale {
		t.Errorf("a PATCH that changes nothing = %d %s (ETag %q, want %q)", rec.Code, rec.Body, rec.Header().Get("ETag"), stale)
	}
	if rec := e.do("DELETE", "/v1/tenants/acme/hunt-groups/support/members/100", keyAdmin, "", "If-Match", `"0000"`); rec.Code != 412 || apiErr(t, rec).Code != "precondition_failed" {
		t.Errorf("DELETE with a stale tag = %d %s", rec.Code, rec.Body)
	}
	if rec := e.do("DELETE", "/v1/tenants/acme/hunt-groups/support/members/100", keyAdmin, "", "If-Match", "*"); rec.Code != 204 {
		t.Errorf("DELETE If-Match: * = %d %s", rec.Code, rec.Body)
	}
	// If-None-Match: * on a create: 412 instead of 409 when it exists.
	if rec := e.do("POST", "/v1/tenants/acme/extensions", keyAdmin, `{"number":"101","endpoint":"PJSIP/1010"}`); rec.Code != 409 || apiErr(t, rec).Code != "extension_exists" {
		t.Errorf("create existing = %d %s", rec.Code, rec.Body)
	}
	if rec := e.do("POST", "/v1/tenants/acme/extensions", keyAdmin, `{"number":"101","endpoint":"PJSIP/1010"}`, "If-None-Match", "*"); rec.Code != 412 {
		t.Errorf("create existing with If-None-Match: * = %d %s", rec.Code, rec.Body)
	}
	// Malformed conditions are the client's mistake, named.
	for _, h := range [][2]string{{"If-Match", "abc"}, {"If-Match", `"a" "b"`}, {"If-None-Match", `"abc"`}} {
		rec := e.do("PATCH", "/v1/tenants/acme/extensions/101", keyAdmin, `{"name":"x"}`, h[0], h[1])
		if d := apiErr(t, rec); rec.Code != 400 || d.Field != h[0] {
			t.Errorf("%s: %s = %d %+v", h[0], h[1], rec.Code, d)
		}
	}
	// A GET with the current tag in If-None-Match: 304.
	cur := e.do("GET", "/v1/tenants/acme/extensions", keyAdmin, "")
	if rec := e.do("GET", "/v1/tenants/acme/extensions", keyAdmin, "", "If-None-Match", cur.Header().Get("ETag")); rec.Code != http.StatusNotModified {
		t.Errorf("conditional GET = %d", rec.Code)
	}
}

// TestAdminRevisions: every answer carries the directory revision; each change makes a new one,
// which the next read shows; the ETag a change answers is the one a GET then answers.
func TestAdminRevisions(t *testing.T) {
	e := newEnv(t)
	r0 := rev(t, e.do("GET", "/v1/tenants/acme", keyAdmin, ""))
	put := e.do("PUT", "/v1/tenants/acme/announce", keyAdmin, `{"announce":"beep"}`)
	if put.Code != 200 || rev(t, put) != r0+1 {
		t.Fatalf("PUT announce = %d %s rev %d (was %d)", put.Code, put.Body, rev(t, put), r0)
	}
	get := e.do("GET", "/v1/tenants/acme/announce", keyAdmin, "")
	if rev(t, get) != r0+1 || get.Header().Get("ETag") != put.Header().Get("ETag") || !strings.Contains(get.Body.String(), `"beep"`) {
		t.Errorf("GET after PUT: rev %d, ETag %q (PUT's %q), %s", rev(t, get), get.Header().Get("ETag"), put.Header().Get("ETag"), get.Body)
	}
	if tn, _ := e.sync.Live().Current().Tenant("acme"); tn.Announce != "beep" {
		t.Errorf("announce in force = %q", tn.Announce)
	}
	del := e.do("DELETE", "/v1/tenants/acme/hunt-groups/support", keyAdmin, "")
	if del.Code != 204 || rev(t, del) != r0+2 {
		t.Errorf("DELETE = %d rev %s", del.Code, del.Header().Get(headerRevision))
	}
}

// fields decodes an invalid_directory answer's fields: the messages of each field, joined.
func fields(t testing.TB, rec *httptest.ResponseRecorder) map[string]string {
	t.Helper()
	var b struct {
		Error struct {
			Code   string
			Fields []app.FieldProblem
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("%s: %v", rec.Body, err)
	}
	out := map[string]string{}
	for _, f := range b.Error.Fields {
		if out[f.Field] != "" {
			out[f.Field] += "; "
		}
		out[f.Field] += f.Message
	}
	return out
}

// TestAdminValidationNamesFields: a change that would leave the directory invalid is 422
// invalid_directory, each problem naming its directory field; a tenant admin never sees
// another tenant's name, even in a clash with it.
func TestAdminValidationNamesFields(t *testing.T) {
	e := newEnv(t)
	// globex's admin chooses endpoints among those the operator gives it.
	if rec := e.do("PATCH", "/v1/tenants/globex", keyOperator, `{"endpoints":["PJSIP/3*"]}`); rec.Code != 200 {
		t.Fatalf("giving globex endpoints = %d %s", rec.Code, rec.Body)
	}
	r0 := e.sync.Live().Rev()
	cases := []struct {
		key, method, path, body string
		field, msg              string
	}{
		// A prefix that starts another.
		{keyAdmin, "PUT", "/v1/tenants/acme/dialing-rules", `{"spy_prefix":"*9"}`,
			"tenants[acme].dialing_rules.spy_prefix", `is a prefix of whisper_prefix "*91"`},
		// DTMF keys not distinct.
		{keyAdmin, "PUT", "/v1/tenants/acme/dialing-rules", `{"spy_dtmf":"1"}`,
			"tenants[acme].dialing_rules.spy_dtmf", `spy_dtmf and whisper_dtmf are both "1"`},
		// An endpoint another tenant (later in the directory) uses: reported at acme's field.
		{keyAdmin, "POST", "/v1/tenants/acme/extensions", `{"number":"102","endpoint":"PJSIP/300"}`,
			"tenants[acme].extensions[4].endpoint", `endpoint "PJSIP/300" already used by another tenant`},
		// ...and one an earlier tenant uses.
		{keyGlobexAdmin, "POST", "/v1/tenants/globex/extensions", `{"number":"302","endpoint":"pjsip/100"}`,
			"tenants[globex].extensions[2].endpoint", `already used by another tenant`},
		// An unknown extension in a member.
		{keyAdmin, "POST", "/v1/tenants/acme/hunt-groups/support/members", `{"extension":"799"}`,
			"tenants[acme].hunt_groups[support].members[4]", `unknown extension "799"`},
		// Supervision allowed for an agent.
		{keyAdmin, "PATCH", "/v1/tenants/acme/extensions/200", `{"role":"agent"}`,
			"tenants[acme].hunt_groups[support].members[2].supervision_allowed", `has role agent`},
		// Help timeouts out of order; a duration that is none.
		{keyAdmin, "PUT", "/v1/tenants/acme/help-policy", `{"escalate_after":"5m","expire_after":"1m"}`,
			"tenants[acme].help_requests.expire_after", "must be longer than escalate_after"},
	}
	for _, c := range cases {
		rec := e.do(c.method, c.path, c.key, c.body)
		if rec.Code != http.StatusUnprocessableEntity || apiErr(t, rec).Code != "invalid_directory" {
			t.Errorf("%s %s %s = %d %s, want 422 invalid_directory", c.method, c.path, c.body, rec.Code, rec.Body)
			continue
		}
		f := fields(t, rec)
		if msg, ok := f[c.field]; !ok || !strings.Contains(msg, c.msg) {
			t.Errorf("%s %s: fields %q, want %s: ...%s...", c.method, c.body, f, c.field, c.msg)
		}
		other := "globex"
		if c.key == keyGlobexAdmin {
			other = "acme"
		}
		if strings.Contains(rec.Body.String(), other) {
			t.Errorf("%s %s: the answer names tenant %s: %s", c.method, c.body, other, rec.Body)
		}
	}
	if rec := e.do("PUT", "/v1/tenants/acme/help-policy", keyAdmin, `{"escalate_after":"soon"}`); rec.Code != 422 || apiErr(t, rec).Field != "escalate_after" {
		t.Errorf("help policy with a bad duration = %d %s", rec.Code, rec.Body)
	}
	// The operator sees both sides of a clash.
	rec := e.do("POST", "/v1/tenants/acme/extensions", keyOperator, `{"number":"102","endpoint":"PJSIP/300"}`)
	if f := fields(t, rec); !strings.Contains(f["tenants[globex].extensions[0].endpoint"], "tenants[acme].extensions[4]") {
		t.Errorf("operator's fields %q", f)
	}
	if got := e.sync.Live().Rev(); got != r0 {
		t.Errorf("revision %d after refused changes, want %d", got, r0)
	}
	// Removing an extension hunt groups list: refused, naming each membership.
	rec = e.do("DELETE", "/v1/tenants/acme/extensions/101", keyAdmin, "")
	if d := apiErr(t, rec); rec.Code != 409 || d.Code != "extension_in_use" || fields(t, rec)["tenants[acme].hunt_groups[support].members[1]"] == "" {
		t.Errorf("DELETE a member's extension = %d %s", rec.Code, rec.Body)
	}
}

// TestAdminAudit: every change is audited before it is written, with the resource before and
// after and never a secret; an audit that fails leaves the directory as it was (503).
func TestAdminAudit(t *testing.T) {
	e := newEnv(t)
	const secret = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ="
	rec := e.do("POST", "/v1/tenants/acme/webhooks", keyAdmin, `{"url":"https://u:pw@crm.acme.example/hook","secret":"`+secret+`"}`)
	if rec.Code != 201 || strings.Contains(rec.Body.String(), "c2VjcmV0") || strings.Contains(rec.Body.String(), ":pw@") {
		t.Fatalf("create webhook = %d %s", rec.Code, rec.Body)
	}
	if rec := e.do("GET", "/v1/tenants/acme/webhooks", keyAdmin, ""); strings.Contains(rec.Body.String(), "c2VjcmV0") {
		t.Errorf("webhooks list shows the secret: %s", rec.Body)
	}
	if rec := e.do("PATCH", "/v1/tenants/acme", keyOperator, `{"supervision_enabled":false,"name":"ACME"}`); rec.Code != 200 {
		t.Fatalf("PATCH tenant = %d %s", rec.Code, rec.Body)
	}
	if rec := e.do("PATCH", "/v1/tenants/acme/extensions/100", keyAdmin, `{"name":"John"}`); rec.Code != 200 {
		t.Fatalf("PATCH extension = %d %s", rec.Code, rec.Body)
	}
	id := app.WebhookID("https://u:pw@crm.acme.example/hook")
	want := []string{
		"acme admin-key " + app.AuditWebhookCreate + " " + id,
		"acme ops " + app.AuditSupervisionOff + " acme",
		"acme ops " + app.AuditTenantUpdate + " acme",
		"acme admin-key " + app.AuditExtensionUpdate + " 100",
	}
	if !slices.Equal(e.svc.admin, want) {
		t.Errorf("audited %q, want %q", e.svc.admin, want)
	}
	for i, x := range e.svc.adminExtra {
		if strings.Contains(fmt.Sprint(x), "c2VjcmV0") || strings.Contains(fmt.Sprint(x), ":pw@") {
			t.Errorf("audit entry %d carries a secret: %v", i, x)
		}
	}
	if x := e.svc.adminExtra[0]; x["before"] != "" || !strings.Contains(x["after"], `"url":"https://u:xxxxx@crm.acme.example/hook"`) {
		t.Errorf("webhook create extra %v", x)
	}
	if x := e.svc.adminExtra[1]; !strings.Contains(x["before"], `"supervision_enabled":true`) || !strings.Contains(x["after"], `"supervision_enabled":false`) {
		t.Errorf("supervision off extra %v", x)
	}
	if x := e.svc.adminExtra[3]; !strings.Contains(x["before"], `"name":""`) || !strings.Contains(x["after"], `"name":"John"`) {
		t.Errorf("extension update extra %v", x)
	}

	// The trail unavailable: 503, nothing written, nothing in force.
	r0 := e.sync.Live().Rev()
	e.svc.adminErr = fmt.Errorf("%w: redis down", app.ErrUnavailable)
	rec = e.do("PUT", "/v1/tenants/acme/announce", keyAdmin, `{"announce":"beep"}`)
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("change without a trail = %d %s, want 503", rec.Code, rec.Body)
	}
	e.svc.adminErr = nil
	if rev, err := e.st.DirectoryRev(t.Context()); err != nil || rev != r0 || e.sync.Live().Rev() != r0 {
		t.Errorf("revision %d (%v), in force %d, want %d", rev, err, e.sync.Live().Rev(), r0)
	}
	if tn, _ := e.sync.Live().Current().Tenant("acme"); tn.Announce != "none" {
		t.Errorf("announce = %q after an unaudited change", tn.Announce)
	}
}

// TestAdminTenantLifecycle: the operator creates a tenant, which the directory has at once; a
// tenant with supervisions in progress is not deleted; deleting one revokes its API keys, so
// they do not come back with a new tenant of that id.
func TestAdminTenantLifecycle(t *testing.T) {
	e := newEnv(t)
	rec := e.do("POST", "/v1/tenants", keyOperator, `{"id":"initech","name":"Initech"}`)
	if rec.Code != 201 || rec.Header().Get("Location") != "/v1/tenants/initech" {
		t.Fatalf("create = %d %s (Location %q)", rec.Code, rec.Body, rec.Header().Get("Location"))
	}
	var tv app.TenantView
	if err := json.Unmarshal(rec.Body.Bytes(), &tv); err != nil || tv.SupervisionEnabled || tv.RequestSignatures != "optional" {
		t.Errorf("created %s", rec.Body)
	}
	if get := e.do("GET", "/v1/tenants/initech", keyOperator, ""); get.Header().Get("ETag") != rec.Header().Get("ETag") {
		t.Errorf("GET's ETag %q, create's %q", get.Header().Get("ETag"), rec.Header().Get("ETag"))
	}
	if rec := e.do("POST", "/v1/tenants", keyOperator, `{"id":"initech"}`); rec.Code != 409 || apiErr(t, rec).Code != "tenant_exists" {
		t.Errorf("create again = %d %s", rec.Code, rec.Body)
	}
	if rec := e.do("POST", "/v1/tenants", keyOperator, `{"id":"Bad Id"}`); rec.Code != 422 || !strings.Contains(fields(t, rec)["tenants[3].id"], "want 1-64 characters") {
		t.Errorf("create with a bad id = %d %s", rec.Code, rec.Body)
	}

	// A supervision in progress in acme: not deleted.
	if err := e.st.CreateSession(t.Context(), store.Session{ID: "sup-live", Tenant: "acme", Supervisor: "200", Agent: "100",
		CallID: "c1", Mode: "spy", State: store.StateActive, StartedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if rec := e.do("DELETE", "/v1/tenants/acme", keyOperator, ""); rec.Code != 409 || apiErr(t, rec).Code != "tenant_busy" {
		t.Errorf("DELETE busy tenant = %d %s", rec.Code, rec.Body)
	}

	// globex has a key created through the API; deleting globex revokes it.
	gkey := e.createKey(keyGlobexAdmin, `{"name":"crm","role":"admin"}`)
	if rec := e.do("DELETE", "/v1/tenants/globex", keyOperator, ""); rec.Code != 204 {
		t.Fatalf("DELETE globex = %d %s", rec.Code, rec.Body)
	}
	if rec := e.do("GET", "/v1/tenants/globex", keyOperator, ""); rec.Code != 404 {
		t.Errorf("GET deleted tenant = %d", rec.Code)
	}
	if rec := e.do("GET", "/v1/api-keys", keyGlobexAdmin, ""); rec.Code != 401 {
		t.Errorf("deleted tenant's bootstrap key = %d", rec.Code)
	}
	if rec := e.do("POST", "/v1/tenants", keyOperator, `{"id":"globex"}`); rec.Code != 201 {
		t.Fatalf("create globex again = %d %s", rec.Code, rec.Body)
	}
	if rec := e.do("GET", "/v1/tenants/globex", gkey, ""); rec.Code != 401 {
		t.Errorf("a key of the deleted globex, with a new globex = %d %s", rec.Code, rec.Body)
	}
}

// TestAdminNamesInPaths: a hunt group name with a space or a slash is reached by its escaped
// path.
func TestAdminNamesInPaths(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"Tier 2", "a/b"} {
		body, _ := json.Marshal(app.HuntGroupView{Name: name, Members: []app.MemberView{{Extension: "201", SupervisionAllowed: true}}})
		rec := e.do("POST", "/v1/tenants/acme/hunt-groups", keyAdmin, string(body))
		if rec.Code != 201 {
			t.Fatalf("create %q = %d %s", name, rec.Code, rec.Body)
		}
		loc := rec.Header().Get("Location")
		if got := e.do("GET", loc+"/members/201", keyAdmin, ""); got.Code != 200 {
			t.Errorf("GET %s/members/201 = %d %s", loc, got.Code, got.Body)
		}
	}
}

// TestAdminDirectoryFollowsAuth: a change is in force for authentication at once (an extension
// gone is a key gone) — the edge reads the same Live directory the admin API writes.
func TestAdminDirectoryFollowsAuth(t *testing.T) {
	e := newEnv(t)
	key := e.createKey(keyAdmin, `{"name":"desk-101","role":"agent","extension":"101"}`)
	if rec := e.do("DELETE", "/v1/tenants/acme/hunt-groups/support/members/101", keyAdmin, ""); rec.Code != 204 {
		t.Fatal(rec.Code, rec.Body)
	}
	if rec := e.do("DELETE", "/v1/tenants/acme/extensions/101", keyAdmin, ""); rec.Code != 204 {
		t.Fatal(rec.Code, rec.Body)
	}
	deadline := time.Now().Add(time.Second)
	for e.do("GET", "/v1/events", key, "").Code != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatal("a key of a removed extension still authenticates")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOperatorFirstTenantKey: the operator creates a tenant through the API, then its first
// admin key (POST /v1/tenants/{tenant}/api-keys), audited in that tenant's trail; that key
// administers its tenant and finds no other; the operator lists and revokes the tenant's keys.
func TestOperatorFirstTenantKey(t *testing.T) {
	e := newEnv(t)
	if rec := e.do("POST", "/v1/tenants", keyOperator, `{"id":"initech","name":"Initech"}`); rec.Code != 201 {
		t.Fatalf("create tenant = %d %s", rec.Code, rec.Body)
	}
	rec := e.do("POST", "/v1/tenants/initech/api-keys", keyOperator, `{"name":"crm","role":"admin"}`)
	var created struct {
		Key       string `json:"key"`
		CreatedBy string `json:"created_by"`
		Source    string `json:"source"`
	}
	if rec.Code != 201 || json.Unmarshal(rec.Body.Bytes(), &created) != nil || !strings.HasPrefix(created.Key, keyPrefix) ||
		created.CreatedBy != "operator:ops" || created.Source != "api" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("operator creating initech's key = %d %s", rec.Code, rec.Body)
	}
	if !slices.Contains(e.svc.admin, "initech ops "+app.AuditAPIKeyCreate+" crm") {
		t.Errorf("audited %q, want the creation in initech's trail by the operator", e.svc.admin)
	}
	key := created.Key

	// The key is initech's admin: its routes answer, another tenant's do not exist.
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/v1/tenants/initech", "", 200},
		{"GET", "/v1/tenants/initech/extensions", "", 200},
		{"GET", "/v1/tenants/initech/api-keys", "", 200},
		{"GET", "/v1/api-keys", "", 200},
		{"POST", "/v1/tenants/initech/hunt-groups", `{"name":"support"}`, 201},
		{"GET", "/v1/tenants/acme", "", 404},
		{"GET", "/v1/tenants/acme/extensions", "", 404},
		{"GET", "/v1/tenants/acme/api-keys", "", 404},
		{"POST", "/v1/tenants/acme/api-keys", `{"name":"mine","role":"admin"}`, 404},
		{"DELETE", "/v1/tenants/acme/api-keys/admin-key", "", 404},
		{"POST", "/v1/tenants", `{"id":"other"}`, 403},
		// initech has no endpoints: choosing one is the operator's.
		{"POST", "/v1/tenants/initech/extensions", `{"number":"100","endpoint":"PJSIP/initech-100"}`, 403},
	} {
		rec := e.do(c.method, c.path, key, c.body)
		if rec.Code != c.want {
			t.Errorf("%s %s with initech's key = %d %s, want %d", c.method, c.path, rec.Code, rec.Body, c.want)
		}
		if rec.Code == 404 && strings.Contains(rec.Body.String(), "globex") {
			t.Errorf("%s %s names another tenant: %s", c.method, c.path, rec.Body)
		}
		if rec.Code == 403 && c.method == "POST" && strings.HasSuffix(c.path, "/extensions") {
			if d := apiErr(t, rec); d.Code != "operator_only" || d.Field != "endpoint" {
				t.Errorf("extension without endpoints: %+v", d)
			}
		}
	}
	// Once the operator gives initech endpoints, its admin chooses among them.
	if rec := e.do("PATCH", "/v1/tenants/initech", keyOperator, `{"endpoints":["PJSIP/initech-*"]}`); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"endpoints":["PJSIP/initech-*"]`) {
		t.Fatalf("giving initech endpoints = %d %s", rec.Code, rec.Body)
	}
	if rec := e.do("POST", "/v1/tenants/initech/extensions", key, `{"number":"100","endpoint":"PJSIP/initech-100"}`); rec.Code != 201 {
		t.Errorf("initech's admin within its endpoints = %d %s", rec.Code, rec.Body)
	}
	rec = e.do("POST", "/v1/tenants/initech/extensions", key, `{"number":"101","endpoint":"PJSIP/999"}`)
	if f := fields(t, rec); rec.Code != 422 || !strings.Contains(f["tenants[initech].extensions[1].endpoint"], `is not in the tenant's endpoints (PJSIP/initech-*)`) {
		t.Errorf("initech's admin outside its endpoints = %d %s", rec.Code, rec.Body)
	}

	// The operator lists and revokes the tenant's keys; the revocation is audited likewise.
	rec = e.do("GET", "/v1/tenants/initech/api-keys", keyOperator, "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"name":"crm"`) || strings.Contains(rec.Body.String(), created.Key) {
		t.Errorf("operator listing initech's keys = %d %s", rec.Code, rec.Body)
	}
	if rec := e.do("DELETE", "/v1/tenants/initech/api-keys/nope", keyOperator, ""); rec.Code != 404 {
		t.Errorf("revoking a key that does not exist = %d %s", rec.Code, rec.Body)
	}
	if rec := e.do("DELETE", "/v1/tenants/initech/api-keys/crm", keyOperator, ""); rec.Code != 204 {
		t.Fatalf("operator revoking = %d %s", rec.Code, rec.Body)
	}
	if !slices.Contains(e.svc.admin, "initech ops "+app.AuditAPIKeyRevoke+" crm") {
		t.Errorf("audited %q, want the revocation in initech's trail by the operator", e.svc.admin)
	}
	if rec := e.do("GET", "/v1/tenants/initech", key, ""); rec.Code != 401 {
		t.Errorf("a revoked key = %d", rec.Code)
	}
	// A tenant that does not exist has no keys to make.
	if rec := e.do("POST", "/v1/tenants/nope/api-keys", keyOperator, `{"name":"crm","role":"admin"}`); rec.Code != 404 || apiErr(t, rec).Code != "no_such_tenant" {
		t.Errorf("a key of no tenant = %d %s", rec.Code, rec.Body)
	}
}

// TestAdminDeleteExtensionRevokesKeys: deleting an extension through the API revokes the keys
// created through the API that act as it (audited), so that a new extension of that number
// does not bring them back; other keys stay.
func TestAdminDeleteExtensionRevokesKeys(t *testing.T) {
	e := newEnv(t)
	desk := e.createKey(keyAdmin, `{"name":"desk-101","role":"agent","extension":"101"}`)
	other := e.createKey(keyAdmin, `{"name":"desk-201","role":"agent","extension":"201"}`)
	if rec := e.do("DELETE", "/v1/tenants/acme/hunt-groups/support/members/101", keyAdmin, ""); rec.Code != 204 {
		t.Fatal(rec.Code, rec.Body)
	}
	e.svc.admin, e.svc.adminExtra = nil, nil
	if rec := e.do("DELETE", "/v1/tenants/acme/extensions/101", keyAdmin, ""); rec.Code != 204 {
		t.Fatal(rec.Code, rec.Body)
	}
	want := []string{"acme admin-key " + app.AuditExtensionDelete + " 101", "acme admin-key " + app.AuditAPIKeyRevoke + " desk-101"}
	if !slices.Equal(e.svc.admin, want) {
		t.Errorf("audited %q, want %q", e.svc.admin, want)
	}
	if x := e.svc.adminExtra[1]; x["reason"] != "extension_removed" || x["extension"] != "101" {
		t.Errorf("revocation extra %v", x)
	}
	if rec := e.do("GET", "/v1/api-keys", keyAdmin, ""); contains(rec.Body.Bytes(), "desk-101") || !contains(rec.Body.Bytes(), "desk-201") {
		t.Errorf("keys after deleting 101: %s", rec.Body)
	}
	// 101 again (another phone, maybe another person): the old key stays dead.
	if rec := e.do("POST", "/v1/tenants/acme/extensions", keyAdmin, `{"number":"101","endpoint":"PJSIP/1011"}`); rec.Code != 201 {
		t.Fatal(rec.Code, rec.Body)
	}
	if rec := e.do("GET", "/v1/events", desk, ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("the deleted extension's key with a new 101 = %d", rec.Code)
	}
	if rec := e.do("GET", "/v1/api-keys", other, ""); rec.Code != http.StatusForbidden { // alive: an agent's key, refused the admin route
		t.Errorf("another extension's key = %d %s", rec.Code, rec.Body)
	}
	// A revocation that cannot be audited fails the deletion: 503, the extension and its key
	// stay (nothing is written).
	if rec := e.do("DELETE", "/v1/tenants/acme/hunt-groups/support/members/201", keyAdmin, ""); rec.Code != 204 {
		t.Fatal(rec.Code, rec.Body)
	}
	e.svc.adminErr, e.svc.adminErrAction = fmt.Errorf("%w: redis down", app.ErrUnavailable), app.AuditAPIKeyRevoke
	if rec := e.do("DELETE", "/v1/tenants/acme/extensions/201", keyAdmin, ""); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("deleting 201 without a trail for its key = %d %s", rec.Code, rec.Body)
	}
	e.svc.adminErr, e.svc.adminErrAction = nil, ""
	if _, ok := e.sync.Live().Current().Extension("acme", "201"); !ok {
		t.Error("extension 201 deleted although its key's revocation was not audited")
	}
	if rec := e.do("GET", "/v1/api-keys", other, ""); rec.Code != http.StatusForbidden {
		t.Errorf("201's key after the refused deletion = %d %s", rec.Code, rec.Body)
	}
}
