package webhooks

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"testing"
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
	// Agents may use none of it.
	for _, r := range [][3]string{
		{"GET", "/v1/calls", ""}, {"POST", "/v1/supervisions", joinSpy}, {"GET", "/v1/supervisions", ""},
		{"GET", "/v1/supervisions/sup-own", ""}, {"PATCH", "/v1/supervisions/sup-own", whisper},
		{"DELETE", "/v1/supervisions/sup-own", ""}, {"POST", "/v1/api-keys", `{"name":"x","role":"admin"}`},
		{"GET", "/v1/api-keys", ""}, {"DELETE", "/v1/api-keys/api-sup", ""}, {"GET", "/v1/events", ""},
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
			var sess sessionJSON
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
		var out struct{ Supervisions []sessionJSON }
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

// sign computes a request signature independently of the server's code.
func sign(key string, ts int64, body string) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(strconv.FormatInt(ts, 10) + "." + body))
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

func TestSignedRequests(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Directory = testDirectory(t, "globex") })
	ts := t0.Unix()
	body := `{"agent":"100","mode":"spy"}`
	post := func(key string, ts int64, sig, body string) (int, string) {
		rec := e.do(http.MethodPost, "/v1/supervisions", key, body,
			HeaderTimestamp, strconv.FormatInt(ts, 10), HeaderSignature, sig)
		if rec.Code >= 400 {
			return rec.Code, apiErr(t, rec).Code
		}
		return rec.Code, ""
	}
	if code, c := post(keySup, ts, sign(keySup, ts, body), body); code != 202 {
		t.Fatalf("signed = %d %s", code, c)
	}
	if SignRequest(keySup, ts, []byte(body)) != sign(keySup, ts, body) {
		t.Error("SignRequest disagrees with the documented scheme")
	}
	for _, tc := range []struct {
		name     string
		ts       int64
		sig      string
		body     string
		wantCode string
	}{
		{"replayed", ts, sign(keySup, ts, body), body, codeSignatureReplayed},
		{"wrong key", ts, sign(keyAdmin, ts, body), body, codeInvalidSignature},
		{"body changed", ts, sign(keySup, ts, body), `{"agent":"101","mode":"spy"}`, codeInvalidSignature},
		{"too old", ts - 301, sign(keySup, ts-301, body), body, codeSignatureExpired},
		{"too new", ts + 301, sign(keySup, ts+301, body), body, codeSignatureExpired},
		{"not v1", ts, "v2=00", body, codeInvalidSignature},
		{"not hex", ts, "v1=zz", body, codeInvalidSignature},
	} {
		if code, c := post(keySup, tc.ts, tc.sig, tc.body); code != 401 || c != tc.wantCode {
			t.Errorf("%s: %d %s, want 401 %s", tc.name, code, c, tc.wantCode)
		}
	}
	// At the edge of the window: accepted.
	if code, c := post(keySup, ts-299, sign(keySup, ts-299, body), body); code != 202 {
		t.Errorf("299 s old: %d %s", code, c)
	}
	// Only one of the two headers.
	if rec := e.do(http.MethodGet, "/v1/calls", keySup, "", HeaderTimestamp, "1"); rec.Code != 401 || apiErr(t, rec).Code != codeInvalidSignature {
		t.Errorf("timestamp alone: %d %s", rec.Code, rec.Body)
	}
	// A signed GET may be repeated.
	for range 2 {
		rec := e.do(http.MethodGet, "/v1/calls", keySup, "", HeaderTimestamp, strconv.FormatInt(ts, 10), HeaderSignature, sign(keySup, ts, ""))
		if rec.Code != 200 {
			t.Errorf("signed GET: %d %s", rec.Code, rec.Body)
		}
	}
	if e.svc.count("Join") != 2 {
		t.Errorf("Join called %d times, want 2 (refused requests must not reach the app)", e.svc.count("Join"))
	}

	// A tenant that requires signatures: unsigned requests are refused, signed ones pass.
	if rec := e.do(http.MethodGet, "/v1/calls", keyGlobexAdmin, ""); rec.Code != 401 || apiErr(t, rec).Code != codeSignatureRequired {
		t.Errorf("unsigned, tenant requires signatures: %d %s", rec.Code, rec.Body)
	}
	if rec := e.do(http.MethodGet, "/v1/calls", keyGlobexAdmin, "", HeaderTimestamp, strconv.FormatInt(ts, 10), HeaderSignature, sign(keyGlobexAdmin, ts, "")); rec.Code != 200 {
		t.Errorf("signed, tenant requires signatures: %d %s", rec.Code, rec.Body)
	}

	// A key that requires signatures.
	k := e.createKey(keyAdmin, `{"name":"strict","role":"admin","require_signatures":true}`)
	if rec := e.do(http.MethodGet, "/v1/calls", k, ""); rec.Code != 401 || apiErr(t, rec).Code != codeSignatureRequired {
		t.Errorf("unsigned with a strict key: %d %s", rec.Code, rec.Body)
	}
	if rec := e.do(http.MethodGet, "/v1/calls", k, "", HeaderTimestamp, strconv.FormatInt(ts, 10), HeaderSignature, sign(k, ts, "")); rec.Code != 200 {
		t.Errorf("signed with a strict key: %d %s", rec.Code, rec.Body)
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
