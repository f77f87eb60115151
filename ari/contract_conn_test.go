package ari_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/internal/asterisktest"
)

// contractEndpointsAndApplications: endpoint listing and lookup; an application's subscriptions.
func contractEndpointsAndApplications(t *testing.T, env *contractEnv) {
	k := newKit(t, env, env.ast, nil)
	ctx := k.ctx()

	eps, err := k.c.ListEndpoints(ctx)
	if err != nil {
		t.Fatalf("GET /endpoints: %v", err)
	}
	var pjsip []string
	for _, ep := range eps {
		if ep.Technology == "PJSIP" {
			pjsip = append(pjsip, ep.Resource)
		}
	}
	for _, want := range []string{"700", "701", "702", "744", "745", "746", "800", "801", "802", "900", "901"} {
		if !slices.Contains(pjsip, want) {
			t.Errorf("GET /endpoints: no PJSIP/%s among %v", want, pjsip)
		}
	}
	ep, err := k.c.GetEndpoint(ctx, "PJSIP", "744")
	if err != nil || ep.Technology != "PJSIP" || ep.Resource != "744" || ep.State == "" || len(ep.ChannelIDs) != 0 {
		t.Errorf("GET PJSIP/744: %+v %v, want PJSIP 744 with a state and no channels", ep, err)
	}
	t.Logf("PJSIP/744 without a registered phone: state %q", ep.State)
	_, err = k.c.GetEndpoint(ctx, "PJSIP", "nobody")
	wantError(t, "GET of an unknown endpoint", err, ari.ErrNotFound, http.StatusNotFound, "Endpoint not found")
	_, err = k.c.GetEndpoint(ctx, "NoSuchTech", "1")
	if e := wantError(t, "GET of an endpoint of an unknown technology", err, ari.ErrNotFound, http.StatusNotFound, ""); e != nil {
		t.Logf("GET /endpoints/NoSuchTech/1: %d %q", e.Status, e.Message)
	}

	app, err := k.c.GetApplication(ctx, "")
	if err != nil || app.Name != k.app || len(app.ChannelIDs) != 0 || len(app.BridgeIDs) != 0 || len(app.EndpointIDs) != 0 {
		t.Errorf("GET the application: %+v %v, want %s with no subscriptions", app, err, k.app)
	}
	_, err = k.c.GetApplication(ctx, k.app+"-nobody")
	wantError(t, "GET of an unknown application", err, ari.ErrNotFound, http.StatusNotFound, "")

	app, err = k.c.Subscribe(ctx, "", "endpoint:PJSIP/744")
	if err != nil || !slices.Contains(app.EndpointIDs, "PJSIP/744") {
		t.Errorf("subscribe to endpoint:PJSIP/744: endpoint_ids %v, %v", app.EndpointIDs, err)
	}
	if app, err := k.c.GetApplication(ctx, ""); err != nil || !slices.Contains(app.EndpointIDs, "PJSIP/744") {
		t.Errorf("GET the application after subscribing: endpoint_ids %v, %v", app.EndpointIDs, err)
	}
	app, err = k.c.Unsubscribe(ctx, "", "endpoint:PJSIP/744")
	if err != nil || slices.Contains(app.EndpointIDs, "PJSIP/744") {
		t.Errorf("unsubscribe from endpoint:PJSIP/744: endpoint_ids %v, %v", app.EndpointIDs, err)
	}
	_, err = k.c.Unsubscribe(ctx, "", "endpoint:PJSIP/744")
	if e := wantError(t, "unsubscribe from a source not subscribed to", err, ari.ErrUnprocessable, http.StatusUnprocessableEntity, ""); e != nil {
		t.Logf("unsubscribe when not subscribed: %d %q", e.Status, e.Message)
	}
	_, err = k.c.Subscribe(ctx, "", "endpoint:PJSIP/nobody")
	if e := wantError(t, "subscribe to an unknown endpoint", err, ari.ErrUnprocessable, http.StatusUnprocessableEntity, ""); e != nil {
		t.Logf("subscribe to an unknown endpoint: %d %q", e.Status, e.Message)
	}
	_, err = k.c.Subscribe(ctx, "", "sideways:x")
	if e := wantError(t, "subscribe to an unknown kind of source", err, ari.ErrBadRequest, http.StatusBadRequest, ""); e != nil {
		t.Logf("subscribe to sideways:x: %d %q", e.Status, e.Message)
	}
	_, err = k.c.Subscribe(ctx, k.app+"-nobody", "endpoint:PJSIP/744")
	wantError(t, "subscribe an unknown application", err, ari.ErrNotFound, http.StatusNotFound, "")
}

