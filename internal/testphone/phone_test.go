package testphone

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/earpiece/earpiece/internal/asterisktest"
	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

// TestMain stops the shared test Asterisk (if a test started one) before looking for leaked
// goroutines.
func TestMain(m *testing.M) {
	// Media is real time: keep the phones ahead of other work on a busy machine.
	if err := asterisktest.RaisePriority(); err != nil {
		fmt.Fprintln(os.Stderr, "testphone: running at normal priority:", err)
	}
	code := asterisktest.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testLogger logs to the test output when TESTPHONE_DEBUG is set.
func testLogger(t *testing.T) zerolog.Logger {
	if os.Getenv("TESTPHONE_DEBUG") == "" {
		return zerolog.Nop()
	}
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.TraceLevel).With().Timestamp().Logger()
}

func newPhone(t *testing.T, cfg Config) *Phone {
	t.Helper()
	cfg.Logger = testLogger(t)
	p, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close %s: %v", cfg.User, err)
		}
	})
	return p
}

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// connect has a call b; both calls are answered when it returns.
func connect(t *testing.T, a, b *Phone) (ac, bc *Call) {
	t.Helper()
	ctx := timeout(t, 5*time.Second)
	ac, err := a.Call(ctx, b.URI())
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	bc, err = b.AwaitIncoming(ctx)
	if err != nil {
		t.Fatalf("await incoming: %v", err)
	}
	select {
	case <-bc.Answered():
	case <-ctx.Done():
		t.Fatal("callee not answered")
	}
	return ac, bc
}

// pair is the usual setup: customer-toned A calls agent-toned B (auto-answer).
func pair(t *testing.T) (a, b *Phone, ac, bc *Call) {
	a = newPhone(t, Config{User: "alice", DisplayName: "Alice Caller", ToneHz: ToneCustomer})
	b = newPhone(t, Config{User: "bob", ToneHz: ToneAgent})
	ac, bc = connect(t, a, b)
	return a, b, ac, bc
}

func frames(d time.Duration) float64 { return float64(d) / float64(frameDuration) }

// maxGap is the absence a test tolerates in a steady stream from sender: 60 ms, plus however long
// sender's goroutine was starved of CPU in the window (a loaded test machine, not a defect).
func maxGap(sender *Call, since, until time.Time) time.Duration {
	return 60*time.Millisecond + sender.SenderStall(since, until)
}

// maxGapVia is maxGap for a stream that crosses Asterisk to listener: Asterisk may be starved of
// CPU as well, which shows as audio arriving late for its RTP timestamps (LateArrival).
func maxGapVia(listener, sender *Call, since, until time.Time) time.Duration {
	return 60*time.Millisecond + max(sender.SenderStall(since, until), listener.LateArrival(since, until))
}

