package app

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/internal/testphone"
)

// The lab's analysis (see lab_test.go for the measurement itself): pure functions over the test
// phones' received-frame logs and the supervisor's DTMF timings, so that the judgement is
// unit-tested on synthetic logs (lab_report_unit_test.go) and the lab run only collects.
//
// Conventions, the same as internal/testphone's: a received frame covers the 20 ms before its
// arrival; a tone is heard in a frame when the phone's detector judged it present; a tone is
// heard "steadily" from the first of labSteady consecutive frames carrying it (e2etest's Hears).

const (
	labFrame  = 20 * time.Millisecond
	labSteady = 5 // frames, as e2etest's by-ear checks
	// labJitter: an uncovered stretch up to half a frame is arrival jitter, not a lost frame.
	labJitter = labFrame / 2
)

// The three parties and their tones.
const (
	partySupervisor = "supervisor"
	partyAgent      = "agent"
	partyCustomer   = "customer"
)

var partyTone = map[string]float64{
	partyCustomer:   testphone.ToneCustomer,
	partyAgent:      testphone.ToneAgent,
	partySupervisor: testphone.ToneSupervisor,
}

// labHears says whether the agent and the customer hear the supervisor in mode m.
func labHears(m dialplan.Mode) (agent, customer bool) {
	switch m {
	case dialplan.Spy:
		return false, false
	case dialplan.Whisper:
		return true, false
	case dialplan.Barge:
		return true, true
	case dialplan.ModeUnknown:
		return false, false
	default:
		return false, false
	}
}

func carries(f testphone.Frame, hz float64) bool { return slices.Contains(f.Present, hz) }

func frameLen(f testphone.Frame) time.Duration {
	if f.Samples == 0 {
		return labFrame
	}
	return f.Duration()
}

// labSpan is the stretch [From, To).
type labSpan struct{ From, To time.Time }

func (s labSpan) Len() time.Duration { return s.To.Sub(s.From) }

// toneAbsences lists the stretches of [from, to) in which hz was not heard: time not covered by a
// frame carrying it, whether the frames came without the tone or did not come at all. Stretches
// up to labJitter long are arrival jitter and left out. frames are in arrival order.
func toneAbsences(frames []testphone.Frame, hz float64, from, to time.Time) []labSpan {
	var out []labSpan
	covered := from
	note := func(until time.Time) {
		if s := (labSpan{covered, until}); s.Len() > labJitter {
			out = append(out, s)
		}
	}
	for _, f := range frames {
		if f.At.Before(from) || !carries(f, hz) {
			continue
		}
		start := f.At.Add(-frameLen(f))
		if start.After(to) {
			break
		}
		note(start)
		if f.At.After(covered) {
			covered = f.At
		}
	}
	if covered.Before(to) {
		note(to)
	}
	return out
}

// stallFunc is the sending phone's own longest stall for frames due in [from, to)
// (testphone.Call.SenderStall).
type stallFunc func(from, to time.Time) time.Duration

// gapTally counts the frames a listener lost in a window: each absence stretch longer than
// labJitter counts as its length in frames, rounded (at least one).
type gapTally struct {
	Gaps    int   `json:"gaps"`
	Lost    int   `json:"lost_frames"`
	Longest msDur `json:"longest_ms"`
}

func (g *gapTally) add(d time.Duration) {
	if d <= labJitter {
		return
	}
	g.Gaps++
	g.Lost += max(1, int(math.Round(float64(d)/float64(labFrame))))
	g.Longest = max(g.Longest, msDur(d))
}

func (g *gapTally) merge(o gapTally) {
	g.Gaps += o.Gaps
	g.Lost += o.Lost
	g.Longest = max(g.Longest, o.Longest)
}

// gapPair is a tally as measured (Raw) and with each stretch shortened by the sending phone's own
// stall around it (Adjusted), as e2etest.Gap allows for it: a sender starved of CPU by the test
// machine sends late, which the listener hears as a gap that is nobody's fault under test.
type gapPair struct {
	Raw      gapTally `json:"raw"`
	Adjusted gapTally `json:"stall_adjusted"`
	// Beyond is, for the supervisor's voice, Adjusted less the digit's own time on the wire (and
	// one frame after it): what is left once the silence Asterisk makes while the supervisor's
	// bridged channel sends a digit is set aside (its core drops a channel's voice between a
	// digit's begin and end). For every other stream it is Adjusted.
	Beyond gapTally `json:"beyond_digit"`
}

