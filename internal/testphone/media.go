package testphone

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/rs/zerolog"
)

const (
	sampleRate     = 8000
	frameSamples   = 160 // 20 ms
	frameDuration  = 20 * time.Millisecond
	rtpVersion     = 2
	dtmfEventTicks = 5  // 100 ms of event: 4 updates, then the end packets
	dtmfEndRepeats = 3  // RFC 4733 section 2.5.1.4: the final packet is sent three times
	dtmfGapTicks   = 3  // audio frames between two digits
	dtmfVolume     = 10 // -10 dBm0
)

// dtmfCodes maps digits to RFC 4733 section 3.2 event codes.
var dtmfCodes = map[rune]uint8{
	'0': 0, '1': 1, '2': 2, '3': 3, '4': 4, '5': 5, '6': 6, '7': 7, '8': 8, '9': 9,
	'*': 10, '#': 11, 'A': 12, 'B': 13, 'C': 14, 'D': 15,
}

var dtmfDigits = func() (m [16]string) {
	for r, c := range dtmfCodes {
		m[c] = string(r)
	}
	return m
}()

// media is one call's RTP session: a UDP socket on 127.0.0.1, a receiver goroutine that logs what
// arrives, and (once the call is answered) a sender goroutine paced by a 20 ms ticker.
type media struct {
	log   zerolog.Logger
	conn  *net.UDPConn
	local netip.AddrPort
	rx    *frameLog

	remote  atomic.Pointer[netip.AddrPort] // where we send; set from the remote SDP
	eventPT atomic.Int32                   // telephone-event payload type in both directions, -1 none

	tx sendState

	startOnce sync.Once
	stop      chan struct{}
	stopOnce  sync.Once
	wg        sync.WaitGroup
}

// sendState is what the sender goroutine reads on each tick; SetTone, SendDTMF and the pause
// hook change it from other goroutines.
type sendState struct {
	mu         sync.Mutex // guards the fields below
	tones      []float64
	phases     []float64 // per tone, continuous across frames
	amp        float64   // per tone, 1.0 = full scale
	seq        uint16
	ts         uint32
	ssrc       uint32
	sentFirst  bool
	pauseUntil time.Time
	queue      []*dtmfJob // digits not yet started
	cur        *dtmfJob
	sinceEvent int // audio ticks since the last event ended
	sent       []DTMFEvent
	stalls     []stall
	pending    time.Time // due time of the next frame while the sender runs; zero otherwise
	// keepAudio: while a digit is sent, each tick carries the audio frame as well as the event
	// packets (SetKeepAudioDuringDTMF); otherwise the events replace the audio, as most phones do.
	keepAudio bool
}

type dtmfJob struct {
	digit string
	code  uint8
	tick  int    // ticks of this event already sent
	ts    uint32 // RTP timestamp of the event's start
	start time.Time
	done  chan struct{} // closed after the end packets went out
}

func newMedia(ctx context.Context, log zerolog.Logger, det *detector, toneLevelDB float64, tones []float64) (*media, error) {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bind rtp: %w", err)
	}
	conn := pc.(*net.UDPConn)
	m := &media{
		log:   log,
		conn:  conn,
		local: conn.LocalAddr().(*net.UDPAddr).AddrPort(),
		rx:    newFrameLog(det),
		stop:  make(chan struct{}),
	}
	m.eventPT.Store(defaultEventPT)
	m.tx.amp = levelToAmplitude(toneLevelDB)
	m.tx.seq = uint16(rand.Uint32())
	m.tx.ts = rand.Uint32()
	m.tx.ssrc = rand.Uint32()
	m.tx.sinceEvent = dtmfGapTicks
	m.setTones(tones...)
	m.wg.Go(m.receive)
	return m, nil
}

// setRemote applies the remote SDP: where to send, and the telephone-event payload type.
func (m *media) setRemote(a sdpAudio) {
	addr := a.Addr
	m.remote.Store(&addr)
	m.eventPT.Store(int32(a.EventPT))
}

func (m *media) setTones(hz ...float64) {
	m.tx.mu.Lock()
	defer m.tx.mu.Unlock()
	var tones []float64
	for _, f := range hz {
		if f > 0 {
			tones = append(tones, f)
		}
	}
	phases := make([]float64, len(tones))
	for i, f := range tones { // keep the phase of a tone that stays
		for j, g := range m.tx.tones {
			if f == g {
				phases[i] = m.tx.phases[j]
			}
		}
	}
	m.tx.tones, m.tx.phases = tones, phases
}

func (m *media) setKeepAudio(on bool) {
	m.tx.mu.Lock()
	defer m.tx.mu.Unlock()
	m.tx.keepAudio = on
}

func (m *media) pause(d time.Duration) {
	m.tx.mu.Lock()
	defer m.tx.mu.Unlock()
	m.tx.pauseUntil = time.Now().Add(d)
}

// startSending starts the sender goroutine once.
func (m *media) startSending() {
	m.startOnce.Do(func() {
		select {
		case <-m.stop:
			return
		default:
		}
		m.wg.Go(m.send)
	})
}

