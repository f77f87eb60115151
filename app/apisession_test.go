package app

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/store"
)

// noted returns what n recorded (n is the end-to-end tests' recorder).
func noted(n *notes) []Notification {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Notification(nil), n.all...)
}

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
			s, err := r.app.Join(ctx, adamKey, JoinRequest{Agent: "744", Mode: dialplan.Spy})
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
	_, err := r.app.Join(ctx, adamKey, JoinRequest{Agent: "744", Mode: dialplan.Whisper})
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != RefuseAlreadySupervising || !strings.Contains(ae.Message, ok[0].ID) {
		t.Errorf("join while ringing: %v, want %s naming %s", err, RefuseAlreadySupervising, ok[0].ID)
	}
	if _, err := r.app.Leave(ctx, adamKey, ok[0].ID); err != nil {
		t.Fatal(err)
	}
	r.assertClean("acme")
	// Ended: the supervisor may join again.
	s, err := r.app.Join(ctx, adamKey, JoinRequest{Agent: "744", Mode: dialplan.Spy})
	if err != nil {
		t.Fatalf("join after the first session ended: %v", err)
	}
	if _, err := r.app.Leave(ctx, adamKey, s.ID); err != nil {
		t.Fatal(err)
	}
	r.assertClean("acme")
}

// TestRejoinRightAfterHangingUp: a supervisor who hangs up and is joined again at once (the
// first session not yet recorded as ended) gets the new session, not a conflict.
func TestRejoinRightAfterHangingUp(t *testing.T) {
	r := newFastRig(t)
	r.ari.Call("PJSIP/744")
	ctx := context.Background()
	first, err := r.app.Join(ctx, adamKey, JoinRequest{Agent: "744", Mode: dialplan.Spy})
	if err != nil {
		t.Fatal(err)
	}
	leg := ari.ChannelID(first.SupervisorChannel)
	r.ari.AnswerPhone(leg, argAPI, first.ID)
	r.active(leg)
	r.ari.HangupFromPhone(leg)
	again, err := r.app.Join(ctx, adamKey, JoinRequest{Agent: "744", Mode: dialplan.Whisper})
	if err != nil {
		t.Fatalf("join right after hanging up: %v", err)
	}
	if _, err := r.app.Leave(ctx, adamKey, again.ID); err != nil {
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
	s, err := r.app.Join(ctx, adamKey, JoinRequest{Agent: "744", Mode: dialplan.Spy})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.app.Leave(ctx, adamKey, s.ID); err != nil {
		t.Fatal(err)
	}
	r.assertClean("acme")
	seen := map[string]bool{}
	for _, x := range noted(&n) {
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
	_, err := r.app.Join(ctx, adamKey, JoinRequest{Agent: "745", Mode: dialplan.Spy}) // 745 is on no call
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != RefuseNoActiveCall {
		t.Fatalf("join of an idle agent: %v", err)
	}
	if strings.Contains(ae.Message, "PJSIP") || strings.Contains(ae.Message, "/") {
		t.Errorf("message %q names an Asterisk resource", ae.Message)
	}
}

// TestOtherInstanceNotNamed: a session run by another instance is refused without naming the
// instance (the API does not show instances).
func TestOtherInstanceNotNamed(t *testing.T) {
	r := newFastRig(t)
	ctx := context.Background()
	now := time.Now()
	rec := store.Session{ID: newSessionID(), Tenant: "acme", Supervisor: "700", Agent: "744", CallID: "chan-x", Origin: "api",
		Mode: "spy", State: store.StateActive, Instance: "pbx-node-7", StartedAt: now, UpdatedAt: now}
	if err := r.store.CreateSession(ctx, rec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = r.store.EndSession(context.Background(), rec.ID, "test", time.Now()) })
	_, err := r.app.SetMode(ctx, adamKey, rec.ID, dialplan.Whisper)
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != "other_instance" || strings.Contains(ae.Message, "pbx-node-7") {
		t.Errorf("SetMode on another instance's session: %v", err)
	}
	if _, err := r.app.Leave(ctx, adamKey, rec.ID); !errors.As(err, &ae) || strings.Contains(ae.Message, "pbx-node-7") {
		t.Errorf("Leave on another instance's session: %v", err)
	}
}
