package app

import (
	"slices"
	"time"

	"github.com/earpiece/earpiece/store"
)

// Supervision reports (GET /v1/reports/supervision) are computed from the audit trail alone, the
// one record of what happened, by a pure aggregation: a reportBuilder is fed the trail's entries
// in order and knows nothing of Redis. How it reads the trail, and what it cannot know:
//
//   - A session is counted in the window its allowed join falls in, with all of its time, up to
//     its end entry or, at the latest, the end of the look-ahead (Until). Its time in each mode
//     runs from the join (for an API join, from before the supervisor's phone rang: the trail
//     has no entry for the answer) and from each allowed mode_change to the next, or to the end.
//     A switch that failed after it was audited (the snoop never came up; the session stayed
//     in its mode) is not in the trail, so it counts as a switch.
//   - A join that was allowed and then refused (the phone answered after the call ended, the
//     talker slot was taken) is a refusal, not a session; an API join whose phone was not
//     answered (end reason no_answer, busy, rejected) is counted as unanswered, with no time.
//   - Help actions are audited before they take effect, so an allowed entry is an attempt:
//     a refused entry of the same action and actor on the same request that follows it (a lost
//     accept race, say) cancels it. What survives is replayed through the request's state
//     machine (open -> in_progress -> closed; open -> cancelled or expired; escalated while
//     open), which also drops the attempts whose refusal the trail lacks (a folded repeat; the
//     sweep's close of an ended call that had been closed already). A request is counted in
//     the window its raise falls in.
//   - Refusals are counted where and when they were recorded, with their folded repeats, as the
//     refusals of their actor (a refused accept of an admin key: of the supervisor it named).
//   - Times are the app's (the entries' time), in UTC; days are UTC dates.

// Report groupings.
const (
	GroupBySupervisor = "supervisor"
	GroupByAgent      = "agent"
	GroupByDay        = "day"
)

// Report limits.
const (
	// MaxReportSpan bounds from..to: a month of a large tenant is millions of entries.
	MaxReportSpan = 31 * 24 * time.Hour
	// ReportLookahead is how far past to the trail is read to find how the sessions and help
	// requests of the window ended.
	ReportLookahead = time.Hour
	// DefaultReportSpan is from when the query names none.
	DefaultReportSpan = 24 * time.Hour
)

// ReportQuery selects a report. From and To bound when sessions were joined and help requests
// raised, [From, To); GroupBy is GroupBySupervisor, GroupByAgent or GroupByDay.
type ReportQuery struct {
	From, To time.Time
	GroupBy  string
}

// Report is a supervision report: the figures of the whole window (Total) and of each group,
// ordered by key. Rows hold only groups with something to show; what has no key in the
// grouping (a help request nobody accepted, with group_by supervisor) counts in Total only.
type Report struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Until   time.Time `json:"until"` // the end of the look-ahead: how far the trail was read
	GroupBy string    `json:"group_by"`
	// Supervisor is set when the report covers one supervisor's own activity (a supervisor key).
	Supervisor string        `json:"supervisor,omitempty"`
	Total      ReportFigures `json:"total"`
	Rows       []ReportRow   `json:"rows"`
}

// ReportRow is one group: a supervisor's or agent's extension (as the trail names the actor or
// target), or a UTC date (2006-01-02).
type ReportRow struct {
	Key string `json:"key"`
	ReportFigures
}

// ReportFigures are the figures of a group or of the whole report.
type ReportFigures struct {
	Supervision SupervisionFigures `json:"supervision"`
	Help        HelpFigures        `json:"help"`
}

// SupervisionFigures count supervision sessions, their time and the refused attempts.
type SupervisionFigures struct {
	Sessions       int64              `json:"sessions"`         // joined and not refused, unanswered excluded
	SessionsByMode map[string]int64   `json:"sessions_by_mode"` // by the mode joined in
	SecondsInMode  map[string]float64 `json:"seconds_in_mode"`
	Switches       int64              `json:"switches"`         // allowed mode changes
	JoinsByTrigger map[string]int64   `json:"joins_by_trigger"` // feature_code, api, phone (the help code)
	EndsByReason   map[string]int64   `json:"ends_by_reason"`
	// StillActive are sessions with no end entry by Until (their time runs to Until).
	StillActive int64 `json:"still_active"`
	// Unanswered are API joins whose supervisor's phone did not answer.
	Unanswered       int64            `json:"unanswered"`
	Refusals         int64            `json:"refusals"` // refused joins and mode changes, repeats included
	RefusalsByReason map[string]int64 `json:"refusals_by_reason"`
}

