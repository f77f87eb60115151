package dialplan

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// The generated files as a whole. earpiece writes them for every tenant of its directory
// (extensions_earpiece.conf, included by extensions.conf, and features_earpiece.conf, included
// by features.conf), and `earpiece dialplan render` prints the same. The extensions file carries
// a marker of the whole rendering in a global variable, MarkerVariable, which Asterisk sets when
// pbx_config loads the file: reading it back through ARI (GET /asterisk/variable) tells which
// rendering Asterisk has loaded, so that earpiece knows when a new one is live and
// `earpiece doctor` can say whether Asterisk runs what the directory renders to.
//
// Verified on Asterisk 22 (app's TestE2EDialplanWriter): a [globals] section in an
// #included file is applied at every `module reload pbx_config.so`, also when extensions.conf
// has [globals] sections of its own before or after the #include (each one is applied), and
// the reload returns once both the variables and the new contexts are in place.

// MarkerVariable is the global variable the extensions file sets to Files.Marker.
const MarkerVariable = "EARPIECE_DIALPLAN"

// TenantDialplan is one tenant's part of the rendered files.
type TenantDialplan struct {
	Tenant string
	Rules  Rules
	Hints  []Hint
}

// Files are the rendered files of a set of tenants.
type Files struct {
	Extensions []byte // the extensions.conf part: [globals] with the marker, then each tenant's contexts
	Features   []byte // the features.conf part: RenderFeatures of the tenants
	// Marker identifies the rendering (both files): the first 128 bits of a SHA-256, in hex. The
	// extensions file sets MarkerVariable to it.
	Marker string
}

// RenderFiles renders the files of tenants, in their order, for Stasis application app (empty:
// DefaultApp). It checks everything first (each tenant as Render and RenderFeatures do, a
// tenant listed twice) and reports every problem at once. Equal inputs give byte-equal files,
// so earpiece instances rendering the same directory write the same content.
func RenderFiles(tenants []TenantDialplan, app string) (Files, error) {
	var errs []error
	var feat bytes.Buffer
	trs := make([]TenantRules, len(tenants))
	for i, t := range tenants {
		trs[i] = TenantRules{Tenant: t.Tenant, Rules: t.Rules}
	}
	if err := RenderFeatures(&feat, trs); err != nil {
		errs = append(errs, err)
	}
	var body bytes.Buffer
	for i, t := range tenants {
		if i > 0 {
			body.WriteString("\n")
		}
		if err := Render(&body, t.Tenant, t.Rules, RenderOptions{App: app, Hints: t.Hints}); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Files{}, fmt.Errorf("render dialplan files: %w", err)
	}
	h := sha256.New()
	h.Write([]byte("earpiece dialplan\n"))
	h.Write(body.Bytes())
	h.Write([]byte{0})
	h.Write(feat.Bytes())
	marker := hex.EncodeToString(h.Sum(nil)[:16])

	var ext bytes.Buffer
	ext.WriteString("; earpiece: every tenant's supervision codes, BLF hints and agents' help-key subroutine\n")
	ext.WriteString("; (generated from earpiece's directory; do not edit, it is rewritten)\n")
	ext.WriteString("[globals]\n")
	ext.WriteString("; which rendering Asterisk has loaded: earpiece and `earpiece doctor` read it through ARI\n")
	fmt.Fprintf(&ext, "%s=%s\n", MarkerVariable, marker)
	if body.Len() > 0 {
		ext.WriteString("\n")
		ext.Write(body.Bytes())
	}
	return Files{Extensions: ext.Bytes(), Features: feat.Bytes(), Marker: marker}, nil
}