func (p *gapPair) merge(o gapPair) {
	p.Raw.merge(o.Raw)
	p.Adjusted.merge(o.Adjusted)
	p.Beyond.merge(o.Beyond)
}

// outside returns the parts of s that are not in x.
func (s labSpan) outside(x labSpan) []labSpan {
	if !s.From.Before(x.To) || !x.From.Before(s.To) {
		return []labSpan{s}
	}
	var out []labSpan
	if s.From.Before(x.From) {
		out = append(out, labSpan{s.From, x.From})
	}
	if x.To.Before(s.To) {
		out = append(out, labSpan{x.To, s.To})
	}
	return out
}

// tallyBeyond tallies, stall-adjusted, the parts of the absences outside digit.
func tallyBeyond(abs []labSpan, stall stallFunc, digit labSpan) gapTally {
	var g gapTally
	for _, s := range abs {
		for _, part := range s.outside(digit) {
			d := part.Len()
			if stall != nil {
				d -= stall(part.From.Add(-labFrame), part.To)
			}
			g.add(d)
		}
	}
	return g
}

// tallyGaps tallies absence stretches raw and stall-adjusted (stall may be nil: no adjustment).
func tallyGaps(abs []labSpan, stall stallFunc) gapPair {
	var p gapPair
	for _, s := range abs {
		p.Raw.add(s.Len())
		d := s.Len()
		if stall != nil {
			d -= stall(s.From.Add(-labFrame), s.To)
		}
		p.Adjusted.add(d)
	}
	return p
}

// toneOnset is the arrival of the first of n consecutive frames carrying hz among those arriving
// in [from, until).
func toneOnset(frames []testphone.Frame, hz float64, from, until time.Time, n int) (time.Time, bool) {
	run := 0
	var first time.Time
	for _, f := range frames {
		if f.At.Before(from) {
			continue
		}
		if !f.At.Before(until) {
			break
		}
		if !carries(f, hz) {
			run = 0
			continue
		}
		if run == 0 {
			first = f.At
		}
		if run++; run >= n {
			return first, true
		}
	}
	return time.Time{}, false
}

// toneCease is when hz stopped for good among the frames arriving in [from, until): the arrival
// of the first frame after the last one carrying it, or, when that comes before notBefore (the
// tone had already gone, e.g. while the digit was sent: masked), the first frame arriving at or
// after notBefore. False when the last frame of the window still carries the tone, or no frame
// came after notBefore.
func toneCease(frames []testphone.Frame, hz float64, from, notBefore, until time.Time) (at time.Time, masked, ok bool) {
	var win []testphone.Frame
	for _, f := range frames {
		if !f.At.Before(from) && f.At.Before(until) {
			win = append(win, f)
		}
	}
	last := -1
	for i, f := range win {
		if carries(f, hz) {
			last = i
		}
	}
	if last == len(win)-1 && last >= 0 {
		return time.Time{}, false, false
	}
	for i, f := range win[last+1:] {
		if !f.At.Before(notBefore) {
			return f.At, i > 0, true
		}
	}
	return time.Time{}, false, false
}

// framesLate counts the frames arriving in [end, at): how many frames the listener received
// after the digit's end before the one that showed the change (0: the first one did). Negative
// when at is before end.
func framesLate(frames []testphone.Frame, end, at time.Time) int {
	n := 0
	for _, f := range frames {
		switch {
		case !f.At.Before(end) && f.At.Before(at):
			n++
		case !f.At.Before(at) && f.At.Before(end):
			n--
		}
	}
	return n
}

// labStream is a tone a listener must hear throughout a stretch: sent by Sender.
type labStream struct {
	Listener, Sender string
}

func (s labStream) String() string {
	return fmt.Sprintf("%s hears %s (%v Hz)", s.Listener, s.Sender, partyTone[s.Sender])
}

