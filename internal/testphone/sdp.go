package testphone

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Offer/answer of one audio stream (RFC 3264) in SDP (RFC 4566), only as much as a phone that
// speaks PCMU and telephone-event needs.

const (
	ptPCMU = 0 // RFC 3551 static payload type

	// defaultEventPT is the dynamic payload type we offer for telephone-event (Asterisk's choice
	// too).
	defaultEventPT = 101
)

var errNoAudio = errors.New("sdp: no usable audio stream")

// sdpAudio is the first audio stream of a session description.
type sdpAudio struct {
	Addr      netip.AddrPort // connection address (media-level c= over session-level) and m= port
	Formats   []int          // payload types of the m= line, in order
	EventPT   int            // payload type of telephone-event/8000, -1 when absent
	Direction string         // sendrecv, sendonly, recvonly or inactive
	PTime     int            // a=ptime in ms, 0 when absent
}

func (a sdpAudio) hasFormat(pt int) bool {
	for _, f := range a.Formats {
		if f == pt {
			return true
		}
	}
	return false
}

// parseSDP reads the first m=audio stream. It fails when there is none, when it has no connection
// address or when its port is 0 (a rejected stream).
func parseSDP(b []byte) (sdpAudio, error) {
	var (
		sessionAddr, mediaAddr netip.Addr
		a                      = sdpAudio{EventPT: -1, Direction: "sendrecv"}
		port                   = -1
		inAudio, seenMedia     bool
		sessionDir             string
	)
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 2 || line[1] != '=' {
			continue
		}
		key, val := line[0], line[2:]
		if key == 'm' {
			if inAudio {
				break // only the first audio stream matters
			}
			seenMedia = true
			f := strings.Fields(val)
			if len(f) < 3 || f[0] != "audio" {
				continue
			}
			p, err := strconv.Atoi(strings.SplitN(f[1], "/", 2)[0])
			if err != nil || p < 0 || p > 65535 {
				return sdpAudio{}, fmt.Errorf("sdp: bad port in m=%s", val)
			}
			port, inAudio = p, true
			for _, s := range f[3:] {
				pt, err := strconv.Atoi(s)
				if err != nil || pt < 0 || pt > 127 {
					return sdpAudio{}, fmt.Errorf("sdp: bad format %q in m=%s", s, val)
				}
				a.Formats = append(a.Formats, pt)
			}
			continue
		}
		if seenMedia && !inAudio {
			continue // attributes of another stream
		}
		switch key {
		case 'c':
			f := strings.Fields(val)
			if len(f) < 3 || f[0] != "IN" {
				continue
			}
			addr, err := netip.ParseAddr(strings.SplitN(f[2], "/", 2)[0])
			if err != nil {
				return sdpAudio{}, fmt.Errorf("sdp: bad connection address in c=%s", val)
			}
			if inAudio {
				mediaAddr = addr
			} else {
				sessionAddr = addr
			}
		case 'a':
			name, value, _ := strings.Cut(val, ":")
			switch name {
			case "sendrecv", "sendonly", "recvonly", "inactive":
				if inAudio {
					a.Direction = name
				} else {
					sessionDir = name
				}
			case "ptime":
				if inAudio {
					a.PTime, _ = strconv.Atoi(strings.TrimSpace(value))
				}
			case "rtpmap":
				if !inAudio {
					continue
				}
				ptStr, enc, _ := strings.Cut(value, " ")
				pt, err := strconv.Atoi(ptStr)
				if err != nil {
					continue
				}
				if strings.EqualFold(strings.TrimSpace(enc), "telephone-event/8000") && a.hasFormat(pt) {
					a.EventPT = pt
				}
			}
		}
	}
	if !inAudio {
		return sdpAudio{}, errNoAudio
	}
	if port == 0 {
		return sdpAudio{}, fmt.Errorf("%w: audio stream rejected (port 0)", errNoAudio)
	}
	addr := mediaAddr
	if !addr.IsValid() {
		addr = sessionAddr
	}
	if !addr.IsValid() {
		return sdpAudio{}, fmt.Errorf("%w: no connection address", errNoAudio)
	}
	if sessionDir != "" && a.Direction == "sendrecv" {
		a.Direction = sessionDir
	}
	a.Addr = netip.AddrPortFrom(addr.Unmap(), uint16(port))
	return a, nil
}

// answerDirection is the direction an answerer takes for an offered one (RFC 3264 section 6.1).
func answerDirection(offered string) string {
	switch offered {
	case "sendonly":
		return "recvonly"
	case "recvonly":
		return "sendonly"
	case "inactive":
		return "inactive"
	default:
		return "sendrecv"
	}
}

// buildSDP writes our audio stream: PCMU and, when eventPT >= 0, telephone-event/8000 0-16,
// 20 ms packets.
func buildSDP(sessID, version uint64, addr netip.AddrPort, eventPT int, direction string) []byte {
	var b strings.Builder
	ip := addr.Addr().String()
	fmts := "0"
	if eventPT >= 0 {
		fmts += " " + strconv.Itoa(eventPT)
	}
	fmt.Fprintf(&b, "v=0\r\n")
	fmt.Fprintf(&b, "o=- %d %d IN IP4 %s\r\n", sessID, version, ip)
	fmt.Fprintf(&b, "s=earpiece testphone\r\n")
	fmt.Fprintf(&b, "c=IN IP4 %s\r\n", ip)
	fmt.Fprintf(&b, "t=0 0\r\n")
	fmt.Fprintf(&b, "m=audio %d RTP/AVP %s\r\n", addr.Port(), fmts)
	fmt.Fprintf(&b, "a=rtpmap:0 PCMU/8000\r\n")
	if eventPT >= 0 {
		fmt.Fprintf(&b, "a=rtpmap:%d telephone-event/8000\r\n", eventPT)
		fmt.Fprintf(&b, "a=fmtp:%d 0-16\r\n", eventPT)
	}
	fmt.Fprintf(&b, "a=ptime:20\r\n")
	fmt.Fprintf(&b, "a=%s\r\n", direction)
	return []byte(b.String())
}
