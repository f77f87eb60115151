package testphone

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/goleak"
)

// rawPeer is a bare UDP socket that speaks SIP by hand: it answers what a phone sends it (INVITE
// 200 with SDP, BYE and OPTIONS 200) and can send the phone anything, well-formed or not, as
// often as it likes, like a peer with no manners.
type rawPeer struct {
	t    testing.TB
	conn *net.UDPConn
	addr netip.AddrPort
	rtp  *net.UDPConn // where our SDP points the phone's RTP

	responses chan int // status codes of the responses received (those that fit)

	mu   sync.Mutex
	ok   []byte // the 200 OK we sent for the phone's INVITE, to repeat
	done chan struct{}
}

func newRawPeer(t testing.TB) *rawPeer {
	t.Helper()
	lo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	conn, err := net.ListenUDP("udp4", lo)
	if err != nil {
		t.Fatal(err)
	}
	rtp, err := net.ListenUDP("udp4", lo)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	p := &rawPeer{
		t: t, conn: conn, rtp: rtp, done: make(chan struct{}), responses: make(chan int, 64),
		addr: conn.LocalAddr().(*net.UDPAddr).AddrPort(),
	}
	go p.serve()
	return p
}

// close stops the peer and waits for its reader.
func (p *rawPeer) close() {
	p.conn.Close()
	p.rtp.Close()
	<-p.done
}

func (p *rawPeer) uri(user string) string { return fmt.Sprintf("sip:%s@%s", user, p.addr) }

// serve answers the phone's requests and drops everything else (responses, RTP that strays here).
func (p *rawPeer) serve() {
	defer close(p.done)
	buf := make([]byte, 65535)
	for {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		msg, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
		if err != nil {
			continue
		}
		if res, ok := msg.(*sip.Response); ok {
			select {
			case p.responses <- res.StatusCode:
			default:
			}
			continue
		}
		req := msg.(*sip.Request)
		if req.IsAck() {
			continue
		}
		var res *sip.Response
		switch req.Method {
		case sip.INVITE:
			sdp := buildSDP(7, 1, p.rtp.LocalAddr().(*net.UDPAddr).AddrPort(), defaultEventPT, "sendrecv")
			res = sip.NewSDPResponseFromRequest(req, sdp)
			res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "raw", Host: p.addr.Addr().String(), Port: int(p.addr.Port())}})
		default:
			res = sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
		}
		b := []byte(res.String())
		if req.IsInvite() {
			p.mu.Lock()
			p.ok = b
			p.mu.Unlock()
		}
		p.conn.WriteToUDPAddrPort(b, from)
	}
}

// send writes a datagram to the phone; errors (the phone's port closed) do not matter here.
func (p *rawPeer) send(to netip.AddrPort, msg string) {
	p.conn.WriteToUDPAddrPort([]byte(msg), to)
}

// request is a SIP request from the peer: branch and Call-ID name the transaction and dialog,
// so repeating them makes a retransmission.
func (p *rawPeer) request(method, to, branch, callID string, cseq int, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", method, to)
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=z9hG4bK%s\r\n", p.addr, branch)
	fmt.Fprintf(&b, "Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: <sip:raw@%s>;tag=raw%s\r\n", p.addr, callID)
	fmt.Fprintf(&b, "To: <%s>\r\n", to)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", callID)
	fmt.Fprintf(&b, "CSeq: %d %s\r\n", cseq, method)
	fmt.Fprintf(&b, "Contact: <sip:raw@%s>\r\n", p.addr)
	if body != "" {
		fmt.Fprintf(&b, "Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.String()
}

// barrage is one round of what a phone may receive from a peer: Asterisk's qualify OPTIONS
// (new, and repeated), an INVITE repeated without ever an ACK (its 200 waits), its CANCEL, BYEs
// for no dialog (new and repeated), an unknown method, a request without CSeq, the 200 OK the
// peer already sent for the phone's INVITE (repeated: sipgo answers it with an ACK of its own
// accord), and a 200 OK that matches no transaction.
func (p *rawPeer) barrage(to netip.AddrPort, round int) []string {
	uri := fmt.Sprintf("sip:bob@%s", to)
	offer := string(buildSDP(9, 1, p.rtp.LocalAddr().(*net.UDPAddr).AddrPort(), defaultEventPT, "sendrecv"))
	msgs := []string{
		p.request("OPTIONS", uri, fmt.Sprintf("opt%d", round), fmt.Sprintf("q%d", round), 1, ""),
		p.request("OPTIONS", uri, "optrepeat", "qrepeat", 1, ""),
		p.request("INVITE", uri, "inv", "inv-call", 1, offer),
		p.request("CANCEL", uri, "inv", "inv-call", 1, ""),
		p.request("BYE", uri, fmt.Sprintf("bye%d", round), fmt.Sprintf("gone%d", round), 2, ""),
		p.request("BYE", uri, "byerepeat", "gone", 2, ""),
		p.request("MESSAGE", uri, fmt.Sprintf("msg%d", round), "m", 1, ""),
		strings.Replace(p.request("OPTIONS", uri, fmt.Sprintf("bad%d", round), "bad", 1, ""), "CSeq: 1 OPTIONS\r\n", "", 1),
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP " + to.String() + ";branch=z9hG4bKstray\r\n" +
			"From: <" + uri + ">;tag=x\r\nTo: <sip:raw@" + p.addr.String() + ">;tag=y\r\n" +
			"Call-ID: stray\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
	}
	p.mu.Lock()
	if p.ok != nil {
		msgs = append(msgs, string(p.ok))
	}
	p.mu.Unlock()
	return msgs
}

// TestCloseUnderFire: whatever arrives while a phone closes and after it has closed leaves
// nothing of it running. The phone (bob) has a call from another phone (alice), who hangs up
// while bob closes, and a call of its own to a raw peer that pelts it with requests and
// responses throughout, and on after Close returned. goleak checks every round; Close itself
// verifies that no goroutine serving its socket and no sipgo connection is left.
func TestCloseUnderFire(t *testing.T) {
	rounds := 12
	if testing.Short() {
		rounds = 3
	}
	for round := range rounds {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			closeUnderFire(t, round)
		})
	}
}

