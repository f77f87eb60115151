package testphone

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// Direction says who placed a call.
type Direction int

const (
	Outgoing Direction = iota // we sent the INVITE
	Incoming                  // we received it
)

func (d Direction) String() string {
	switch d {
	case Outgoing:
		return "outgoing"
	case Incoming:
		return "incoming"
	default:
		return fmt.Sprintf("Direction(%d)", int(d))
	}
}

// Call is one call of a Phone, from INVITE to BYE. Its received-audio log stays readable after
// it ends.
type Call struct {
	p      *Phone
	log    zerolog.Logger
	dir    Direction
	callID string
	media  *media

	// Set before the call is published (p.calls, AwaitIncoming), read-only afterwards.
	uac        *sipgo.DialogClientSession
	uas        *sipgo.DialogServerSession
	inviteTx   sip.ServerTransaction // incoming: the INVITE's transaction, for the final response
	key        string
	offer      sdpAudio // incoming: the caller's offer
	local      []byte   // our SDP, repeated in answers to re-INVITE/UPDATE
	sdpSession uint64
	remoteName string
	remoteUser string
	remoteHdrs map[string][]string // lower-case name -> values, of the INVITE (incoming) or 2xx (outgoing)

	// A ringing incoming call: Answer, Reject and Hangup hand a decision to the goroutine that
	// owns the INVITE transaction (acceptInvite -> ring).
	decide       chan decision
	answered     chan struct{}
	answeredOnce sync.Once

	done    chan struct{}
	endOnce sync.Once

	mu       sync.Mutex // guards endCause and lastHdrs
	endCause error
	lastHdrs map[string][]string // of the latest in-dialog request from the remote (re-INVITE, UPDATE)
}

type decision struct {
	code   int
	reason string
	result chan error
}

// ID is the SIP Call-ID.
func (c *Call) ID() string { return c.callID }

// Direction says whether we placed the call.
func (c *Call) Direction() Direction { return c.dir }

// Done is closed when the call ends: either side's BYE, CANCEL, rejection, or Close.
func (c *Call) Done() <-chan struct{} { return c.done }

// Answered is closed once the call is answered (200 OK sent or received).
func (c *Call) Answered() <-chan struct{} { return c.answered }

// Err says why the call ended (ErrHangup, ErrRemoteHangup, ErrCanceled, ErrClosed, a
// *StatusError for a rejected incoming call, ...); nil while it lasts.
func (c *Call) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endCause
}

// CallerID is the other party as its From (incoming) or To (outgoing, from the 2xx) header
// names it: the display name, or the user part when there is none.
func (c *Call) CallerID() string {
	if c.remoteName != "" {
		return c.remoteName
	}
	return c.remoteUser
}

// CallerIDName is the display name of the other party's From/To header ("" if none).
func (c *Call) CallerIDName() string { return c.remoteName }

// CallerIDNum is the user part of the other party's From/To URI.
func (c *Call) CallerIDNum() string { return c.remoteUser }

// RemoteHeader returns the values of a header (case-insensitive name) of the INVITE that
// created an incoming call, or of the 2xx that answered an outgoing one, e.g.
// "P-Asserted-Identity".
func (c *Call) RemoteHeader(name string) []string {
	return append([]string(nil), c.remoteHdrs[strings.ToLower(name)]...)
}

// LastRequestHeader returns the values of a header of the latest re-INVITE or UPDATE the other
// side sent in this call (Asterisk's connected-line updates), nil if none came.
func (c *Call) LastRequestHeader(name string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lastHdrs[strings.ToLower(name)]...)
}

type headerLister interface{ Headers() []sip.Header }

func headerMap(m headerLister) map[string][]string {
	out := make(map[string][]string)
	for _, h := range m.Headers() {
		k := strings.ToLower(h.Name())
		out[k] = append(out[k], h.Value())
	}
	return out
}

// setRemoteParty records who the other party is: display name and user of the From (incoming)
// or To (outgoing) header, and the headers of the message that carried it.
func (c *Call) setRemoteParty(name string, uri sip.Uri, msg headerLister) {
	c.remoteName, c.remoteUser = strings.Trim(name, `"`), uri.User
	c.remoteHdrs = headerMap(msg)
}

func (c *Call) noteRequest(req *sip.Request) {
	h := headerMap(req)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastHdrs = h
}

func (c *Call) markAnswered() {
	c.answeredOnce.Do(func() { close(c.answered) })
}

