//go:build !unix

package redistest

import (
	"os"
	"syscall"
	"testing"
)

// No SIGTERM/SIGSTOP here: kill to stop; Pause and Resume skip.
var (
	terminate    os.Signal = os.Kill
	pauseSignal  os.Signal
	resumeSignal os.Signal
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

// lockExternal does not serialise test binaries on this platform; run
// `go test -p 1` when sharing one external Redis.
func lockExternal(testing.TB, string) (unlock func()) { return func() {} }
