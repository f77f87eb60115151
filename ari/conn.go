package ari

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"
)

// maxEventSize bounds one WebSocket message. A StasisStart with many channel
// variables is a few KiB; the library's default (32 KiB) is too tight.
const maxEventSize = 1 << 20

// closeGrace is how long a clean close waits for Asterisk's answer before the
// socket is torn down.
const closeGrace = time.Second

// Stats are the client's counters since New, for main to export as metrics.
type Stats struct {
	EventsReceived uint64 // Asterisk events read and decoded
	EventsDropped  uint64 // stream items dropped because the queue stayed full
	Reconnects     uint64 // connections made after the first one
	DecodeErrors   uint64 // messages that could not be decoded (lost too)
	// Duplicates are messages dropped because they repeated one of the last few byte for
	// byte: Asterisk sends an event once per subscription it matches, so a supervisor's DTMF
	// comes once for the channel in Stasis and once more for its endpoint (endpoint:PJSIP).
	Duplicates uint64
	DialErrors uint64 // failed connection attempts
	Connected  bool   // the events WebSocket is up now
}

type stats struct {
	received, dropped, reconnects, decodeErrors, dialErrors, duplicates atomic.Uint64
	connected                                                           atomic.Bool
}

// Stats returns a snapshot of the counters. Safe from any goroutine.
func (c *Client) Stats() Stats {
	return Stats{
		EventsReceived: c.stats.received.Load(),
		EventsDropped:  c.stats.dropped.Load(),
		Reconnects:     c.stats.reconnects.Load(),
		DecodeErrors:   c.stats.decodeErrors.Load(),
		DialErrors:     c.stats.dialErrors.Load(),
		Duplicates:     c.stats.duplicates.Load(),
		Connected:      c.stats.connected.Load(),
	}
}

// Events returns the one ordered stream of events: Asterisk's events for
// Config.App (GET /events?app=...) and *ConnectionEvent for the connection's
// state, in the order they happened. Behind it is a queue of
// Config.EventBuffer items; if the app lets it fill, events are dropped,
// counted and logged, and a Desynced ConnectionEvent takes their place in
// the stream. The channel is closed when Run returns.
func (c *Client) Events() <-chan Event { return c.out }

// ErrAlreadyRun is returned by a second call of Run.
var ErrAlreadyRun = errors.New("ari: Run called more than once")

// Run owns the events WebSocket (GET /events, app=Config.App,
// subscribeAll=false) until ctx is done: it connects, reads, decodes and
// queues events, pings the peer every PingInterval, and reconnects with
// capped, jittered exponential backoff. After ApplicationReplaced it waits
// ReplacedBackoff before connecting again. It returns ctx's error after
// closing the socket, and closes the Events channel. Run may be called once.
func (c *Client) Run(ctx context.Context) error {
	if !c.ran.CompareAndSwap(false, true) {
		return ErrAlreadyRun
	}
	// The forwarder hands queued events to the app; it stops, and Events is
	// closed, when Run returns.
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { c.forward(done) })
	defer func() {
		close(done)
		wg.Wait()
		close(c.out)
	}()
	r := &runner{c: c, log: c.log}

	attempt := 0
	connectedOnce := false
	for {
		conn, err := c.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.stats.dialErrors.Add(1)
			lvl := zerolog.WarnLevel
			if errors.Is(err, ErrUnauthorized) {
				lvl = zerolog.ErrorLevel // a configuration error, not a passing one
			}
			r.log.WithLevel(lvl).Err(err).Int("attempt", attempt).Msg("ari: connecting the events websocket failed")
			if err := r.state(ctx, Disconnected, err); err != nil {
				return err
			}
			if err := sleep(ctx, c.backoff(attempt)); err != nil {
				return err
			}
			attempt++
			continue
		}
		if connectedOnce {
			c.stats.reconnects.Add(1)
		}
		connectedOnce = true
		c.stats.connected.Store(true)
		r.log.Info().Msg("ari: events websocket connected")
		start := time.Now()

		replaced, err := r.serve(ctx, conn)
		c.stats.connected.Store(false)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if replaced {
			r.log.Warn().Dur("backoff", c.cfg.ReplacedBackoff).Msg("ari: another websocket took over the application; waiting before taking it back")
			if err := r.state(ctx, Replaced, nil); err != nil {
				return err
			}
			if err := sleep(ctx, c.cfg.ReplacedBackoff); err != nil {
				return err
			}
			attempt = 0
			continue
		}
		r.log.Warn().Err(err).Msg("ari: events websocket lost; reconnecting")
		if err := r.state(ctx, Disconnected, err); err != nil {
			return err
		}
		if time.Since(start) >= c.cfg.ReconnectMax {
			attempt = 0 // it was a working connection, not a flapping one
		}
		if err := sleep(ctx, c.backoff(attempt)); err != nil {
			return err
		}
		attempt++
	}
}

// dial opens the events WebSocket with HTTP Basic authorization on the
// upgrade request.
func (c *Client) dial(ctx context.Context) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	h := http.Header{}
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.cfg.User+":"+c.cfg.Password)))
	conn, resp, err := websocket.Dial(ctx, c.wsURL, &websocket.DialOptions{HTTPClient: c.http, HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, responseError(http.MethodGet, "/events", resp)
		}
		return nil, fmt.Errorf("ari: GET /events: %w", err)
	}
	conn.SetReadLimit(maxEventSize)
	return conn, nil
}

