package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/internal/asterisktest"
	"github.com/earpiece/earpiece/internal/freeport"
	"github.com/earpiece/earpiece/internal/redistest"
	"github.com/earpiece/earpiece/store"
)

// doctorLine is one line of the report.
var doctorLine = regexp.MustCompile(`^(ok|FAIL|skip) +([^:]+): (.*)$`)

// parseReport splits doctor's output into its checks, in order, failing t on a line that is not
// one.
func parseReport(t *testing.T, out string) []checkResult {
	t.Helper()
	var rs []checkResult
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		m := doctorLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("report line %q is not `ok|FAIL|skip <check>: <detail>`", line)
		}
		rs = append(rs, checkResult{Status: m[1], Name: m[2], Detail: m[3]})
	}
	return rs
}

var checkNames = []string{"ARI", "Asterisk version", "Asterisk modules", "Stasis application", "Redis", "dialplan"}

// want asserts a report: every check named in fails has that status and a detail matching the
// pattern; every other check is ok.
func want(t *testing.T, rs []checkResult, fails map[string]string) {
	t.Helper()
	if len(rs) != len(checkNames) {
		t.Fatalf("report has %d checks, want %d: %+v", len(rs), len(checkNames), rs)
	}
	for i, r := range rs {
		if r.Name != checkNames[i] {
			t.Errorf("check %d is %q, want %q", i, r.Name, checkNames[i])
		}
		pat, bad := fails[r.Name]
		switch {
		case !bad && r.Status != statusOK:
			t.Errorf("%s: %s %s, want ok", r.Name, r.Status, r.Detail)
		case bad:
			status, re, _ := strings.Cut(pat, " ")
			if r.Status != status || !regexp.MustCompile(re).MatchString(r.Detail) {
				t.Errorf("%s: %s %q, want %s matching %q", r.Name, r.Status, r.Detail, status, re)
			}
		}
	}
}

// fakeDoctorARI and fakeDoctorStore answer as told.
type fakeDoctorARI struct {
	info    ari.AsteriskInfo
	infoErr error
	modules []ari.Module
	appErr  error
	marker  string
}

func (f *fakeDoctorARI) AsteriskInfo(context.Context) (ari.AsteriskInfo, error) {
	return f.info, f.infoErr
}
func (f *fakeDoctorARI) ListModules(context.Context) ([]ari.Module, error) { return f.modules, nil }
func (f *fakeDoctorARI) GetApplication(context.Context, string) (ari.Application, error) {
	return ari.Application{}, f.appErr
}
func (f *fakeDoctorARI) GlobalVar(context.Context, string) (string, error) { return f.marker, nil }

type fakeDoctorStore struct {
	pingErr, writeErr error
	doc               store.DirectoryDoc
	docErr            error
}

func (f *fakeDoctorStore) Ping(context.Context) error       { return f.pingErr }
func (f *fakeDoctorStore) ProbeWrite(context.Context) error { return f.writeErr }
func (f *fakeDoctorStore) Directory(context.Context) (store.DirectoryDoc, error) {
	return f.doc, f.docErr
}