// alwaysHeard are the streams heard in every mode: the supervisor hears both parties, and the
// parties each other.
var alwaysHeard = []labStream{
	{partySupervisor, partyCustomer}, {partySupervisor, partyAgent},
	{partyAgent, partyCustomer}, {partyCustomer, partyAgent},
}

// continuousAcross lists the streams that must not break at a switch from one mode to another:
// those of every mode, and the supervisor's voice to whoever hears it in both modes.
func continuousAcross(from, to dialplan.Mode) []labStream {
	out := slices.Clone(alwaysHeard)
	a1, c1 := labHears(from)
	a2, c2 := labHears(to)
	if a1 && a2 {
		out = append(out, labStream{partyAgent, partySupervisor})
	}
	if c1 && c2 {
		out = append(out, labStream{partyCustomer, partySupervisor})
	}
	return out
}

// labLogs are one session's frame logs, by listener, and the senders' stalls, by sender.
type labLogs struct {
	Frames map[string][]testphone.Frame
	Stall  map[string]stallFunc
}

func (l labLogs) gaps(s labStream, from, to time.Time, digit labSpan) gapPair {
	abs := toneAbsences(l.Frames[s.Listener], partyTone[s.Sender], from, to)
	g := tallyGaps(abs, l.Stall[s.Sender])
	if s.Sender != partySupervisor {
		digit = labSpan{} // the digit silences its sender's voice only
	}
	g.Beyond = tallyBeyond(abs, l.Stall[s.Sender], digit)
	return g
}

// The windows around a switch or a digit.
const (
	labPre  = 300 * time.Millisecond // before the digit's end
	labPost = 500 * time.Millisecond // after it
	// labHeldFor: the new mode must hold in the last stretch of labPost.
	labHeldFor = 200 * time.Millisecond
)

// labDigitSent is one digit the supervisor sent: its first event packet and its end packets.
type labDigitSent struct {
	Start, End time.Time
}

// switchResult is one mode switch as the phones heard it.
type switchResult struct {
	From dialplan.Mode `json:"from"`
	To   dialplan.Mode `json:"to"`
	// Latency: digit end to the first frame from which the new mode holds, for the last of the
	// listeners whose hearing of the supervisor changes; Listeners has each one's.
	Latency    msDur            `json:"latency_ms"`
	FramesLate int              `json:"frames_late"`
	Listeners  map[string]msDur `json:"listeners_ms"`
	// Heard: every changing listener's change was heard within labPost; Held: afterwards each
	// party heard the supervisor exactly as the new mode says. Masked: a listener who stops
	// hearing the supervisor had already stopped before the digit's end (the digit silenced the
	// supervisor), so its time says when the listener stopped, not how fast the switch was.
	Heard  bool               `json:"heard"`
	Masked bool               `json:"masked"`
	Held   bool               `json:"held"`
	Gaps   map[string]gapPair `json:"gaps"`
	Wire   msDur              `json:"digit_wire_ms"`
}

func (r switchResult) name() string { return r.From.String() + "->" + r.To.String() }