func TestCallHearsEachOther(t *testing.T) {
	_, _, ac, bc := pair(t)
	ctx := timeout(t, 5*time.Second)
	answered := time.Now()
	aFirst, err := ac.AwaitToneSince(ctx, time.Time{}, ToneAgent, true, 3)
	if err != nil {
		t.Fatal(err)
	}
	bFirst, err := bc.AwaitToneSince(ctx, time.Time{}, ToneCustomer, true, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first tone frame after Call returned: caller %.1f frames, callee %.1f frames",
		frames(aFirst.Sub(answered)), frames(bFirst.Sub(answered)))

	// Judge a window of 50 frames (1 s) on each side.
	t0 := time.Now()
	if _, err := ac.AwaitToneSince(ctx, t0, ToneAgent, true, 50); err != nil {
		t.Fatal(err)
	}
	if _, err := bc.AwaitToneSince(ctx, t0, ToneCustomer, true, 50); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	for _, c := range []struct {
		name        string
		call, peer  *Call
		hears, self float64
	}{{"caller", ac, bc, ToneAgent, ToneCustomer}, {"callee", bc, ac, ToneCustomer, ToneAgent}} {
		if p := c.call.Heard(c.hears, t0, t1); p.Frames < 50 || p.Present != p.Frames {
			t.Errorf("%s hears the other side in %d of %d frames", c.name, p.Present, p.Frames)
		}
		if p := c.call.Heard(c.self, t0, t1); p.Present != 0 {
			t.Errorf("%s hears its own tone in %d of %d frames", c.name, p.Present, p.Frames)
		}
		if p := c.call.Heard(ToneSupervisor, t0, t1); p.Present != 0 {
			t.Errorf("%s hears the supervisor tone in %d of %d frames", c.name, p.Present, p.Frames)
		}
		if d, limit := c.call.LongestAbsence(c.hears, t0, t1), maxGap(c.peer, t0, t1); d > limit {
			t.Errorf("%s: longest absence of the other side's tone %v (limit %v)", c.name, d, limit)
		}
	}
	fr := ac.Frames()
	last := fr[len(fr)-1]
	t.Logf("caller's last frame: levels %v present %v rms %.3f", last.Levels, last.Present, last.RMS)
	if math.Abs(last.Levels[ToneAgent]-DefaultToneLevelDB) > 1 {
		t.Errorf("received level %.1f dBFS, sent %.1f", last.Levels[ToneAgent], DefaultToneLevelDB)
	}

	if got := bc.CallerID(); got != "Alice Caller" {
		t.Errorf("callee sees caller ID %q", got)
	}
	if got := bc.CallerIDNum(); got != "alice" {
		t.Errorf("callee sees caller number %q", got)
	}
	if got := ac.CallerIDNum(); got != "bob" {
		t.Errorf("caller sees callee %q", got)
	}
	if got := bc.RemoteHeader("content-type"); !slices.Equal(got, []string{"application/sdp"}) {
		t.Errorf("INVITE Content-Type %q", got)
	}
}

