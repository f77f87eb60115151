package testphone

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// frameOf renders n samples of the given tones (each at levelDB dBFS) plus white noise of
// noiseDB dBFS RMS (none when 0), through mu-law like a received packet.
func frameOf(start, n int, levelDB, noiseDB float64, rng *rand.Rand, tones ...float64) []int16 {
	out := make([]int16, n)
	amp := levelToAmplitude(levelDB) * 32767
	noise := 0.0
	if noiseDB != 0 {
		noise = math.Pow(10, noiseDB/20) * 32767
	}
	for i := range out {
		v := 0.0
		for _, f := range tones {
			v += amp * math.Sin(2*math.Pi*f*float64(start+i)/sampleRate)
		}
		if noise > 0 {
			v += noise * rng.NormFloat64()
		}
		out[i] = mulawDecode(mulawEncode(int16(max(min(v, 32767), -32768))))
	}
	return out
}

func TestDetector(t *testing.T) {
	det, err := newDetector(Detector{})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		name    string
		levelDB float64
		noiseDB float64
		tones   []float64
		want    []float64
	}{
		{"silence", -12, 0, nil, nil},
		{"customer", -12, 0, []float64{440}, []float64{440}},
		{"agent", -12, 0, []float64{1000}, []float64{1000}},
		{"supervisor", -12, 0, []float64{2000}, []float64{2000}},
		{"agent+customer", -12, 0, []float64{440, 1000}, []float64{440, 1000}},
		{"all three", -12, 0, []float64{440, 1000, 2000}, []float64{440, 1000, 2000}},
		{"unwatched 1500", -12, 0, []float64{1500}, nil},
		{"unwatched 700+1300", -12, 0, []float64{700, 1300}, nil},
		{"quiet agent -24 dBFS", -24, 0, []float64{1000}, []float64{1000}},
		{"too quiet -40 dBFS", -40, 0, []float64{1000}, nil},
		{"noise -20 dBFS", -12, -20, nil, nil},
		{"noise -10 dBFS", -12, -10, nil, nil},
		{"agent in noise -30 dBFS", -12, -30, []float64{1000}, []float64{1000}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			levels := make([]float64, len(det.watch))
			worst := make([]float64, len(det.watch))
			for i := range worst {
				worst[i] = math.Inf(-1)
			}
			const frames = 200
			for k := range frames {
				s := frameOf(k*frameSamples, frameSamples, c.levelDB, c.noiseDB, rng, c.tones...)
				present, _ := det.measure(s, levels)
				if got := det.presentList(present); !slices.Equal(got, c.want) {
					t.Fatalf("frame %d: present %v, want %v (levels %v)", k, got, c.want, levels)
				}
				for i, l := range levels {
					worst[i] = max(worst[i], l)
				}
			}
			t.Logf("max level over %d frames (dBFS) at %v Hz: %.1f", frames, det.watch, worst)
		})
	}
}

func TestDetectorLevels(t *testing.T) {
	det, _ := newDetector(Detector{})
	levels := make([]float64, len(det.watch))
	s := frameOf(0, frameSamples, -12, 0, nil, 1000)
	det.measure(s, levels)
	if l := levels[det.index(1000)]; math.Abs(l-(-12)) > 0.5 {
		t.Errorf("1000 Hz at -12 dBFS measured %.2f dBFS", l)
	}
	// 440 Hz is 8.8 cycles per frame: the estimate still lands near the true level.
	s = frameOf(0, frameSamples, -12, 0, nil, 440)
	det.measure(s, levels)
	if l := levels[det.index(440)]; math.Abs(l-(-12)) > 1 {
		t.Errorf("440 Hz at -12 dBFS measured %.2f dBFS", l)
	}
}

func TestNewDetectorValidates(t *testing.T) {
	if _, err := newDetector(Detector{Watch: []float64{5000}}); err == nil {
		t.Error("5000 Hz accepted above Nyquist")
	}
	d, err := newDetector(Detector{Watch: []float64{2000, 440, 440}})
	if err != nil || !slices.Equal(d.watch, []float64{440, 2000}) {
		t.Errorf("watch = %v, %v", d.watch, err)
	}
}

// TestDetectorImbalance: a tone 5 dB under two others is still heard (mixing in Asterisk is not
// expected to change levels, this is margin).
func TestDetectorImbalance(t *testing.T) {
	det, _ := newDetector(Detector{})
	levels := make([]float64, len(det.watch))
	for k := range 100 {
		a := frameOf(k*frameSamples, frameSamples, -12, 0, nil, 440, 1000)
		b := frameOf(k*frameSamples, frameSamples, -17, 0, nil, 2000)
		for i := range a {
			a[i] += b[i]
		}
		present, _ := det.measure(a, levels)
		if got := det.presentList(present); !slices.Equal(got, DefaultWatch) {
			t.Fatalf("frame %d: present %v (levels %v)", k, got, levels)
		}
	}
}
