//go:build unix

package redistest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Signals sent to redis-server: terminate asks it to shut down cleanly;
// pause and resume freeze and thaw it.
var (
	terminate    os.Signal = syscall.SIGTERM
	pauseSignal  os.Signal = syscall.SIGSTOP
	resumeSignal os.Signal = syscall.SIGCONT
)

// sysProcAttr puts redis-server in its own process group, so a Ctrl-C aimed
// at `go test` reaches only the test binary, whose cleanup stops the server.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// lockExternal takes an exclusive flock named after the external server and
// DB, so test binaries on this machine use it one test at a time. The lock
// is released when the returned func runs or the process dies.
func lockExternal(tb testing.TB, name string) (unlock func()) {
	tb.Helper()
	safe := strings.NewReplacer("/", "_", ":", "_", "\\", "_").Replace(name)
	path := filepath.Join(os.TempDir(), "earpiece-redistest-"+safe+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		tb.Fatalf("redistest: opening lock %s: %v", path, err)
	}
	deadline := time.Now().Add(lockTimeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			tb.Fatalf("redistest: locking %s: %v", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			tb.Fatalf("redistest: %s still locked after %v: another test holds the external Redis "+
				"(a test that calls Start twice with %s set would wait on itself)", path, lockTimeout, EnvURL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}
}
