package chaos

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/internal/e2etest"
	"github.com/earpiece/earpiece/internal/freeport"
	"github.com/earpiece/earpiece/internal/redistest"
	"github.com/earpiece/earpiece/internal/testphone"
	"github.com/earpiece/earpiece/store"
)

func TestMain(m *testing.M) { os.Exit(e2etest.Main(m)) }

// Tones of the three parties (testphone).
const (
	hzCustomer   = testphone.ToneCustomer
	hzAgent      = testphone.ToneAgent
	hzSupervisor = testphone.ToneSupervisor
	tenant       = "acme"
)

// Scenario is one row of the table: a fault at a point of a supervision, and its recovery.
type Scenario struct {
	Name string
	// InMakeTest puts the scenario in the bounded slice `make test` runs.
	InMakeTest bool
	// PrivateAsterisk: the scenario disturbs Asterisk itself (a restart), so it gets one of its
	// own rather than the shared one.
	PrivateAsterisk bool
	// Run drives one run: calls, the supervision, the fault (counted with Harness.Fault) and
	// the recovery. The invariants are checked after it returns.
	Run func(h *Harness)
}

// Harness is one run's world: a rig on the real Asterisk (its ARI socket through a proxy the
// run can cut) with a Redis that persists (as production's: a restart keeps the data), the app
// with its journal and the store's health check, a notifier that records what it is sent, and
// the three phones.
type Harness struct {
	T      *testing.T
	R      *e2etest.Rig
	App    *app.App
	Health *store.Health
	Proxy  *Proxy
	Notes  *Recorder
	// Phones: customer 800, agent 744, supervisor 700.
	Customer, Agent, Sup *testphone.Phone

	faults     int
	violations []string
	mu         sync.Mutex
}

// Fault counts a fault injected (for the summary).
func (h *Harness) Fault(what string) {
	h.T.Helper()
	h.T.Logf("fault: %s", what)
	h.faults++
}

// Violation records a broken invariant: the run fails, and the summary counts it.
func (h *Harness) Violation(format string, args ...any) {
	h.T.Helper()
	msg := fmt.Sprintf(format, args...)
	h.mu.Lock()
	h.violations = append(h.violations, msg)
	h.mu.Unlock()
	h.T.Error("violation: " + msg)
}

func newHarness(t *testing.T, sc Scenario) *Harness {
	t.Helper()
	return newHarnessWith(t, sc, nil)
}

