package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The tenant directory at run time (who is who, hunt groups, dialing rules, policies, webhooks),
// as one document that administrators change through the API and that the configuration file
// bootstraps. The store keeps it as opaque bytes with a revision; the app owns its format
// (config's YAML). Every change bumps the revision and is announced on chanDirectory, so that
// every instance puts the new directory in force at once; instances also poll the revision, so
// a lost announcement (a reconnecting subscriber) delays a change by one poll, never forever.

// DirectoryDoc is the directory document with its revision.
type DirectoryDoc struct {
	Doc []byte
	// Rev counts the changes: 1 for the first document, +1 for each change after it.
	Rev int64
	// FileHash is the SHA-256 (hex) of the configuration file's tenants last imported
	// ("" when the document never came from a file): a file that is unchanged since it was
	// last applied does not override what the API changed since.
	FileHash  string
	UpdatedAt time.Time
	UpdatedBy string
}

// Directory hash fields.
const (
	fDirDoc   = "doc"
	fDirRev   = "rev"
	fDirFile  = "file"
	fDirAt    = "at"
	fDirBy    = "by"
	dirLockID = "directory"
)

// Directory returns the directory document, ErrNotFound when none was ever written.
func (s *Store) Directory(ctx context.Context) (DirectoryDoc, error) {
	return readDirectory(ctx, s.rdb)
}

func readDirectory(ctx context.Context, c redis.Cmdable) (DirectoryDoc, error) {
	m, err := c.HGetAll(ctx, keyDirectory).Result()
	if err != nil {
		return DirectoryDoc{}, fmt.Errorf("read directory: %w", err)
	}
	if len(m) == 0 {
		return DirectoryDoc{}, fmt.Errorf("read directory: %w", ErrNotFound)
	}
	rev, err := strconv.ParseInt(m[fDirRev], 10, 64)
	if err != nil {
		return DirectoryDoc{}, fmt.Errorf("read directory: bad revision %q", m[fDirRev])
	}
	d := DirectoryDoc{Doc: []byte(m[fDirDoc]), Rev: rev, FileHash: m[fDirFile], UpdatedBy: m[fDirBy]}
	if ms, err := strconv.ParseInt(m[fDirAt], 10, 64); err == nil {
		d.UpdatedAt = time.UnixMilli(ms).UTC()
	}
	return d, nil
}

// DirectoryRev returns the directory's revision, 0 when there is none: the cheap check an
// instance polls.
func (s *Store) DirectoryRev(ctx context.Context) (int64, error) {
	v, err := s.rdb.HGet(ctx, keyDirectory, fDirRev).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read directory revision: %w", err)
	}
	return v, nil
}

// DirectoryChange is what UpdateDirectory's function decides: the new document, or Skip to
// write nothing.
type DirectoryChange struct {
	Doc      []byte
	FileHash string // replaces the recorded file hash when Doc came from the file; else kept
	By       string // who changed it (an API key's name, "file", ...)
	Skip     bool
}

// UpdateDirectory changes the directory: change gets the current document (Rev 0 and no Doc
// when there is none) and returns the next one. Writers on every instance are serialised by
// a short lock, and the write is fenced by WATCH, so change sees exactly the document it
// replaces: a caller may check an ETag in it, and record the change (audit) before returning,
// knowing that a write it returned from is the one that happens unless the store fails.
// change runs once per call unless the lock was lost, which makes the write fail with
// ErrConflict. The new revision is announced to every instance (SubscribeDirectory). Returns
// the document in force afterwards.
func (s *Store) UpdateDirectory(ctx context.Context, change func(cur DirectoryDoc) (DirectoryChange, error)) (DirectoryDoc, error) {
	owner := fmt.Sprintf("%d", time.Now().UnixNano())
	if err := s.lockDirectory(ctx, owner); err != nil {
		return DirectoryDoc{}, err
	}
	defer func() {
		// The lock expires by itself; a failed release costs the next writer at most its TTL.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = s.Release(rctx, dirLockID, owner)
		cancel()
	}()
	var out DirectoryDoc
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		cur, err := readDirectory(ctx, tx)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		ch, err := change(cur)
		if err != nil {
			return err
		}
		if ch.Skip {
			out = cur
			return nil
		}
		next := DirectoryDoc{Doc: ch.Doc, Rev: cur.Rev + 1, FileHash: cur.FileHash, UpdatedAt: s.clock().UTC().Truncate(time.Millisecond), UpdatedBy: ch.By}
		if ch.FileHash != "" {
			next.FileHash = ch.FileHash
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, keyDirectory, fDirDoc, next.Doc, fDirRev, next.Rev, fDirFile, next.FileHash,
				fDirAt, next.UpdatedAt.UnixMilli(), fDirBy, next.UpdatedBy)
			return nil
		})
		if err != nil {
			return err
		}
		out = next
		return nil
	}, keyDirectory)
	if errors.Is(err, redis.TxFailedErr) {
		return DirectoryDoc{}, fmt.Errorf("update directory: %w", ErrConflict)
	}
	if err != nil {
		return DirectoryDoc{}, fmt.Errorf("update directory: %w", err)
	}
	if out.Rev > 0 {
		// Best effort: instances that miss it find the revision by polling.
		_ = s.rdb.Publish(ctx, chanDirectory, out.Rev).Err()
	}
	return out, nil
}

// lockDirectory takes the directory writers' lock, waiting up to ctx's deadline (at most 5 s).
func (s *Store) lockDirectory(ctx context.Context, owner string) error {
	deadline := time.Now().Add(5 * time.Second)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		ok, err := s.Claim(ctx, dirLockID, owner, 10*time.Second)
		if err != nil {
			return fmt.Errorf("update directory: %w", err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("update directory: another change is in progress: %w", ErrConflict)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("update directory: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// SubscribeDirectory delivers the revision of every directory change announced from now on,
// until ctx ends (then the channel is closed). A revision may be skipped or repeated (the
// subscription reconnects by itself after a Redis outage): treat it as "look again", and poll
// DirectoryRev as well.
func (s *Store) SubscribeDirectory(ctx context.Context) <-chan int64 {
	out := make(chan int64, 1)
	sub := s.rdb.Subscribe(ctx, chanDirectory)
	go func() {
		defer close(out)
		defer sub.Close()
		msgs := sub.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-msgs:
				if !ok {
					return
				}
				rev, err := strconv.ParseInt(m.Payload, 10, 64)
				if err != nil {
					continue
				}
				select { // keep only the newest when the reader is behind
				case out <- rev:
				default:
					select {
					case <-out:
					default:
					}
					out <- rev
				}
			}
		}
	}()
	return out
}
