package outbound

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/earpiece/earpiece/internal/redistest"
	"github.com/earpiece/earpiece/store"
)

// TestMain checks for leaked goroutines after the tests.
func TestMain(m *testing.M) {
	// go-redis logs every failed dial; the Redis-down tests make many.
	redis.SetLogger(quietLogger{})
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// t0 is the tests' "now".
var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// env is a hub configuration over a real Redis.
type env struct {
	t   testing.TB
	srv *redistest.Server
	rdb *redis.Client
	st  *store.Store
	cfg Config
}

type option func(*Config)

func newEnv(t testing.TB, opts ...option) *env {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	e := &env{t: t, srv: srv, rdb: rdb, st: store.New(rdb, store.Options{})}
	e.cfg = Config{
		Store:  e.st,
		Clock:  func() time.Time { return t0 },
		Logger: zerolog.Nop(),
		// Fast enough for tests: a stopping hub waits at most half a second for attempts in
		// progress, and an idle endpoint looks at the outbox every 50 ms.
		DrainTimeout: 500 * time.Millisecond,
		PollInterval: 50 * time.Millisecond,
	}
	for _, o := range opts {
		o(&e.cfg)
	}
	return e
}

// runHub starts a Hub for the env's config and stops it when the test ends.
func (e *env) runHub() *Hub {
	e.t.Helper()
	h, err := New(e.cfg)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = h.Run(ctx)
	}()
	e.t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			e.t.Error("Hub.Run did not return after cancel")
		}
	})
	return h
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