// contractEventFilter: PUT /applications/{app}/eventFilter. With allowed=[StasisStart] the app
// gets nothing else, not even the Dial, ChannelVarset, StasisEnd and ChannelDestroyed of its own
// channels; a disallowed type is held back while the rest flows; empty lists reset the filter.
func contractEventFilter(t *testing.T, env *contractEnv) {
	k := newKit(t, env, env.ast, nil)
	ctx := k.ctx()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), contractWait)
		defer cancel()
		_, _ = k.c.SetEventFilter(ctx, "", nil, nil)
	})

	app, err := k.c.SetEventFilter(ctx, "", []string{"StasisStart"}, nil)
	if err != nil || !slices.Equal(app.EventsAllowed, []ari.EventFilter{{Type: "StasisStart"}}) || len(app.EventsDisallowed) != 0 {
		t.Fatalf("set allowed=[StasisStart]: allowed %v disallowed %v, %v", app.EventsAllowed, app.EventsDisallowed, err)
	}
	mark := len(k.w.all())
	x := k.chanID("x")
	k.originate("x", nil)
	if err := k.c.SetVar(ctx, x, "CONTRACT", "filtered"); err != nil {
		t.Fatalf("SetVar: %v", err)
	}
	if err := k.c.Hangup(ctx, x, ""); err != nil {
		t.Fatalf("hangup: %v", err)
	}
	k.awaitGone(x)
	// A sentinel: the next channel's StasisStart, published after all of x's events.
	y := k.chanID("y")
	k.originate("y", nil)
	for _, ev := range k.w.all()[mark:] {
		if ev.Base().Type != "StasisStart" {
			t.Errorf("with allowed=[StasisStart], got %s", describe(ev))
		}
	}

	app, err = k.c.SetEventFilter(ctx, "", nil, []string{"ChannelVarset"})
	if err != nil || len(app.EventsAllowed) != 0 || !slices.Equal(app.EventsDisallowed, []ari.EventFilter{{Type: "ChannelVarset"}}) {
		t.Fatalf("set disallowed=[ChannelVarset]: allowed %v disallowed %v, %v", app.EventsAllowed, app.EventsDisallowed, err)
	}
	mark = len(k.w.all())
	if err := k.c.SetVar(ctx, y, "CONTRACT", "filtered"); err != nil {
		t.Fatalf("SetVar: %v", err)
	}
	if err := k.c.Hangup(ctx, y, ""); err != nil {
		t.Fatalf("hangup: %v", err)
	}
	k.w.skipAll()
	k.w.eventually(t, "StasisEnd (allowed)", is("StasisEnd", y))
	k.w.eventually(t, "ChannelDestroyed (allowed)", is("ChannelDestroyed", y))
	for _, ev := range k.w.all()[mark:] {
		if ev.Base().Type == "ChannelVarset" {
			t.Errorf("with disallowed=[ChannelVarset], got %s", describe(ev))
		}
	}

	app, err = k.c.SetEventFilter(ctx, "", nil, nil)
	if err != nil || len(app.EventsAllowed) != 0 || len(app.EventsDisallowed) != 0 {
		t.Fatalf("reset the filter: %+v %v", app, err)
	}
	z := k.chanID("z")
	k.originate("z", nil)
	k.w.eventually(t, "Dial after the reset", is("Dial", z))
	if err := k.c.SetVar(ctx, z, "CONTRACT", "delivered"); err != nil {
		t.Fatalf("SetVar: %v", err)
	}
	k.w.await(t, "ChannelVarset after the reset", func(ev ari.Event) bool {
		e, ok := ev.(*ari.ChannelVarset)
		return ok && e.Variable == "CONTRACT" && e.Value == "delivered"
	})
}

// contractUnauthorized: a wrong password is a 401 on REST and on the WebSocket upgrade.
func contractUnauthorized(t *testing.T, env *contractEnv) {
	cfg := ari.Config{
		BaseURL:        env.ast.ARIURL,
		User:           env.ast.User,
		Password:       env.ast.Password + "-wrong",
		App:            "contract-" + env.run + "-unauthorized",
		RequestTimeout: contractWait,
		ReconnectMin:   50 * time.Millisecond,
		ReconnectMax:   time.Second,
	}
	c, w := runClient(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), contractWait)
	defer cancel()
	_, err := c.AsteriskInfo(ctx)
	wantError(t, "REST with a wrong password", err, ari.ErrUnauthorized, http.StatusUnauthorized, "")

	ce := w.await(t, "Disconnected", isConn(ari.Disconnected)).ev.(*ari.ConnectionEvent)
	var e *ari.Error
	if !errors.Is(ce.Err, ari.ErrUnauthorized) || !errors.As(ce.Err, &e) || e.Status != http.StatusUnauthorized || e.Path != "/events" {
		t.Errorf("Disconnected with %v, want a 401 on GET /events matching ErrUnauthorized", ce.Err)
	}
	if strings.Contains(ce.Err.Error(), cfg.Password) {
		t.Errorf("the error shows the password: %v", ce.Err)
	}
	w.none(t, "Connected", isConn(ari.Connected))
	if s := c.Stats(); s.DialErrors == 0 || s.Connected {
		t.Errorf("stats %+v, want dial errors and not connected", s)
	}

	cfg.Password, cfg.User = env.ast.Password, env.ast.User+"-nobody"
	other, err := ari.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer other.CloseIdleConnections()
	_, err = other.AsteriskInfo(ctx)
	wantError(t, "REST with an unknown user", err, ari.ErrUnauthorized, http.StatusUnauthorized, "")
}

