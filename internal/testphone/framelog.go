package testphone

import (
	"context"
	"math"
	"sort"
	"sync"
	"time"
)

// Frame is one received PCMU packet as the detector saw it.
type Frame struct {
	At      time.Time           // arrival time
	Seq     uint16              // RTP sequence number
	SSRC    uint32              // RTP SSRC
	Samples int                 // samples in the payload (160 for 20 ms)
	Levels  map[float64]float64 // Goertzel level per watched frequency, dBFS (0 = full-scale sine)
	Present []float64           // watched frequencies judged present, ascending
	RMS     float64             // RMS of the frame, 1.0 = full scale
}

// Duration is the audio time the frame carries.
func (f Frame) Duration() time.Duration {
	return time.Duration(f.Samples) * time.Second / sampleRate
}

// Presence summarises the frames received in a window.
type Presence struct {
	Frames  int // audio frames received
	Present int // of which carried the tone
}

// Ratio is Present/Frames, 0 when no frame arrived.
func (p Presence) Ratio() float64 {
	if p.Frames == 0 {
		return 0
	}
	return float64(p.Present) / float64(p.Frames)
}

// Gap is a stretch where no audio packet arrived although one was due.
type Gap struct {
	After   time.Time     // arrival of the last packet before the gap
	Missing time.Duration // inter-arrival time less one frame
}

// DTMFEvent is one RFC 4733 telephone event, sent or received.
type DTMFEvent struct {
	Digit string
	Start time.Time // first packet sent or received
	End   time.Time // first end packet (E bit) sent or received; zero if none arrived yet
}

type rxFrame struct {
	at      time.Time
	seq     uint16
	ts      uint32 // RTP timestamp
	ssrc    uint32
	samples int
	levels  []float64
	present uint64
	rms     float64
}

func (f *rxFrame) dur() time.Duration {
	return time.Duration(f.samples) * time.Second / sampleRate
}

// frameLog is what a call has received: audio frames, telephone events, and a broadcast channel
// that waiters watch for news.
type frameLog struct {
	det   *detector
	start time.Time // creation; the default start of a window

	mu      sync.Mutex // guards the fields below
	frames  []rxFrame  // in arrival order
	dtmf    []DTMFEvent
	dtmfKey eventKey      // the event dtmf's last entry belongs to
	changed chan struct{} // closed and replaced on every addition
}

// eventKey identifies an RFC 4733 event: all its packets share SSRC and timestamp.
type eventKey struct {
	ssrc, ts uint32
	ok       bool
}

func newFrameLog(det *detector) *frameLog {
	return &frameLog{det: det, start: time.Now(), changed: make(chan struct{})}
}

func (l *frameLog) broadcastLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *frameLog) addAudio(f rxFrame) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.frames = append(l.frames, f)
	l.broadcastLocked()
}

// addEvent records an RFC 4733 packet (section 2.3): one event per (SSRC, timestamp), started by
// its first packet and ended by its first packet with the E bit.
func (l *frameLog) addEvent(at time.Time, ssrc, ts uint32, digit string, end bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k := (eventKey{ssrc, ts, true}); k != l.dtmfKey {
		l.dtmfKey = k
		l.dtmf = append(l.dtmf, DTMFEvent{Digit: digit, Start: at})
	}
	if last := &l.dtmf[len(l.dtmf)-1]; end && last.End.IsZero() {
		last.End = at
	}
	l.broadcastLocked()
}

// window returns the index range of frames with since <= at < until. The caller holds mu.
func (l *frameLog) windowLocked(since, until time.Time) (int, int) {
	lo := sort.Search(len(l.frames), func(i int) bool { return !l.frames[i].at.Before(since) })
	hi := sort.Search(len(l.frames), func(i int) bool { return !l.frames[i].at.Before(until) })
	return lo, hi
}

