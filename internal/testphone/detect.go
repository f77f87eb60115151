package testphone

import (
	"fmt"
	"math"
	"slices"
)

// The tone plan of the end-to-end tests: each party sends one tone, and a
// test judges who hears whom by the tones a phone receives.
const (
	ToneCustomer   = 440.0
	ToneAgent      = 1000.0
	ToneSupervisor = 2000.0
)

// DefaultWatch is the set of frequencies a phone measures in every received frame.
var DefaultWatch = []float64{ToneCustomer, ToneAgent, ToneSupervisor}

// Detection defaults; see Detector.
const (
	DefaultMinLevelDB = -30.0
	DefaultMinShareDB = -10.0
	// DefaultToneLevelDB is the level of each tone a phone sends.
	DefaultToneLevelDB = -12.0
)

// Detector decides which watched frequencies a received frame carries.
//
// A tone counts as present in a frame when both hold:
//   - absolute: its level is at least MinLevelDB dBFS (0 dBFS = a full-scale sine), so silence
//     and quiet leakage never count;
//   - relative: its power is at least MinShareDB dB of the frame's total power, so broadband
//     sound (noise, speech) does not count even when loud. Two equal mixed tones each hold
//     -3 dB of the frame, three hold -4.8 dB (a tone 5 dB under two others still holds -8.7 dB);
//     a Goertzel bin of white noise holds -19 dB on average and rarely more than -12 dB.
//
// The zero value uses DefaultWatch, DefaultMinLevelDB and DefaultMinShareDB.
type Detector struct {
	Watch      []float64 // Hz; at most 64
	MinLevelDB float64   // dBFS; 0 means DefaultMinLevelDB
	MinShareDB float64   // dB relative to the frame's power; 0 means DefaultMinShareDB
}

// detector is a validated Detector with its Goertzel coefficients.
type detector struct {
	watch    []float64 // ascending
	coeff    []float64 // 2cos(2πf/fs) per watched frequency
	minLevel float64
	minShare float64
}

func newDetector(d Detector) (*detector, error) {
	watch := slices.Clone(d.Watch)
	if len(watch) == 0 {
		watch = slices.Clone(DefaultWatch)
	}
	slices.Sort(watch)
	watch = slices.Compact(watch)
	if len(watch) > 64 {
		return nil, fmt.Errorf("detector: %d watched frequencies, at most 64", len(watch))
	}
	for _, f := range watch {
		if f <= 0 || f >= sampleRate/2 {
			return nil, fmt.Errorf("detector: watched frequency %v Hz outside (0, %d)", f, sampleRate/2)
		}
	}
	det := &detector{
		watch:    watch,
		coeff:    make([]float64, len(watch)),
		minLevel: cmpOr(d.MinLevelDB, DefaultMinLevelDB),
		minShare: cmpOr(d.MinShareDB, DefaultMinShareDB),
	}
	for i, f := range watch {
		det.coeff[i] = 2 * math.Cos(2*math.Pi*f/sampleRate)
	}
	return det, nil
}

func cmpOr(v, def float64) float64 {
	if v == 0 {
		return def
	}
	return v
}

// index returns the position of hz among the watched frequencies (within 0.5 Hz), or -1.
func (d *detector) index(hz float64) int {
	for i, f := range d.watch {
		if math.Abs(f-hz) < 0.5 {
			return i
		}
	}
	return -1
}

// floorDB is the level reported for a frequency with no energy at all.
const floorDB = -120.0

// measure computes the Goertzel level of every watched frequency in samples, writing dBFS values
// into levels (len(d.watch)); it returns the bit set of present frequencies and the frame's RMS
// (1.0 = full scale).
func (d *detector) measure(samples []int16, levels []float64) (present uint64, rms float64) {
	n := len(samples)
	if n == 0 {
		for i := range levels {
			levels[i] = floorDB
		}
		return 0, 0
	}
	var energy float64
	for _, s := range samples {
		x := float64(s) / 32768
		energy += x * x
	}
	meanSquare := energy / float64(n)
	rms = math.Sqrt(meanSquare)
	for i, c := range d.coeff {
		var s1, s2 float64
		for _, s := range samples {
			s0 := float64(s)/32768 + c*s1 - s2
			s2, s1 = s1, s0
		}
		// |X(f)|² of the frame; a sine of amplitude A gives about (A·N/2)², so
		// 2|X|²/N² estimates that component's mean square (A²/2).
		mag2 := s1*s1 + s2*s2 - c*s1*s2
		tonePower := 2 * mag2 / float64(n*n)
		level := floorDB
		if tonePower > 0 {
			level = max(10*math.Log10(tonePower/0.5), floorDB) // 0.5 = mean square of a full-scale sine
		}
		levels[i] = level
		if level >= d.minLevel && meanSquare > 0 && 10*math.Log10(tonePower/meanSquare) >= d.minShare {
			present |= 1 << i
		}
	}
	return present, rms
}

// presentList turns a bit set into the watched frequencies it names.
func (d *detector) presentList(mask uint64) []float64 {
	var out []float64
	for i, f := range d.watch {
		if mask&(1<<i) != 0 {
			out = append(out, f)
		}
	}
	return out
}
