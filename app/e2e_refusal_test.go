package app

import (
	"context"
	"testing"
	"time"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/internal/e2etest"
	"github.com/earpiece/earpiece/internal/testphone"
)

// expectRefusal dials code from sup and checks the refusal by ear: the call is answered, the
// supervisor hears congestion (480+620 Hz) and is hung up; nothing is left behind; the audit
// trail says why (when Redis is up).
func (r *rig) expectRefusal(sup *testphone.Phone, code, tenant, reason string) {
	r.T.Helper()
	c, _ := r.Dial(sup, code)
	r.Hears(c, e2etest.ToneRefusalLow, "refused supervisor")
	r.Hears(c, e2etest.ToneRefusalHigh, "refused supervisor")
	r.AwaitEnded(c, 5*time.Second, "refused supervisor")
	r.SilentOn(c, testphone.ToneCustomer, time.Time{}, time.Now(), "refused supervisor")
	r.AssertClean(tenant)
	if reason == "" {
		return
	}
	for _, e := range r.Audit(tenant) {
		if e.Action == "join" && e.Outcome == "refused" && e.Extra["dialed"] == code {
			if e.Reason != reason || e.Actor != sup.User() {
				r.T.Errorf("refusal of %s audited as %s by %s, want %s by %s", code, e.Reason, e.Actor, reason, sup.User())
			}
			return
		}
	}
	r.T.Errorf("no audit entry for the refusal of %s (%s)", code, reason)
}

// TestE2ERefusals: every way a feature code is turned away is heard as congestion, audited, and
// leaves nothing on Asterisk or in Redis; the supervised call is never disturbed.
func TestE2ERefusals(t *testing.T) {
	r := newRig(t)
	customer := r.Phone("800", hzCustomer, testphone.AutoAnswer)
	agent := r.Phone("744", hzAgent, testphone.AutoAnswer)
	r.Phone("745", hzAgent, testphone.AutoAnswer) // registered, idle
	sup := r.Phone("700", hzSupervisor, testphone.AutoAnswer)
	agentRole := r.Phone("746", hzSupervisor, testphone.AutoAnswer)
	other := r.Phone("900", hzSupervisor, testphone.AutoAnswer)
	c := r.Connect(customer, agent, "744")
	start := time.Now()

	cases := []struct {
		name   string
		phone  *testphone.Phone
		code   string
		tenant string
		reason string
	}{
		{"unknown extension", sup, "*90799", "acme", RefuseUnknownExtension},
		{"not in the agent's hunt group", sup, "*90746", "acme", RefuseNotAllowed},
		{"no active call", sup, "*90745", "acme", RefuseNoActiveCall},
		{"self", sup, "*90700", "acme", RefuseSelf},
		{"letters for a target", sup, "*91abc", "acme", RefuseInvalidTarget},
		{"agent role", agentRole, "*90744", "acme", RefuseNotSupervisor},
		{"tenant disabled", other, "*21901", "globex", RefuseTenantDisabled},
		{"other tenant's extension", other, "*21744", "globex", RefuseTenantDisabled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := r.For(t)
			r.expectRefusal(tc.phone, tc.code, tc.tenant, tc.reason)
		})
	}

	t.Run("caller in no tenant", func(t *testing.T) {
		r := r.For(t)
		// A Local channel entering the app as if it had dialed a code: its endpoint is no
		// tenant's phone.
		ctx, cancel := context.WithTimeout(r.Ctx, 5*time.Second)
		defer cancel()
		ch, err := r.Client.Originate(ctx, ari.OriginateRequest{
			Endpoint: "Local/tone2000@earpiece-test-tones", App: "earpiece", AppArgs: "feature,acme,*90744",
			ChannelID: "test-stranger",
		})
		if err != nil {
			t.Fatal(err)
		}
		e2etest.WaitFor(t, 5*time.Second, "stranger hung up", func() bool {
			_, err := r.Client.GetChannel(ctx, ch.ID)
			return err != nil
		})
		r.AssertClean("acme")
		if _, ok := e2etest.FindAudit(r.Audit("_unknown"), "join", "refused", RefuseUnknownCaller); !ok {
			t.Error("no audit entry for the unknown caller")
		}
	})

	t.Run("redis unavailable", func(t *testing.T) {
		r := r.For(t)
		r.Redis.Stop()
		c2, _ := r.Dial(sup, "*90744")
		r.Hears(c2, e2etest.ToneRefusalLow, "supervisor while Redis is down")
		r.AwaitEnded(c2, 8*time.Second, "supervisor while Redis is down")
		r.Redis.Restart()
		r.AssertClean("acme")
	})

	// The customer and the agent heard each other the whole time.
	r.NoGap("customer during the refusals", c.Customer, c.Agent, hzAgent, start, time.Now())
	r.NoGap("agent during the refusals", c.Agent, c.Customer, hzCustomer, start, time.Now())
	r.SilentOn(c.Agent, hzSupervisor, start, time.Now(), "agent during refusals")
	r.SilentOn(c.Customer, hzSupervisor, start, time.Now(), "customer during refusals")
}
