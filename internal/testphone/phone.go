// Package testphone is a SIP phone for end-to-end tests: a user agent on UDP 127.0.0.1 (sipgo)
// that registers, calls and answers, sends a tone in G.711 mu-law (PCMU) 20 ms RTP frames, and
// measures the tones it receives with Goertzel filters, so a test can tell who hears whom
// (the tone plan: ToneCustomer, ToneAgent, ToneSupervisor). DTMF goes as RFC 4733
// telephone-events.
//
// A Phone answers what Asterisk sends besides calls: OPTIONS (qualify), re-INVITE and UPDATE
// (connected line, media refresh: answered with the same SDP), BYE, and CANCEL of a ringing call.
package testphone

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"
	"github.com/rs/zerolog"
)

// Policy is what a phone does with an incoming INVITE.
type Policy int

const (
	// AutoAnswer rings (180) and answers (200 OK) at once.
	AutoAnswer Policy = iota
	// Busy answers 486 Busy Here.
	Busy
	// Reject answers 603 Decline.
	Reject
	// Ignore rings (180) until the caller cancels or the test answers or rejects the call.
	Ignore
	// Manual rings (180); the test takes the call from AwaitIncoming and answers or rejects it.
	Manual
)

func (p Policy) String() string {
	switch p {
	case AutoAnswer:
		return "auto-answer"
	case Busy:
		return "busy"
	case Reject:
		return "reject"
	case Ignore:
		return "ignore"
	case Manual:
		return "manual"
	default:
		return "Policy(" + strconv.Itoa(int(p)) + ")"
	}
}

// Config configures a Phone.
type Config struct {
	User        string  // SIP user, e.g. "744"; the From user, by which Asterisk identifies the endpoint
	DisplayName string  // From display name on our calls (optional)
	Password    string  // digest password, used only when challenged (optional)
	Server      string  // registrar and proxy host:port, e.g. 127.0.0.1:5070 (optional for direct calls)
	ToneHz      float64 // the tone sent during calls; 0 = silence
	ToneLevelDB float64 // level of each tone in dBFS; 0 means DefaultToneLevelDB
	Incoming    Policy  // what to do with incoming INVITEs
	Detector    Detector
	// RegisterExpiry is the Expires of our REGISTER; 0 means one hour. There is no refresh.
	RegisterExpiry time.Duration
	Logger         zerolog.Logger // zero value: no logging
}

// Phone is a SIP user agent bound to UDP 127.0.0.1:<ephemeral>.
type Phone struct {
	cfg     Config
	log     zerolog.Logger
	det     *detector
	sip     *sipStack // socket, user agent, and their shutdown
	addr    netip.AddrPort
	ua      *sipgo.UserAgent
	client  *sipgo.Client
	dialogs *sipgo.DialogUA
	contact sip.ContactHeader

	// ctx ends when Close starts: in-flight Call()s and ringing calls watch it.
	ctx    context.Context
	cancel context.CancelFunc

	// mu guards the phone's call table and lifecycle. Call() registers in sip.work only while
	// !closed; handlers register there until Close stops taking work, so Close can wait for all.
	mu            sync.Mutex
	closed        bool
	calls         map[string]*Call // by dialog key
	incoming      []*Call          // delivered, not yet taken by AwaitIncoming
	incomingReady chan struct{}    // capacity 1: "incoming may be non-empty"
	reg           *registration

	// testHookProvisional, when set before a Call, runs once that call has seen a provisional
	// response (from then on, cancelling the Call sends CANCEL).
	testHookProvisional func()

	closeOnce sync.Once
	closeErr  error
}

// registration keeps Call-ID and CSeq across REGISTERs (RFC 3261 section 10.2).
type registration struct {
	callID  string
	fromTag string
	cseq    uint32
	active  bool
}

const closeTimeout = 2 * time.Second

