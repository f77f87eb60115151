package freeport

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

func TestBlocksAreDistinctAndBelowTheEphemeralRange(t *testing.T) {
	low, err := ephemeralLow()
	if err != nil {
		t.Fatal(err)
	}
	a, err := Reserve()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	b, err := Reserve()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if a.Base == b.Base {
		t.Fatalf("two reservations got the same block %d", a.Base)
	}
	for _, blk := range []*Block{a, b} {
		if blk.Base%2 != 0 || blk.Base < lowest || blk.Port(BlockSize-1) >= low {
			t.Errorf("block %d..%d: want even, >= %d and below the ephemeral range %d", blk.Base, blk.Port(BlockSize-1), lowest, low)
		}
	}
}

func TestReleasedBlockCanBeTakenAgain(t *testing.T) {
	a, err := Reserve()
	if err != nil {
		t.Fatal(err)
	}
	base := a.Base
	a.Release()
	a.Release() // twice is harmless
	b, err := Reserve()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if b.Base != base {
		t.Errorf("after release got block %d, want the released %d (same process, same start)", b.Base, base)
	}
}

// A port that some unrelated program holds makes its block unusable: Reserve skips it.
func TestBusyPortSkipsItsBlock(t *testing.T) {
	a, err := Reserve()
	if err != nil {
		t.Fatal(err)
	}
	base := a.Base
	a.Release()
	c, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+77)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, err := Reserve()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if b.Base == base {
		t.Fatalf("got block %d although port %d in it is bound", base, base+77)
	}
}

// Another process holding a block (its flock) keeps it from this one.
func TestOtherProcessesBlocksAreSkipped(t *testing.T) {
	if os.Getenv("FREEPORT_CHILD") != "" {
		b, err := Reserve()
		if err != nil {
			os.Exit(2)
		}
		os.Stdout.WriteString(strconv.Itoa(b.Base) + "\n")
		os.Stdin.Read(make([]byte, 1)) // hold the block until the parent closes stdin
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestOtherProcessesBlocksAreSkipped$")
	cmd.Env = append(os.Environ(), "FREEPORT_CHILD=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	buf := make([]byte, 16)
	n, err := out.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(string(buf[:n-1]))
	if err != nil {
		t.Fatalf("child said %q", buf[:n])
	}
	// Take every block there is: the child's must not be among them.
	var held []*Block
	defer func() {
		for _, b := range held {
			b.Release()
		}
	}()
	for {
		b, err := Reserve()
		if err != nil {
			break
		}
		held = append(held, b)
		if b.Base == child {
			t.Fatalf("got block %d, which the child process holds", child)
		}
	}
	if len(held) == 0 {
		t.Fatal("no block at all")
	}
}

func TestOneHandsOutDistinctPorts(t *testing.T) {
	seen := map[int]bool{}
	var releases []func()
	for range BlockSize + 3 { // more than one block's worth
		p, release, err := One()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		releases = append(releases, release)
	}
	for _, r := range releases {
		r()
	}
	p, release, err := One()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if !seen[p] {
		t.Errorf("after release got new port %d; want a released one reused", p)
	}
}
