package e2etest

import (
	"os"
	"testing"
	"time"

	"github.com/earpiece/earpiece/internal/testphone"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestGapJudgement: on a plain call (nothing of earpiece involved) the by-ear gap check passes
// while the call is steady, and catches a real gap — the agent's phone sending silence for 200 ms
// while its packets keep their time — however busy the machine is.
func TestGapJudgement(t *testing.T) {
	r := New(t, Owned{})
	c := r.Connect(r.Phone("800", testphone.ToneCustomer, testphone.AutoAnswer), r.Phone("744", testphone.ToneAgent, testphone.AutoAnswer), "744")

	from := time.Now()
	time.Sleep(600 * time.Millisecond)
	if gap, allowed := Gap(c.Customer, c.Agent, testphone.ToneAgent, from, time.Now()); gap > allowed {
		t.Errorf("steady call: gap %v > allowed %v", gap, allowed)
	}

	from = time.Now()
	time.Sleep(200 * time.Millisecond)
	c.Agent.SetTones() // silence, sent on time
	time.Sleep(200 * time.Millisecond)
	c.Agent.SetTone(testphone.ToneAgent)
	r.HearsAfter(c.Customer, time.Now(), testphone.ToneAgent, true, "customer after the gap")
	gap, allowed := Gap(c.Customer, c.Agent, testphone.ToneAgent, from, time.Now())
	if gap <= allowed || gap < 150*time.Millisecond {
		t.Errorf("a 200 ms silence: gap %v, allowed %v; want it caught", gap, allowed)
	}
	t.Logf("injected 200 ms silence measured as %v (allowed %v)", gap, allowed)
}
