package scale

import (
	"bufio"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Percentile is the nearest-rank p-th percentile (0 < p <= 100) of ds: the smallest value that
// at least p% of ds are at or below. Zero for no values.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 || p <= 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(p/100*float64(len(s)) + 0.999999999)
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// RTPFrame is what loss counting needs of a received RTP packet.
type RTPFrame struct {
	SSRC uint32
	Seq  uint16
}

// Loss counts the packets missing from frames (in arrival order), per RTP stream (SSRC): the
// extended sequence numbers (RFC 3550 appendix A.1, wrap-around unrolled) span expected packets,
// of which received arrived. Duplicates count once; reordering is no loss.
func Loss(frames []RTPFrame) (expected, received int) {
	type stream struct {
		last     int64 // extended seq of the last packet
		min, max int64
		seen     map[int64]bool
	}
	streams := map[uint32]*stream{}
	for _, f := range frames {
		s := streams[f.SSRC]
		if s == nil {
			e := int64(f.Seq)
			streams[f.SSRC] = &stream{last: e, min: e, max: e, seen: map[int64]bool{e: true}}
			continue
		}
		e := s.last + int64(int16(f.Seq-uint16(s.last)))
		s.last = e
		s.min, s.max = min(s.min, e), max(s.max, e)
		s.seen[e] = true
	}
	for _, s := range streams {
		expected += int(s.max - s.min + 1)
		received += len(s.seen)
	}
	return expected, received
}

// ParseInfo reads the "field:value" lines of a Redis INFO answer (comments and blank lines
// skipped).
func ParseInfo(info string) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = v
		}
	}
	return out
}

// InfoInt is ParseInfo's field as an integer.
func InfoInt(info map[string]string, field string) (int64, bool) {
	v, ok := info[field]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}
