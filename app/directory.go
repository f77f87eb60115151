package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

// The directory at run time. It lives in Redis (store.UpdateDirectory), so that administrators
// change it through the API with no restart, and every instance holds the revision in force in
// a *config.Live that each decision reads once (authorization, lookups, the HTTP edge).
//
// Precedence between the configuration file and the API: the newest intent wins. The file is
// imported when Redis holds no directory yet, and again whenever its tenants differ from the
// ones last imported (at start, on SIGHUP, or with `earpiece config import`); in between, the
// API's changes stand, across restarts too. An unchanged file never undoes an API change.

// DirectoryStore is what DirectorySync needs of the store (*store.Store).
type DirectoryStore interface {
	Directory(ctx context.Context) (store.DirectoryDoc, error)
	DirectoryRev(ctx context.Context) (int64, error)
	UpdateDirectory(ctx context.Context, change func(cur store.DirectoryDoc) (store.DirectoryChange, error)) (store.DirectoryDoc, error)
	SubscribeDirectory(ctx context.Context) <-chan int64
}

// DirectorySync keeps a *config.Live in step with the directory in Redis.
type DirectorySync struct {
	st   DirectoryStore
	base *config.Config // the services part (ARI, Redis, HTTP) that tenants are validated with
	env  func(string) (string, bool)
	live *config.Live
	log  zerolog.Logger
	// Poll is how often the revision is checked besides the change announcements (500 ms).
	Poll time.Duration
	// Audit, if set, records each tenant an import changes, before the import is written; an
	// import whose record fails is not written (App.AuditDirectory).
	Audit func(ctx context.Context, e store.AuditEntry) error
	// OnChange, if set, is called with each directory put in force (the dialplan writer
	// re-renders from it, the webhook hub takes its endpoints), from Run's goroutine or from
	// the caller of Update, Import or Load: concurrently, so it must serialise itself.
	OnChange func(ctx context.Context, d *config.Directory, rev int64)
}

// NewDirectorySync returns a sync for base's services; lookup resolves the secrets named by
// environment variable (os.LookupEnv). Nothing is in force until Bootstrap or Load.
func NewDirectorySync(st DirectoryStore, base *config.Config, lookup func(string) (string, bool), log zerolog.Logger) *DirectorySync {
	return &DirectorySync{st: st, base: base, env: lookup, live: &config.Live{}, log: log, Poll: 500 * time.Millisecond}
}

// Live is the directory in force.
func (s *DirectorySync) Live() *config.Live { return s.live }

// Build validates tenants against the services configuration and indexes them.
func (s *DirectorySync) Build(tenants []config.Tenant) (*config.Directory, error) {
	cfg, err := s.base.WithTenants(tenants, s.env)
	if err != nil {
		return nil, err
	}
	return config.NewDirectory(cfg)
}

// Import puts tenants (a configuration file's) in Redis unless they are the ones last
// imported and Redis already has a directory (force imports them anyway); then loads what is
// in force. It reports whether it wrote.
func (s *DirectorySync) Import(ctx context.Context, tenants []config.Tenant, by string, force bool) (bool, error) {
	if _, err := s.Build(tenants); err != nil {
		return false, err
	}
	doc, err := config.EncodeDirectory(tenants)
	if err != nil {
		return false, err
	}
	hash, err := config.DirectoryHash(tenants)
	if err != nil {
		return false, err
	}
	wrote := false
	_, err = s.st.UpdateDirectory(ctx, func(cur store.DirectoryDoc) (store.DirectoryChange, error) {
		if cur.Rev > 0 && (cur.FileHash == hash && !force || string(cur.Doc) == string(doc)) {
			return store.DirectoryChange{Skip: true}, nil
		}
		if err := s.auditImport(ctx, cur, tenants, by); err != nil {
			return store.DirectoryChange{}, err
		}
		wrote = true
		return store.DirectoryChange{Doc: doc, FileHash: hash, By: by}, nil
	})
	if err != nil {
		return false, fmt.Errorf("importing the directory: %w", err)
	}
	return wrote, s.Load(ctx)
}

// Load reads the directory from Redis and puts it in force (OnChange is called when it was not
// in force yet).
func (s *DirectorySync) Load(ctx context.Context) error {
	d, err := s.load(ctx)
	if d != nil && s.OnChange != nil {
		s.OnChange(ctx, d, s.live.Rev())
	}
	return err
}