func (l *frameLog) bounds(since, until time.Time) (time.Time, time.Time) {
	if since.IsZero() {
		since = l.start
	}
	if until.IsZero() {
		until = time.Now()
	}
	return since, until
}

func (l *frameLog) heard(hz float64, since, until time.Time) Presence {
	since, until = l.bounds(since, until)
	idx := l.det.index(hz)
	l.mu.Lock()
	defer l.mu.Unlock()
	lo, hi := l.windowLocked(since, until)
	p := Presence{Frames: hi - lo}
	if idx < 0 {
		return p
	}
	for _, f := range l.frames[lo:hi] {
		if f.present&(1<<idx) != 0 {
			p.Present++
		}
	}
	return p
}

// longestAbsence is the longest stretch of [since, until) not covered by a frame carrying hz. A
// frame covers the frame-length before its arrival, so steady 20 ms packets leave no absence and
// lost or late packets, frames without the tone, and a window with no packets at all count in
// full. The window's start counts as covered; its end is not, so a window ending now includes
// the up to one frame since the last packet.
func (l *frameLog) longestAbsence(hz float64, since, until time.Time) time.Duration {
	since, until = l.bounds(since, until)
	if !until.After(since) {
		return 0
	}
	idx := l.det.index(hz)
	if idx < 0 {
		return until.Sub(since)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// A frame arriving at until still covers time inside the window.
	lo, hi := l.windowLocked(since, until.Add(1))
	covered := since
	var longest time.Duration
	step := func(at time.Time, d time.Duration) {
		if gap := at.Add(-d).Sub(covered); gap > longest {
			longest = gap
		}
		if at.After(covered) {
			covered = at
		}
	}
	for _, f := range l.frames[lo:hi] {
		if f.present&(1<<idx) != 0 {
			step(f.at, f.dur())
		}
	}
	step(until, 0)
	return longest
}

// lateArrival is the longest that a frame arriving in [since, until) came after its time, where a
// frame's time is what its RTP timestamp makes of it against the frames of its stream in the
// window that came soonest. A stall upstream (the sending phone starved of CPU, Asterisk too)
// holds frames back and then lets them go in a burst: they come late for their timestamps.
// Frames that are never sent (a real gap) leave a jump in the timestamps instead, and no
// lateness. A stream is one SSRC without a timestamp discontinuity of a second or more.
func (l *frameLog) lateArrival(since, until time.Time) time.Duration {
	since, until = l.bounds(since, until)
	l.mu.Lock()
	defer l.mu.Unlock()
	lo, hi := l.windowLocked(since, until.Add(1))
	var worst time.Duration
	for start := lo; start < hi; {
		end := start + 1
		for end < hi && sameStream(&l.frames[end-1], &l.frames[end]) {
			end++
		}
		first := &l.frames[start]
		soonest := time.Duration(0) // transit of the soonest frame, relative to the first
		for i := start + 1; i < end; i++ {
			soonest = min(soonest, transit(first, &l.frames[i]))
		}
		for i := start; i < end; i++ {
			worst = max(worst, transit(first, &l.frames[i])-soonest)
		}
		start = end
	}
	return worst
}

// transit is how much later than ref frame f arrived than its RTP timestamp says it should have.
func transit(ref, f *rxFrame) time.Duration {
	media := time.Duration(int32(f.ts-ref.ts)) * time.Second / sampleRate
	return f.at.Sub(ref.at) - media
}

// sameStream says whether b continues a's RTP stream: same SSRC, timestamps and arrival times
// within a second of each other.
func sameStream(a, b *rxFrame) bool {
	return a.ssrc == b.ssrc && transit(a, b).Abs() < time.Second
}

func (l *frameLog) gaps(since, until time.Time) []Gap {
	since, until = l.bounds(since, until)
	l.mu.Lock()
	defer l.mu.Unlock()
	lo, hi := l.windowLocked(since, until)
	lo = max(lo-1, 0) // a gap that began before since still ends inside the window
	var out []Gap
	for i := lo + 1; i < hi; i++ {
		prev, cur := &l.frames[i-1], &l.frames[i]
		d := cur.dur()
		if ia := cur.at.Sub(prev.at); ia > d*3/2 {
			out = append(out, Gap{After: prev.at, Missing: ia - d})
		}
	}
	return out
}

func (l *frameLog) snapshot() []Frame {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Frame, len(l.frames))
	for i, f := range l.frames {
		levels := make(map[float64]float64, len(f.levels))
		for j, v := range f.levels {
			levels[l.det.watch[j]] = v
		}
		out[i] = Frame{
			At: f.at, Seq: f.seq, SSRC: f.ssrc, Samples: f.samples,
			Levels: levels, Present: l.det.presentList(f.present), RMS: f.rms,
		}
	}
	return out
}

