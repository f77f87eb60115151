package app

import (
	"context"
	"testing"
	"time"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/store"
)

// loseHangup removes channel id (and its snoops) as a hangup would, without sending its events:
// they happened while the events socket was down.
func (f *fakeARI) loseHangup(id ari.ChannelID) {
	f.mu.Lock()
	_ = f.hangupLocked(id, 16)
	f.mu.Unlock()
}

// TestFastResyncAfterLostEvents: a supervisor who hung up, or a call that ended, while the events
// socket was down is found at the reconnection; the session ends (record, audit, talker slot)
// instead of staying active for ever.
func TestFastResyncAfterLostEvents(t *testing.T) {
	for _, lost := range []string{"supervisor", "call"} {
		t.Run(lost, func(t *testing.T) {
			r := newFastRig(t)
			agent := r.ari.Call("PJSIP/744")
			sup := r.ari.Dial("PJSIP/700", "acme", "*91744")
			r.active(sup)
			r.eventually("active", func() bool {
				for _, id := range r.app.Live() {
					if s, ok := r.app.localSession(id); ok && s.view.Load() != nil && s.view.Load().state == store.StateActive {
						return true
					}
				}
				return false
			})
			if lost == "supervisor" {
				r.ari.loseHangup(sup)
			} else {
				r.ari.loseHangup(agent)
			}
			r.ari.emit(&ari.ConnectionEvent{State: ari.Connected})
			r.assertClean("acme")
			want := map[string]string{"supervisor": ReasonSupervisorHangup, "call": ReasonCallEnded}[lost]
			n := 0
			for _, e := range r.audit("acme") {
				if e.Action == "end" {
					n++
					if e.Reason != want {
						t.Errorf("ended as %s, want %s", e.Reason, want)
					}
				}
			}
			if n != 1 {
				t.Errorf("%d end entries, want 1", n)
			}
			ok, err := r.store.Claim(context.Background(), talkerKey(agent), "probe", time.Minute)
			if err != nil || !ok {
				t.Errorf("talker slot still held: %v %v", ok, err)
			}
		})
	}
}