func (s *DirectorySync) load(ctx context.Context) (*config.Directory, error) {
	doc, err := s.st.Directory(ctx)
	if err != nil {
		return nil, err
	}
	if doc.Rev == s.live.Rev() && s.live.Current() != nil {
		return nil, nil
	}
	tenants, err := config.DecodeDirectory(doc.Doc)
	if err != nil {
		return nil, fmt.Errorf("directory revision %d: %w", doc.Rev, err)
	}
	d, err := s.Build(tenants)
	if err != nil {
		// Written by a validating writer, so this instance's environment differs (a secret
		// variable it lacks): keep the directory in force rather than none.
		return nil, fmt.Errorf("directory revision %d does not validate here: %w", doc.Rev, err)
	}
	if doc.Rev < s.live.Rev() {
		// Redis lost the directory and was bootstrapped again: its count restarted.
		s.live.Set(d, doc.Rev)
		return d, nil
	}
	if !s.live.Advance(d, doc.Rev) {
		return nil, nil
	}
	return d, nil
}

// Run keeps the directory in force up to date until ctx ends: at each announced change, and at
// each Poll in case an announcement was missed.
func (s *DirectorySync) Run(ctx context.Context) {
	changes := s.st.SubscribeDirectory(ctx)
	t := time.NewTicker(s.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			for range changes { // the subscription closes after ctx
			}
			return
		case _, ok := <-changes:
			if !ok {
				changes = nil
			}
		case <-t.C:
			rev, err := s.st.DirectoryRev(ctx)
			if err != nil || rev == s.live.Rev() {
				continue
			}
		}
		d, err := s.load(ctx)
		switch {
		case err != nil && !errors.Is(err, context.Canceled):
			s.log.Warn().Err(err).Int64("rev", s.live.Rev()).Msg("directory not reloaded")
		case d != nil:
			s.log.Info().Int64("rev", s.live.Rev()).Msg("directory changed")
			if s.OnChange != nil {
				s.OnChange(ctx, d, s.live.Rev())
			}
		}
	}
}

// Update changes the tenants in Redis: change gets a copy of the tenants in force at the
// revision it replaces and returns the next ones, which must validate as a whole (else an
// error wrapping ErrInvalidDirectory); it may return an error to write nothing (its error is
// returned as it is; ErrNoChange writes nothing and is no error). by names who changed it. The
// new directory is put in force on this instance before Update returns, and on the others
// within Poll. It is Edit without a revision condition or a commit step.
func (s *DirectorySync) Update(ctx context.Context, by string, change func(cur []config.Tenant) ([]config.Tenant, error)) (int64, error) {
	return s.Edit(ctx, by, func(cur []config.Tenant, _ int64) ([]config.Tenant, error) { return change(cur) }, nil)
}

// ErrInvalidDirectory: a change would leave a directory that does not validate; the error
// wraps the validation's errors, each naming its field.
var ErrInvalidDirectory = errors.New("invalid directory")

// auditImport records, per tenant, what an import of tenants over cur creates, updates or
// removes.
func (s *DirectorySync) auditImport(ctx context.Context, cur store.DirectoryDoc, tenants []config.Tenant, by string) error {
	if s.Audit == nil {
		return nil
	}
	before := map[string][]byte{}
	if cur.Rev > 0 {
		old, err := config.DecodeDirectory(cur.Doc)
		if err != nil {
			return err
		}
		for _, t := range old {
			before[t.ID], _ = config.EncodeDirectory([]config.Tenant{t})
		}
	}
	rev := strconv.FormatInt(cur.Rev+1, 10)
	record := func(tenant, change string) error {
		return s.Audit(ctx, store.AuditEntry{Tenant: tenant, Actor: by, Action: AuditDirectoryImport,
			Outcome: "ok", Trigger: "system", Extra: map[string]string{"change": change, "revision": rev}})
	}
	for _, t := range tenants {
		after, _ := config.EncodeDirectory([]config.Tenant{t})
		old, existed := before[t.ID]
		delete(before, t.ID)
		var err error
		switch {
		case !existed:
			err = record(t.ID, "created")
		case !bytes.Equal(old, after):
			err = record(t.ID, "updated")
		}
		if err != nil {
			return err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(before)) {
		if err := record(id, "removed"); err != nil {
			return err
		}
	}
	return nil
}

// AuditDirectoryImport is the audit action of a tenant changed by importing a configuration
// file (at start, on SIGHUP, or with `earpiece config import`).
const AuditDirectoryImport = "directory_import"

// AuditDirectory records e (a directory change) in the audit trail; DirectorySync.Audit.
func (a *App) AuditDirectory(ctx context.Context, e store.AuditEntry) error {
	return a.audit(ctx, e)
}
