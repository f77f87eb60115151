package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/internal/e2etest"
	"github.com/earpiece/earpiece/internal/redistest"
	"github.com/earpiece/earpiece/store"
)

// TestMain stops the shared test Asterisk after the tests, then checks for leaked goroutines.
func TestMain(m *testing.M) { os.Exit(e2etest.Main(m)) }

// Bootstrap keys of the test configuration (plain; the configuration holds their SHA-256).
const (
	keyAgent       = "acme-agent-key"   // acme, agent 100
	keySup         = "acme-sup-key"     // acme, supervisor 200
	keyAdmin       = "acme-admin-key"   // acme, admin
	keyGlobexAdmin = "globex-admin-key" // globex, admin
	keyGlobexSup   = "globex-sup-key"   // globex, supervisor 300
	keyOperator    = "operator-key"     // the platform operator (operator_keys)
)

// signingSecret is the signing secret the test configuration gives the bootstrap key key.
func signingSecret(key string) string { return key + "-signing-secret-0123456789abcdef" }

// t0 is the tests' "now".
var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// testDirectory is the tests' configuration's directory; the tenants named in signed require
// signed requests (request_signatures: required).
func testDirectory(t testing.TB, signed ...string) *config.Directory {
	t.Helper()
	dir, err := config.NewDirectory(testConfig(t, signed...))
	if err != nil {
		t.Fatalf("directory: %v", err)
	}
	return dir
}

// testConfig is the tests' configuration (see testDirectory).
func testConfig(t testing.TB, signed ...string) *config.Config {
	t.Helper()
	sigs := func(tenant string) string {
		if slices.Contains(signed, tenant) {
			return "required"
		}
		return "optional"
	}
	y := fmt.Sprintf(`
operator_keys:
  - {name: ops, sha256: %s}
tenants:
  - id: acme
    supervision_enabled: true
    request_signatures: %s
    endpoints: [PJSIP/1*, PJSIP/2*] # acme's admin chooses among them; globex has none
    extensions:
      - {number: "100", endpoint: PJSIP/100, role: agent}
      - {number: "101", endpoint: PJSIP/101, role: agent}
      - {number: "200", endpoint: PJSIP/200, role: supervisor}
      - {number: "201", endpoint: PJSIP/201, role: supervisor}
    hunt_groups:
      - name: support
        members:
          - {extension: "100"}
          - {extension: "101"}
          - {extension: "200", supervision_allowed: true}
          - {extension: "201", supervision_allowed: true}
    api_keys:
      - {name: agent-key, role: agent, extension: "100", sha256: %s, signing_secret: %s}
      - {name: sup-key, role: supervisor, extension: "200", sha256: %s, signing_secret: %s}
      - {name: admin-key, role: admin, sha256: %s, signing_secret: %s}
  - id: globex
    supervision_enabled: true
    request_signatures: %s
    extensions:
      - {number: "300", endpoint: PJSIP/300, role: supervisor}
      - {number: "301", endpoint: PJSIP/301, role: agent}
    api_keys:
      - {name: admin-key, role: admin, sha256: %s, signing_secret: %s}
      - {name: sup-key, role: supervisor, extension: "300", sha256: %s, signing_secret: %s}
`, config.SHA256Hex(keyOperator), sigs("acme"), config.SHA256Hex(keyAgent), signingSecret(keyAgent), config.SHA256Hex(keySup), signingSecret(keySup),
		config.SHA256Hex(keyAdmin), signingSecret(keyAdmin),
		sigs("globex"), config.SHA256Hex(keyGlobexAdmin), signingSecret(keyGlobexAdmin), config.SHA256Hex(keyGlobexSup), signingSecret(keyGlobexSup))
	cfg, err := config.Decode(strings.NewReader(y))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// fakeService is an in-memory Service: it records which methods were called and serves
// scripted calls and sessions. It applies the app's role rules (app.Principal's Authorize,
// SupervisorFor and AuthorizeSession) as the App does, so the edge's answers to the app's
// refusals are tested without Asterisk.
type fakeService struct {
	mu       sync.Mutex
	called   []string
	joins    []app.JoinRequest
	calls    []app.Call
	sessions map[string]store.Session
	seq      int

	// admin records AuditAdmin calls (adminExtra their extras); adminErr, when set, makes
	// them fail (only those of action adminErrAction, when that is set).
	admin          []string
	adminExtra     []map[string]string
	adminErr       error
	adminErrAction string

	// Hooks, when set, replace the default behaviour.
	onCalls func() ([]app.Call, error)
	onJoin  func(ctx context.Context, p app.Principal, req app.JoinRequest) (store.Session, error)
}

func newFakeService() *fakeService {
	f := &fakeService{}
	f.reset()
	return f
}

// reset restores the scripted sessions and forgets the calls.
func (f *fakeService) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.called, f.joins = nil, nil
	f.sessions = map[string]store.Session{}
	for _, s := range []store.Session{
		{ID: "sup-own", Tenant: "acme", Supervisor: "200", Agent: "100", CallID: "chan-100", Mode: "spy", State: store.StateActive, Origin: "api"},
		{ID: "sup-201", Tenant: "acme", Supervisor: "201", Agent: "101", CallID: "chan-101", Mode: "whisper", State: store.StateActive, Origin: "feature_code"},
		{ID: "sup-globex", Tenant: "globex", Supervisor: "300", Agent: "301", CallID: "chan-301", Mode: "spy", State: store.StateActive, Origin: "api"},
	} {
		s.StartedAt, s.UpdatedAt = t0.Add(-time.Minute), t0.Add(-time.Minute)
		s.ModeSince = t0.Add(-time.Minute)
		f.sessions[s.ID] = s
	}
}

