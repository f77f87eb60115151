package scale

import (
	"fmt"
	"strings"
	"time"
)

// Side is one way of supervising N calls (earpiece, or Asterisk's ChanSpy) as the run measured it.
type Side struct {
	Joined   int             // supervisors who heard both parties
	Failed   int             // joins that did not get there within the limit
	JoinP50  time.Duration   // answered -> both call tones heard steadily
	JoinP95  time.Duration   //
	JoinMax  time.Duration   //
	AstShare float64         // Asterisk's CPU while supervised, share of a core
	AstBase  float64         // Asterisk's CPU with the same calls unsupervised, share of a core
	Lost     int             // RTP frames missing at the phones in the supervised window
	Expected int             // RTP frames due at the phones in the supervised window
	WorstGap time.Duration   // longest stretch without packets at any phone in that window
	SupHears float64         // share of the supervisors' frames carrying the agent's tone
	Phones   float64         // the test process (every phone) while supervised, share of a core
	Busy     float64         // the whole machine while supervised, share of all its CPUs
	Joins    []time.Duration `json:"-"`
}

// AstPerCall is Asterisk's CPU per supervised call, as a share of a core: what the supervised
// window cost beyond the unsupervised one, divided by the calls.
func (s Side) AstPerCall(n int) float64 {
	if n == 0 {
		return 0
	}
	return (s.AstShare - s.AstBase) / float64(n)
}

// LossRatio is Lost/Expected.
func (s Side) LossRatio() float64 {
	if s.Expected == 0 {
		return 0
	}
	return float64(s.Lost) / float64(s.Expected)
}

// Row is one N of the run.
type Row struct {
	N int
	// Earpiece: CPU as a share of a core while the N sessions are live and, before they joined,
	// with the calls alone; CPU time spent per join (the join phase's CPU beyond the baseline
	// rate, over N); resident memory before and during.
	EPShare, EPBase float64
	EPPerJoin       time.Duration
	EPRSSBase       int64 // KiB
	EPRSS           int64 // KiB
	// Redis: used_memory before the joins and with the sessions live; the session keys'
	// MEMORY USAGE total; the audit entries the joins wrote, and their payload.
	RedisBase, RedisLive int64
	SessionKeyBytes      int64
	AuditEntries         int64
	AuditBytes           int64

	Earpiece, ChanSpy Side
	Note              string // why the row is incomplete, if it is
}

func perN(v int64, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(v) / float64(n)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

// Markdown renders rows as the run's table, with a legend.
func Markdown(rows []Row, window time.Duration) string {
	var b strings.Builder
	b.WriteString("| N | join p50 / p95 ms (earpiece) | join p50 / p95 ms (ChanSpy) | earpiece CPU % (base -> live) | earpiece ms-CPU/s per session | earpiece ms-CPU per join | earpiece RSS KiB per session | Redis B per session (used_memory) | session keys B per session | audit entries, payload B per join | Asterisk ms-CPU/s per call earpiece (core % base -> live) | Asterisk ms-CPU/s per call ChanSpy (core % base -> live) | lost frames earpiece / ChanSpy | worst gap ms ep / cs | supervisor hears agent % ep / cs | machine busy %, phones CPU % ep / cs |\n")
	b.WriteString("|---:|---|---|---|---:|---:|---:|---:|---:|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		ep, cs := r.Earpiece, r.ChanSpy
		fmt.Fprintf(&b, "| %d | %s / %s (%d ok, %d failed) | %s / %s (%d ok, %d failed) | %.1f -> %.1f | %.3f | %.2f | %.0f | %.0f | %.0f | %.1f, %.0f | %.2f (%.1f -> %.1f) | %.2f (%.1f -> %.1f) | %d/%d (%.3f%%) / %d/%d (%.3f%%) | %s / %s | %.1f / %.1f | %.0f, %.0f / %.0f, %.0f |\n",
			r.N,
			ms(ep.JoinP50), ms(ep.JoinP95), ep.Joined, ep.Failed,
			ms(cs.JoinP50), ms(cs.JoinP95), cs.Joined, cs.Failed,
			r.EPBase*100, r.EPShare*100,
			(r.EPShare-r.EPBase)/float64(max(r.N, 1))*1000,
			float64(r.EPPerJoin)/float64(time.Millisecond),
			perN(r.EPRSS-r.EPRSSBase, r.N),
			perN(r.RedisLive-r.RedisBase, r.N),
			perN(r.SessionKeyBytes, r.N),
			perN(r.AuditEntries, r.N), perN(r.AuditBytes, r.N),
			ep.AstPerCall(r.N)*1000, ep.AstBase*100, ep.AstShare*100,
			cs.AstPerCall(r.N)*1000, cs.AstBase*100, cs.AstShare*100,
			ep.Lost, ep.Expected, ep.LossRatio()*100, cs.Lost, cs.Expected, cs.LossRatio()*100,
			ms(ep.WorstGap), ms(cs.WorstGap),
			ep.SupHears*100, cs.SupHears*100,
			ep.Busy*100, ep.Phones*100, cs.Busy*100, cs.Phones*100)
	}
	for _, r := range rows {
		if r.Note != "" {
			fmt.Fprintf(&b, "\nN=%d: %s\n", r.N, r.Note)
		}
	}
	fmt.Fprintf(&b, `
Legend (measuring windows of %s with every call up; "base" = the same calls without supervision):
- join: supervisor's call answered -> both call tones (440 Hz customer, 1000 Hz agent) heard in 5
  consecutive 20 ms frames (as TestE2EModesByEar); joins paced, not all at once.
- earpiece CPU %%: utime+stime of the earpiece process over the window, %% of one core; per session:
  (live - base) / N. Per join: CPU of the join phase beyond the base rate, / N.
- RSS: VmRSS (live - base) / N. Redis: INFO used_memory (live - base) / N (session keys, audit
  entries, events, everything); session keys: MEMORY USAGE of earpiece:v1:{sessions}:* and claims;
  audit: entries the joins added to the tenant's audit stream and their payload (field names and
  values; MEMORY USAGE of a stream counts whole listpack nodes), / N.
- Asterisk ms-CPU/s per call: (Asterisk CPU supervised - Asterisk CPU same calls unsupervised) / N,
  in ms of CPU per second (10 = 1%% of a core).
- lost frames: RTP sequence gaps at every phone (customers, agents, supervisors) in the supervised
  window; worst gap: longest time any phone went without a packet; hears: share of the
  supervisors' frames in that window carrying 1000 Hz.
- machine busy: all CPUs (other work on the machine included) in the supervised window; phones:
  the test process that runs every phone, %% of one core.
`, window)
	return b.String()
}
