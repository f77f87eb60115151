// Package freeport hands out loopback ports to test servers that must be told their ports before
// they start (Asterisk's HTTP, SIP and RTP range; redis-server).
//
// "Listen on port 0, read the port, close, give it to the server" races: between the close and the
// server's bind any other process may take the port, and on a busy machine running several test
// binaries at once it happens. Two rules remove the race instead of retrying around it:
//   - ports come from below the kernel's ephemeral range (net.ipv4.ip_local_port_range), so no
//     socket bound to port 0, in any process, can be given one of them;
//   - they are handed out in blocks, each reserved across processes by an exclusive flock on a
//     file under the system's temporary directory, held until the block is released (or the
//     process dies, which releases the lock with it), so two test binaries never share a block.
//
// A block is also probed (every port bound once for TCP and UDP) before it is handed out, so a
// port held by some unrelated program is skipped rather than discovered by a failing server.
package freeport

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// BlockSize is how many consecutive ports one Block holds.
const BlockSize = 256

// lowest is the first port blocks are taken from (well clear of the ports below it that well-known
// services use).
const lowest = 12288

// Block is a reserved run of BlockSize consecutive ports starting at Base (an even number, as
// RTP ranges need).
type Block struct {
	Base int
	lock *os.File
	once sync.Once
}

// Port returns the i-th port of the block.
func (b *Block) Port(i int) int {
	if i < 0 || i >= BlockSize {
		panic(fmt.Sprintf("freeport: port %d outside a block of %d", i, BlockSize))
	}
	return b.Base + i
}

// Release gives the block back. The server using its ports must have stopped.
func (b *Block) Release() {
	b.once.Do(func() {
		if b.lock != nil {
			b.lock.Close() // closing the descriptor drops the flock
		}
	})
}

// Reserve returns a free block.
func Reserve() (*Block, error) {
	high, err := ephemeralLow()
	if err != nil {
		return nil, err
	}
	n := (high - lowest) / BlockSize
	if n <= 0 {
		return nil, fmt.Errorf("freeport: no room below the ephemeral range (starts at %d)", high)
	}
	dir := filepath.Join(os.TempDir(), "earpiece-freeport")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, fmt.Errorf("freeport: %w", err)
	}
	// Start at a place that differs per process, so concurrent binaries rarely contend for the
	// same lock files.
	start := os.Getpid() % n
	for k := range n {
		idx := (start + k) % n
		base := lowest + idx*BlockSize
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(base)+".lock"), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			return nil, fmt.Errorf("freeport: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue // another process holds it
		}
		if !probe(base) {
			f.Close()
			continue
		}
		return &Block{Base: base, lock: f}, nil
	}
	return nil, errors.New("freeport: every block is in use")
}

// probe reports whether every port of the block can be bound on loopback, for TCP and for UDP.
func probe(base int) bool {
	for p := base; p < base+BlockSize; p++ {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		l.Close()
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}

// ephemeralLow returns the first port of the kernel's ephemeral range (32768 when unknown).
func ephemeralLow() (int, error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768, nil
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 0, fmt.Errorf("freeport: unreadable ip_local_port_range %q", b)
	}
	low, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, fmt.Errorf("freeport: ip_local_port_range %q: %w", b, err)
	}
	return low, nil
}

// singles hands out single ports from blocks this process holds, for servers that need only one.
var singles struct {
	mu     sync.Mutex
	blocks []*Block
	free   []int
}

// One returns a single free port and the function that gives it back (once its server stopped).
func One() (port int, release func(), err error) {
	singles.mu.Lock()
	defer singles.mu.Unlock()
	if len(singles.free) == 0 {
		b, err := Reserve()
		if err != nil {
			return 0, nil, err
		}
		singles.blocks = append(singles.blocks, b)
		for i := BlockSize - 1; i >= 0; i-- {
			singles.free = append(singles.free, b.Port(i))
		}
	}
	port = singles.free[len(singles.free)-1]
	singles.free = singles.free[:len(singles.free)-1]
	var once sync.Once
	return port, func() {
		once.Do(func() {
			singles.mu.Lock()
			singles.free = append(singles.free, port)
			singles.mu.Unlock()
		})
	}, nil
}
