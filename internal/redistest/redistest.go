// Package redistest gives tests a real, throwaway Redis.
//
// Start launches a private redis-server on a free loopback port (no
// persistence, data directory under t.TempDir) and stops it when the test
// ends. Tests of "Redis unavailable" use Stop and Restart, which keep the
// port so an application's client can reconnect on its own.
//
// When EARPIECE_TEST_REDIS_URL is set, Start uses that server instead: it
// selects the URL's DB number (DefaultExternalDB when the URL names none),
// flushes it before and after the test, and serialises tests across test
// binaries on this machine with a file lock, since `go test ./...` runs
// packages in parallel against the same DB. Stop and Restart skip the test
// on an external server.
//
// When redis-server is not installed, Start installs the Debian package
// (apt-get install -y redis-server) if it runs as root with apt-get
// available, and otherwise fails the test saying how to get one.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/earpiece/earpiece/internal/freeport"
)

// EnvURL names the environment variable that points the tests at an existing
// Redis (for example redis://127.0.0.1:6379/15) instead of a private one.
const EnvURL = "EARPIECE_TEST_REDIS_URL"

// DefaultExternalDB is the DB flushed on an external server whose URL names
// no DB, so that a bare URL never wipes DB 0.
const DefaultExternalDB = 15

const (
	startTimeout = 10 * time.Second
	stopTimeout  = 10 * time.Second
	// lockTimeout bounds the wait for another test binary that holds the
	// external server.
	lockTimeout = 5 * time.Minute
	// logTail is how much of redis.log a failed test prints.
	logTail = 32 << 10
)

// Server is one Redis used by one test.
type Server struct {
	tb       testing.TB
	external bool
	addr     string // host:port
	db       int
	opts     *redis.Options // client options without ContextTimeoutEnabled
	url      url.URL        // what URL returns
	dir      string         // private server: data dir and log
	port     int
	persist  bool // private server: append-only file, fsynced always (StartPersistent)

	mu   sync.Mutex
	proc *process // running private server, nil when stopped
}

// process is one redis-server run; done closes when it has exited.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, valid after done closes
}

// Start gives the test a Redis that is empty and answering PING, and tears
// it down in t.Cleanup.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return start(tb, false)
}

// StartPersistent is Start with persistence, as production runs Redis (the compose stack's has
// an append-only file): every write is in the server's append-only file, fsynced, before it is
// answered, so Stop and Restart keep the data, the way a Redis restart does in production. On
// an external server (EnvURL) it is Start.
func StartPersistent(tb testing.TB) *Server {
	tb.Helper()
	return start(tb, true)
}

func start(tb testing.TB, persist bool) *Server {
	tb.Helper()
	if raw := os.Getenv(EnvURL); raw != "" {
		return startExternal(tb, raw)
	}
	bin := redisServerBinary(tb)
	s := &Server{tb: tb, dir: tb.TempDir(), persist: persist}
	// The port comes from internal/freeport (reserved across test binaries, below the ephemeral
	// range), so nobody else binds it between now and redis-server's start.
	port, release, err := freeport.One()
	if err != nil {
		tb.Fatalf("redistest: finding a free port: %v", err)
	}
	s.port = port
	s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.opts = &redis.Options{Addr: s.addr}
	s.url = url.URL{Scheme: "redis", Host: s.addr, Path: "/0"}
	lastErr := s.launch(bin)
	if lastErr != nil {
		s.printLog()
		release()
		tb.Fatalf("redistest: starting redis-server: %v", lastErr)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			s.printLog()
		}
		if err := s.stop(); err != nil {
			tb.Errorf("redistest: stopping redis-server: %v", err)
		}
		release()
	})
	return s
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return s.addr }

// DB is the database number the test should use.
func (s *Server) DB() int { return s.db }

// URL is a redis:// URL for the server and DB, as redis.ParseURL reads it
// (for an external server: EARPIECE_TEST_REDIS_URL with the DB filled in).
func (s *Server) URL() string { return s.url.String() }

