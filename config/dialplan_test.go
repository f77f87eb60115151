package config_test

import (
	"strings"
	"testing"

	"github.com/earpiece/earpiece/config"
)

func TestDialplanFiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    config.Dialplan
		want []string
	}{
		{"none: rendered by hand", config.Dialplan{}, nil},
		{"both", config.Dialplan{ExtensionsFile: "/etc/asterisk/extensions_earpiece.conf", FeaturesFile: "/etc/asterisk/features_earpiece.conf"}, nil},
		{"extensions only", config.Dialplan{ExtensionsFile: "/shared/asterisk/extensions_earpiece.conf"}, nil},
		{"relative", config.Dialplan{ExtensionsFile: "asterisk-conf/extensions_earpiece.conf", FeaturesFile: "./f.conf"}, []string{
			`dialplan.extensions_file: "asterisk-conf/extensions_earpiece.conf": want an absolute path`,
			`dialplan.features_file: "./f.conf": want an absolute path`,
		}},
		{"directory", config.Dialplan{ExtensionsFile: "/etc/asterisk/"}, []string{
			`dialplan.extensions_file: "/etc/asterisk/": want a file's path, not a directory's`,
		}},
		{"newline", config.Dialplan{ExtensionsFile: "/etc/a\nb"}, []string{
			`dialplan.extensions_file: "/etc/a\nb": control character in the path`,
		}},
		{"features without extensions", config.Dialplan{FeaturesFile: "/etc/asterisk/features_earpiece.conf"}, []string{
			"dialplan.features_file: set without dialplan.extensions_file: earpiece writes both or none",
		}},
		{"the same file", config.Dialplan{ExtensionsFile: "/etc/asterisk/e.conf", FeaturesFile: "/etc/asterisk/./e.conf"}, []string{
			`dialplan.features_file: "/etc/asterisk/./e.conf": the same file as dialplan.extensions_file`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadTestdata(t, "sample.yaml")
			cfg.Dialplan = tc.d
			got := messages(cfg.Validate())
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("Validate() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestDialplanFilesFromYAMLAndEnv(t *testing.T) {
	cfg, err := config.Decode(strings.NewReader("dialplan:\n  extensions_file: /a/extensions_earpiece.conf\n  features_file: /a/features_earpiece.conf\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Dialplan.ExtensionsFile != "/a/extensions_earpiece.conf" || cfg.Dialplan.FeaturesFile != "/a/features_earpiece.conf" {
		t.Errorf("decoded %+v", cfg.Dialplan)
	}
	env := map[string]string{config.EnvDialplanFile: "/b/e.conf", config.EnvFeaturesFile: ""}
	cfg.ApplyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if cfg.Dialplan.ExtensionsFile != "/b/e.conf" || cfg.Dialplan.FeaturesFile != "/a/features_earpiece.conf" {
		t.Errorf("after EARPIECE_DIALPLAN_FILE (and an empty EARPIECE_FEATURES_FILE): %+v", cfg.Dialplan)
	}
	if config.EnvDialplanFile != "EARPIECE_DIALPLAN_FILE" || config.EnvFeaturesFile != "EARPIECE_FEATURES_FILE" {
		t.Error("the variables' names are documented; do not rename them")
	}
	if _, err := config.Decode(strings.NewReader("dialplan:\n  extension_file: /a\n")); err == nil {
		t.Error("a misspelt dialplan key was accepted")
	}
}