// New binds a SIP UDP socket on 127.0.0.1 and starts serving it. ctx bounds the setup only; the
// phone lives until Close.
func New(ctx context.Context, cfg Config) (*Phone, error) {
	if cfg.User == "" {
		return nil, errors.New("testphone: Config.User is empty")
	}
	if cfg.Server != "" {
		if _, _, err := net.SplitHostPort(cfg.Server); err != nil {
			return nil, fmt.Errorf("testphone: Config.Server=%q: %w", cfg.Server, err)
		}
	}
	det, err := newDetector(cfg.Detector)
	if err != nil {
		return nil, fmt.Errorf("testphone: %w", err)
	}
	log := cfg.Logger.With().Str("phone", cfg.User).Logger()

	st, err := newSIPStack(ctx, log, "earpiece-testphone")
	if err != nil {
		return nil, fmt.Errorf("testphone: %w", err)
	}
	addr := st.addr
	p := &Phone{
		cfg:    cfg,
		log:    log,
		det:    det,
		sip:    st,
		addr:   addr,
		ua:     st.ua,
		client: st.client,
		contact: sip.ContactHeader{Address: sip.Uri{
			Scheme: "sip", User: cfg.User, Host: addr.Addr().String(), Port: int(addr.Port()),
		}},
		calls:         make(map[string]*Call),
		incomingReady: make(chan struct{}, 1),
	}
	p.dialogs = &sipgo.DialogUA{Client: st.client, ContactHDR: p.contact}
	p.ctx, p.cancel = context.WithCancel(context.Background())

	srv := st.srv
	srv.OnInvite(st.handle(p.onInvite))
	srv.OnAck(st.handle(p.onAck))
	srv.OnBye(st.handle(p.onBye))
	srv.OnCancel(st.handle(p.onCancel))
	srv.OnUpdate(st.handle(p.onUpdate))
	srv.OnOptions(st.handle(p.onOptions))
	srv.OnInfo(st.handle(p.onOK))
	srv.OnNotify(st.handle(p.onOK))

	if err := st.start(ctx); err != nil {
		p.Close()
		return nil, fmt.Errorf("testphone: %w", err)
	}
	log.Debug().Str("addr", addr.String()).Msg("phone up")
	return p, nil
}

// Addr is the phone's SIP host:port.
func (p *Phone) Addr() string { return p.addr.String() }

// URI is a SIP URI that reaches this phone directly, e.g. sip:744@127.0.0.1:40123.
func (p *Phone) URI() string { return p.contact.Address.String() }

// User is Config.User.
func (p *Phone) User() string { return p.cfg.User }

// enter registers a Call that Close must wait for; false once closing. A true enter is paired
// with p.sip.work.exit.
func (p *Phone) enter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.closed && p.sip.work.enter()
}

func (p *Phone) isClosing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

func respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string, body []byte, hdrs ...sip.Header) error {
	res := sip.NewResponseFromRequest(req, code, reason, body)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	return tx.Respond(res)
}

// Register sends REGISTER to Config.Server, answering a digest challenge when Config.Password is
// set. A non-2xx answer is a *StatusError.
func (p *Phone) Register(ctx context.Context) error {
	expiry := p.cfg.RegisterExpiry
	if expiry <= 0 {
		expiry = time.Hour
	}
	return p.register(ctx, int(expiry/time.Second))
}

// Unregister removes our binding (REGISTER with Expires: 0).
func (p *Phone) Unregister(ctx context.Context) error { return p.register(ctx, 0) }

func (p *Phone) register(ctx context.Context, expires int) error {
	if p.cfg.Server == "" {
		return errors.New("testphone: register: Config.Server is empty")
	}
	host, portStr, _ := net.SplitHostPort(p.cfg.Server)
	port, _ := strconv.Atoi(portStr)

	p.mu.Lock()
	if p.reg == nil {
		p.reg = &registration{callID: uuid.NewString(), fromTag: sip.GenerateTagN(16)}
	}
	p.reg.cseq++
	reg := *p.reg
	p.mu.Unlock()

	aor := sip.Uri{Scheme: "sip", User: p.cfg.User, Host: host}
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: host, Port: port})
	from := &sip.FromHeader{DisplayName: p.cfg.DisplayName, Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", reg.fromTag)
	callID := sip.CallIDHeader(reg.callID)
	exp := sip.ExpiresHeader(expires)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor})
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: reg.cseq, MethodName: sip.REGISTER})
	req.AppendHeader(p.contact.Clone())
	req.AppendHeader(&exp)

	res, err := p.client.Do(ctx, req)
	if err == nil && p.cfg.Password != "" &&
		(res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired) {
		res, err = p.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: p.cfg.User, Password: p.cfg.Password})
	}
	p.mu.Lock()
	if cs := req.CSeq(); cs != nil && p.reg != nil && cs.SeqNo > p.reg.cseq {
		p.reg.cseq = cs.SeqNo // digest auth sent one more
	}
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("register %s at %s: %w", p.cfg.User, p.cfg.Server, err)
	}
	if !res.IsSuccess() {
		return fmt.Errorf("register %s at %s: %w", p.cfg.User, p.cfg.Server, &StatusError{Code: res.StatusCode, Reason: res.Reason})
	}
	p.mu.Lock()
	if p.reg != nil {
		p.reg.active = expires > 0
	}
	p.mu.Unlock()
	return nil
}