// contractReconnect (an Asterisk of its own): the socket closed from Asterisk's side (CLI ari
// shutdown websocket session) and an Asterisk restart each give Disconnected then Connected, and
// events flow again. A channel in Stasis survives the loss of the socket.
func contractReconnect(t *testing.T, env *contractEnv) {
	inst := asterisktest.Start(t)
	k := newKit(t, env, inst, nil)
	ctx := k.ctx()
	before := k.chanID("before")
	k.originate("before", nil)

	out, err := inst.CLI(ctx, "ari show websocket sessions")
	if err != nil {
		t.Fatal(err)
	}
	var session string
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) > 0 && slices.Contains(f, k.app) {
			session = f[0]
		}
	}
	if session == "" {
		t.Fatalf("no websocket session for %s in:\n%s", k.app, out)
	}
	cut := time.Now()
	if out, err := inst.CLI(ctx, "ari shutdown websocket session "+session); err != nil || !strings.Contains(out, session) {
		t.Fatalf("ari shutdown websocket session: %v\n%s", err, out)
	}
	ce := k.w.await(t, "Disconnected after the session was shut down", isConn(ari.Disconnected)).ev.(*ari.ConnectionEvent)
	k.w.await(t, "Connected again", isConn(ari.Connected))
	t.Logf("session shut down from Asterisk: Disconnected (%v), Connected %v after the CLI command", ce.Err, time.Since(cut))

	k.originate("after-cut", nil)
	if _, err := k.c.GetChannel(ctx, before); err != nil {
		t.Errorf("GET the channel that was in Stasis before the cut: %v", err)
	}
	if err := k.c.Hangup(ctx, before, ""); err != nil {
		t.Fatalf("hangup: %v", err)
	}
	k.w.await(t, "StasisEnd of the channel from before the cut", is("StasisEnd", before))

	restart := time.Now()
	inst.Restart(t)
	restarted := time.Since(restart)
	k.w.await(t, "Disconnected by the restart", isConn(ari.Disconnected))
	k.w.await(t, "Connected to the restarted Asterisk", isConn(ari.Connected))
	t.Logf("Asterisk restart took %v; Connected %v after it began", restarted, time.Since(restart))
	k.originate("after-restart", nil)
	if s := k.c.Stats(); s.Reconnects != 2 || !s.Connected {
		t.Errorf("stats %+v, want 2 reconnects and connected", s)
	}
}

// contractApplicationReplaced: a second WebSocket for the same app takes it over. The first gets
// ApplicationReplaced, then the client reports Replaced and stays away (ReplacedBackoff); the
// events go to the second, also after the first closed its socket.
func contractApplicationReplaced(t *testing.T, env *contractEnv) {
	k := newKit(t, env, env.ast, func(cfg *ari.Config) { cfg.ReplacedBackoff = time.Minute })
	cfg := ari.Config{BaseURL: env.ast.ARIURL, User: env.ast.User, Password: env.ast.Password, App: k.app, RequestTimeout: contractWait}
	c2, w2 := runClient(t, cfg)
	w2.await(t, "Connected (second client)", isConn(ari.Connected))

	k.w.await(t, "ApplicationReplaced (first client)", isType("ApplicationReplaced"))
	k.w.await(t, "Replaced (first client)", isConn(ari.Replaced))
	mark := len(k.w.all())

	id := k.chanID("taken")
	k.hangupLater(id)
	if _, err := c2.Originate(k.ctx(), ari.OriginateRequest{Endpoint: toneEndpoint, App: k.app, ChannelID: id}); err != nil {
		t.Fatalf("originate: %v", err)
	}
	w2.await(t, "StasisStart on the second client", is("StasisStart", id))
	if err := c2.Hangup(k.ctx(), id, ""); err != nil {
		t.Fatalf("hangup: %v", err)
	}
	w2.await(t, "StasisEnd on the second client", is("StasisEnd", id))
	if evs := k.w.all()[mark:]; len(evs) != 0 {
		t.Errorf("the replaced client got %d events after Replaced, the first %s", len(evs), describe(evs[0]))
	}
	if s := k.c.Stats(); s.Connected || s.Reconnects != 0 {
		t.Errorf("replaced client stats %+v, want not connected and no reconnect", s)
	}
}
