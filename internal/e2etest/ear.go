package e2etest

import (
	"context"
	"slices"
	"time"

	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/internal/testphone"
)

// By-ear assertions. A tone counts as heard in 5 consecutive 20 ms frames (steadily), and each
// wait gives up after 3 s; who names the listener in failures.

// steady is how many consecutive frames make a tone heard (or gone).
const steady = 5

// hearLimit bounds each wait for a tone.
const hearLimit = 3 * time.Second

// Hears waits until c hears hz steadily, and returns the first of those frames.
func (r *Rig) Hears(c *testphone.Call, hz float64, who string) time.Time {
	r.T.Helper()
	at, err := r.awaitTone(c, time.Time{}.Add(1), hz, true, steady)
	if err != nil {
		r.T.Fatalf("%s never heard %v Hz: %v", who, hz, err)
	}
	return at
}

// HearsAfter waits until c hears hz (present or absent) steadily in frames arriving after since,
// and returns the first of them.
func (r *Rig) HearsAfter(c *testphone.Call, since time.Time, hz float64, present bool, who string) time.Time {
	r.T.Helper()
	at, err := r.awaitTone(c, since, hz, present, steady)
	if err != nil {
		r.T.Fatalf("%s: %v Hz present=%v: %v", who, hz, present, err)
	}
	return at
}

// HearsAfterN waits until c hears hz in n consecutive frames arriving after since (a short tone
// such as the join beep), and returns the first of them.
func (r *Rig) HearsAfterN(c *testphone.Call, since time.Time, hz float64, n int, who string) time.Time {
	r.T.Helper()
	at, err := r.awaitTone(c, since, hz, true, n)
	if err != nil {
		r.T.Fatalf("%s: %v Hz: %v", who, hz, err)
	}
	return at
}

func (r *Rig) awaitTone(c *testphone.Call, since time.Time, hz float64, present bool, frames int) (time.Time, error) {
	ctx, cancel := context.WithTimeout(r.Ctx, hearLimit)
	defer cancel()
	return c.AwaitToneSince(ctx, since, hz, present, frames)
}

// SilentOn asserts that c did not hear hz in any frame in [since, until), and that it received
// audio (at least 10 frames) in that window at all.
func (r *Rig) SilentOn(c *testphone.Call, hz float64, since, until time.Time, who string) {
	r.T.Helper()
	p := c.Heard(hz, since, until)
	if p.Frames < 10 {
		r.T.Fatalf("%s received only %d frames in %s", who, p.Frames, until.Sub(since))
	}
	if p.Present > 0 {
		r.T.Errorf("%s heard %v Hz in %d of %d frames; want none", who, hz, p.Present, p.Frames)
	}
}

// MaxGap is the longest a steady tone may go unheard at a mode switch or while supervision starts
// and ends: about four frames, beyond the sender's own stalls on a loaded test machine.
const MaxGap = 80 * time.Millisecond

// NoGap asserts that listener heard hz (sent by sender) without a gap longer than MaxGap in
// [from, to), allowing for the sending phone's own CPU stalls in that window.
func (r *Rig) NoGap(who string, listener, sender *testphone.Call, hz float64, from, to time.Time) {
	r.T.Helper()
	if gap, allowed := Gap(listener, sender, hz, from, to); gap > allowed {
		r.T.Errorf("%s: %v Hz missing for %v (allowed %v)", who, hz, gap, allowed)
	}
}

// Gap is NoGap's judgement: the longest time listener went without hearing hz in [from, to), and
// the longest it may (MaxGap plus the sending phone's own stalls in that window).
func Gap(listener, sender *testphone.Call, hz float64, from, to time.Time) (gap, allowed time.Duration) {
	return listener.LongestAbsence(hz, from, to), MaxGap + sender.SenderStall(from, to)
}

