package webhooks

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

// TestAuthorizationMatrix checks every route against every kind of caller: no key, a bad key,
// a revoked key, and agent, supervisor and admin keys of the same and of another tenant, with
// their own and other extensions' sessions. It asserts the status and which Service methods
// were called: a route's permission (app.Principal.Authorize) refuses before the handler runs;
// the finer rules (own extension, own session, tenant) are the app's, applied when it is asked
// (here by the fake service, with the app's own rule functions).
func TestAuthorizationMatrix(t *testing.T) {
	e := newEnv(t)
	// A supervisor key for extension 201 created through the API, and a revoked one.
	keyAPISup := e.createKey(keyAdmin, `{"name":"api-sup","role":"supervisor","extension":"201"}`)
	keyRevoked := e.createKey(keyAdmin, `{"name":"gone","role":"admin"}`)
	if rec := e.do(http.MethodDelete, "/v1/api-keys/gone", keyAdmin, ""); rec.Code != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
	}

	const (
		none    = ""
		bad     = "ek_not-a-key"
		joinSpy = `{"agent":"100","mode":"spy"}`
		whisper = `{"mode":"whisper"}`
	)
	keys := map[string]string{
		"none": none, "bad": bad, "revoked": keyRevoked, "agent": keyAgent, "sup": keySup,
		"apisup": keyAPISup, "admin": keyAdmin, "gadmin": keyGlobexAdmin, "gsup": keyGlobexSup,
	}
	type row struct {
		who, method, path, body string
		want                    int
		calls                   []string // Service methods called, in order
		joinSup                 string   // for a 202 join: the supervisor the session calls
		code                    string   // for an error, when it matters: the code
	}
	var rows []row
	// Callers that never reach a handler.
	for _, who := range []string{"none", "bad", "revoked"} {
		for _, r := range [][3]string{
			{"GET", "/v1/calls", ""}, {"POST", "/v1/supervisions", joinSpy}, {"GET", "/v1/supervisions", ""},
			{"GET", "/v1/supervisions/sup-own", ""}, {"PATCH", "/v1/supervisions/sup-own", whisper},
			{"DELETE", "/v1/supervisions/sup-own", ""}, {"POST", "/v1/api-keys", `{"name":"x","role":"admin"}`},
			{"GET", "/v1/api-keys", ""}, {"DELETE", "/v1/api-keys/api-sup", ""}, {"GET", "/v1/events", ""},
			{"GET", "/v1/webhook-deliveries", ""},
		} {
			rows = append(rows, row{who: who, method: r[0], path: r[1], body: r[2], want: 401})
		}
	}
	// Agents may use none of it (GET /v1/events, filtered to their own help events, is
	// TestEventRecipients').
	for _, r := range [][3]string{
		{"GET", "/v1/calls", ""}, {"POST", "/v1/supervisions", joinSpy}, {"GET", "/v1/supervisions", ""},
		{"GET", "/v1/supervisions/sup-own", ""}, {"PATCH", "/v1/supervisions/sup-own", whisper},
		{"DELETE", "/v1/supervisions/sup-own", ""}, {"POST", "/v1/api-keys", `{"name":"x","role":"admin"}`},
		{"GET", "/v1/api-keys", ""}, {"DELETE", "/v1/api-keys/api-sup", ""},
		{"GET", "/v1/webhook-deliveries", ""},
	} {
		rows = append(rows, row{who: "agent", method: r[0], path: r[1], body: r[2], want: 403})
	}
	rows = append(rows,
		// Calls.
		row{who: "sup", method: "GET", path: "/v1/calls", want: 200, calls: []string{"Calls"}},
		row{who: "apisup", method: "GET", path: "/v1/calls", want: 200, calls: []string{"Calls"}},
		row{who: "admin", method: "GET", path: "/v1/calls", want: 200, calls: []string{"Calls"}},
		row{who: "gadmin", method: "GET", path: "/v1/calls", want: 200, calls: []string{"Calls"}},

		// Join: a supervisor joins as itself only; an admin must name the supervisor.
		row{who: "sup", method: "POST", path: "/v1/supervisions", body: joinSpy, want: 202, calls: []string{"Join"}, joinSup: "200"},
		row{who: "sup", method: "POST", path: "/v1/supervisions", body: `{"agent":"100","supervisor":"200","mode":"spy"}`, want: 202, calls: []string{"Join"}, joinSup: "200"},
		row{who: "sup", method: "POST", path: "/v1/supervisions", body: `{"agent":"100","supervisor":"201","mode":"spy"}`, want: 403, calls: []string{"Join"}, code: "not_own_extension"},
		row{who: "apisup", method: "POST", path: "/v1/supervisions", body: joinSpy, want: 202, calls: []string{"Join"}, joinSup: "201"},
		row{who: "admin", method: "POST", path: "/v1/supervisions", body: joinSpy, want: 422, calls: []string{"Join"}, code: "invalid_field"},
		row{who: "admin", method: "POST", path: "/v1/supervisions", body: `{"call_id":"chan-100","supervisor":"201","mode":"barge"}`, want: 202, calls: []string{"Join"}, joinSup: "201"},
		row{who: "gsup", method: "POST", path: "/v1/supervisions", body: `{"agent":"301","mode":"spy"}`, want: 202, calls: []string{"Join"}, joinSup: "300"},

		// List.
		row{who: "sup", method: "GET", path: "/v1/supervisions", want: 200, calls: []string{"Supervisions"}},
		row{who: "admin", method: "GET", path: "/v1/supervisions", want: 200, calls: []string{"Supervisions"}},
		row{who: "gsup", method: "GET", path: "/v1/supervisions", want: 200, calls: []string{"Supervisions"}},

		// One session: own extension, other extension, other tenant.
		row{who: "sup", method: "GET", path: "/v1/supervisions/sup-own", want: 200, calls: []string{"Supervision"}},
		row{who: "sup", method: "GET", path: "/v1/supervisions/sup-201", want: 403, calls: []string{"Supervision"}, code: "not_own_session"},
		row{who: "sup", method: "GET", path: "/v1/supervisions/sup-globex", want: 404, calls: []string{"Supervision"}},
		row{who: "apisup", method: "GET", path: "/v1/supervisions/sup-201", want: 200, calls: []string{"Supervision"}},
		row{who: "apisup", method: "GET", path: "/v1/supervisions/sup-own", want: 403, calls: []string{"Supervision"}},
		row{who: "admin", method: "GET", path: "/v1/supervisions/sup-201", want: 200, calls: []string{"Supervision"}},
		row{who: "admin", method: "GET", path: "/v1/supervisions/sup-globex", want: 404, calls: []string{"Supervision"}},
		row{who: "gadmin", method: "GET", path: "/v1/supervisions/sup-globex", want: 200, calls: []string{"Supervision"}},
		row{who: "gadmin", method: "GET", path: "/v1/supervisions/sup-own", want: 404, calls: []string{"Supervision"}},

		row{who: "sup", method: "PATCH", path: "/v1/supervisions/sup-own", body: whisper, want: 200, calls: []string{"SetMode"}},
		row{who: "sup", method: "PATCH", path: "/v1/supervisions/sup-201", body: whisper, want: 403, calls: []string{"SetMode"}, code: "not_own_session"},
		row{who: "sup", method: "PATCH", path: "/v1/supervisions/sup-globex", body: whisper, want: 404, calls: []string{"SetMode"}},
		row{who: "admin", method: "PATCH", path: "/v1/supervisions/sup-201", body: whisper, want: 200, calls: []string{"SetMode"}},
		row{who: "gadmin", method: "PATCH", path: "/v1/supervisions/sup-own", body: whisper, want: 404, calls: []string{"SetMode"}},
		row{who: "gsup", method: "PATCH", path: "/v1/supervisions/sup-globex", body: whisper, want: 200, calls: []string{"SetMode"}},

		row{who: "sup", method: "DELETE", path: "/v1/supervisions/sup-own", want: 200, calls: []string{"Leave"}},
		row{who: "sup", method: "DELETE", path: "/v1/supervisions/sup-201", want: 403, calls: []string{"Leave"}, code: "not_own_session"},
		row{who: "sup", method: "DELETE", path: "/v1/supervisions/sup-globex", want: 404, calls: []string{"Leave"}},
		row{who: "apisup", method: "DELETE", path: "/v1/supervisions/sup-201", want: 200, calls: []string{"Leave"}},
		row{who: "admin", method: "DELETE", path: "/v1/supervisions/sup-own", want: 200, calls: []string{"Leave"}},
		row{who: "gadmin", method: "DELETE", path: "/v1/supervisions/sup-201", want: 404, calls: []string{"Leave"}},

		// API keys: admins of their own tenant only.
		row{who: "sup", method: "POST", path: "/v1/api-keys", body: `{"name":"k1","role":"agent","extension":"101"}`, want: 403},
		row{who: "apisup", method: "POST", path: "/v1/api-keys", body: `{"name":"k1","role":"agent","extension":"101"}`, want: 403},
		row{who: "admin", method: "POST", path: "/v1/api-keys", body: `{"name":"k1","role":"agent","extension":"101"}`, want: 201},
		row{who: "gadmin", method: "POST", path: "/v1/api-keys", body: `{"name":"k2","role":"agent","extension":"101"}`, want: 422}, // acme's extension
		row{who: "gadmin", method: "POST", path: "/v1/api-keys", body: `{"name":"k2","role":"agent","extension":"301"}`, want: 201},
		row{who: "sup", method: "GET", path: "/v1/api-keys", want: 403},
		row{who: "admin", method: "GET", path: "/v1/api-keys", want: 200},
		row{who: "sup", method: "DELETE", path: "/v1/api-keys/k1", want: 403},
		row{who: "gadmin", method: "DELETE", path: "/v1/api-keys/k1", want: 404}, // acme's key
		row{who: "admin", method: "DELETE", path: "/v1/api-keys/sup-key", want: 409},
		row{who: "admin", method: "DELETE", path: "/v1/api-keys/nope", want: 404},
		row{who: "admin", method: "DELETE", path: "/v1/api-keys/k1", want: 204},

		// Deliveries: admins.
		row{who: "sup", method: "GET", path: "/v1/webhook-deliveries", want: 403},
		row{who: "admin", method: "GET", path: "/v1/webhook-deliveries", want: 200},
		row{who: "gadmin", method: "GET", path: "/v1/webhook-deliveries", want: 200},

		// The OpenAPI document is public.
		row{who: "none", method: "GET", path: "/v1/openapi.json", want: 200},
		row{who: "bad", method: "GET", path: "/v1/openapi.json", want: 200},
	)

	for _, r := range rows {
		e.svc.reset()
		rec := e.do(r.method, r.path, keys[r.who], r.body)
		name := r.who + " " + r.method + " " + r.path
		if r.body != "" {
			name += " " + r.body
		}
		if rec.Code != r.want {
			t.Errorf("%s = %d %s, want %d", name, rec.Code, rec.Body, r.want)
		}
		if got := e.svc.take(); !reflect.DeepEqual(got, r.calls) {
			t.Errorf("%s called %v, want %v", name, got, r.calls)
		}
		if r.want >= 400 {
			if d := apiErr(t, rec); d.Code == "" || d.Message == "" || (r.code != "" && d.Code != r.code) {
				t.Errorf("%s: error body %s, want a message and code %q", name, rec.Body, r.code)
			}
		}
		if r.want == 401 && rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", name)
		}
		if r.joinSup != "" {
			var sess app.SessionView
			if err := json.Unmarshal(rec.Body.Bytes(), &sess); err != nil || sess.Supervisor != r.joinSup {
				t.Errorf("%s: session %s, want supervisor %s", name, rec.Body, r.joinSup)
			}
		}
	}
}