// targetURI turns a Call target into a Request-URI: a full "sip:" URI as is, anything else as
// the user part at Config.Server.
func (p *Phone) targetURI(target string) (sip.Uri, error) {
	var uri sip.Uri
	if strings.HasPrefix(target, "sip:") {
		if err := sip.ParseUri(target, &uri); err != nil {
			return uri, fmt.Errorf("parse target %q: %w", target, err)
		}
		return uri, nil
	}
	if p.cfg.Server == "" {
		return uri, fmt.Errorf("target %q needs Config.Server", target)
	}
	if err := sip.ParseUri("sip:"+target+"@"+p.cfg.Server, &uri); err != nil {
		return uri, fmt.Errorf("parse target %q: %w", target, err)
	}
	return uri, nil
}

// Call sends INVITE to target (a number at Config.Server, or a full sip: URI) and returns once
// the call is answered and ACKed. A final non-2xx answer is a *StatusError; when ctx ends first,
// the INVITE is cancelled and ctx's error returned.
func (p *Phone) Call(ctx context.Context, target string) (*Call, error) {
	uri, err := p.targetURI(target)
	if err != nil {
		return nil, fmt.Errorf("call: %w", err)
	}
	if !p.enter() {
		return nil, ErrClosed
	}
	defer p.sip.work.exit()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(p.ctx, cancel)()

	callID := uuid.NewString()
	c, err := p.newCall(ctx, Outgoing, callID)
	if err != nil {
		return nil, fmt.Errorf("call %s: %w", target, err)
	}
	c.local = buildSDP(c.sdpSession, 1, c.media.local, defaultEventPT, "sendrecv")

	fromHost := p.addr.Addr().String()
	if p.cfg.Server != "" {
		fromHost, _, _ = net.SplitHostPort(p.cfg.Server)
	}
	req := sip.NewRequest(sip.INVITE, uri)
	from := &sip.FromHeader{
		DisplayName: p.cfg.DisplayName,
		Address:     sip.Uri{Scheme: "sip", User: p.cfg.User, Host: fromHost},
		Params:      sip.NewParams(),
	}
	from.Params.Add("tag", sip.GenerateTagN(16))
	cid := sip.CallIDHeader(callID)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: uri.User, Host: uri.Host, Port: uri.Port}})
	req.AppendHeader(&cid)
	req.AppendHeader(p.contact.Clone())
	req.AppendHeader(sip.NewHeader("Allow", allowMethods))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(c.local)

	sess, err := p.dialogs.WriteInvite(ctx, req)
	if err != nil {
		c.end(err)
		return nil, fmt.Errorf("call %s: invite: %w", target, err)
	}
	c.uac = sess

	// When ctx ends, sipgo sends CANCEL, but it may only do so after a provisional response
	// (RFC 3261 section 9.1) and would otherwise wait for one until Timer B (32 s). With nothing
	// received yet there is nothing to cancel: give up at once.
	var provisional atomic.Bool
	waitCtx, waitCancel := context.WithCancelCause(context.Background())
	defer waitCancel(nil)
	defer context.AfterFunc(ctx, func() {
		if provisional.Load() {
			waitCancel(ctx.Err())
		} else {
			waitCancel(sipgo.WaitAnswerForceCancelErr)
		}
	})()
	err = sess.WaitAnswer(waitCtx, sipgo.AnswerOptions{
		Username: p.cfg.User,
		Password: p.cfg.Password,
		OnResponse: func(res *sip.Response) error {
			if res.IsProvisional() && !provisional.Swap(true) && p.testHookProvisional != nil {
				p.testHookProvisional()
			}
			if !res.IsSuccess() {
				return nil
			}
			// Publish the call before the ACK: the callee may send BYE or re-INVITE right after.
			if to := res.To(); to != nil {
				c.setRemoteParty(to.DisplayName, to.Address, res)
			}
			key, kerr := dialogKeyUAC(res)
			if kerr != nil {
				return kerr
			}
			c.key = key
			if !p.addCall(c) {
				return ErrClosed
			}
			return nil
		},
	})
	if err != nil {
		var dr *sipgo.ErrDialogResponse
		switch {
		case errors.As(err, &dr):
			err = &StatusError{Code: dr.Res.StatusCode, Reason: dr.Res.Reason}
		case p.ctx.Err() != nil:
			err = ErrClosed
		case ctx.Err() != nil:
			err = ctx.Err()
		}
		if res := sess.InviteResponse; res != nil && res.IsSuccess() {
			// Answered while we were giving up: confirm and leave (RFC 3261 section 15).
			_ = sess.Ack(context.WithoutCancel(ctx))
			c.abort(err)
		} else {
			c.end(err)
		}
		return nil, fmt.Errorf("call %s: %w", target, err)
	}
	if err := sess.Ack(ctx); err != nil {
		c.abort(fmt.Errorf("ack: %w", err))
		return nil, fmt.Errorf("call %s: ack: %w", target, err)
	}
	answer, err := parseSDP(sess.InviteResponse.Body())
	if err == nil && !answer.hasFormat(ptPCMU) {
		err = errors.New("answer without PCMU")
	}
	if err != nil {
		c.abort(fmt.Errorf("answer sdp: %w", err))
		return nil, fmt.Errorf("call %s: answer sdp: %w", target, err)
	}
	c.media.setRemote(answer)
	c.media.startSending()
	c.markAnswered()
	c.log.Debug().Str("remote_rtp", answer.Addr.String()).Msg("call answered")
	return c, nil
}