func TestSetToneSwitchesWithinFrames(t *testing.T) {
	_, _, ac, bc := pair(t)
	ctx := timeout(t, 10*time.Second)
	if _, err := ac.AwaitToneSince(ctx, time.Time{}, ToneAgent, true, 5); err != nil {
		t.Fatal(err)
	}
	tones := []float64{ToneSupervisor, ToneAgent, ToneCustomer, ToneSupervisor, ToneAgent, ToneCustomer, ToneAgent}
	prev := ToneAgent
	var worstOn, worstOff, sumOn time.Duration
	for _, hz := range tones {
		t0 := time.Now()
		bc.SetTone(hz)
		setting := time.Since(t0) // this goroutine may lose the CPU here too
		on, err := ac.AwaitToneSince(ctx, t0, hz, true, 3)
		if err != nil {
			t.Fatal(err)
		}
		off, err := ac.AwaitToneSince(ctx, t0, prev, false, 3)
		if err != nil {
			t.Fatal(err)
		}
		// The new tone's frames are continuous from its first one.
		if _, err := ac.AwaitToneSince(ctx, on, hz, true, 10); err != nil {
			t.Fatal(err)
		}
		end := on.Add(9 * frameDuration)
		if d, limit := ac.LongestAbsence(hz, on, end), maxGap(bc, on, end); d > limit {
			t.Errorf("after switching to %v Hz: absence %v (limit %v)", hz, d, limit)
		}
		if lat, limit := on.Sub(t0), 4*frameDuration+setting+bc.SenderStall(t0, on); lat > limit {
			t.Errorf("switch to %v Hz took %.1f frames (limit %.1f)", hz, frames(lat), frames(limit))
		}
		worstOn, worstOff, sumOn = max(worstOn, on.Sub(t0)), max(worstOff, off.Sub(t0)), sumOn+on.Sub(t0)
		prev = hz
	}
	t.Logf("SetTone -> new tone's first frame: mean %.2f frames, worst %.2f; old tone's first absent frame: worst %.2f",
		frames(sumOn)/float64(len(tones)), frames(worstOn), frames(worstOff))

	// Two tones mixed are both heard.
	t0 := time.Now()
	bc.SetTones(ToneAgent, ToneSupervisor)
	for _, hz := range []float64{ToneAgent, ToneSupervisor} {
		if _, err := ac.AwaitToneSince(ctx, t0, hz, true, 10); err != nil {
			t.Fatal(err)
		}
	}
	// Silence: nothing present.
	t0 = time.Now()
	bc.SetTone(0)
	for _, hz := range DefaultWatch {
		if _, err := ac.AwaitToneSince(ctx, t0, hz, false, 10); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDTMF(t *testing.T) {
	_, _, ac, bc := pair(t)
	ctx := timeout(t, 10*time.Second)
	const digits = "123*#0"
	start := time.Now()
	if err := ac.SendDTMF(ctx, digits); err != nil {
		t.Fatal(err)
	}
	t.Logf("SendDTMF(%q) took %v", digits, time.Since(start).Round(time.Millisecond))
	got, err := bc.AwaitDTMF(ctx, len(digits))
	if err != nil {
		t.Fatal(err)
	}
	if got != digits {
		t.Errorf("received %q, sent %q", got, digits)
	}
	sent, recv := ac.DTMFSent(), bc.DTMFEvents()
	if len(sent) != len(digits) || len(recv) != len(digits) {
		t.Fatalf("sent %d events, received %d", len(sent), len(recv))
	}
	for i := range sent {
		d, limit := sent[i].End.Sub(sent[i].Start), 140*time.Millisecond+ac.SenderStall(sent[i].Start, sent[i].End)
		if d < 80*time.Millisecond || d > limit {
			t.Errorf("digit %s lasted %v (limit %v)", sent[i].Digit, d, limit)
		}
		if recv[i].End.IsZero() || recv[i].End.Before(recv[i].Start) {
			t.Errorf("digit %s received without end: %+v", recv[i].Digit, recv[i])
		}
	}
	// The caller's tone resumes after the digits.
	if _, err := bc.AwaitTone(ctx, ToneCustomer, true, 5); err != nil {
		t.Fatal(err)
	}
	if err := ac.SendDTMF(ctx, "12x"); err == nil {
		t.Error("digit x accepted")
	}
}

func TestIncomingPolicies(t *testing.T) {
	for _, c := range []struct {
		policy Policy
		code   int
	}{{Busy, 486}, {Reject, 603}} {
		t.Run(c.policy.String(), func(t *testing.T) {
			a := newPhone(t, Config{User: "alice", ToneHz: ToneCustomer})
			b := newPhone(t, Config{User: "bob", ToneHz: ToneAgent, Incoming: c.policy})
			ctx := timeout(t, 5*time.Second)
			_, err := a.Call(ctx, b.URI())
			var se *StatusError
			if !errors.As(err, &se) || se.Code != c.code {
				t.Fatalf("call: %v, want status %d", err, c.code)
			}
			bc, err := b.AwaitIncoming(ctx)
			if err != nil {
				t.Fatal(err)
			}
			<-bc.Done() // already closed
			if !errors.As(bc.Err(), &se) || se.Code != c.code {
				t.Errorf("callee's call ended with %v", bc.Err())
			}
		})
	}
	t.Run("ignore", func(t *testing.T) {
		a := newPhone(t, Config{User: "alice", ToneHz: ToneCustomer})
		b := newPhone(t, Config{User: "bob", ToneHz: ToneAgent, Incoming: Ignore})
		// The caller gives up once it has heard the ringing (a CANCEL needs a provisional
		// response, RFC 3261 section 9.1), not after a guess at how long that takes.
		ringing := make(chan struct{})
		a.testHookProvisional = sync.OnceFunc(func() { close(ringing) })
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		res := make(chan error, 1)
		go func() {
			_, err := a.Call(ctx, b.URI())
			res <- err
		}()
		wait := timeout(t, 5*time.Second)
		bc, err := b.AwaitIncoming(wait)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-ringing:
		case <-wait.Done():
			t.Fatal("the caller saw no 180")
		}
		cancel()
		select {
		case err := <-res:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("call: %v, want canceled", err)
			}
		case <-wait.Done():
			t.Fatal("call did not return after its context ended")
		}
		// The callee saw the CANCEL end the call.
		select {
		case <-bc.Done():
		case <-wait.Done():
			t.Fatal("ignored call not ended by CANCEL")
		}
		if !errors.Is(bc.Err(), ErrCanceled) {
			t.Errorf("callee's call ended with %v", bc.Err())
		}
	})
}

