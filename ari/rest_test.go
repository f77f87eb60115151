package ari

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testUser     = "earpiece"
	testPassword = "s3cret-pw-9f2e"
	testApp      = "earpiece"
)

// seen is one request as the test server received it.
type seen struct {
	Method, Path string // Path as sent, still escaped
	Query        url.Values
	RawQuery     string
	Auth         string
	User, Pass   string
	ContentType  string
	Body         string
}

// restServer answers every request with status and body and records it.
type restServer struct {
	*httptest.Server
	mu     sync.Mutex
	seen   []seen
	status int
	body   string
}

func newRESTServer(t *testing.T) *restServer {
	t.Helper()
	s := &restServer{status: http.StatusOK, body: "{}"}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u, p, _ := r.BasicAuth()
		s.mu.Lock()
		s.seen = append(s.seen, seen{
			Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.Query(), RawQuery: r.URL.RawQuery,
			Auth: r.Header.Get("Authorization"), User: u, Pass: p,
			ContentType: r.Header.Get("Content-Type"), Body: string(b),
		})
		status, body := s.status, s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *restServer) reply(status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

func (s *restServer) last(t *testing.T) seen {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seen) == 0 {
		t.Fatal("no request")
	}
	return s.seen[len(s.seen)-1]
}

func testConfig(baseURL string) Config {
	return Config{BaseURL: baseURL, User: testUser, Password: testPassword, App: testApp}
}