func (f *fakeService) AuditAdmin(_ context.Context, p app.Principal, action, target string, extra map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.adminErr != nil && (f.adminErrAction == "" || f.adminErrAction == action) {
		return f.adminErr
	}
	f.admin = append(f.admin, p.Tenant+" "+p.KeyName+" "+action+" "+target)
	f.adminExtra = append(f.adminExtra, extra)
	return nil
}

func (f *fakeService) record(name string) {
	f.mu.Lock()
	f.called = append(f.called, name)
	f.mu.Unlock()
}

// take returns the methods called since the last take.
func (f *fakeService) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.called
	f.called = nil
	return c
}

func (f *fakeService) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.called {
		if c == name {
			n++
		}
	}
	return n
}

func (f *fakeService) Calls(ctx context.Context, p app.Principal) ([]app.Call, error) {
	f.record("Calls")
	if err := p.Authorize(app.PermSupervise); err != nil {
		return nil, err
	}
	if f.onCalls != nil {
		return f.onCalls()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []app.Call
	for _, c := range f.calls {
		if c.Tenant == p.Tenant {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeService) Join(ctx context.Context, p app.Principal, req app.JoinRequest) (store.Session, error) {
	f.record("Join")
	f.mu.Lock()
	f.joins = append(f.joins, req)
	f.mu.Unlock()
	if f.onJoin != nil {
		return f.onJoin(ctx, p, req)
	}
	supervisor, err := p.SupervisorFor(req.Supervisor)
	if err != nil {
		return store.Session{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	s := store.Session{
		ID: fmt.Sprintf("sup-new-%d", f.seq), Tenant: p.Tenant, Supervisor: supervisor, Agent: req.Agent,
		CallID: req.CallID, Origin: "api", Mode: req.Mode.String(), State: store.StateRinging,
		StartedAt: t0, UpdatedAt: t0,
	}
	if s.CallID == "" {
		s.CallID = "chan-" + req.Agent
	}
	f.sessions[s.ID] = s
	return s, nil
}

func (f *fakeService) Supervisions(ctx context.Context, p app.Principal) ([]store.Session, error) {
	f.record("Supervisions")
	if err := p.Authorize(app.PermSupervise); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.Session
	for _, s := range f.sessions {
		if p.AuthorizeSession(s) == nil && s.Live() {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b store.Session) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (f *fakeService) get(p app.Principal, id string) (store.Session, error) {
	s, ok := f.sessions[id]
	if !ok {
		return store.Session{}, &app.Error{Kind: app.ErrNotFound, Code: "no_such_supervision", Message: "no supervision " + id}
	}
	if err := p.AuthorizeSession(s); err != nil {
		return store.Session{}, err
	}
	return s, nil
}

func (f *fakeService) Supervision(ctx context.Context, p app.Principal, id string) (store.Session, error) {
	f.record("Supervision")
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.get(p, id)
}

func (f *fakeService) SetMode(ctx context.Context, p app.Principal, id string, mode dialplan.Mode) (store.Session, error) {
	f.record("SetMode")
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.get(p, id)
	if err != nil {
		return s, err
	}
	s.SwitchMode(mode.String(), t0)
	f.sessions[id] = s
	return s, nil
}

func (f *fakeService) Leave(ctx context.Context, p app.Principal, id string) (store.Session, error) {
	f.record("Leave")
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.get(p, id)
	if err != nil {
		return s, err
	}
	s.State, s.EndedAt, s.EndReason = store.StateEnded, t0, "api"
	s.ModeSince = time.Time{}
	f.sessions[id] = s
	return s, nil
}

// env is a server over a real Redis and the fake service, with the directory administration
// (a real app.Admin over a DirectorySync on that Redis, audited by the fake service).
type env struct {
	t    testing.TB
	rdb  *redis.Client
	st   *store.Store
	svc  *fakeService
	cfg  Config
	srv  *Server
	sync *app.DirectorySync
	base *config.Config // the test configuration the directory was imported from
}

type option func(*Config)

// unlimited are budgets no test reaches.
var unlimited = config.RateLimits{
	PerKey:               config.Rate{PerSecond: 1e6, Burst: 1e6},
	PerAddress:           config.Rate{PerSecond: 1e6, Burst: 1e6},
	FailedAuthPerAddress: config.Rate{PerSecond: 1e6, Burst: 1e6},
}

func newEnv(t testing.TB, opts ...option) *env {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	e := &env{t: t, rdb: rdb, st: store.New(rdb, store.Options{}), svc: newFakeService(), base: testConfig(t)}
	e.sync = app.NewDirectorySync(e.st, e.base, func(string) (string, bool) { return "", false }, zerolog.Nop())
	if _, err := e.sync.Import(context.Background(), e.base.Tenants, "test", false); err != nil {
		t.Fatalf("importing the test directory: %v", err)
	}
	e.cfg = Config{
		Service:   e.svc,
		Directory: e.sync.Live(),
		Admin:     app.NewAdmin(e.sync, e.svc, e.st, zerolog.Nop()),
		Store:     e.st,
		Clock:     func() time.Time { return t0 },
		Logger:    zerolog.Nop(),
		// Every in-process request comes from one address, and some tests fail
		// authentication on purpose: budgets out of the way unless a test sets its own.
		RateLimits: unlimited,
	}
	for _, o := range opts {
		o(&e.cfg)
	}
	e.srv = New(e.cfg)
	return e
}

// publish appends a notification to its tenant's event stream as package outbound does (the
// notification's JSON, typed by its type) and returns the event id.
func (e *env) publish(n app.Notification) string {
	e.t.Helper()
	data, err := json.Marshal(n)
	if err != nil {
		e.t.Fatal(err)
	}
	id, err := e.st.PublishEvent(context.Background(), n.Tenant, n.Type, data)
	if err != nil {
		e.t.Fatalf("PublishEvent: %v", err)
	}
	return id
}

// do serves one request in-process. hdr is name, value pairs.
func (e *env) do(method, path, key, body string, hdr ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	return rec
}

// createKey makes an API key through the API with the acme admin key and returns it.
func (e *env) createKey(adminKey, body string) string {
	e.t.Helper()
	rec := e.do(http.MethodPost, "/v1/api-keys", adminKey, body)
	if rec.Code != http.StatusCreated {
		e.t.Fatalf("POST /v1/api-keys %s = %d %s", body, rec.Code, rec.Body)
	}
	var out struct{ Key string }
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Key == "" {
		e.t.Fatalf("POST /v1/api-keys answer %s: %v", rec.Body, err)
	}
	return out.Key
}

// apiErr decodes an error answer.
func apiErr(t testing.TB, rec *httptest.ResponseRecorder) errorDetail {
	t.Helper()
	var b errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("error body %q: %v", rec.Body, err)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error Content-Type = %q", ct)
	}
	return b.Error
}