// AwaitIncoming returns the next incoming call, after the policy acted on it: answered
// (AutoAnswer), ringing (Manual, Ignore), or already ended (Busy, Reject: Err says how).
func (p *Phone) AwaitIncoming(ctx context.Context) (*Call, error) {
	for {
		p.mu.Lock()
		if len(p.incoming) > 0 {
			c := p.incoming[0]
			p.incoming = p.incoming[1:]
			if len(p.incoming) > 0 {
				p.signalIncomingLocked()
			}
			p.mu.Unlock()
			return c, nil
		}
		p.mu.Unlock()
		select {
		case <-p.incomingReady:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-p.ctx.Done():
			return nil, ErrClosed
		}
	}
}

func (p *Phone) signalIncomingLocked() {
	select {
	case p.incomingReady <- struct{}{}:
	default:
	}
}

func (p *Phone) deliver(c *Call) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.incoming = append(p.incoming, c)
	p.signalIncomingLocked()
}

func (p *Phone) addCall(c *Call) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed && c.dir == Incoming {
		return false
	}
	p.calls[c.key] = c
	return true
}

func (p *Phone) removeCall(c *Call) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.calls[c.key] == c {
		delete(p.calls, c.key)
	}
}

// lookup finds the call an in-dialog request belongs to (we are its UAS: To tag is ours).
func (p *Phone) lookup(req *sip.Request) *Call {
	key, err := sip.DialogIDFromRequestUAS(req)
	if err != nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[key]
}

// dialogKeyUAC is the key of a dialog we created, as lookup computes it for requests we receive:
// Call-ID, our tag (From), their tag (To).
func dialogKeyUAC(res *sip.Response) (string, error) {
	callID, from, to := res.CallID(), res.From(), res.To()
	if callID == nil || from == nil || to == nil {
		return "", errors.New("2xx lacks Call-ID, From or To")
	}
	localTag, _ := from.Params.Get("tag")
	remoteTag, ok := to.Params.Get("tag")
	if !ok {
		return "", errors.New("2xx without To tag")
	}
	return sip.DialogIDMake(string(*callID), localTag, remoteTag), nil
}

// Close hangs up every call, unregisters (best effort), and stops the phone: when it returns,
// nothing of the phone or of sipgo runs any more, whatever arrives during or after it (Asterisk's
// qualify OPTIONS, a retransmitted INVITE, BYE or 200 OK, the other side's BYE). A non-nil error
// means something was left running (its stacks are in the message), or the socket failed to close.
//
// Order: refuse new Calls and incoming calls (ringing ones are answered 480); send BYE on
// established calls and unregister, with the socket still serving; stop taking work and wait for
// the handlers and Calls in progress; end the calls that are left; then shut the SIP stack down
// (sipStack.shutdown: deaf, sealed, transactions ended, drained, closed, verified).
func (p *Phone) Close() error {
	p.closeOnce.Do(func() { p.closeErr = p.close() })
	return p.closeErr
}

