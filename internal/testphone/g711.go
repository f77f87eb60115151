package testphone

import "math/bits"

// G.711 mu-law (ITU-T G.711, the PCMU payload of RFC 3551 section 4.5.14), the one codec the
// phones offer: Asterisk passes ulaw between PJSIP endpoints without transcoding.

const (
	mulawBias = 0x84  // 132, added before the segment search
	mulawClip = 32635 // largest magnitude that still fits after the bias
)

// mulawDecodeTable maps every code to its 16-bit linear value.
var mulawDecodeTable = func() (t [256]int16) {
	for i := range t {
		t[i] = mulawDecodeSlow(byte(i))
	}
	return t
}()

func mulawDecodeSlow(u byte) int16 {
	u = ^u
	exponent := (u >> 4) & 0x07
	mantissa := int(u & 0x0F)
	x := ((mantissa << 3) + mulawBias) << exponent
	x -= mulawBias
	if u&0x80 != 0 {
		return int16(-x)
	}
	return int16(x)
}

// mulawDecode returns the linear sample for a mu-law code.
func mulawDecode(u byte) int16 { return mulawDecodeTable[u] }

// mulawEncode returns the mu-law code for a 16-bit linear sample.
func mulawEncode(s int16) byte {
	x := int(s)
	var sign byte
	if x < 0 {
		x = -x
		sign = 0x80
	}
	if x > mulawClip {
		x = mulawClip
	}
	x += mulawBias
	exponent := bits.Len(uint(x>>7)) - 1 // x>>7 is 1..255, so 0..7
	mantissa := (x >> (exponent + 3)) & 0x0F
	return ^(sign | byte(exponent<<4) | byte(mantissa))
}
