package app

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/internal/redistest"
	"github.com/earpiece/earpiece/store"
)

// Fast tests of the journal (journal.go): the fake ARI, a real Redis with persistence (as
// production's), stopped and frozen under a running app.

// jnotes records the notifications an app sends.
type jnotes struct {
	mu  sync.Mutex
	all []Notification
}

func (n *jnotes) Notify(x Notification) {
	n.mu.Lock()
	n.all = append(n.all, x)
	n.mu.Unlock()
}

// count is how many notifications of type typ name session id.
func (n *jnotes) count(typ, id string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, x := range n.all {
		if v, ok := x.Data.(SessionView); x.Type == typ && ok && v.ID == id {
			c++
		}
	}
	return c
}

type journalRig struct {
	*fastRig
	redis  *redistest.Server
	health *store.Health
	jnotes *jnotes
	dir    string
}

// newJournalRig is a fast rig whose Redis persists (Stop and Restart keep the data) and whose
// client fails fast through a store.Health, with the journal in a directory.
func newJournalRig(t *testing.T, dir string, mods ...func(*Config)) *journalRig {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	rs := redistest.StartPersistent(t)
	return startJournalRig(t, rs, dir, mods...)
}

func startJournalRig(t *testing.T, rs *redistest.Server, dir string, mods ...func(*Config)) *journalRig {
	t.Helper()
	opts := rs.Options()
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	h := store.NewHealth(rdb, store.HealthOptions{})
	rdb.AddHook(h)
	st := store.New(rdb, store.Options{})
	d := testDirectory(t, nil)
	j, err := OpenJournal(JournalOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	n := &jnotes{}
	f := newFakeARI(t)
	acfg := Config{
		AppName: "earpiece", Instance: "fast",
		RefusalTone: 30 * time.Millisecond, EndTone: 30 * time.Millisecond,
		SnoopTimeout: time.Second, CallTimeout: 2 * time.Second,
		Journal: j, StoreHealth: h, Notifier: n,
	}
	for _, m := range mods {
		m(&acfg)
	}
	a := New(acfg, f, st, d)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { h.Run(ctx) })
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx, f.events) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("App.Run did not return")
		}
		wg.Wait()
	})
	return &journalRig{fastRig: &fastRig{t: t, ari: f, app: a, store: st}, redis: rs, health: h, jnotes: n, dir: dir}
}

// sessionOf returns the id of the session of supervisor channel sup (from the store).
func (r *journalRig) sessionOf(sup ari.ChannelID) store.Session {
	r.t.Helper()
	var rec store.Session
	r.eventually("the session of "+string(sup), func() bool {
		ss, err := r.store.ListSessions(context.Background(), "acme")
		if err != nil {
			return false
		}
		for _, s := range ss {
			if s.SupervisorChannel == string(sup) {
				rec = s
				return true
			}
		}
		return false
	})
	return rec
}

// auditCount counts the entries of session id by action.
func auditCount(es []store.AuditEntry, id string) map[string]int {
	out := map[string]int{}
	for _, e := range es {
		if e.Session == id {
			out[e.Action+":"+e.Outcome]++
		}
	}
	return out
}

// outageAfterEnd is how long Redis stays out after the session ended in TestFastJournalOutage.
const outageAfterEnd = 2 * time.Second