func TestSupervisorSeesOwnSessionsOnly(t *testing.T) {
	e := newEnv(t)
	ids := func(key string) []string {
		rec := e.do(http.MethodGet, "/v1/supervisions", key, "")
		var out struct{ Supervisions []app.SessionView }
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range out.Supervisions {
			ids = append(ids, s.ID)
		}
		return ids
	}
	if got := ids(keySup); !reflect.DeepEqual(got, []string{"sup-own"}) {
		t.Errorf("supervisor 200 sees %v", got)
	}
	if got := ids(keyAdmin); !reflect.DeepEqual(got, []string{"sup-201", "sup-own"}) {
		t.Errorf("acme admin sees %v", got)
	}
	if got := ids(keyGlobexSup); !reflect.DeepEqual(got, []string{"sup-globex"}) {
		t.Errorf("globex supervisor sees %v", got)
	}
}

func TestAPIKeys(t *testing.T) {
	e := newEnv(t)
	rec := e.do(http.MethodPost, "/v1/api-keys", keyAdmin, `{"name":"crm-2","role":"supervisor","extension":"201"}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create = %d %s", rec.Code, rec.Body)
	}
	var created createdKeyJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &created); err != nil {
		t.Fatal(err)
	}
	if created.Name != "crm-2" || created.Role != "supervisor" || created.Extension != "201" || created.Source != "api" || created.CreatedBy != "admin-key" {
		t.Errorf("created = %+v", created)
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Error("created key answer may be cached")
	}
	// Only the hash is stored.
	stored, err := e.st.APIKeys(t.Context(), "acme")
	if err != nil || len(stored) != 1 {
		t.Fatalf("stored keys = %+v, %v", stored, err)
	}
	raw, _ := json.Marshal(stored)
	sum := sha256.Sum256([]byte(created.Key))
	if stored[0].SHA256 != hex.EncodeToString(sum[:]) || contains(raw, created.Key) {
		t.Errorf("stored record %s: want the key's SHA-256 and never the key", raw)
	}
	for _, k := range e.rdb.Keys(t.Context(), "*").Val() {
		if v, _ := e.rdb.Get(t.Context(), k).Result(); contains([]byte(v), created.Key) {
			t.Errorf("Redis key %s holds the plain key", k)
		}
	}
	// The new key works, as supervisor 201.
	if rec := e.do(http.MethodGet, "/v1/supervisions/sup-201", created.Key, ""); rec.Code != http.StatusOK {
		t.Errorf("new key: %d %s", rec.Code, rec.Body)
	}

	// Listing shows bootstrap and created keys, never a key or hash.
	rec = e.do(http.MethodGet, "/v1/api-keys", keyAdmin, "")
	if rec.Code != http.StatusOK || contains(rec.Body.Bytes(), created.Key) || contains(rec.Body.Bytes(), stored[0].SHA256) || contains(rec.Body.Bytes(), "sha256") {
		t.Fatalf("list = %d %s", rec.Code, rec.Body)
	}
	var list struct {
		APIKeys []apiKeyJSON `json:"api_keys"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, k := range list.APIKeys {
		names = append(names, k.Name+"/"+k.Source)
	}
	if want := []string{"admin-key/config", "agent-key/config", "crm-2/api", "sup-key/config"}; !reflect.DeepEqual(names, want) {
		t.Errorf("listed %v, want %v", names, want)
	}

	for _, tc := range []struct {
		body, field string
		code        int
	}{
		{`{"name":"","role":"admin"}`, "name", 422},
		{`{"name":"has space","role":"admin"}`, "name", 422},
		{`{"name":"x","role":"root"}`, "role", 422},
		{`{"name":"x","role":"admin","extension":"200"}`, "extension", 422},
		{`{"name":"x","role":"supervisor"}`, "extension", 422},
		{`{"name":"x","role":"supervisor","extension":"999"}`, "extension", 422},
		{`{"name":"crm-2","role":"admin"}`, "", 409},   // taken
		{`{"name":"sup-key","role":"admin"}`, "", 409}, // a bootstrap key's name
		{`{"name":"x","role":"admin","key":"mine"}`, "key", 400},
	} {
		rec := e.do(http.MethodPost, "/v1/api-keys", keyAdmin, tc.body)
		if rec.Code != tc.code {
			t.Errorf("create %s = %d %s, want %d", tc.body, rec.Code, rec.Body, tc.code)
			continue
		}
		if d := apiErr(t, rec); d.Field != tc.field {
			t.Errorf("create %s: field %q, want %q (%s)", tc.body, d.Field, tc.field, rec.Body)
		}
	}

	// Revoked: 401 from then on.
	if rec := e.do(http.MethodDelete, "/v1/api-keys/crm-2", keyAdmin, ""); rec.Code != http.StatusNoContent {
		t.Fatalf("revoke = %d %s", rec.Code, rec.Body)
	}
	if rec := e.do(http.MethodGet, "/v1/supervisions/sup-201", created.Key, ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("revoked key: %d", rec.Code)
	}
	if d := apiErr(t, e.do(http.MethodDelete, "/v1/api-keys/sup-key", keyAdmin, "")); d.Code != codeBootstrapKey {
		t.Errorf("deleting a bootstrap key: %+v", d)
	}
}

func contains(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }

// sign computes a request signature independently of the server's code, from the scheme as
// the README documents it.
func sign(secret string, ts int64, nonce, method, target, body string) string {
	path, query, _ := strings.Cut(target, "?")
	sum := sha256.Sum256([]byte(body))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strings.Join([]string{"v1", strconv.FormatInt(ts, 10), nonce, method, path, query, hex.EncodeToString(sum[:])}, "\n")))
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// signedReq is a request with the three signature headers.
type signedReq struct {
	method, target, body, key string
	ts                        int64
	nonce, sig                string
}