// judgeSwitch judges the switch from -> to made by digit d, from the session's logs.
func judgeSwitch(l labLogs, from, to dialplan.Mode, d labDigitSent) switchResult {
	r := switchResult{From: from, To: to, Listeners: map[string]msDur{}, Gaps: map[string]gapPair{}, Heard: true, Held: true,
		Wire: msDur(d.End.Sub(d.Start))}
	until := d.End.Add(labPost)
	hz := testphone.ToneSupervisor
	a1, c1 := labHears(from)
	a2, c2 := labHears(to)
	var latest time.Time
	var latestWho string
	for _, x := range []struct {
		who        string
		was, is    bool
		frames     []testphone.Frame
		heardAfter bool
	}{{partyAgent, a1, a2, l.Frames[partyAgent], a2}, {partyCustomer, c1, c2, l.Frames[partyCustomer], c2}} {
		if x.was != x.is {
			var at time.Time
			var ok, masked bool
			if x.is {
				at, ok = toneOnset(x.frames, hz, d.Start, until, labSteady)
			} else {
				at, masked, ok = toneCease(x.frames, hz, d.Start, d.End, until)
			}
			r.Masked = r.Masked || masked
			if ok {
				r.Listeners[x.who] = msDur(at.Sub(d.End))
				if latest.IsZero() || at.After(latest) {
					latest, latestWho = at, x.who
				}
			} else {
				r.Heard = false
			}
		}
		// Held: in the last labHeldFor of the window, the supervisor heard as the mode says.
		var n, on int
		for _, f := range x.frames {
			if !f.At.Before(until.Add(-labHeldFor)) && f.At.Before(until) {
				n++
				if carries(f, hz) {
					on++
				}
			}
		}
		switch {
		case n < int(labHeldFor/labFrame)/2:
			r.Held = false
		case x.heardAfter && on*5 < n*4:
			r.Held = false
		case !x.heardAfter && on > 0:
			r.Held = false
		}
	}
	if !latest.IsZero() && r.Heard {
		r.Latency = msDur(latest.Sub(d.End))
		r.FramesLate = framesLate(l.Frames[latestWho], d.End, latest)
	}
	for _, s := range continuousAcross(from, to) {
		r.Gaps[s.String()] = l.gaps(s, d.End.Add(-labPre), until, labSpan{d.Start, d.End.Add(labFrame)})
	}
	return r
}

// digitResult is a digit pressed while talking that changes nothing (the current mode's): how
// long those who hear the supervisor went without their voice, against the digit on the wire.
type digitResult struct {
	Mode      dialplan.Mode `json:"mode"`
	KeepAudio bool          `json:"keep_audio"`
	Wire      msDur         `json:"digit_wire_ms"`
	// Quiet: per listener, the longest time without the supervisor's tone around the digit
	// (from labPre before its first packet to labPost after its end), raw and stall-adjusted.
	Quiet map[string]gapPair `json:"quiet"`
}

// judgeDigit judges digit d pressed in mode m.
func judgeDigit(l labLogs, m dialplan.Mode, keep bool, d labDigitSent) digitResult {
	r := digitResult{Mode: m, KeepAudio: keep, Wire: msDur(d.End.Sub(d.Start)), Quiet: map[string]gapPair{}}
	agent, customer := labHears(m)
	for who, hears := range map[string]bool{partyAgent: agent, partyCustomer: customer} {
		if hears {
			r.Quiet[who] = l.gaps(labStream{who, partySupervisor}, d.Start.Add(-labPre), d.End.Add(labPost), labSpan{d.Start, d.End.Add(labFrame)})
		}
	}
	return r
}

// joinResult is a supervisor's join: from the dial (the INVITE sent) and from the answer to the
// first frame from which the supervisor heard both parties steadily (the later of the two
// onsets), as TestE2EModesByEar defines join latency.
type joinResult struct {
	DialToHeard   msDur `json:"dial_to_heard_ms"`
	AnswerToHeard msDur `json:"answer_to_heard_ms"`
	// AgentAnswerToHeard: answer to the agent's 1000 Hz alone heard steadily.
	AgentAnswerToHeard msDur `json:"agent_answer_to_heard_ms"`
	Heard              bool  `json:"heard"`
}

func judgeJoin(sup []testphone.Frame, dial, answered, until time.Time) joinResult {
	tc, okc := toneOnset(sup, testphone.ToneCustomer, dial, until, labSteady)
	ta, oka := toneOnset(sup, testphone.ToneAgent, dial, until, labSteady)
	if !okc || !oka {
		return joinResult{}
	}
	heard := tc
	if ta.After(tc) {
		heard = ta
	}
	return joinResult{
		DialToHeard: msDur(heard.Sub(dial)), AnswerToHeard: msDur(heard.Sub(answered)),
		AgentAnswerToHeard: msDur(ta.Sub(answered)), Heard: true,
	}
}

// labStat summarises samples: nearest-rank median and 95th percentile (as the supervision report
// computes its percentiles), min and max.
type labStat struct {
	N      int   `json:"n"`
	Median msDur `json:"median_ms"`
	P95    msDur `json:"p95_ms"`
	Min    msDur `json:"min_ms"`
	Max    msDur `json:"max_ms"`
}