// close stops both goroutines and waits for them.
func (m *media) close() {
	m.stopOnce.Do(func() {
		close(m.stop)
		m.conn.Close()
	})
	m.wg.Wait()
}

// send paces frames on an absolute 20 ms schedule. When the process was starved and the
// goroutine wakes late, it sends the frames that fell due in a burst (so RTP timestamps and the
// frame count stay right); after more than maxBurst frames of delay the backlog is dropped as
// lost. How late each frame went out is recorded (tick), for SenderStall.
func (m *media) send() {
	next := time.Now()
	m.setPending(next)
	defer m.setPending(time.Time{})
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-timer.C:
		}
		now := time.Now()
		for n := 0; !next.After(now); n++ {
			if n == maxBurst {
				lost := now.Sub(next)/frameDuration + 1
				m.skip(lost)
				next = next.Add(lost * frameDuration)
				m.setPending(next)
				break
			}
			m.tick(next)
			next = next.Add(frameDuration)
			m.setPending(next)
		}
		timer.Reset(time.Until(next))
	}
}

const (
	maxBurst       = 50                // 1 s of frames sent at once after a stall
	stallThreshold = frameDuration / 2 // lateness worth recording
)

// stall is a frame that went out late: due at due, its packets written late after that.
type stall struct {
	due  time.Time
	late time.Duration
}

func (m *media) setPending(due time.Time) {
	m.tx.mu.Lock()
	defer m.tx.mu.Unlock()
	m.tx.pending = due
}

// longestStall is the longest lateness of a frame due in [since, until) that went out after
// since, counting the frame that is overdue right now (the sender is starved at this moment) as
// late by how long it has been due.
func (m *media) longestStall(since, until time.Time) time.Duration {
	now := time.Now()
	m.tx.mu.Lock()
	defer m.tx.mu.Unlock()
	var worst time.Duration
	for _, s := range m.tx.stalls {
		if s.due.Add(s.late).After(since) && s.due.Before(until) {
			worst = max(worst, s.late)
		}
	}
	if p := m.tx.pending; !p.IsZero() && p.Before(until) && now.Sub(p) > stallThreshold {
		worst = max(worst, now.Sub(p))
	}
	return worst
}

// skip advances the timeline by n frames without sending them (they count as lost).
func (m *media) skip(n time.Duration) {
	for range n {
		m.build(time.Now(), true)
	}
}

// tick builds and sends what the next 20 ms of timeline carries: an audio frame, or the packets of
// a telephone event (with keepAudio, the audio frame and then the event's packets). Every tick
// advances the RTP timestamp by one frame, so audio after an event continues the timeline (RFC
// 4733 section 2.5.1.1). due is when the frame was due; its lateness is taken once its packets
// are written, so a preemption anywhere before the write counts.
func (m *media) tick(due time.Time) {
	pkts, finished := m.build(due, false)
	dst := m.remote.Load()
	for _, p := range pkts {
		if dst == nil {
			break
		}
		if _, err := m.conn.WriteToUDPAddrPort(p, *dst); err != nil {
			if !errors.Is(err, net.ErrClosed) {
				m.log.Debug().Err(err).Msg("rtp send")
			}
			break
		}
	}
	sent := time.Now()
	m.tx.mu.Lock()
	if late := sent.Sub(due); late > stallThreshold {
		m.tx.stalls = append(m.tx.stalls, stall{due, late})
	}
	for _, j := range finished {
		m.tx.sent = append(m.tx.sent, DTMFEvent{Digit: j.digit, Start: j.start, End: sent})
	}
	m.tx.mu.Unlock()
	for _, j := range finished {
		close(j.done)
	}
}

func (m *media) build(now time.Time, drop bool) (pkts [][]byte, finished []*dtmfJob) {
	s := &m.tx
	s.mu.Lock()
	defer s.mu.Unlock()

	ts := s.ts
	s.ts += frameSamples
	audio := m.audioLocked() // always advance the tones' phase

	if drop || now.Before(s.pauseUntil) {
		s.seq++ // as if the packet were lost on the way
		return nil, nil
	}

	eventPT := m.eventPT.Load()
	if s.cur == nil && len(s.queue) > 0 && s.sinceEvent >= dtmfGapTicks && eventPT >= 0 {
		s.cur, s.queue = s.queue[0], s.queue[1:]
		s.cur.ts, s.cur.start = ts, now
	}
	if j := s.cur; j != nil {
		if s.keepAudio {
			// The audio frame first, then the event's packets: a receiver sees the frame of this
			// tick before the event's update (or end) for the same 20 ms.
			first := !s.sentFirst
			s.sentFirst = true
			pkts = append(pkts, m.packetLocked(ptPCMU, first, ts, audio))
		}
		j.tick++
		duration := uint16(j.tick * frameSamples)
		repeats, end := 1, j.tick >= dtmfEventTicks
		if end {
			repeats = dtmfEndRepeats
		}
		for range repeats {
			payload := []byte{j.code, dtmfVolume, 0, 0}
			if end {
				payload[1] |= 0x80
			}
			binary.BigEndian.PutUint16(payload[2:], duration)
			pkts = append(pkts, m.packetLocked(uint8(eventPT), j.tick == 1, j.ts, payload))
		}
		if end {
			finished = append(finished, j)
			s.cur, s.sinceEvent = nil, 0
		}
		return pkts, finished
	}

	s.sinceEvent++
	first := !s.sentFirst
	s.sentFirst = true
	return [][]byte{m.packetLocked(ptPCMU, first, ts, audio)}, nil
}

