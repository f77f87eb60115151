package app

import (
	"strings"
	"testing"
	"time"

	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/internal/testphone"
)

// synthFrames makes a frame log from a pattern, one 20 ms slot per character, the frame of slot i
// arriving at t0 + (i+1)*20 ms: a letter is a frame carrying the tones it names (c 440, a 1000, s
// 2000; x all three), '.' a frame carrying none, '_' no frame at all (lost).
func synthFrames(t0 time.Time, pattern string) []testphone.Frame {
	var out []testphone.Frame
	for i, r := range pattern {
		if r == '_' {
			continue
		}
		f := testphone.Frame{At: t0.Add(time.Duration(i+1) * labFrame), Samples: 160}
		switch r {
		case 'c':
			f.Present = []float64{testphone.ToneCustomer}
		case 'a':
			f.Present = []float64{testphone.ToneAgent}
		case 's':
			f.Present = []float64{testphone.ToneSupervisor}
		case 'x':
			f.Present = []float64{testphone.ToneCustomer, testphone.ToneAgent, testphone.ToneSupervisor}
		}
		out = append(out, f)
	}
	return out
}

func slot(t0 time.Time, i int) time.Time { return t0.Add(time.Duration(i) * labFrame) }

func TestLabAnalysisGaps(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	hz := testphone.ToneAgent
	//                        0123456789012345678
	frames := synthFrames(t0, "aaaaa__aaa..aaaaaaa")
	// A frame 5 ms late is jitter, not a gap.
	frames[2].At = frames[2].At.Add(5 * time.Millisecond)
	abs := toneAbsences(frames, hz, t0, slot(t0, 19))
	if len(abs) != 2 || abs[0].Len() != 2*labFrame || abs[1].Len() != 2*labFrame {
		t.Fatalf("absences %+v, want two of 40 ms", abs)
	}
	g := tallyGaps(abs, nil)
	if g.Raw.Gaps != 2 || g.Raw.Lost != 4 || time.Duration(g.Raw.Longest) != 40*time.Millisecond {
		t.Errorf("raw tally %+v, want 2 gaps, 4 lost frames, longest 40 ms", g.Raw)
	}
	if g.Adjusted != g.Raw {
		t.Errorf("no stall: adjusted %+v differs from raw %+v", g.Adjusted, g.Raw)
	}
	// The sender stalled 45 ms around the first gap (the missing frames): it is the machine's.
	stall := func(from, to time.Time) time.Duration {
		if from.Before(slot(t0, 7)) {
			return 45 * time.Millisecond
		}
		return 0
	}
	g = tallyGaps(abs, stall)
	if g.Raw.Lost != 4 || g.Adjusted.Gaps != 1 || g.Adjusted.Lost != 2 {
		t.Errorf("with a stall: %+v, want raw 4 lost, adjusted 1 gap of 2 frames", g)
	}

	// The window's end is not covered after the last frame; a window with no frame is one gap.
	if abs := toneAbsences(frames, hz, t0, slot(t0, 25)); len(abs) != 3 || abs[2].Len() != 6*labFrame {
		t.Errorf("absences to slot 25: %+v, want a last one of 120 ms", abs)
	}
	if abs := toneAbsences(nil, hz, t0, slot(t0, 10)); len(abs) != 1 || abs[0].Len() != 10*labFrame {
		t.Errorf("absences without frames: %+v", abs)
	}
	// A tone never heard in the window: all of it.
	if g := tallyGaps(toneAbsences(frames, testphone.ToneSupervisor, t0, slot(t0, 10)), nil); g.Raw.Lost != 10 {
		t.Errorf("tone never heard: %+v, want 10 lost", g.Raw)
	}
}

func TestLabAnalysisOnsetCease(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	hz := testphone.ToneSupervisor
	//                        012345678901234
	frames := synthFrames(t0, "....ss.sssss...")
	on, ok := toneOnset(frames, hz, t0, slot(t0, 20), labSteady)
	if !ok || !on.Equal(slot(t0, 8)) { // slot 7's frame arrives at slot 8
		t.Errorf("onset %v %v, want slot 8", on.Sub(t0), ok)
	}
	if _, ok := toneOnset(frames, hz, t0, slot(t0, 11), labSteady); ok {
		t.Error("onset found in a window too short for 5 frames")
	}
	if got := framesLate(frames, slot(t0, 5), on); got != 3 {
		t.Errorf("frames late %d, want 3 (slots 5, 6, 7 arrive before it)", got)
	}
	if got := framesLate(frames, slot(t0, 10), on); got != -2 {
		t.Errorf("frames late %d, want -2", got)
	}

	// The tone stops after slot 11: the frame of slot 12 (arriving at 13) is the first without.
	off, masked, ok := toneCease(frames, hz, t0, slot(t0, 9), slot(t0, 20))
	if !ok || masked || !off.Equal(slot(t0, 13)) {
		t.Errorf("cease %v masked=%v %v, want slot 13, not masked", off.Sub(t0), masked, ok)
	}
	// Gone before the digit's end: the first frame after it, masked.
	off, masked, ok = toneCease(frames, hz, t0, slot(t0, 14), slot(t0, 20))
	if !ok || !masked || !off.Equal(slot(t0, 14)) {
		t.Errorf("cease after an earlier stop %v masked=%v %v, want slot 14, masked", off.Sub(t0), masked, ok)
	}
	// Still heard at the window's end.
	if _, _, ok := toneCease(frames, hz, t0, t0, slot(t0, 12)); ok {
		t.Error("cease found while the tone is still heard")
	}
}

