package aritest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/coder/websocket"
)

// Conn is one accepted events WebSocket.
type Conn struct {
	s            *Server
	app          string
	subscribeAll bool
	query        url.Values

	// The Conn is registered just before the HTTP connection is hijacked,
	// which is when the 101 answer goes out, so the client cannot see the
	// upgrade before Connections, AwaitConnection and Emit see the Conn. ws
	// is set a moment later; ready is closed then (ws stays nil if the
	// upgrade failed after all).
	ready chan struct{}
	ws    *websocket.Conn

	done chan struct{} // closed when the socket has ended
	err  error         // why it ended; written before done is closed
}

// socket waits until the upgrade has finished and returns the WebSocket, or
// nil if the upgrade failed.
func (c *Conn) socket(ctx context.Context) (*websocket.Conn, error) {
	select {
	case <-c.ready:
		return c.ws, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// App returns the app query parameter the client connected with (Asterisk
// accepts a comma-separated list; it is returned as sent).
func (c *Conn) App() string { return c.app }

// SubscribeAll reports whether the client connected with subscribeAll=true.
func (c *Conn) SubscribeAll() bool { return c.subscribeAll }

// Query returns a copy of the upgrade request's query parameters.
func (c *Conn) Query() url.Values {
	q := make(url.Values, len(c.query))
	for k, v := range c.query {
		q[k] = append([]string(nil), v...)
	}
	return q
}

// Done is closed when the socket has ended, by either side.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the socket ended (for a client's close frame, use
// websocket.CloseStatus on it), or nil while it is open.
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Emit JSON-encodes event (see Answer.Body for []byte and json.RawMessage) and
// sends it as one text message, as Asterisk sends each event.
func (c *Conn) Emit(ctx context.Context, event any) error {
	b, err := encode(event)
	if err != nil {
		return fmt.Errorf("aritest: encoding event %T: %w", event, err)
	}
	return c.EmitRaw(ctx, b)
}

// EmitRaw sends b as one text message, unchecked, so malformed events can be
// sent. If ctx ends before the write completes the socket is closed (that is
// how coder/websocket handles write timeouts).
func (c *Conn) EmitRaw(ctx context.Context, b []byte) error {
	ws, err := c.socket(ctx)
	if err == nil && ws == nil {
		err = errUpgradeFailed
	}
	if err == nil {
		err = ws.Write(ctx, websocket.MessageText, b)
	}
	if err != nil {
		return fmt.Errorf("aritest: emitting to app %q: %w", c.app, err)
	}
	return nil
}

// Cut closes the TCP connection without a close frame, as when the network or
// Asterisk fails, and waits until the socket has ended.
func (c *Conn) Cut() {
	if ws, _ := c.socket(context.Background()); ws != nil {
		_ = ws.CloseNow()
	}
	<-c.done
}

// Close closes the socket with a close frame carrying code and reason and
// waits (up to coder/websocket's 5 s) for the client's close frame, then until
// the socket has ended. While pongs are stopped the client's answer is not
// read, so Close waits out that limit.
func (c *Conn) Close(code websocket.StatusCode, reason string) {
	if ws, _ := c.socket(context.Background()); ws != nil {
		_ = ws.Close(code, reason)
	}
	<-c.done
}

// readLoop reads and discards what the client sends (an ARI client sends
// nothing but control frames). coder/websocket answers pings and close frames
// only while a read is in progress, so this loop is what makes the server
// answer pings.
func (c *Conn) readLoop() {
	var err error
	for {
		if _, _, err = c.ws.Read(c.s.ctx); err != nil {
			break
		}
	}
	_ = c.ws.CloseNow()
	c.end(err)
}

// end unregisters c once its socket has ended (or its upgrade failed).
func (c *Conn) end(err error) {
	s := c.s
	s.mu.Lock()
	for i, o := range s.open {
		if o == c {
			s.open = append(s.open[:i], s.open[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
	c.err = err
	close(c.done)
	s.wg.Done()
}

var errUpgradeFailed = errors.New("aritest: the WebSocket upgrade failed")

// serveEvents upgrades an authorised GET /ari/events.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	reject, closed := s.reject, s.closed
	s.mu.Unlock()
	if closed {
		writeJSON(w, http.StatusServiceUnavailable, Message("aritest: server closing"))
		return
	}
	if reject != 0 {
		writeJSON(w, reject, Message(fmt.Sprintf("aritest: connections rejected with %d", reject)))
		return
	}
	q := r.URL.Query()
	app := q.Get("app")
	if app == "" {
		writeJSON(w, http.StatusBadRequest, Message("Missing param 'app'"))
		return
	}
	all, _ := strconv.ParseBool(q.Get("subscribeAll"))

	c := &Conn{s: s, app: app, subscribeAll: all, query: q, ready: make(chan struct{}), done: make(chan struct{})}
	hw := &hijackWriter{ResponseWriter: w, c: c}
	ws, err := websocket.Accept(hw, r, nil)
	if err != nil {
		// Accept has answered the client, unless the failure came after
		// the hijack, which registered c.
		if hw.registered {
			close(c.ready)
			c.end(err)
		}
		return
	}
	c.ws = ws
	close(c.ready)
	go c.readLoop()
}

// register records c as accepted and open, unless the Server is closing.
func (s *Server) register(c *Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.accepted = append(s.accepted, c)
	s.open = append(s.open, c)
	s.wg.Add(1) // done in Conn.end
	s.notifyLocked()
	return true
}

// AwaitConnection returns the next accepted events WebSocket that no earlier
// AwaitConnection returned (sockets are handed out in the order accepted,
// even if already ended), waiting until ctx ends.
func (s *Server) AwaitConnection(ctx context.Context) (*Conn, error) {
	for {
		s.mu.Lock()
		if s.nextConn < len(s.accepted) {
			c := s.accepted[s.nextConn]
			s.nextConn++
			s.mu.Unlock()
			return c, nil
		}
		changed := s.changed
		s.mu.Unlock()

		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("aritest: awaiting events connection: %w", ctx.Err())
		}
	}
}

// Connections returns how many events WebSockets were accepted so far.
// Refused upgrades are not counted; find them in Requests (Path "/events").
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.accepted)
}

func (s *Server) openConns() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Conn(nil), s.open...)
}

