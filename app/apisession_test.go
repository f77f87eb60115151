package app

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/store"
)

// notes records notifications.
type notes struct {
	mu  sync.Mutex
	all []Notification
}

func (n *notes) Notify(x Notification) {
	n.mu.Lock()
	n.all = append(n.all, x)
	n.mu.Unlock()
}

func (n *notes) list() []Notification {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Notification(nil), n.all...)
}

var adamKey = Principal{Tenant: "acme", Role: config.RoleSupervisor, Extension: "700", KeyName: "adam"}

// TestJoinRefusesASecondSessionOnTheSameCall: a supervisor asking three times at once to join
// the same call gets one session (one phone call), and 409 already_supervising for the others,
// naming the session; nothing is left behind.
func TestJoinRefusesASecondSessionOnTheSameCall(t *testing.T) {
	r := newFastRig(t)
	r.ari.Call("PJSIP/744")
	ctx := context.Background()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ok   []store.Session
		errs []error
	)
	for range 3 {
		wg.Go(func() {
			s, err := r.app.Join(ctx, adamKey, JoinRequest{Agent: "744", Mode: dialplan.ModeSpy})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else {
				ok = append(ok, s)
			}
		})
	}
	wg.Wait()
	if len(ok) != 1 || len(errs) != 2 {
		t.Fatalf("%d sessions, errors %v; want one session and two refusals", len(ok), errs)
	}
	for _, err := range errs {
		var ae *Error
		if !errors.As(err, &ae) || !errors.Is(err, ErrConflict) || ae.Code != RefuseAlreadySupervising {
			t.Errorf("second join: %v, want a conflict %s", err, RefuseAlreadySupervising)
		}
	}
	if n := len(r.ari.Calls("Originate")); n != 1 {
		t.Errorf("the supervisor's phone was called %d times", n)
	}
	// Once the session is live, the same answer, naming it.
	_, err := r.app.Join(ctx, adamKey, JoinRequest{Agent: "744", Mode: dialplan.ModeWhisper})
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != RefuseAlreadySupervising || !strings.Contains(ae.Message, ok[0].ID) {
		t.Errorf("join while ringing: %v, want %s naming %s", err, RefuseAlreadySupervising, ok[0].ID)
	}
	if _, err := r.app.Leave(ctx, adamKey, ok[0].ID); err != nil {
		t.Fatal(err)
	}
	r.assertClean("acme")
	// Ended: the supervisor may join again.
	s, err := r.app.Join(ctx, adamKey, JoinRequest{Agent: "744", Mode: dialplan.ModeSpy})
	if err != nil {
		t.Fatalf("join after the first session ended: %v", err)
	}
	if _, err := r.app.Leave(ctx, adamKey, s.ID); err != nil {
		t.Fatal(err)
	}
	r.assertClean("acme")
}

// TestNotificationsShowWhatTheAPIShows: events and webhooks carry the session as the API shows
// it: no Asterisk channel or bridge ids, no instance name.
func TestNotificationsShowWhatTheAPIShows(t *testing.T) {
	var n notes
	r := newFastRig(t, func(c *Config) { c.Notifier = &n })
	r.ari.Call("PJSIP/744")
	ctx := context.Background()
	s, err := r.app.Join(ctx, adamKey, JoinRequest{Agent: "744", Mode: dialplan.ModeSpy})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.app.Leave(ctx, adamKey, s.ID); err != nil {
		t.Fatal(err)
	}
	r.assertClean("acme")
	seen := map[string]bool{}
	for _, x := range n.list() {
		seen[x.Type] = true
		raw, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		for _, internal := range []string{"supervisor_channel", "agent_channel", "snoop_channel", "bridge_id", "instance", "mode_time", "mode_since", `"fast"`, "ep-sup-"} {
			if strings.Contains(string(raw), internal) {
				t.Errorf("%s shows %s: %s", x.Type, internal, raw)
			}
		}
	}
	for _, typ := range []string{NoteSupervisionRinging, NoteSupervisionEnded} {
		if !seen[typ] {
			t.Errorf("no %s notification in %v", typ, seen)
		}
	}
}

// TestRefusalMessagesNameNoAsteriskResource: what a client reads when a join is refused says
// what is wrong in the domain's words, never an ARI path or endpoint.
func TestRefusalMessagesNameNoAsteriskResource(t *testing.T) {
	r := newFastRig(t)
	ctx := context.Background()
	_, err := r.app.Join(ctx, adamKey, JoinRequest{Agent: "745", Mode: dialplan.ModeSpy}) // 745 is on no call
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != RefuseNoActiveCall {
		t.Fatalf("join of an idle agent: %v", err)
	}
	if strings.Contains(ae.Message, "PJSIP") || strings.Contains(ae.Message, "/") {
		t.Errorf("message %q names an Asterisk resource", ae.Message)
	}
}