func TestLabAnalysisJudgeSwitch(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n := 80 // 1.6 s
	// The digit: first packet at slot 20, end at slot 24. The agent hears the supervisor from the
	// frame arriving at slot 27 (3 frames after the end); the supervisor misses two frames of the
	// customer at slot 30.
	agent := []rune(strings.Repeat("c", n))
	for i := 26; i < n; i++ {
		agent[i] = 'x'
	}
	sup := []rune(strings.Repeat("x", n))
	sup[29], sup[30] = '_', '_'
	logs := labLogs{Frames: map[string][]testphone.Frame{
		partyAgent:      synthFrames(t0, string(agent)),
		partyCustomer:   synthFrames(t0, strings.Repeat("a", n)),
		partySupervisor: synthFrames(t0, string(sup)),
	}}
	d := labDigitSent{Start: slot(t0, 20), End: slot(t0, 24)}
	r := judgeSwitch(logs, dialplan.Spy, dialplan.Whisper, d)
	if !r.Heard || !r.Held {
		t.Fatalf("switch not heard/held: %+v", r)
	}
	if time.Duration(r.Latency) != 3*labFrame || r.FramesLate != 3 {
		t.Errorf("latency %v, %d frames late; want 60 ms and 3 (slots 23-25 arrive at or after the end, before it)", r.Latency, r.FramesLate)
	}
	if _, ok := r.Listeners[partyCustomer]; ok {
		t.Error("the customer's hearing does not change from spy to whisper")
	}
	sc := r.Gaps[labStream{partySupervisor, partyCustomer}.String()]
	if sc.Raw.Lost != 2 {
		t.Errorf("supervisor hears customer: %+v, want 2 lost frames", sc)
	}
	if g := r.Gaps[labStream{partyCustomer, partyAgent}.String()]; g.Raw.Lost != 0 {
		t.Errorf("customer hears agent: %+v, want none lost", g)
	}
	if _, ok := r.Gaps[labStream{partyAgent, partySupervisor}.String()]; ok {
		t.Error("the agent's hearing of the supervisor is not continuous from spy to whisper")
	}

	// whisper -> barge where the customer never hears the supervisor: not heard, not held; the
	// agent's hearing of the supervisor must go on across it.
	r = judgeSwitch(logs, dialplan.Whisper, dialplan.Barge, labDigitSent{Start: slot(t0, 40), End: slot(t0, 44)})
	if r.Heard || r.Held {
		t.Errorf("customer never heard the supervisor, yet heard=%v held=%v", r.Heard, r.Held)
	}
	if g, ok := r.Gaps[labStream{partyAgent, partySupervisor}.String()]; !ok || g.Raw.Lost != 0 {
		t.Errorf("agent hears supervisor across whisper->barge: %+v %v", g, ok)
	}

	// whisper -> spy where the digit silenced the supervisor before its end: the agent stops
	// hearing at the first frame after the end, and the switch is masked.
	agent3 := []rune(strings.Repeat("c", n))
	for i := range 21 {
		agent3[i] = 'x'
	}
	logs.Frames[partyAgent] = synthFrames(t0, string(agent3))
	r = judgeSwitch(logs, dialplan.Whisper, dialplan.Spy, labDigitSent{Start: slot(t0, 20), End: slot(t0, 24)})
	if !r.Heard || !r.Held || !r.Masked || r.Latency != 0 {
		t.Errorf("masked stop: %+v, want heard, held, masked, latency 0", r)
	}

	// A digit pressed in whisper: the agent went without the supervisor for the 4 frames the
	// digit replaced.
	agent2 := []rune(strings.Repeat("x", n))
	for i := 21; i < 25; i++ {
		agent2[i] = 'c'
	}
	logs.Frames[partyAgent] = synthFrames(t0, string(agent2))
	dr := judgeDigit(logs, dialplan.Whisper, false, labDigitSent{Start: slot(t0, 20), End: slot(t0, 24)})
	if q := dr.Quiet[partyAgent]; q.Raw.Lost != 4 || time.Duration(q.Raw.Longest) != 4*labFrame {
		t.Errorf("digit in whisper: %+v, want 4 lost, longest 80 ms", q)
	}
	if _, ok := dr.Quiet[partyCustomer]; ok {
		t.Error("the customer does not hear the supervisor in whisper")
	}
}

