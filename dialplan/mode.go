package dialplan

import (
	"errors"
	"fmt"
	"strings"
)

// Mode is a supervision mode: what the supervisor hears and who hears the
// supervisor (each constant says).
//
// The zero value is ModeUnknown, which is not a valid mode: a Mode that was
// never set cannot be mistaken for Spy. Marshalling ModeUnknown fails.
type Mode int

const (
	// ModeUnknown is the zero value; it is never a valid mode.
	ModeUnknown Mode = iota
	// Spy (also called Monitor): the supervisor hears agent and customer;
	// nobody hears the supervisor.
	Spy
	// Whisper (also called Coach): the supervisor hears agent and customer;
	// only the agent hears the supervisor.
	Whisper
	// Barge (also called Barge In): everybody hears everybody.
	Barge
)

// modes lists the valid modes in their canonical order. That order decides
// the order of rendered dialplan blocks and of Validate's messages.
var modes = [...]Mode{Spy, Whisper, Barge}

// ErrUnknownMode is returned by ParseMode and UnmarshalText for a name that is
// not a mode, and by MarshalText for a Mode that is not valid.
var ErrUnknownMode = errors.New("unknown supervision mode (want spy, whisper or barge)")

// Modes returns the valid modes in canonical order: Spy, Whisper, Barge.
// The slice is the caller's to keep or modify.
func Modes() []Mode {
	ms := modes // copy the array, so callers cannot reorder ours
	return ms[:]
}

// Valid reports whether m is Spy, Whisper or Barge.
func (m Mode) Valid() bool {
	switch m {
	case Spy, Whisper, Barge:
		return true
	case ModeUnknown:
		return false
	default:
		return false
	}
}

// String returns "spy", "whisper" or "barge"; "unknown" for ModeUnknown and
// "Mode(N)" for values outside the enum.
func (m Mode) String() string {
	switch m {
	case Spy:
		return "spy"
	case Whisper:
		return "whisper"
	case Barge:
		return "barge"
	case ModeUnknown:
		return "unknown"
	default:
		return fmt.Sprintf("Mode(%d)", int(m))
	}
}

// ParseMode returns the Mode named s ("spy", "whisper" or "barge", in any
// letter case). Any other input, including "unknown", is an error wrapping
// ErrUnknownMode.
func ParseMode(s string) (Mode, error) {
	for _, m := range modes {
		if strings.EqualFold(s, m.String()) {
			return m, nil
		}
	}
	return ModeUnknown, fmt.Errorf("mode %q: %w", s, ErrUnknownMode)
}

// MarshalText implements encoding.TextMarshaler, so a Mode is a JSON or YAML
// string. It refuses invalid modes rather than writing "unknown" into an API
// answer or a stored record.
func (m Mode) MarshalText() ([]byte, error) {
	if !m.Valid() {
		return nil, fmt.Errorf("marshal %s: %w", m, ErrUnknownMode)
	}
	return []byte(m.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler using ParseMode.
func (m *Mode) UnmarshalText(text []byte) error {
	parsed, err := ParseMode(string(text))
	if err != nil {
		return err
	}
	*m = parsed
	return nil
}
