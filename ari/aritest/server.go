// Package aritest is a fault-injection fake of the Asterisk REST Interface
// (ARI) for tests: REST under /ari and the events WebSocket at
// /ari/events?app=NAME.
//
// It exists for what a real Asterisk cannot be made to do on demand: answer
// 5xx, hang, answer slowly, cut the event socket at a chosen moment, refuse
// upgrades, stop answering pings, or send malformed events. It does not
// imitate Asterisk's call or media behaviour; tests that need that run against
// a real Asterisk.
//
// Nothing passes by accident: every REST answer is scripted by the test
// (Handle, Respond, RespondSeq), and a request to a route the test did not
// script fails the test and is answered 501. Only the events WebSocket is
// built in.
//
// The model is tailscale's testcontrol: all state in memory, hooks as exported
// func fields, Await helpers that take a context.
//
// This package must not import github.com/earpiece/earpiece/ari: the ari
// package's own tests import it.
package aritest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"sync"
	"testing"
	"time"
)

// Default credentials checked by a new Server.
const (
	DefaultUser     = "ari"
	DefaultPassword = "secret"
)

// basePath is where ARI lives on an Asterisk HTTP server.
const basePath = "/ari"

// eventsPath is the events WebSocket, below basePath.
const eventsPath = "/events"

// ErrNoSocket is returned by Emit and EmitRaw when no events WebSocket is open.
var ErrNoSocket = errors.New("aritest: no events WebSocket is open")

// Request is the record of one request the Server received.
type Request struct {
	Method string
	// Path is the URL path below the ARI base (/ari), e.g. "/channels/c1" or
	// "/events"; a request outside /ari keeps its full path.
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
	At     time.Time
}

// Answer is one scripted REST answer.
type Answer struct {
	// Status is the HTTP status to answer with. Required unless Hang is set.
	Status int
	// Body is the answer's body: nil means none; []byte and json.RawMessage
	// are sent verbatim (so malformed JSON can be sent); anything else is
	// JSON-encoded. Asterisk's errors are {"message": "..."}; see Message.
	Body any
	// Delay is waited before answering. If the client gives up first, nothing
	// is answered.
	Delay time.Duration
	// Hang means never answer: the handler waits until the client gives up
	// (the request's context ends) or the Server closes, then drops the
	// connection without an HTTP response.
	Hang bool
}

// Message returns the body Asterisk uses for errors: {"message": text}.
func Message(text string) map[string]string {
	return map[string]string{"message": text}
}

// Server is a fake ARI server. Create it with NewServer; the hook fields are
// optional and should be set before the client under test starts.
type Server struct {
	// OnRequest, if set, is called for every request (REST or events upgrade,
	// authorised or not) after it is recorded and before it is answered. It
	// runs on the server's goroutine for that request.
	OnRequest func(r *http.Request)

	t   testing.TB
	hs  *httptest.Server
	mux *http.ServeMux // scripted routes; safe for concurrent use

	// ctx ends when the Server closes: hanging and delayed answers and the
	// sockets' read loops watch it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // socket read loops

	mu       sync.Mutex // guards everything below
	user     string
	password string
	routes   map[string]http.HandlerFunc // "POST /ari/channels/{id}" -> current script
	reqs     []Request
	reqTaken []bool // reqTaken[i]: reqs[i] was handed out by AwaitRequest
	accepted []*Conn
	nextConn int     // index in accepted of the next socket AwaitConnection hands out
	open     []*Conn // sockets not yet ended
	reject   int     // status for upgrades, 0 to accept them
	// readGate is closed while the sockets are read (and so pings answered);
	// StopPongs(true) swaps in an open channel.
	readGate chan struct{}
	pongsOff bool
	changed  chan struct{} // closed and replaced whenever reqs or accepted grow
	closed   bool
}

// NewServer starts a Server on a loopback port. It is closed by t.Cleanup: the
// sockets are cut, hanging answers dropped, and all its goroutines ended.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		t:        t,
		mux:      http.NewServeMux(),
		user:     DefaultUser,
		password: DefaultPassword,
		routes:   make(map[string]http.HandlerFunc),
		readGate: make(chan struct{}),
		changed:  make(chan struct{}),
	}
	close(s.readGate)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.hs = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	t.Cleanup(s.close)
	return s
}

