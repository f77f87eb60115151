package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

// ErrNoChange, returned by an Edit's change, writes nothing: the edit changed nothing (a PATCH
// that sets what is already there), so no revision, no audit entry, no announcement.
var ErrNoChange = errors.New("no change")

// Edit changes the tenants in Redis, the one path that validates, encodes and writes a change
// (Update and the administration API, admin.go, both go through it). change gets a copy of the
// tenants in force and the revision it replaces, so that a condition on it (an If-Match) is
// checked against exactly what is replaced; it may return ErrNoChange to write nothing (Edit
// then returns that revision and nil). commit, when set, is called once the next directory
// validated and before it is written: the admin API audits there, so a change whose audit
// entry cannot be written is not made, and nothing invalid is ever audited as done. An error
// from change or commit is returned as it is; a validation failure wraps ErrInvalidDirectory.
// The new directory is in force here before Edit returns (OnChange is called), on other
// instances within Poll.
func (s *DirectorySync) Edit(ctx context.Context, by string,
	change func(cur []config.Tenant, rev int64) ([]config.Tenant, error),
	commit func(next *config.Directory) error,
) (int64, error) {
	var built *config.Directory
	unchanged := false
	doc, err := s.st.UpdateDirectory(ctx, func(cur store.DirectoryDoc) (store.DirectoryChange, error) {
		built, unchanged = nil, false // the store calls again when its lock was lost
		var tenants []config.Tenant
		if cur.Rev > 0 {
			var err error
			if tenants, err = config.DecodeDirectory(cur.Doc); err != nil {
				return store.DirectoryChange{}, fmt.Errorf("directory revision %d: %w", cur.Rev, err)
			}
		}
		next, err := change(tenants, cur.Rev)
		if errors.Is(err, ErrNoChange) {
			unchanged = true
			return store.DirectoryChange{Skip: true}, nil
		}
		if err != nil {
			return store.DirectoryChange{}, err
		}
		d, err := s.Build(next)
		if err != nil {
			return store.DirectoryChange{}, fmt.Errorf("%w: %w", ErrInvalidDirectory, err)
		}
		b, err := config.EncodeDirectory(next)
		if err != nil {
			return store.DirectoryChange{}, err
		}
		if commit != nil {
			if err := commit(d); err != nil {
				return store.DirectoryChange{}, err
			}
		}
		built = d
		return store.DirectoryChange{Doc: b, By: by}, nil
	})
	if err != nil {
		return 0, err
	}
	// OnChange runs here even when Run's goroutine, told of the change by the announcement,
	// put it in force first: the caller answers only once the change is applied everywhere
	// it matters (the dialplan reloaded); OnChange's receivers are idempotent.
	if !unchanged && built != nil {
		if !s.live.Advance(built, doc.Rev) {
			built, _ = s.live.Snapshot()
		}
		if s.OnChange != nil {
			s.OnChange(ctx, built, doc.Rev)
		}
	}
	return doc.Rev, nil
}
