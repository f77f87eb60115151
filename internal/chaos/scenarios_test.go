package chaos

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/internal/e2etest"
)

// scenarios is the table. Faults of other kinds (an instance killed with -9 and its sessions
// re-adopted, a standby taking over) are new rows: a Run that injects them through the Harness
// (or a second harness app), and the same invariants afterwards.
var scenarios = []Scenario{
	{
		// Redis goes away under an active whisper and comes back: the supervision's audio is
		// all on Asterisk and goes on untouched; the session ends normally afterwards.
		Name: "redis-stopped-mid-session", InMakeTest: true,
		Run: func(h *Harness) {
			c, sup := h.Supervise("*91744")
			h.R.Hears(c.Agent, hzSupervisor, "agent hears the whisper")
			from := time.Now()
			h.RedisDown(false)
			time.Sleep(time.Second)
			h.AudioThrough(c, sup, from, time.Now(), true)
			// A switch asked for during the outage is refused (it cannot be audited), audibly
			// (half a second of congestion to the supervisor alone), and the mode stays.
			asked := time.Now()
			ctx, cancel := context.WithTimeout(h.R.Ctx, 2*time.Second)
			_ = sup.SendDTMF(ctx, "2")
			cancel()
			h.R.HearsAfter(sup, asked, e2etest.ToneRefusalLow, true, "supervisor: the barge refused")
			time.Sleep(700 * time.Millisecond)
			h.R.SilentOn(c.Customer, hzSupervisor, asked, time.Now(), "customer while a barge is refused")
			h.RedisUp(false)
			h.Hangup(sup)
		},
	},
	{
		// The supervisor hangs up while Redis is down: the teardown's writes (the talker slot,
		// the end's audit entry, the record ended, supervision.ended) are journaled and
		// written when Redis is back; nothing stays held.
		Name: "redis-stopped-during-teardown", InMakeTest: true,
		Run: func(h *Harness) {
			_, sup := h.Supervise("*92744")
			h.RedisDown(false)
			h.Hangup(sup)
			e2etest.WaitFor(h.T, 5*time.Second, "the session over", func() bool { return len(h.App.Live()) == 0 })
			if n := h.App.Journal().Len(); n == 0 {
				h.Violation("nothing journaled for a teardown during the outage")
			}
			time.Sleep(500 * time.Millisecond)
			h.RedisUp(false)
		},
	},
	{
		// The supervised call ends while Redis is frozen: the supervisor hears busy and is hung
		// up at once (the teardown does not wait on Redis), and the writes follow on resume.
		Name: "redis-frozen-call-ends", InMakeTest: true,
		Run: func(h *Harness) {
			c, sup := h.Supervise("*91744")
			h.RedisDown(true)
			h.Hangup(c.Customer)
			h.R.Hears(sup, e2etest.ToneRefusalLow, "supervisor: busy tone after the call ended")
			h.R.AwaitEnded(sup, 5*time.Second, "supervisor after the call ended")
			time.Sleep(300 * time.Millisecond)
			h.RedisUp(true)
		},
	},
	{
		// A join while Redis is frozen is refused within half a second, audibly, and the
		// refusal is audited once Redis answers.
		Name: "redis-frozen-join-refused", InMakeTest: true,
		Run: func(h *Harness) { joinRefused(h, true) },
	},
	{
		Name: "redis-stopped-join-refused",
		Run:  func(h *Harness) { joinRefused(h, false) },
	},
	{
		// The ARI events socket is cut (and REST with it) for a second under a spy session: the
		// audio is Asterisk's and goes on; once reconnected, the session still answers the
		// supervisor's keys.
		Name: "ari-socket-cut-mid-session",
		Run: func(h *Harness) {
			c, sup := h.Supervise("*90744")
			from := time.Now()
			h.Fault("ARI socket cut for 1 s")
			h.Proxy.Cut(time.Second)
			e2etest.WaitFor(h.T, 10*time.Second, "ARI reconnected", func() bool { return h.R.Client.Stats().Connected })
			h.AudioThrough(c, sup, from, time.Now(), false)
			ctx, cancel := context.WithTimeout(h.R.Ctx, 2*time.Second)
			asked := time.Now()
			_ = sup.SendDTMF(ctx, "1")
			cancel()
			h.R.HearsAfter(c.Agent, asked, hzSupervisor, true, "agent hears the whisper asked after the reconnection")
			h.Hangup(sup)
		},
	},
	{
		// The supervisor hangs up while the ARI socket is cut: the events are lost; after the
		// reconnection the app must still find out and end the session.
		Name: "ari-socket-cut-supervisor-hangs-up", InMakeTest: true,
		Run: func(h *Harness) {
			_, sup := h.Supervise("*90744")
			h.Fault("ARI socket cut while the supervisor hangs up")
			done := make(chan struct{})
			go func() { defer close(done); h.Proxy.Cut(1500 * time.Millisecond) }()
			time.Sleep(200 * time.Millisecond)
			h.Hangup(sup)
			<-done
			e2etest.WaitFor(h.T, 10*time.Second, "ARI reconnected", func() bool { return h.R.Client.Stats().Connected })
		},
	},
	{
		// The supervised call ends while the ARI socket is cut: the snoop's end is lost with
		// the socket; after the reconnection the app finds the call gone and ends the session,
		// its talker slot with it.
		Name: "ari-socket-cut-call-ends",
		Run: func(h *Harness) {
			c, sup := h.Supervise("*91744")
			h.Fault("ARI socket cut while the call ends")
			done := make(chan struct{})
			go func() { defer close(done); h.Proxy.Cut(1500 * time.Millisecond) }()
			time.Sleep(200 * time.Millisecond)
			h.Hangup(c.Customer)
			<-done
			e2etest.WaitFor(h.T, 10*time.Second, "ARI reconnected", func() bool { return h.R.Client.Stats().Connected })
			h.R.AwaitEnded(sup, 10*time.Second, "supervisor of a call that ended during the cut")
		},
	},
	{
		// Asterisk restarts under a whisper: every call is gone; the app reconnects, finds the
		// session's channels gone, and ends it: record, audit, talker slot, notification.
		Name: "asterisk-restart", PrivateAsterisk: true,
		Run: func(h *Harness) {
			_, _ = h.Supervise("*91744")
			h.Fault("Asterisk restarted")
			h.R.Ast.Restart(h.T)
			e2etest.WaitFor(h.T, 15*time.Second, "ARI reconnected", func() bool { return h.R.Client.Stats().Connected })
			e2etest.WaitFor(h.T, 10*time.Second, "the session over", func() bool { return len(h.App.Live()) == 0 })
		},
	},
}

