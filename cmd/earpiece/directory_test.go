package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/earpiece/earpiece/internal/redistest"
)

// `config import` puts the file's tenants in Redis (once: again only with --force or an edited
// file), `config export` prints them back, and importing the export changes nothing.
func TestConfigImportExportRoundTrip(t *testing.T) {
	rs := redistest.Start(t)
	t.Setenv("EARPIECE_CONFIG", "")
	t.Setenv("EARPIECE_REDIS_URL", rs.URL())
	cli := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(args, &out, &errb)
		return code, out.String(), errb.String()
	}
	const sample = "../../docker/earpiece.yaml"

	if code, _, errs := cli("config", "export", "--config", sample); code != 1 || !strings.Contains(errs, "no directory in Redis yet") {
		t.Fatalf("export of an empty Redis: exit %d: %s", code, errs)
	}
	if code, out, errs := cli("config", "import", "--config", sample); code != 0 || !strings.Contains(out, "imported: the directory in Redis is at revision 1 (2 tenants)") {
		t.Fatalf("import: exit %d: %s%s", code, out, errs)
	}
	if code, out, _ := cli("config", "import", "--config", sample); code != 0 || !strings.HasPrefix(out, "unchanged: ") {
		t.Fatalf("second import of the same file: exit %d: %s", code, out)
	}
	code, exported, errs := cli("config", "export", "--config", sample)
	if code != 0 || !strings.Contains(exported, "id: acme") || !strings.Contains(exported, "revision 1") {
		t.Fatalf("export: exit %d: %s%s", code, exported, errs)
	}
	file := filepath.Join(t.TempDir(), "directory.yaml")
	if err := os.WriteFile(file, []byte(exported), 0o600); err != nil {
		t.Fatal(err)
	}
	// The export is a configuration file of its own: importing it (even forced) changes nothing.
	if code, out, errs := cli("config", "import", "--config", sample, "--from", file, "--force"); code != 0 || !strings.HasPrefix(out, "unchanged: ") {
		t.Fatalf("import of the export: exit %d: %s%s", code, out, errs)
	}
	if code, again, _ := cli("config", "export", "--config", sample); code != 0 || again != exported {
		t.Fatalf("export after importing the export differs:\n%s\nvs\n%s", again, exported)
	}
	// An edited file is imported; an invalid one is refused with the field named, changing nothing.
	edited := strings.Replace(exported, "supervision_enabled: true", "supervision_enabled: false", 1)
	if edited == exported {
		t.Fatal("the sample has no tenant with supervision on")
	}
	if err := os.WriteFile(file, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := cli("config", "import", "--config", sample, "--from", file); code != 0 || !strings.Contains(out, "revision 2") {
		t.Fatalf("import of an edited file: exit %d: %s%s", code, out, errs)
	}
	bad := strings.Replace(edited, `spy_prefix: '*21'`, `spy_prefix: '*2'`, 1)
	if bad == edited {
		t.Fatalf("no spy_prefix *21 in the export:\n%s", edited)
	}
	if err := os.WriteFile(file, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := cli("config", "import", "--config", sample, "--from", file); code != 1 || !strings.Contains(errs, "dialing_rules") {
		t.Fatalf("import of an invalid file: exit %d: %s", code, errs)
	}
	if code, again, _ := cli("config", "export", "--config", sample); code != 0 || !strings.Contains(again, "revision 2") {
		t.Fatalf("an invalid import changed the directory:\n%s", again)
	}
}