// backoff is the wait before connection attempt number attempt+1:
// ReconnectMin doubled per attempt, capped at ReconnectMax, then jittered
// down to as little as half so instances restarted together spread out.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.ReconnectMax
	if attempt < 32 {
		if e := c.cfg.ReconnectMin << attempt; e > 0 && e < d {
			d = e
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runner is Run's state; only Run's goroutine touches it.
type runner struct {
	c   *Client
	log zerolog.Logger

	last ConnState // last state delivered
}

// serve reads one connection until it fails, ctx ends, or Asterisk says
// the application was taken over (replaced is then true).
func (r *runner) serve(ctx context.Context, conn *websocket.Conn) (replaced bool, err error) {
	// Reads do not use ctx: cancelling a read tears the socket down, and on
	// shutdown we close it cleanly instead (keepalive). abort is for a dead
	// peer or a close Asterisk does not answer.
	readCtx, abort := context.WithCancelCause(context.Background())
	defer abort(nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { r.keepalive(ctx, conn, stop, abort) })
	defer func() {
		close(stop)
		wg.Wait()
		if replaced || ctx.Err() != nil {
			// Safe after ApplicationReplaced: Asterisk has already removed the
			// app from this session, so closing it does not unregister the
			// app from the socket that replaced us.
			_ = conn.Close(websocket.StatusNormalClosure, "")
		} else {
			_ = conn.CloseNow()
		}
	}()

	if err := r.state(ctx, Connected, nil); err != nil {
		return false, err
	}
	var recent recentMessages
	for {
		_, data, err := conn.Read(readCtx)
		if err != nil {
			if cause := context.Cause(readCtx); cause != nil {
				err = cause
			}
			return false, err
		}
		if recent.seen(data) {
			r.c.stats.duplicates.Add(1)
			continue
		}
		ev, err := DecodeEvent(data)
		if err != nil {
			r.c.stats.decodeErrors.Add(1)
			r.log.Error().Err(err).Str("raw", truncate(data, 512)).Msg("ari: undecodable event lost; the app must resync")
			r.c.q.pushLoss(r.c.connBase(), err)
			continue
		}
		r.c.stats.received.Add(1)
		if err := r.deliver(ctx, ev); err != nil {
			return false, err
		}
		if _, ok := ev.(*ApplicationReplaced); ok {
			return true, nil
		}
	}
}

var errShuttingDown = errors.New("ari: shutting down")

// keepalive pings the peer every PingInterval and aborts the read if a pong
// does not come within another PingInterval. When ctx ends it closes the
// socket cleanly, which also ends the blocked read.
func (r *runner) keepalive(ctx context.Context, conn *websocket.Conn, stop <-chan struct{}, abort context.CancelCauseFunc) {
	interval := r.c.cfg.PingInterval
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			timer := time.AfterFunc(closeGrace, func() { abort(errShuttingDown) })
			_ = conn.Close(websocket.StatusNormalClosure, "")
			timer.Stop()
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, interval)
			err := conn.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				abort(fmt.Errorf("ari: websocket keepalive: no pong within %v: %w", interval, err))
				return
			}
		}
	}
}

// state delivers a ConnectionEvent for a change of state. Repeated
// Disconnected (failed attempts in a row) are delivered once.
func (r *runner) state(ctx context.Context, s ConnState, err error) error {
	if s == Disconnected && r.last == Disconnected {
		return nil
	}
	r.last = s
	return r.deliver(ctx, &ConnectionEvent{EventBase: r.c.connBase(), State: s, Err: err})
}

// deliver queues ev. If the queue is full it waits up to OverflowWait for
// room, then drops ev; while the app has not yet reached the Desynced notice
// of an earlier drop it drops at once, so the socket keeps being drained. It
// fails only when ctx ends.
func (r *runner) deliver(ctx context.Context, ev Event) error {
	q := r.c.q
	ok, overflowing := q.push(ev)
	if ok {
		return nil
	}
	if overflowing {
		r.drop(ev)
		return nil
	}
	t := time.NewTimer(r.c.cfg.OverflowWait)
	defer t.Stop()
	for {
		select {
		case <-q.space:
			if ok, _ := q.push(ev); ok {
				return nil
			}
		case <-t.C:
			r.drop(ev)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

var errQueueFull = errors.New("event queue full: the app is not keeping up")

func (r *runner) drop(ev Event) {
	n := r.c.stats.dropped.Add(1)
	r.log.Error().Str("type", ev.Base().Type).Uint64("dropped_total", n).Int("queue", r.c.q.limit).
		Msg("ari: event queue full; event dropped, the app must resync")
	r.c.q.pushLoss(r.c.connBase(), errQueueFull)
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}

// recentMessages remembers the hashes of the last few messages of a connection, to drop the
// copies Asterisk sends of one event when it matches several of the app's subscriptions (the
// channel and its endpoint). The copies follow each other within a few messages and are equal
// byte for byte (same type, timestamp to the millisecond, channel and payload); two distinct
// events are never equal so, as their timestamps or contents differ.
type recentMessages struct {
	hashes [32]uint64
	next   int
}

func (r *recentMessages) seen(data []byte) bool {
	h := maphash.Bytes(recentSeed, data)
	if slices.Contains(r.hashes[:], h) {
		return true
	}
	r.hashes[r.next] = h
	r.next = (r.next + 1) % len(r.hashes)
	return false
}

var recentSeed = maphash.MakeSeed()