func closeUnderFire(t *testing.T, round int) {
	ctx := timeout(t, 10*time.Second)
	a, err := New(ctx, Config{User: "alice", ToneHz: ToneCustomer, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := New(ctx, Config{User: "bob", ToneHz: ToneAgent, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	peer := newRawPeer(t)
	defer peer.close()

	ac, _ := connect(t, a, b)
	if _, err := b.Call(ctx, peer.uri("raw")); err != nil {
		t.Fatalf("call to the raw peer: %v", err)
	}

	// Fire a barrage every pace until told to stop, then `after` more. (Flat out, the barrage
	// would mostly measure how the race detector copes with a saturated machine.)
	var sent atomic.Int64
	stop := make(chan struct{})
	stopFiring := sync.OnceFunc(func() { close(stop) })
	warm := make(chan struct{}) // some of the barrage has landed
	fired := make(chan struct{})
	const (
		pace  = time.Millisecond
		after = 30
	)
	go func() {
		defer close(fired)
		tick := time.NewTicker(pace)
		defer tick.Stop()
		extra := -1
		for i := 0; extra != 0; i++ {
			for _, m := range peer.barrage(b.addr, i) {
				peer.send(b.addr, m)
				sent.Add(1)
			}
			if i == 3 {
				close(warm)
			}
			select {
			case <-stop:
				if extra < 0 {
					extra = after
				}
			default:
			}
			if extra > 0 {
				extra--
			}
			<-tick.C
		}
	}()
	defer func() { stopFiring(); <-fired }() // also when the test fails early
	// Some of the barrage lands before Close starts.
	select {
	case <-warm:
	case <-ctx.Done():
		t.Fatal("barrage did not start")
	}

	// Alice hangs up while bob closes: her BYE arrives during his Close. Once he has closed,
	// nothing answers it any more; she stops waiting then.
	hangCtx, hangCancel := context.WithCancel(ctx)
	defer hangCancel()
	hungUp := make(chan error, 1)
	go func() { hungUp <- ac.Hangup(hangCtx) }()
	start := time.Now()
	if err := b.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	took := time.Since(start)
	hangCancel()
	stopFiring()
	<-fired
	if err := <-hungUp; err != nil {
		t.Logf("alice's hangup: %v", err) // bob's BYE came first, or bob closed first
	}
	t.Logf("round %d: %d datagrams sent, Close took %v", round, sent.Load(), took.Round(time.Millisecond))

	// Nothing of bob is left, and his stack refuses work.
	if n, stacks := ownedGoroutines(b.sip.owner, false); n != 0 {
		t.Errorf("%d goroutines of bob's socket left:\n%s", n, stacks)
	}
	if n := b.ua.TransportLayer().Pool("udp").Size(); n != 0 {
		t.Errorf("sipgo holds %d udp connections of bob", n)
	}
	opt := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", User: "raw", Host: "127.0.0.1", Port: int(peer.addr.Port())})
	if _, err := b.client.Do(ctx, opt); !errors.Is(err, ErrClosed) {
		t.Errorf("request after close: %v, want ErrClosed", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("close alice: %v", err)
	}
}

// TestCloseGivesUpUnackedAnswer: a final answer whose ACK never comes (the caller vanished) does
// not hold Close for the 32 s sipgo would wait for it, nor does a call left ringing.
func TestCloseGivesUpUnackedAnswer(t *testing.T) {
	for _, c := range []struct {
		policy Policy
		code   int // what the phone has sent when Close starts
	}{{AutoAnswer, 200}, {Busy, 486}, {Manual, 180}} {
		t.Run(c.policy.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			ctx := timeout(t, 10*time.Second)
			b, err := New(ctx, Config{User: "bob", Incoming: c.policy, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			peer := newRawPeer(t)
			defer peer.close()
			offer := string(buildSDP(9, 1, peer.rtp.LocalAddr().(*net.UDPAddr).AddrPort(), defaultEventPT, "sendrecv"))
			peer.send(b.addr, peer.request("INVITE", "sip:bob@"+b.addr.String(), "lonely", "lonely", 1, offer))
			for code := 0; code != c.code; {
				select {
				case code = <-peer.responses:
				case <-ctx.Done():
					t.Fatalf("no %d from the phone", c.code)
				}
			}
			start := time.Now()
			if err := b.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			if d := time.Since(start); d > closeTimeout {
				t.Errorf("close took %v", d)
			}
			call, err := b.AwaitIncoming(ctx) // delivered before Close returned
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-call.Done():
			default:
				t.Error("call survived Close")
			}
			if call.isAnswered() {
				t.Error("call answered without ACK")
			}
		})
	}
}

// TestTrackerRacesWait: entering may race with stop; stop's channel closes when the last exits.
func TestTrackerRacesWait(t *testing.T) {
	var tr tracker
	if !tr.enter() {
		t.Fatal("enter refused before stop")
	}
	idle := tr.stop()
	if tr.enter() {
		t.Fatal("enter accepted after stop")
	}
	select {
	case <-idle:
		t.Fatal("idle with one in progress")
	default:
	}
	tr.exit()
	select {
	case <-idle:
	case <-time.After(time.Second):
		t.Fatal("not idle after the last exit")
	}
	if tr.stop() != idle {
		t.Error("second stop returned another channel")
	}
}

// TestOwnedGoroutinesFollowsLabels: goroutines started from a labelled one, and those they start,
// are counted, also when several share a stack (the profile's first record, the largest).
func TestOwnedGoroutinesFollowsLabels(t *testing.T) {
	const owner = "test#owned"
	release := make(chan struct{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	labelled(context.Background(), owner, func() {
		for range 5 {
			wg.Go(func() { // same stack five times: one record of count 5
				started <- struct{}{}
				<-release
			})
		}
		wg.Go(func() {
			wg.Go(func() { // a grandchild
				started <- struct{}{}
				<-release
			})
			started <- struct{}{}
			<-release
		})
	})
	for range 7 {
		<-started
	}
	if n, stacks := ownedGoroutines(owner, false); n != 7 {
		t.Errorf("owned %d goroutines, want 7:\n%s", n, stacks)
	}
	if n, _ := ownedGoroutines("test#other", false); n != 0 {
		t.Errorf("another owner has %d goroutines", n)
	}
	close(release)
	wg.Wait()
	if err := awaitOwned(owner, false, 5*time.Second); err != nil {
		t.Error(err)
	}
}

func TestParseOwnedSkipsReader(t *testing.T) {
	const profile = "goroutine profile: total 9\n" +
		"5 @ 0x1 0x2\n# labels: {\"testphone-sip\":\"a#1\"}\n#\t0x1\tsync.(*Mutex).Lock+0x1\tm.go:1\n\n" +
		"2 @ 0x3\n#\t0x3\tmain.main+0x1\tm.go:2\n\n" +
		"1 @ 0x4\n# labels: {\"testphone-sip\":\"a#1\"}\n#\t0x4\tgithub.com/earpiece/earpiece/internal/testphone.(*sipSocket).ReadFrom+0x9\ts.go:1\n\n" +
		"1 @ 0x5\n# labels: {\"testphone-sip\":\"a#12\"}\n#\t0x5\tx+0x1\tx.go:1\n\n"
	for _, c := range []struct {
		owner      string
		keepReader bool
		want       int
	}{{"a#1", false, 6}, {"a#1", true, 5}, {"a#12", false, 1}, {"b#1", false, 0}} {
		if n, _ := parseOwned(profile, c.owner, c.keepReader); n != c.want {
			t.Errorf("owner %s, keepReader %v: %d, want %d", c.owner, c.keepReader, n, c.want)
		}
	}
}
