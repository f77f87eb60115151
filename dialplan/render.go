package dialplan

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

const (
	// DefaultApp is the Stasis application name Render uses when
	// RenderOptions.App is empty.
	DefaultApp = "earpiece"
	// maxNameLen caps tenant and application names.
	maxNameLen = 64
	// maxContextLen is Asterisk's AST_MAX_CONTEXT (80) minus the NUL:
	// longer context names are truncated by Asterisk and would not match.
	maxContextLen = 79
)

// ErrInvalidName: a tenant, context or application name handed to Render has
// characters other than ASCII letters, digits, '-' and '_', or is empty or
// too long. Such names could break out of the generated dialplan line.
var ErrInvalidName = errors.New("invalid name (want 1-64 ASCII letters, digits, '-' or '_')")

// ErrInvalidHint: a Hint handed to Render has an extension that is not 1-32 digits, a device
// that is not TECH/resource made of safe characters, or an extension listed twice.
var ErrInvalidHint = errors.New("invalid hint")

// maxDeviceLen caps a hint's device (Asterisk keeps hint devices in a fixed buffer).
const maxDeviceLen = 128

// RenderOptions tune Render. The zero value is ready to use.
type RenderOptions struct {
	// Context is the dialplan context to write; default "earpiece-<tenant>".
	// Include it from the context the tenant's phones dial from.
	Context string
	// App is the Stasis application; default DefaultApp.
	App string
	// Hints are the tenant's BLF hints, written in Context in this order.
	Hints []Hint
}

// Hint is one BLF hint: "exten => <Exten>,hint,<Device>" in the tenant's context, so that a
// supervisor's lamp key subscribed to <Exten>@<context> shows whether the extension is idle,
// ringing or in a call (and the same key then dials the spy code with it). A hint is an
// extension with no priority 1: it never answers a call, and a call to the number keeps
// reaching the PBX's own extension, whether in the same context or in a later include.
type Hint struct {
	Exten  string // the extension number: 1 to 32 digits (ValidTarget)
	Device string // the device whose state the lamp shows: TECH/resource, e.g. PJSIP/744
}

// validate reports why h cannot be written as a dialplan line, or nil.
func (h Hint) validate() error {
	if !ValidTarget(h.Exten) {
		return fmt.Errorf("hint %q: extension: want 1-%d digits: %w", h.Exten, MaxTargetLen, ErrInvalidHint)
	}
	if !ValidDevice(h.Device) {
		return fmt.Errorf("hint %s: device %q: want TECH/resource (letters, digits and . _ - + @): %w", h.Exten, h.Device, ErrInvalidHint)
	}
	return nil
}

// ValidDevice reports whether s is a device Render writes in a hint: TECH/resource, TECH a letter
// then letters, digits or '_', resource ASCII letters, digits and '.', '_', '-', '+', '@' (the
// endpoints config accepts), at most 128 characters. None of them is special on a dialplan line
// (',' ';' '&' '(' ')' '$' and whitespace would be).
func ValidDevice(s string) bool {
	tech, res, ok := strings.Cut(s, "/")
	if !ok || tech == "" || res == "" || len(s) > maxDeviceLen {
		return false
	}
	for i := 0; i < len(tech); i++ {
		c := tech[i]
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !(letter || i > 0 && ('0' <= c && c <= '9' || c == '_')) {
			return false
		}
	}
	for i := 0; i < len(res); i++ {
		c := res[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._-+@", c) >= 0) {
			return false
		}
	}
	return true
}

