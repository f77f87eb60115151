package webhooks

import (
	"encoding/hex"
	"strconv"
	"testing"
)

// FuzzParseSignatureHeaders: the signature headers are outside input, parsed before anything is
// verified. Whatever they hold, parsing does not panic, and what it accepts is exactly what
// the scheme allows: a decimal timestamp, a nonce of 16-64 safe characters, a 32-byte MAC
// (written back, the same headers).
func FuzzParseSignatureHeaders(f *testing.F) {
	f.Add("1772445600", "nonce-0000000000000001", "v1="+hex.EncodeToString(make([]byte, 32)))
	f.Add("", "", "")
	f.Add("-1", "short", "v1=zz")
	f.Add("99999999999999999999", "n\x00nce-0000000000000001", "v2=00")
	f.Fuzz(func(t *testing.T, ts, nonce, sig string) {
		h, err := parseSignatureHeaders(ts, nonce, sig)
		if err != nil {
			return
		}
		if strconv.FormatInt(h.ts, 10) != trimZeros(ts) || h.ts < 0 {
			t.Errorf("timestamp %q parsed as %d", ts, h.ts)
		}
		if h.nonce != nonce || len(nonce) < minNonceLen || len(nonce) > maxNonceLen {
			t.Errorf("nonce %q accepted as %q", nonce, h.nonce)
		}
		if len(h.mac) != 32 || "v1="+hex.EncodeToString(h.mac) != lowerHex(sig) {
			t.Errorf("signature %q parsed as %x", sig, h.mac)
		}
		// What is accepted can be signed and verified.
		_ = signingString(h.ts, h.nonce, "GET", "/v1/calls?"+nonce, []byte(sig))
	})
}

func trimZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}

func lowerHex(sig string) string {
	b := []byte(sig)
	for i, c := range b {
		if 'A' <= c && c <= 'F' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