// Options are client options for the server and DB. ContextTimeoutEnabled
// is set, as the application sets it, so that a ctx deadline bounds socket
// reads and writes too (go-redis otherwise waits ReadTimeout, 5s by default,
// on a server that accepted a command and never answers).
func (s *Server) Options() *redis.Options {
	o := *s.opts
	o.ContextTimeoutEnabled = true
	return &o
}

// Client returns a new client for the server, closed in t.Cleanup.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(s.Options())
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop stops the private server and waits until it has exited. Clients see
// connection errors until Restart. It skips the test on an external server.
func (s *Server) Stop() {
	s.tb.Helper()
	if s.external {
		s.tb.Skipf("redistest: Stop needs a private redis-server (%s is set)", EnvURL)
	}
	if err := s.stop(); err != nil {
		s.tb.Fatalf("redistest: stopping redis-server: %v", err)
	}
}

// Restart starts the private server again on the same port, empty (it has no
// persistence; a StartPersistent server keeps its data), and waits until it answers
// PING. It stops it first if it is running.
func (s *Server) Restart() {
	s.tb.Helper()
	if s.external {
		s.tb.Skipf("redistest: Restart needs a private redis-server (%s is set)", EnvURL)
	}
	if err := s.stop(); err != nil {
		s.tb.Fatalf("redistest: stopping redis-server: %v", err)
	}
	bin := redisServerBinary(s.tb)
	// The port was ours a moment ago; another process taking it in between is
	// unlikely but possible, so allow a couple of attempts.
	var err error
	for range 3 {
		if err = s.launch(bin); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.printLog()
	s.tb.Fatalf("redistest: restarting redis-server on %s: %v", s.addr, err)
}

// Pause freezes the private server (SIGSTOP): connections are still
// accepted by the kernel but nothing is answered, the way a wedged or
// partitioned Redis looks to a client. Resume undoes it; cleanup resumes a
// paused server before stopping it. It skips the test on an external server.
func (s *Server) Pause() {
	s.tb.Helper()
	s.signal("Pause", pauseSignal)
}

// Resume lets a paused private server run again.
func (s *Server) Resume() {
	s.tb.Helper()
	s.signal("Resume", resumeSignal)
}

func (s *Server) signal(op string, sig os.Signal) {
	s.tb.Helper()
	if s.external {
		s.tb.Skipf("redistest: %s needs a private redis-server (%s is set)", op, EnvURL)
	}
	if sig == nil {
		s.tb.Skipf("redistest: %s is not supported on this platform", op)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		s.tb.Fatalf("redistest: %s: redis-server is not running", op)
	}
	if err := s.proc.cmd.Process.Signal(sig); err != nil {
		s.tb.Fatalf("redistest: %s: %v", op, err)
	}
}

// launch starts redis-server on s.port and waits for PING.
func (s *Server) launch(bin string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("already running")
	}
	appendonly := []string{"--appendonly", "no"}
	if s.persist {
		appendonly = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	args := append([]string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
	}, appendonly...)
	args = append(args,
		"--dir", s.dir,
		"--logfile", "redis.log", // relative to --dir
		"--daemonize", "no",
	)
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec %s: %w", bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := waitPing(ctx, s.addr, p.done); err != nil {
		_ = cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("redis-server on %s: %w", s.addr, err)
	}
	s.proc = p
	return nil
}

// stop ends the private server if it runs: SIGTERM, then SIGKILL after
// stopTimeout.
func (s *Server) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	if resumeSignal != nil {
		_ = p.cmd.Process.Signal(resumeSignal) // a paused server ignores SIGTERM
	}
	_ = p.cmd.Process.Signal(terminate)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("redis-server pid %d ignored SIGTERM for %v; killed", p.cmd.Process.Pid, stopTimeout)
	}
}

// printLog logs the tail of the private server's log.
func (s *Server) printLog() {
	if s.dir == "" {
		return
	}
	b, err := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	if err != nil {
		s.tb.Logf("redistest: no redis log: %v", err)
		return
	}
	if len(b) > logTail {
		b = b[len(b)-logTail:]
	}
	s.tb.Logf("redistest: redis-server log (%s):\n%s", s.addr, b)
}

