package app

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
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/ari/aritest"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
)

// testDirectory is testdata/e2e.yaml's directory, with edit applied to its tenants first.
func testDirectory(t testing.TB, edit func(ts []config.Tenant)) *config.Directory {
	t.Helper()
	cfg, err := config.Load("testdata/e2e.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(cfg.Tenants)
	}
	d, err := config.NewDirectory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// fakePBX stands in for Asterisk's side of DialplanWriter: reloading pbx_config.so sets the
// marker variable from the extensions file as Asterisk does ([globals]), unless it does not
// read that file (included false); reloads and their order are recorded.
type fakePBX struct {
	mu       sync.Mutex
	extFile  string
	included bool
	globals  map[string]string
	reloads  []string
	// busy answers this many reloads with 409 "Another reload is in progress" first.
	busy int
	// reloadErr, if set, answers every reload.
	reloadErr error
}

var markerRE = regexp.MustCompile(`(?m)^` + dialplan.MarkerVariable + `=(.*)$`)

func (p *fakePBX) ReloadModule(_ context.Context, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reloads = append(p.reloads, name)
	if p.reloadErr != nil {
		return p.reloadErr
	}
	if p.busy > 0 {
		p.busy--
		return &ari.Error{Method: "PUT", Path: "/asterisk/modules/" + name, Status: http.StatusConflict, Message: "Another reload is in progress"}
	}
	if name == PBXConfigModule && p.included {
		b, err := os.ReadFile(p.extFile)
		if err != nil {
			return err
		}
		if m := markerRE.FindSubmatch(b); m != nil {
			p.globals[dialplan.MarkerVariable] = string(m[1])
		}
	}
	return nil
}

func (p *fakePBX) GlobalVar(_ context.Context, name string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.globals[name], nil
}

func (p *fakePBX) takeReloads() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.reloads
	p.reloads = nil
	return r
}