func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func TestRequests(t *testing.T) {
	s := newRESTServer(t)
	c := newTestClient(t, testConfig(s.URL+"/ari/"))
	ctx := context.Background()

	type q = url.Values
	for _, tc := range []struct {
		name   string
		call   func() error
		method string
		path   string
		query  url.Values
		body   string // JSON; "" means no body
	}{
		{"AsteriskInfo", func() error { _, err := c.AsteriskInfo(ctx); return err }, "GET", "/ari/asterisk/info", q{}, ""},
		{"Ping", func() error { _, err := c.Ping(ctx); return err }, "GET", "/ari/asterisk/ping", q{}, ""},
		{"ListModules", func() error { _, err := c.ListModules(ctx); return err }, "GET", "/ari/asterisk/modules", q{}, ""},
		{"GetModule", func() error { _, err := c.GetModule(ctx, "pbx_config.so"); return err }, "GET", "/ari/asterisk/modules/pbx_config.so", q{}, ""},
		{"ReloadModule", func() error { return c.ReloadModule(ctx, "pbx_config.so") }, "PUT", "/ari/asterisk/modules/pbx_config.so", q{}, ""},
		{"LoadModule", func() error { return c.LoadModule(ctx, "bridge_softmix.so") }, "POST", "/ari/asterisk/modules/bridge_softmix.so", q{}, ""},
		{"UnloadModule escapes", func() error { return c.UnloadModule(ctx, "a/b c") }, "DELETE", "/ari/asterisk/modules/a%2Fb%20c", q{}, ""},
		{"GlobalVar", func() error { _, err := c.GlobalVar(ctx, "DIALPLAN_EXISTS(a,b,1)"); return err }, "GET", "/ari/asterisk/variable", q{"variable": {"DIALPLAN_EXISTS(a,b,1)"}}, ""},
		{"SetGlobalVar empty value", func() error { return c.SetGlobalVar(ctx, "EARPIECE_X", "") }, "POST", "/ari/asterisk/variable", q{"variable": {"EARPIECE_X"}, "value": {""}}, ""},
		{"ListChannels", func() error { _, err := c.ListChannels(ctx); return err }, "GET", "/ari/channels", q{}, ""},
		{"GetChannel escapes", func() error { _, err := c.GetChannel(ctx, "loc/al;2 x"); return err }, "GET", "/ari/channels/loc%2Fal%3B2%20x", q{}, ""},
		{"Originate with id", func() error {
			_, err := c.Originate(ctx, OriginateRequest{
				Endpoint: "PJSIP/1001", App: "earpiece", AppArgs: "sup,1", CallerID: `"Sup" <2000>`,
				Timeout: 1500 * time.Millisecond, Variables: map[string]string{"TENANT": "acme", "X": "a b"},
				ChannelID: "ch-1", OtherChannelID: "ch-1b", Originator: "ch-0", Formats: []string{"ulaw", "alaw"},
			})
			return err
		}, "POST", "/ari/channels/ch-1", q{
			"endpoint": {"PJSIP/1001"}, "app": {"earpiece"}, "appArgs": {"sup,1"}, "callerId": {`"Sup" <2000>`},
			"timeout": {"2"}, "otherChannelId": {"ch-1b"}, "originator": {"ch-0"}, "formats": {"ulaw,alaw"},
		}, `{"variables":{"TENANT":"acme","X":"a b"}}`},
		{"Originate dialplan", func() error {
			_, err := c.Originate(ctx, OriginateRequest{Endpoint: "Local/100@default", Extension: "100", Context: "default", Priority: 1, Label: "start"})
			return err
		}, "POST", "/ari/channels", q{"endpoint": {"Local/100@default"}, "extension": {"100"}, "context": {"default"}, "priority": {"1"}, "label": {"start"}}, ""},
		{"CreateChannel defaults app", func() error {
			_, err := c.CreateChannel(ctx, CreateChannelRequest{Endpoint: "PJSIP/1002", ChannelID: "ch-2", Variables: map[string]string{"A": "1"}})
			return err
		}, "POST", "/ari/channels/create", q{"endpoint": {"PJSIP/1002"}, "app": {testApp}, "channelId": {"ch-2"}}, `{"variables":{"A":"1"}}`},
		{"Dial", func() error { return c.Dial(ctx, "ch-2", "ch-1", 30*time.Second) }, "POST", "/ari/channels/ch-2/dial", q{"caller": {"ch-1"}, "timeout": {"30"}}, ""},
		{"Answer", func() error { return c.Answer(ctx, "ch-1") }, "POST", "/ari/channels/ch-1/answer", q{}, ""},
		{"Ring", func() error { return c.Ring(ctx, "ch-1") }, "POST", "/ari/channels/ch-1/ring", q{}, ""},
		{"RingStop", func() error { return c.RingStop(ctx, "ch-1") }, "DELETE", "/ari/channels/ch-1/ring", q{}, ""},
		{"Hangup", func() error { return c.Hangup(ctx, "ch-1", "congestion") }, "DELETE", "/ari/channels/ch-1", q{"reason": {"congestion"}}, ""},
		{"Hangup default", func() error { return c.Hangup(ctx, "ch-1", "") }, "DELETE", "/ari/channels/ch-1", q{}, ""},
		{"Snoop with id", func() error {
			_, err := c.Snoop(ctx, "ch-1", SnoopRequest{SnoopID: "snoop-1", Spy: DirBoth, Whisper: DirOut, AppArgs: "snoop"})
			return err
		}, "POST", "/ari/channels/ch-1/snoop/snoop-1", q{"spy": {"both"}, "whisper": {"out"}, "app": {testApp}, "appArgs": {"snoop"}}, ""},
		{"Snoop without id", func() error {
			_, err := c.Snoop(ctx, "ch-1", SnoopRequest{Spy: DirIn, App: "other"})
			return err
		}, "POST", "/ari/channels/ch-1/snoop", q{"spy": {"in"}, "app": {"other"}}, ""},
		{"Mute", func() error { return c.Mute(ctx, "ch-1", DirIn) }, "POST", "/ari/channels/ch-1/mute", q{"direction": {"in"}}, ""},
		{"Unmute", func() error { return c.Unmute(ctx, "ch-1", DirBoth) }, "DELETE", "/ari/channels/ch-1/mute", q{"direction": {"both"}}, ""},
		{"Play with id", func() error {
			_, err := c.Play(ctx, "ch-1", PlayRequest{PlaybackID: "pb-1", Media: []string{"sound:beep", "tone:congestion"}, Lang: "de", OffsetMs: 500, SkipMs: 1000})
			return err
		}, "POST", "/ari/channels/ch-1/play/pb-1", q{"media": {"sound:beep,tone:congestion"}, "lang": {"de"}, "offsetms": {"500"}, "skipms": {"1000"}}, ""},
		{"Play", func() error { _, err := c.Play(ctx, "ch-1", PlayRequest{Media: []string{"sound:beep"}}); return err },
			"POST", "/ari/channels/ch-1/play", q{"media": {"sound:beep"}}, ""},
		{"StopPlayback", func() error { return c.StopPlayback(ctx, "pb-1") }, "DELETE", "/ari/playbacks/pb-1", q{}, ""},
		{"GetPlayback", func() error { _, err := c.GetPlayback(ctx, "pb-1"); return err }, "GET", "/ari/playbacks/pb-1", q{}, ""},
		{"SendDTMF", func() error {
			return c.SendDTMF(ctx, "ch-1", DTMFRequest{DTMF: "12#", Before: 100, Between: 200, Duration: 150, After: 50})
		}, "POST", "/ari/channels/ch-1/dtmf", q{"dtmf": {"12#"}, "before": {"100"}, "between": {"200"}, "duration": {"150"}, "after": {"50"}}, ""},
		{"GetVar", func() error { _, err := c.GetVar(ctx, "ch-1", "CALLERID(num)"); return err }, "GET", "/ari/channels/ch-1/variable", q{"variable": {"CALLERID(num)"}}, ""},
		{"SetVar empty value", func() error { return c.SetVar(ctx, "ch-1", "X", "") }, "POST", "/ari/channels/ch-1/variable", q{"variable": {"X"}, "value": {""}}, ""},
		{"MoveChannel", func() error { return c.MoveChannel(ctx, "ch-1", "other", "a,b") }, "POST", "/ari/channels/ch-1/move", q{"app": {"other"}, "appArgs": {"a,b"}}, ""},
		{"ListBridges", func() error { _, err := c.ListBridges(ctx); return err }, "GET", "/ari/bridges", q{}, ""},
		{"GetBridge", func() error { _, err := c.GetBridge(ctx, "br-1"); return err }, "GET", "/ari/bridges/br-1", q{}, ""},
		{"CreateBridge with id", func() error {
			_, err := c.CreateBridge(ctx, CreateBridgeRequest{BridgeID: "br-1", Types: []string{"mixing", "dtmf_events"}, Name: "sup"})
			return err
		}, "POST", "/ari/bridges/br-1", q{"type": {"mixing,dtmf_events"}, "name": {"sup"}}, ""},
		{"CreateBridge", func() error {
			_, err := c.CreateBridge(ctx, CreateBridgeRequest{Types: []string{"mixing"}})
			return err
		},
			"POST", "/ari/bridges", q{"type": {"mixing"}}, ""},
		{"AddChannel", func() error {
			return c.AddChannel(ctx, "br-1", AddChannelRequest{Channels: []ChannelID{"ch-1", "snoop-1"}, Role: "supervisor", AbsorbDTMF: true, Mute: true, InhibitConnectedLineUpdates: true})
		}, "POST", "/ari/bridges/br-1/addChannel", q{"channel": {"ch-1,snoop-1"}, "role": {"supervisor"}, "absorbDTMF": {"true"}, "mute": {"true"}, "inhibitConnectedLineUpdates": {"true"}}, ""},
		{"RemoveChannel", func() error { return c.RemoveChannel(ctx, "br-1", "ch-1", "snoop-1") }, "POST", "/ari/bridges/br-1/removeChannel", q{"channel": {"ch-1,snoop-1"}}, ""},
		{"DestroyBridge", func() error { return c.DestroyBridge(ctx, "br-1") }, "DELETE", "/ari/bridges/br-1", q{}, ""},
		{"PlayBridge", func() error {
			_, err := c.PlayBridge(ctx, "br-1", PlayRequest{PlaybackID: "pb-2", Media: []string{"tone:beep"}})
			return err
		}, "POST", "/ari/bridges/br-1/play/pb-2", q{"media": {"tone:beep"}}, ""},
		{"ListEndpoints", func() error { _, err := c.ListEndpoints(ctx); return err }, "GET", "/ari/endpoints", q{}, ""},
		{"GetEndpoint", func() error { _, err := c.GetEndpoint(ctx, "PJSIP", "1001"); return err }, "GET", "/ari/endpoints/PJSIP/1001", q{}, ""},
		{"GetApplication", func() error { _, err := c.GetApplication(ctx, ""); return err }, "GET", "/ari/applications/earpiece", q{}, ""},
		{"Subscribe", func() error { _, err := c.Subscribe(ctx, testApp, "channel:ch-1", "bridge:br-1"); return err },
			"POST", "/ari/applications/earpiece/subscription", q{"eventSource": {"channel:ch-1,bridge:br-1"}}, ""},
		{"Unsubscribe", func() error { _, err := c.Unsubscribe(ctx, testApp, "bridge:br-1"); return err },
			"DELETE", "/ari/applications/earpiece/subscription", q{"eventSource": {"bridge:br-1"}}, ""},
		{"SetEventFilter", func() error {
			_, err := c.SetEventFilter(ctx, testApp, []string{"StasisStart", "StasisEnd"}, nil)
			return err
		}, "PUT", "/ari/applications/earpiece/eventFilter", q{}, `{"allowed":[{"type":"StasisStart"},{"type":"StasisEnd"}],"disallowed":[]}`},
		{"RecordChannel", func() error {
			_, err := c.RecordChannel(ctx, "ch-1", RecordRequest{Name: "rec-1", Format: "wav", MaxDurationSeconds: 60, MaxSilenceSeconds: 5, IfExists: "overwrite", Beep: true, TerminateOn: "#"})
			return err
		}, "POST", "/ari/channels/ch-1/record", q{"name": {"rec-1"}, "format": {"wav"}, "maxDurationSeconds": {"60"}, "maxSilenceSeconds": {"5"}, "ifExists": {"overwrite"}, "beep": {"true"}, "terminateOn": {"#"}}, ""},
		{"RecordBridge", func() error {
			_, err := c.RecordBridge(ctx, "br-1", RecordRequest{Name: "rec-2", Format: "wav"})
			return err
		},
			"POST", "/ari/bridges/br-1/record", q{"name": {"rec-2"}, "format": {"wav"}}, ""},
		{"StopRecording", func() error { return c.StopRecording(ctx, "rec-1") }, "POST", "/ari/recordings/live/rec-1/stop", q{}, ""},
		{"GetLiveRecording", func() error { _, err := c.GetLiveRecording(ctx, "rec-1"); return err }, "GET", "/ari/recordings/live/rec-1", q{}, ""},
		{"GetStoredRecording", func() error { _, err := c.GetStoredRecording(ctx, "rec-1"); return err }, "GET", "/ari/recordings/stored/rec-1", q{}, ""},
		{"StoredRecordingFile", func() error { _, err := c.StoredRecordingFile(ctx, "rec-1"); return err }, "GET", "/ari/recordings/stored/rec-1/file", q{}, ""},
		{"DeleteStoredRecording", func() error { return c.DeleteStoredRecording(ctx, "rec-1") }, "DELETE", "/ari/recordings/stored/rec-1", q{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.reply(200, "{}")
			if strings.HasPrefix(tc.name, "List") {
				s.reply(200, "[]")
			}
			if err := tc.call(); err != nil {
				t.Fatal(err)
			}
			r := s.last(t)
			if r.Method != tc.method || r.Path != tc.path {
				t.Errorf("request %s %s, want %s %s", r.Method, r.Path, tc.method, tc.path)
			}
			if !reflect.DeepEqual(r.Query, tc.query) {
				t.Errorf("query %v, want %v", r.Query, tc.query)
			}
			if r.User != testUser || r.Pass != testPassword {
				t.Errorf("basic auth %q/%q", r.User, r.Pass)
			}
			if strings.Contains(r.RawQuery, "api_key") || strings.Contains(r.RawQuery, testPassword) || strings.Contains(r.Path, testPassword) {
				t.Errorf("credentials in the URL: %s?%s", r.Path, r.RawQuery)
			}
			switch {
			case tc.body == "" && r.Body != "":
				t.Errorf("unexpected body %s", r.Body)
			case tc.body != "":
				if r.ContentType != "application/json" {
					t.Errorf("Content-Type %q", r.ContentType)
				}
				var got, want any
				if err := json.Unmarshal([]byte(r.Body), &got); err != nil {
					t.Fatalf("body %q: %v", r.Body, err)
				}
				_ = json.Unmarshal([]byte(tc.body), &want)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("body %s, want %s", r.Body, tc.body)
				}
			}
		})
	}
}

