package aritest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/earpiece/earpiece/ari/aritest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// wait bounds every wait in these tests; nothing sleeps to synchronise.
const wait = 5 * time.Second

// recorder is a testing.TB that records Errorf instead of failing, to check
// that the Server fails tests when it should.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}

type answer struct {
	status int
	header http.Header
	body   string
}

// do sends an authorised request to the Server's ARI base URL + path.
func do(t *testing.T, ctx context.Context, s *aritest.Server, method, path, body string) (answer, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(s.User(), s.Password())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{status: res.StatusCode, header: res.Header, body: string(b)}, nil
}

func mustDo(t *testing.T, s *aritest.Server, method, path, body string) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	a, err := do(t, ctx, s, method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return a
}

func TestRespond(t *testing.T) {
	s := aritest.NewServer(t)
	s.Respond("GET", "/channels/{id}", 200, map[string]string{"id": "c1"})
	s.Respond("DELETE", "/channels/{id}", 204, nil)
	s.Respond("POST", "/bridges/{id}", 409, aritest.Message("Bridge with id 'b1' already exists"))
	s.Respond("GET", "/asterisk/info", 200, []byte(`{"broken`))

	tests := []struct {
		method, path string
		status       int
		body         string
		json         bool
	}{
		{"GET", "/channels/c1", 200, `{"id":"c1"}`, true},
		{"DELETE", "/channels/c1", 204, "", false},
		{"POST", "/bridges/b1", 409, `{"message":"Bridge with id 'b1' already exists"}`, true},
		{"GET", "/asterisk/info", 200, `{"broken`, true},
	}
	for _, tt := range tests {
		a := mustDo(t, s, tt.method, tt.path, "")
		if a.status != tt.status || a.body != tt.body {
			t.Errorf("%s %s = %d %q, want %d %q", tt.method, tt.path, a.status, a.body, tt.status, tt.body)
		}
		if ct := a.header.Get("Content-Type"); (ct == "application/json") != tt.json {
			t.Errorf("%s %s: Content-Type %q", tt.method, tt.path, ct)
		}
	}
}

func TestHandlePathValues(t *testing.T) {
	s := aritest.NewServer(t)
	s.Handle("POST", "/channels/{id}/snoop/{snoopId}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s", r.PathValue("id"), r.PathValue("snoopId"), r.URL.Query().Get("spy"))
	})
	if a := mustDo(t, s, "POST", "/channels/c1/snoop/s1?spy=both", ""); a.body != "c1 s1 both" {
		t.Errorf("handler saw %q", a.body)
	}

	// Scripting a route again replaces the script.
	s.Respond("POST", "/channels/{id}/snoop/{snoopId}", 500, aritest.Message("Snoop channel could not be created"))
	if a := mustDo(t, s, "POST", "/channels/c1/snoop/s1", ""); a.status != 500 {
		t.Errorf("after re-scripting: %d %q", a.status, a.body)
	}
}

func TestRespondSeq(t *testing.T) {
	s := aritest.NewServer(t)
	s.RespondSeq("POST", "/bridges",
		aritest.Answer{Status: 500, Body: aritest.Message("Internal Server Error")},
		aritest.Answer{Status: 503},
		aritest.Answer{Status: 200, Body: map[string]string{"id": "b1"}},
	)
	var got []int
	for range 5 {
		got = append(got, mustDo(t, s, "POST", "/bridges", "").status)
	}
	if want := []int{500, 503, 200, 200, 200}; !slices.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
}

func TestDelay(t *testing.T) {
	s := aritest.NewServer(t)
	const delay = 50 * time.Millisecond
	s.RespondSeq("GET", "/channels/{id}", aritest.Answer{Status: 200, Body: map[string]string{}, Delay: delay})
	start := time.Now()
	a := mustDo(t, s, "GET", "/channels/c1", "")
	if a.status != 200 {
		t.Errorf("status %d", a.status)
	}
	if d := time.Since(start); d < delay {
		t.Errorf("answered after %v, want at least %v", d, delay)
	}
}

