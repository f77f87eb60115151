package ari

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/earpiece/earpiece/internal/asterisktest"
)

// TestMain runs the tests (the contract tests start the shared test Asterisk, which
// asterisktest.Main stops afterwards), then checks for leaked goroutines as
// goleak.VerifyTestMain would.
func TestMain(m *testing.M) {
	code := asterisktest.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
