package webhooks

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

// recipientsDirectory: acme's support group (agent 100, supervisor 200) and sales group (agent
// 102, supervisor 202), a supervisor in no group (203); globex with its own agent and supervisor.
// Every key is named by its plain value.
func recipientsDirectory(t *testing.T) *config.Directory {
	t.Helper()
	key := func(name, role, ext string) string {
		e := ""
		if ext != "" {
			e = fmt.Sprintf(", extension: %q", ext)
		}
		return fmt.Sprintf("      - {name: %s, role: %s%s, sha256: %s}\n", name, role, e, config.SHA256Hex("key-"+name))
	}
	y := `
tenants:
  - id: acme
    supervision_enabled: true
    extensions:
      - {number: "100", endpoint: PJSIP/100, role: agent}
      - {number: "102", endpoint: PJSIP/102, role: agent}
      - {number: "200", endpoint: PJSIP/200, role: supervisor}
      - {number: "202", endpoint: PJSIP/202, role: supervisor}
      - {number: "203", endpoint: PJSIP/203, role: supervisor}
    hunt_groups:
      - name: support
        members: [{extension: "100"}, {extension: "200", supervision_allowed: true}]
      - name: sales
        members: [{extension: "102"}, {extension: "202", supervision_allowed: true}]
    api_keys:
` + key("agent100", "agent", "100") + key("agent102", "agent", "102") + key("sup200", "supervisor", "200") +
		key("sup202", "supervisor", "202") + key("sup203", "supervisor", "203") + key("admin", "admin", "") + `
  - id: globex
    supervision_enabled: true
    extensions:
      - {number: "100", endpoint: PJSIP/globex-100, role: agent}
      - {number: "200", endpoint: PJSIP/globex-200, role: supervisor}
    hunt_groups:
      - name: all
        members: [{extension: "100"}, {extension: "200", supervision_allowed: true}]
    api_keys:
` + key("gagent100", "agent", "100") + key("gsup200", "supervisor", "200") + key("gadmin", "admin", "")
	cfg, err := config.Decode(strings.NewReader(y))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := config.NewDirectory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestEventRecipients: help events reach exactly those who may act on them — admin keys all of
// their tenant's, supervisor keys those of the agents they may supervise, agent keys their own —
// while call and supervision events reach supervisor and admin keys; nothing crosses tenants,
// not even with the same extension numbers, and a help event that does not say whose reaches
// admins only.
func TestEventRecipients(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Directory = recipientsDirectory(t) })
	ts := e.httpServer()

	help := func(typ, tenant, agent string) app.Notification {
		return app.Notification{Type: typ, Tenant: tenant, Time: t0,
			Data: store.HelpRequest{ID: "help-" + typ + "-" + tenant + "-" + agent, Tenant: tenant, Agent: agent, State: store.HelpOpen}}
	}
	// The events, in order, and who gets each (by key name).
	events := []struct {
		n  app.Notification
		to []string
	}{
		{help(app.NoteHelpRaised, "acme", "100"), []string{"agent100", "sup200", "admin"}},
		{help(app.NoteHelpRaised, "acme", "102"), []string{"agent102", "sup202", "admin"}},
		{help(app.NoteHelpEscalated, "acme", "102"), []string{"agent102", "sup202", "admin"}},
		{help(app.NoteHelpAccepted, "acme", "100"), []string{"agent100", "sup200", "admin"}},
		{app.Notification{Type: app.NoteCallStarted, Tenant: "acme", Time: t0, Data: app.Call{ID: "chan-102", Agent: "102"}},
			[]string{"sup200", "sup202", "sup203", "admin"}},
		{app.Notification{Type: app.NoteSupervisionStarted, Tenant: "acme", Time: t0, Data: map[string]string{"agent": "100"}},
			[]string{"sup200", "sup202", "sup203", "admin"}},
		{help(app.NoteHelpExpired, "acme", "102"), []string{"agent102", "sup202", "admin"}},
		{help(app.NoteHelpClosed, "acme", "100"), []string{"agent100", "sup200", "admin"}},
		{help(app.NoteHelpCancelled, "acme", ""), []string{"admin"}},
		{help(app.NoteHelpRaised, "globex", "100"), []string{"gagent100", "gsup200", "gadmin"}},
		{app.Notification{Type: app.NoteCallEnded, Tenant: "globex", Time: t0, Data: app.Call{ID: "chan-g", Agent: "100"}},
			[]string{"gsup200", "gadmin"}},
	}
	want := map[string][]string{}
	for _, ev := range events {
		id := e.publish(ev.n)
		for _, k := range ev.to {
			want[k] = append(want[k], id)
		}
	}
	// Written into acme's stream but naming globex (a bug elsewhere, say): nobody of acme.
	if _, err := e.st.PublishEvent(t.Context(), "acme", app.NoteHelpRaised, mustJSON(t, help(app.NoteHelpRaised, "globex", "100"))); err != nil {
		t.Fatal(err)
	}
	// Not JSON: a help event nobody can place reaches nobody; other events keep flowing.
	if _, err := e.st.PublishEvent(t.Context(), "acme", app.NoteHelpRaised, []byte("not json")); err != nil {
		t.Fatal(err)
	}

	for _, k := range []string{"agent100", "agent102", "sup200", "sup202", "sup203", "admin", "gagent100", "gsup200", "gadmin"} {
		t.Run(k, func(t *testing.T) {
			s := openStream(t, ts, "/v1/events", "key-"+k, "Last-Event-ID", "0")
			var got []string
			for range want[k] {
				m := s.next(t, 5*time.Second, false)
				got = append(got, m.id)
			}
			if !slices.Equal(got, want[k]) {
				t.Errorf("%s got %q, want %q", k, got, want[k])
			}
			s.nothing(t, 150*time.Millisecond)
		})
	}

	// Live, too: a stream open before the event gets exactly its share.
	sup202 := openStream(t, ts, "/v1/events", "key-sup202")
	agent100 := openStream(t, ts, "/v1/events", "key-agent100")
	e.publish(help(app.NoteHelpRaised, "acme", "100"))
	last := e.publish(help(app.NoteHelpRaised, "acme", "102"))
	if m := sup202.next(t, 5*time.Second, false); m.id != last {
		t.Errorf("Sales' supervisor got %+v, want only %s", m, last)
	}
	if m := agent100.next(t, 5*time.Second, false); m.event != app.NoteHelpRaised || !strings.Contains(m.data, `"agent":"100"`) {
		t.Errorf("agent 100 got %+v, want its own request", m)
	}
	agent100.nothing(t, 150*time.Millisecond)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
