package testphone

import (
	"testing"
	"time"
)

// fakeLog builds a log from a pattern: one character per 20 ms slot, 'T' a frame with 1000 Hz,
// '.' a frame without, '_' no packet.
func fakeLog(t *testing.T, t0 time.Time, pattern string) *frameLog {
	t.Helper()
	det, err := newDetector(Detector{})
	if err != nil {
		t.Fatal(err)
	}
	l := newFrameLog(det)
	l.start = t0
	bit := uint64(1) << det.index(ToneAgent)
	for i, ch := range pattern {
		at := t0.Add(time.Duration(i+1) * frameDuration)
		switch ch {
		case 'T':
			l.addAudio(rxFrame{at: at, seq: uint16(i), samples: frameSamples, present: bit})
		case '.':
			l.addAudio(rxFrame{at: at, seq: uint16(i), samples: frameSamples})
		}
	}
	return l
}

func TestLongestAbsence(t *testing.T) {
	t0 := time.Now()
	end := func(n int) time.Time { return t0.Add(time.Duration(n) * frameDuration) }
	cases := []struct {
		pattern string
		want    time.Duration
	}{
		{"TTTTTTTTTT", 0},
		{"TTTT__TTTT", 40 * time.Millisecond},
		{"TTTT...TTT", 60 * time.Millisecond},
		{"TTT.__.TTT", 80 * time.Millisecond},
		{"..TTTTTTTT", 40 * time.Millisecond},
		{"TTTTTTTT__", 40 * time.Millisecond},
		{"__________", 200 * time.Millisecond},
	}
	for _, c := range cases {
		l := fakeLog(t, t0, c.pattern)
		if got := l.longestAbsence(ToneAgent, t0, end(len(c.pattern))); got != c.want {
			t.Errorf("%s: longest absence %v, want %v", c.pattern, got, c.want)
		}
	}
	l := fakeLog(t, t0, "TTTT")
	if got := l.longestAbsence(1234, t0, end(4)); got != 80*time.Millisecond {
		t.Errorf("unwatched frequency: %v, want the whole window", got)
	}
}

func TestHeardAndGaps(t *testing.T) {
	t0 := time.Now()
	l := fakeLog(t, t0, "TT..__TT")
	p := l.heard(ToneAgent, t0, t0.Add(time.Second))
	if p != (Presence{Frames: 6, Present: 4}) {
		t.Errorf("heard %+v", p)
	}
	gaps := l.gaps(t0, t0.Add(time.Second))
	if len(gaps) != 1 || gaps[0].Missing != 40*time.Millisecond {
		t.Errorf("gaps %+v", gaps)
	}
}

func TestToneScan(t *testing.T) {
	t0 := time.Now()
	slot := func(i int) time.Time { return t0.Add(time.Duration(i+1) * frameDuration) }
	idx := 1 // 1000 Hz in DefaultWatch
	cases := []struct {
		name    string
		pattern string
		present bool
		n       int
		now     time.Time
		want    time.Time // zero: not satisfied
	}{
		{"present run", "..T.TTT", true, 3, slot(6), slot(4)},
		{"present too short", "..TT.TT", true, 3, slot(6), time.Time{}},
		{"absent run", "TT...", false, 3, slot(4), slot(2)},
		{"absent by silence", "TT", false, 3, slot(1).Add(4 * frameDuration), slot(1).Add(frameDuration)},
		{"absent not yet", "TT", false, 3, slot(1).Add(3 * frameDuration), time.Time{}},
		{"absent from since, no packets", "", false, 2, t0.Add(3 * frameDuration), t0},
	}
	for _, c := range cases {
		l := fakeLog(t, t0, c.pattern)
		s := toneScan{idx: idx, present: c.present, n: c.n, since: t0}
		got, ok := s.step(l.frames, c.now)
		if ok != !c.want.IsZero() || !got.Equal(c.want) {
			t.Errorf("%s: got %v %v, want %v", c.name, got.Sub(t0), ok, c.want.Sub(t0))
		}
	}
}

// TestLateArrival: frames held back upstream and then let go in a burst arrive late for their RTP
// timestamps; frames never sent leave a jump in the timestamps and no lateness; another stream
// (SSRC) is judged on its own.
func TestLateArrival(t *testing.T) {
	det, err := newDetector(Detector{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	type frame struct {
		ssrc           uint32
		media, arrival int // ms
	}
	steady := func(ssrc uint32, from, to int) (out []frame) {
		for k := from; k < to; k++ {
			out = append(out, frame{ssrc, 20 * k, 20*k + 20})
		}
		return out
	}
	burst := steady(1, 0, 3)
	for k := 3; k < 7; k++ { // held back from 60 ms on, let go at 160 ms
		burst = append(burst, frame{1, 20 * k, 160 + k})
	}
	burst = append(burst, steady(1, 8, 12)...)
	dropped := append(steady(1, 0, 3), steady(1, 8, 12)...) // 100 ms never sent
	other := steady(1, 0, 5)
	for _, f := range steady(2, 5, 10) {
		f.media += 7_000_000 // another timestamp base
		other = append(other, f)
	}
	for _, c := range []struct {
		name   string
		frames []frame
		want   time.Duration
	}{
		{"steady", steady(1, 0, 10), 0},
		{"stall and burst", burst, ms(163 - 80)},
		{"frames never sent", dropped, 0},
		{"second stream", other, 0},
	} {
		l := newFrameLog(det)
		l.start = t0
		for i, f := range c.frames {
			l.addAudio(rxFrame{
				at: t0.Add(ms(f.arrival)), seq: uint16(i), ssrc: f.ssrc,
				ts: 1000 + uint32(f.media*sampleRate/1000), samples: frameSamples,
			})
		}
		if got := l.lateArrival(t0, t0.Add(time.Second)); (got - c.want).Abs() > time.Microsecond {
			t.Errorf("%s: late arrival %v, want %v", c.name, got, c.want)
		}
	}
}
