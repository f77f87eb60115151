package store_test

import (
	"testing"

	"github.com/earpiece/earpiece/store"
)

// TestValidEventID: stream ids are two 64-bit unsigned numbers; 20 digits above the maximum are
// not an id (Redis would refuse the read, and a browser would reconnect in a loop).
func TestValidEventID(t *testing.T) {
	for id, want := range map[string]bool{
		"0":                    true,
		"1712345678901-0":      true,
		"18446744073709551615": true,
		"18446744073709551615-18446744073709551615": true,
		"18446744073709551616":                      false,
		"99999999999999999999":                      false,
		"1-18446744073709551616":                    false,
		"":                                          false,
		"1-":                                        false,
		"-1":                                        false,
		"1 ":                                        false,
		"yesterday":                                 false,
		"$":                                         false,
	} {
		if got := store.ValidEventID(id); got != want {
			t.Errorf("ValidEventID(%q) = %v, want %v", id, got, want)
		}
	}
}
