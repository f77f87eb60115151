package ari

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzDecodeEvent: the decoder never panics; what it accepts is a typed or
// unknown event with a type, and encodes back to something it decodes to the
// same Go type. Seeds: testdata/fuzz/FuzzDecodeEvent and testdata/events.
func FuzzDecodeEvent(f *testing.F) {
	for _, b := range readSamples(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := DecodeEvent(data)
		if err != nil {
			if ev != nil {
				t.Fatalf("error %v with event %T", err, ev)
			}
			return
		}
		if ev == nil || ev.Base() == nil || ev.Base().Type == "" {
			t.Fatalf("accepted %q as %#v", data, ev)
		}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("re-encoding %T: %v", ev, err)
		}
		again, err := DecodeEvent(b)
		if err != nil {
			t.Fatalf("decoding the re-encoded %T: %v\n%s", ev, err, b)
		}
		if reflect.TypeOf(again) != reflect.TypeOf(ev) || again.Base().Type != ev.Base().Type {
			t.Fatalf("%T became %T", ev, again)
		}
	})
}