// newHarnessWith is newHarness with the app's configuration changed by mod (nil: as is).
// Without a StoreHealth in the result, the client gets no fail-fast hook either (how earpiece
// ran before it had one).
func newHarnessWith(t *testing.T, sc Scenario, mod func(*app.Config)) *Harness {
	t.Helper()
	owned := e2etest.Owned{BridgeNamePrefix: app.BridgeNamePrefix, BridgeIDPrefix: "ep-br-", ChannelIDPrefix: "ep-snp-"}
	var r *e2etest.Rig
	if sc.PrivateAsterisk {
		r = e2etest.NewPrivate(t, owned)
	} else {
		r = e2etest.New(t, owned)
	}
	// A Redis that keeps its data across Stop and Restart, as production's does (AOF).
	rs := redistest.StartPersistent(t)
	rdb := redis.NewClient(rs.Options())
	t.Cleanup(func() { rdb.Close() })
	health := store.NewHealth(rdb, store.HealthOptions{})
	r.Redis, r.RDB, r.Store = rs, rdb, store.New(rdb, store.Options{})
	r.Go(health.Run)

	// The ARI client talks to Asterisk through a proxy the run can cut.
	proxy := StartProxy(t, r.Ast.ARIURL)
	client, err := ari.New(ari.Config{BaseURL: proxy.URL(r.Ast.ARIURL), User: r.Ast.User, Password: r.Ast.Password,
		App: e2etest.AppName, Logger: r.Log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	r.Client = client

	dcfg, err := config.Load("../../app/testdata/e2e.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := config.NewDirectory(dcfg)
	if err != nil {
		t.Fatal(err)
	}
	journal, err := app.OpenJournal(app.JournalOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { journal.Close() })
	notes := &Recorder{}
	cfg := app.Config{
		AppName: e2etest.AppName, Instance: "chaos", RefusalTone: 700 * time.Millisecond, EndTone: 500 * time.Millisecond,
		CallTimeout: 2 * time.Second, Logger: r.Log, Notifier: notes, Journal: journal, StoreHealth: health,
	}
	if mod != nil {
		mod(&cfg)
	}
	if cfg.StoreHealth != nil {
		rdb.AddHook(health) // as main wires it: every command fails at once while Redis is down
	}
	a := app.New(cfg, client, r.Store, dir)
	r.Start(a)
	h := &Harness{T: t, R: r, App: a, Health: health, Proxy: proxy, Notes: notes}
	h.Customer = r.Phone("800", hzCustomer, testphone.AutoAnswer)
	h.Agent = r.Phone("744", hzAgent, testphone.AutoAnswer)
	h.Sup = r.Phone("700", hzSupervisor, testphone.AutoAnswer)
	return h
}

// Supervise connects customer and agent and has the supervisor dial code; it returns the call's
// parties and the supervisor's call once the supervisor hears the customer.
func (h *Harness) Supervise(code string) (e2etest.Parties, *testphone.Call) {
	h.T.Helper()
	c := h.R.Connect(h.Customer, h.Agent, "744")
	sup, _ := h.R.Dial(h.Sup, code)
	h.R.Hears(sup, hzCustomer, "supervisor")
	h.R.Hears(sup, hzAgent, "supervisor")
	return c, sup
}

// RedisDown stops (frozen false) or freezes Redis and waits until the app's health check sees it.
func (h *Harness) RedisDown(frozen bool) {
	h.T.Helper()
	if frozen {
		h.Fault("Redis frozen (SIGSTOP)")
		h.R.Redis.Pause()
	} else {
		h.Fault("Redis stopped")
		h.R.Redis.Stop()
	}
	e2etest.WaitFor(h.T, 5*time.Second, "Redis seen down", func() bool { return !h.Health.Up() })
}

// RedisUp undoes RedisDown.
func (h *Harness) RedisUp(frozen bool) {
	h.T.Helper()
	if frozen {
		h.R.Redis.Resume()
	} else {
		h.R.Redis.Restart()
	}
	e2etest.WaitFor(h.T, 5*time.Second, "Redis seen up", func() bool { return h.Health.Up() })
}

// Hangup hangs call c up from its phone.
func (h *Harness) Hangup(c *testphone.Call) {
	h.T.Helper()
	ctx, cancel := context.WithTimeout(h.R.Ctx, 3*time.Second)
	defer cancel()
	if err := c.Hangup(ctx); err != nil {
		h.T.Logf("hangup: %v", err)
	}
}

// AudioThrough checks that the supervisor heard both parties without a gap over [from, to) and
// that nobody's hearing of the supervisor changed (the design: a fault of Redis or of the ARI
// socket leaves the supervision's audio, all on Asterisk, as it was).
func (h *Harness) AudioThrough(c e2etest.Parties, sup *testphone.Call, from, to time.Time, agentHearsSup bool) {
	h.T.Helper()
	if gap, allowed := e2etest.Gap(sup, c.Customer, hzCustomer, from, to); gap > allowed {
		h.Violation("supervisor lost the customer for %v during the fault (allowed %v)", gap, allowed)
	}
	if gap, allowed := e2etest.Gap(sup, c.Agent, hzAgent, from, to); gap > allowed {
		h.Violation("supervisor lost the agent for %v during the fault (allowed %v)", gap, allowed)
	}
	if agentHearsSup {
		if gap, allowed := e2etest.Gap(c.Agent, sup, hzSupervisor, from, to); gap > allowed {
			h.Violation("agent lost the whispering supervisor for %v during the fault (allowed %v)", gap, allowed)
		}
	}
	if gap, allowed := e2etest.Gap(c.Customer, c.Agent, hzAgent, from, to); gap > allowed {
		h.Violation("customer lost the agent for %v during the fault (allowed %v)", gap, allowed)
	}
}

// Recorder is the app's notifier: it records every notification.
type Recorder struct {
	mu  sync.Mutex
	all []app.Notification
}

// Notify implements app.Notifier.
func (r *Recorder) Notify(n app.Notification) {
	r.mu.Lock()
	r.all = append(r.all, n)
	r.mu.Unlock()
}

// Count is how many notifications of type typ are about session id.
func (r *Recorder) Count(typ, id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, x := range r.all {
		if x.Type != typ {
			continue
		}
		switch v := x.Data.(type) {
		case app.SessionView:
			if v.ID == id {
				n++
			}
		case map[string]string:
			if v["session_id"] == id {
				n++
			}
		}
	}
	return n
}

// CheckInvariants checks, after a run, everything that must hold whatever the fault was.
func (h *Harness) CheckInvariants() {
	h.T.Helper()
	r := h.R
	// The journal is written out (Redis answers again by now).
	deadline := time.Now().Add(8 * time.Second)
	for h.App.Journal().Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := h.App.Journal().Len(); n > 0 {
		h.Violation("%d journaled writes never written: %+v", n, h.App.Journal().Pending())
	}
	if s := h.App.Journal().Stats(); s.Lost > 0 || s.Dropped > 0 {
		h.Violation("journal lost %d and dropped %d writes", s.Lost, s.Dropped)
	}
	// Nothing left on Asterisk, in Redis's live sessions, or running in the app.
	var left string
	deadline = time.Now().Add(8 * time.Second)
	for {
		if left = r.Leftovers(tenant); left == "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if left != "" {
		h.Violation("left behind: %s", left)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// No claim left: talker slots, join claims.
	for _, pattern := range []string{store.Prefix + "claim:talker:*", store.Prefix + "claim:join:*"} {
		keys, err := r.RDB.Keys(ctx, pattern).Result()
		if err != nil {
			h.Violation("listing claims: %v", err)
		}
		if len(keys) > 0 {
			h.Violation("claims left: %v", keys)
		}
	}
	// Every session: its join and its end audited exactly once, its record ended, its start
	// and end notified exactly once.
	es, err := r.Store.Audit(ctx, tenant, time.Time{}, time.Time{}, 10000)
	if err != nil {
		h.Violation("reading the audit trail: %v", err)
		return
	}
	type counts struct{ joins, refusals, ends int }
	per := map[string]*counts{}
	var order []string
	for _, e := range es {
		if e.Session == "" {
			continue
		}
		c := per[e.Session]
		if c == nil {
			c = &counts{}
			per[e.Session] = c
			order = append(order, e.Session)
		}
		switch {
		case e.Action == "join" && e.Outcome == "allowed":
			c.joins++
		case e.Action == "join":
			c.refusals++
		case e.Action == "end":
			c.ends++
		}
	}
	for _, id := range order {
		c := per[id]
		switch {
		case c.joins > 1 || c.ends > 1 || c.refusals > 1:
			h.Violation("session %s audited %d joins, %d refusals, %d ends: want each at most once", id, c.joins, c.refusals, c.ends)
		case c.joins == 1 && c.ends+c.refusals != 1:
			h.Violation("session %s: joined, but %d ends and %d refusals audited (want exactly one)", id, c.ends, c.refusals)
		case c.joins == 0 && c.ends > 0:
			h.Violation("session %s: an end audited without its join", id)
		}
		if c.joins == 0 {
			continue
		}
		rec, err := r.Store.GetSession(ctx, id)
		if err != nil || rec.Live() {
			h.Violation("session %s: record %+v (%v), want ended", id, rec.State, err)
			continue
		}
		started, ended := h.Notes.Count(app.NoteSupervisionStarted, id), h.Notes.Count(app.NoteSupervisionEnded, id)
		if started > 1 || ended != 1 {
			h.Violation("session %s: supervision.started sent %d times, supervision.ended %d times; want at most one and exactly one", id, started, ended)
		}
	}
	if v, err := r.Store.VerifyAudit(ctx, tenant); err != nil || !v.OK {
		h.Violation("audit chain: %+v %v", v.Broken, err)
	}
}

// Proxy forwards TCP connections to Asterisk's HTTP port (ARI: REST and the events socket), and
// cuts them on demand, as a network fault or a proxy restart would.
type Proxy struct {
	t      *testing.T
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]bool
	down   atomic.Bool
	wg     sync.WaitGroup
}

// StartProxy forwards a loopback port to the host of ariURL until t ends.
func StartProxy(t *testing.T, ariURL string) *Proxy {
	t.Helper()
	target := strings.TrimPrefix(strings.TrimPrefix(ariURL, "http://"), "https://")
	if i := strings.IndexByte(target, '/'); i >= 0 {
		target = target[:i]
	}
	port, release, err := freeport.One()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		release()
		t.Fatal(err)
	}
	p := &Proxy{t: t, ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.closeAll()
		p.wg.Wait()
		release()
	})
	return p
}

// URL is ariURL with its host replaced by the proxy's.
func (p *Proxy) URL(ariURL string) string {
	return strings.Replace(ariURL, p.target, p.ln.Addr().String(), 1)
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.down.Load() {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		p.wg.Go(func() { pipe(up, c) })
		p.wg.Go(func() { pipe(c, up) })
	}
}

func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// Cut closes every connection (the events socket among them) and refuses new ones for d.
func (p *Proxy) Cut(d time.Duration) {
	p.down.Store(true)
	p.closeAll()
	time.Sleep(d)
	p.down.Store(false)
}