// labRank is the p-th percentile (0 < p <= 1) of sorted by nearest rank.
func labRank[T any](sorted []T, p float64) T {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func summarize(ds []msDur) labStat {
	if len(ds) == 0 {
		return labStat{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return labStat{N: len(s), Median: labRank(s, 0.5), P95: labRank(s, 0.95), Min: s[0], Max: s[len(s)-1]}
}

// msDur is a duration that reads as milliseconds in JSON and in the report.
type msDur time.Duration

func (d msDur) MarshalJSON() ([]byte, error) {
	return json.Marshal(math.Round(float64(d)/float64(time.Millisecond)*10) / 10)
}

func (d msDur) String() string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

// labSystemResult is everything measured of one system (earpiece or ChanSpy).
type labSystemResult struct {
	Name     string         `json:"name"`
	Joins    []joinResult   `json:"joins"`
	Switches []switchResult `json:"switches"`
	Digits   []digitResult  `json:"digits"`
	Long     *longResult    `json:"long_run,omitempty"`
	Failures []string       `json:"failures,omitempty"`
}

// longResult is the long run: one session with a switch every few seconds.
type longResult struct {
	Duration msDur `json:"duration_ms"`
	Switches int   `json:"switches"`
	// Streams: each always-heard stream over the whole session; SwitchGaps: the gaps at the
	// switches (the windows of judgeSwitch), summed per stream.
	Streams    map[string]gapPair `json:"streams"`
	SwitchGaps map[string]gapPair `json:"switch_gaps"`
	Latency    labStat            `json:"latency"`
	NotHeard   int                `json:"switches_not_heard"`
}

// labReport is the lab's whole result.
type labReport struct {
	Started   time.Time          `json:"started"`
	Took      msDur              `json:"took_ms"`
	Runs      int                `json:"runs"`
	Minutes   float64            `json:"long_run_minutes"`
	Host      string             `json:"host"`
	Systems   []*labSystemResult `json:"systems"`
	Notes     []string           `json:"notes"`
	GoalMedia msDur              `json:"goal_median_ms"`
	GoalP95   msDur              `json:"goal_p95_ms"`
}

// The goals for switch latency.
const (
	goalMedian = 7 * time.Millisecond
	goalP95    = 20 * time.Millisecond
)

// labSwitchOrder is the order of the six switches: spy->whisper->barge->spy->barge->whisper->spy.
var labSwitchOrder = []dialplan.Mode{dialplan.Whisper, dialplan.Barge, dialplan.Spy, dialplan.Barge, dialplan.Whisper, dialplan.Spy}

func switchNames() []string {
	prev := dialplan.Spy
	var out []string
	for _, m := range labSwitchOrder {
		out = append(out, prev.String()+"->"+m.String())
		prev = m
	}
	return out
}

// partyGaps sums a switch's gaps per listener.
func partyGaps(gs map[string]gapPair) map[string]gapPair {
	out := map[string]gapPair{}
	for k, g := range gs {
		who := strings.Fields(k)[0]
		p := out[who]
		p.merge(g)
		out[who] = p
	}
	return out
}

func (s *labSystemResult) switchesNamed(name string) []switchResult {
	var out []switchResult
	for _, r := range s.Switches {
		if r.name() == name {
			out = append(out, r)
		}
	}
	return out
}

func latencies(rs []switchResult) (lat []msDur, notHeard int) {
	for _, r := range rs {
		if r.Heard {
			lat = append(lat, r.Latency)
		} else {
			notHeard++
		}
	}
	return lat, notHeard
}

func goalMet(st labStat) string {
	switch {
	case st.N == 0:
		return "n/a"
	case time.Duration(st.Median) <= goalMedian && time.Duration(st.P95) <= goalP95:
		return "met"
	default:
		return "not met"
	}
}

// markdown renders the report.
func (r *labReport) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Supervision lab: earpiece and ChanSpy\n\n")
	p("%s, %d runs per system (interleaved), long run %.3g min; %s; took %.0f s.\n\n",
		r.Started.UTC().Format(time.RFC3339), r.Runs, r.Minutes, r.Host, time.Duration(r.Took).Seconds())
	for _, n := range r.Notes {
		p("- %s\n", n)
	}
	p("\n## Switch latency (digit end packet -> first frame where the new mode holds), ms\n\n")
	p("Goal: median <= %v, p95 <= %v. `late` is the median count of frames the listener received after the digit's end before the one that showed the change. `masked`: switches where a listener who stops hearing the supervisor had already stopped before the digit's end (the digit itself silenced the supervisor), so the time says when they stopped hearing, not how fast the switch was.\n\n",
		time.Duration(r.GoalMedia), time.Duration(r.GoalP95))
	p("| switch |")
	for _, s := range r.Systems {
		p(" %s median | p95 | late | n (not heard, not held, masked) |", s.Name)
	}
	p("\n|---|")
	for range r.Systems {
		p("---|---|---|---|")
	}
	p("\n")
	all := map[string][]msDur{}
	for _, name := range switchNames() {
		p("| %s |", name)
		for _, s := range r.Systems {
			rs := s.switchesNamed(name)
			lat, nh := latencies(rs)
			all[s.Name] = append(all[s.Name], lat...)
			st := summarize(lat)
			var late []int
			held, masked := 0, 0
			for _, x := range rs {
				if x.Heard {
					late = append(late, x.FramesLate)
				}
				if !x.Held {
					held++
				}
				if x.Masked {
					masked++
				}
			}
			slices.Sort(late)
			lateS := "-"
			if len(late) > 0 {
				lateS = fmt.Sprint(labRank(late, 0.5))
			}
			p(" %s | %s | %s | %d (%d, %d, %d) |", st.Median, st.P95, lateS, len(rs), nh, held, masked)
		}
		p("\n")
	}
	p("| **all six** |")
	for _, s := range r.Systems {
		st := summarize(all[s.Name])
		p(" **%s** | **%s** | goal %s | %d |", st.Median, st.P95, goalMet(st), st.N)
	}
	p("\n\n## Gaps at the switches (%v before to %v after the digit's end)\n\n", labPre, labPost)
	p("Lost frames summed over all runs, raw / stall-adjusted (each gap less the sending phone's own stall), and the longest gap in ms (raw / adjusted). Streams: the supervisor hears 440 and 1000, the agent 440, the customer 1000, and the agent 2000 across whisper<->barge.\n\n")
	p("`beyond digit`: stall-adjusted frames lost, where for the supervisor's voice the digit's own time on the wire and the frame after it are set aside (Asterisk's core drops a bridged channel's voice while it sends a digit; ChanSpy's own channel reads digits by their end only).\n\n")
	p("| switch | system | supervisor lost | agent lost | customer lost | beyond digit (sup/agent/cust) | longest (stream) |\n|---|---|---|---|---|---|---|\n")
	for _, name := range switchNames() {
		for _, s := range r.Systems {
			per := map[string]gapPair{}
			byStream := map[string]gapPair{}
			for _, x := range s.switchesNamed(name) {
				for k, g := range partyGaps(x.Gaps) {
					q := per[k]
					q.merge(g)
					per[k] = q
				}
				for k, g := range x.Gaps {
					q := byStream[k]
					q.merge(g)
					byStream[k] = q
				}
			}
			worst, worstK := gapPair{}, "-"
			for _, k := range slices.Sorted(maps.Keys(byStream)) {
				if g := byStream[k]; g.Raw.Longest > worst.Raw.Longest {
					worst, worstK = g, k
				}
			}
			p("| %s | %s | %s | %s | %s | %d / %d / %d | %s / %s (%s) |\n", name, s.Name,
				lostPair(per[partySupervisor]), lostPair(per[partyAgent]), lostPair(per[partyCustomer]),
				per[partySupervisor].Beyond.Lost, per[partyAgent].Beyond.Lost, per[partyCustomer].Beyond.Lost,
				worst.Raw.Longest, worst.Adjusted.Longest, worstK)
		}
	}
	p("\n## Digit while talking (the current mode's digit: changes nothing)\n\n")
	p("How long each listener went without the supervisor's 2000 Hz around the digit (longest absence, ms, median / max over runs; raw and stall-adjusted), against the digit on the wire (first event packet to the end packets; the test phone's events last 100 ms, 5 ticks).\n\n")
	p("| system | mode | phone | listener | wire median | quiet median | quiet max | adjusted median | adjusted max | lost frames (raw/adj) |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range r.Systems {
		for _, m := range []dialplan.Mode{dialplan.Whisper, dialplan.Barge} {
			for _, keep := range []bool{false, true} {
				for _, who := range []string{partyAgent, partyCustomer} {
					var wire, raw, adj []msDur
					var lost gapPair
					for _, d := range s.Digits {
						g, ok := d.Quiet[who]
						if d.Mode != m || d.KeepAudio != keep || !ok {
							continue
						}
						wire = append(wire, d.Wire)
						raw = append(raw, g.Raw.Longest)
						adj = append(adj, g.Adjusted.Longest)
						lost.merge(g)
					}
					if len(wire) == 0 {
						continue
					}
					phone := "normal (events replace audio)"
					if keep {
						phone = "keeps audio"
					}
					sr, sa := summarize(raw), summarize(adj)
					p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s.Name, m, phone, who,
						summarize(wire).Median, sr.Median, sr.Max, sa.Median, sa.Max, lostPair(lost))
				}
			}
		}
	}
	p("\n## Join (supervisor's dial or answer -> both parties heard steadily), ms\n\n")
	p("| system | dial->heard median | p95 | answer->heard median | p95 | answer->agent heard median | n (not heard) |\n|---|---|---|---|---|---|---|\n")
	for _, s := range r.Systems {
		var dial, ans, agent []msDur
		nh := 0
		for _, j := range s.Joins {
			if !j.Heard {
				nh++
				continue
			}
			dial, ans, agent = append(dial, j.DialToHeard), append(ans, j.AnswerToHeard), append(agent, j.AgentAnswerToHeard)
		}
		sd, sa := summarize(dial), summarize(ans)
		p("| %s | %s | %s | %s | %s | %s | %d (%d) |\n", s.Name, sd.Median, sd.P95, sa.Median, sa.P95, summarize(agent).Median, len(s.Joins), nh)
	}
	if r.Minutes > 0 {
		p("\n## Long run\n\n")
		p("| system | minutes | switches (not heard) | latency median / p95 | stream | lost over the run (raw/adj) | longest (raw/adj) | lost at switches (raw/adj) |\n|---|---|---|---|---|---|---|---|\n")
		for _, s := range r.Systems {
			if s.Long == nil {
				continue
			}
			l := s.Long
			keys := slices.Sorted(maps.Keys(l.Streams))
			for _, k := range slices.Sorted(maps.Keys(l.SwitchGaps)) {
				if _, ok := l.Streams[k]; !ok {
					keys = append(keys, k)
				}
			}
			for i, k := range keys {
				head := fmt.Sprintf("| %s | %.1f | %d (%d) | %s / %s |", s.Name, time.Duration(l.Duration).Minutes(), l.Switches, l.NotHeard, l.Latency.Median, l.Latency.P95)
				if i > 0 {
					head = "| | | | |"
				}
				g, sg := l.Streams[k], l.SwitchGaps[k]
				whole, longest := "-", "-"
				if _, ok := l.Streams[k]; ok {
					whole, longest = lostPair(g), fmt.Sprintf("%s / %s", g.Raw.Longest, g.Adjusted.Longest)
				}
				p("%s %s | %s | %s | %s |\n", head, k, whole, longest, lostPair(sg))
			}
		}
	}
	for _, s := range r.Systems {
		if len(s.Failures) > 0 {
			p("\n**%s failures:**\n\n", s.Name)
			for _, f := range s.Failures {
				p("- %s\n", f)
			}
		}
	}
	return b.String()
}

func lostPair(g gapPair) string { return fmt.Sprintf("%d / %d", g.Raw.Lost, g.Adjusted.Lost) }
