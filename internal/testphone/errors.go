package testphone

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed: the phone was closed.
	ErrClosed = errors.New("testphone: phone closed")
	// ErrCallEnded: the call ended before the awaited thing happened.
	ErrCallEnded = errors.New("testphone: call ended")
	// ErrNotRinging: Answer or Reject on a call that is not a ringing incoming call.
	ErrNotRinging = errors.New("testphone: call is not ringing")
	// ErrNotWatched: a tone query for a frequency the detector does not measure.
	ErrNotWatched = errors.New("testphone: frequency not watched")

	// Why a call ended (Call.Err).

	// ErrHangup: we sent BYE (or our phone closed).
	ErrHangup = errors.New("testphone: hung up locally")
	// ErrRemoteHangup: the other side sent BYE.
	ErrRemoteHangup = errors.New("testphone: remote hung up")
	// ErrCanceled: the caller cancelled a ringing incoming call (CANCEL).
	ErrCanceled = errors.New("testphone: caller cancelled")
)

// StatusError is a final non-2xx SIP response: to our INVITE or REGISTER, or the one we sent to
// reject an incoming call.
type StatusError struct {
	Code   int
	Reason string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("sip %d %s", e.Code, e.Reason)
}
