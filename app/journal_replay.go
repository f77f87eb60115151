package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/earpiece/earpiece/store"
)

// StoreHealth tells whether Redis answers; *store.Health implements it.
type StoreHealth interface {
	Up() bool
	// Changed is closed at the next change of Up.
	Changed() <-chan struct{}
}

// Defaults of the journal's timing.
const (
	// journalRetry is how often the replay tries again while entries wait and Redis does not
	// take them (without StoreHealth, the only way to notice it is back).
	journalRetry = 250 * time.Millisecond
	// teardownTimeout bounds a teardown's direct write (at most CallTimeout): a working Redis
	// answers in milliseconds, and what does not go through in time is journaled, not lost.
	teardownTimeout = time.Second
	// flushTimeout bounds the last replay at shutdown.
	flushTimeout = 2 * time.Second
	// defaultJoinStoreTimeout is Config.JoinStoreTimeout's default.
	defaultJoinStoreTimeout = 400 * time.Millisecond
)

// storeDown reports whether StoreHealth says Redis does not answer (false without one).
func (a *App) storeDown() bool { return a.cfg.StoreHealth != nil && !a.cfg.StoreHealth.Up() }

// Journal is the app's journal of teardown writes waiting for Redis.
func (a *App) Journal() *Journal { return a.journal }

// auditOnce is the stable Once of an entry that a session writes at most once: its join (allowed
// or refused) and its end, whoever writes it (a session's teardown, its replay, reconciliation),
// so that a replay or a second writer never makes a second one.
func auditOnce(e store.AuditEntry) string {
	if e.Session == "" || (e.Action != "join" && e.Action != "end") {
		return ""
	}
	return e.Session + ":" + e.Action + ":" + e.Outcome
}

// prepareAudit fills what every audit entry carries before it is written or journaled.
func (a *App) prepareAudit(e *store.AuditEntry) {
	if e.Time.IsZero() {
		e.Time = a.cfg.Clock()
	}
	a.completeAudit(e) // auditapi.go
	if e.Once == "" {
		e.Once = auditOnce(*e)
	}
}

// auditWithin appends an audit entry, bounded by d; refused at once while StoreHealth says Redis
// does not answer.
func (a *App) auditWithin(ctx context.Context, e store.AuditEntry, d time.Duration) error {
	a.prepareAudit(&e)
	if a.storeDown() {
		return fmt.Errorf("audit %s %s: %w", e.Action, e.Outcome, store.ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	defer cancel()
	if _, err := a.store.AppendAudit(ctx, e); err != nil {
		return fmt.Errorf("audit %s %s: %w", e.Action, e.Outcome, err)
	}
	return nil
}

// auditOrJournal writes a teardown's audit entry, or journals it.
func (a *App) auditOrJournal(ctx context.Context, e store.AuditEntry) {
	a.prepareAudit(&e)
	a.writeOrJournal(ctx, JournalEntry{Op: journalAudit, Session: e.Session, Tenant: e.Tenant, Audit: &e, Once: e.Once})
}

// writeOrJournal makes a teardown write now, unless Redis is known down or earlier writes of the
// same session wait in the journal (then it waits behind them, in order); a write that fails
// for want of Redis is journaled.
func (a *App) writeOrJournal(ctx context.Context, e JournalEntry) {
	log := a.log.With().Str("session", e.Session).Str("op", e.Op).Logger()
	if !a.storeDown() && !a.journal.hasSession(e.Session) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(a.cfg.CallTimeout, teardownTimeout))
		err := a.applyJournal(cctx, e)
		cancel()
		if err == nil {
			return
		}
		if permanentStoreError(err) {
			log.Warn().Err(err).Msg("teardown write refused by the store")
			return
		}
		log.Warn().Err(err).Msg("Redis did not take a teardown write: journaled")
	}
	e.Queued = a.cfg.Clock()
	if err := a.journal.add(e); err != nil {
		log.Error().Err(err).Msg("teardown write lost: not journaled")
	}
}

// permanentStoreError: replaying will never succeed (an invalid entry, a record Redis no longer
// has); the entry is dropped.
func permanentStoreError(err error) bool {
	return errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrNotFound)
}

