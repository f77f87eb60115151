package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/earpiece/earpiece/store"
)

// Escalation and expiry: escalate once (the request stays open and can still be accepted),
// expire an open request, and nothing else.
func TestHelpEscalateExpire(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	if _, err := e.st.CreateHelp(c, helpReq("help-1", "acme", "744", "chan-1")); err != nil {
		t.Fatal(err)
	}
	at := e.clock.Advance(2 * time.Minute)
	h, err := e.st.EscalateHelp(c, "acme", "help-1", at)
	if err != nil || !h.Escalated || !h.EscalatedAt.Equal(at) || h.State != store.HelpOpen {
		t.Fatalf("escalate = %+v, %v", h, err)
	}
	if _, err := e.st.EscalateHelp(c, "acme", "help-1", at); !errors.Is(err, store.ErrState) {
		t.Fatalf("escalate twice: %v, want ErrState", err)
	}
	if live, err := e.st.ActiveHelp(c, "acme"); err != nil || len(live) != 1 || !live[0].Escalated {
		t.Fatalf("active after escalation = %+v, %v", live, err)
	}
	at = e.clock.Advance(8 * time.Minute)
	h, err = e.st.ExpireHelp(c, "acme", "help-1", at)
	if err != nil || h.State != store.HelpExpired || h.CloseReason != store.HelpReasonExpired || !h.ClosedAt.Equal(at) || !h.Escalated {
		t.Fatalf("expire = %+v, %v", h, err)
	}
	for name, f := range map[string]func() error{
		"expire twice": func() error { _, err := e.st.ExpireHelp(c, "acme", "help-1", at); return err },
		"escalate":     func() error { _, err := e.st.EscalateHelp(c, "acme", "help-1", at); return err },
		"accept":       func() error { _, err := e.st.AcceptHelp(c, "acme", "help-1", "700", at); return err },
		"cancel":       func() error { _, err := e.st.CancelHelp(c, "acme", "help-1", at); return err },
		"close":        func() error { _, err := e.st.CloseHelp(c, "acme", "help-1", store.HelpReasonAgent, at); return err },
	} {
		if err := f(); !errors.Is(err, store.ErrState) {
			t.Errorf("%s an expired request: %v, want ErrState", name, err)
		}
	}
	if live, err := e.st.ActiveHelp(c, "acme"); err != nil || len(live) != 0 {
		t.Fatalf("active after expiry = %+v, %v", live, err)
	}
	if _, err := e.st.HelpOfCall(c, "acme", "chan-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("HelpOfCall after expiry: %v, want ErrNotFound", err)
	}
	// The agent may raise again on the call.
	if _, err := e.st.CreateHelp(c, helpReq("help-2", "acme", "744", "chan-1")); err != nil {
		t.Fatalf("raise after expiry: %v", err)
	}

	// Accepted or ended requests are neither escalated nor expired.
	if _, err := e.st.AcceptHelp(c, "acme", "help-2", "700", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.EscalateHelp(c, "acme", "help-2", time.Time{}); !errors.Is(err, store.ErrState) {
		t.Errorf("escalate in progress: %v, want ErrState", err)
	}
	if _, err := e.st.ExpireHelp(c, "acme", "help-2", time.Time{}); !errors.Is(err, store.ErrState) {
		t.Errorf("expire in progress: %v, want ErrState", err)
	}
	if _, err := e.st.ExpireHelp(c, "globex", "help-2", time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expire another tenant's: %v, want ErrNotFound", err)
	}
}

// Expiry races accepts (and other instances' sweeps): exactly one transition wins; the loser
// sees ErrState and the record agrees with the winner.
func TestHelpExpireAcceptRace(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	for round := range 20 {
		id := fmt.Sprintf("help-%d", round)
		if _, err := e.st.CreateHelp(c, helpReq(id, "acme", "744", fmt.Sprintf("chan-%d", round))); err != nil {
			t.Fatal(err)
		}
		const sweeps, accepts = 5, 5
		var wg sync.WaitGroup
		expired, accepted := make([]error, sweeps), make([]error, accepts)
		start := make(chan struct{})
		for i := range sweeps {
			wg.Go(func() { <-start; _, expired[i] = e.st.ExpireHelp(c, "acme", id, time.Time{}) })
		}
		for i := range accepts {
			wg.Go(func() { <-start; _, accepted[i] = e.st.AcceptHelp(c, "acme", id, fmt.Sprintf("7%02d", i), time.Time{}) })
		}
		close(start)
		wg.Wait()
		wins := 0
		for _, err := range append(expired, accepted...) {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, store.ErrState):
				t.Errorf("round %d: %v, want ErrState", round, err)
			}
		}
		h, err := e.st.GetHelp(c, "acme", id)
		if wins != 1 || err != nil || (h.State == store.HelpExpired) == (h.HelpProvidedBy != "") {
			t.Fatalf("round %d: %d winners, record %+v, %v", round, wins, h, err)
		}
	}
}