// HelpFigures count help requests by what became of them.
type HelpFigures struct {
	Raised          int64            `json:"raised"`
	RaisedByTrigger map[string]int64 `json:"raised_by_trigger"` // api, phone (the in-call key)
	Accepted        int64            `json:"accepted"`
	Closed          int64            `json:"closed"`
	ClosedByReason  map[string]int64 `json:"closed_by_reason"` // agent, call_ended
	Cancelled       int64            `json:"cancelled"`
	Escalated       int64            `json:"escalated"`
	Expired         int64            `json:"expired"`
	StillOpen       int64            `json:"still_open"`        // neither accepted nor ended by Until
	StillInProgress int64            `json:"still_in_progress"` // accepted, not closed by Until
	TimeToAccept    DurationStats    `json:"time_to_accept"`    // raise to accept
	TimeInProgress  DurationStats    `json:"time_in_progress"`  // accept to close
	// Refusals are refused help actions of people (the sweep's lost races are not counted).
	Refusals         int64            `json:"refusals"`
	RefusalsByReason map[string]int64 `json:"refusals_by_reason"`
}

// DurationStats summarise durations: median and 90th percentile by nearest rank.
type DurationStats struct {
	Count         int64   `json:"count"`
	MedianSeconds float64 `json:"median_seconds"`
	P90Seconds    float64 `json:"p90_seconds"`
	TotalSeconds  float64 `json:"total_seconds"`
}

// reportWindow is what a reportBuilder counts: items started in [From, To), followed to Until;
// with only set, just that supervisor's own activity.
type reportWindow struct {
	From, To, Until time.Time
	GroupBy         string
	Only            string
}

// Modes by index, as the trail names them.
var reportModes = [...]string{"spy", "whisper", "barge"}

func modeIndex(m string) int {
	switch m {
	case "spy":
		return 0
	case "whisper":
		return 1
	case "barge":
		return 2
	}
	return -1
}

// Help actions by index.
const (
	hRaise uint8 = iota
	hAccept
	hClose
	hCancel
	hEscalate
	hExpire
)

// helpAction is the index of a help action; ok is false for any other action.
func helpAction(action string) (a uint8, ok bool) {
	switch action {
	case auditHelpRaise:
		return hRaise, true
	case auditHelpAccept:
		return hAccept, true
	case auditHelpClose:
		return hClose, true
	case auditHelpCancel:
		return hCancel, true
	case auditHelpEscalate:
		return hEscalate, true
	case auditHelpExpire:
		return hExpire, true
	}
	return 0, false
}

// figures accumulate one group.
type figures struct {
	sessions, unanswered, stillActive, switches, refusals int64
	byMode                                                [len(reportModes)]int64
	inMode                                                [len(reportModes)]time.Duration
	joinsBy, endsBy, refusedBy                            map[string]int64

	raised, accepted, closed, cancelled, escalated, expired, open, inProgress, helpRefusals int64
	raisedBy, closedBy, helpRefusedBy                                                       map[string]int64
	toAccept, progress                                                                      []time.Duration
}

func bump(m *map[string]int64, k string, n int64) {
	if *m == nil {
		*m = map[string]int64{}
	}
	(*m)[k] += n
}

// sessTrack follows one session of the window from its join to its end.
type sessTrack struct {
	supervisor, agent, trigger string
	joinMode, mode             int
	joined, since              time.Time
	inMode                     [len(reportModes)]time.Duration
	switches                   int64
	endReason                  string
	ended                      bool
}

// helpTrack follows one help request raised in the window.
type helpTrack struct {
	agent, via string
	raisedAt   time.Time
	intents    []helpIntent
}

type helpIntent struct {
	action            uint8
	cancelled         bool
	actor, supervisor string
	reason            string
	at                time.Time
}

// reportBuilder aggregates audit entries, given oldest first, into a Report. A session is
// followed while it lasts and counted at its end, so memory holds the sessions in progress, not
// a month of them; help requests are kept to the end (a refusal may follow an attempt).
type reportBuilder struct {
	w       reportWindow
	live    map[string]*sessTrack // by session id
	spare   []*sessTrack          // ended ones, for reuse
	helpIdx map[string]int
	help    []helpTrack
	total   figures
	groups  map[string]*figures
	// The last day key made (entries come in time order: one Format a day).
	lastDay    int64
	lastDayKey string
}

func newReportBuilder(w reportWindow) *reportBuilder {
	return &reportBuilder{w: w, live: map[string]*sessTrack{}, helpIdx: map[string]int{}, groups: map[string]*figures{},
		lastDay: -1 << 62}
}

