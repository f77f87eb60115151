package config

import (
	"path/filepath"
	"strings"
)

// Environment variables that set the dialplan files (ApplyEnv).
const (
	EnvDialplanFile = "EARPIECE_DIALPLAN_FILE" // dialplan.extensions_file
	EnvFeaturesFile = "EARPIECE_FEATURES_FILE" // dialplan.features_file
)

// Dialplan names the files earpiece keeps up to date with its directory: at start and whenever
// the directory changes, it renders every tenant's codes, BLF hints and help keys, writes the
// files that differ, and has Asterisk reload them through ARI (app.DialplanWriter). Asterisk
// must read them: extensions.conf #includes ExtensionsFile, features.conf FeaturesFile, and
// both processes see the same files (a shared volume). Empty ExtensionsFile: earpiece writes
// nothing, and the operator renders the files with `earpiece dialplan render`.
type Dialplan struct {
	// ExtensionsFile is the extensions.conf part, e.g. /etc/asterisk/extensions_earpiece.conf.
	ExtensionsFile string `yaml:"extensions_file"`
	// FeaturesFile is the features.conf part (the agents' in-call help keys), e.g.
	// /etc/asterisk/features_earpiece.conf. Empty: not written.
	FeaturesFile string `yaml:"features_file"`
}

// validate checks the paths: absolute, naming a file, and distinct. Whether their directory
// exists is not checked here (it may be a volume mounted later); writing reports it.
func (d Dialplan) validate(v *validator) {
	for _, f := range []struct{ name, path string }{
		{"dialplan.extensions_file", d.ExtensionsFile},
		{"dialplan.features_file", d.FeaturesFile},
	} {
		switch p := f.path; {
		case p == "":
		case !filepath.IsAbs(p):
			v.add(f.name, "%q: want an absolute path", p)
		case strings.HasSuffix(p, "/") || filepath.Base(p) == "." || filepath.Base(p) == "..":
			v.add(f.name, "%q: want a file's path, not a directory's", p)
		case strings.ContainsAny(p, "\x00\n\r"):
			v.add(f.name, "%q: control character in the path", p)
		}
	}
	switch {
	case d.FeaturesFile != "" && d.ExtensionsFile == "":
		v.add("dialplan.features_file", "set without dialplan.extensions_file: earpiece writes both or none")
	case d.ExtensionsFile != "" && filepath.Clean(d.ExtensionsFile) == filepath.Clean(d.FeaturesFile):
		v.add("dialplan.features_file", "%q: the same file as dialplan.extensions_file", d.FeaturesFile)
	}
}