func TestHangUntilClientGivesUp(t *testing.T) {
	s := aritest.NewServer(t)
	s.RespondSeq("POST", "/bridges", aritest.Answer{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := do(t, ctx, s, "POST", "/bridges", "")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := s.AwaitRequest(ctx, "POST", "/bridges"); err != nil {
		t.Error(err)
	}
}

// A hanging answer must not keep the Server from closing.
func TestHangEndsAtClose(t *testing.T) {
	errc := make(chan error, 1)
	t.Run("server", func(t *testing.T) {
		s := aritest.NewServer(t)
		s.RespondSeq("POST", "/bridges", aritest.Answer{Hang: true})
		req, err := http.NewRequest("POST", s.URL()+"/bridges", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(s.User(), s.Password())
		go func() {
			res, err := http.DefaultClient.Do(req)
			if err == nil {
				res.Body.Close()
			}
			errc <- err
		}()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if _, err := s.AwaitRequest(ctx, "POST", "/bridges"); err != nil {
			t.Fatal(err)
		}
	}) // the Server closes here
	select {
	case err := <-errc:
		if err == nil {
			t.Error("hanging request got an answer")
		}
	case <-time.After(wait):
		t.Fatal("hanging request still pending after the Server closed")
	}
}

func TestUnexpectedRouteFailsTest(t *testing.T) {
	rec := &recorder{TB: t}
	s := aritest.NewServer(rec)
	s.Respond("GET", "/channels/{id}", 200, map[string]string{})

	for _, tt := range []struct{ method, path string }{
		{"GET", "/bridges/b1"},           // not scripted
		{"POST", "/channels/c1"},         // scripted for another method
		{"GET", "/channels//"},           // empty id: ServeMux would redirect
		{"GET", "/channels/c1/../c2"},    // ditto
		{"GET", "/channels/c1/variable"}, // longer than the pattern
	} {
		a := mustDo(t, s, tt.method, tt.path, "")
		if a.status != http.StatusNotImplemented {
			t.Errorf("%s %s = %d, want 501", tt.method, tt.path, a.status)
		}
	}
	errs := rec.errors()
	if len(errs) != 5 || !strings.Contains(errs[0], "aritest: unexpected GET /ari/bridges/b1") {
		t.Errorf("test failures = %q", errs)
	}
	if a := mustDo(t, s, "GET", "/channels/c1", ""); a.status != 200 {
		t.Errorf("scripted route: %d", a.status)
	}
}

func TestAuth(t *testing.T) {
	rec := &recorder{TB: t}
	s := aritest.NewServer(rec)
	s.Respond("GET", "/asterisk/info", 200, map[string]string{})

	get := func(url string, user, pass string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	for _, tt := range []struct {
		name, url, user, pass string
		status                int
	}{
		{"none", s.URL() + "/asterisk/info", "", "", 401},
		{"wrong password", s.URL() + "/asterisk/info", "ari", "wrong", 401},
		{"basic", s.URL() + "/asterisk/info", "ari", "secret", 200},
		{"api_key", s.URL() + "/asterisk/info?api_key=ari:secret", "", "", 200},
		{"unscripted route, no auth", s.URL() + "/bridges", "", "", 401},
		{"events, no auth", s.URL() + "/events?app=x", "", "", 401},
	} {
		res := get(tt.url, tt.user, tt.pass)
		if res.StatusCode != tt.status {
			t.Errorf("%s: %d, want %d", tt.name, res.StatusCode, tt.status)
		}
		if tt.status == 401 && res.Header.Get("WWW-Authenticate") != `Basic realm="Asterisk REST Interface"` {
			t.Errorf("%s: WWW-Authenticate %q", tt.name, res.Header.Get("WWW-Authenticate"))
		}
	}
	if errs := rec.errors(); len(errs) != 0 {
		t.Errorf("unauthorised requests failed the test: %q", errs)
	}

	req, _ := http.NewRequest("GET", s.URL()+"/asterisk/info", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != `{"message":"Authentication required"}` {
		t.Errorf("401 body %q", b)
	}

	s.SetCredentials("earpiece", "pw")
	if res := get(s.URL()+"/asterisk/info", "earpiece", "pw"); res.StatusCode != 200 {
		t.Errorf("after SetCredentials: %d", res.StatusCode)
	}
}

func TestRequestsRecord(t *testing.T) {
	s := aritest.NewServer(t)
	var (
		mu   sync.Mutex
		seen []string
	)
	s.OnRequest = func(r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.Method+" "+r.URL.Path)
	}
	s.Handle("POST", "/channels/{id}/variable", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body) // the handler still gets the body
		w.Write(b)
	})

	before := time.Now()
	if a := mustDo(t, s, "POST", "/channels/c1/variable?variable=X", `{"value":"1"}`); a.body != `{"value":"1"}` {
		t.Errorf("handler got body %q", a.body)
	}
	reqs := s.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests recorded", len(reqs))
	}
	r := reqs[0]
	if r.Method != "POST" || r.Path != "/channels/c1/variable" || r.Query.Get("variable") != "X" ||
		string(r.Body) != `{"value":"1"}` || r.At.Before(before) {
		t.Errorf("recorded %+v", r)
	}
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("ari:secret"))
	if r.Header.Get("Authorization") != wantAuth {
		t.Errorf("recorded Authorization %q", r.Header.Get("Authorization"))
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, []string{"POST /ari/channels/c1/variable"}) {
		t.Errorf("OnRequest saw %q", seen)
	}
}

