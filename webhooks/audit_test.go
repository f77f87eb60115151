package webhooks

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/store"
)

// fakeService's audit trail: one scripted page, behind the app's role rule.
func (f *fakeService) Audit(ctx context.Context, p app.Principal, q app.AuditQuery) (app.AuditPage, error) {
	if err := p.Authorize(app.PermAdminister); err != nil {
		return app.AuditPage{}, err
	}
	f.record("Audit")
	return app.AuditPage{Entries: []store.AuditEntry{{
		ID: "1772355600000-0", Seq: 1, Time: t0, Tenant: p.Tenant, Actor: "200", KeyID: "crm", Action: "join",
		Target: "100", Call: "chan-100", Session: "sup-own", Mode: "spy", Trigger: "api", Outcome: "refused",
		Reason: "talker_busy", Extra: map[string]string{"via": "api", "detail": "PJSIP/200 busy"},
		PrevHash: "", Hash: strings.Repeat("ab", 32),
	}}, Next: app.EncodeAuditCursor("1772355600000-0")}, nil
}

func (f *fakeService) VerifyAudit(ctx context.Context, p app.Principal) (store.AuditVerification, error) {
	if err := p.Authorize(app.PermAdminister); err != nil {
		return store.AuditVerification{}, err
	}
	return store.AuditVerification{OK: true, Entries: 1}, nil
}

// TestAuditEdge: the JSON shape (golden), CSV on request, admin only, and the query checks.
func TestAuditEdge(t *testing.T) {
	e := newEnv(t)
	rec := e.do(http.MethodGet, "/v1/audit", keyAdmin, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /v1/audit = %d %s", rec.Code, rec.Body)
	}
	golden(t, "audit.golden.json", rec.Body.Bytes())
	if strings.Contains(rec.Body.String(), "PJSIP") {
		t.Error("a refusal's detail (Asterisk's business) is shown")
	}

	rec = e.do(http.MethodGet, "/v1/audit", keyAdmin, "", "Accept", "text/csv, application/json;q=0.5")
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	rows, err := csv.NewReader(rec.Body).ReadAll()
	if err != nil || len(rows) != 2 || rows[0][0] != "id" || rows[1][7] != "join" || rows[1][8] != "100" {
		t.Fatalf("CSV rows %q, %v", rows, err)
	}
	if rec.Header().Get("X-Next-Cursor") == "" {
		t.Error("CSV without X-Next-Cursor")
	}

	for _, tc := range []struct {
		name, path, key string
		status          int
		field           string
	}{
		{"supervisor", "/v1/audit", keySup, http.StatusForbidden, ""},
		{"supervisor verify", "/v1/audit/verify", keySup, http.StatusForbidden, ""},
		{"agent", "/v1/audit", keyAgent, http.StatusForbidden, ""},
		{"bad from", "/v1/audit?from=yesterday", keyAdmin, http.StatusUnprocessableEntity, "from"},
		{"bad agent", "/v1/audit?agent=abc", keyAdmin, http.StatusUnprocessableEntity, "agent"},
		{"bad limit", "/v1/audit?limit=0", keyAdmin, http.StatusUnprocessableEntity, "limit"},
		{"long actor", "/v1/audit?actor=" + strings.Repeat("x", 201), keyAdmin, http.StatusUnprocessableEntity, "actor"},
		{"verify", "/v1/audit/verify", keyAdmin, http.StatusOK, ""},
	} {
		rec := e.do(http.MethodGet, tc.path, tc.key, "")
		if rec.Code != tc.status {
			t.Errorf("%s: %d %s", tc.name, rec.Code, rec.Body)
			continue
		}
		if tc.field != "" {
			if d := apiErr(t, rec); d.Field != tc.field {
				t.Errorf("%s: field %q, want %q", tc.name, d.Field, tc.field)
			}
		}
	}
}

func TestWantsCSV(t *testing.T) {
	for accept, want := range map[string]bool{
		"":                                 false,
		"text/csv":                         true,
		"application/json, text/csv":       false,
		"text/csv;q=0.9, application/json": true,
		"text/csv;q=0, application/json":   false,
		"*/*":                              false,
		"nonsense;;, text/csv":             true,
	} {
		if got := wantsCSV(accept); got != want {
			t.Errorf("wantsCSV(%q) = %v", accept, got)
		}
	}
}

