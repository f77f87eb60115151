package webhooks

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/internal/e2etest"
	"github.com/earpiece/earpiece/internal/testphone"
	"github.com/earpiece/earpiece/outbound"
)

// webhookSink is a CRM receiving earpiece's webhooks; it verifies each signature itself, from the
// raw request (independently of SignWebhook).
type webhookSink struct {
	secret string
	mu     sync.Mutex
	types  []string
	bad    []string
}

func (s *webhookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
	mac := hmac.New(sha256.New, []byte(s.secret))
	fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	var n struct{ Type string }
	_ = json.Unmarshal(body, &n)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !strings.Contains(" "+r.Header.Get("webhook-signature")+" ", " "+want+" ") {
		s.bad = append(s.bad, n.Type)
	} else {
		s.types = append(s.types, n.Type)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *webhookSink) got(typ string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.types {
		if t == typ {
			return true
		}
	}
	return false
}

// TestE2EHTTPSupervision drives the real stack through HTTP: a CRM lists the live call on the
// test Asterisk, asks (twice, idempotently) to call the supervisor and join, switches mode with
// PATCH, follows it on the SSE stream and its webhook receiver, and ends it with DELETE.
func TestE2EHTTPSupervision(t *testing.T) {
	r := e2etest.New(t, e2etest.Owned{BridgeNamePrefix: app.BridgeNamePrefix})
	const adamKey, crmKey = "e2e-adam-key", "e2e-crm-key"
	cfg, err := config.Decode(strings.NewReader(fmt.Sprintf(`
tenants:
  - id: acme
    supervision_enabled: true
    extensions:
      - {number: "700", endpoint: PJSIP/700, role: supervisor}
      - {number: "744", endpoint: PJSIP/744, role: agent}
    hunt_groups:
      - name: support
        members: [{extension: "744"}, {extension: "700", supervision_allowed: true}]
    api_keys:
      - {name: adam, role: supervisor, extension: "700", sha256: %s}
      - {name: crm, role: admin, sha256: %s}
`, config.SHA256Hex(adamKey), config.SHA256Hex(crmKey))))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := config.NewDirectory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sink := &webhookSink{secret: "crm-webhook-secret"}
	crm := httptest.NewServer(sink)
	t.Cleanup(crm.Close)

	hub, err := outbound.New(outbound.Config{
		Store: r.Store, Logger: r.Log,
		Endpoints: []outbound.Endpoint{{Tenant: "acme", URL: crm.URL, Secret: sink.secret, AllowLocal: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.Go(func(ctx context.Context) { _ = hub.Run(ctx) })
	sup := app.New(app.Config{AppName: e2etest.AppName, Instance: "http-e2e", Notifier: hub, Logger: r.Log}, r.Client, r.Store, dir)
	r.Start(sup)
	srv := New(Config{Directory: dir, Store: r.Store, Logger: r.Log, HeartbeatInterval: time.Second, Service: sup})
	web := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		// Before the app stops (cleanups run last first): event streams end, then the listener.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		web.Close()
	})

	ctx, cancel := context.WithTimeout(r.Ctx, 60*time.Second)
	defer cancel()
	c := r.Connect(r.Phone("800", testphone.ToneCustomer, testphone.AutoAnswer), r.Phone("744", testphone.ToneAgent, testphone.AutoAnswer), "744")
	supPhone := r.Phone("700", testphone.ToneSupervisor, testphone.Manual)

	do := func(method, path, key, body string, hdr ...string) (int, map[string]any) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequestWithContext(ctx, method, web.URL+path, rd)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}

	// SSE: the dashboard follows the tenant's events.
	sseReq, _ := http.NewRequestWithContext(ctx, http.MethodGet, web.URL+"/v1/events", nil)
	sseReq.Header.Set("Authorization", "Bearer "+adamKey)
	sseReq.Header.Set("Last-Event-ID", "0")
	sseResp, err := http.DefaultClient.Do(sseReq)
	if err != nil || sseResp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/events: %v %v", err, sseResp)
	}
	defer sseResp.Body.Close()
	sseTypes := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(sseResp.Body)
		for sc.Scan() {
			if typ, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				sseTypes <- typ
			}
		}
		close(sseTypes)
	}()

	// GET /v1/calls lists the live call.
	var callID string
	for deadline := time.Now().Add(5 * time.Second); callID == ""; {
		code, body := do(http.MethodGet, "/v1/calls", adamKey, "")
		if code != http.StatusOK {
			t.Fatalf("GET /v1/calls: %d %v", code, body)
		}
		calls, _ := body["calls"].([]any)
		for _, call := range calls {
			m := call.(map[string]any)
			if m["agent"] == "744" {
				callID, _ = m["call_id"].(string)
				if m["customer_number"] != "5550800" || m["direction"] != "inbound" {
					t.Errorf("listed call: %v", m)
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("call never listed: %v", body)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Call-me-and-join, retried with the same Idempotency-Key: one session, one ring.
	join := fmt.Sprintf(`{"call_id":%q,"mode":"spy"}`, callID)
	code1, s1 := do(http.MethodPost, "/v1/supervisions", adamKey, join, "Idempotency-Key", "join-1")
	code2, s2 := do(http.MethodPost, "/v1/supervisions", adamKey, join, "Idempotency-Key", "join-1")
	if code1 != http.StatusAccepted || code2 != http.StatusAccepted || s1["id"] == nil || s1["id"] != s2["id"] {
		t.Fatalf("POST /v1/supervisions twice: %d %v / %d %v", code1, s1, code2, s2)
	}
	id := s1["id"].(string)
	in, err := supPhone.AwaitIncoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Answer(ctx); err != nil {
		t.Fatal(err)
	}
	answered := time.Now()
	r.ExpectMode(e2etest.ModeChange{From: dialplan.Spy, To: dialplan.Spy, Asked: answered}, c, in)
	shortCtx, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	if extra, err := supPhone.AwaitIncoming(shortCtx); err == nil {
		t.Errorf("the retried POST rang the supervisor again (%s)", extra.ID())
	}
	cancelShort()

	// PATCH to whisper: the agent hears the supervisor, the customer does not.
	asked := time.Now()
	code, body := do(http.MethodPatch, "/v1/supervisions/"+id, adamKey, `{"mode":"whisper"}`)
	if code != http.StatusOK || body["mode"] != "whisper" {
		t.Fatalf("PATCH: %d %v", code, body)
	}
	r.ExpectMode(e2etest.ModeChange{From: dialplan.Spy, To: dialplan.Whisper, Asked: asked, Quiet: asked}, c, in)
	if code, body := do(http.MethodPatch, "/v1/supervisions/"+id, adamKey, `{"mode":"loud"}`); code != http.StatusUnprocessableEntity {
		t.Errorf("PATCH bad mode: %d %v", code, body)
	}

	// DELETE ends it: the supervisor's phone is hung up, and nothing earpiece made is left.
	code, body = do(http.MethodDelete, "/v1/supervisions/"+id, crmKey, "")
	if code != http.StatusOK || body["state"] != "ended" || body["end_reason"] != "api" {
		t.Fatalf("DELETE: %d %v", code, body)
	}
	r.AwaitEnded(in, 5*time.Second, "supervisor after DELETE")
	r.AssertClean("acme")

	want := map[string]bool{app.NoteSupervisionRinging: false, app.NoteSupervisionStarted: false, app.NoteSupervisionMode: false, app.NoteSupervisionEnded: false}
	remaining := len(want)
	for remaining > 0 {
		select {
		case typ, ok := <-sseTypes:
			if !ok {
				t.Fatal("event stream closed early")
			}
			if seen, tracked := want[typ]; tracked && !seen {
				want[typ] = true
				remaining--
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("SSE events still missing: %v", want)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); !sink.got(app.NoteSupervisionEnded) || !sink.got(app.NoteSupervisionStarted); {
		if time.Now().After(deadline) {
			t.Fatalf("webhooks received %v (bad signatures: %v)", sink.types, sink.bad)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(sink.bad) > 0 {
		t.Errorf("webhooks with bad signatures: %v", sink.bad)
	}
}