func TestResponses(t *testing.T) {
	s := newRESTServer(t)
	c := newTestClient(t, testConfig(s.URL+"/ari"))
	ctx := context.Background()

	s.reply(200, `{"id":"ch-1","name":"PJSIP/1001-00000001","state":"Up","caller":{"name":"A","number":"1001"},
		"connected":{"name":"","number":""},"accountcode":"","dialplan":{"context":"default","exten":"s","priority":1,"app_name":"Stasis","app_data":"earpiece"},
		"creationtime":"2026-11-21T22:33:19.123+0000","language":"en","protocol_id":""}`)
	ch, err := c.GetChannel(ctx, "ch-1")
	if err != nil || ch.ID != "ch-1" || ch.Caller.Number != "1001" || ch.CreationTime.Year() != 2026 {
		t.Errorf("GetChannel = %+v, %v", ch, err)
	}

	s.reply(200, `{"value":"1001"}`)
	if v, err := c.GetVar(ctx, "ch-1", "CALLERID(num)"); err != nil || v != "1001" {
		t.Errorf("GetVar = %q, %v", v, err)
	}

	s.reply(200, `{"system":{"version":"22.10.1","entity_id":"52:54:00:12:34:56"},"status":{"startup_time":"2026-11-21T22:00:00.000+0000","last_reload_time":"2026-11-21T22:00:00.000+0000"}}`)
	info, err := c.AsteriskInfo(ctx)
	if err != nil || info.EntityID() != "52:54:00:12:34:56" || info.System.Version != "22.10.1" || info.Build != nil {
		t.Errorf("AsteriskInfo = %+v, %v", info, err)
	}
	if (AsteriskInfo{}).EntityID() != "" {
		t.Error("EntityID of empty info")
	}

	for _, tc := range []struct {
		version string
		major   int
		ok      bool
	}{{"22.10.1", 22, true}, {"22.10.1+dfsg+~cs6.17.60671434-1", 22, true}, {"certified/18.9-cert4", 18, true}, {"20", 20, true}, {"GIT-master-abc", 0, false}, {"", 0, false}} {
		info := AsteriskInfo{System: &SystemInfo{Version: tc.version}}
		if n, ok := info.MajorVersion(); n != tc.major || ok != tc.ok || info.Version() != tc.version {
			t.Errorf("MajorVersion of %q = %d, %v, want %d, %v", tc.version, n, ok, tc.major, tc.ok)
		}
	}
	if _, ok := (AsteriskInfo{}).MajorVersion(); ok || (AsteriskInfo{}).Version() != "" {
		t.Error("version of empty info")
	}

	s.reply(200, `[{"name":"pbx_config.so","description":"Text Extension Configuration","use_count":0,"status":"Running","support_level":"core"},{"name":"features","description":"Call Features","use_count":1,"status":"Running","support_level":"core"}]`)
	mods, err := c.ListModules(ctx)
	if err != nil || len(mods) != 2 || mods[0].Name != "pbx_config.so" || mods[0].Status != ModuleRunning || mods[1].UseCount != 1 || mods[1].SupportLevel != "core" {
		t.Errorf("ListModules = %+v, %v", mods, err)
	}
	s.reply(200, `{"name":"features","description":"Call Features","use_count":1,"status":"Running","support_level":"core"}`)
	if m, err := c.GetModule(ctx, "features"); err != nil || m.Description != "Call Features" {
		t.Errorf("GetModule = %+v, %v", m, err)
	}
	s.reply(200, `{"value":"d11f8c7d"}`)
	if v, err := c.GlobalVar(ctx, "EARPIECE_DIALPLAN"); err != nil || v != "d11f8c7d" {
		t.Errorf("GlobalVar = %q, %v", v, err)
	}
	s.reply(404, `{"message":"Module not found in running modules"}`)
	if err := c.ReloadModule(ctx, "nope.so"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReloadModule of a module not loaded = %v, want ErrNotFound", err)
	}
	s.reply(409, `{"message":"Module does not support reloading"}`)
	if err := c.ReloadModule(ctx, "app_dial.so"); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "does not support reloading") {
		t.Errorf("ReloadModule of a module that cannot = %v, want ErrConflict", err)
	}

	s.reply(200, `{"technology":"PJSIP","resource":"1001","state":"online","channel_ids":["ch-1","ch-2"]}`)
	ep, err := c.GetEndpoint(ctx, "PJSIP", "1001")
	if err != nil || len(ep.ChannelIDs) != 2 || ep.ChannelIDs[1] != "ch-2" {
		t.Errorf("GetEndpoint = %+v, %v", ep, err)
	}

	s.reply(200, `{"name":"earpiece","channel_ids":["ch-1"],"bridge_ids":["br-1"],"endpoint_ids":[],"device_names":[],"events_allowed":[{"type":"StasisStart"}],"events_disallowed":[]}`)
	app, err := c.GetApplication(ctx, testApp)
	if err != nil || app.BridgeIDs[0] != "br-1" || app.EventsAllowed[0].Type != "StasisStart" {
		t.Errorf("GetApplication = %+v, %v", app, err)
	}

	s.reply(200, "RIFF\x00\x01binary")
	b, err := c.StoredRecordingFile(ctx, "rec-1")
	if err != nil || string(b) != "RIFF\x00\x01binary" {
		t.Errorf("StoredRecordingFile = %q, %v", b, err)
	}

	s.reply(204, "")
	if err := c.Answer(ctx, "ch-1"); err != nil {
		t.Errorf("Answer on 204: %v", err)
	}

	s.reply(200, `{"id":`)
	if _, err := c.GetChannel(ctx, "ch-1"); err == nil {
		t.Error("truncated JSON answer: no error")
	}
}