// TestDoctorChecks: each check's verdict and advice, with fakes (the version and the errors a
// real Asterisk or Redis is hard to make give); TestDoctorOnAsterisk breaks the real ones.
func TestDoctorChecks(t *testing.T) {
	cfg, err := config.Load("../../docker/earpiece.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ARI.URL = "http://pbx.example:8088/ari"
	cfg.Redis.URL = "redis://:hunter2@redis.example:6379/0"
	var mods []ari.Module
	for _, m := range requiredModules {
		mods = append(mods, ari.Module{Name: m.name, Status: ari.ModuleRunning})
	}
	mods = append(mods, ari.Module{Name: "chan_pjsip.so", Status: ari.ModuleRunning})
	fileTenants := make([]*config.Tenant, len(cfg.Tenants))
	for i := range cfg.Tenants {
		fileTenants[i] = &cfg.Tenants[i]
	}
	files, err := app.RenderTenantsDialplan(fileTenants, cfg.ARI.App)
	if err != nil {
		t.Fatal(err)
	}
	good := func() (*fakeDoctorARI, *fakeDoctorStore) {
		return &fakeDoctorARI{info: ari.AsteriskInfo{System: &ari.SystemInfo{Version: "22.10.1"}}, modules: mods, marker: files.Marker},
			&fakeDoctorStore{docErr: store.ErrNotFound}
	}
	for _, tc := range []struct {
		name  string
		edit  func(*fakeDoctorARI, *fakeDoctorStore)
		fails map[string]string
	}{
		{"all good", func(*fakeDoctorARI, *fakeDoctorStore) {}, nil},
		{"Asterisk 18", func(a *fakeDoctorARI, _ *fakeDoctorStore) { a.info.System.Version = "18.20.2" }, map[string]string{
			"Asterisk version": `FAIL ^Asterisk 18\.20\.2: earpiece supports Asterisk 20 and later .*upgrade`}},
		{"version unknown", func(a *fakeDoctorARI, _ *fakeDoctorStore) { a.info.System.Version = "GIT-master-1234" }, map[string]string{
			"Asterisk version": `FAIL cannot tell Asterisk's version from "GIT-master-1234"`}},
		{"module and driver missing", func(a *fakeDoctorARI, _ *fakeDoctorStore) {
			a.modules = a.modules[1 : len(a.modules)-1] // res_http_websocket.so and chan_pjsip.so
		}, map[string]string{
			"Asterisk modules": `FAIL ^not loaded: res_http_websocket\.so \(the ARI events WebSocket\), chan_pjsip\.so \(the phones' PJSIP endpoints\): add ` + "`load => <module>`"}},
		{"ARI refuses the password", func(a *fakeDoctorARI, _ *fakeDoctorStore) {
			a.infoErr = &ari.Error{Method: "GET", Path: "/asterisk/info", Status: http.StatusUnauthorized, Message: "Authentication required"}
		}, map[string]string{
			"ARI":                `FAIL refuses user "earpiece" \(401\): make ari.user and ari.password \(EARPIECE_ARI_USER, EARPIECE_ARI_PASSWORD\) those of a \[earpiece\] section of Asterisk's ari.conf`,
			"Asterisk version":   "skip needs ARI",
			"Asterisk modules":   "skip needs ARI",
			"Stasis application": "skip needs ARI",
			"dialplan":           "skip needs ARI",
		}},
		{"ARI 404", func(a *fakeDoctorARI, _ *fakeDoctorStore) {
			a.infoErr = &ari.Error{Method: "GET", Path: "/asterisk/info", Status: http.StatusNotFound}
		}, map[string]string{
			"ARI": `FAIL answers 404 .*ari.url must be Asterisk's ARI base`, "Asterisk version": "skip ", "Asterisk modules": "skip ",
			"Stasis application": "skip ", "dialplan": "skip ",
		}},
		{"app not registered", func(a *fakeDoctorARI, _ *fakeDoctorStore) {
			a.appErr = &ari.Error{Method: "GET", Path: "/applications/earpiece", Status: http.StatusNotFound, Message: "Application not found"}
		}, map[string]string{
			"Stasis application": `FAIL ^earpiece is not registered: earpiece serve is not running or not connected to this Asterisk`}},
		{"no contexts", func(a *fakeDoctorARI, _ *fakeDoctorStore) { a.marker = "" }, map[string]string{
			"dialplan": "FAIL no earpiece contexts loaded .*#include extensions_earpiece.conf from extensions.conf.*or set dialplan.extensions_file"}},
		{"stale contexts", func(a *fakeDoctorARI, _ *fakeDoctorStore) { a.marker = "0123" }, map[string]string{
			"dialplan": "FAIL Asterisk runs another rendering \\(EARPIECE_DIALPLAN=0123\\) than that of the configuration file's tenants .*render it again"}},
		{"directory in Redis", func(a *fakeDoctorARI, s *fakeDoctorStore) {
			doc, err := config.EncodeDirectory(cfg.Tenants[:1])
			if err != nil {
				t.Fatal(err)
			}
			s.doc, s.docErr = store.DirectoryDoc{Doc: doc, Rev: 7}, nil
		}, map[string]string{
			// Asterisk runs the file's two tenants; Redis's directory has one.
			"dialplan": `FAIL than that of the directory in Redis \(revision 7\)`}},
		{"Redis read-only", func(_ *fakeDoctorARI, s *fakeDoctorStore) {
			s.writeErr = errors.New("redis write: READONLY You can't write against a read only replica.")
		}, map[string]string{"Redis": `FAIL ^redis://:xxxxx@redis.example:6379/0 is a read-only replica .*point redis.url \(EARPIECE_REDIS_URL\) at the primary`}},
		{"Redis short of replicas", func(_ *fakeDoctorARI, s *fakeDoctorStore) {
			s.writeErr = errors.New("redis write: NOREPLICAS Not enough good replicas to write.")
		}, map[string]string{"Redis": `FAIL refuses writes .*min-replicas-to-write`}},
		{"Redis password", func(_ *fakeDoctorARI, s *fakeDoctorStore) {
			s.pingErr = errors.New("WRONGPASS invalid username-password pair or user is disabled.")
		}, map[string]string{"Redis": `FAIL refuses the credentials .*put the right user and password in redis.url`}},
		{"Redis down", func(_ *fakeDoctorARI, s *fakeDoctorStore) {
			s.pingErr = errors.New("dial tcp 10.0.0.9:6379: connect: connection refused")
		}, map[string]string{
			// The dialplan is then compared with the file's tenants, which Asterisk runs.
			"Redis": `FAIL ^cannot reach redis://:xxxxx@redis.example:6379/0: dial tcp .*check redis.url`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, s := good()
			tc.edit(a, s)
			var out bytes.Buffer
			ck := &checkup{cfg: cfg, ari: a, store: s, readFile: os.ReadFile}
			n := printChecks(&out, ck.run(context.Background()))
			if strings.Contains(out.String(), "hunter2") {
				t.Errorf("the Redis password is in the report:\n%s", out.String())
			}
			want(t, parseReport(t, out.String()), tc.fails)
			fails := 0
			for _, f := range tc.fails {
				if strings.HasPrefix(f, "FAIL") {
					fails++
				}
			}
			if n != fails {
				t.Errorf("printChecks counted %d failures, want %d:\n%s", n, fails, out.String())
			}
		})
	}
}

// TestDoctorOnAsterisk runs `earpiece doctor` against a real Asterisk of its own (it unloads a
// module, restarts Asterisk and changes its dialplan) and a real Redis, all prerequisites met,
// then with each broken in turn: the report must name the one broken and say what to change.
func TestDoctorOnAsterisk(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Asterisk and Redis")
	}
	ast := asterisktest.Start(t)
	rs := redistest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const sample = "../../docker/earpiece.yaml"
	extFile := filepath.Join(ast.EtcDir(), "extensions_earpiece.conf")
	t.Setenv("EARPIECE_CONFIG", "")
	t.Setenv("EARPIECE_ARI_URL", ast.ARIURL)
	t.Setenv("EARPIECE_ARI_USER", ast.User)
	t.Setenv("EARPIECE_ARI_PASSWORD", ast.Password)
	t.Setenv("EARPIECE_ARI_APP", "earpiece") // the sample dialplan's Stasis() app
	t.Setenv("EARPIECE_REDIS_URL", rs.URL())
	t.Setenv("EARPIECE_DIALPLAN_FILE", extFile)
	cfg, err := loadConfig(sample)
	if err != nil {
		t.Fatal(err)
	}
	doc := func(t *testing.T) ([]checkResult, error) {
		t.Helper()
		var out bytes.Buffer
		err := doctor([]string{"--config", sample}, &out)
		t.Logf("earpiece doctor:\n%s", out.String())
		return parseReport(t, out.String()), err
	}
	expect := func(t *testing.T, fails map[string]string) {
		t.Helper()
		rs, err := doc(t)
		want(t, rs, fails)
		if (err != nil) != (len(fails) > 0) || err != nil && !strings.Contains(err.Error(), "check(s) failed") {
			t.Errorf("doctor = %v with %d failure(s) expected", err, len(fails))
		}
	}

	// What serve does: the directory in Redis, the Stasis app connected, the dialplan written.
	rdb := rs.Client(t)
	st := store.New(rdb, store.Options{})
	sync := app.NewDirectorySync(st, cfg, os.LookupEnv, zerolog.Nop())
	if _, err := sync.Import(ctx, cfg.Tenants, "file", false); err != nil {
		t.Fatal(err)
	}
	admin, err := ari.New(ari.Config{BaseURL: ast.ARIURL, User: ast.User, Password: ast.Password, App: "doctor-test-admin"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.CloseIdleConnections)
	serve := startStasisApp(t, ast, "earpiece")
	w, err := app.NewDialplanWriter(app.DialplanWriterConfig{ExtensionsFile: extFile, FeaturesFile: filepath.Join(ast.EtcDir(), "features_earpiece.conf"),
		AppName: "earpiece", ARI: admin, Live: sync.Live()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Apply(ctx, sync.Live().Current(), sync.Live().Rev()); err != nil {
		t.Fatal(err)
	}

	top := t
	t.Run("all good", func(t *testing.T) {
		expect(t, nil)
	})
	t.Run("wrong ARI password", func(t *testing.T) {
		t.Setenv("EARPIECE_ARI_PASSWORD", "not-"+ast.Password)
		expect(t, map[string]string{
			"ARI":              `FAIL refuses user "earpiece-test" \(401\): .*\[earpiece-test\] section of Asterisk's ari.conf`,
			"Asterisk version": "skip needs ARI", "Asterisk modules": "skip needs ARI", "Stasis application": "skip needs ARI", "dialplan": "skip needs ARI",
		})
	})
	t.Run("ARI unreachable", func(t *testing.T) {
		port, release, err := freeport.One()
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		t.Setenv("EARPIECE_ARI_URL", fmt.Sprintf("http://127.0.0.1:%d/ari", port))
		expect(t, map[string]string{
			"ARI":              `FAIL cannot reach http://127.0.0.1:\d+/ari: .*connection refused.*http.conf has enabled=yes`,
			"Asterisk version": "skip ", "Asterisk modules": "skip ", "Stasis application": "skip ", "dialplan": "skip ",
		})
	})
	t.Run("module unloaded", func(t *testing.T) {
		if err := admin.UnloadModule(ctx, "bridge_softmix.so"); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := admin.LoadModule(ctx, "bridge_softmix.so"); err != nil {
				t.Fatal(err)
			}
		}()
		if _, err := admin.GetModule(ctx, "bridge_softmix.so"); !errors.Is(err, ari.ErrNotFound) {
			t.Fatalf("GET bridge_softmix.so after the unload: %v, want 404", err)
		}
		expect(t, map[string]string{"Asterisk modules": `FAIL ^not loaded: bridge_softmix\.so \(the supervision bridges \(mixing\)\): add ` + "`load => <module>` to modules.conf"})
	})
	t.Run("app not registered", func(t *testing.T) {
		serve.stop()
		defer func() { serve = startStasisApp(top, ast, "earpiece") }() // lives as long as the whole test
		expect(t, map[string]string{"Stasis application": "FAIL ^earpiece is not registered: earpiece serve is not running or not connected to this Asterisk"})
	})
	t.Run("contexts stale", func(t *testing.T) {
		// The directory changes in Redis, and nothing rewrites the file.
		if _, err := sync.Update(ctx, "test", func(cur []config.Tenant) ([]config.Tenant, error) {
			cur[0].DialingRules.SpyPrefix = "*70"
			return cur, nil
		}); err != nil {
			t.Fatal(err)
		}
		expect(t, map[string]string{"dialplan": `FAIL Asterisk runs another rendering .* than that of the directory in Redis \(revision 2\) .*` + regexp.QuoteMeta(extFile) + ` is stale too: is earpiece serve running`})

		// The file is rewritten, and Asterisk not told.
		files, err := app.RenderDialplan(sync.Live().Current(), "earpiece")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(extFile, files.Extensions, 0o644); err != nil {
			t.Fatal(err)
		}
		expect(t, map[string]string{"dialplan": "FAIL " + regexp.QuoteMeta(extFile) + ` is up to date, so Asterisk does not read it .* or did not reload it`})

		// serve's writer puts it in force.
		if _, err := w.Apply(ctx, sync.Live().Current(), sync.Live().Rev()); err != nil {
			t.Fatal(err)
		}
		expect(t, nil)
	})
	t.Run("Redis read-only", func(t *testing.T) {
		port, release, err := freeport.One() // a primary that never answers
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		if err := rdb.Do(ctx, "REPLICAOF", "127.0.0.1", fmt.Sprint(port)).Err(); err != nil {
			t.Fatal(err)
		}
		expect(t, map[string]string{"Redis": `FAIL is a read-only replica \(.*READONLY.*\): point redis.url \(EARPIECE_REDIS_URL\) at the primary`})
		if err := rdb.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.ConfigSet(ctx, "min-replicas-to-write", "1").Err(); err != nil {
			t.Fatal(err)
		}
		expect(t, map[string]string{"Redis": `FAIL refuses writes \(.*NOREPLICAS.*\): fewer replicas are connected than its min-replicas-to-write`})
		if err := rdb.ConfigSet(ctx, "min-replicas-to-write", "0").Err(); err != nil {
			t.Fatal(err)
		}
		expect(t, nil)
	})
	t.Run("contexts missing", func(t *testing.T) {
		// extensions.conf without the #include, Asterisk restarted: nothing sets the marker.
		path := filepath.Join(ast.EtcDir(), "extensions.conf")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		without := bytes.Replace(b, []byte("\n#include extensions_earpiece.conf\n"), []byte("\n"), 1)
		if bytes.Equal(without, b) {
			t.Fatal("asterisk-conf/extensions.conf does not #include extensions_earpiece.conf")
		}
		if err := os.WriteFile(path, without, 0o644); err != nil {
			t.Fatal(err)
		}
		ast.Restart(t)
		if v, err := admin.GlobalVar(ctx, dialplan.MarkerVariable); err != nil || v != "" {
			t.Fatalf("after a restart without the #include, %s = %q, %v", dialplan.MarkerVariable, v, err)
		}
		serve.awaitConnected(t)
		expect(t, map[string]string{"dialplan": `FAIL ^Asterisk has no earpiece contexts loaded \(EARPIECE_DIALPLAN is not set\), although earpiece serve writes ` +
			regexp.QuoteMeta(extFile) + `: #include it from extensions.conf`})
		t.Setenv("EARPIECE_DIALPLAN_FILE", "")
		expect(t, map[string]string{"dialplan": "FAIL ^Asterisk has no earpiece contexts loaded .*: #include extensions_earpiece.conf from extensions.conf .*or set dialplan.extensions_file"})
	})
	t.Run("Redis down", func(t *testing.T) {
		rs.Stop()
		// The dialplan is then judged by the file's tenants: Asterisk runs none (no #include).
		expect(t, map[string]string{
			"Redis":    `FAIL ^cannot reach redis://127.0.0.1:\d+/0: .*check redis.url \(EARPIECE_REDIS_URL\)`,
			"dialplan": `FAIL no earpiece contexts loaded`,
		})
	})
}

// stasisApp is a connected ARI client for a Stasis application: what `earpiece serve` is to
// Asterisk, as far as GET /applications can tell.
type stasisApp struct {
	c    *ari.Client
	stop func()
}

func startStasisApp(t *testing.T, ast *asterisktest.Instance, name string) *stasisApp {
	t.Helper()
	c, err := ari.New(ari.Config{BaseURL: ast.ARIURL, User: ast.User, Password: ast.Password, App: name,
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		go func() {
			for range c.Events() {
			}
		}()
		_ = c.Run(ctx)
	}()
	s := &stasisApp{c: c}
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
		c.CloseIdleConnections()
		// Asterisk unregisters the application once the socket is gone.
		deadline := time.Now().Add(5 * time.Second)
		for {
			probe, _ := ari.New(ari.Config{BaseURL: ast.ARIURL, User: ast.User, Password: ast.Password, App: name})
			_, err := probe.GetApplication(context.Background(), name)
			probe.CloseIdleConnections()
			if errors.Is(err, ari.ErrNotFound) || time.Now().After(deadline) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Cleanup(s.stop)
	s.awaitConnected(t)
	return s
}

func (s *stasisApp) awaitConnected(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !s.c.Stats().Connected {
		if time.Now().After(deadline) {
			t.Fatal("the Stasis application did not connect")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