func (b *reportBuilder) group(key string) *figures {
	if key == "" {
		return nil
	}
	f := b.groups[key]
	if f == nil {
		f = &figures{}
		b.groups[key] = f
	}
	return f
}

// each runs fn on the total and on the group of key, if any.
func (b *reportBuilder) each(key string, fn func(*figures)) {
	fn(&b.total)
	if g := b.group(key); g != nil {
		fn(g)
	}
}

// day is the group key of t's UTC date.
func (b *reportBuilder) day(t time.Time) string {
	d := t.Unix()
	if d < 0 {
		d -= 86399
	}
	d /= 86400
	if d != b.lastDay {
		b.lastDay, b.lastDayKey = d, t.UTC().Format(time.DateOnly)
	}
	return b.lastDayKey
}

// Add takes the next entry of the trail.
func (b *reportBuilder) Add(e *store.AuditEntry) {
	t := e.Time
	if t.Before(b.w.From) || !t.Before(b.w.Until) {
		return
	}
	inWindow := t.Before(b.w.To)
	if e.Outcome == store.OutcomeRefused && inWindow {
		b.refusal(e, b.refusedFor(e))
	}
	switch e.Action {
	case "join":
		b.join(e, inWindow)
	case "mode_change":
		if s := b.live[e.Session]; s != nil && e.Outcome == "allowed" {
			s.close(t)
			s.mode = modeIndex(e.Mode)
			s.switches++
		}
	case "end":
		if s := b.live[e.Session]; s != nil {
			s.close(t)
			s.ended, s.endReason = true, e.Reason
			b.foldSession(s)
			b.drop(e.Session, s)
		}
	default:
		if a, ok := helpAction(e.Action); ok && e.HelpRequest != "" {
			b.helpEntry(e, a, inWindow)
		}
	}
}

// close ends the session's current mode interval at t.
func (s *sessTrack) close(t time.Time) {
	if s.mode >= 0 && t.After(s.since) {
		s.inMode[s.mode] += t.Sub(s.since)
	}
	s.since = t
}

func (b *reportBuilder) drop(id string, s *sessTrack) {
	delete(b.live, id)
	b.spare = append(b.spare, s)
}

func (b *reportBuilder) join(e *store.AuditEntry, inWindow bool) {
	s := b.live[e.Session]
	switch {
	case e.Outcome == "allowed" && s == nil && inWindow && e.Session != "":
		if b.w.Only != "" && e.Actor != b.w.Only {
			return
		}
		trigger := e.Trigger
		switch {
		case trigger == "feature_code" && e.HelpRequest != "":
			trigger = "phone" // the help code: a feature-code join that accepted a help request
		case trigger == "":
			trigger = "unknown"
		}
		if n := len(b.spare); n > 0 {
			s, b.spare = b.spare[n-1], b.spare[:n-1]
		} else {
			s = new(sessTrack)
		}
		m := modeIndex(e.Mode)
		*s = sessTrack{supervisor: e.Actor, agent: e.Target, trigger: trigger, joinMode: m, mode: m,
			joined: e.Time, since: e.Time}
		b.live[e.Session] = s
	case e.Outcome == store.OutcomeRefused && s != nil:
		b.drop(e.Session, s) // refused after all: a refusal (counted as such), not a session
	}
}

// refusedFor is the supervisor a refusal is of: its actor, or for a refused accept of an admin
// key, the supervisor its allowed attempt named (the refusal does not say).
func (b *reportBuilder) refusedFor(e *store.AuditEntry) string {
	if e.Action != auditHelpAccept || e.HelpRequest == "" {
		return e.Actor
	}
	if i, ok := b.helpIdx[e.HelpRequest]; ok {
		in := b.help[i].intents
		for j := len(in) - 1; j >= 0; j-- {
			if !in[j].cancelled && in[j].action == hAccept && in[j].actor == e.Actor {
				return in[j].supervisor
			}
		}
	}
	return e.Actor
}

// refusal counts a refused entry in the total and its group; who is the supervisor refused.
func (b *reportBuilder) refusal(e *store.AuditEntry, who string) {
	n := 1 + e.Repeats
	reason := e.Reason
	if reason == "" {
		reason = "unknown"
	}
	switch e.Action {
	case "join", "mode_change":
		if b.w.Only != "" && who != b.w.Only {
			return
		}
		b.each(b.refusalKey(e, who), func(f *figures) {
			f.refusals += n
			bump(&f.refusedBy, reason, n)
		})
	default:
		if _, ok := helpAction(e.Action); !ok || e.Actor == sweepActor {
			return
		}
		if b.w.Only != "" && who != b.w.Only {
			return
		}
		if e.Action != auditHelpAccept {
			who = "" // an agent's (raise, close, cancel): no supervisor's
		}
		b.each(b.refusalKey(e, who), func(f *figures) {
			f.helpRefusals += n
			bump(&f.helpRefusedBy, reason, n)
		})
	}
}