// Render writes the extensions.conf snippet that sends tenant's feature codes
// into the Stasis application: one block per mode, in Modes order, e.g.
//
//	exten => _*90.,1,NoOp(earpiece spy ${EXTEN:3})
//	 same => n,Stasis(earpiece,feature,acme,${EXTEN})
//	 same => n,GotoIf($["${STASISSTATUS}" != "FAILED"]?done)
//	 same => n,Answer()
//	 same => n,Playtones(congestion)
//	 same => n,Wait(3)
//	 same => n(done),Hangup()
//
// The app receives the whole dialed string and parses it with the tenant's
// Rules, so a malformed code (letters, a target that is too long) still
// reaches earpiece, which answers it audibly instead of Asterisk answering
// "no such extension".
//
// Stasis() returns at once with STASISSTATUS=FAILED when the application is
// not registered (earpiece down or disconnected from ARI); the supervisor
// then hears congestion for 3 s, as from any refusal earpiece makes itself:
// the channel is answered first, because Congestion() on an unanswered PJSIP
// channel is only a SIP 503, which most phones show as an error or drop
// without a sound. A supervision attempt that cannot go ahead is always
// heard, never met with silence or a bare error. After a normal exit from
// Stasis (SUCCESS) the channel is simply hung up.
//
// The pattern is "_" + prefix + ".": in Asterisk patterns "." matches one or
// more characters of any kind, and the prefix itself is literal because
// Validate allows only 0-9, * and # in it, none of which is special in a
// pattern (the specials are X Z N . ! [ ] -). "X." would be wrong here: it
// needs at least two characters after the prefix, so a one-digit extension
// could not be supervised.
//
// Before the codes come the BLF hints of opts.Hints, one line each:
//
//	exten => 744,hint,PJSIP/744
//
// Last comes the tenant's agent context, Context + AgentContextSuffix (see
// writeAgentHandler), which turns on the in-call help key on an agent's channel.
//
// Render checks tenant, the options and the rules (Validate) before writing
// anything, and writes with a single call to w.
func Render(w io.Writer, tenant string, r Rules, opts RenderOptions) error {
	if opts.App == "" {
		opts.App = DefaultApp
	}
	var errs []error
	if !validName(tenant, maxNameLen) {
		errs = append(errs, fmt.Errorf("tenant %q: %w", tenant, ErrInvalidName))
	}
	if opts.Context == "" {
		// Derived from a checked tenant name, so valid whenever tenant is.
		opts.Context = "earpiece-" + tenant
	} else if !validName(opts.Context, maxContextLen) {
		errs = append(errs, fmt.Errorf("context %q: %w", opts.Context, ErrInvalidName))
	} else if !validName(opts.Context+AgentContextSuffix, maxContextLen) {
		errs = append(errs, fmt.Errorf("context %q: %w", opts.Context+AgentContextSuffix, ErrInvalidName))
	}
	if !validName(opts.App, maxNameLen) {
		errs = append(errs, fmt.Errorf("app %q: %w", opts.App, ErrInvalidName))
	}
	if err := r.Validate(); err != nil {
		errs = append(errs, err)
	}
	seen := make(map[string]bool, len(opts.Hints))
	for _, h := range opts.Hints {
		switch err := h.validate(); {
		case err != nil:
			errs = append(errs, err)
		case seen[h.Exten]:
			errs = append(errs, fmt.Errorf("hint %s: listed twice: %w", h.Exten, ErrInvalidHint))
		}
		seen[h.Exten] = true
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("render dialplan for tenant %q: %w", tenant, err)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "; earpiece supervision codes for tenant %s (generated by `earpiece dialplan render`)\n", tenant)
	fmt.Fprintf(&b, "; in-call DTMF keys (handled by the %s app, not here):", opts.App)
	for i, m := range modes {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(&b, "%s %s %s", sep, r.DigitFor(m), m)
	}
	fmt.Fprintf(&b, "\n[%s]\n", opts.Context)
	if len(opts.Hints) > 0 {
		fmt.Fprintf(&b, "; BLF hints: a lamp key subscribes to <extension>@%s\n", opts.Context)
		for _, h := range opts.Hints {
			fmt.Fprintf(&b, "exten => %s,hint,%s\n", h.Exten, h.Device)
		}
		b.WriteString("\n")
	}
	for i, m := range modes {
		if i > 0 {
			b.WriteString("\n")
		}
		p := r.Prefix(m)
		fmt.Fprintf(&b, "exten => _%s.,1,NoOp(earpiece %s ${EXTEN:%d})\n", p, m, len(p))
		fmt.Fprintf(&b, " same => n,Stasis(%s,feature,%s,${EXTEN})\n", opts.App, tenant)
		writeStasisFallback(&b)
	}
	if c := r.HelpAcceptCode; c != "" {
		// The help-accept code is an exact extension: nothing follows it.
		fmt.Fprintf(&b, "\nexten => %s,1,NoOp(earpiece help accept)\n", c)
		fmt.Fprintf(&b, " same => n,Stasis(%s,feature,%s,${EXTEN})\n", opts.App, tenant)
		writeStasisFallback(&b)
	}
	writeAgentHandler(&b, tenant, r, opts.Context+AgentContextSuffix)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("render dialplan for tenant %q: %w", tenant, err)
	}
	return nil
}

// writeStasisFallback ends a code's block: when Stasis() failed (the app is not registered), the
// supervisor's channel is answered and hears congestion for 3 s (tone:congestion of
// indications.conf, the tone earpiece's own refusals play), then is hung up.
func writeStasisFallback(b *strings.Builder) {
	b.WriteString(" same => n,GotoIf($[\"${STASISSTATUS}\" != \"FAILED\"]?done)\n")
	b.WriteString(" same => n,Answer()\n")
	b.WriteString(" same => n,Playtones(congestion)\n")
	b.WriteString(" same => n,Wait(3)\n")
	b.WriteString(" same => n(done),Hangup()\n")
}

// validName reports whether s is 1 to maxLen ASCII letters, digits, '-' or '_':
// safe as an Asterisk context name and as a Stasis argument, where ',' ')'
// '[' ']' ';' or whitespace would change the meaning of the line.
func validName(s string, maxLen int) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
