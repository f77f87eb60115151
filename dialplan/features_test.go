package dialplan_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/earpiece/earpiece/dialplan"
)

func TestRenderFeaturesGolden(t *testing.T) {
	custom := dialplan.DefaultRules()
	custom.HelpRaiseDTMF = "#99"
	var b bytes.Buffer
	if err := dialplan.RenderFeatures(&b, []dialplan.TenantRules{
		{Tenant: "acme", Rules: dialplan.DefaultRules()},
		{Tenant: "globex", Rules: custom},
		{Tenant: "Initech_2", Rules: hashes}, // no help key
	}); err != nil {
		t.Fatal(err)
	}
	golden(t, "features.golden", b.Bytes())
}

// TestRenderFeaturesEmpty: with no tenant the section is still written, so the file
// features.conf includes exists and parses.
func TestRenderFeaturesEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := dialplan.RenderFeatures(&b, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\n[applicationmap]\n") || strings.Contains(b.String(), "=>") {
		t.Errorf("RenderFeatures(nil):\n%s", b.String())
	}
}

func TestRenderFeaturesRefusesBadInput(t *testing.T) {
	bad := dialplan.DefaultRules()
	bad.HelpRaiseDTMF = "0"
	for _, tc := range []struct {
		name    string
		tenants []dialplan.TenantRules
		wantIs  error
		wantMsg string
	}{
		{"bad tenant", []dialplan.TenantRules{{Tenant: "ac me", Rules: dialplan.DefaultRules()}}, dialplan.ErrInvalidName, `tenant "ac me"`},
		{"twice", []dialplan.TenantRules{{Tenant: "acme", Rules: dialplan.DefaultRules()}, {Tenant: "acme", Rules: dialplan.DefaultRules()}}, nil, "listed twice"},
		{"bad rules", []dialplan.TenantRules{{Tenant: "acme", Rules: bad}}, dialplan.ErrInvalidRule, "help_raise_dtmf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &countingWriter{}
			err := dialplan.RenderFeatures(w, tc.tenants)
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) || (tc.wantIs != nil && !errors.Is(err, tc.wantIs)) {
				t.Errorf("RenderFeatures = %v, want an error about %q", err, tc.wantMsg)
			}
			if w.calls != 0 {
				t.Errorf("wrote %d times before refusing", w.calls)
			}
		})
	}
}

// TestRenderAgentContextTooLong: the agent context is the context plus "-agent", and must fit
// Asterisk's context name limit too.
func TestRenderAgentContextTooLong(t *testing.T) {
	ctx := strings.Repeat("c", 79-len(dialplan.AgentContextSuffix)+1)
	err := dialplan.Render(&countingWriter{}, "acme", dialplan.DefaultRules(), dialplan.RenderOptions{Context: ctx})
	if !errors.Is(err, dialplan.ErrInvalidName) || !strings.Contains(err.Error(), ctx+dialplan.AgentContextSuffix) {
		t.Errorf("Render with a %d-character context = %v, want ErrInvalidName naming the agent context", len(ctx), err)
	}
	ok := strings.Repeat("c", 79-len(dialplan.AgentContextSuffix))
	if err := dialplan.Render(&countingWriter{}, "acme", dialplan.DefaultRules(), dialplan.RenderOptions{Context: ok}); err != nil {
		t.Errorf("Render with a %d-character context: %v", len(ok), err)
	}
}

func TestValidateHelpRaise(t *testing.T) {
	for _, tc := range []struct {
		key     string
		wantErr string // "" = valid
	}{
		{"*0", ""},
		{"#9", ""},
		{"**", ""},
		{"*1234567", ""},
		{"", ""}, // no key
		{"*", "want 2 to 8 keys"},
		{"*12345678", "want 2 to 8 keys"},
		{"0", "want 2 to 8 keys"},
		{"00", "must start with * or #"},
		{"1*", "must start with * or #"},
		{"*A", `character 'A' cannot be dialed`},
		{"*é", `cannot be dialed`},
	} {
		r := dialplan.DefaultRules()
		r.HelpRaiseDTMF = tc.key
		err := r.Validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("help_raise_dtmf %q: %v", tc.key, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, dialplan.ErrInvalidRule)):
			t.Errorf("help_raise_dtmf %q: %v, want ErrInvalidRule with %q", tc.key, err, tc.wantErr)
		case tc.wantErr != "" && !strings.Contains(err.Error(), "help_raise_dtmf"):
			t.Errorf("help_raise_dtmf %q: %v does not name the field", tc.key, err)
		}
	}
}
