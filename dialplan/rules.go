package dialplan

import (
	"errors"
	"fmt"
	"strings"
)

const (
	// MaxPrefixLen is the longest feature-code prefix Validate accepts.
	MaxPrefixLen = 8
	// MaxTargetLen is the longest target extension Parse accepts.
	MaxTargetLen = 32
)

// Sentinel errors. Test for them with errors.Is.
//
// Every problem Validate reports wraps ErrInvalidRule; ErrConflict and
// ErrNotDTMFCode refine it, so errors.Is(err, ErrInvalidRule) also holds for
// them and a caller that only wants "the rules are bad" needs one test.
var (
	// ErrUnknownCode: what was dialed starts with none of the tenant's
	// prefixes.
	ErrUnknownCode = errors.New("not a supervision code")
	// ErrInvalidTarget: a prefix matched but what follows it is not an
	// extension number (1 to MaxTargetLen digits).
	ErrInvalidTarget = errors.New("invalid target extension (want 1-32 digits)")
	// ErrInvalidRule: a dialing rule is malformed (for example an empty
	// prefix or one with a character a phone cannot dial).
	ErrInvalidRule = errors.New("invalid dialing rule")
	// ErrConflict: two rules cannot be told apart: duplicate prefixes, a
	// prefix that starts another one, or two modes on the same DTMF key.
	ErrConflict error = &ruleError{"conflicting codes"}
	// ErrNotDTMFCode: a DTMF rule is not exactly one DTMF key.
	ErrNotDTMFCode error = &ruleError{"not a DTMF key (want one of 0-9, *, #, A-D)"}
)

// ruleError is a sentinel that is also an ErrInvalidRule.
type ruleError struct{ msg string }

func (e *ruleError) Error() string { return e.msg }

// Is makes errors.Is(err, ErrInvalidRule) true for the refined sentinels.
func (e *ruleError) Is(target error) bool { return target == ErrInvalidRule }

// Rules are one tenant's supervision codes: the prefix a supervisor dials in
// front of an agent's extension to join that agent's call in a mode, and the
// DTMF key that switches to the mode during the session.
//
// A Rules value is plain data; call Validate before trusting one that came
// from configuration or an API request.
type Rules struct {
	SpyPrefix     string `json:"spy_prefix" yaml:"spy_prefix"`
	WhisperPrefix string `json:"whisper_prefix" yaml:"whisper_prefix"`
	BargePrefix   string `json:"barge_prefix" yaml:"barge_prefix"`
	SpyDTMF       string `json:"spy_dtmf" yaml:"spy_dtmf"`
	WhisperDTMF   string `json:"whisper_dtmf" yaml:"whisper_dtmf"`
	BargeDTMF     string `json:"barge_dtmf" yaml:"barge_dtmf"`
	// HelpAcceptCode is dialed as is (no extension after it) by a supervisor to accept the
	// oldest open help request they may accept, joining its call in whisper. Empty: none.
	HelpAcceptCode string `json:"help_accept_code" yaml:"help_accept_code"`
	// HelpRaiseDTMF is the key sequence an agent presses during a call to raise a help request
	// on it. Asterisk's bridge features catch it on the agent's own channel (an applicationmap
	// entry, see RenderFeatures), so the customer hears neither the keys nor a gap.
	HelpRaiseDTMF string `json:"help_raise_dtmf" yaml:"help_raise_dtmf"`
}

// DefaultRules returns the defaults: prefixes *90 (spy),
// *91 (whisper), *92 (barge), in-call DTMF 0, 1, 2, *93 to accept a help
// request, and *0 for an agent to raise one in a call.
func DefaultRules() Rules {
	return Rules{
		SpyPrefix:      "*90",
		WhisperPrefix:  "*91",
		BargePrefix:    "*92",
		SpyDTMF:        "0",
		WhisperDTMF:    "1",
		BargeDTMF:      "2",
		HelpAcceptCode: "*93",
		HelpRaiseDTMF:  "*0",
	}
}

// IsHelpAccept reports whether dialed is the help-accept code.
func (r Rules) IsHelpAccept(dialed string) bool {
	return r.HelpAcceptCode != "" && dialed == r.HelpAcceptCode
}

// WithDefaults returns r with every empty field replaced by the field of
// DefaultRules, so a tenant can override only the codes it cares about.
// The result still needs Validate: a custom prefix may conflict with a
// default one.
func (r Rules) WithDefaults() Rules {
	d := DefaultRules()
	fill := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	fill(&r.SpyPrefix, d.SpyPrefix)
	fill(&r.WhisperPrefix, d.WhisperPrefix)
	fill(&r.BargePrefix, d.BargePrefix)
	fill(&r.SpyDTMF, d.SpyDTMF)
	fill(&r.WhisperDTMF, d.WhisperDTMF)
	fill(&r.BargeDTMF, d.BargeDTMF)
	fill(&r.HelpAcceptCode, d.HelpAcceptCode)
	fill(&r.HelpRaiseDTMF, d.HelpRaiseDTMF)
	return r
}