// close ends everything the Server started. Order: stop new sockets, end the
// context (hanging answers and read loops return), cut the open sockets,
// close the HTTP server (it waits for outstanding requests, which the
// cancelled context has released), then wait for the read loops.
func (s *Server) close() {
	s.mu.Lock()
	s.closed = true
	open := append([]*Conn(nil), s.open...)
	s.mu.Unlock()

	s.cancel()
	for _, c := range open {
		c.Cut()
	}
	s.hs.Close()
	s.wg.Wait()
}

// URL returns the ARI base URL, like http://127.0.0.1:PORT/ari.
func (s *Server) URL() string { return s.hs.URL + basePath }

// User returns the user name the Server accepts.
func (s *Server) User() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.user
}

// Password returns the password the Server accepts.
func (s *Server) Password() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.password
}

// SetCredentials changes the credentials the Server accepts (default
// DefaultUser and DefaultPassword).
func (s *Server) SetCredentials(user, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user, s.password = user, password
}

// Handle scripts the answer to method and pattern. The pattern is relative to
// the ARI base and may hold {name} segments read with r.PathValue, as in
// net/http.ServeMux: Handle("POST", "/channels/{id}/snoop/{snoopId}", h).
// Scripting the same method and pattern again replaces the earlier script.
// The events WebSocket is built in and cannot be scripted.
func (s *Server) Handle(method, pattern string, h http.HandlerFunc) {
	s.t.Helper()
	if method == "" || strings.ContainsAny(method, " /") || !strings.HasPrefix(pattern, "/") || h == nil {
		s.t.Fatalf("aritest: Handle(%q, %q): want a method, a pattern starting with / and a handler", method, pattern)
		return
	}
	if pattern == eventsPath {
		s.t.Fatalf("aritest: Handle(%q, %q): the events WebSocket is built in; use RejectConnections", method, pattern)
		return
	}
	key := method + " " + basePath + pattern

	s.mu.Lock()
	_, known := s.routes[key]
	s.routes[key] = h
	s.mu.Unlock()
	if known {
		return
	}

	defer func() {
		if r := recover(); r != nil { // ServeMux panics on invalid or conflicting patterns
			s.t.Fatalf("aritest: Handle(%q, %q): %v", method, pattern, r)
		}
	}()
	s.mux.HandleFunc(key, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		h := s.routes[key]
		s.mu.Unlock()
		h(w, r)
	})
}

// Respond scripts a fixed answer: status with body (see Answer.Body).
func (s *Server) Respond(method, pattern string, status int, body any) {
	s.t.Helper()
	s.RespondSeq(method, pattern, Answer{Status: status, Body: body})
}

// RespondSeq scripts answers given in order to successive requests; the last
// one repeats. For example 500, 500, 200 to test a retry.
func (s *Server) RespondSeq(method, pattern string, answers ...Answer) {
	s.t.Helper()
	if len(answers) == 0 {
		s.t.Fatalf("aritest: RespondSeq(%q, %q): no answers", method, pattern)
		return
	}
	for i, a := range answers {
		if !a.Hang && (a.Status < 100 || a.Status > 999) {
			s.t.Fatalf("aritest: RespondSeq(%q, %q): answer %d has status %d", method, pattern, i, a.Status)
			return
		}
	}
	bodies := make([][]byte, len(answers))
	for i, a := range answers {
		b, err := encode(a.Body)
		if err != nil {
			s.t.Fatalf("aritest: RespondSeq(%q, %q): answer %d: %v", method, pattern, i, err)
			return
		}
		bodies[i] = b
	}
	answers = append([]Answer(nil), answers...)
	var (
		mu   sync.Mutex
		next int
	)
	s.Handle(method, pattern, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		a, body := answers[next], bodies[next]
		if next < len(answers)-1 {
			next++
		}
		mu.Unlock()
		s.answer(w, r, a, body)
	})
}

// answer writes a with its encoded body, after its delay, or drops the
// connection for Hang.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, a Answer, body []byte) {
	if a.Hang {
		select {
		case <-r.Context().Done():
			return // the client is gone
		case <-s.ctx.Done():
			panic(http.ErrAbortHandler) // closing: drop the connection, answer nothing
		}
	}
	if a.Delay > 0 {
		t := time.NewTimer(a.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			panic(http.ErrAbortHandler)
		}
	}
	writeBody(w, a.Status, body)
}

