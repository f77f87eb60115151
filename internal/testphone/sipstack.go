package testphone

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// sipStack is a sipgo user agent serving one UDP socket on 127.0.0.1, with a shutdown that leaves
// nothing of sipgo running whatever arrives during or after it. sipgo does not ensure that by
// itself (v1.7.2):
//
//   - Its reader hands every datagram to a goroutine of its own (TransactionLayer.handleMessage),
//     outside any handler we register, which looks up the connection to answer on in the
//     transport's pool only when it runs; a write that finds no pooled connection makes sipgo
//     bind a fresh socket and start a reader goroutine for it (TransportUDP.createConnection).
//     So do the ACKs sipgo repeats on its own for a retransmitted 2xx, and a request of ours
//     that names no local address.
//   - Closing the user agent clears that pool but leaves the reader running, and closing the
//     socket makes the reader drop its pool entries on the way out; neither refuses later work.
//     A message that arrives around then, or one read just before and still being handled,
//     makes sipgo bind a socket whose reader nobody will ever close.
//
// So the stack owns both ends: the socket sipgo reads (sipSocket: delivers nothing once the
// stack goes deaf) and every request sipgo sends (requester: always from the listening socket,
// refused once sealed); every handler is tracked (handle); every goroutine that serves the
// socket carries a pprof label (owner), inherited by all the goroutines sipgo starts on its
// behalf, so shutdown can wait for the last of them before it lets the reader go and clears
// the pool, and can verify that none is left.
type sipStack struct {
	log    zerolog.Logger
	conn   *net.UDPConn // the socket; ours to close (sipgo never closes a listener)
	sock   *sipSocket   // the same socket as sipgo reads it
	addr   netip.AddrPort
	laddr  sip.Addr
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client

	owner  string        // value of the ownerLabel pprof label on every goroutine serving the socket
	served chan struct{} // closed when ServeUDP has returned

	work   tracker     // handlers in progress (and, for a Phone, its Calls)
	sealed atomic.Bool // sipgo may send nothing any more

	shutdownOnce sync.Once
	shutdownErr  error
}

const (
	// ownerLabel is the pprof label that marks the goroutines serving a stack's socket.
	ownerLabel = "testphone-sip"
	// drainTimeout bounds each wait of shutdown for sipgo's goroutines: they only run to their
	// end by then (no I/O waits, transactions terminated), so this is reached only by a bug.
	drainTimeout = 5 * time.Second
)

var stackSeq atomic.Uint64

// newSIPStack binds a UDP socket on 127.0.0.1 and builds the user agent, server and client on
// it. Register handlers (wrapped in handle) on srv, then start.
func newSIPStack(ctx context.Context, log zerolog.Logger, name string) (*sipStack, error) {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bind sip: %w", err)
	}
	conn := pc.(*net.UDPConn)
	addr := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	host := addr.Addr().String()
	s := &sipStack{
		log:    log,
		conn:   conn,
		sock:   &sipSocket{UDPConn: conn, ready: make(chan struct{})},
		addr:   addr,
		laddr:  sip.Addr{IP: net.IP(addr.Addr().AsSlice()), Port: int(addr.Port()), Hostname: host},
		owner:  fmt.Sprintf("%s#%d", addr, stackSeq.Add(1)),
		served: make(chan struct{}),
	}
	sl := newSlog(log)
	s.ua, err = sipgo.NewUA(
		sipgo.WithUserAgent(name),
		sipgo.WithUserAgentHostname(host),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(sl)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(sl)),
	)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if s.srv, err = sipgo.NewServer(s.ua, sipgo.WithServerLogger(sl)); err != nil {
		s.ua.Close()
		conn.Close()
		return nil, err
	}
	// Requests leave through the listening socket, so Via, Contact and the source port agree.
	s.client, err = sipgo.NewClient(s.ua,
		sipgo.WithClientLogger(sl),
		sipgo.WithClientHostname(host),
		sipgo.WithClientPort(int(addr.Port())),
		sipgo.WithClientConnectionAddr(addr.String()),
	)
	if err != nil {
		s.ua.Close()
		conn.Close()
		return nil, err
	}
	s.client.TxRequester = requester{s}
	// sipgo's own 405 for a method without handler would bypass handle.
	s.srv.OnNoRoute(s.handle(s.methodNotAllowed))
	return s, nil
}

// start serves the socket and returns once sipgo reads it: from then on the listener is in
// sipgo's pool, and requests go out through it (before, sipgo would bind the address again).
func (s *sipStack) start(ctx context.Context) error {
	go func() {
		defer close(s.served)
		labelled(context.Background(), s.owner, func() {
			if err := s.srv.ServeUDP(s.sock); err != nil {
				s.log.Debug().Err(err).Msg("sip serve ended")
			}
		})
	}()
	select {
	case <-s.sock.ready:
		return nil
	case <-s.served:
		return errors.New("sip listener stopped")
	case <-ctx.Done():
		return fmt.Errorf("waiting for sip listener: %w", ctx.Err())
	}
}

