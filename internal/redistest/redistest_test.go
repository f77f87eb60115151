package redistest_test

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/earpiece/earpiece/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestStartServesAnEmptyPrivateServer(t *testing.T) {
	if _, ok := lookupEnv(); ok {
		t.Skipf("%s is set", redistest.EnvURL)
	}
	srv := redistest.Start(t)
	host, _, err := net.SplitHostPort(srv.Addr())
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("Addr() = %q, want 127.0.0.1:port", srv.Addr())
	}
	if srv.URL() != "redis://"+srv.Addr()+"/0" {
		t.Errorf("URL() = %q", srv.URL())
	}
	opt, err := redis.ParseURL(srv.URL())
	if err != nil || opt.Addr != srv.Addr() || opt.DB != 0 {
		t.Fatalf("ParseURL(URL()) = %+v, %v", opt, err)
	}

	ctx := ctxTimeout(t, 5*time.Second)
	c := srv.Client(t)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE = %d, %v; want an empty server", n, err)
	}
	// No persistence: --save "" and --appendonly no.
	cfg, err := c.ConfigGet(ctx, "save").Result()
	if err != nil || cfg["save"] != "" {
		t.Errorf("CONFIG GET save = %v, %v; want empty", cfg, err)
	}
	cfg, err = c.ConfigGet(ctx, "appendonly").Result()
	if err != nil || cfg["appendonly"] != "no" {
		t.Errorf("CONFIG GET appendonly = %v, %v; want no", cfg, err)
	}
}

func TestCleanupStopsTheServer(t *testing.T) {
	if _, ok := lookupEnv(); ok {
		t.Skipf("%s is set", redistest.EnvURL)
	}
	var addr string
	t.Run("inner", func(t *testing.T) {
		addr = redistest.Start(t).Addr()
	})
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		conn.Close()
		t.Fatalf("redis-server on %s still accepts connections after its test ended", addr)
	}
}

func TestStopAndRestartKeepThePort(t *testing.T) {
	if _, ok := lookupEnv(); ok {
		t.Skipf("%s is set", redistest.EnvURL)
	}
	srv := redistest.Start(t)
	c := srv.Client(t)
	if err := c.Set(ctxTimeout(t, 5*time.Second), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	srv.Stop() // idempotent
	start := time.Now()
	if err := c.Ping(ctxTimeout(t, 2*time.Second)).Err(); err == nil {
		t.Fatal("ping succeeded while the server was stopped")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("ping to a stopped server took %v", d)
	}

	srv.Restart()
	// The same client reconnects by itself.
	ctx := ctxTimeout(t, 10*time.Second)
	for {
		err := c.Ping(ctx).Err()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("client did not reconnect after Restart: %v", err)
		}
	}
	// Restarted empty: no persistence.
	if err := c.Get(ctx, "k").Err(); err != redis.Nil {
		t.Errorf("GET k after restart = %v, want redis.Nil", err)
	}
}

func TestPauseAndResume(t *testing.T) {
	if _, ok := lookupEnv(); ok {
		t.Skipf("%s is set", redistest.EnvURL)
	}
	srv := redistest.Start(t)
	c := srv.Client(t)
	if err := c.Set(ctxTimeout(t, 5*time.Second), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	start := time.Now()
	if err := c.Get(ctxTimeout(t, 200*time.Millisecond), "k").Err(); err == nil {
		t.Fatal("GET answered by a paused server")
	}
	// Client() sets ContextTimeoutEnabled, so the deadline bounds the read.
	if d := time.Since(start); d > time.Second {
		t.Errorf("GET on a paused server took %v with a 200ms deadline", d)
	}
	srv.Resume()
	if v, err := c.Get(ctxTimeout(t, 5*time.Second), "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET after Resume = %q, %v", v, err)
	}
	srv.Pause() // cleanup must stop a paused server too
}

func TestExternalServer(t *testing.T) {
	if _, ok := lookupEnv(); ok {
		t.Skipf("%s is set", redistest.EnvURL)
	}
	// A private server plays the external one.
	backing := redistest.Start(t)
	bc := backing.Client(t)
	ctx := ctxTimeout(t, 10*time.Second)

	for _, tc := range []struct {
		name, url string
		db        int
	}{
		{"db in path", "redis://" + backing.Addr() + "/3", 3},
		{"no db", "redis://" + backing.Addr(), redistest.DefaultExternalDB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(redistest.EnvURL, tc.url)
			other := redis.NewClient(&redis.Options{Addr: backing.Addr(), DB: tc.db})
			defer other.Close()
			if err := other.Set(ctx, "left-over", "x", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if err := bc.Set(ctx, "db0-key", "x", 0).Err(); err != nil {
				t.Fatal(err)
			}

			var inner *testing.T
			t.Run("use", func(t *testing.T) {
				inner = t
				srv := redistest.Start(t)
				if srv.Addr() != backing.Addr() || srv.DB() != tc.db {
					t.Fatalf("Start = %s db %d, want %s db %d", srv.Addr(), srv.DB(), backing.Addr(), tc.db)
				}
				if opt, err := redis.ParseURL(srv.URL()); err != nil || opt.Addr != backing.Addr() || opt.DB != tc.db {
					t.Errorf("URL() = %q parses to %+v, %v", srv.URL(), opt, err)
				}
				c := srv.Client(t)
				if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
					t.Fatalf("DB %d not flushed before the test: DBSIZE = %d, %v", tc.db, n, err)
				}
				if err := c.Set(ctx, "written-by-test", "x", 0).Err(); err != nil {
					t.Fatal(err)
				}
				srv.Stop() // skips this test: the external server is not ours
				t.Error("Stop returned on an external server")
			})
			if inner == nil || !inner.Skipped() {
				t.Error("Stop on an external server did not skip")
			}
			if n, err := other.DBSize(ctx).Result(); err != nil || n != 0 {
				t.Errorf("DB %d not flushed after the test: DBSIZE = %d, %v", tc.db, n, err)
			}
			if err := bc.Get(ctx, "db0-key").Err(); err != nil {
				t.Errorf("DB 0 touched: GET db0-key: %v", err)
			}
		})
	}
}

func lookupEnv() (string, bool) {
	v := os.Getenv(redistest.EnvURL)
	return v, v != ""
}