// AwaitEnded waits for c to end (the far end hung up).
func (r *Rig) AwaitEnded(c *testphone.Call, limit time.Duration, who string) {
	r.T.Helper()
	select {
	case <-c.Done():
	case <-time.After(limit):
		r.T.Fatalf("%s was not hung up within %s", who, limit)
	}
}

// ModeChange is a supervision mode change to judge by ear (see ExpectMode).
type ModeChange struct {
	From, To dialplan.Mode
	// Asked is when the change was asked for: the start of the supervisor's DTMF digit, or the API
	// request.
	Asked time.Time
	// Quiet is when the supervisor's phone sends its tone again after a digit (the digit's end:
	// RFC 4733 replaces the audio while a digit is sent); a tone that stops is timed by the last
	// frame still carrying it after Quiet. For an API request, Asked.
	Quiet time.Time
	// Settled, when set, is when the app had made the change (the new mode recorded). A party
	// who stops hearing the supervisor is checked for silence from then on: before it, the
	// supervisor's own pauses (a digit replaces the audio while it is sent; a stalled sender)
	// are silences that prove nothing about the switch.
	Settled time.Time
}

// ExpectMode checks by ear that ch.To is in force: the supervisor (sup) hears both parties; the
// agent hears the supervisor in whisper and barge; the customer only in barge. It holds the mode
// for 300 ms to check that nobody hears what they must not (the supervisor never hears their own
// voice back), and returns when the change was first heard by a party whose hearing changed (the
// supervisor's tone appearing or disappearing; zero when nobody's did).
func (r *Rig) ExpectMode(ch ModeChange, c Parties, sup *testphone.Call) time.Time {
	r.T.Helper()
	hears := func(m dialplan.Mode) (agent, customer bool) {
		return m == dialplan.Whisper || m == dialplan.Barge, m == dialplan.Barge
	}
	m := ch.To.String()
	agentHears, customerHears := hears(ch.To)
	agentHeard, customerHeard := hears(ch.From)
	since := func(hears bool) time.Time {
		if !hears && ch.Settled.After(ch.Asked) {
			return ch.Settled
		}
		return ch.Asked
	}
	ta := r.HearsAfter(c.Agent, since(agentHears), testphone.ToneSupervisor, agentHears, "agent ("+m+")")
	tc := r.HearsAfter(c.Customer, since(customerHears), testphone.ToneSupervisor, customerHears, "customer ("+m+")")
	var heard time.Time
	switch {
	case customerHears != customerHeard && customerHears:
		heard = tc
	case agentHears != agentHeard && agentHears:
		heard = ta
	case customerHears != customerHeard:
		heard = LastHeard(c.Customer, testphone.ToneSupervisor, ch.Quiet)
	case agentHears != agentHeard:
		heard = LastHeard(c.Agent, testphone.ToneSupervisor, ch.Quiet)
	}
	r.HearsAfter(sup, ch.Asked, testphone.ToneCustomer, true, "supervisor hears customer")
	r.HearsAfter(sup, ch.Asked, testphone.ToneAgent, true, "supervisor hears agent")
	from := time.Now()
	time.Sleep(300 * time.Millisecond)
	to := time.Now()
	if !agentHears {
		r.SilentOn(c.Agent, testphone.ToneSupervisor, from, to, "agent in "+m)
	}
	if !customerHears {
		r.SilentOn(c.Customer, testphone.ToneSupervisor, from, to, "customer in "+m)
	}
	r.SilentOn(sup, testphone.ToneSupervisor, from, to, "supervisor in "+m)
	return heard
}

// LastHeard is the arrival time of the frame after the last one carrying hz since since (since
// itself when none did).
func LastHeard(c *testphone.Call, hz float64, since time.Time) time.Time {
	last := since
	fs := c.Frames()
	for i, f := range fs {
		if f.At.Before(since) || !slices.Contains(f.Present, hz) {
			continue
		}
		last = f.At
		if i+1 < len(fs) {
			last = fs[i+1].At
		}
	}
	return last
}
