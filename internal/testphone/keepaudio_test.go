package testphone

import (
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/rs/zerolog"
)

// wireTicks builds n ticks of m's timeline with a digit queued and returns, per tick, the payload
// types of the packets on the wire.
func wireTicks(t *testing.T, m *media, n int) [][]uint8 {
	t.Helper()
	m.tx.mu.Lock()
	m.tx.queue = append(m.tx.queue, &dtmfJob{digit: "5", code: 5, done: make(chan struct{})})
	m.tx.mu.Unlock()
	var out [][]uint8
	now := time.Now()
	for i := range n {
		pkts, _ := m.build(now.Add(time.Duration(i)*frameDuration), false)
		var pts []uint8
		for _, b := range pkts {
			var p rtp.Packet
			if err := p.Unmarshal(b); err != nil {
				t.Fatalf("tick %d: %v", i, err)
			}
			pts = append(pts, p.PayloadType)
		}
		out = append(out, pts)
	}
	return out
}

func testMedia(t *testing.T) *media {
	t.Helper()
	det, err := newDetector(Detector{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := newMedia(t.Context(), zerolog.Nop(), det, DefaultToneLevelDB, []float64{ToneSupervisor})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.close)
	return m
}

// TestKeepAudioDuringDTMFOnTheWire: by default a digit's ticks carry only its event packets
// (the start, three updates, three end packets); with keep-audio each of them also carries the
// tick's PCMU frame, sent first. Audio follows the digit either way.
func TestKeepAudioDuringDTMFOnTheWire(t *testing.T) {
	ev := uint8(defaultEventPT)
	for _, keep := range []bool{false, true} {
		m := testMedia(t)
		m.setKeepAudio(keep)
		got := wireTicks(t, m, dtmfEventTicks+1)
		for i, pts := range got[:dtmfEventTicks] {
			var want []uint8
			if keep {
				want = append(want, ptPCMU)
			}
			events := 1
			if i == dtmfEventTicks-1 {
				events = dtmfEndRepeats
			}
			for range events {
				want = append(want, ev)
			}
			if !slices.Equal(pts, want) {
				t.Errorf("keep=%v tick %d: payload types %v, want %v", keep, i, pts, want)
			}
		}
		if last := got[dtmfEventTicks]; !slices.Equal(last, []uint8{ptPCMU}) {
			t.Errorf("keep=%v after the digit: payload types %v, want audio only", keep, last)
		}
	}
}

// TestKeepAudioDuringDTMF: through a real call, the listener hears the caller's tone all through
// a digit sent with keep-audio (and still receives the digit), and goes without it for the
// digit's length by default.
func TestKeepAudioDuringDTMF(t *testing.T) {
	_, _, ac, bc := pair(t)
	ctx := timeout(t, 10*time.Second)
	if _, err := bc.AwaitTone(ctx, ToneCustomer, true, 5); err != nil {
		t.Fatal(err)
	}
	send := func(digit string) DTMFEvent {
		t.Helper()
		if err := ac.SendDTMF(ctx, digit); err != nil {
			t.Fatal(err)
		}
		sent := ac.DTMFSent()
		ev := sent[len(sent)-1]
		// Let the frames after the digit arrive.
		if _, err := bc.AwaitToneSince(ctx, ev.End, ToneCustomer, true, 5); err != nil {
			t.Fatal(err)
		}
		return ev
	}

	normal := send("1")
	ac.SetKeepAudioDuringDTMF(true)
	kept := send("2")
	ac.SetKeepAudioDuringDTMF(false)
	again := send("3")

	if got, err := bc.AwaitDTMF(ctx, 3); err != nil || got != "123" {
		t.Fatalf("received digits %q, %v; want 123", got, err)
	}
	// The digit's middle: its start packet went out at Start, its end packets at End.
	quiet := func(ev DTMFEvent) time.Duration {
		return bc.LongestAbsence(ToneCustomer, ev.Start.Add(10*time.Millisecond), ev.End)
	}
	for _, ev := range []DTMFEvent{normal, again} {
		if d := quiet(ev); d < 50*time.Millisecond {
			t.Errorf("digit %s sent the default way: the tone went missing for only %v during it", ev.Digit, d)
		}
	}
	span := kept.End.Sub(kept.Start)
	if d, allowed := quiet(kept), maxGap(ac, kept.Start, kept.End); d > allowed {
		t.Errorf("digit %s sent with keep-audio: the tone went missing for %v (allowed %v)", kept.Digit, d, allowed)
	}
	if p := bc.Heard(ToneCustomer, kept.Start, kept.End.Add(time.Millisecond)); p.Present < int(span/frameDuration) {
		t.Errorf("digit %s sent with keep-audio: %d frames with the tone during its %v, want at least %d",
			kept.Digit, p.Present, span, int(span/frameDuration))
	}
}