// handle wraps a request handler so that shutdown waits for it. Once the stack stops taking
// work, a request is answered 503 and its transaction ended at once (no retransmission timer
// outlives the stack); an ACK still reaches h, as it may complete a 2xx that a handler in
// progress waits for.
func (s *sipStack) handle(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if !s.work.enter() {
			if req.IsAck() {
				h(req, tx)
				return
			}
			respond(tx, req, sip.StatusServiceUnavailable, "Service Unavailable", nil)
			tx.Terminate()
			return
		}
		defer s.work.exit()
		h(req, tx)
	}
}

func (s *sipStack) methodNotAllowed(req *sip.Request, tx sip.ServerTransaction) {
	methods := s.srv.RegisteredMethods()
	slices.Sort(methods)
	respond(tx, req, sip.StatusMethodNotAllowed, "Method Not Allowed", nil,
		sip.NewHeader("Allow", strings.Join(methods, ", ")))
}

// close stops taking work, waits up to timeout for the handlers in progress, and shuts down.
func (s *sipStack) close(timeout time.Duration) error {
	select {
	case <-s.work.stop():
	case <-time.After(timeout):
	}
	return s.shutdown()
}

// shutdown stops the stack for good. Call it once the handlers it must wait for have returned
// (work.stop); it ends those that still run by ending their transactions.
//
//  1. Deaf: the socket delivers nothing more to sipgo.
//  2. Sealed: sipgo sends no request any more (sipgo's own ACK repetitions included).
//  3. Transactions terminated: nothing waits for a response or a timer any more.
//  4. Drain: wait until the reader is parked in sipSocket.ReadFrom (it hands sipgo nothing
//     more) and is the only goroutine serving the socket left; while it is parked, the
//     listener stays in sipgo's pool, so the goroutines still finishing a message find it
//     there and bind nothing.
//  5. Close the socket; the reader ends and drops the listener from the pool.
//  6. Verify: no goroutine serving the socket and no connection in sipgo's pool is left; then
//     close the transport layer.
func (s *sipStack) shutdown() error {
	s.shutdownOnce.Do(func() { s.shutdownErr = s.doShutdown() })
	return s.shutdownErr
}

func (s *sipStack) doShutdown() error {
	parked := s.sock.deafen()
	s.sealed.Store(true)
	txl := s.ua.TransactionLayer()
	txl.Close()

	var errs []error
	select {
	case <-parked:
	case <-s.served:
	case <-time.After(drainTimeout):
		errs = append(errs, errors.New("testphone: sip reader did not come back for its next read"))
	}
	if err := s.awaitOwned(true); err != nil {
		errs = append(errs, err)
	}
	// A handler that began just before the drain may have opened a transaction.
	txl.Close()
	if err := s.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		errs = append(errs, err)
	}
	select {
	case <-s.served:
	case <-time.After(drainTimeout):
		errs = append(errs, errors.New("testphone: sip reader still running after its socket closed"))
	}
	if err := s.awaitOwned(false); err != nil {
		errs = append(errs, err)
	}
	if n := s.ua.TransportLayer().Pool("udp").Size(); n != 0 {
		errs = append(errs, fmt.Errorf("testphone: sipgo still holds %d udp connection(s) after close", n))
	}
	if err := s.ua.TransportLayer().Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// awaitOwned waits until no goroutine carrying the stack's label is left, other than the socket
// reader parked in sipSocket.ReadFrom when keepReader is set.
func (s *sipStack) awaitOwned(keepReader bool) error {
	return awaitOwned(s.owner, keepReader, drainTimeout)
}

// awaitOwned waits until no goroutine carrying owner's label is left (see ownedGoroutines). A
// goroutine's end is no event one can wait on (even after it signalled its last, it is still
// exiting), so this polls the goroutine profile with a short backoff, up to timeout.
func awaitOwned(owner string, keepReader bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	pause := 50 * time.Microsecond
	for {
		n, stacks := ownedGoroutines(owner, keepReader)
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testphone: %d sipgo goroutine(s) of %s still running %v into close:\n%s",
				n, owner, timeout, stacks)
		}
		t := time.NewTimer(pause)
		<-t.C
		pause = min(2*pause, 5*time.Millisecond)
	}
}

// labelled runs f with the ownerLabel pprof label set to owner; every goroutine f starts, and
// every one those start, carries it too.
func labelled(ctx context.Context, owner string, f func()) {
	pprof.Do(ctx, pprof.Labels(ownerLabel, owner), func(context.Context) { f() })
}

// readerFrame is how the socket reader, parked in our ReadFrom, shows in a goroutine profile.
const readerFrame = "testphone.(*sipSocket).ReadFrom+"

// ownedGoroutines counts the goroutines whose pprof labels name owner (see sipStack), leaving out
// the socket reader when keepReader is set, and returns their stacks for an error message.
func ownedGoroutines(owner string, keepReader bool) (int, string) {
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		return 1, err.Error()
	}
	return parseOwned(buf.String(), owner, keepReader)
}

