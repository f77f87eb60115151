package testphone

import "testing"

func TestMulawRoundTrip(t *testing.T) {
	// Every code decodes to a value that encodes back to the same code (0x7F is -0, the twin of
	// 0xFF, both decode to 0).
	for i := range 256 {
		u := byte(i)
		if u == 0x7F {
			continue
		}
		if got := mulawEncode(mulawDecode(u)); got != u {
			t.Errorf("encode(decode(%#02x)=%d) = %#02x", u, mulawDecode(u), got)
		}
	}
	// Known points of G.711: silence, and the extremes.
	for _, c := range []struct {
		in   int16
		want byte
	}{{0, 0xFF}, {32767, 0x80}, {-32768, 0x00}, {-1, 0x7F}} {
		if got := mulawEncode(c.in); got != c.want {
			t.Errorf("encode(%d) = %#02x, want %#02x", c.in, got, c.want)
		}
	}
	// Quantisation error stays within half a step of the segment.
	for s := -32000; s <= 32000; s += 7 {
		d := int(mulawDecode(mulawEncode(int16(s))))
		step := max(abs(s)/16, 8)
		if abs(d-s) > step {
			t.Fatalf("decode(encode(%d)) = %d, error > %d", s, d, step)
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
