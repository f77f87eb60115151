// Package store keeps earpiece's shared state in Redis: supervision sessions
// and their lookup indexes, claims (the one-talker slot of a call, which holds
// across app instances), the audit trail, and for the HTTP edge idempotency
// records, API keys, the tenants' event streams and webhook delivery records.
//
// Several app instances (and several Asterisk servers) share one Redis, which
// may be a single server, Sentinel-managed or a Cluster; the package takes a
// redis.UniversalClient for that reason and keeps multi-key changes inside one
// hash slot (see the key schema in keys.go).
//
// Every method takes the caller's ctx and returns errors that wrap the
// operation, the ids involved, and one of the sentinel errors below where one
// applies. Nothing here logs.
package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNotFound: no such session (or it is not live, for the lookups that
	// only return live sessions).
	ErrNotFound = errors.New("not found")
	// ErrExists: the session id, or one of its channels, is already taken.
	ErrExists = errors.New("already exists")
	// ErrConflict: an optimistic transaction lost to concurrent writers on
	// every one of its Options.MaxRetries attempts.
	ErrConflict = errors.New("conflicting concurrent updates")
	// ErrEnded: the session has ended and can no longer be updated.
	ErrEnded = errors.New("session ended")
	// ErrNotOwner: a claim is held by another owner.
	ErrNotOwner = errors.New("claim held by another owner")
	// ErrInvalid: an argument the store cannot accept (empty id, bad tenant,
	// an update that changes a session's id or tenant, ...).
	ErrInvalid = errors.New("invalid argument")
)

// Defaults for the zero Options fields.
const (
	DefaultTTL               = 12 * time.Hour
	DefaultHistoryTTL        = 24 * time.Hour
	DefaultAuditRetention    = 365 * 24 * time.Hour
	DefaultAuditBurstWindow  = time.Minute
	DefaultAuditBurstEntries = 5
	DefaultMaxRetries        = 10
)

// Options configure a Store. The zero value gives the defaults above.
type Options struct {
	// TTL of every key of a live session, re-applied on each write. It bounds
	// how long state of a crashed instance lingers; it must exceed the longest
	// call (a live session is refreshed only when it is written).
	TTL time.Duration
	// HistoryTTL of an ended session's record.
	HistoryTTL time.Duration
	// AuditRetention is how long audit entries are kept, by the Redis
	// server's clock. The trail is trimmed by time only, never by count, so
	// that making entries cannot push older ones out.
	AuditRetention time.Duration
	// AuditBurstWindow is the window in which repeated refusals of one actor
	// for one reason are folded, beyond the first AuditBurstEntries, into the
	// last of those (see AuditEntry.Repeats).
	AuditBurstWindow  time.Duration
	AuditBurstEntries int
	// AuditKey signs the checkpoint that retention trimming leaves in place of the entries it
	// drops (HMAC-SHA256), so that the rest of the chain stays verifiable. Without it
	// checkpoints are unsigned, and VerifyAudit reports a trimmed chain as unverifiable.
	AuditKey []byte
	// MaxRetries bounds the WATCH/MULTI attempts of one change before it
	// fails with ErrConflict.
	MaxRetries int
	// HelpTTL is how long help request records and their lists live after their last write
	// (DefaultHelpTTL).
	HelpTTL time.Duration
	// Clock stamps UpdatedAt, default StartedAt/EndedAt and audit times.
	// Default time.Now.
	Clock func() time.Time
}

// Store is earpiece's Redis state. It is safe for concurrent use; it does not
// own the client (the caller closes it).
type Store struct {
	rdb               redis.UniversalClient
	ttl               time.Duration
	historyTTL        time.Duration
	auditRetention    time.Duration
	auditBurst        time.Duration
	auditBurstEntries int
	auditKey          []byte
	maxRetries        int
	helpTTL           time.Duration
	now               func() time.Time
}

// New returns a Store using client.
//
// Configure the client with ContextTimeoutEnabled: true (URL parameter
// context_timeout_enabled=true): without it go-redis ignores ctx deadlines on
// socket reads and writes, and a wedged Redis holds each call for the
// client's ReadTimeout/WriteTimeout (5s by default) whatever the caller's ctx.
// With Redis refusing connections, go-redis' own dial and command retries
// (DialerRetries, MaxRetries) take about 2s per call with the defaults; the
// caller's deadline cuts that short.
func New(client redis.UniversalClient, opts Options) *Store {
	s := &Store{
		rdb:               client,
		ttl:               opts.TTL,
		historyTTL:        opts.HistoryTTL,
		auditRetention:    opts.AuditRetention,
		auditBurst:        opts.AuditBurstWindow,
		auditBurstEntries: opts.AuditBurstEntries,
		auditKey:          opts.AuditKey,
		maxRetries:        opts.MaxRetries,
		helpTTL:           opts.HelpTTL,
		now:               opts.Clock,
	}
	if s.helpTTL <= 0 {
		s.helpTTL = DefaultHelpTTL
	}
	if s.ttl <= 0 {
		s.ttl = DefaultTTL
	}
	if s.historyTTL <= 0 {
		s.historyTTL = DefaultHistoryTTL
	}
	if s.auditRetention <= 0 {
		s.auditRetention = DefaultAuditRetention
	}
	if s.auditBurst <= 0 {
		s.auditBurst = DefaultAuditBurstWindow
	}
	if s.auditBurstEntries <= 0 {
		s.auditBurstEntries = DefaultAuditBurstEntries
	}
	if s.maxRetries <= 0 {
		s.maxRetries = DefaultMaxRetries
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Ping checks that Redis answers (for /readyz).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis ping: %w", err)
	}
	return nil
}

// clock is the injected clock in UTC, without a monotonic reading, so values
// compare equal after a JSON round trip.
func (s *Store) clock() time.Time { return s.now().UTC() }

// optimistic runs attempt until it does not fail with redis.TxFailedErr (a
// watched key changed before EXEC), at most s.maxRetries times, sleeping a
// jittered, growing backoff in between so that contenders spread out.
func (s *Store) optimistic(ctx context.Context, attempt func() error) error {
	return s.optimisticN(ctx, s.maxRetries, attempt)
}

// optimisticN is optimistic with at most n attempts.
func (s *Store) optimisticN(ctx context.Context, n int, attempt func() error) error {
	for i := range n {
		err := attempt()
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
		if i == n-1 {
			break
		}
		d := time.Millisecond << min(i, 6) // 1ms .. 64ms
		d = d/2 + rand.N(d/2+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return ErrConflict
}

// checkTenant refuses tenants that would make keys ambiguous.
func checkTenant(tenant string) error {
	if tenant == "" {
		return fmt.Errorf("%w: empty tenant", ErrInvalid)
	}
	if len(tenant) > 128 {
		return fmt.Errorf("%w: tenant longer than 128 bytes", ErrInvalid)
	}
	if strings.ContainsFunc(tenant, func(r rune) bool {
		return r == ':' || unicode.IsSpace(r) || unicode.IsControl(r)
	}) {
		return fmt.Errorf("%w: tenant %q contains ':', space or control characters", ErrInvalid, tenant)
	}
	return nil
}

func checkID(what, id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	}
	return nil
}

// millis converts a TTL to whole milliseconds for PX/PEXPIRE, rounding up so
// that a positive TTL never becomes 0.
func millis(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
