package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/internal/e2etest"
	"github.com/earpiece/earpiece/internal/testphone"
	"github.com/earpiece/earpiece/outbound"
)

// Keys of the dashboard test (plain; the configuration holds their SHA-256).
const (
	dashAdam  = "dash-adam-key"  // supervisor 700, may supervise 744
	dashEve   = "dash-eve-key"   // supervisor 701, in the group without "supervision allowed"
	dashJohn  = "dash-john-key"  // agent 744
	dashAdmin = "dash-admin-key" // acme's admin
	dashOps   = "dash-ops-key"   // the operator
)

// TestE2EDashboard drives the dashboard in a real Chromium against earpiece on the real test
// Asterisk and Redis, and judges the calls by ear:
//
//   - a supervisor signs in (keyboard only), sees the SIP call appear, clicks Monitor: their
//     phone rings, they answer and hear both parties; meanwhile the agent's page shows nothing
//     and its event stream receives nothing at all, and it requests no call or supervision;
//   - Coach: the agent hears the supervisor, and the agent's page shows the coaching;
//   - the agent's page asks for help; the supervisor's page alerts, Confirm accepts it, the
//     agent's page says who helps; Disconnect hangs the supervisor up and the indicator goes;
//   - a second supervisor's join is refused (not allowed in the hunt group) and shown; the
//     admin ticks "Supervision allowed" for them, and their next join rings and is heard;
//   - the admin's other views: a dialing rule refused with the error by its field, an API key
//     created and shown once, the audit log and its CSV, the report's chart; the operator
//     switches a tenant on;
//   - no page logs an error, and a screenshot of each view is saved (EARPIECE_TEST_ARTIFACTS).
func TestE2EDashboard(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: needs Asterisk, Redis and Chromium")
	}
	chromium := chromiumPath(t)
	r := e2etest.New(t, e2etest.Owned{BridgeNamePrefix: app.BridgeNamePrefix})
	cfg, err := config.Decode(strings.NewReader(fmt.Sprintf(`
operator_keys:
  - {name: ops, sha256: %s}
tenants:
  - id: acme
    name: Acme Support
    supervision_enabled: true
    extensions:
      - {number: "700", endpoint: PJSIP/700, role: supervisor, name: Adam}
      - {number: "701", endpoint: PJSIP/701, role: supervisor, name: Eve}
      - {number: "744", endpoint: PJSIP/744, role: agent, name: John}
    hunt_groups:
      - name: support
        members: [{extension: "744"}, {extension: "700", supervision_allowed: true}, {extension: "701"}]
    api_keys:
      - {name: adam, role: supervisor, extension: "700", sha256: %s}
      - {name: eve, role: supervisor, extension: "701", sha256: %s}
      - {name: john, role: agent, extension: "744", sha256: %s}
      - {name: crm, role: admin, sha256: %s}
  - id: globex
    name: Globex
    supervision_enabled: false
    extensions:
      - {number: "900", endpoint: PJSIP/900, role: supervisor}
`, config.SHA256Hex(dashOps), config.SHA256Hex(dashAdam), config.SHA256Hex(dashEve), config.SHA256Hex(dashJohn),
		config.SHA256Hex(dashAdmin))))
	if err != nil {
		t.Fatal(err)
	}
	dirSync := app.NewDirectorySync(r.Store, cfg, func(string) (string, bool) { return "", false }, r.Log)
	if _, err := dirSync.Import(r.Ctx, cfg.Tenants, "test", false); err != nil {
		t.Fatal(err)
	}
	hub, err := outbound.New(outbound.Config{Store: r.Store, Logger: r.Log})
	if err != nil {
		t.Fatal(err)
	}
	r.Go(func(ctx context.Context) { _ = hub.Run(ctx) })
	sup := app.New(app.Config{AppName: e2etest.AppName, Instance: "dashboard-e2e", Notifier: hub, Logger: r.Log},
		r.Client, r.Store, dirSync.Live())
	r.Start(sup)
	srv := New(Config{Directory: dirSync.Live(), Store: r.Store, Admin: app.NewAdmin(dirSync, sup, r.Store, r.Log),
		Service: sup, Logger: r.Log, HeartbeatInterval: time.Second})
	link := &cuttable{h: srv.Handler(), live: map[*int]context.CancelFunc{}}
	web := httptest.NewServer(link)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		web.Close()
	})

	artifacts := artifactsDir(t)
	start := time.Now()
	b := startBrowser(t, chromium, artifacts) // stopped before the server (cleanups run last first)
	supTab, agentTab, adminTab := b.tab("supervisor"), b.tab("agent"), b.tab("admin")
	for _, tb := range []*browserTab{supTab, agentTab, adminTab} {
		tb.do("open the dashboard", chromedp.Navigate(web.URL+"/"))
		tb.wait("the sign-in form", `!document.getElementById('signin').hidden`, 10*time.Second)
	}
	supTab.shot("01-sign-in")
	signIn := func(tb *browserTab, key string) {
		t.Helper()
		// Keyboard only: the key field has the focus, Enter submits.
		tb.wait("the key field focused", `document.activeElement && document.activeElement.id === 'signin-key'`, 5*time.Second)
		tb.do("sign in", chromedp.KeyEvent(key), chromedp.KeyEvent(kb.Enter))
		tb.wait("signed in", `document.getElementById('signin').hidden && !document.getElementById('whoami').hidden`, 10*time.Second)
		if key != dashOps { // the operator follows no tenant's events
			tb.wait("the event stream", `document.getElementById('connection').dataset.state === 'live'`, 10*time.Second)
		}
	}
	signIn(supTab, dashAdam)
	signIn(agentTab, dashJohn)
	signIn(adminTab, dashAdmin)

	// Each page shows what its key's role may use, and nothing else.
	if tabs := evalIn[[]string](supTab, `[...document.querySelectorAll('#tabs button')].map(b => b.id)`); len(tabs) != 1 ||
		evalIn[bool](supTab, `!!document.getElementById('view-agent')`) {
		t.Errorf("the supervisor's page has views %v", tabs)
	}
	if evalIn[bool](agentTab, `!!document.getElementById('view-calls') || !document.getElementById('tabs').hidden`) {
		t.Error("the agent's page shows more than the agent's view")
	}
	if tabs := evalIn[[]string](adminTab, `[...document.querySelectorAll('#tabs button')].map(b => b.id)`); !slices.Equal(tabs,
		[]string{"tab-calls", "tab-extensions", "tab-groups", "tab-rules", "tab-keys", "tab-audit", "tab-report"}) {
		t.Errorf("the admin's page has views %v", tabs)
	}

	// A real call: the customer (800) calls the agent (744).
	ctx, cancel := context.WithTimeout(r.Ctx, 90*time.Second)
	defer cancel()
	c := r.Connect(r.Phone("800", testphone.ToneCustomer, testphone.AutoAnswer), r.Phone("744", testphone.ToneAgent, testphone.AutoAnswer), "744")
	adamPhone := r.Phone("700", testphone.ToneSupervisor, testphone.Manual)
	evePhone := r.Phone("701", e2etest.ToneSupervisor2, testphone.Manual)
	const call = `document.querySelector('li.call[data-agent="744"]')`
	supTab.wait("the call listed", call, 10*time.Second)
	if got := evalIn[string](supTab, call+`.innerText`); !strings.Contains(got, "5550800") || !strings.Contains(got, "inbound") {
		t.Errorf("the call card says %q", got)
	}
	// The duration ticks without a reload.
	first := evalIn[string](supTab, call+`.querySelector('.duration').textContent`)
	supTab.wait("the duration ticking", call+`.querySelector('.duration').textContent !== `+jsString(first), 3*time.Second)
	supTab.shot("02-supervisor-live-call")
	agentTab.shot("03-agent-idle")

	// Monitor: earpiece calls the supervisor's phone; answered, it hears both parties, and
	// nobody hears it.
	agentEvents := len(agentTab.SSE())
	// Keyboard only: Tab from the top of the content to the call's Monitor, Enter.
	supTab.do("focus the content", chromedp.Focus(chromedp.CSS("#main")))
	for tabs := 0; !evalIn[bool](supTab, `document.activeElement.matches('li.call[data-agent="744"] button[data-mode="spy"]')`); tabs++ {
		if tabs == 12 {
			t.Fatalf("12 presses of Tab did not reach Monitor (at %s)", evalIn[string](supTab, `document.activeElement.outerHTML.slice(0, 120)`))
		}
		supTab.do("Tab", chromedp.KeyEvent(kb.Tab))
	}
	supTab.do("Monitor", chromedp.KeyEvent(kb.Enter))
	in, err := adamPhone.AwaitIncoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Answer(ctx); err != nil {
		t.Fatal(err)
	}
	r.ExpectMode(e2etest.ModeChange{From: dialplan.Spy, To: dialplan.Spy, Asked: time.Now()}, c, in)
	supTab.wait("Monitor highlighted", call+`.querySelector('button[data-mode="spy"]').getAttribute('aria-pressed') === 'true'`, 10*time.Second)
	if got := evalIn[string](supTab, call+`.querySelector('.sups').innerText`); !strings.Contains(got, "700 (you)") || !strings.Contains(got, "Monitor") {
		t.Errorf("the supervisors of the call: %q", got)
	}
	supTab.shot("04-supervisor-monitoring")
	// Silent monitoring is invisible to the agent: the page shows nothing, and its event stream
	// received nothing at all since the supervisor joined (the supervisor's page did).
	time.Sleep(time.Second) // the supervisor's page has had the events for a while: so would the agent's
	if evalIn[bool](agentTab, `!document.getElementById('coaching').hidden || document.getElementById('coaching').textContent !== ''`) {
		t.Error("the agent's page shows something while the supervisor only listens")
	}
	if got := agentTab.SSE()[agentEvents:]; len(got) != 0 {
		t.Errorf("the agent's event stream received %q while the supervisor only listened", got)
	}
	agentTab.shot("05-agent-while-monitored")

	// Coach: one click; the agent hears the supervisor, and sees that it is coached.
	asked := time.Now()
	supTab.click("Coach", `li.call[data-agent="744"] button[data-mode="whisper"]`)
	r.ExpectMode(e2etest.ModeChange{From: dialplan.Spy, To: dialplan.Whisper, Asked: asked, Quiet: asked}, c, in)
	supTab.wait("Coach highlighted", call+`.querySelector('button[data-mode="whisper"]').getAttribute('aria-pressed') === 'true' && `+
		call+`.querySelector('button[data-mode="spy"]').getAttribute('aria-pressed') === 'false'`, 10*time.Second)
	agentTab.wait("the coaching indicator", `!document.getElementById('coaching').hidden && document.getElementById('coaching').dataset.coaching === 'whisper'`, 10*time.Second)
	agentTab.shot("06-agent-coached")

	// The agent asks for help (keyboard: type the reason, Tab to the button, Enter).
	agentTab.do("type the reason", chromedp.Focus(chromedp.CSS("#help-reason")), chromedp.KeyEvent("Customer wants a refund"),
		chromedp.KeyEvent(kb.Tab))
	agentTab.wait("Request help focused", `document.activeElement.id === 'request-help'`, 5*time.Second)
	agentTab.do("request help", chromedp.KeyEvent(kb.Enter))
	agentTab.wait("the request open", `document.querySelector('.help-state[data-status="open"]')`, 10*time.Second)
	const alert = `document.querySelector('li.alert[data-status="open"]')`
	supTab.wait("the help alert", alert+` && `+alert+`.innerText.includes('Agent 744 needs help') && `+alert+`.innerText.includes('refund')`, 10*time.Second)
	supTab.wait("the needs-help badge", call+`.querySelector('.help-badge')`, 10*time.Second)
	supTab.shot("07-supervisor-help-alert")
	// Confirm, with the keyboard too.
	supTab.do("Confirm", chromedp.Focus(chromedp.CSS(`li.alert[data-status="open"] button.primary`)), chromedp.KeyEvent(kb.Enter))
	supTab.wait("the alert accepted", `document.querySelector('li.alert[data-status="in_progress"]') && document.querySelector('li.alert[data-status="in_progress"]').innerText.includes('You are helping')`, 10*time.Second)
	agentTab.wait("who helps", `document.querySelector('.help-state[data-status="in_progress"]') && document.querySelector('.help-state').innerText.includes('700')`, 10*time.Second)
	agentTab.shot("08-agent-help-in-progress")

	// Disconnect: the supervisor is hung up; the agent's indicator goes.
	supTab.click("Disconnect", `li.call[data-agent="744"] button.danger`)
	r.AwaitEnded(in, 5*time.Second, "the supervisor after Disconnect")
	supTab.wait("no supervision left", call+` && !`+call+`.querySelector('button[aria-pressed="true"]') && !`+call+`.querySelector('button.danger')`, 10*time.Second)
	agentTab.wait("the indicator gone", `document.getElementById('coaching').hidden`, 10*time.Second)
	agentTab.do("close the request", chromedp.Click(chromedp.CSS(`#help-status button`)))
	agentTab.wait("the request closed", `document.querySelector('.help-state[data-status="closed"]')`, 10*time.Second)
	// The agent's page asked for no call and no supervision, ever.
	for _, u := range agentTab.Requests() {
		if strings.Contains(u, "/v1/calls") || strings.Contains(u, "/v1/supervisions") {
			t.Errorf("the agent's page requested %s", u)
		}
	}

	// Eve (701) is in the hunt group without "supervision allowed": her join is refused, and
	// her page says so. The admin ticks it; her next join is accepted and she hears the call.
	eveTab := b.tab("eve")
	eveTab.do("open the dashboard", chromedp.Navigate(web.URL+"/"))
	eveTab.wait("the sign-in form", `!document.getElementById('signin').hidden`, 10*time.Second)
	signIn(eveTab, dashEve)
	eveTab.wait("the call listed", call, 10*time.Second)
	eveTab.click("Monitor (refused)", `li.call[data-agent="744"] button[data-mode="spy"]`)
	eveTab.wait("the refusal shown", call+`.querySelector('.note.error') && `+call+`.querySelector('.note.error').textContent !== ''`, 10*time.Second)
	eveTab.shot("09-supervisor-join-refused")

	adminTab.do("Hunt groups", chromedp.Click(chromedp.CSS("#tab-groups")))
	const allow = `document.getElementById('allow-support-701')`
	adminTab.wait("701's membership", allow+` && !`+allow+`.checked`, 10*time.Second)
	adminTab.do("tick Supervision allowed", chromedp.Click(chromedp.CSS("#allow-support-701")))
	adminTab.wait("saved", allow+`.checked && `+allow+`.closest('tr').querySelector('.note').textContent === 'Saved'`, 10*time.Second)
	adminTab.shot("10-admin-hunt-groups")

	eveTab.click("Monitor (allowed now)", `li.call[data-agent="744"] button[data-mode="spy"]`)
	eve, err := evePhone.AwaitIncoming(ctx)
	if err != nil {
		t.Fatalf("Eve's phone after the tick: %v", err)
	}
	if err := eve.Answer(ctx); err != nil {
		t.Fatal(err)
	}
	answered := time.Now()
	r.HearsAfter(eve, answered, testphone.ToneCustomer, true, "Eve hears the customer")
	r.HearsAfter(eve, answered, testphone.ToneAgent, true, "Eve hears the agent")
	eveTab.wait("Eve monitoring", call+`.querySelector('button[data-mode="spy"]').getAttribute('aria-pressed') === 'true'`, 10*time.Second)
	supTab.wait("Eve on Adam's list too", call+`.querySelector('.sups').innerText.includes('701')`, 10*time.Second)
	eveTab.shot("11-supervisor-join-accepted")
	eveTab.click("Disconnect", `li.call[data-agent="744"] button.danger`)
	r.AwaitEnded(eve, 5*time.Second, "Eve after Disconnect")

	// A help request accepted by someone else: Adam's alert says who took it. One withdrawn:
	// it says so.
	const adamAlert = `document.querySelector('li.alert[data-status="open"]')`
	agentTab.do("request help again", chromedp.Click(chromedp.CSS("#request-help")))
	supTab.wait("Adam's alert", adamAlert, 10*time.Second)
	eveTab.wait("Eve's alert", adamAlert, 10*time.Second)
	eveTab.click("Eve confirms", `li.alert[data-status="open"] button.primary`)
	supTab.wait("accepted by Eve", `[...document.querySelectorAll('li.alert[data-status="in_progress"]')].some(a => a.innerText.includes('Accepted by 701'))`, 10*time.Second)
	supTab.shot("12-supervisor-alert-taken-by-another")
	agentTab.wait("Eve helps", `document.querySelector('.help-state[data-status="in_progress"]') && document.querySelector('.help-state').innerText.includes('701')`, 10*time.Second)
	agentTab.do("close the request", chromedp.Click(chromedp.CSS(`#help-status button`)))
	agentTab.wait("the request closed", `document.querySelector('.help-state[data-status="closed"]')`, 10*time.Second)
	agentTab.do("request help once more", chromedp.Click(chromedp.CSS("#request-help")))
	supTab.wait("Adam's alert", adamAlert, 10*time.Second)
	agentTab.do("withdraw", chromedp.Click(chromedp.CSS(`#help-status button`)))
	supTab.wait("withdrawn", `[...document.querySelectorAll('li.alert[data-status="cancelled"]')].some(a => a.innerText.includes('Withdrawn by the agent'))`, 10*time.Second)

	// The admin's other views.
	adminTab.do("Extensions", chromedp.Click(chromedp.CSS("#tab-extensions")))
	adminTab.wait("the extensions", `document.querySelector('tr[data-extension="744"]')`, 10*time.Second)
	adminTab.shot("13-admin-extensions")

	adminTab.do("Rules", chromedp.Click(chromedp.CSS("#tab-rules")))
	const prefix = `document.querySelector('#rules-form [name="spy_prefix"]')`
	adminTab.wait("the dialing rules", prefix+` && `+prefix+`.value === '*90'`, 10*time.Second)
	adminTab.do("an invalid prefix", chromedp.SetValue(chromedp.CSS(`#rules-form [name="spy_prefix"]`), "90x"),
		chromedp.Click(chromedp.CSS(`#rules-form button[type="submit"]`)))
	adminTab.wait("the error by its field", prefix+`.getAttribute('aria-invalid') === 'true' && document.getElementById(`+prefix+`.id + '-error').textContent !== ''`, 10*time.Second)
	adminTab.shot("14-admin-rules-field-error")

	adminTab.do("API keys", chromedp.Click(chromedp.CSS("#tab-keys")))
	adminTab.wait("the keys", `document.querySelector('tr[data-key-name="adam"]')`, 10*time.Second)
	adminTab.do("create a key", chromedp.SetValue(chromedp.CSS(`#view-keys [name="name"]`), "wallboard"),
		chromedp.SetValue(chromedp.CSS(`#view-keys [name="extension"]`), "700"),
		chromedp.Click(chromedp.CSS(`#view-keys form button[type="submit"]`)))
	adminTab.wait("the key shown once", `document.getElementById('created-key') && document.getElementById('created-key').textContent.startsWith('ek_') && document.querySelector('tr[data-key-name="wallboard"]')`, 10*time.Second)
	adminTab.shot("15-admin-api-key-created")
	created := evalIn[string](adminTab, `document.getElementById('created-key').textContent`)
	// Revoke it (two presses), and a session opened with it ends.
	wallboard := b.tab("wallboard")
	wallboard.do("open", chromedp.Navigate(web.URL+"/"))
	wallboard.wait("the sign-in form", `!document.getElementById('signin').hidden`, 10*time.Second)
	signIn(wallboard, created)
	adminTab.do("revoke", chromedp.Click(chromedp.CSS(`tr[data-key-name="wallboard"] button.danger`)),
		chromedp.Click(chromedp.CSS(`tr[data-key-name="wallboard"] button.danger`)))
	adminTab.wait("revoked", `!document.querySelector('tr[data-key-name="wallboard"]')`, 10*time.Second)
	wallboard.wait("signed out by the revocation", `!document.getElementById('signin').hidden`, 15*time.Second)

	adminTab.do("Audit log", chromedp.Click(chromedp.CSS("#tab-audit")))
	adminTab.wait("audit entries", `document.querySelectorAll('#view-audit tbody tr').length > 3`, 10*time.Second)
	adminTab.shot("16-admin-audit-log")
	csvPath := filepath.Join(artifacts, "earpiece-audit-acme.csv")
	_ = os.Remove(csvPath)
	adminTab.do("download CSV", chromedp.Click(chromedp.CSS("#audit-csv")))
	e2etest.WaitFor(t, 10*time.Second, "the CSV download", func() bool {
		raw, err := os.ReadFile(csvPath)
		return err == nil && strings.HasPrefix(string(raw), "id,seq,time,") && strings.Contains(string(raw), "supervision")
	})

	adminTab.do("Report", chromedp.Click(chromedp.CSS("#tab-report")))
	adminTab.wait("the chart", `document.querySelectorAll('#report-chart rect.seg-spy').length > 1 && document.querySelector('#view-report tbody tr')`, 15*time.Second)
	adminTab.shot("17-admin-report")

	// The operator: tenants and their switch.
	adminTab.do("sign out", chromedp.Click(chromedp.CSS("#sign-out")))
	adminTab.wait("signed out", `!document.getElementById('signin').hidden`, 10*time.Second)
	signIn(adminTab, dashOps)
	const globex = `document.getElementById('tenant-on-globex')`
	adminTab.wait("the tenants", globex+` && !`+globex+`.checked`, 10*time.Second)
	adminTab.do("switch globex on", chromedp.Click(chromedp.CSS("#tenant-on-globex")))
	adminTab.wait("globex on", globex+` && `+globex+`.checked`, 10*time.Second)
	adminTab.shot("18-operator-tenants")
	if d, _ := dirSync.Live().Snapshot(); d == nil {
		t.Fatal("no directory")
	} else if g, ok := d.Tenant("globex"); !ok || !g.SupervisionEnabled {
		t.Errorf("globex after the operator's switch: %+v", g)
	}

	// The network goes away: the page says it is offline, and comes back live by itself.
	link.cut()
	supTab.wait("offline shown", `document.getElementById('connection').dataset.state === 'offline' && document.getElementById('connection').textContent.includes('Offline')`, 10*time.Second)
	supTab.shot("19-supervisor-offline")
	link.restore()
	supTab.wait("live again", `document.getElementById('connection').dataset.state === 'live'`, 15*time.Second)
	agentTab.wait("live again", `document.getElementById('connection').dataset.state === 'live'`, 15*time.Second)

	// Tablet width.
	supTab.do("tablet", chromedp.EmulateViewport(768, 1024))
	supTab.wait("the call listed", call, 5*time.Second)
	supTab.shot("20-supervisor-tablet")
	agentTab.do("tablet", chromedp.EmulateViewport(768, 1024))
	agentTab.shot("21-agent-tablet")

	// No page logged an error; the API refusals were the ones the steps caused.
	for _, tb := range []*browserTab{supTab, agentTab, adminTab, eveTab, wallboard} {
		if p := tb.Problems(); len(p) > 0 {
			t.Errorf("%s page: %d console problems:\n%s", tb.name, len(p), strings.Join(p, "\n"))
		}
		for _, f := range tb.APIFailures() {
			expected := strings.Contains(f, "status of 401") || strings.Contains(f, "status of 403") || strings.Contains(f, "status of 422") ||
				strings.HasSuffix(f, "/v1/events") // while the network was cut
			if !expected {
				t.Errorf("%s page: unexpected API failure %s", tb.name, f)
			}
		}
	}
	r.AssertClean("acme")
	t.Logf("browser part: %v; screenshots in %s:\n%s", time.Since(start).Round(time.Millisecond), artifacts, strings.Join(b.shots, "\n"))
	var list []string
	for _, s := range b.shots {
		list = append(list, filepath.Base(s))
	}
	manifest, _ := json.MarshalIndent(map[string]any{"test": t.Name(), "screenshots": list, "csv": filepath.Base(csvPath)}, "", "  ")
	_ = os.WriteFile(filepath.Join(artifacts, "manifest.json"), manifest, 0o644)
}

// cuttable is the network between the browser and earpiece, which the test can cut: cut ends
// the requests in progress (event streams included) and drops new connections until restore.
type cuttable struct {
	h    http.Handler
	mu   sync.Mutex
	off  bool
	live map[*int]context.CancelFunc
}

func (c *cuttable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	if c.off {
		c.mu.Unlock()
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
			}
		}
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	key := new(int)
	c.live[key] = cancel
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.live, key)
		c.mu.Unlock()
		cancel()
	}()
	c.h.ServeHTTP(w, r.WithContext(ctx))
}

func (c *cuttable) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off = true
	for _, cancel := range c.live {
		cancel()
	}
}

func (c *cuttable) restore() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off = false
}

// jsString quotes s for JavaScript.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
