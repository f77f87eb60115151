package app

import (
	"context"
	"testing"
	"time"

	"github.com/earpiece/earpiece/internal/e2etest"
	"github.com/earpiece/earpiece/internal/testphone"
)

// TestE2ECallsIndexFollowsEvents: on a real Asterisk, the calls index (calls.go) learns a plain
// Dial() call and a queue call (the agent behind a Local channel) and their ends from the phones'
// events alone — BRIDGEPEER's ChannelVarset, ChannelDestroyed — with no REST rebuild after the
// one that follows the connection; and a supervisor's channel in earpiece's bridge is no call.
func TestE2ECallsIndexFollowsEvents(t *testing.T) {
	r := newRig(t)
	e2etest.WaitFor(t, 5*time.Second, "the calls index trusted", r.app.calls.trusted)
	built := r.app.calls.builtAt()
	agent := r.Phone("744", hzAgent, testphone.AutoAnswer)
	for _, target := range []string{"744", "600"} {
		t.Run("via "+target, func(t *testing.T) {
			r := r.For(t)
			c := r.Connect(r.Phone("800", hzCustomer, testphone.AutoAnswer), agent, target)
			call := r.awaitCall(adamKey, "744")
			if call.CustomerNumber != "5550800" || call.Direction != "inbound" {
				t.Errorf("listed call: %+v", call)
			}
			sup, _ := r.Dial(r.Phone("700", hzSupervisor, testphone.AutoAnswer), "*90744")
			e2etest.WaitFor(t, 5*time.Second, "the session active", func() bool {
				return len(r.app.Live()) == 1 && len(r.app.callsFor("acme")[0].Supervisors) == 1
			})
			if cs := r.app.callsFor("acme"); len(cs) != 1 || cs[0].ID != call.ID {
				t.Errorf("calls while supervised: %+v; want only the agent's (the supervisor's channel is no call)", cs)
			}
			if _, ok := r.app.callOf("acme", "", "700"); ok {
				t.Error("the supervisor's channel in earpiece's bridge is listed as a call")
			}
			hangupCall(t, sup)
			hangupCall(t, c.Customer)
			e2etest.WaitFor(t, 5*time.Second, "the call gone from the index", func() bool {
				_, ok := r.app.callOf("acme", call.ID, "")
				return !ok
			})
			r.AssertClean("acme")
		})
	}
	if r.app.calls.builtAt() != built {
		t.Error("the index was rebuilt from REST: it must follow the events")
	}
}

func hangupCall(t *testing.T, c *testphone.Call) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Hangup(ctx); err != nil {
		t.Log(err)
	}
}