func newTestWriter(t *testing.T, mod func(*DialplanWriterConfig)) (*DialplanWriter, *fakePBX, DialplanWriterConfig) {
	t.Helper()
	dir := t.TempDir()
	cfg := DialplanWriterConfig{
		ExtensionsFile: filepath.Join(dir, "extensions_earpiece.conf"),
		FeaturesFile:   filepath.Join(dir, "features_earpiece.conf"),
		AppName:        "earpiece",
		LiveTimeout:    300 * time.Millisecond,
		Poll:           time.Millisecond,
	}
	pbx := &fakePBX{extFile: cfg.ExtensionsFile, included: true, globals: map[string]string{}}
	cfg.ARI = pbx
	if mod != nil {
		mod(&cfg)
	}
	w, err := NewDialplanWriter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w, pbx, cfg
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDialplanWriterApply(t *testing.T) {
	reg := prometheus.NewRegistry()
	w, pbx, cfg := newTestWriter(t, func(c *DialplanWriterConfig) { c.Registerer = reg })
	ctx := context.Background()
	d := testDirectory(t, nil)
	want, err := RenderDialplan(d, "earpiece")
	if err != nil {
		t.Fatal(err)
	}

	// First: both files written, features reloaded before pbx_config, the marker live.
	res, err := w.Apply(ctx, d, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Reloaded || res.Took <= 0 || res.Marker != want.Marker || res.Rev != 1 || len(res.Wrote) != 2 {
		t.Errorf("first Apply = %+v", res)
	}
	if r := pbx.takeReloads(); strings.Join(r, " ") != "features pbx_config.so" {
		t.Errorf("reloads %v, want features then pbx_config.so", r)
	}
	if !bytes.Equal(readFile(t, cfg.ExtensionsFile), want.Extensions) || !bytes.Equal(readFile(t, cfg.FeaturesFile), want.Features) {
		t.Error("the files are not the rendering")
	}
	for _, f := range []string{cfg.ExtensionsFile, cfg.FeaturesFile} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v %v, want mode 0644", f, fi.Mode(), err)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(cfg.ExtensionsFile), ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if !bytes.Contains(want.Extensions, []byte("exten => 744,hint,PJSIP/744\n")) || !bytes.Contains(want.Extensions, []byte("exten => 901,hint,PJSIP/901\n")) {
		t.Errorf("the rendering lacks the extensions' hints:\n%s", want.Extensions)
	}

	// The same directory again (another revision number, same content): nothing to do.
	before, _ := os.Stat(cfg.ExtensionsFile)
	res, err = w.Apply(ctx, testDirectory(t, nil), 2)
	if err != nil || res.Reloaded || res.Took != 0 || len(res.Wrote) != 0 {
		t.Errorf("unchanged Apply = %+v, %v", res, err)
	}
	if after, _ := os.Stat(cfg.ExtensionsFile); !after.ModTime().Equal(before.ModTime()) {
		t.Error("an unchanged file was rewritten")
	}
	if r := pbx.takeReloads(); len(r) != 0 {
		t.Errorf("unchanged: reloads %v", r)
	}

	// A new spy code: written, reloaded, live.
	d3 := testDirectory(t, func(ts []config.Tenant) { ts[0].DialingRules.SpyPrefix = "*70" })
	res, err = w.Apply(ctx, d3, 3)
	if err != nil || !res.Reloaded || res.Marker == want.Marker {
		t.Fatalf("changed Apply = %+v, %v", res, err)
	}
	if b := readFile(t, cfg.ExtensionsFile); !bytes.Contains(b, []byte("exten => _*70.,1,")) || bytes.Contains(b, []byte("exten => _*90.,1,")) {
		t.Errorf("after the change:\n%s", b)
	}
	// acme's help key did not change: only the extensions file was written.
	if len(res.Wrote) != 1 || res.Wrote[0] != cfg.ExtensionsFile {
		t.Errorf("wrote %v, want the extensions file only", res.Wrote)
	}
	if got := testutil.ToFloat64(w.failures); got != 0 {
		t.Errorf("failures = %v", got)
	}
	if n := testutil.CollectAndCount(reg, "earpiece_dialplan_apply_seconds"); n != 1 {
		t.Errorf("earpiece_dialplan_apply_seconds: %d series", n)
	}
	if h := histogramCount(t, reg, "earpiece_dialplan_apply_seconds"); h != 2 {
		t.Errorf("earpiece_dialplan_apply_seconds counted %d applies, want the 2 that reloaded", h)
	}
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}

// TestDialplanWriterAnotherInstance: files written and loaded by another instance (same
// directory) are left alone; a file on disk that Asterisk has not loaded yet is reloaded.
func TestDialplanWriterAnotherInstance(t *testing.T) {
	w, pbx, cfg := newTestWriter(t, nil)
	other, err := NewDialplanWriter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d := testDirectory(t, nil)
	if _, err := other.Apply(ctx, d, 4); err != nil {
		t.Fatal(err)
	}
	pbx.takeReloads()
	res, err := w.Apply(ctx, d, 4)
	if err != nil || res.Reloaded || len(res.Wrote) != 0 || len(pbx.takeReloads()) != 0 {
		t.Errorf("after another instance applied the same: %+v, %v", res, err)
	}

	// Asterisk restarted with an older file meanwhile, say: the marker differs, the files do not.
	pbx.globals[dialplan.MarkerVariable] = "stale"
	res, err = w.Apply(ctx, d, 4)
	if err != nil || !res.Reloaded || len(res.Wrote) != 0 {
		t.Errorf("stale marker: %+v, %v", res, err)
	}
	if r := pbx.takeReloads(); strings.Join(r, " ") != "features pbx_config.so" {
		t.Errorf("stale marker: reloads %v", r)
	}

	// Someone edited the features file by hand: rewritten, and only features reloaded.
	if err := os.WriteFile(cfg.FeaturesFile, []byte("[applicationmap]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err = w.Apply(ctx, d, 4)
	if err != nil || !res.Reloaded || len(res.Wrote) != 1 || res.Wrote[0] != cfg.FeaturesFile {
		t.Errorf("features edited: %+v, %v", res, err)
	}
	if r := pbx.takeReloads(); strings.Join(r, " ") != "features" {
		t.Errorf("features edited: reloads %v, want features alone", r)
	}
}

func TestDialplanWriterFailures(t *testing.T) {
	ctx := context.Background()
	d := testDirectory(t, nil)

	t.Run("not included", func(t *testing.T) {
		w, pbx, cfg := newTestWriter(t, nil)
		pbx.included = false
		start := time.Now()
		_, err := w.Apply(ctx, d, 1)
		if err == nil || !strings.Contains(err.Error(), "#include extensions_earpiece.conf") {
			t.Errorf("Apply = %v, want the #include advice", err)
		}
		if el := time.Since(start); el < cfg.LiveTimeout || el > cfg.LiveTimeout+time.Second {
			t.Errorf("gave up after %v, want about LiveTimeout %v", el, cfg.LiveTimeout)
		}
		if got := testutil.ToFloat64(w.failures); got != 1 {
			t.Errorf("failures = %v", got)
		}
	})
	t.Run("another reload running", func(t *testing.T) {
		w, pbx, _ := newTestWriter(t, nil)
		pbx.busy = 3
		res, err := w.Apply(ctx, d, 1)
		if err != nil || !res.Reloaded {
			t.Errorf("Apply = %+v, %v", res, err)
		}
		if r := pbx.takeReloads(); len(r) != 5 {
			t.Errorf("reloads %v: want 3 refused and 2 done", r)
		}
	})
	t.Run("module not loaded", func(t *testing.T) {
		w, pbx, _ := newTestWriter(t, nil)
		pbx.reloadErr = &ari.Error{Method: "PUT", Path: "/asterisk/modules/features", Status: 404, Message: "Module not found in running modules"}
		if _, err := w.Apply(ctx, d, 1); !errors.Is(err, ari.ErrNotFound) || !strings.Contains(err.Error(), "reloading features") {
			t.Errorf("Apply = %v", err)
		}
		if r := pbx.takeReloads(); len(r) != 1 {
			t.Errorf("reloads %v: a 404 is not retried", r)
		}
	})
	t.Run("directory missing", func(t *testing.T) {
		w, _, _ := newTestWriter(t, func(c *DialplanWriterConfig) {
			c.ExtensionsFile = filepath.Join(t.TempDir(), "nope", "extensions_earpiece.conf")
			c.FeaturesFile = ""
		})
		if _, err := w.Apply(ctx, d, 1); err == nil || !strings.Contains(err.Error(), "nope") {
			t.Errorf("Apply = %v", err)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		w, err := NewDialplanWriter(DialplanWriterConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if res, err := w.Apply(ctx, d, 1); err != nil || w.Enabled() || res.Reloaded {
			t.Errorf("disabled Apply = %+v, %v", res, err)
		}
		if _, err := NewDialplanWriter(DialplanWriterConfig{FeaturesFile: "/x"}); err == nil {
			t.Error("a features file alone was accepted")
		}
		if _, err := NewDialplanWriter(DialplanWriterConfig{ExtensionsFile: "/x"}); err == nil {
			t.Error("no ARI was accepted")
		}
	})
}

// TestDialplanWriterCrossingCalls: OnChange may be called from two goroutines whose revisions
// cross; with Live set, the directory in force is what ends up written, whatever the order.
func TestDialplanWriterCrossingCalls(t *testing.T) {
	live := &config.Live{}
	w, _, cfg := newTestWriter(t, func(c *DialplanWriterConfig) { c.Live = live })
	ctx := context.Background()
	var dirs []*config.Directory
	for i := range 8 {
		dirs = append(dirs, testDirectory(t, func(ts []config.Tenant) { ts[0].DialingRules.SpyPrefix = fmt.Sprintf("*7%d", i) }))
	}
	for range 20 {
		var wg sync.WaitGroup
		for i, d := range dirs {
			live.Advance(d, int64(i+1)) // revisions in order, callers in any order
			wg.Go(func() { w.OnChange(ctx, d, int64(i+1)) })
		}
		wg.Wait()
		if b := readFile(t, cfg.ExtensionsFile); !bytes.Contains(b, []byte("exten => _*77.,1,")) {
			t.Fatalf("after crossing calls the file has not the latest revision's code:\n%s", b)
		}
		live = &config.Live{}
		w.cfg.Live = live
	}
}

// TestDialplanWriterThroughARI: the writer with the real ARI client against the fake ARI
// server: a 409 reload is retried, and the marker is read from GET /asterisk/variable.
func TestDialplanWriterThroughARI(t *testing.T) {
	srv := aritest.NewServer(t)
	c, err := ari.New(ari.Config{BaseURL: srv.URL(), User: srv.User(), Password: srv.Password(), App: "earpiece"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	dir := t.TempDir()
	w, err := NewDialplanWriter(DialplanWriterConfig{ExtensionsFile: filepath.Join(dir, "e.conf"), ARI: c, Poll: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	d := testDirectory(t, nil)
	files, err := RenderDialplan(d, "earpiece")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	value := "old"
	srv.Handle("GET", "/asterisk/variable", func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("variable") != dialplan.MarkerVariable {
			t.Errorf("GET /asterisk/variable?%s", r.URL.RawQuery)
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(rw, `{"value":%q}`, value)
	})
	reloads := 0
	srv.Handle("PUT", "/asterisk/modules/{name}", func(rw http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != PBXConfigModule {
			t.Errorf("PUT /asterisk/modules/%s", r.PathValue("name"))
		}
		mu.Lock()
		defer mu.Unlock()
		if reloads++; reloads == 1 {
			rw.WriteHeader(http.StatusConflict)
			fmt.Fprint(rw, `{"message":"Another reload is in progress"}`)
			return
		}
		value = files.Marker
		rw.WriteHeader(http.StatusNoContent)
	})
	res, err := w.Apply(context.Background(), d, 1)
	if err != nil || !res.Reloaded || res.Marker != files.Marker || reloads != 2 {
		t.Errorf("Apply = %+v, %v after %d reloads", res, err, reloads)
	}
}

// TestDialplanWriterRun: Run brings Asterisk back in step when it lost the rendering (here: a
// restart with an older file sets another marker), and stops with its ctx.
func TestDialplanWriterRun(t *testing.T) {
	live := config.NewLive(testDirectory(t, nil), 1)
	w, pbx, _ := newTestWriter(t, func(c *DialplanWriterConfig) { c.Live = live })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx, 5*time.Millisecond) }()
	want, _ := RenderDialplan(live.Current(), "earpiece")
	waitMarker := func(what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			if v, _ := pbx.GlobalVar(ctx, dialplan.MarkerVariable); v == want.Marker {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: Run did not bring the marker to %s", what, want.Marker)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitMarker("first run")
	pbx.mu.Lock()
	pbx.globals[dialplan.MarkerVariable] = "from-an-older-file"
	pbx.mu.Unlock()
	waitMarker("after Asterisk lost it")
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its ctx ended")
	}
	// Without Live it has nothing to follow.
	w2, _, _ := newTestWriter(t, nil)
	w2.Run(context.Background(), time.Millisecond) // returns at once
}