// audioLocked renders one frame of the current tones in mu-law.
func (m *media) audioLocked() []byte {
	s := &m.tx
	out := make([]byte, frameSamples)
	scale := s.amp * 32767
	for i := range out {
		var v float64
		for k, f := range s.tones {
			v += math.Sin(s.phases[k])
			s.phases[k] += 2 * math.Pi * f / sampleRate
			if s.phases[k] > 2*math.Pi {
				s.phases[k] -= 2 * math.Pi
			}
		}
		out[i] = mulawEncode(int16(max(min(v*scale, 32767), -32768)))
	}
	return out
}

func (m *media) packetLocked(pt uint8, marker bool, ts uint32, payload []byte) []byte {
	s := &m.tx
	p := rtp.Packet{
		Header: rtp.Header{
			Version:        rtpVersion,
			Marker:         marker,
			PayloadType:    pt,
			SequenceNumber: s.seq,
			Timestamp:      ts,
			SSRC:           s.ssrc,
		},
		Payload: payload,
	}
	s.seq++
	b, err := p.Marshal()
	if err != nil { // cannot happen for a plain header
		panic(fmt.Sprintf("marshal rtp: %v", err))
	}
	return b
}

// sendDTMF queues digits and waits until the last one's end packets are sent.
func (m *media) sendDTMF(ctx context.Context, ended <-chan struct{}, digits string) error {
	if m.eventPT.Load() < 0 {
		return errors.New("remote did not negotiate telephone-event")
	}
	jobs := make([]*dtmfJob, 0, len(digits))
	for _, r := range digits {
		code, ok := dtmfCodes[r]
		if !ok {
			return fmt.Errorf("not a DTMF digit: %q", r)
		}
		jobs = append(jobs, &dtmfJob{digit: string(r), code: code, done: make(chan struct{})})
	}
	if len(jobs) == 0 {
		return nil
	}
	m.tx.mu.Lock()
	m.tx.queue = append(m.tx.queue, jobs...)
	m.tx.mu.Unlock()
	select {
	case <-jobs[len(jobs)-1].done:
		return nil
	case <-ctx.Done():
		m.dropQueued(jobs)
		return ctx.Err()
	case <-ended:
		return ErrCallEnded
	}
}

// dropQueued removes jobs that have not started yet.
func (m *media) dropQueued(jobs []*dtmfJob) {
	m.tx.mu.Lock()
	defer m.tx.mu.Unlock()
	kept := m.tx.queue[:0]
	for _, q := range m.tx.queue {
		mine := false
		for _, j := range jobs {
			mine = mine || q == j
		}
		if !mine {
			kept = append(kept, q)
		}
	}
	m.tx.queue = kept
}

func (m *media) dtmfSent() []DTMFEvent {
	m.tx.mu.Lock()
	defer m.tx.mu.Unlock()
	return append([]DTMFEvent(nil), m.tx.sent...)
}

// receive logs every packet until the socket closes: PCMU frames through the detector, telephone
// events as digits. Other payload types (RTCP that lands here, comfort noise) are ignored.
func (m *media) receive() {
	buf := make([]byte, 1500)
	var oob []byte
	if enableRxTimestamps(m.conn) {
		oob = make([]byte, oobSize)
	}
	samples := make([]int16, 0, frameSamples)
	det := m.rx.det
	for {
		n, oobn, _, _, err := m.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			m.log.Debug().Err(err).Msg("rtp receive")
			continue
		}
		at := rxTime(oob[:oobn], time.Now())
		var p rtp.Packet
		if err := p.Unmarshal(buf[:n]); err != nil || p.Version != rtpVersion {
			continue
		}
		switch pt := int32(p.PayloadType); {
		case pt == ptPCMU:
			samples = samples[:0]
			for _, b := range p.Payload {
				samples = append(samples, mulawDecode(b))
			}
			levels := make([]float64, len(det.watch))
			present, rms := det.measure(samples, levels)
			m.rx.addAudio(rxFrame{
				at: at, seq: p.SequenceNumber, ts: p.Timestamp, ssrc: p.SSRC, samples: len(samples),
				levels: levels, present: present, rms: rms,
			})
		case pt == m.eventPT.Load() && len(p.Payload) >= 4:
			code := p.Payload[0]
			if int(code) >= len(dtmfDigits) {
				continue // not a DTMF event (flash, tones)
			}
			m.rx.addEvent(at, p.SSRC, p.Timestamp, dtmfDigits[code], p.Payload[1]&0x80 != 0)
		}
	}
}