// Prefix returns the feature-code prefix for m, or "" if m is not valid.
func (r Rules) Prefix(m Mode) string {
	switch m {
	case Spy:
		return r.SpyPrefix
	case Whisper:
		return r.WhisperPrefix
	case Barge:
		return r.BargePrefix
	case ModeUnknown:
		return ""
	default:
		return ""
	}
}

// DigitFor returns the in-call DTMF key that switches to m, or "" if m is
// not valid.
func (r Rules) DigitFor(m Mode) string {
	switch m {
	case Spy:
		return r.SpyDTMF
	case Whisper:
		return r.WhisperDTMF
	case Barge:
		return r.BargeDTMF
	case ModeUnknown:
		return ""
	default:
		return ""
	}
}

// ModeForDigit returns the mode whose DTMF key is d, as reported by
// Asterisk's ChannelDtmfReceived event ("0"-"9", "*", "#", "A"-"D"). The
// comparison is exact. ok is false for a key no mode uses, so the caller can
// ignore stray key presses.
func (r Rules) ModeForDigit(d string) (m Mode, ok bool) {
	if d == "" {
		return ModeUnknown, false
	}
	for _, m := range modes {
		if r.DigitFor(m) == d {
			return m, true
		}
	}
	return ModeUnknown, false
}

// Parse splits what a supervisor dialed (Asterisk's ${EXTEN}, e.g. "*90744")
// into a mode and a target extension ("744").
//
// The longest matching prefix wins. On validated rules at most one prefix
// can match, because Validate refuses a prefix that starts another; on
// unvalidated rules ties go to the first mode in Modes order.
//
// Errors name the input and wrap ErrUnknownCode (no prefix matched) or
// ErrInvalidTarget (a prefix matched but the rest is not 1 to MaxTargetLen
// digits, including nothing at all). On error the mode is ModeUnknown and
// the target is empty.
func (r Rules) Parse(dialed string) (Mode, string, error) {
	best, bestLen := ModeUnknown, 0
	for _, m := range modes {
		p := r.Prefix(m)
		if p != "" && len(p) > bestLen && strings.HasPrefix(dialed, p) {
			best, bestLen = m, len(p)
		}
	}
	if best == ModeUnknown {
		return ModeUnknown, "", fmt.Errorf("dialed %q: %w", dialed, ErrUnknownCode)
	}
	target := dialed[bestLen:]
	if !ValidTarget(target) {
		return ModeUnknown, "", fmt.Errorf("dialed %q: %s target %q: %w", dialed, best, target, ErrInvalidTarget)
	}
	return best, target, nil
}

