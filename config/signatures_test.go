package config

import (
	"strings"
	"testing"
)

func TestRequestSignatures(t *testing.T) {
	cfg, err := Decode(strings.NewReader(`
tenants:
  - id: acme
    extensions: [{number: "700", endpoint: PJSIP/700}]
  - id: globex
    request_signatures: Required
    extensions: [{number: "700", endpoint: PJSIP/globex-700}]
  - id: initech
    request_signatures: always
    extensions: [{number: "700", endpoint: PJSIP/initech-700}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Tenants[0].RequestSignatures; got != SignaturesOptional {
		t.Errorf("default = %q, want optional", got)
	}
	if got := cfg.Tenants[1].RequestSignatures; got != SignaturesRequired {
		t.Errorf("Required = %q, want required", got)
	}
	err = cfg.Validate()
	want := `tenants[initech].request_signatures: "always": want optional or required`
	if err == nil || !strings.Contains(err.Error(), want) || strings.Count(err.Error(), "request_signatures") != 1 {
		t.Errorf("Validate = %v, want only %q", err, want)
	}
	cfg.Tenants[2].RequestSignatures = SignaturesRequired
	dir, err := NewDirectory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if g, _ := dir.Tenant("globex"); g.RequestSignatures != SignaturesRequired {
		t.Errorf("directory's globex = %q", g.RequestSignatures)
	}
}

func TestSampleRequestSignatures(t *testing.T) {
	cfg, err := Load("testdata/sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []Signatures{SignaturesOptional, SignaturesRequired, SignaturesOptional} {
		if got := cfg.Tenants[i].RequestSignatures; got != want {
			t.Errorf("tenants[%s].request_signatures = %q, want %q", cfg.Tenants[i].ID, got, want)
		}
	}
}