// Requests returns a copy of the record of every request received so far,
// oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// AwaitRequest returns the oldest recorded request with method (any method if
// empty) whose Path starts with pathPrefix (relative to the ARI base, like
// "/channels/c1/snoop") and that no earlier AwaitRequest returned; it waits
// for one until ctx ends. A request is recorded when it arrives, before it is
// answered, so a hanging request can be awaited.
func (s *Server) AwaitRequest(ctx context.Context, method, pathPrefix string) (Request, error) {
	for {
		s.mu.Lock()
		for i, r := range s.reqs {
			if !s.reqTaken[i] && (method == "" || r.Method == method) && strings.HasPrefix(r.Path, pathPrefix) {
				s.reqTaken[i] = true
				s.mu.Unlock()
				return r, nil
			}
		}
		changed := s.changed
		s.mu.Unlock()

		select {
		case <-changed:
		case <-ctx.Done():
			return Request{}, fmt.Errorf("aritest: awaiting request %s %s: %w", method, pathPrefix, ctx.Err())
		}
	}
}

// notifyLocked wakes the Await helpers. s.mu must be held.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the client went away while sending
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	req := Request{
		Method: r.Method,
		Path:   r.URL.Path,
		Query:  r.URL.Query(),
		Header: r.Header.Clone(),
		Body:   body,
		At:     time.Now(),
	}
	under := r.URL.Path == basePath || strings.HasPrefix(r.URL.Path, basePath+"/")
	if under {
		req.Path = strings.TrimPrefix(r.URL.Path, basePath)
		if req.Path == "" {
			req.Path = "/"
		}
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	s.reqTaken = append(s.reqTaken, false)
	s.notifyLocked()
	s.mu.Unlock()

	if s.OnRequest != nil {
		s.OnRequest(r)
	}

	if !s.authorized(r) {
		// What Asterisk's res_ari answers without valid credentials.
		w.Header().Set("WWW-Authenticate", `Basic realm="Asterisk REST Interface"`)
		writeJSON(w, http.StatusUnauthorized, Message("Authentication required"))
		return
	}

	if under && req.Path == eventsPath && r.Method == http.MethodGet {
		s.serveEvents(w, r)
		return
	}

	// A path ServeMux would clean and redirect (empty ID segments like
	// /channels//snoop) is a client bug, not a match.
	_, pattern := s.mux.Handler(r)
	if !under || pattern == "" || r.URL.Path != cleanPath(r.URL.Path) {
		s.t.Errorf("aritest: unexpected %s %s", r.Method, r.URL.RequestURI())
		writeJSON(w, http.StatusNotImplemented, Message(fmt.Sprintf("aritest: no answer scripted for %s %s", r.Method, r.URL.Path)))
		return
	}
	s.mux.ServeHTTP(w, r)
}

// authorized reports whether r carries the Server's credentials, by Basic
// auth or, as Asterisk also accepts, an api_key=user:password query parameter.
func (s *Server) authorized(r *http.Request) bool {
	s.mu.Lock()
	want := s.user + ":" + s.password
	s.mu.Unlock()
	if u, p, ok := r.BasicAuth(); ok {
		return u+":"+p == want
	}
	if k := r.URL.Query().Get("api_key"); k != "" {
		return k == want
	}
	return false
}

// cleanPath is path.Clean keeping a trailing slash, as ServeMux does.
func cleanPath(p string) string {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// encode turns a body or event into bytes: nil into nil, []byte and
// json.RawMessage verbatim, anything else JSON-encoded.
func encode(v any) ([]byte, error) {
	switch b := v.(type) {
	case nil:
		return nil, nil
	case []byte:
		return b, nil
	case json.RawMessage:
		return b, nil
	}
	return json.Marshal(v)
}

// writeBody answers status with body, a JSON document, or with no body if nil.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	if body == nil {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeJSON answers status with v JSON-encoded; v must encode.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("aritest: encoding %T: %v", v, err))
	}
	writeBody(w, status, b)
}