func (l *frameLog) events() []DTMFEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]DTMFEvent(nil), l.dtmf...)
}

// wait calls check under mu until it reports done, re-checking on every addition and, if poll is
// set, every poll interval (for conditions that time alone can satisfy).
func (l *frameLog) wait(ctx context.Context, ended <-chan struct{}, poll time.Duration, check func(now time.Time) bool) error {
	var tick <-chan time.Time
	if poll > 0 {
		t := time.NewTicker(poll)
		defer t.Stop()
		tick = t.C
	}
	for {
		l.mu.Lock()
		ok := check(time.Now())
		changed := l.changed
		l.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-tick:
		case <-ctx.Done():
			return ctx.Err()
		case <-ended:
			// One last look: the frames that arrived before the end may settle it.
			l.mu.Lock()
			ok := check(time.Now())
			l.mu.Unlock()
			if ok {
				return nil
			}
			return ErrCallEnded
		}
	}
}

// toneScan finds, incrementally, the first run of n frames received at or after since where the
// tone at bit idx is present (or absent).
type toneScan struct {
	idx     int
	present bool
	n       int
	since   time.Time

	next    int // next frame to look at
	started bool

	run      int // present: consecutive frames with the tone
	runStart time.Time

	absFrom  time.Time // absent: when the current absence began (since, or the last frame with the tone)
	absRun   int       // absent: frames without the tone since absFrom
	firstAbs time.Time // absent: arrival of the first of them
	afterOn  bool      // absent: absFrom is a frame with the tone, not since
}

// step advances over frames; for absence, time with no packets counts once it exceeds n+1
// frames (one frame of slack for a packet in flight). It returns the time of the first frame of
// the run.
func (s *toneScan) step(frames []rxFrame, now time.Time) (time.Time, bool) {
	if !s.started {
		s.next = sort.Search(len(frames), func(i int) bool { return !frames[i].at.Before(s.since) })
		s.absFrom = s.since
		s.started = true
	}
	for ; s.next < len(frames); s.next++ {
		f := &frames[s.next]
		on := f.present&(1<<s.idx) != 0
		switch {
		case s.present && on:
			if s.run == 0 {
				s.runStart = f.at
			}
			if s.run++; s.run >= s.n {
				return s.runStart, true
			}
		case s.present:
			s.run = 0
		case on:
			s.absFrom, s.afterOn, s.absRun, s.firstAbs = f.at, true, 0, time.Time{}
		default:
			if s.absRun == 0 {
				s.firstAbs = f.at
			}
			if s.absRun++; s.absRun >= s.n {
				return s.firstAbs, true
			}
		}
	}
	if !s.present && now.Sub(s.absFrom) >= time.Duration(s.n+1)*frameDuration {
		switch {
		case !s.firstAbs.IsZero():
			return s.firstAbs, true
		case s.afterOn:
			return s.absFrom.Add(frameDuration), true
		default:
			return s.absFrom, true
		}
	}
	return time.Time{}, false
}

// levelToAmplitude converts dBFS to a linear sine amplitude (1.0 = full scale).
func levelToAmplitude(db float64) float64 { return math.Pow(10, db/20) }