var nonceSeq int

// newSigned signs a request with secret, a fresh nonce and timestamp t0.
func newSigned(method, target, body, key, secret string) signedReq {
	nonceSeq++
	nonce := fmt.Sprintf("nonce-%016d", nonceSeq)
	ts := t0.Unix()
	return signedReq{method, target, body, key, ts, nonce, sign(secret, ts, nonce, method, target, body)}
}

func (e *env) doSigned(r signedReq) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.do(r.method, r.target, r.key, r.body,
		HeaderTimestamp, strconv.FormatInt(r.ts, 10), HeaderNonce, r.nonce, HeaderSignature, r.sig)
}

// TestSignedRequests: a signature is keyed by the key's signing secret (not the API key sent
// with the request), covers the method, path, query and body, and is accepted once, GET
// included. The regression: a captured signed GET /v1/calls replayed as DELETE
// /v1/api-keys/... was accepted.
func TestSignedRequests(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Directory = testDirectory(t, "globex") })
	supSecret := signingSecret(keySup)
	body := `{"agent":"100","mode":"spy"}`
	code := func(rec *httptest.ResponseRecorder) (int, string) {
		if rec.Code >= 400 {
			return rec.Code, apiErr(t, rec).Code
		}
		return rec.Code, ""
	}
	post := newSigned("POST", "/v1/supervisions", body, keySup, supSecret)
	if st, c := code(e.doSigned(post)); st != 202 {
		t.Fatalf("signed POST = %d %s", st, c)
	}
	if got := SignRequest(supSecret, post.ts, post.nonce, "POST", "/v1/supervisions", []byte(body)); got != post.sig {
		t.Errorf("SignRequest = %s, the documented scheme gives %s", got, post.sig)
	}

	// A captured admin GET, and what an attacker makes of it.
	get := newSigned("GET", "/v1/calls", "", keyAdmin, signingSecret(keyAdmin))
	asDelete := get
	asDelete.method, asDelete.target = "DELETE", "/v1/api-keys/strict"
	k := e.createKey(keyAdmin, `{"name":"strict","role":"admin","require_signatures":true}`)
	if st, c := code(e.doSigned(asDelete)); st != 401 || c != codeInvalidSignature {
		t.Errorf("signed GET /v1/calls sent as DELETE /v1/api-keys/strict: %d %s, want 401 %s", st, c, codeInvalidSignature)
	}
	if st, c := code(e.doSigned(get)); st != 200 {
		t.Fatalf("signed GET = %d %s", st, c)
	}
	if st, c := code(e.doSigned(get)); st != 401 || c != codeSignatureReplayed {
		t.Errorf("signed GET replayed: %d %s, want 401 %s", st, c, codeSignatureReplayed)
	}
	if st, c := code(e.doSigned(asDelete)); st != 401 {
		t.Errorf("signed GET replayed as DELETE: %d %s", st, c)
	}
	if st, _ := code(e.do("GET", "/v1/calls", k, "")); st != 401 {
		t.Errorf("the strict key still requires signatures: %d (was it revoked by a replay?)", st)
	}

	ts := t0.Unix()
	for _, tc := range []struct {
		name     string
		r        signedReq
		wantCode string
	}{
		{"replayed", post, codeSignatureReplayed},
		{"keyed by the API key", func() signedReq { r := newSigned("POST", "/v1/supervisions", body, keySup, keySup); return r }(), codeInvalidSignature},
		{"another key's secret", newSigned("POST", "/v1/supervisions", body, keySup, signingSecret(keyAdmin)), codeInvalidSignature},
		{"body changed", func() signedReq {
			r := newSigned("POST", "/v1/supervisions", body, keySup, supSecret)
			r.body = `{"agent":"101","mode":"spy"}`
			return r
		}(), codeInvalidSignature},
		{"query changed", func() signedReq {
			r := newSigned("GET", "/v1/calls?x=1", "", keySup, supSecret)
			r.target = "/v1/calls?x=2"
			return r
		}(), codeInvalidSignature},
		{"path changed", func() signedReq {
			r := newSigned("GET", "/v1/supervisions", "", keySup, supSecret)
			r.target = "/v1/calls"
			return r
		}(), codeInvalidSignature},
		{"nonce changed", func() signedReq {
			r := newSigned("GET", "/v1/calls", "", keySup, supSecret)
			r.nonce = "another-nonce-0000000001"
			return r
		}(), codeInvalidSignature},
		{"the old scheme (API key, timestamp.body)", func() signedReq {
			r := newSigned("POST", "/v1/supervisions", body, keySup, supSecret)
			mac := hmac.New(sha256.New, []byte(keySup))
			mac.Write([]byte(strconv.FormatInt(ts, 10) + "." + body))
			r.sig = "v1=" + hex.EncodeToString(mac.Sum(nil))
			return r
		}(), codeInvalidSignature},
		{"too old", func() signedReq {
			r := newSigned("GET", "/v1/calls", "", keySup, supSecret)
			r.ts -= 301
			r.sig = sign(supSecret, r.ts, r.nonce, r.method, r.target, r.body)
			return r
		}(), codeSignatureExpired},
		{"too new", func() signedReq {
			r := newSigned("GET", "/v1/calls", "", keySup, supSecret)
			r.ts += 301
			r.sig = sign(supSecret, r.ts, r.nonce, r.method, r.target, r.body)
			return r
		}(), codeSignatureExpired},
		{"not v1", func() signedReq {
			r := newSigned("GET", "/v1/calls", "", keySup, supSecret)
			r.sig = "v2=" + r.sig[3:]
			return r
		}(), codeInvalidSignature},
		{"not hex", func() signedReq { r := newSigned("GET", "/v1/calls", "", keySup, supSecret); r.sig = "v1=zz"; return r }(), codeInvalidSignature},
		{"short nonce", func() signedReq {
			r := newSigned("GET", "/v1/calls", "", keySup, supSecret)
			r.nonce = "short"
			r.sig = sign(supSecret, r.ts, r.nonce, r.method, r.target, r.body)
			return r
		}(), codeInvalidSignature},
		{"nonce with a space", func() signedReq {
			r := newSigned("GET", "/v1/calls", "", keySup, supSecret)
			r.nonce = "a nonce with spaces in it"
			r.sig = sign(supSecret, r.ts, r.nonce, r.method, r.target, r.body)
			return r
		}(), codeInvalidSignature},
	} {
		if st, c := code(e.doSigned(tc.r)); st != 401 || c != tc.wantCode {
			t.Errorf("%s: %d %s, want 401 %s", tc.name, st, c, tc.wantCode)
		}
	}
	// At the edge of the window: accepted.
	edge := newSigned("GET", "/v1/calls", "", keySup, supSecret)
	edge.ts -= 299
	edge.sig = sign(supSecret, edge.ts, edge.nonce, edge.method, edge.target, edge.body)
	if st, c := code(e.doSigned(edge)); st != 200 {
		t.Errorf("299 s old: %d %s", st, c)
	}
	// Some of the headers only.
	for _, hdr := range [][]string{{HeaderTimestamp, "1"}, {HeaderTimestamp, "1", HeaderSignature, post.sig}, {HeaderNonce, post.nonce}} {
		if rec := e.do(http.MethodGet, "/v1/calls", keySup, "", hdr...); rec.Code != 401 || apiErr(t, rec).Code != codeInvalidSignature {
			t.Errorf("headers %v alone: %d %s", hdr, rec.Code, rec.Body)
		}
	}
	if e.svc.count("Join") != 1 {
		t.Errorf("Join called %d times, want 1 (refused requests must not reach the app)", e.svc.count("Join"))
	}

	// A tenant that requires signatures: unsigned requests are refused, signed ones pass.
	if rec := e.do(http.MethodGet, "/v1/calls", keyGlobexAdmin, ""); rec.Code != 401 || apiErr(t, rec).Code != codeSignatureRequired {
		t.Errorf("unsigned, tenant requires signatures: %d %s", rec.Code, rec.Body)
	}
	if rec := e.doSigned(newSigned("GET", "/v1/calls", "", keyGlobexAdmin, signingSecret(keyGlobexAdmin))); rec.Code != 200 {
		t.Errorf("signed, tenant requires signatures: %d %s", rec.Code, rec.Body)
	}

	// A key created with require_signatures gets a signing secret of its own, shown once.
	rec := e.do(http.MethodPost, "/v1/api-keys", keyAdmin, `{"name":"strict-2","role":"admin","require_signatures":true}`)
	var out struct {
		Key           string `json:"key"`
		SigningSecret string `json:"signing_secret"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Key == "" || !strings.HasPrefix(out.SigningSecret, "ess_") {
		t.Fatalf("created key %s: %v", rec.Body, err)
	}
	if rec := e.do(http.MethodGet, "/v1/calls", out.Key, ""); rec.Code != 401 || apiErr(t, rec).Code != codeSignatureRequired {
		t.Errorf("unsigned with a strict key: %d %s", rec.Code, rec.Body)
	}
	if rec := e.doSigned(newSigned("GET", "/v1/calls", "", out.Key, out.Key)); rec.Code != 401 {
		t.Errorf("strict key signing with itself: %d %s", rec.Code, rec.Body)
	}
	if rec := e.doSigned(newSigned("GET", "/v1/calls", "", out.Key, out.SigningSecret)); rec.Code != 200 {
		t.Errorf("signed with a strict key's signing secret: %d %s", rec.Code, rec.Body)
	}
	if list := e.do(http.MethodGet, "/v1/api-keys", keyAdmin, ""); strings.Contains(list.Body.String(), out.SigningSecret) || strings.Contains(list.Body.String(), "signing_secret") {
		t.Errorf("the key list shows signing secrets: %s", list.Body)
	}

	// A key created before signing secrets existed cannot sign.
	old := "ek_old-key-without-a-signing-secret"
	if err := e.st.CreateAPIKey(t.Context(), store.APIKey{Name: "old", Tenant: "acme", Role: "admin", SHA256: config.SHA256Hex(old), RequireSignatures: true}); err != nil {
		t.Fatal(err)
	}
	if rec := e.doSigned(newSigned("GET", "/v1/calls", "", old, old)); rec.Code != 401 || !strings.Contains(apiErr(t, rec).Message, "no signing secret") {
		t.Errorf("a key without signing secret signing: %d %s", rec.Code, rec.Body)
	}
}

func TestBearerParsing(t *testing.T) {
	e := newEnv(t)
	for _, h := range []string{"", "Bearer", "Bearer ", "Basic " + keyAdmin, keyAdmin, "Bearer " + string(make([]byte, 600))} {
		req := e.do(http.MethodGet, "/v1/calls", "", "", "Authorization", h)
		if req.Code != http.StatusUnauthorized {
			t.Errorf("Authorization %.20q: %d", h, req.Code)
		}
	}
	if rec := e.do(http.MethodGet, "/v1/calls", "", "", "Authorization", "bearer "+keyAdmin); rec.Code != 200 {
		t.Errorf("lower-case scheme: %d", rec.Code)
	}
}
