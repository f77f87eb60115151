//go:build !linux

package testphone

import (
	"net"
	"time"
)

const oobSize = 0

func enableRxTimestamps(*net.UDPConn) bool { return false }

func rxTime(_ []byte, now time.Time) time.Time { return now }