func TestLabAnalysisJoinAndStats(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	//                             012345678901234
	sup := synthFrames(t0, "..aaaaaxxxxxxxx")
	j := judgeJoin(sup, t0, slot(t0, 1), slot(t0, 20))
	// The agent from slot 2 (arrives 3), the customer from slot 7 (arrives 8): both at 8.
	if !j.Heard || time.Duration(j.DialToHeard) != 8*labFrame || time.Duration(j.AnswerToHeard) != 7*labFrame ||
		time.Duration(j.AgentAnswerToHeard) != 2*labFrame {
		t.Errorf("join %+v", j)
	}
	if j := judgeJoin(sup, t0, t0, slot(t0, 10)); j.Heard {
		t.Errorf("join heard in a window that ends before the customer is: %+v", j)
	}

	var ds []msDur
	for i := 20; i >= 1; i-- {
		ds = append(ds, msDur(time.Duration(i)*time.Millisecond))
	}
	st := summarize(ds)
	if st.N != 20 || time.Duration(st.Median) != 10*time.Millisecond || time.Duration(st.P95) != 19*time.Millisecond ||
		time.Duration(st.Min) != time.Millisecond || time.Duration(st.Max) != 20*time.Millisecond {
		t.Errorf("summary %+v", st)
	}
	if goalMet(st) != "not met" || goalMet(summarize(ds[14:])) != "met" || goalMet(labStat{}) != "n/a" {
		t.Errorf("goals: %s %s", goalMet(st), goalMet(summarize(ds[14:])))
	}
}

func TestLabAnalysisReport(t *testing.T) {
	sw := func(from, to dialplan.Mode, lat time.Duration) switchResult {
		return switchResult{From: from, To: to, Latency: msDur(lat), Heard: true, Held: true,
			Gaps: map[string]gapPair{labStream{partyAgent, partyCustomer}.String(): {Raw: gapTally{Gaps: 1, Lost: 3, Longest: msDur(60 * time.Millisecond)}, Beyond: gapTally{Gaps: 1, Lost: 1}}}}
	}
	r := &labReport{Runs: 1, Systems: []*labSystemResult{
		{Name: "earpiece", Switches: []switchResult{sw(dialplan.Spy, dialplan.Whisper, 5*time.Millisecond)}},
		{Name: "chanspy", Switches: []switchResult{sw(dialplan.Spy, dialplan.Whisper, 30*time.Millisecond)}},
	}}
	md := r.markdown()
	for _, want := range []string{
		"| spy->whisper | 5.0 | 5.0 | 0 | 1 (0, 0, 0) | 30.0 | 30.0 | 0 | 1 (0, 0, 0) |",
		"goal met",
		"goal not met",
		"| spy->whisper | earpiece | 0 / 0 | 3 / 0 | 0 / 0 | 0 / 1 / 0 | 60.0 / 0.0 (agent hears customer (440 Hz)) |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// TestLabAnalysisBeyondDigit: the silence inside a digit's wire time (and the frame after) is set
// aside; what is left on either side still counts.
func TestLabAnalysisBeyondDigit(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	hz := testphone.ToneSupervisor
	//                        0123456789012345678
	frames := synthFrames(t0, "ssss.....ssss..ssss")
	abs := toneAbsences(frames, hz, t0, slot(t0, 19))
	// The digit covers exactly the first silence (slots 4-8 arrive at 5..9): nothing beyond it.
	digit := labSpan{slot(t0, 4), slot(t0, 9)}
	if g := tallyBeyond(abs, nil, digit); g.Lost != 2 || g.Gaps != 1 {
		t.Errorf("beyond a digit covering the first silence: %+v, want only the later 2 frames", g)
	}
	// A digit shorter than the silence leaves its tail.
	if g := tallyBeyond(abs, nil, labSpan{slot(t0, 4), slot(t0, 6)}); g.Lost != 5 || g.Gaps != 2 {
		t.Errorf("beyond a short digit: %+v, want 3 + 2 frames in 2 gaps", g)
	}
	// No digit (the zero span): everything counts.
	if g := tallyBeyond(abs, nil, labSpan{}); g.Lost != 7 {
		t.Errorf("without a digit: %+v, want all 7 frames", g)
	}
	if got := (labSpan{slot(t0, 0), slot(t0, 10)}).outside(labSpan{slot(t0, 3), slot(t0, 5)}); len(got) != 2 || got[0].Len() != 3*labFrame || got[1].Len() != 5*labFrame {
		t.Errorf("outside: %+v", got)
	}
}