// TestFastJournalOutage: a session that ends while Redis is down (stopped, then frozen) leaves
// no ghost. Its teardown's writes are journaled and written once Redis answers: the record ends
// with the time and reason of the real end (not when Redis came back), its end is audited once,
// supervision.ended is sent once, the talker slot is free.
func TestFastJournalOutage(t *testing.T) {
	for _, fault := range []string{"stopped", "frozen"} {
		t.Run(fault, func(t *testing.T) {
			r := newJournalRig(t, t.TempDir())
			agent := r.ari.Call("PJSIP/744")
			sup := r.ari.Dial("PJSIP/700", "acme", "*91744") // whisper: holds the talker slot
			r.active(sup)
			rec := r.sessionOf(sup)
			r.eventually("mode recorded", func() bool {
				got, err := r.store.GetSession(context.Background(), rec.ID)
				// Whispering: the talk paths made and the mode recorded.
				return err == nil && got.State == store.StateActive && !got.ModeSince.IsZero() && len(got.Talk) == earCount
			})
			if fault == "stopped" {
				r.redis.Stop()
			} else {
				r.redis.Pause()
			}
			r.eventually("Redis seen down", func() bool { return !r.health.Up() })
			ended := time.Now()
			r.ari.HangupFromPhone(sup)
			r.eventually("the session over", func() bool { return len(r.app.Live()) == 0 })
			if got := r.app.Journal().Len(); got != 3 {
				t.Fatalf("%d journaled writes, want 3 (release, end audit, end record): %+v", got, r.app.Journal().Pending())
			}
			time.Sleep(outageAfterEnd) // the outage goes on
			if fault == "stopped" {
				r.redis.Restart()
			} else {
				r.redis.Resume()
			}
			r.eventually("the journal replayed", func() bool { return r.app.Journal().Len() == 0 })

			got, err := r.store.GetSession(context.Background(), rec.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != store.StateEnded || got.EndReason != ReasonSupervisorHangup {
				t.Errorf("record %s/%s, want ended/%s", got.State, got.EndReason, ReasonSupervisorHangup)
			}
			// Well before Redis came back (a test machine under load may take a while to tear
			// the session down, never the outage's length).
			if d := got.EndedAt.Sub(ended); d < 0 || d > outageAfterEnd/2 {
				t.Errorf("record ended at %v, %v after the hangup: want the hangup's time", got.EndedAt, d)
			}
			if wt := got.ModeTotals(time.Now())["whisper"]; wt > time.Since(rec.StartedAt)-outageAfterEnd {
				t.Errorf("whisper time %v counts the outage", wt)
			}
			if c := auditCount(r.audit("acme"), rec.ID); c["join:allowed"] != 1 || c["end:ok"] != 1 {
				t.Errorf("audit entries of the session: %v, want one join and one end", c)
			}
			if n := r.jnotes.count(NoteSupervisionEnded, rec.ID); n != 1 {
				t.Errorf("supervision.ended sent %d times, want once", n)
			}
			ok, err := r.store.Claim(context.Background(), talkerKey(agent), "probe", time.Minute)
			if err != nil || !ok {
				t.Errorf("the talker slot is still held after the replay (%v, %v)", ok, err)
			}
			r.assertClean("acme")
			if v, err := r.store.VerifyAudit(context.Background(), "acme"); err != nil || !v.OK {
				t.Errorf("audit chain after the replay: %+v %v", v.Broken, err)
			}
		})
	}
}

// TestFastJournalIdempotent: replaying the same entries again writes nothing more: one end entry,
// one notification, the record as the first replay left it.
func TestFastJournalIdempotent(t *testing.T) {
	r := newJournalRig(t, "")
	r.ari.Call("PJSIP/744")
	sup := r.ari.Dial("PJSIP/700", "acme", "*91744")
	r.active(sup)
	rec := r.sessionOf(sup)
	r.redis.Pause()
	r.eventually("Redis seen down", func() bool { return !r.health.Up() })
	r.ari.HangupFromPhone(sup)
	r.eventually("the session over", func() bool { return len(r.app.Live()) == 0 })
	entries := r.app.Journal().Pending()
	r.redis.Resume()
	r.eventually("the journal replayed", func() bool { return r.app.Journal().Len() == 0 })
	first, _ := r.store.GetSession(context.Background(), rec.ID)
	for range 2 {
		for _, e := range entries {
			if err := r.app.applyJournal(context.Background(), e); err != nil {
				t.Fatalf("replaying %s again: %v", e.Op, err)
			}
		}
	}
	again, _ := r.store.GetSession(context.Background(), rec.ID)
	if !again.EndedAt.Equal(first.EndedAt) || again.EndReason != first.EndReason {
		t.Errorf("record changed by a second replay: %v %s -> %v %s", first.EndedAt, first.EndReason, again.EndedAt, again.EndReason)
	}
	if c := auditCount(r.audit("acme"), rec.ID); c["end:ok"] != 1 {
		t.Errorf("audit entries after three replays: %v, want one end", c)
	}
	if n := r.jnotes.count(NoteSupervisionEnded, rec.ID); n != 1 {
		t.Errorf("supervision.ended sent %d times after three replays, want once", n)
	}
}

// TestFastJournalSurvivesRestart: the instance stops while Redis is still down; its journal file
// keeps the writes, and the next instance (the same directory) makes them once Redis answers.
func TestFastJournalSurvivesRestart(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	dir := t.TempDir()
	rs := redistest.StartPersistent(t)
	var id string
	t.Run("first instance", func(t *testing.T) {
		r := startJournalRig(t, rs, dir)
		r.ari.Call("PJSIP/744")
		sup := r.ari.Dial("PJSIP/700", "acme", "*92744")
		r.active(sup)
		id = r.sessionOf(sup).ID
		rs.Stop()
		r.eventually("Redis seen down", func() bool { return !r.health.Up() })
		r.ari.HangupFromPhone(sup)
		r.eventually("the session over", func() bool { return len(r.app.Live()) == 0 })
		if n := r.app.Journal().Len(); n != 3 {
			t.Fatalf("%d journaled, want 3", n)
		}
	}) // the instance stops: its cleanup ends the app, the journal stays in dir
	b, err := os.ReadFile(filepath.Join(dir, JournalFile))
	if err != nil || !strings.Contains(string(b), id) {
		t.Fatalf("journal file after the stop: %v\n%s", err, b)
	}
	rs.Restart()
	r := startJournalRig(t, rs, dir)
	r.eventually("the journal replayed by the next instance", func() bool { return r.app.Journal().Len() == 0 })
	got, err := r.store.GetSession(context.Background(), id)
	if err != nil || got.State != store.StateEnded || got.EndReason != ReasonSupervisorHangup {
		t.Fatalf("record after the next instance's replay: %+v %v", got, err)
	}
	if c := auditCount(r.audit("acme"), id); c["end:ok"] != 1 {
		t.Errorf("audit entries: %v, want one end", c)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, JournalFile)); len(b) != 0 {
		t.Errorf("journal file not emptied once replayed: %s", b)
	}
}

