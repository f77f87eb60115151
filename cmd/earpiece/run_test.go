package main

import (
	"context"
	"errors"
	"io"
	"os"
	"reflect"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

// steps records what the fake components did, in order.
type steps struct {
	mu  sync.Mutex
	log []string
}

func (s *steps) add(step string) {
	s.mu.Lock()
	s.log = append(s.log, step)
	s.mu.Unlock()
}

func (s *steps) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

// fakeRunner runs until its ctx ends, or returns fail at once when set.
type fakeRunner struct {
	name string
	s    *steps
	fail error
}

func (f *fakeRunner) Run(ctx context.Context) error {
	if f.fail != nil {
		f.s.add(f.name + " failed")
		return f.fail
	}
	<-ctx.Done()
	f.s.add(f.name + " stopped")
	return ctx.Err()
}

type fakeARI struct{ fakeRunner }

func (f *fakeARI) CloseIdleConnections() { f.s.add("ari idle connections closed") }

// fakeHTTP serves until Shutdown, or fails at once when fail is set.
type fakeHTTP struct {
	s        *steps
	fail     error
	shutdown chan struct{}
	once     sync.Once
}

func (f *fakeHTTP) ListenAndServe() error {
	if f.fail != nil {
		f.s.add("http failed")
		return f.fail
	}
	<-f.shutdown
	return nil
}

func (f *fakeHTTP) Shutdown(context.Context) error {
	f.s.add("http shutdown")
	f.once.Do(func() { close(f.shutdown) })
	return nil
}

type fakeCloser struct {
	name string
	s    *steps
}

func (f fakeCloser) Close() error { f.s.add(f.name + " closed"); return nil }

func fakeService(s *steps) (*service, *fakeRunner, *fakeHTTP) {
	app := &fakeRunner{name: "app", s: s}
	web := &fakeHTTP{s: s, shutdown: make(chan struct{})}
	return &service{
		log:   zerolog.Nop(),
		web:   web,
		app:   app,
		ari:   &fakeARI{fakeRunner{name: "ari", s: s}},
		hub:   &fakeRunner{name: "hub", s: s},
		redis: []io.Closer{fakeCloser{"edge redis", s}, fakeCloser{"redis", s}},
	}, app, web
}

// runWithin runs svc until it returns, failing the test if that takes longer than 5 s.
func runWithin(ctx context.Context, t *testing.T, svc *service) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- svc.run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return within 5 s")
		return nil
	}
}

// TestRunStopsInOrder: whatever stops the service (a signal, App.Run returning by itself, a
// listener that cannot start), run stops HTTP, then the app, then the ARI socket (and only then
// closes the REST client's idle connections), then the hub, then Redis; it never waits for a
// component that has already returned (App.Run returning first must not block shutdown), and
// it returns what stopped it.
func TestRunStopsInOrder(t *testing.T) {
	appErr := errors.New("ari event stream closed")
	httpErr := errors.New("listen tcp 127.0.0.1:8080: bind: address already in use")
	rest := []string{"ari stopped", "ari idle connections closed", "hub stopped", "edge redis closed", "redis closed"}
	for _, tc := range []struct {
		name             string
		signal           bool
		appFail, webFail error
		want             []string
	}{
		{"signal", true, nil, nil, append([]string{"http shutdown", "app stopped"}, rest...)},
		{"app stops first", false, appErr, nil, append([]string{"app failed", "http shutdown"}, rest...)},
		{"listener fails", false, nil, httpErr, append([]string{"http failed", "http shutdown", "app stopped"}, rest...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			s := &steps{}
			svc, app, web := fakeService(s)
			app.fail, web.fail = tc.appFail, tc.webFail
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.signal {
				cancel()
			}
			want := tc.appFail // what stopped the service: nil for a signal
			if want == nil {
				want = tc.webFail
			}
			if err := runWithin(ctx, t, svc); err != want {
				t.Errorf("run = %v, want %v", err, want)
			}
			if got := s.all(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("steps = %q\nwant    %q", got, tc.want)
			}
		})
	}
}

// TestBuildWiresFromConfig: build makes every component from the sample configuration without
// connecting to anything, and fails on a configuration it cannot use.
func TestBuildWiresFromConfig(t *testing.T) {
	cfg, err := loadConfig("../../docker/earpiece.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ARI.Password = "secret" // from EARPIECE_ARI_PASSWORD in production
	svc, err := build(cfg, "test", zerolog.Nop())
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if svc.web == nil || svc.app == nil || svc.ari == nil || svc.hub == nil || len(svc.redis) != 2 {
		t.Errorf("build left a component out: %+v", svc)
	}
	for _, c := range svc.redis {
		c.Close()
	}
	cfg.Redis.URL = "http://not-redis"
	if _, err := build(cfg, "test", zerolog.Nop()); err == nil {
		t.Error("build accepted a non-Redis URL")
	}
}

// TestRunBootsTheDirectoryAndReloadsOnHangup: the directory is booted before any component
// starts (a boot failure starts nothing and closes Redis), and each SIGHUP runs the reload
// while the service runs, never after it stopped.
func TestRunBootsTheDirectoryAndReloadsOnHangup(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := &steps{}
	svc, _, _ := fakeService(s)
	bootErr := errors.New("directory invalid")
	svc.boot = func(context.Context) error { s.add("boot"); return bootErr }
	if err := runWithin(t.Context(), t, svc); err != bootErr {
		t.Fatalf("run = %v, want the boot error", err)
	}
	if got, want := s.all(), []string{"boot", "edge redis closed", "redis closed"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("steps after a failed boot = %q, want %q", got, want)
	}

	s = &steps{}
	svc, _, _ = fakeService(s)
	svc.boot = func(context.Context) error { s.add("boot"); return nil }
	hup := make(chan os.Signal)
	reloaded := make(chan struct{})
	svc.hup = hup
	svc.reload = func(context.Context) { s.add("reload"); reloaded <- struct{}{} }
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- svc.run(ctx) }()
	for range 2 {
		hup <- syscall.SIGHUP
		<-reloaded
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := s.all()
	if len(got) < 3 || got[0] != "boot" || got[1] != "reload" || got[2] != "reload" || got[len(got)-1] != "redis closed" {
		t.Fatalf("steps = %q", got)
	}
}