func (p *Phone) close() error {
	p.mu.Lock()
	p.closed = true
	calls := slices.Collect(maps.Values(p.calls))
	registered := p.reg != nil && p.reg.active
	p.mu.Unlock()
	p.cancel()

	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Go(func() {
			if err := c.hangupOnClose(ctx); err != nil {
				p.log.Debug().Err(err).Str("call", c.callID).Msg("hangup on close")
			}
		})
	}
	wg.Wait()
	if registered {
		if err := p.register(ctx, 0); err != nil {
			p.log.Debug().Err(err).Msg("unregister on close")
		}
	}

	// Quiesce: no handler or Call starts any more; those in progress finish while the socket
	// still delivers (a 2xx waiting for its ACK, a Call sending CANCEL). One that waits on the
	// network longer than closeTimeout ends in shutdown, which ends its transaction.
	idle := p.sip.work.stop()
	select {
	case <-idle:
	case <-ctx.Done():
		p.log.Debug().Msg("close: handlers or calls still busy; ending their transactions")
	}
	p.endCalls() // those whose hangup failed; stops their media

	var errs []error
	if err := p.sip.shutdown(); err != nil {
		errs = append(errs, err)
	}
	select {
	case <-idle:
	case <-time.After(closeTimeout):
		errs = append(errs, errors.New("testphone: a Call or handler is still running after close"))
	}
	p.endCalls() // a Call that was still in progress above
	p.log.Debug().Msg("phone closed")
	return errors.Join(errs...)
}

// endCalls ends the calls still in the table with ErrClosed.
func (p *Phone) endCalls() {
	p.mu.Lock()
	calls := slices.Collect(maps.Values(p.calls))
	p.mu.Unlock()
	for _, c := range calls {
		c.end(ErrClosed)
	}
}

const allowMethods = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, NOTIFY"

// onInvite takes a new call, or a re-INVITE within one of ours (To carries our tag).
func (p *Phone) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil && to.Params.Has("tag") {
		p.onReoffer(req, tx)
		return
	}
	p.acceptInvite(req, tx)
}

// acceptInvite runs for the whole life of the INVITE server transaction: sipgo terminates the
// transaction when the handler returns, so a ringing call keeps this goroutine, and Answer and
// Reject hand their decision to it.
func (p *Phone) acceptInvite(req *sip.Request, tx sip.ServerTransaction) {
	if p.isClosing() {
		respond(tx, req, sip.StatusServiceUnavailable, "Service Unavailable", nil)
		return
	}
	offer, err := parseSDP(req.Body())
	if err == nil && !offer.hasFormat(ptPCMU) {
		err = errors.New("no PCMU offered")
	}
	if err != nil {
		p.log.Debug().Err(err).Msg("incoming INVITE refused")
		respond(tx, req, sip.StatusNotAcceptableHere, "Not Acceptable Here", nil)
		return
	}
	sess, err := p.dialogs.ReadInvite(req, tx)
	if err != nil {
		p.log.Debug().Err(err).Msg("incoming INVITE malformed")
		respond(tx, req, sip.StatusBadRequest, "Bad Request", nil)
		return
	}
	callID := ""
	if h := req.CallID(); h != nil {
		callID = string(*h)
	}
	c, err := p.newCall(p.ctx, Incoming, callID)
	if err != nil {
		p.log.Warn().Err(err).Msg("incoming call")
		respond(tx, sess.InviteRequest, sip.StatusInternalServerError, "Server Internal Error", nil)
		return
	}
	c.uas = sess
	c.inviteTx = tx
	c.offer = offer
	c.local = buildSDP(c.sdpSession, 1, c.media.local, offer.EventPT, answerDirection(offer.Direction))
	if from := req.From(); from != nil {
		c.setRemoteParty(from.DisplayName, from.Address, req)
	}
	c.key = sess.ID
	c.media.setRemote(offer)
	if !p.addCall(c) {
		c.reject(sip.StatusServiceUnavailable, "Service Unavailable")
		c.end(ErrClosed)
		return
	}
	c.log.Debug().Str("from", c.CallerID()).Stringer("policy", p.cfg.Incoming).Msg("incoming call")

	if err := sess.Respond(sip.StatusRinging, "Ringing", nil); err != nil {
		c.end(fmt.Errorf("180: %w", err))
		p.deliver(c)
		return
	}
	switch p.cfg.Incoming {
	case Busy:
		c.finish(sip.StatusBusyHere, "Busy Here")
		p.deliver(c)
	case Reject:
		c.finish(sip.StatusGlobalDecline, "Decline")
		p.deliver(c)
	case AutoAnswer:
		c.finish(sip.StatusOK, "OK")
		p.deliver(c)
	case Ignore, Manual:
		p.deliver(c)
		c.ring()
	default:
		c.finish(sip.StatusInternalServerError, "Unknown Policy")
		p.deliver(c)
	}
}