// refusalKey is the group of a refusal of supervisor who ("": none).
func (b *reportBuilder) refusalKey(e *store.AuditEntry, who string) string {
	switch b.w.GroupBy {
	case GroupBySupervisor:
		return who
	case GroupByAgent:
		return e.Target
	default:
		return b.day(e.Time)
	}
}

func (b *reportBuilder) helpEntry(e *store.AuditEntry, a uint8, inWindow bool) {
	i, known := b.helpIdx[e.HelpRequest]
	if !known {
		if a != hRaise || e.Outcome != "allowed" || !inWindow {
			return // raised before the window (or never)
		}
		via := e.Trigger
		if via == "" {
			via = "api"
		}
		b.helpIdx[e.HelpRequest] = len(b.help)
		b.help = append(b.help, helpTrack{agent: e.Target, via: via, raisedAt: e.Time, intents: make([]helpIntent, 0, 4)})
		i = len(b.help) - 1
	}
	h := &b.help[i]
	switch e.Outcome {
	case "allowed":
		sup := e.Actor
		if x := e.Extra["supervisor"]; x != "" {
			sup = x // an admin key's accept names the supervisor
		}
		h.intents = append(h.intents, helpIntent{action: a, actor: e.Actor, supervisor: sup, reason: e.Reason, at: e.Time})
	case store.OutcomeRefused:
		// The refusal of an attempt audited before it was tried: the attempt did not happen.
		for j := len(h.intents) - 1; j >= 0; j-- {
			if in := &h.intents[j]; !in.cancelled && in.action == a && in.actor == e.Actor {
				in.cancelled = true
				break
			}
		}
	}
}

// helpOutcome is what became of a help request, replayed from its surviving attempts.
type helpOutcome struct {
	state                string // open, in_progress, closed, cancelled, expired
	escalated            bool
	supervisor           string
	acceptedAt, closedAt time.Time
	closeReason          string
}

// replay is the request's outcome; ok is false when its raise did not happen (refused after it
// was audited).
func (h *helpTrack) replay() (o helpOutcome, ok bool) {
	if len(h.intents) == 0 || h.intents[0].cancelled {
		return helpOutcome{}, false
	}
	o.state = store.HelpOpen
	for _, in := range h.intents[1:] {
		if in.cancelled {
			continue
		}
		switch in.action {
		case hAccept:
			if o.state == store.HelpOpen {
				o.state, o.supervisor, o.acceptedAt = store.HelpInProgress, in.supervisor, in.at
			}
		case hEscalate:
			if o.state == store.HelpOpen {
				o.escalated = true
			}
		case hExpire:
			if o.state == store.HelpOpen {
				o.state = store.HelpExpired
			}
		case hCancel:
			if o.state == store.HelpOpen {
				o.state = store.HelpCancelled
			}
		case hClose:
			if o.state == store.HelpOpen || o.state == store.HelpInProgress {
				o.state, o.closedAt, o.closeReason = store.HelpClosed, in.at, in.reason
				if o.closeReason == "" {
					o.closeReason = store.HelpReasonAgent
				}
			}
		}
	}
	return o, true
}

// foldSession counts a session that ended (or is still active at Until) in its group.
func (b *reportBuilder) foldSession(s *sessTrack) {
	var key string
	switch b.w.GroupBy {
	case GroupBySupervisor:
		key = s.supervisor
	case GroupByAgent:
		key = s.agent
	default:
		key = b.day(s.joined)
	}
	unanswered := s.ended && (s.endReason == ReasonNoAnswer || s.endReason == ReasonBusy || s.endReason == ReasonRejected)
	b.each(key, func(f *figures) {
		if unanswered {
			f.unanswered++
			return
		}
		f.sessions++
		if s.joinMode >= 0 {
			f.byMode[s.joinMode]++
		}
		for m, d := range s.inMode {
			f.inMode[m] += d
		}
		f.switches += s.switches
		bump(&f.joinsBy, s.trigger, 1)
		if s.ended {
			bump(&f.endsBy, s.endReason, 1)
		} else {
			f.stillActive++
		}
	})
}

// Report finishes the aggregation.
func (b *reportBuilder) Report() Report {
	b.finish()
	return renderReport(b.w, &b.total, b.groups)
}