func TestAwaitRequest(t *testing.T) {
	s := aritest.NewServer(t)
	s.Respond("DELETE", "/channels/{id}", 204, nil)
	mustDo(t, s, "DELETE", "/channels/c1", "")
	mustDo(t, s, "DELETE", "/channels/c2", "")

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	// Requests already received are handed out oldest first, each once.
	for _, want := range []string{"/channels/c1", "/channels/c2"} {
		r, err := s.AwaitRequest(ctx, "DELETE", "/channels/")
		if err != nil || r.Path != want {
			t.Fatalf("AwaitRequest = %q, %v; want %q", r.Path, err, want)
		}
	}
	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	if _, err := s.AwaitRequest(short, "DELETE", "/channels/"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("AwaitRequest with nothing left: %v", err)
	}
	// A request arriving while waiting wakes it.
	errc := make(chan error, 1)
	go func() {
		_, err := do(t, ctx, s, "DELETE", "/channels/c3", "")
		errc <- err
	}()
	if r, err := s.AwaitRequest(ctx, "", "/channels/c3"); err != nil || r.Method != "DELETE" {
		t.Errorf("AwaitRequest = %+v, %v", r, err)
	}
	if err := <-errc; err != nil {
		t.Error(err)
	}
}

// dial opens an events WebSocket as an ARI client would.
func dial(t *testing.T, s *aritest.Server, query string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	h := http.Header{}
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(s.User()+":"+s.Password())))
	u := "ws" + strings.TrimPrefix(s.URL(), "http") + "/events?" + query
	ws, res, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h})
	if ws != nil {
		t.Cleanup(func() { ws.CloseNow() })
	}
	return ws, res, err
}

func mustDial(t *testing.T, s *aritest.Server, query string) (*websocket.Conn, *aritest.Conn) {
	t.Helper()
	ws, _, err := dial(t, s, query)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := s.AwaitConnection(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ws, c
}

func read(t *testing.T, ws *websocket.Conn) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, b, err := ws.Read(ctx)
	return b, err
}

var asteriskTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$`)

func TestEmit(t *testing.T) {
	s := aritest.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	if err := s.Emit(ctx, aritest.StasisStartJSON("earpiece", "c1")); !errors.Is(err, aritest.ErrNoSocket) {
		t.Errorf("Emit with no socket: %v", err)
	}

	ws, c := mustDial(t, s, "app=earpiece&subscribeAll=true")
	if c.App() != "earpiece" || !c.SubscribeAll() || s.Connections() != 1 {
		t.Errorf("socket app %q subscribeAll %v, connections %d", c.App(), c.SubscribeAll(), s.Connections())
	}

	if err := s.Emit(ctx, aritest.StasisStartJSON("earpiece", "c1", "spy", "744")); err != nil {
		t.Fatal(err)
	}
	b, err := read(t, ws)
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Type, Application, Timestamp string
		AsteriskID                   string `json:"asterisk_id"`
		Args                         []string
		Channel                      struct{ ID, State string }
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "StasisStart" || ev.Application != "earpiece" || ev.AsteriskID == "" ||
		!slices.Equal(ev.Args, []string{"spy", "744"}) || ev.Channel.ID != "c1" || ev.Channel.State != "Up" ||
		!asteriskTime.MatchString(ev.Timestamp) {
		t.Errorf("StasisStart = %s", b)
	}

	if err := c.EmitRaw(ctx, []byte(`{"type":"StasisSt`)); err != nil {
		t.Fatal(err)
	}
	if b, err := read(t, ws); err != nil || string(b) != `{"type":"StasisSt` {
		t.Errorf("raw event = %q, %v", b, err)
	}

	if err := s.Emit(ctx, aritest.ApplicationReplacedJSON("earpiece")); err != nil {
		t.Fatal(err)
	}
	b, _ = read(t, ws)
	if !strings.Contains(string(b), `"type":"ApplicationReplaced"`) {
		t.Errorf("ApplicationReplaced = %s", b)
	}
}

