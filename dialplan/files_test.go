package dialplan_test

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/earpiece/earpiece/dialplan"
)

func sampleTenants() []dialplan.TenantDialplan {
	return []dialplan.TenantDialplan{
		{Tenant: "acme", Rules: dialplan.DefaultRules(), Hints: []dialplan.Hint{{Exten: "700", Device: "PJSIP/700"}, {Exten: "744", Device: "PJSIP/744"}}},
		{Tenant: "globex", Rules: legacy, Hints: []dialplan.Hint{{Exten: "901", Device: "PJSIP/901"}}},
	}
}

func TestRenderFilesGolden(t *testing.T) {
	f, err := dialplan.RenderFiles(sampleTenants(), "")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "files_extensions.golden", f.Extensions)
	golden(t, "files_features.golden", f.Features)
	// The features part is RenderFeatures' output, the extensions part the marker then each
	// tenant's Render output.
	var feat bytes.Buffer
	if err := dialplan.RenderFeatures(&feat, []dialplan.TenantRules{{Tenant: "acme", Rules: dialplan.DefaultRules()}, {Tenant: "globex", Rules: legacy}}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(feat.Bytes(), f.Features) {
		t.Errorf("Features differ from RenderFeatures:\n%s", f.Features)
	}
	var acme bytes.Buffer
	if err := dialplan.Render(&acme, "acme", dialplan.DefaultRules(), dialplan.RenderOptions{Hints: sampleTenants()[0].Hints}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(f.Extensions, append([]byte("\n\n"), acme.Bytes()...)) {
		t.Errorf("Extensions lack acme's Render output:\n%s", f.Extensions)
	}
}

// markerLine matches the one line that sets the marker, in the [globals] section at the top.
var markerLine = regexp.MustCompile(`(?m)^EARPIECE_DIALPLAN=([0-9a-f]{32})$`)

func TestRenderFilesMarker(t *testing.T) {
	base, err := dialplan.RenderFiles(sampleTenants(), "")
	if err != nil {
		t.Fatal(err)
	}
	m := markerLine.FindAllSubmatch(base.Extensions, -1)
	if len(m) != 1 || string(m[0][1]) != base.Marker {
		t.Fatalf("marker %q: lines %q in\n%s", base.Marker, m, base.Extensions)
	}
	if i, j := bytes.Index(base.Extensions, []byte("\n[globals]\n")), bytes.Index(base.Extensions, []byte("\n[earpiece-acme]\n")); i < 0 || j < i || !bytes.HasPrefix(base.Extensions, []byte(";")) {
		t.Errorf("[globals] must come first (an #included file's first lines would otherwise join the includer's section):\n%s", base.Extensions)
	}
	again, _ := dialplan.RenderFiles(sampleTenants(), "")
	if !bytes.Equal(again.Extensions, base.Extensions) || !bytes.Equal(again.Features, base.Features) || again.Marker != base.Marker {
		t.Error("RenderFiles of equal input differs")
	}

	// Every change of the input that changes what Asterisk runs changes the marker.
	changes := map[string]func(ts []dialplan.TenantDialplan) ([]dialplan.TenantDialplan, string){
		"spy prefix": func(ts []dialplan.TenantDialplan) ([]dialplan.TenantDialplan, string) {
			ts[0].Rules.SpyPrefix = "*80"
			return ts, ""
		},
		"help key only": func(ts []dialplan.TenantDialplan) ([]dialplan.TenantDialplan, string) {
			ts[1].Rules.HelpRaiseDTMF = "#9"
			return ts, ""
		},
		"hint device": func(ts []dialplan.TenantDialplan) ([]dialplan.TenantDialplan, string) {
			ts[0].Hints[1].Device = "PJSIP/744b"
			return ts, ""
		},
		"hint removed": func(ts []dialplan.TenantDialplan) ([]dialplan.TenantDialplan, string) {
			ts[0].Hints = ts[0].Hints[:1]
			return ts, ""
		},
		"tenant order": func(ts []dialplan.TenantDialplan) ([]dialplan.TenantDialplan, string) {
			ts[0], ts[1] = ts[1], ts[0]
			return ts, ""
		},
		"tenant gone": func(ts []dialplan.TenantDialplan) ([]dialplan.TenantDialplan, string) { return ts[:1], "" },
		"no tenants":  func([]dialplan.TenantDialplan) ([]dialplan.TenantDialplan, string) { return nil, "" },
		"app name":    func(ts []dialplan.TenantDialplan) ([]dialplan.TenantDialplan, string) { return ts, "earpiece-b" },
		"tenant rename": func(ts []dialplan.TenantDialplan) ([]dialplan.TenantDialplan, string) {
			ts[1].Tenant = "globex2"
			return ts, ""
		},
	}
	seen := map[string]string{base.Marker: "base"}
	for name, change := range changes {
		ts, app := change(sampleTenants())
		f, err := dialplan.RenderFiles(ts, app)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if prev, dup := seen[f.Marker]; dup {
			t.Errorf("%s: marker %s equals %s's", name, f.Marker, prev)
		}
		seen[f.Marker] = name
		if m := markerLine.FindSubmatch(f.Extensions); m == nil || string(m[1]) != f.Marker {
			t.Errorf("%s: file does not set the marker %s", name, f.Marker)
		}
	}
}

func TestRenderFilesEmpty(t *testing.T) {
	f, err := dialplan.RenderFiles(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if !markerLine.Match(f.Extensions) || bytes.Contains(f.Extensions, []byte("exten")) || !bytes.Contains(f.Features, []byte("[applicationmap]\n")) {
		t.Errorf("no tenants:\n%s\n%s", f.Extensions, f.Features)
	}
}

func TestRenderFilesRefusesBadInput(t *testing.T) {
	bad := sampleTenants()
	bad[0].Hints = append(bad[0].Hints, dialplan.Hint{Exten: "745", Device: "PJSIP/745,1,Dial(x)"})
	bad[1].Tenant = "glo bex"
	_, err := dialplan.RenderFiles(bad, "")
	if !errors.Is(err, dialplan.ErrInvalidHint) || !errors.Is(err, dialplan.ErrInvalidName) {
		t.Errorf("RenderFiles = %v, want both problems", err)
	}
	twice := append(sampleTenants(), sampleTenants()[0])
	if _, err := dialplan.RenderFiles(twice, ""); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Errorf("a tenant twice: %v", err)
	}
	if _, err := dialplan.RenderFiles(sampleTenants(), "bad app"); !errors.Is(err, dialplan.ErrInvalidName) {
		t.Errorf("bad app: %v", err)
	}
}