func (c *Call) isAnswered() bool {
	select {
	case <-c.answered:
		return true
	default:
		return false
	}
}

// end finishes the call once: records why, stops media, forgets the dialog.
func (c *Call) end(cause error) {
	c.endOnce.Do(func() {
		c.mu.Lock()
		c.endCause = cause
		c.mu.Unlock()
		c.media.close()
		if c.uac != nil {
			c.uac.Close()
		}
		if c.uas != nil {
			c.uas.Close()
		}
		c.p.removeCall(c)
		close(c.done)
		c.log.Debug().AnErr("cause", cause).Msg("call ended")
	})
}

// abort ends a call we cannot use: BYE, then end.
func (c *Call) abort(cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if c.uac != nil {
		_ = c.uac.Bye(ctx)
	}
	c.end(cause)
}

// finish sends the final response to a ringing incoming call: 200 with our SDP, or a rejection.
// It runs on the goroutine that owns the INVITE transaction. For 200 it returns after the ACK.
func (c *Call) finish(code int, reason string) error {
	if code == sip.StatusOK {
		c.media.startSending()
		if err := c.answer(); err != nil {
			c.end(fmt.Errorf("answer: %w", err))
			return fmt.Errorf("answer: %w", err)
		}
		c.markAnswered()
		c.log.Debug().Str("remote_rtp", c.offer.Addr.String()).Msg("call answered")
		return nil
	}
	err := c.reject(code, reason)
	c.end(&StatusError{Code: code, Reason: reason})
	if err != nil {
		return fmt.Errorf("respond %d: %w", code, err)
	}
	return nil
}

// answer sends 200 OK with our SDP and waits for the ACK, repeating the 200 meanwhile (RFC 3261
// section 13.3.1.4), as sipgo's DialogServerSession.WriteResponse would; but sipgo's wait ends
// only with the ACK or after 64*T1 (32 s), and this one also when the phone closes. The dialog
// is confirmed by the ACK (onAck: ReadAck), which is what Bye needs.
func (c *Call) answer() error {
	res := sip.NewSDPResponseFromRequest(c.uas.InviteRequest, c.local)
	res.AppendHeader(c.p.contact.Clone())
	c.uas.InviteResponse = res
	states := c.uas.StateRead() // before the 200 goes out: the ACK may come at once
	if err := c.inviteTx.Respond(res); err != nil {
		return err
	}
	interval := sip.T1
	repeat := time.NewTimer(interval)
	defer repeat.Stop()
	giveUp := time.NewTimer(64 * sip.T1)
	defer giveUp.Stop()
	for {
		select {
		case s := <-states:
			switch s {
			case sip.DialogStateConfirmed:
				return nil
			case sip.DialogStateEnded:
				return ErrCallEnded
			}
		case <-repeat.C:
			if err := c.inviteTx.Respond(res); err != nil {
				return err
			}
			interval = min(2*interval, sip.T2)
			repeat.Reset(interval)
		case <-giveUp.C:
			return errors.New("no ACK for 200 OK")
		case <-c.p.ctx.Done():
			return ErrClosed
		}
	}
}

// reject sends a final error response on the INVITE transaction, which repeats it until the ACK
// (or Timer H) on its own; unlike sipgo's DialogServerSession.Respond, it does not wait for the
// ACK, so a caller that is gone cannot hold the handler (and Close) for 32 s.
func (c *Call) reject(code int, reason string) error {
	return c.inviteTx.Respond(sip.NewResponseFromRequest(c.uas.InviteRequest, code, reason, nil))
}

// ring holds a ringing call until a decision, the caller's CANCEL, or Close.
func (c *Call) ring() {
	select {
	case d := <-c.decide:
		d.result <- c.finish(d.code, d.reason)
	case <-c.uas.Context().Done(): // CANCEL (sipgo has already sent 487), or the transaction died
		c.end(ErrCanceled)
	case <-c.p.ctx.Done():
		_ = c.reject(sip.StatusTemporarilyUnavailable, "Temporarily Unavailable")
		c.end(ErrClosed)
	}
}

// Answer answers a ringing incoming call (Manual or Ignore policy) and returns after the ACK.
func (c *Call) Answer(ctx context.Context) error {
	return c.decideRinging(ctx, sip.StatusOK, "OK")
}

