package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/earpiece/earpiece/store"
)

func helpReq(id, tenant, agent, call string) store.HelpRequest {
	return store.HelpRequest{ID: id, Tenant: tenant, Agent: agent, CallID: call, RaisedBy: agent, Via: "api"}
}

// The whole life of help requests: one active request per call, open -> in_progress -> closed,
// open -> cancelled, the transitions a state does not allow, lists and the call's index.
func TestHelpLifecycle(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	h, err := e.st.CreateHelp(c, helpReq("help-1", "acme", "744", "chan-1"))
	if err != nil {
		t.Fatal(err)
	}
	if h.State != store.HelpOpen || !h.CreatedAt.Equal(e.clock.Now()) {
		t.Fatalf("created %+v", h)
	}
	if _, err := e.st.CreateHelp(c, helpReq("help-2", "acme", "744", "chan-1")); !errors.Is(err, store.ErrExists) {
		t.Fatalf("a second request on the same call: %v, want ErrExists", err)
	}
	if got, err := e.st.HelpOfCall(c, "acme", "chan-1"); err != nil || got.ID != "help-1" {
		t.Fatalf("HelpOfCall = %+v, %v", got, err)
	}
	if _, err := e.st.GetHelp(c, "globex", "help-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another tenant's request: %v, want ErrNotFound", err)
	}
	at := e.clock.Advance(10 * time.Second)
	h, err = e.st.AcceptHelp(c, "acme", "help-1", "700", at)
	if err != nil || h.State != store.HelpInProgress || h.HelpProvidedBy != "700" || !h.AcceptedAt.Equal(at) {
		t.Fatalf("accept = %+v, %v", h, err)
	}
	if _, err := e.st.CancelHelp(c, "acme", "help-1", at); !errors.Is(err, store.ErrState) {
		t.Fatalf("cancel in progress: %v, want ErrState", err)
	}
	if h, err = e.st.SetHelpSession(c, "acme", "help-1", "sup-x"); err != nil || h.SessionID != "sup-x" {
		t.Fatalf("set session = %+v, %v", h, err)
	}
	h, err = e.st.CloseHelp(c, "acme", "help-1", store.HelpReasonAgent, e.clock.Advance(time.Minute))
	if err != nil || h.State != store.HelpClosed || h.CloseReason != store.HelpReasonAgent || h.ClosedAt.IsZero() {
		t.Fatalf("close = %+v, %v", h, err)
	}
	if _, err := e.st.CloseHelp(c, "acme", "help-1", store.HelpReasonCallEnded, time.Time{}); !errors.Is(err, store.ErrState) {
		t.Fatalf("close twice: %v, want ErrState", err)
	}
	if _, err := e.st.HelpOfCall(c, "acme", "chan-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("HelpOfCall after close: %v, want ErrNotFound", err)
	}
	// The agent may raise again on the same call; then withdraw it.
	e.clock.Advance(time.Second)
	if _, err := e.st.CreateHelp(c, helpReq("help-3", "acme", "744", "chan-1")); err != nil {
		t.Fatalf("raise again after close: %v", err)
	}
	if h, err = e.st.CancelHelp(c, "acme", "help-3", time.Time{}); err != nil || h.State != store.HelpCancelled {
		t.Fatalf("cancel = %+v, %v", h, err)
	}
	if _, err := e.st.AcceptHelp(c, "acme", "help-3", "700", time.Time{}); !errors.Is(err, store.ErrState) {
		t.Fatalf("accept cancelled: %v, want ErrState", err)
	}
	e.clock.Advance(time.Second)
	if _, err := e.st.CreateHelp(c, helpReq("help-4", "acme", "745", "chan-2")); err != nil {
		t.Fatal(err)
	}
	all, err := e.st.ListHelp(c, "acme", time.Time{}, time.Time{})
	if err != nil || len(all) != 3 || all[0].ID != "help-1" || all[2].ID != "help-4" {
		t.Fatalf("ListHelp = %+v, %v", all, err)
	}
	some, err := e.st.ListHelp(c, "acme", at, all[2].CreatedAt)
	if err != nil || len(some) != 1 || some[0].ID != "help-3" {
		t.Fatalf("ListHelp [from,to) = %+v, %v", some, err)
	}
	live, err := e.st.ActiveHelp(c, "acme")
	if err != nil || len(live) != 1 || live[0].ID != "help-4" {
		t.Fatalf("ActiveHelp = %+v, %v", live, err)
	}
	if _, err := e.st.AcceptHelp(c, "acme", "help-missing", "700", time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("accept missing: %v, want ErrNotFound", err)
	}
}

// Fifty supervisors accept one request at once: exactly one wins, every other is refused with
// ErrState, and the record names the winner.
func TestHelpAcceptRace(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	if _, err := e.st.CreateHelp(c, helpReq("help-race", "acme", "744", "chan-1")); err != nil {
		t.Fatal(err)
	}
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = e.st.AcceptHelp(c, "acme", "help-race", fmt.Sprintf("7%02d", i), time.Time{})
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("both %d and %d won", winner, i)
			}
			winner = i
		case !errors.Is(err, store.ErrState):
			t.Errorf("accept %d: %v, want ErrState", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("nobody won")
	}
	h, err := e.st.GetHelp(c, "acme", "help-race")
	if err != nil || h.HelpProvidedBy != fmt.Sprintf("7%02d", winner) || h.State != store.HelpInProgress {
		t.Fatalf("record %+v, %v; winner %d", h, err, winner)
	}
}

// Fifty raises on one call at once: exactly one request is created.
func TestHelpRaiseRace(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.st.CreateHelp(c, helpReq(fmt.Sprintf("help-%d", i), "acme", "744", "chan-1"))
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrExists) && !errors.Is(err, store.ErrConflict):
			t.Errorf("raise: %v", err)
		}
	}
	live, err := e.st.ActiveHelp(c, "acme")
	if ok != 1 || err != nil || len(live) != 1 {
		t.Fatalf("%d raises succeeded, %d active (%v); want exactly one", ok, len(live), err)
	}
}