// parseOwned reads a goroutine profile in its debug=1 text form: a "goroutine profile: total N"
// line, then one record per distinct stack and label set, "<count> @ <pcs>", "# labels: {...}"
// when labelled, then "#\t<pc>\t<func>+<off>\t<file>:<line>" frames, and a blank line.
func parseOwned(profile, owner string, keepReader bool) (int, string) {
	want := fmt.Sprintf("%q:%q", ownerLabel, owner)
	n := 0
	var stacks strings.Builder
	var rec []string
	flush := func() {
		defer func() { rec = rec[:0] }()
		if len(rec) < 2 || !strings.HasPrefix(rec[1], "# labels: ") || !strings.Contains(rec[1], want) {
			return
		}
		body := strings.Join(rec, "\n")
		if keepReader && strings.Contains(body, readerFrame) {
			return
		}
		count, err := strconv.Atoi(strings.Fields(rec[0])[0])
		if err != nil {
			count = 1
		}
		n += count
		stacks.WriteString(body)
		stacks.WriteString("\n\n")
	}
	for line := range strings.Lines(profile) {
		line = strings.TrimRight(line, "\n")
		switch f := strings.Fields(line); {
		case line == "":
			flush()
		case len(f) >= 2 && f[1] == "@": // a record's first line
			flush()
			rec = append(rec, line)
		case len(rec) > 0:
			rec = append(rec, line)
		}
	}
	flush()
	return n, stacks.String()
}

// sipSocket is the stack's socket as sipgo reads it.
type sipSocket struct {
	*net.UDPConn
	ready     chan struct{} // closed on sipgo's first read: the listener is in its pool by then
	readyOnce sync.Once

	mu      sync.Mutex
	reading bool          // the reader is in ReadFrom (not handing a datagram to sipgo)
	deaf    bool          // drop everything received instead of handing it to sipgo
	parked  chan struct{} // made by deafen; closed once the reader is in ReadFrom, deaf
}

// ReadFrom is the only read sipgo's reader makes. Once deaf, it keeps the reader here, dropping
// what arrives, until the socket closes.
func (s *sipSocket) ReadFrom(b []byte) (int, net.Addr, error) {
	s.readyOnce.Do(func() { close(s.ready) })
	s.mu.Lock()
	s.reading = true
	if s.deaf {
		s.parkLocked()
	}
	s.mu.Unlock()
	for {
		n, addr, err := s.UDPConn.ReadFrom(b)
		s.mu.Lock()
		if err != nil || !s.deaf {
			s.reading = false
			s.mu.Unlock()
			return n, addr, err
		}
		s.mu.Unlock()
	}
}

// deafen makes the socket drop what it receives. The channel it returns is closed once the
// reader is parked in ReadFrom: from then on it hands sipgo nothing more, and any goroutine it
// started on a datagram is already running.
func (s *sipSocket) deafen() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.deaf {
		s.deaf = true
		s.parked = make(chan struct{})
		if s.reading {
			s.parkLocked()
		}
	}
	return s.parked
}

func (s *sipSocket) parkLocked() {
	select {
	case <-s.parked:
	default:
		close(s.parked)
	}
}

// requester is the sipgo client's ClientTransactionRequester: every request it sends passes
// here, those of a dialog (BYE, CANCEL, ACK, re-INVITE) and sipgo's own ACK repetitions too.
type requester struct{ s *sipStack }

func (r requester) Request(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	s := r.s
	if s.sealed.Load() {
		return nil, ErrClosed
	}
	// From the listening socket, always: sipgo looks it up in its pool by this address. A
	// request without one (sipgo's dialog requests) would be looked up by destination, and
	// sent from a socket bound for it when that finds nothing.
	if req.Laddr.IP == nil {
		s.laddr.Copy(&req.Laddr)
	}
	if req.IsAck() { // sipgo's Client.WriteRequest: no transaction
		return nil, s.ua.TransportLayer().WriteMsg(req)
	}
	tx, err := s.ua.TransactionLayer().Request(ctx, req)
	if err != nil {
		return nil, err
	}
	return tx, nil
}

// tracker counts operations in progress so that a shutdown can wait for them, and refuses new
// ones once stopped. Unlike a sync.WaitGroup, entering may race with waiting.
type tracker struct {
	mu      sync.Mutex
	stopped bool
	n       int
	idle    chan struct{} // made by stop; closed once n is 0
}

// enter registers an operation; false once stopped. A true enter must be paired with exit.
func (t *tracker) enter() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	t.n++
	return true
}

func (t *tracker) exit() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 && t.stopped {
		close(t.idle)
	}
}

// stop refuses new operations and returns a channel that is closed once none is in progress.
func (t *tracker) stop() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped {
		t.stopped = true
		t.idle = make(chan struct{})
		if t.n == 0 {
			close(t.idle)
		}
	}
	return t.idle
}