// applyJournal makes one journaled write. Each is idempotent.
func (a *App) applyJournal(ctx context.Context, e JournalEntry) error {
	switch e.Op {
	case journalAudit:
		if e.Audit == nil {
			return fmt.Errorf("%w: journal entry %d without an audit entry", store.ErrInvalid, e.Seq)
		}
		ae := *e.Audit
		ae.Once = e.Once
		_, err := a.store.AppendAudit(ctx, ae)
		return err
	case journalEnd:
		rec, err := a.store.EndSession(ctx, e.Session, e.Reason, e.At)
		if err != nil {
			return err
		}
		// Notified by whoever ended it: here only if this write did (an ended record is left as
		// it was, with another writer's time and reason), and once: the first to mark the
		// session's notification sends it, so a replay of a write that was notified sends
		// nothing.
		if rec.EndReason != e.Reason || !rec.EndedAt.Equal(e.At) {
			return nil
		}
		first, err := a.store.MarkOnce(ctx, endNoticeKey(e.Session), store.AuditOnceTTL)
		if err != nil {
			return fmt.Errorf("claiming the end notification of %s: %w", e.Session, err)
		}
		if first {
			a.notify(rec.Tenant, NoteSupervisionEnded, ViewSession(rec, a.cfg.Clock()))
		}
		return nil
	case journalRelease:
		err := a.store.Release(ctx, e.Key, e.Owner)
		if errors.Is(err, store.ErrNotOwner) {
			return nil // lapsed and taken by someone else since: nothing of ours to give back
		}
		return err
	}
	return fmt.Errorf("%w: journal entry %d: unknown op %q", store.ErrInvalid, e.Seq, e.Op)
}

// endNoticeKey is the marker that makes a session's supervision.ended notification go out once
// (store.MarkOnce).
func endNoticeKey(session string) string { return NoteSupervisionEnded + ":" + session }

// runJournal replays the journal whenever Redis answers and entries wait, until ctx ends.
func (a *App) runJournal(ctx context.Context) {
	for {
		var changed <-chan struct{}
		if h := a.cfg.StoreHealth; h != nil {
			changed = h.Changed()
		}
		if a.journal.Len() > 0 && !a.storeDown() {
			a.replayJournal(ctx)
		}
		var retry <-chan time.Time
		if a.journal.Len() > 0 {
			retry = time.After(journalRetry)
		}
		select {
		case <-ctx.Done():
			return
		case <-a.journal.kick:
		case <-changed:
		case <-retry:
		}
	}
}

// replayJournal writes the journal's entries in order until it is empty or Redis fails one
// (the rest wait for the next try).
func (a *App) replayJournal(ctx context.Context) {
	for ctx.Err() == nil {
		e, ok := a.journal.front()
		if !ok {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.CallTimeout)
		err := a.applyJournal(cctx, e)
		cancel()
		log := a.log.With().Uint64("seq", e.Seq).Str("op", e.Op).Str("session", e.Session).Logger()
		switch {
		case err == nil:
			log.Info().Dur("waited", a.cfg.Clock().Sub(e.Queued)).Msg("journal: written")
			a.journal.done(e.Seq, false)
		case permanentStoreError(err):
			log.Warn().Err(err).Msg("journal: refused by the store, dropped")
			a.journal.done(e.Seq, true)
		default:
			log.Debug().Err(err).Int("pending", a.journal.Len()).Msg("journal: Redis not taking writes yet")
			return
		}
	}
}

// flushJournal is the last replay, at shutdown, after every session ended: bounded; what is
// left stays in the journal's file (if it has one) for the next start.
func (a *App) flushJournal() {
	if a.journal.Len() > 0 && !a.storeDown() {
		ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
		a.replayJournal(ctx)
		cancel()
	}
	if n := a.journal.Len(); n > 0 {
		ev := a.log.Error()
		if a.journal.path != "" {
			ev = a.log.Warn().Str("file", a.journal.path)
		}
		ev.Int("pending", n).Bool("kept", a.journal.path != "").
			Msg("journal: writes still waiting for Redis at shutdown (kept: replayed at the next start)")
	}
}

// registerJournalMetrics exports the journal's counters (once per registry).
func registerJournalMetrics(reg prometheus.Registerer, j *Journal) {
	if reg == nil {
		return
	}
	stat := func(f func(JournalStats) float64) func() float64 { return func() float64 { return f(j.Stats()) } }
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "earpiece_journal_pending",
			Help: "Teardown writes waiting in the journal for Redis."},
			stat(func(s JournalStats) float64 { return float64(s.Pending) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "earpiece_journal_added_total",
			Help: "Teardown writes journaled because Redis did not take them."},
			stat(func(s JournalStats) float64 { return float64(s.Added) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "earpiece_journal_replayed_total",
			Help: "Journaled writes made once Redis answered again."},
			stat(func(s JournalStats) float64 { return float64(s.Replayed) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "earpiece_journal_dropped_total",
			Help: "Journaled writes the store refused for good (invalid, or the record gone)."},
			stat(func(s JournalStats) float64 { return float64(s.Dropped) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "earpiece_journal_lost_total",
			Help: "Teardown writes that could not be journaled (journal full or its file failing)."},
			stat(func(s JournalStats) float64 { return float64(s.Lost) })),
	} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err)
			}
		}
	}
}

// tenantID is the session's tenant ("" before it is known).
func (s *session) tenantID() string {
	if s.tenant == nil {
		return ""
	}
	return s.tenant.ID
}