// auditApp is the fake service with the real app's audit methods, over the env's Redis.
type auditApp struct {
	*fakeService
	a *app.App
}

func (w auditApp) Audit(ctx context.Context, p app.Principal, q app.AuditQuery) (app.AuditPage, error) {
	return w.a.Audit(ctx, p, q)
}

func (w auditApp) VerifyAudit(ctx context.Context, p app.Principal) (store.AuditVerification, error) {
	return w.a.VerifyAudit(ctx, p)
}

// TestAuditOverRedis: the routes over the app and a real Redis: filters, pagination through
// cursors, tenants apart, a bad cursor, and verification naming a deleted entry.
func TestAuditOverRedis(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		st := c.Store.(*store.Store)
		c.Service = auditApp{fakeService: newFakeService(), a: app.New(app.Config{Logger: zerolog.Nop()}, nil, st, c.Directory)}
	})
	var ids []string
	for i := range 12 {
		id, err := e.st.AppendAudit(context.Background(), store.AuditEntry{Tenant: "acme", Actor: fmt.Sprint(200 + i%2),
			Action: []string{"join", "mode_change", "end"}[i%3], Target: "100", Outcome: "allowed"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := e.st.AppendAudit(context.Background(), store.AuditEntry{Tenant: "globex", Actor: "300", Action: "join", Outcome: "allowed"}); err != nil {
		t.Fatal(err)
	}
	type page struct {
		Entries []auditJSON `json:"entries"`
		Next    string      `json:"next_cursor"`
	}
	list := func(query string) []auditJSON {
		t.Helper()
		var all []auditJSON
		cursor := ""
		for range 20 {
			q, _ := url.ParseQuery(query)
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			rec := e.do(http.MethodGet, "/v1/audit?"+q.Encode(), keyAdmin, "")
			if rec.Code != http.StatusOK {
				t.Fatalf("GET /v1/audit?%s = %d %s", q.Encode(), rec.Code, rec.Body)
			}
			var p page
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			all = append(all, p.Entries...)
			if cursor = p.Next; cursor == "" {
				return all
			}
		}
		t.Fatal("no last page")
		return nil
	}
	if got := list("limit=5"); len(got) != 12 || got[0].ID != ids[0] || got[11].ID != ids[11] || got[11].Seq != 12 {
		t.Errorf("all: %d entries", len(got))
	}
	if got := list("limit=2&actor=201&action=join"); len(got) != 2 {
		t.Errorf("actor 201, join: %d entries, want 2", len(got))
	}
	if got := list("to=2000-01-01T00:00:00Z"); len(got) != 0 {
		t.Errorf("before 2000: %d entries", len(got))
	}
	rec := e.do(http.MethodGet, "/v1/audit?cursor=bm9wZQ", keyAdmin, "")
	if rec.Code != http.StatusUnprocessableEntity || apiErr(t, rec).Field != "cursor" {
		t.Errorf("bad cursor: %d %s", rec.Code, rec.Body)
	}

	verify := func() store.AuditVerification {
		t.Helper()
		rec := e.do(http.MethodGet, "/v1/audit/verify", keyAdmin, "")
		var v store.AuditVerification
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &v) != nil {
			t.Fatalf("verify: %d %s", rec.Code, rec.Body)
		}
		return v
	}
	if v := verify(); !v.OK || v.Entries != 12 {
		t.Fatalf("verify = %+v", v)
	}
	if err := e.rdb.XDel(context.Background(), store.Prefix+"audit:acme", ids[4]).Err(); err != nil {
		t.Fatal(err)
	}
	if v := verify(); v.OK || v.Broken == nil || v.Broken.Problem != "missing" || v.Broken.ID != ids[5] || v.Broken.After != ids[3] {
		t.Errorf("after deleting entry 5: %+v, broken %+v", v, v.Broken)
	}
}

// golden compares body, indented, with testdata/file (rewritten with -update).
func golden(t *testing.T, file string, body []byte) {
	t.Helper()
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, body, "", "  "); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	path := filepath.Join("testdata", file)
	if *update {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./webhooks/ -run TestAuditEdge -update)", err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("%s: got\n%s\nwant\n%s", file, pretty.Bytes(), want)
	}
}
