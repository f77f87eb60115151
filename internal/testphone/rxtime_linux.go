package testphone

import (
	"encoding/binary"
	"net"
	"syscall"
	"time"
)

// Arrival times come from the kernel (SO_TIMESTAMPNS), not from when the receiver goroutine got
// to run: on a loaded test machine the goroutine can lag by tens of milliseconds and then read a
// burst, which would look like a gap in the audio that never happened on the wire.

const oobSize = 64

func enableRxTimestamps(c *net.UDPConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return false
	}
	return true
}

// rxTime turns the kernel's receive timestamp in oob into a time on the monotonic clock, or
// returns now if there is none.
func rxTime(oob []byte, now time.Time) time.Time {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return now
	}
	for _, m := range msgs {
		if m.Header.Level != syscall.SOL_SOCKET || m.Header.Type != syscall.SCM_TIMESTAMPNS || len(m.Data) < 16 {
			continue
		}
		sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
		nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
		// The kernel stamp is wall-clock; keep now's monotonic reading and step back by the
		// (wall-clock) time the packet waited.
		wait := now.Sub(time.Unix(sec, nsec))
		if wait < 0 || wait > time.Second {
			return now
		}
		return now.Add(-wait)
	}
	return now
}
