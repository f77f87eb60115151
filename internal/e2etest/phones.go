package e2etest

import (
	"context"
	"time"

	"github.com/earpiece/earpiece/internal/testphone"
)

// Test tones beyond the three parties' (testphone.ToneCustomer, ToneAgent, ToneSupervisor): a
// second supervisor, the 480+620 Hz pair of the congestion and busy tones a refused or ended
// supervisor hears, and the beep a tenant with announce: beep plays when a supervisor joins.
const (
	ToneSupervisor2 = 1500.0
	ToneRefusalLow  = 480.0
	ToneRefusalHigh = 620.0
	ToneBeep        = 1400.0
	ToneHelpRaised  = 1800.0 // the agent's confirmation of the in-call help key (app/helpkey.go)
)

// watch is what every phone's detector listens for.
var watch = []float64{testphone.ToneCustomer, testphone.ToneAgent, testphone.ToneSupervisor, ToneSupervisor2, ToneRefusalLow, ToneRefusalHigh, ToneBeep, ToneHelpRaised}

// Phone registers a test phone as user (an endpoint of asterisk-conf/pjsip.conf), sending tone
// hz on its calls and answering incoming ones as policy says. It is closed when r.T ends.
func (r *Rig) Phone(user string, hz float64, policy testphone.Policy) *testphone.Phone {
	r.T.Helper()
	ctx, cancel := context.WithTimeout(r.Ctx, 5*time.Second)
	defer cancel()
	p, err := testphone.New(ctx, testphone.Config{
		User: user, Server: r.Ast.SIPAddr(), ToneHz: hz, Incoming: policy,
		Detector: testphone.Detector{Watch: watch},
	})
	if err != nil {
		r.T.Fatal(err)
	}
	r.T.Cleanup(func() { p.Close() })
	if err := p.Register(ctx); err != nil {
		r.T.Fatalf("register %s: %v", user, err)
	}
	return p
}

// Parties are the two ends of a supervised call.
type Parties struct {
	Customer, Agent *testphone.Call
}

// Connect has customer call target and agent answer: a plain Dial() of the agent's extension,
// or the queue (target "600"). It returns once both hear each other; the customer hangs up when
// r.T ends.
func (r *Rig) Connect(customer, agent *testphone.Phone, target string) Parties {
	r.T.Helper()
	ctx, cancel := context.WithTimeout(r.Ctx, 10*time.Second)
	defer cancel()
	cc, err := customer.Call(ctx, target)
	if err != nil {
		r.T.Fatalf("customer calls %s: %v", target, err)
	}
	ac, err := agent.AwaitIncoming(ctx)
	if err != nil {
		r.T.Fatalf("agent gets the call: %v", err)
	}
	r.T.Cleanup(func() { hangup(cc) })
	r.Hears(cc, testphone.ToneAgent, "customer")
	r.Hears(ac, testphone.ToneCustomer, "agent")
	return Parties{Customer: cc, Agent: ac}
}

// Dial makes sup's call to code (a feature code) and returns it with the moment it was answered.
// The call is hung up when r.T ends.
func (r *Rig) Dial(sup *testphone.Phone, code string) (*testphone.Call, time.Time) {
	r.T.Helper()
	ctx, cancel := context.WithTimeout(r.Ctx, 10*time.Second)
	defer cancel()
	c, err := sup.Call(ctx, code)
	if err != nil {
		r.T.Fatalf("%s dials %s: %v", sup.User(), code, err)
	}
	at := time.Now()
	r.T.Cleanup(func() { hangup(c) })
	return c, at
}

func hangup(c *testphone.Call) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c.Hangup(ctx)
}