// onReoffer answers a re-INVITE or UPDATE: Asterisk sends them for connected-line updates and
// media changes. We take the new remote address if there is an offer and answer with our
// unchanged SDP (RFC 3264 section 8: same o= version when nothing changed).
func (p *Phone) onReoffer(req *sip.Request, tx sip.ServerTransaction) {
	c := p.lookup(req)
	if c == nil {
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil)
		return
	}
	if len(req.Body()) > 0 {
		offer, err := parseSDP(req.Body())
		if err != nil || !offer.hasFormat(ptPCMU) {
			respond(tx, req, sip.StatusNotAcceptableHere, "Not Acceptable Here", nil)
			return
		}
		c.media.setRemote(offer)
	}
	c.noteRequest(req)
	var body []byte
	hdrs := []sip.Header{p.contact.Clone()}
	if req.IsInvite() || len(req.Body()) > 0 {
		body = c.local
		hdrs = append(hdrs, sip.NewHeader("Content-Type", "application/sdp"))
	}
	if err := respond(tx, req, sip.StatusOK, "OK", body, hdrs...); err != nil {
		c.log.Debug().Err(err).Str("method", req.Method.String()).Msg("answer re-offer")
	}
}

func (p *Phone) onUpdate(req *sip.Request, tx sip.ServerTransaction) { p.onReoffer(req, tx) }

func (p *Phone) onAck(req *sip.Request, tx sip.ServerTransaction) {
	c := p.lookup(req)
	if c == nil || c.uas == nil {
		return // ACK of a re-INVITE we answered as UAC, or of a call already gone
	}
	// ReadAck confirms the dialog for the initial INVITE; the ACK of a later re-INVITE has
	// another CSeq and is refused, which is fine.
	_ = c.uas.ReadAck(req, tx)
	if len(req.Body()) > 0 { // an answer to an offer we made in a 2xx
		if a, err := parseSDP(req.Body()); err == nil {
			c.media.setRemote(a)
		}
	}
}

func (p *Phone) onBye(req *sip.Request, tx sip.ServerTransaction) {
	c := p.lookup(req)
	if c == nil {
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil)
		return
	}
	var err error
	if c.uac != nil {
		err = c.uac.ReadBye(req, tx)
	} else {
		err = c.uas.ReadBye(req, tx)
	}
	if err != nil {
		c.log.Debug().Err(err).Msg("read BYE")
		respond(tx, req, sip.StatusOK, "OK", nil)
	}
	c.end(ErrRemoteHangup)
}

// onCancel sees only CANCELs that matched no INVITE transaction (sipgo answers the others and
// ends the INVITE with 487 itself).
func (p *Phone) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil)
}

// onOptions answers Asterisk's qualify.
func (p *Phone) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	respond(tx, req, sip.StatusOK, "OK", nil,
		sip.NewHeader("Allow", allowMethods), sip.NewHeader("Accept", "application/sdp"))
}

func (p *Phone) onOK(req *sip.Request, tx sip.ServerTransaction) {
	respond(tx, req, sip.StatusOK, "OK", nil)
}

// newCall creates a call with its RTP socket bound and receiver running.
func (p *Phone) newCall(ctx context.Context, dir Direction, callID string) (*Call, error) {
	tones := []float64{p.cfg.ToneHz}
	m, err := newMedia(ctx, p.log.With().Str("call", callID).Logger(), p.det,
		cmp.Or(p.cfg.ToneLevelDB, DefaultToneLevelDB), tones)
	if err != nil {
		return nil, err
	}
	return &Call{
		p:          p,
		log:        p.log.With().Str("call", callID).Stringer("dir", dir).Logger(),
		dir:        dir,
		callID:     callID,
		media:      m,
		sdpSession: uint64(time.Now().UnixNano() & 0x7fffffffffff),
		decide:     make(chan decision),
		answered:   make(chan struct{}),
		done:       make(chan struct{}),
	}, nil
}