// TestFastJoinRefusedInOutage: with Redis down (stopped or frozen, and known down), a join is
// refused at once, audibly, and nothing is made; what is refused is journaled as its refusal
// and audited once Redis is back. The refusal latency is measured from the StasisStart to the
// congestion tone.
func TestFastJoinRefusedInOutage(t *testing.T) {
	for _, fault := range []string{"stopped", "frozen"} {
		t.Run(fault, func(t *testing.T) {
			r := newJournalRig(t, "")
			r.ari.Call("PJSIP/744")
			if fault == "stopped" {
				r.redis.Stop()
			} else {
				r.redis.Pause()
			}
			r.eventually("Redis seen down", func() bool { return !r.health.Up() })
			var took []time.Duration
			for range 5 {
				start := time.Now()
				sup := r.ari.Dial("PJSIP/700", "acme", "*90744")
				r.eventually("the congestion tone", func() bool {
					return slices.Contains(r.ari.Calls("Play"), "Play tone:congestion on "+string(sup))
				})
				took = append(took, time.Since(start))
				r.eventually("hung up", func() bool { return slices.Contains(r.ari.Calls("Hangup"), "Hangup "+string(sup)) })
			}
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			t.Logf("refused within %v (median of %d; max %v)", took[len(took)/2], len(took), took[len(took)-1])
			if took[len(took)/2] > 100*time.Millisecond {
				t.Errorf("median refusal %v with Redis known down, want at once", took[len(took)/2])
			}
			if made := r.ari.Calls("Snoop", "CreateBridge"); len(made) > 0 {
				t.Errorf("a refused join made %q", made)
			}
			if fault == "stopped" {
				r.redis.Restart()
			} else {
				r.redis.Resume()
			}
			r.eventually("the journal replayed", func() bool { return r.app.Journal().Len() == 0 })
			n := 0
			for _, e := range r.audit("acme") {
				if e.Action == "join" && e.Outcome == "refused" && e.Reason == RefuseStoreUnavailable {
					n++
				}
			}
			if n != 5 {
				t.Errorf("%d refusals audited after the outage, want 5", n)
			}
		})
	}
}

// TestJournalFile: the file keeps what is pending across reopenings, skips a torn last line,
// and is emptied once everything is done.
func TestJournalFile(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(JournalOptions{Dir: dir, Max: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range []string{"a", "b", "c", "d"} {
		err := j.add(JournalEntry{Op: journalRelease, Session: s, Key: "talker:x", Owner: s})
		if (i < 3) != (err == nil) {
			t.Fatalf("add %d: %v (max 3)", i, err)
		}
	}
	e, _ := j.front()
	j.done(e.Seq, false)
	j.Close()
	f, _ := os.OpenFile(filepath.Join(dir, JournalFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"put":{"seq":9,"op":"rel`) // torn
	f.Close()
	j, err = OpenJournal(JournalOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	var got []string
	for _, e := range j.Pending() {
		got = append(got, e.Session)
	}
	if !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("pending after reopening: %q, want b, c", got)
	}
	if !j.hasSession("b") || j.hasSession("a") {
		t.Error("hasSession wrong after reopening")
	}
	if err := j.add(JournalEntry{Op: journalRelease, Session: "e"}); err != nil {
		t.Fatal(err)
	}
	if p := j.Pending(); p[len(p)-1].Seq <= p[len(p)-2].Seq {
		t.Errorf("seq not increasing after reopening: %+v", p)
	}
	for j.Len() > 0 {
		e, _ := j.front()
		j.done(e.Seq, false)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, JournalFile)); len(b) != 0 {
		t.Errorf("file not emptied: %s", b)
	}
}