// finish folds what the window left open at Until into the figures. settled is whether nothing
// of the window was still going on at Until: no session active, no help request open or in
// progress (reading further would change nothing but what a later refusal could; see
// reportrollup.go).
func (b *reportBuilder) finish() (settled bool) {
	settled = len(b.live) == 0
	for _, s := range b.live {
		s.close(b.w.Until)
		b.foldSession(s)
	}
	clear(b.live)
	for i := range b.help {
		h := &b.help[i]
		o, ok := h.replay()
		if ok && (o.state == store.HelpOpen || o.state == store.HelpInProgress) {
			settled = false
		}
		if !ok || (b.w.Only != "" && o.supervisor != b.w.Only) {
			continue
		}
		key := b.day(h.raisedAt)
		switch b.w.GroupBy {
		case GroupBySupervisor:
			key = o.supervisor
		case GroupByAgent:
			key = h.agent
		}
		b.each(key, func(f *figures) {
			f.raised++
			bump(&f.raisedBy, h.via, 1)
			if o.escalated {
				f.escalated++
			}
			if !o.acceptedAt.IsZero() {
				f.accepted++
				f.toAccept = append(f.toAccept, o.acceptedAt.Sub(h.raisedAt))
			}
			switch o.state {
			case store.HelpOpen:
				f.open++
			case store.HelpInProgress:
				f.inProgress++
			case store.HelpCancelled:
				f.cancelled++
			case store.HelpExpired:
				f.expired++
			case store.HelpClosed:
				f.closed++
				bump(&f.closedBy, o.closeReason, 1)
				if !o.acceptedAt.IsZero() {
					f.progress = append(f.progress, o.closedAt.Sub(o.acceptedAt))
				}
			}
		})
	}
	return settled
}

// renderReport is the report of window w from its figures.
func renderReport(w reportWindow, total *figures, groups map[string]*figures) Report {
	r := Report{From: w.From, To: w.To, Until: w.Until, GroupBy: w.GroupBy, Supervisor: w.Only,
		Total: total.figures(), Rows: make([]ReportRow, 0, len(groups))}
	for k, g := range groups {
		r.Rows = append(r.Rows, ReportRow{Key: k, ReportFigures: g.figures()})
	}
	slices.SortFunc(r.Rows, func(x, y ReportRow) int {
		switch {
		case x.Key < y.Key:
			return -1
		case x.Key > y.Key:
			return 1
		}
		return 0
	})
	return r
}

func (f *figures) figures() ReportFigures {
	sv := SupervisionFigures{
		Sessions: f.sessions, SessionsByMode: map[string]int64{}, SecondsInMode: map[string]float64{},
		Switches: f.switches, JoinsByTrigger: orEmpty(f.joinsBy), EndsByReason: orEmpty(f.endsBy),
		StillActive: f.stillActive, Unanswered: f.unanswered, Refusals: f.refusals,
		RefusalsByReason: orEmpty(f.refusedBy),
	}
	for m, name := range reportModes {
		sv.SessionsByMode[name] = f.byMode[m]
		sv.SecondsInMode[name] = seconds(f.inMode[m])
	}
	return ReportFigures{Supervision: sv, Help: HelpFigures{
		Raised: f.raised, RaisedByTrigger: orEmpty(f.raisedBy), Accepted: f.accepted, Closed: f.closed,
		ClosedByReason: orEmpty(f.closedBy), Cancelled: f.cancelled, Escalated: f.escalated, Expired: f.expired,
		StillOpen: f.open, StillInProgress: f.inProgress,
		TimeToAccept: durationStats(f.toAccept), TimeInProgress: durationStats(f.progress),
		Refusals: f.helpRefusals, RefusalsByReason: orEmpty(f.helpRefusedBy),
	}}
}

func orEmpty(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return m
}

// seconds is d in seconds, at millisecond precision.
func seconds(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }

// durationStats sorts ds (it is the builder's own) and summarises it.
func durationStats(ds []time.Duration) DurationStats {
	if len(ds) == 0 {
		return DurationStats{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return DurationStats{Count: int64(len(ds)), MedianSeconds: seconds(nearestRank(ds, 50)),
		P90Seconds: seconds(nearestRank(ds, 90)), TotalSeconds: seconds(sum)}
}

// nearestRank is the p-th percentile of sorted ds by the nearest-rank method: the smallest value
// with at least p% of the values at or below it.
func nearestRank(ds []time.Duration, p int) time.Duration {
	rank := (p*len(ds) + 99) / 100 // ceil(p/100 * n)
	return ds[max(rank, 1)-1]
}