func TestEventsNeedApp(t *testing.T) {
	s := aritest.NewServer(t)
	_, res, err := dial(t, s, "")
	if err == nil || res == nil || res.StatusCode != 400 {
		t.Errorf("dial without app: %v, %v", res, err)
	}
}

func TestCutSocket(t *testing.T) {
	s := aritest.NewServer(t)
	ws, c := mustDial(t, s, "app=earpiece")
	s.CutSocket()
	select {
	case <-c.Done():
	default:
		t.Error("socket not ended after CutSocket returned")
	}
	_, err := read(t, ws)
	if err == nil || websocket.CloseStatus(err) != -1 {
		t.Errorf("client read after cut: %v (want an error without close frame)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := s.Emit(ctx, aritest.StasisStartJSON("earpiece", "c1")); !errors.Is(err, aritest.ErrNoSocket) {
		t.Errorf("Emit after cut: %v", err)
	}

	// A new socket is accepted and counted.
	_, c2 := mustDial(t, s, "app=earpiece")
	if c2 == c || s.Connections() != 2 {
		t.Errorf("second socket: same %v, connections %d", c2 == c, s.Connections())
	}
}

func TestCloseSocket(t *testing.T) {
	s := aritest.NewServer(t)
	ws, c := mustDial(t, s, "app=earpiece")
	// The client must read to answer the close handshake.
	errc := make(chan error, 1)
	go func() {
		_, err := read(t, ws)
		errc <- err
	}()
	s.CloseSocket(websocket.StatusGoingAway, "shutting down")
	if err := <-errc; websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("client read: %v, want close status going away", err)
	}
	<-c.Done()
}

func TestClientCloseEndsConn(t *testing.T) {
	s := aritest.NewServer(t)
	ws, c := mustDial(t, s, "app=earpiece")
	ws.Close(websocket.StatusNormalClosure, "bye")
	select {
	case <-c.Done():
		if websocket.CloseStatus(c.Err()) != websocket.StatusNormalClosure {
			t.Errorf("Err = %v", c.Err())
		}
	case <-time.After(wait):
		t.Fatal("socket not ended after the client closed it")
	}
}

func TestRejectConnections(t *testing.T) {
	s := aritest.NewServer(t)
	s.RejectConnections(http.StatusServiceUnavailable)
	for range 3 {
		_, res, err := dial(t, s, "app=earpiece")
		if err == nil || res == nil || res.StatusCode != 503 {
			t.Fatalf("dial while rejecting: %v, %v", res, err)
		}
	}
	if s.Connections() != 0 {
		t.Errorf("connections %d", s.Connections())
	}
	var attempts int
	for _, r := range s.Requests() {
		if r.Method == "GET" && r.Path == "/events" && r.Query.Get("app") == "earpiece" {
			attempts++
		}
	}
	if attempts != 3 {
		t.Errorf("%d upgrade attempts recorded, want 3", attempts)
	}

	s.RejectConnections(0)
	mustDial(t, s, "app=earpiece")
	if s.Connections() != 1 {
		t.Errorf("connections %d", s.Connections())
	}
}