// refusals collects the refusal latencies of the run (dial to the first congestion frame).
var refusals struct {
	sync.Mutex
	by map[string][]time.Duration
}

// joinRefused: with Redis down (frozen or stopped) and known so, the supervisor dialing is
// refused within 0.5 s by ear; the refusal is audited once when Redis answers again.
func joinRefused(h *Harness, frozen bool) {
	c := h.R.Connect(h.Customer, h.Agent, "744")
	h.RedisDown(frozen)
	start := time.Now()
	sup, _ := h.R.Dial(h.Sup, "*91744")
	heard := h.R.Hears(sup, e2etest.ToneRefusalLow, "supervisor refused while Redis is down")
	took := heard.Sub(start)
	kind := map[bool]string{true: "frozen", false: "stopped"}[frozen]
	refusals.Lock()
	if refusals.by == nil {
		refusals.by = map[string][]time.Duration{}
	}
	refusals.by[kind] = append(refusals.by[kind], took)
	refusals.Unlock()
	h.T.Logf("refused by ear %v after dialing (Redis %s)", took.Round(time.Millisecond), kind)
	if took > 500*time.Millisecond {
		h.Violation("refusal heard %v after dialing with Redis %s, want within 0.5 s", took, kind)
	}
	h.R.AwaitEnded(sup, 5*time.Second, "refused supervisor")
	h.R.SilentOn(c.Agent, hzSupervisor, start, time.Now(), "agent during the refused join")
	h.RedisUp(frozen)
	e2etest.WaitFor(h.T, 5*time.Second, "the journal written", func() bool { return h.App.Journal().Len() == 0 })
	n := 0
	for _, e := range h.R.Audit(tenant) {
		if e.Action == "join" && e.Outcome == "refused" && e.Reason == app.RefuseStoreUnavailable {
			n++
		}
	}
	if n != 1 {
		h.Violation("%d refusals audited for one refused join, want 1", n)
	}
}

// TestChaos runs the table: the scenarios marked InMakeTest once each, or, with
// EARPIECE_CHAOS_RUNS=n (make chaos), every scenario n times; then prints the summary.
func TestChaos(t *testing.T) {
	runs, all := 1, false
	if v := os.Getenv("EARPIECE_CHAOS_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("EARPIECE_CHAOS_RUNS=%q: want a positive number", v)
		}
		runs, all = n, true
	}
	only := os.Getenv("EARPIECE_CHAOS_SCENARIO")
	var nRuns, nFaults, nViolations, nFailed int
	for _, sc := range scenarios {
		if (!all && !sc.InMakeTest && only == "") || (only != "" && sc.Name != only) {
			continue
		}
		for i := range runs {
			var h *Harness
			ok := t.Run(fmt.Sprintf("%s/%d", sc.Name, i+1), func(t *testing.T) {
				h = newHarness(t, sc)
				sc.Run(h)
				h.CheckInvariants()
			})
			nRuns++
			if h != nil {
				nFaults += h.faults
				nViolations += len(h.violations)
				if !ok && len(h.violations) == 0 {
					nFailed++ // failed before its checks (a step that never happened)
				}
			}
		}
	}
	refusals.Lock()
	for _, kind := range []string{"stopped", "frozen"} {
		if d := refusals.by[kind]; len(d) > 0 {
			s := slices.Clone(d)
			sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
			t.Logf("chaos: join refused by ear with Redis %s: median %v over %d (max %v)", kind, s[len(s)/2].Round(time.Millisecond), len(s), s[len(s)-1].Round(time.Millisecond))
		}
	}
	refusals.Unlock()
	t.Logf("chaos: %d runs, %d faults, %d violations, %d runs failed before their checks", nRuns, nFaults, nViolations, nFailed)
	fmt.Printf("chaos: %d runs, %d faults, %d violations, %d runs failed before their checks\n", nRuns, nFaults, nViolations, nFailed)
}