// Emit sends event (see Conn.Emit) to every open events WebSocket. It returns
// ErrNoSocket if none is open, so an event cannot vanish unnoticed.
func (s *Server) Emit(ctx context.Context, event any) error {
	b, err := encode(event)
	if err != nil {
		return fmt.Errorf("aritest: encoding event %T: %w", event, err)
	}
	return s.EmitRaw(ctx, b)
}

// EmitRaw sends b unchecked to every open events WebSocket (see Emit).
func (s *Server) EmitRaw(ctx context.Context, b []byte) error {
	open := s.openConns()
	if len(open) == 0 {
		return ErrNoSocket
	}
	var errs []error
	for _, c := range open {
		errs = append(errs, c.EmitRaw(ctx, b))
	}
	return errors.Join(errs...)
}

// CutSocket cuts every open events WebSocket (see Conn.Cut).
func (s *Server) CutSocket() {
	for _, c := range s.openConns() {
		c.Cut()
	}
}

// CloseSocket closes every open events WebSocket with a close frame (see
// Conn.Close).
func (s *Server) CloseSocket(code websocket.StatusCode, reason string) {
	for _, c := range s.openConns() {
		c.Close(code, reason)
	}
}

// RejectConnections makes events upgrades fail with status (e.g. 503) and a
// JSON message, until called with 0. Open sockets are not touched.
func (s *Server) RejectConnections(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject = status
}

// StopPongs(true) makes every events WebSocket, open or accepted later, look
// like a dead peer whose TCP connection stays up: the server stops reading
// what the clients send, so their pings (and close frames) go unanswered,
// while Emit still writes. Like a dead peer, the server then does not notice
// the client closing the socket either (Conn.Done stays open). StopPongs(false)
// resumes reading: what was held is read and answered, and a close by the
// client is seen.
//
// How: coder/websocket answers a ping only from inside a read. Cancelling a
// read would close the socket, so instead each socket's net.Conn is wrapped at
// hijack time; its Read holds any bytes it received until the gate opens.
func (s *Server) StopPongs(stop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stop == s.pongsOff {
		return
	}
	s.pongsOff = stop
	if stop {
		s.readGate = make(chan struct{})
	} else {
		close(s.readGate)
	}
}

func (s *Server) gate() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readGate
}

// hijackWriter registers the Conn when coder/websocket hijacks the HTTP
// connection (net/http sends the buffered 101 answer during the hijack), and
// hands the library a gated net.Conn.
type hijackWriter struct {
	http.ResponseWriter
	c          *Conn
	registered bool
}

func (h *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("aritest: response writer cannot be hijacked")
	}
	if !h.c.s.register(h.c) {
		return nil, nil, errors.New("aritest: server closing")
	}
	h.registered = true
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	// Accept re-points brw.Reader at the returned conn after draining what
	// was buffered, so all later reads pass through the gate.
	return &gatedConn{Conn: nc, s: h.c.s, closed: make(chan struct{})}, brw, nil
}

// gatedConn delivers what it reads only while the Server's read gate is open.
// Bytes already read are held, not lost, while it is shut.
type gatedConn struct {
	net.Conn
	s      *Server
	once   sync.Once
	closed chan struct{}
}

func (c *gatedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		select {
		case <-c.s.gate():
		case <-c.closed:
			return 0, net.ErrClosed
		}
	}
	return n, err
}

func (c *gatedConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}
