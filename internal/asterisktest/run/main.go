// Command run starts the test Asterisk (Debian sid's 22.10.1 in a chroot, with asterisk-conf/ on
// free loopback ports) and keeps it running until interrupted, printing the environment variables
// that point earpiece and its tests at it:
//
//	go run ./internal/asterisktest/run
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/earpiece/earpiece/internal/asterisktest"
)

func main() {
	a, err := asterisktest.Launch()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("export EARPIECE_TEST_ARI_URL=%s EARPIECE_TEST_ARI_USER=%s EARPIECE_TEST_ARI_PASSWORD=%s EARPIECE_TEST_SIP_ADDR=%s\n",
		a.ARIURL, a.User, a.Password, a.SIPAddr())
	fmt.Printf("export EARPIECE_ARI_URL=%s EARPIECE_ARI_USER=%s EARPIECE_ARI_PASSWORD=%s\n", a.ARIURL, a.User, a.Password)
	fmt.Printf("# log: %s  (Ctrl-C stops Asterisk)\n", a.LogPath())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	a.Close()
}