// Reject answers a ringing incoming call with a final error code, e.g. 486 or 603.
func (c *Call) Reject(ctx context.Context, code int) error {
	if code < 300 || code > 699 {
		return fmt.Errorf("reject with %d: not an error code", code)
	}
	return c.decideRinging(ctx, code, rejectReason(code))
}

func rejectReason(code int) string {
	switch code {
	case sip.StatusBusyHere:
		return "Busy Here"
	case sip.StatusGlobalDecline:
		return "Decline"
	case sip.StatusTemporarilyUnavailable:
		return "Temporarily Unavailable"
	case sip.StatusNotFound:
		return "Not Found"
	default:
		return "Rejected"
	}
}

func (c *Call) decideRinging(ctx context.Context, code int, reason string) error {
	if c.dir != Incoming || c.isAnswered() {
		return ErrNotRinging
	}
	d := decision{code: code, reason: reason, result: make(chan error, 1)}
	select {
	case c.decide <- d:
	case <-c.done:
		return ErrNotRinging
	case <-c.answered: // answered meanwhile (AutoAnswer, or another Answer)
		return ErrNotRinging
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-d.result:
		return err
	case <-ctx.Done():
		return ctx.Err() // the INVITE goroutine finishes on its own
	}
}

// Hangup ends the call: BYE when established, 603 Decline when it is still ringing here. Ending
// an ended call is a no-op.
func (c *Call) Hangup(ctx context.Context) error {
	select {
	case <-c.done:
		return nil
	default:
	}
	if c.dir == Incoming && !c.isAnswered() {
		err := c.decideRinging(ctx, sip.StatusGlobalDecline, "Decline")
		if errors.Is(err, ErrNotRinging) {
			// answered meanwhile, or ended: fall through to BYE if still up
			select {
			case <-c.done:
				return nil
			default:
			}
		} else {
			return err
		}
	}
	var err error
	if c.uac != nil {
		err = c.uac.Bye(ctx)
	} else {
		err = c.uas.Bye(ctx)
	}
	c.end(ErrHangup)
	if err != nil {
		return fmt.Errorf("hangup %s: %w", c.callID, err)
	}
	return nil
}