func TestStopPongs(t *testing.T) {
	s := aritest.NewServer(t)
	ws, _ := mustDial(t, s, "app=earpiece")
	// coder/websocket reads pongs only while reading: read in the background.
	events := make(chan []byte, 10)
	go func() {
		defer close(events)
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			events <- b
		}
	}()
	ping := func(d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return ws.Ping(ctx)
	}

	if err := ping(wait); err != nil {
		t.Fatalf("ping before StopPongs: %v", err)
	}
	s.StopPongs(true)
	if err := ping(100 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ping while pongs stopped: %v, want deadline exceeded", err)
	}
	// Emit still works: the peer is only deaf.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := s.Emit(ctx, aritest.StasisStartJSON("earpiece", "c1")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-events:
	case <-ctx.Done():
		t.Fatal("no event while pongs stopped")
	}

	s.StopPongs(false)
	if err := ping(wait); err != nil {
		t.Errorf("ping after StopPongs(false): %v", err)
	}
	ws.CloseNow()
	<-events
}

// Sockets accepted while pongs are stopped are deaf too, and the Server still
// closes cleanly (goleak in TestMain checks the goroutines).
func TestStopPongsNewSocketAndClose(t *testing.T) {
	s := aritest.NewServer(t)
	s.StopPongs(true)
	ws, _ := mustDial(t, s, "app=earpiece")
	go ws.Read(context.Background()) // ends when the Server closes
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := ws.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ping: %v", err)
	}
}

func TestMisuseFailsTest(t *testing.T) {
	for _, tt := range []struct {
		name   string
		script func(s *aritest.Server)
	}{
		{"no leading slash", func(s *aritest.Server) { s.Respond("GET", "channels", 200, nil) }},
		{"events", func(s *aritest.Server) { s.Respond("GET", "/events", 200, nil) }},
		{"no answers", func(s *aritest.Server) { s.RespondSeq("GET", "/channels") }},
		{"no status", func(s *aritest.Server) { s.RespondSeq("GET", "/channels", aritest.Answer{}) }},
		{"unencodable", func(s *aritest.Server) { s.Respond("GET", "/channels", 200, func() {}) }},
		{"conflict", func(s *aritest.Server) {
			s.Respond("GET", "/channels/{id}", 200, nil)
			s.Respond("GET", "/channels/{name}", 200, nil)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &fatalRecorder{TB: t}
			s := aritest.NewServer(rec)
			done := make(chan struct{})
			go func() { // Fatalf ends this goroutine, as it ends a test's
				defer close(done)
				tt.script(s)
			}()
			<-done
			if !rec.fatal {
				t.Error("misuse did not fail the test")
			}
		})
	}
}

// fatalRecorder records Fatalf and ends the calling goroutine, as testing.T
// does.
type fatalRecorder struct {
	testing.TB
	fatal bool // written before the goroutine ends; read after
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.fatal = true
	r.TB.Logf("recorded Fatalf: "+format, args...)
	runtime.Goexit()
}

func TestEventHelpers(t *testing.T) {
	ts := aritest.Timestamp(time.Date(2026, 11, 21, 22, 33, 19, 123456789, time.UTC))
	if ts != "2026-11-21T22:33:19.123+0000" {
		t.Errorf("Timestamp = %q", ts)
	}
	var ev map[string]any
	if err := json.Unmarshal(aritest.StasisStartJSON("app", "c1"), &ev); err != nil {
		t.Fatal(err)
	}
	if args, ok := ev["args"].([]any); !ok || len(args) != 0 {
		t.Errorf("args = %#v, want []", ev["args"])
	}
	ch := ev["channel"].(map[string]any)
	for _, k := range []string{"id", "protocol_id", "name", "state", "caller", "connected", "accountcode", "dialplan", "creationtime", "language"} {
		if _, ok := ch[k]; !ok {
			t.Errorf("channel lacks required field %q", k)
		}
	}
	if err := json.Unmarshal(aritest.Event("ChannelDestroyed", "app", map[string]any{"cause": 16}), &ev); err != nil {
		t.Fatal(err)
	}
	if ev["type"] != "ChannelDestroyed" || ev["cause"] != 16.0 || !asteriskTime.MatchString(ev["timestamp"].(string)) {
		t.Errorf("Event = %v", ev)
	}
}
