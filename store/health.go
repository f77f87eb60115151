package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrUnavailable: Redis is known not to answer (Health says so); the command was not sent.
var ErrUnavailable = errors.New("redis unavailable")

// Defaults of HealthOptions.
const (
	DefaultHealthInterval = 100 * time.Millisecond
	DefaultHealthTimeout  = 200 * time.Millisecond
	DefaultHealthFailures = 2
)

// HealthOptions tune a Health. Zero values take the defaults above.
type HealthOptions struct {
	// Interval between PINGs.
	Interval time.Duration
	// Timeout of each PING. A Redis that answers slower than this is treated as down: a PING
	// is answered in well under a millisecond by a working server, whatever its load.
	Timeout time.Duration
	// Failures is how many PINGs in a row must fail before Redis counts as down (one success
	// counts it as up again).
	Failures int
	// OnChange, if set, is called (from Run's goroutine) on every change, with the error of
	// the last failed PING when going down.
	OnChange func(up bool, err error)
}

// Health follows whether Redis answers, with a fast PING in the background (Run), so that work
// that needs Redis is refused at once during an outage instead of after each call's own
// deadline: a join refused in a few milliseconds rather than seconds, an API call answered 503
// at once. As a go-redis hook (client.AddHook(h)), it fails every command with ErrUnavailable
// without sending it while Redis is down; PINGs of its own go through. It starts up, so that
// nothing is refused before the first PING.
//
// Up also tells the app's journal (app/journal.go) when Redis answers again: Changed is closed
// on every change.
type Health struct {
	rdb  redis.UniversalClient
	opts HealthOptions

	up      atomic.Bool
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	lastErr error
	downs   atomic.Uint64
}

// NewHealth returns a Health pinging rdb; nothing happens until Run.
func NewHealth(rdb redis.UniversalClient, opts HealthOptions) *Health {
	if opts.Interval <= 0 {
		opts.Interval = DefaultHealthInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultHealthTimeout
	}
	if opts.Failures <= 0 {
		opts.Failures = DefaultHealthFailures
	}
	h := &Health{rdb: rdb, opts: opts, changed: make(chan struct{})}
	h.up.Store(true)
	return h
}

// Up reports whether Redis answered the last PINGs (true before Run's first).
func (h *Health) Up() bool { return h.up.Load() }

// Changed is closed at the next change of Up.
func (h *Health) Changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}

// Downs is how many times Redis went down.
func (h *Health) Downs() uint64 { return h.downs.Load() }

// Err is why Redis counts as down (nil when up).
func (h *Health) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.up.Load() {
		return nil
	}
	return h.lastErr
}

// Run pings until ctx ends.
func (h *Health) Run(ctx context.Context) {
	t := time.NewTicker(h.opts.Interval)
	defer t.Stop()
	fails := 0
	for {
		err := h.ping(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			fails = 0
			h.set(true, nil)
		} else if fails++; fails >= h.opts.Failures {
			h.set(false, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check pings once now and reports the result, without changing Up.
func (h *Health) Check(ctx context.Context) error { return h.ping(ctx) }

func (h *Health) ping(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(context.WithValue(ctx, healthProbe{}, true), h.opts.Timeout)
	defer cancel()
	return h.rdb.Ping(pctx).Err()
}

func (h *Health) set(up bool, err error) {
	h.mu.Lock()
	if up == h.up.Load() {
		h.lastErr = err
		h.mu.Unlock()
		return
	}
	h.up.Store(up)
	h.lastErr = err
	if !up {
		h.downs.Add(1)
	}
	close(h.changed)
	h.changed = make(chan struct{})
	h.mu.Unlock()
	if h.opts.OnChange != nil {
		h.opts.OnChange(up, err)
	}
}

// healthProbe marks the context of Health's own PINGs, which the hook lets through.
type healthProbe struct{}

func (h *Health) refuse(ctx context.Context) error {
	if h.up.Load() || ctx.Value(healthProbe{}) != nil {
		return nil
	}
	h.mu.Lock()
	cause := h.lastErr
	h.mu.Unlock()
	if cause == nil {
		return ErrUnavailable
	}
	return fmt.Errorf("%w (%v)", ErrUnavailable, cause)
}

// DialHook is part of redis.Hook: dials go through (the PINGs need them).
func (h *Health) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return next(ctx, network, addr)
	}
}

// ProcessHook is part of redis.Hook: while Redis is down a command fails at once.
func (h *Health) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if err := h.refuse(ctx); err != nil {
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook is part of redis.Hook: while Redis is down a pipeline (or MULTI/EXEC)
// fails at once.
func (h *Health) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if err := h.refuse(ctx); err != nil {
			for _, c := range cmds {
				c.SetErr(err)
			}
			return err
		}
		return next(ctx, cmds)
	}
}