// TestCallToNowhere: with no answer at all (not even 100 Trying), Call returns when ctx ends,
// not after Timer B (32 s).
func TestCallToNowhere(t *testing.T) {
	a := newPhone(t, Config{User: "alice"})
	// Nowhere: a socket that takes the INVITE and never answers, held open so that nothing else
	// can take its port meanwhile.
	nowhere, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer nowhere.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = a.Call(ctx, "sip:nobody@"+nowhere.LocalAddr().String())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("call: %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("call returned after %v", d)
	}
}

func TestManualAnswerAndReject(t *testing.T) {
	a := newPhone(t, Config{User: "alice", DisplayName: "Supervising 744", ToneHz: ToneSupervisor})
	b := newPhone(t, Config{User: "bob", ToneHz: ToneAgent, Incoming: Manual})
	ctx := timeout(t, 5*time.Second)

	type result struct {
		c   *Call
		err error
	}
	call := func() chan result {
		ch := make(chan result, 1)
		go func() {
			c, err := a.Call(ctx, b.URI())
			ch <- result{c, err}
		}()
		return ch
	}

	res := call()
	bc, err := b.AwaitIncoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-bc.Answered():
		t.Fatal("manual call answered by itself")
	default:
	}
	if bc.CallerID() != "Supervising 744" {
		t.Errorf("caller ID %q", bc.CallerID())
	}
	if err := bc.Answer(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if _, err := r.c.AwaitTone(ctx, ToneAgent, true, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := bc.AwaitTone(ctx, ToneSupervisor, true, 5); err != nil {
		t.Fatal(err)
	}
	if err := bc.Answer(ctx); !errors.Is(err, ErrNotRinging) {
		t.Errorf("second answer: %v", err)
	}
	if err := r.c.Hangup(ctx); err != nil {
		t.Fatal(err)
	}

	res = call()
	bc, err = b.AwaitIncoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := bc.Reject(ctx, 486); err != nil {
		t.Fatal(err)
	}
	r = <-res
	var se *StatusError
	if !errors.As(r.err, &se) || se.Code != 486 {
		t.Fatalf("call: %v, want 486", r.err)
	}
}

func TestHangupEndsBothSides(t *testing.T) {
	for _, byCaller := range []bool{true, false} {
		t.Run(fmt.Sprintf("by caller %v", byCaller), func(t *testing.T) {
			_, _, ac, bc := pair(t)
			ctx := timeout(t, 5*time.Second)
			hanger, other := ac, bc
			if !byCaller {
				hanger, other = bc, ac
			}
			if err := hanger.Hangup(ctx); err != nil {
				t.Fatal(err)
			}
			for _, c := range []*Call{hanger, other} {
				select {
				case <-c.Done():
				case <-ctx.Done():
					t.Fatalf("%s call not ended", c.Direction())
				}
			}
			if !errors.Is(hanger.Err(), ErrHangup) || !errors.Is(other.Err(), ErrRemoteHangup) {
				t.Errorf("ended with %v / %v", hanger.Err(), other.Err())
			}
			if err := hanger.Hangup(ctx); err != nil {
				t.Errorf("second hangup: %v", err)
			}
			if _, err := other.AwaitTone(ctx, ToneSupervisor, true, 1); !errors.Is(err, ErrCallEnded) {
				t.Errorf("await on ended call: %v", err)
			}
		})
	}
}

func TestLongestAbsenceSeesGap(t *testing.T) {
	_, _, ac, bc := pair(t)
	ctx := timeout(t, 20*time.Second)

	// One second of steady tone: no absence worth the name.
	t0, err := ac.AwaitToneSince(ctx, time.Time{}, ToneAgent, true, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ac.AwaitToneSince(ctx, t0, ToneAgent, true, 50); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	steady := ac.LongestAbsence(ToneAgent, t0, t1)
	t.Logf("steady 1 s: longest absence %v, gaps %v", steady, ac.Gaps(t0, t1))
	if limit := maxGap(bc, t0, t1); steady > limit {
		t.Errorf("steady stream: longest absence %v (limit %v)", steady, limit)
	}

	// 200 ms without packets: measured as such (all of it, and no more than the sender's own stalls
	// add), and beyond what maxGap allows, so the checks above would catch a real gap. A sender
	// stall in the window raises maxGap by its length; an attempt with one long enough to cover
	// the pause proves nothing and is repeated.
	const pause = 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		tp := time.Now()
		bc.pauseSending(pause)
		if _, err := ac.AwaitToneSince(ctx, tp, ToneAgent, false, 5); err != nil {
			t.Fatal(err)
		}
		back, err := ac.AwaitToneSince(ctx, tp, ToneAgent, true, 5)
		if err != nil {
			t.Fatal(err)
		}
		end := back.Add(4 * frameDuration)
		gap, stall, late := ac.LongestAbsence(ToneAgent, tp, end), bc.SenderStall(tp, end), ac.LateArrival(tp, end)
		gaps := ac.Gaps(tp, end)
		t.Logf("200 ms pause (attempt %d): longest absence %v, sender stall %v, late arrival %v, gaps %+v",
			attempt, gap, stall, late, gaps)
		if max(stall, late) > pause/2 && attempt < 5 {
			continue
		}
		if limit := pause + 60*time.Millisecond + stall; gap < pause-frameDuration || gap > limit {
			t.Errorf("200 ms pause measured as %v (limit %v)", gap, limit)
		}
		if allowed := maxGap(bc, tp, end); gap <= allowed {
			t.Errorf("200 ms pause measured as %v passes maxGap (%v)", gap, allowed)
		}
		// Frames never sent are no late arrival: the allowance for Asterisk does not hide it.
		if allowed := maxGapVia(ac, bc, tp, end); gap <= allowed {
			t.Errorf("200 ms pause measured as %v passes maxGapVia (%v)", gap, allowed)
		}
		// One long gap; any other is one the sender's stalls explain.
		long := 0
		for _, g := range gaps {
			explained := bc.SenderStall(g.After, g.After.Add(g.Missing+2*frameDuration)) + frameDuration
			if g.Missing >= 150*time.Millisecond && g.Missing > explained {
				long++
			}
		}
		if long != 1 {
			t.Errorf("gaps %+v, want one of about 200 ms", gaps)
		}
		// The caller's own direction had no gap.
		if d, limit := bc.LongestAbsence(ToneCustomer, tp, end), maxGap(ac, tp, end); d > limit {
			t.Errorf("other direction: absence %v (limit %v)", d, limit)
		}
		break
	}
}

func TestReofferAndOptions(t *testing.T) {
	a, b, ac, bc := pair(t)
	ctx := timeout(t, 5*time.Second)

	// OPTIONS (Asterisk's qualify).
	opt := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: int(b.addr.Port())})
	res, err := a.client.Do(ctx, opt)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("OPTIONS: %v %v", res, err)
	}

	// The callee (as UAS) sends UPDATE with an offer, then a re-INVITE, as Asterisk does for
	// connected line; the caller answers 200 with its unchanged SDP.
	offer := buildSDP(99, 2, bc.media.local, defaultEventPT, "sendrecv")
	for _, m := range []sip.RequestMethod{sip.UPDATE, sip.INVITE} {
		req := sip.NewRequest(m, bc.uas.InviteRequest.Contact().Address)
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.AppendHeader(sip.NewHeader("P-Asserted-Identity", `"Agent 744" <sip:744@127.0.0.1>`))
		req.SetBody(offer)
		res, err := bc.uas.Do(ctx, req)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%s: %v %v", m, res, err)
		}
		if string(res.Body()) != string(ac.local) {
			t.Errorf("%s answered with another SDP:\n%s", m, res.Body())
		}
		if m == sip.INVITE {
			ack := sip.NewRequest(sip.ACK, bc.uas.InviteRequest.Contact().Address)
			if err := bc.uas.WriteRequest(ack); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := ac.LastRequestHeader("P-Asserted-Identity"); len(got) != 1 || !strings.Contains(got[0], "Agent 744") {
		t.Errorf("P-Asserted-Identity %q", got)
	}

	// And the caller re-INVITEs the callee.
	req := sip.NewRequest(sip.INVITE, ac.uac.InviteResponse.Contact().Address)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(ac.local)
	res, err = ac.uac.Do(ctx, req)
	if err != nil || res.StatusCode != 200 || string(res.Body()) != string(bc.local) {
		t.Fatalf("re-INVITE to callee: %v %v", res, err)
	}
	if err := ac.uac.WriteRequest(sip.NewRequest(sip.ACK, ac.uac.InviteResponse.Contact().Address)); err != nil {
		t.Fatal(err)
	}

	// Audio still flows both ways.
	if _, err := ac.AwaitTone(ctx, ToneAgent, true, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := bc.AwaitTone(ctx, ToneCustomer, true, 5); err != nil {
		t.Fatal(err)
	}
}

func TestCloseHangsUp(t *testing.T) {
	a, b, ac, bc := pair(t)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Call{ac, bc} {
		select {
		case <-c.Done():
		case <-time.After(3 * time.Second):
			t.Fatalf("%s call survived Close", c.Direction())
		}
	}
	if !errors.Is(bc.Err(), ErrRemoteHangup) {
		t.Errorf("callee's call ended with %v", bc.Err())
	}
	if _, err := a.Call(t.Context(), b.URI()); !errors.Is(err, ErrClosed) {
		t.Errorf("call after close: %v", err)
	}
	if _, err := a.AwaitIncoming(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("await after close: %v", err)
	}
}

// TestCloseWhileRinging: a Manual phone closed with a call ringing answers it 480.
func TestCloseWhileRinging(t *testing.T) {
	a := newPhone(t, Config{User: "alice", ToneHz: ToneCustomer})
	b := newPhone(t, Config{User: "bob", ToneHz: ToneAgent, Incoming: Manual})
	res := make(chan error, 1)
	go func() {
		_, err := a.Call(timeout(t, 5*time.Second), b.URI())
		res <- err
	}()
	bc, err := b.AwaitIncoming(timeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	var se *StatusError
	if err := <-res; !errors.As(err, &se) || se.Code != 480 {
		t.Errorf("caller got %v, want 480", err)
	}
	<-bc.Done()
}

func TestNoGoroutinesLeftAfterClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	a, err := New(t.Context(), Config{User: "alice", ToneHz: ToneCustomer})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(t.Context(), Config{User: "bob", ToneHz: ToneAgent})
	if err != nil {
		t.Fatal(err)
	}
	ctx := timeout(t, 5*time.Second)
	ac, err := a.Call(ctx, b.URI())
	if err != nil {
		t.Fatal(err)
	}
	if err := ac.SendDTMF(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.AwaitTone(ctx, ToneAgent, true, 3); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}