// waitPing polls addr with a raw PING until it answers +PONG, the process
// exits (exited closes) or ctx ends.
func waitPing(ctx context.Context, addr string, exited <-chan struct{}) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		if lastErr = ping(ctx, addr); lastErr == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before answering PING (last error: %v)", lastErr)
		case <-ctx.Done():
			return fmt.Errorf("no PONG: %w (last error: %v)", ctx.Err(), lastErr)
		case <-tick.C:
		}
	}
}

func ping(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	// While loading, Redis answers -LOADING; only +PONG means ready.
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// startExternal uses the server named by raw.
func startExternal(tb testing.TB, raw string) *Server {
	tb.Helper()
	opt, err := redis.ParseURL(raw)
	if err != nil {
		tb.Fatalf("redistest: %s=%q: %v", EnvURL, raw, err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		tb.Fatalf("redistest: %s=%q: %v", EnvURL, raw, err)
	}
	if strings.Trim(u.Path, "/") == "" && u.Query().Get("db") == "" {
		opt.DB = DefaultExternalDB
		if u.Scheme != "unix" {
			u.Path = "/" + strconv.Itoa(opt.DB)
		} else {
			q := u.Query()
			q.Set("db", strconv.Itoa(opt.DB))
			u.RawQuery = q.Encode()
		}
	}
	s := &Server{
		tb:       tb,
		external: true,
		addr:     opt.Addr,
		db:       opt.DB,
		opts:     opt,
		url:      *u,
	}
	unlock := lockExternal(tb, fmt.Sprintf("%s-%d", opt.Addr, opt.DB))
	tb.Cleanup(unlock)

	c := redis.NewClient(s.Options())
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := c.FlushDB(ctx).Err(); err != nil {
		tb.Fatalf("redistest: flushing DB %d of %s (%s): %v", opt.DB, opt.Addr, EnvURL, err)
	}
	// Registered after unlock, so it runs before it (cleanups run LIFO).
	tb.Cleanup(func() {
		c := redis.NewClient(s.Options())
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		if err := c.FlushDB(ctx).Err(); err != nil {
			tb.Errorf("redistest: flushing DB %d of %s after the test: %v", opt.DB, opt.Addr, err)
		}
	})
	return s
}

var (
	installOnce sync.Once
	installBin  string
	installErr  error
)

// redisServerBinary finds redis-server, installing the Debian package once
// per test binary when it is missing.
func redisServerBinary(tb testing.TB) string {
	tb.Helper()
	installOnce.Do(func() { installBin, installErr = findOrInstall() })
	if installErr != nil {
		tb.Fatalf("redistest: %v", installErr)
	}
	return installBin
}

func findOrInstall() (string, error) {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	// Debian puts it in /usr/bin, but PATH may be minimal.
	for _, p := range []string{"/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	const hint = "install it (Debian/Ubuntu: apt-get install -y redis-server) or set " + EnvURL +
		" to an existing server (e.g. redis://127.0.0.1:6379/15; that DB is flushed)"
	aptGet, err := exec.LookPath("apt-get")
	if err != nil {
		return "", fmt.Errorf("redis-server not found in PATH and apt-get is not available; %s", hint)
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("redis-server not found in PATH and not running as root to apt-get it; %s", hint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	install := func() ([]byte, error) {
		cmd := exec.CommandContext(ctx, aptGet, "install", "-y", "--no-install-recommends",
			"-o", "DPkg::Lock::Timeout=120", "redis-server")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	if _, err := install(); err != nil {
		// Fresh CI images often have no package lists yet.
		upd := exec.CommandContext(ctx, aptGet, "update")
		upd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if uout, uerr := upd.CombinedOutput(); uerr != nil {
			return "", fmt.Errorf("redis-server not found; apt-get update failed: %v\n%s\n%s", uerr, tail(uout), hint)
		}
		if out, err := install(); err != nil {
			return "", fmt.Errorf("redis-server not found; apt-get install -y redis-server failed: %v\n%s\n%s", err, tail(out), hint)
		}
	}
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/redis-server"); err == nil {
		return "/usr/bin/redis-server", nil
	}
	return "", fmt.Errorf("apt-get installed redis-server but it is not in PATH; %s", hint)
}

func tail(b []byte) []byte {
	const n = 4 << 10
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