// ValidTarget reports whether s can be the extension after a prefix:
// 1 to MaxTargetLen ASCII digits. Directory configuration uses the same
// rule for extension numbers, so every configured extension can be dialed.
func ValidTarget(s string) bool {
	if len(s) == 0 || len(s) > MaxTargetLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Validate reports every problem with r at once, joined with errors.Join;
// nil means r is usable. Each problem names the field (spy_prefix, ...),
// wraps ErrInvalidRule, and where it applies the finer ErrConflict or
// ErrNotDTMFCode:
//
//   - a prefix is empty, longer than MaxPrefixLen, or has a character other
//     than 0-9, * and # (what every phone keypad can dial);
//   - two prefixes are equal, or one is a prefix of another (ErrConflict):
//     Parse could not tell which mode was meant, and Asterisk would route
//     both into the same pattern;
//   - a DTMF code is not exactly one key 0-9, *, #, A-D (ErrNotDTMFCode), or
//     two modes share a key (ErrConflict);
//   - the help-raise key sequence is not 2 to MaxHelpRaiseLen keys starting
//     with * or # (see validateHelpRaise).
//
// A prefix made only of digits is allowed, although it can shadow ordinary
// extensions in the tenant's dialplan; prefixes normally start with * or #.
func (r Rules) Validate() error {
	var errs []error
	for _, m := range modes {
		field, p := m.String()+"_prefix", r.Prefix(m)
		switch {
		case p == "":
			errs = append(errs, fmt.Errorf("%s: empty prefix: %w", field, ErrInvalidRule))
			continue
		case len(p) > MaxPrefixLen:
			errs = append(errs, fmt.Errorf("%s %q: longer than %d characters: %w", field, p, MaxPrefixLen, ErrInvalidRule))
		}
		if i := strings.IndexFunc(p, func(c rune) bool { return !isDialable(c) }); i >= 0 {
			c := []rune(p[i:])[0]
			errs = append(errs, fmt.Errorf("%s %q: character %q cannot be dialed (want 0-9, * or #): %w", field, p, c, ErrInvalidRule))
		}
	}
	for i, a := range modes {
		for _, b := range modes[i+1:] {
			pa, pb := r.Prefix(a), r.Prefix(b)
			fa, fb := a.String()+"_prefix", b.String()+"_prefix"
			switch {
			case pa == "" || pb == "":
				// Already reported as empty; an empty prefix "starts" every
				// other one, which would only add noise.
			case pa == pb:
				errs = append(errs, fmt.Errorf("%s and %s are both %q: %w", fa, fb, pa, ErrConflict))
			case strings.HasPrefix(pb, pa):
				errs = append(errs, fmt.Errorf("%s %q is a prefix of %s %q: %w", fa, pa, fb, pb, ErrConflict))
			case strings.HasPrefix(pa, pb):
				errs = append(errs, fmt.Errorf("%s %q is a prefix of %s %q: %w", fb, pb, fa, pa, ErrConflict))
			}
		}
	}
	errs = append(errs, r.validateHelp()...)
	errs = append(errs, r.validateHelpRaise()...)
	for _, m := range modes {
		if d := r.DigitFor(m); !isDTMF(d) {
			errs = append(errs, fmt.Errorf("%s_dtmf %q: %w", m, d, ErrNotDTMFCode))
		}
	}
	for i, a := range modes {
		for _, b := range modes[i+1:] {
			da, db := r.DigitFor(a), r.DigitFor(b)
			if da == db && isDTMF(da) {
				errs = append(errs, fmt.Errorf("%s_dtmf and %s_dtmf are both %q: %w", a, b, da, ErrConflict))
			}
		}
	}
	return errors.Join(errs...)
}

// isDialable reports whether c is on every phone keypad.
func isDialable(c rune) bool {
	return ('0' <= c && c <= '9') || c == '*' || c == '#'
}

// isDTMF reports whether s is exactly one DTMF key: the 16 tones of
// ITU-T Q.23, which Asterisk reports as 0-9, *, #, A-D.
func isDTMF(s string) bool {
	if len(s) != 1 {
		return false
	}
	c := rune(s[0])
	return isDialable(c) || ('A' <= c && c <= 'D')
}

// validateHelp checks the help-accept code: dialable, not too long, and not
// clashing with a prefix (equal, or either starting the other: Asterisk's
// pattern for the prefix would catch the code, or the code would hide the
// prefix's shortest targets).
func (r Rules) validateHelp() []error {
	const field = "help_accept_code"
	c := r.HelpAcceptCode
	var errs []error
	switch {
	case c == "":
		return nil // no help code (WithDefaults gives one)
	case len(c) > MaxPrefixLen:
		errs = append(errs, fmt.Errorf("%s %q: longer than %d characters: %w", field, c, MaxPrefixLen, ErrInvalidRule))
	}
	if i := strings.IndexFunc(c, func(ch rune) bool { return !isDialable(ch) }); i >= 0 {
		errs = append(errs, fmt.Errorf("%s %q: character %q cannot be dialed (want 0-9, * or #): %w", field, c, []rune(c[i:])[0], ErrInvalidRule))
	}
	for _, m := range modes {
		p := r.Prefix(m)
		switch {
		case p == "":
		case p == c:
			errs = append(errs, fmt.Errorf("%s and %s_prefix are both %q: %w", field, m, c, ErrConflict))
		case strings.HasPrefix(c, p):
			errs = append(errs, fmt.Errorf("%s_prefix %q is a prefix of %s %q: %w", m, p, field, c, ErrConflict))
		case strings.HasPrefix(p, c):
			errs = append(errs, fmt.Errorf("%s %q is a prefix of %s_prefix %q: %w", field, c, m, p, ErrConflict))
		}
	}
	return errs
}

// MaxHelpRaiseLen is the longest help-raise key sequence Validate accepts (within Asterisk's
// limit for a feature code).
const MaxHelpRaiseLen = 8

// validateHelpRaise checks the agent's in-call help key sequence. Empty means none (WithDefaults
// gives one). Otherwise it is 2 to MaxHelpRaiseLen dialable keys (0-9, *, #) starting with * or
// #: Asterisk holds back every key that starts a feature code until the sequence completes or
// the feature digit timeout passes, so a sequence starting with a digit would delay that digit
// whenever the agent keys it into the customer's IVR, and a single key would take it from the
// call altogether. The supervisors' DTMF mode keys and feature codes cannot clash with it: they
// are read on the supervisor's own channel (in Stasis), never on the agent's bridged one.
func (r Rules) validateHelpRaise() []error {
	const field = "help_raise_dtmf"
	c := r.HelpRaiseDTMF
	switch {
	case c == "":
		return nil
	case len(c) < 2 || len(c) > MaxHelpRaiseLen:
		return []error{fmt.Errorf("%s %q: want 2 to %d keys: %w", field, c, MaxHelpRaiseLen, ErrInvalidRule)}
	case c[0] != '*' && c[0] != '#':
		return []error{fmt.Errorf("%s %q: must start with * or # (a leading digit would be held back from the call whenever the agent keys it): %w", field, c, ErrInvalidRule)}
	}
	if i := strings.IndexFunc(c, func(ch rune) bool { return !isDialable(ch) }); i >= 0 {
		return []error{fmt.Errorf("%s %q: character %q cannot be dialed (want 0-9, * or #): %w", field, c, []rune(c[i:])[0], ErrInvalidRule)}
	}
	return nil
}