func TestErrors(t *testing.T) {
	s := newRESTServer(t)
	c := newTestClient(t, testConfig(s.URL+"/ari"))
	ctx := context.Background()
	sentinels := []error{ErrBadRequest, ErrUnauthorized, ErrNotFound, ErrConflict, ErrPreconditionFailed, ErrUnprocessable, ErrServer}

	for _, tc := range []struct {
		status int
		body   string
		want   error
		msg    string
	}{
		{400, `{"message":"Invalid parameters"}`, ErrBadRequest, "Invalid parameters"},
		{401, `{"message":"Authentication required"}`, ErrUnauthorized, "Authentication required"},
		{404, `{"message":"Channel not found"}`, ErrNotFound, "Channel not found"},
		{409, `{"message":"Channel not in a Stasis application"}`, ErrConflict, "Channel not in a Stasis application"},
		{412, `{"message":"Channel in invalid state"}`, ErrPreconditionFailed, "Channel in invalid state"},
		{422, `{"message":"Channel not in Stasis application"}`, ErrUnprocessable, "Channel not in Stasis application"},
		{500, `{"message":"Snoop channel could not be created"}`, ErrServer, "Snoop channel could not be created"},
		{503, "Service Unavailable\n", ErrServer, "Service Unavailable"},
		{418, ``, nil, ""},
	} {
		s.reply(tc.status, tc.body)
		_, err := c.Snoop(ctx, "ch-1", SnoopRequest{SnoopID: "snoop-1", Spy: DirBoth})
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("%d: %T %v is not *Error", tc.status, err, err)
		}
		if e.Status != tc.status || e.Method != "POST" || e.Path != "/channels/ch-1/snoop/snoop-1" || e.Message != tc.msg {
			t.Errorf("%d: %+v", tc.status, e)
		}
		for _, sentinel := range sentinels {
			if got := errors.Is(err, sentinel); got != (sentinel == tc.want) {
				t.Errorf("%d: errors.Is(err, %v) = %v", tc.status, sentinel, got)
			}
		}
		if strings.Contains(err.Error(), testPassword) {
			t.Errorf("password in %q", err)
		}
	}
	// Wrapped errors keep matching.
	s.reply(404, `{"message":"Bridge not found"}`)
	err := c.DestroyBridge(ctx, "br-1")
	if wrapped := errors.Join(errors.New("cleanup"), err); !errors.Is(wrapped, ErrNotFound) {
		t.Error("wrapped 404 does not match ErrNotFound")
	}
	if got := err.Error(); got != "ari: DELETE /bridges/br-1: 404 Not Found: Bridge not found" {
		t.Errorf("Error() = %q", got)
	}
}

func TestRequestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)

	cfg := testConfig(srv.URL)
	cfg.RequestTimeout = 50 * time.Millisecond
	c := newTestClient(t, cfg)
	start := time.Now()
	_, err := c.GetChannel(context.Background(), "ch-1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	if strings.Contains(err.Error(), "http://") {
		t.Errorf("error repeats the URL: %v", err)
	}

	// An earlier caller deadline wins over RequestTimeout.
	cfg.RequestTimeout = time.Minute
	c2 := newTestClient(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := c2.GetChannel(ctx, "ch-1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
}

// TestConnectionsBoundedAndReused: at most MaxConns requests run at once,
// and sequential requests reuse one keep-alive connection.
func TestConnectionsBoundedAndReused(t *testing.T) {
	var running, peak atomic.Int32
	var mu sync.Mutex
	conns := map[string]bool{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		if r.URL.Query().Get("slow") != "" {
			time.Sleep(20 * time.Millisecond)
		}
		_, _ = io.WriteString(w, "{}")
	}))
	srv.Start()
	defer srv.Close()

	cfg := testConfig(srv.URL)
	cfg.MaxConns = 2
	c := newTestClient(t, cfg)
	ctx := context.Background()
	for range 5 {
		if _, err := c.GetChannel(ctx, "ch-1"); err != nil {
			t.Fatal(err)
		}
	}
	if len(conns) != 1 {
		t.Errorf("5 sequential requests used %d connections, want 1 (keep-alive)", len(conns))
	}

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := c.do(ctx, http.MethodGet, "/channels", url.Values{"slow": {"1"}}, nil, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > 2 {
		t.Errorf("%d requests ran at once, want at most MaxConns=2", p)
	}
}
