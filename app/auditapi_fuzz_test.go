package app

import (
	"testing"

	"github.com/earpiece/earpiece/store"
)

// FuzzParseAuditCursor: a cursor is outside input (GET /v1/audit?cursor=). Whatever it is, the
// parser does not panic, accepts only what names a stream id, and what it accepts round-trips.
func FuzzParseAuditCursor(f *testing.F) {
	for _, seed := range []string{
		EncodeAuditCursor("1712345678901-0"),
		EncodeAuditCursor("0-0"),
		EncodeAuditCursor("18446744073709551615-18446744073709551615"),
		"", "YTE6", "a1:1-0", "YTE6MS0w==", "YTE6LTEtMA", "YTE6KzEtMA",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, cursor string) {
		id, ok := ParseAuditCursor(cursor)
		if !ok {
			if id != "" {
				t.Fatalf("refused %q but returned %q", cursor, id)
			}
			return
		}
		if !store.ValidStreamID(id) {
			t.Fatalf("accepted %q as %q, not a stream id", cursor, id)
		}
		again, ok := ParseAuditCursor(EncodeAuditCursor(id))
		if !ok || again != id {
			t.Fatalf("%q: round trip gave %q, %v", id, again, ok)
		}
	})
}

func TestParseAuditCursor(t *testing.T) {
	for _, tc := range []struct {
		in string
		id string
	}{
		{EncodeAuditCursor("1712345678901-3"), "1712345678901-3"},
		{"", ""},
		{"not base64!", ""},
		{EncodeAuditCursor("1712345678901"), ""},             // incomplete id
		{EncodeAuditCursor("-1-0"), ""},                      // negative
		{EncodeAuditCursor("+1-0"), ""},                      // sign
		{EncodeAuditCursor("99999999999999999999999-0"), ""}, // overflows
	} {
		if id, ok := ParseAuditCursor(tc.in); id != tc.id || ok != (tc.id != "") {
			t.Errorf("ParseAuditCursor(%q) = %q, %v; want %q", tc.in, id, ok, tc.id)
		}
	}
}
