package app_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/internal/redistest"
	"github.com/earpiece/earpiece/store"
)

func loadE2EConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load("testdata/e2e.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// newSync is one instance's view of the directory in rs.
func newSync(t *testing.T, rs *redistest.Server, cfg *config.Config) (*app.DirectorySync, *store.Store) {
	t.Helper()
	st := store.New(rs.Client(t), store.Options{})
	s := app.NewDirectorySync(st, cfg, func(string) (string, bool) { return "", false }, zerolog.Nop())
	s.Poll = 50 * time.Millisecond
	return s, st
}

// The file bootstraps Redis; an unchanged file at the next start does not undo what the API
// changed since; an edited file does.
func TestDirectoryImportPrecedence(t *testing.T) {
	rs := redistest.Start(t)
	cfg := loadE2EConfig(t)
	ctx := t.Context()
	s, st := newSync(t, rs, cfg)
	var audited []store.AuditEntry
	s.Audit = func(_ context.Context, e store.AuditEntry) error { audited = append(audited, e); return nil }

	if wrote, err := s.Import(ctx, cfg.Tenants, "file", false); err != nil || !wrote {
		t.Fatalf("first import: wrote %v, %v", wrote, err)
	}
	if len(audited) != 2 || audited[0].Tenant != "acme" || audited[0].Extra["change"] != "created" || audited[1].Tenant != "globex" {
		t.Fatalf("first import audited %+v", audited)
	}
	if err := s.Live().Current().CanSupervise("globex", "900", "901"); !errors.Is(err, config.ErrTenantDisabled) {
		t.Fatalf("globex before the API change: %v", err)
	}
	// The operator turns globex on through the API.
	if _, err := s.Update(ctx, "key:operator", func(ts []config.Tenant) ([]config.Tenant, error) {
		ts[1].SupervisionEnabled = true
		return ts, nil
	}); err != nil {
		t.Fatal(err)
	}
	// A restart with the same file: the API's change stands.
	s2, _ := newSync(t, rs, cfg)
	if wrote, err := s2.Import(ctx, cfg.Tenants, "file", false); err != nil || wrote {
		t.Fatalf("unchanged file: wrote %v, %v", wrote, err)
	}
	if err := s2.Live().Current().CanSupervise("globex", "900", "901"); err != nil {
		t.Fatalf("API change undone by an unchanged file: %v", err)
	}
	// The file was edited (a new agent): it is applied, API changes included in what it says.
	edited := loadE2EConfig(t)
	edited.Tenants[0].Extensions = append(edited.Tenants[0].Extensions, config.Extension{Number: "747", Endpoint: "PJSIP/747", Name: "Mia", Role: config.RoleAgent})
	audited = nil
	s2.Audit = s.Audit
	if wrote, err := s2.Import(ctx, edited.Tenants, "file", false); err != nil || !wrote {
		t.Fatalf("edited file: wrote %v, %v", wrote, err)
	}
	if _, ok := s2.Live().Current().Extension("acme", "747"); !ok {
		t.Fatal("edited file's extension not in force")
	}
	if err := s2.Live().Current().CanSupervise("globex", "900", "901"); !errors.Is(err, config.ErrTenantDisabled) {
		t.Fatalf("the edited file says globex is off: %v", err)
	}
	// acme and globex both differ from what was in force (globex was switched on by the API).
	if len(audited) != 2 || audited[0].Extra["change"] != "updated" || audited[1].Extra["change"] != "updated" {
		t.Fatalf("edited file audited %+v", audited)
	}
	doc, err := st.Directory(ctx)
	if err != nil || doc.Rev != 3 {
		t.Fatalf("revision after import, change, import: %+v, %v", doc, err)
	}
	// Export, then import the export: nothing changes.
	back, err := config.DecodeDirectory(doc.Doc)
	if err != nil {
		t.Fatal(err)
	}
	if wrote, err := s2.Import(ctx, back, "import", true); err != nil || wrote {
		t.Fatalf("re-importing the export: wrote %v, %v", wrote, err)
	}
	again, err := config.EncodeDirectory(back)
	if err != nil || string(again) != string(doc.Doc) {
		t.Fatalf("export of the import differs:\n%s\nvs\n%s", again, doc.Doc)
	}
}

// A change made on one instance is in force on another within a second, and invalid changes
// are refused with the field named, leaving the directory as it was.
func TestDirectoryChangeReachesOtherInstances(t *testing.T) {
	rs := redistest.Start(t)
	cfg := loadE2EConfig(t)
	a, _ := newSync(t, rs, cfg)
	b, _ := newSync(t, rs, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	if _, err := a.Import(ctx, cfg.Tenants, "file", false); err != nil {
		t.Fatal(err)
	}
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	changed := make(chan int64, 4)
	b.Poll = time.Hour // the announcement alone must carry it
	b.OnChange = func(_ context.Context, _ *config.Directory, rev int64) { changed <- rev }
	wg.Go(func() { b.Run(ctx) })
	// Give the subscription time to be registered with Redis.
	time.Sleep(100 * time.Millisecond)

	if err := b.Live().Current().CanSupervise("acme", "701", "746"); !errors.Is(err, config.ErrNotAllowed) {
		t.Fatalf("701 on 746 before: %v", err)
	}
	start := time.Now()
	rev, err := a.Update(ctx, "key:admin", func(ts []config.Tenant) ([]config.Tenant, error) {
		g := &ts[0].HuntGroups[1] // sales
		g.Members = append(g.Members, config.Member{Extension: "701", SupervisionAllowed: true})
		return ts, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-changed:
		if got != rev {
			t.Fatalf("b put revision %d in force, want %d", got, rev)
		}
	case <-time.After(time.Second):
		t.Fatal("the change did not reach the other instance within 1 s")
	}
	t.Logf("change in force on the other instance after %v", time.Since(start))
	if err := b.Live().Current().CanSupervise("acme", "701", "746"); err != nil {
		t.Fatalf("701 on 746 after: %v", err)
	}

	_, err = a.Update(ctx, "key:admin", func(ts []config.Tenant) ([]config.Tenant, error) {
		ts[0].HuntGroups[0].Members = append(ts[0].HuntGroups[0].Members, config.Member{Extension: "799"})
		return ts, nil
	})
	if !errors.Is(err, app.ErrInvalidDirectory) || !strings.Contains(err.Error(), `tenants[acme].hunt_groups[support].members[4]`) || !strings.Contains(err.Error(), `"799"`) {
		t.Fatalf("unknown member: %v", err)
	}
	if a.Live().Rev() != rev {
		t.Fatalf("a refused change moved the revision to %d", a.Live().Rev())
	}
}