// hangupOnClose ends the call for Phone.Close. An incoming call not answered yet is left to the
// goroutine that owns its INVITE: ringing, it answers 480 once the phone's context ends; being
// answered, it gives up or completes, and is then hung up like any established call.
func (c *Call) hangupOnClose(ctx context.Context) error {
	if c.dir == Incoming && !c.isAnswered() {
		select {
		case <-c.done:
			return nil
		case <-c.answered:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return c.Hangup(ctx)
}

// SetTone changes what we send: one tone of hz, or silence for 0.
func (c *Call) SetTone(hz float64) { c.media.setTones(hz) }

// SetTones sends several tones mixed, each at the phone's tone level; none means silence.
func (c *Call) SetTones(hz ...float64) { c.media.setTones(hz...) }

// SendDTMF sends digits (0-9, *, #, A-D) as RFC 4733 events: per digit a start packet, updates
// every 20 ms, and three end packets at 100 ms; 60 ms of audio between digits. The events replace
// the audio unless SetKeepAudioDuringDTMF is on. It returns after the last digit's end packets
// are sent; DTMFSent has the times.
func (c *Call) SendDTMF(ctx context.Context, digits string) error {
	if !c.isAnswered() {
		return fmt.Errorf("send dtmf: %w", ErrNotRinging)
	}
	if err := c.media.sendDTMF(ctx, c.done, digits); err != nil {
		return fmt.Errorf("send dtmf %q: %w", digits, err)
	}
	return nil
}

// SetKeepAudioDuringDTMF chooses what the call sends while a digit is sent. Off (the default),
// the digit's RFC 4733 packets replace the audio for its 100 ms, as most phones do; on, every
// tick carries the audio frame as well as the event's packets, so the tone goes on through the
// digit (a phone that keeps the talker's voice while a key is pressed). It applies from the next
// 20 ms tick, also to a digit being sent.
func (c *Call) SetKeepAudioDuringDTMF(on bool) { c.media.setKeepAudio(on) }

// DTMFSent lists the digits we sent, with start and end times.
func (c *Call) DTMFSent() []DTMFEvent { return c.media.dtmfSent() }

// DTMFEvents lists the telephone events received.
func (c *Call) DTMFEvents() []DTMFEvent { return c.media.rx.events() }

// DTMFReceived lists the digits received via RFC 4733.
func (c *Call) DTMFReceived() []string {
	ev := c.media.rx.events()
	out := make([]string, len(ev))
	for i, e := range ev {
		out[i] = e.Digit
	}
	return out
}

// AwaitDTMF waits until at least n digits have been received (and the n-th has ended) and
// returns all digits received so far.
func (c *Call) AwaitDTMF(ctx context.Context, n int) (string, error) {
	var got string
	err := c.media.rx.wait(ctx, c.done, 0, func(time.Time) bool {
		ev := c.media.rx.dtmf
		if len(ev) < n || (n > 0 && ev[n-1].End.IsZero()) {
			return false
		}
		var b strings.Builder
		for _, e := range ev {
			b.WriteString(e.Digit)
		}
		got = b.String()
		return true
	})
	return got, err
}

// Heard summarises the audio frames received in [since, until): how many, and how many carried
// hz. Zero since means the call's start, zero until means now.
func (c *Call) Heard(hz float64, since, until time.Time) Presence {
	return c.media.rx.heard(hz, since, until)
}

// LongestAbsence is the longest time within [since, until) in which hz was not heard: frames
// without it, and missing packets, count as absence. With steady 20 ms packets carrying hz it is
// about 0. Zero since means the call's start, zero until means now.
func (c *Call) LongestAbsence(hz float64, since, until time.Time) time.Duration {
	return c.media.rx.longestAbsence(hz, since, until)
}

// Gaps lists the stretches in [since, until) where audio packets stopped arriving for more than
// half a frame beyond their due time.
func (c *Call) Gaps(since, until time.Time) []Gap { return c.media.rx.gaps(since, until) }

// LateArrival is the longest that an audio frame received in [since, until) arrived after its
// time, as its RTP timestamp gives it against the frames of the window that came soonest: how
// long something upstream (the sending phone, Asterisk) held the audio back before letting it go
// in a burst, for instance when the test machine starved it of CPU. An absence up to this long
// is such a stall rather than lost audio: frames that never come leave a jump in the timestamps,
// and no lateness. Zero since means the call's start, zero until means now.
func (c *Call) LateArrival(since, until time.Time) time.Duration {
	return c.media.rx.lateArrival(since, until)
}

// SenderStall is the longest time our sender fell behind its 20 ms schedule for a frame due in
// [since, until) because this process did not get the CPU (the frames then go out in a burst).
// An absence the other side measures up to this long is the test machine's doing, not the
// network's or Asterisk's; tests allow for it.
func (c *Call) SenderStall(since, until time.Time) time.Duration {
	since, until = c.media.rx.bounds(since, until)
	return c.media.longestStall(since, until)
}

// Frames is a copy of the received-frame log.
func (c *Call) Frames() []Frame { return c.media.rx.snapshot() }

// AwaitTone waits until frames consecutive received frames have hz present (or, if !present,
// absent; time without packets counts as absence), considering only frames that arrive from now
// on, and returns the arrival time of the first of them.
func (c *Call) AwaitTone(ctx context.Context, hz float64, present bool, frames int) (time.Time, error) {
	return c.AwaitToneSince(ctx, time.Now(), hz, present, frames)
}

// AwaitToneSince is AwaitTone over frames that arrived at or after since (which may be in the
// past, e.g. the moment a mode switch was requested).
func (c *Call) AwaitToneSince(ctx context.Context, since time.Time, hz float64, present bool, frames int) (time.Time, error) {
	idx := c.media.rx.det.index(hz)
	if idx < 0 {
		return time.Time{}, fmt.Errorf("await %v Hz: %w", hz, ErrNotWatched)
	}
	scan := toneScan{idx: idx, present: present, n: max(frames, 1), since: since}
	var at time.Time
	poll := time.Duration(0)
	if !present {
		poll = frameDuration / 2
	}
	err := c.media.rx.wait(ctx, c.done, poll, func(now time.Time) bool {
		t, ok := scan.step(c.media.rx.frames, now)
		at = t
		return ok
	})
	if err != nil {
		what := "present"
		if !present {
			what = "absent"
		}
		return time.Time{}, fmt.Errorf("await %v Hz %s for %d frames: %w", hz, what, frames, err)
	}
	return at, nil
}

// pauseSending stops our RTP for d, as if the packets were lost (test hook).
func (c *Call) pauseSending(d time.Duration) { c.media.pause(d) }
