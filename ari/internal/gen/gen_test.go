package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/earpiece/earpiece/internal/asterisktest"
)

// TestGeneratedFileIsCurrent regenerates events_gen.go from the events.json
// of the test Asterisk (provisioning its root first if needed, as the
// Asterisk tests do) and compares it with the committed file.
func TestGeneratedFileIsCurrent(t *testing.T) {
	dir, err := testAsteriskAPIDir()
	if err != nil {
		if os.Getenv(asterisktest.EnvARIURL) != "" {
			// Like scripts/test-deps.sh, which builds no root when the tests use another Asterisk.
			t.Skipf("%s is set and the test Asterisk root is not available: %v", asterisktest.EnvARIURL, err)
		}
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(dir, "events.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Generate(src)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../../events_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("ari/events_gen.go is stale: run go generate ./ari/ (or make generate)")
	}
}

func TestGenerate(t *testing.T) {
	src := `{"apiVersion":"9.9.9","models":{
		"Message":{"id":"Message","properties":{"type":{"type":"string","required":true}},"subTypes":["Event"]},
		"Event":{"id":"Event","properties":{"application":{"type":"string","required":true}},"subTypes":["Zed","Alpha"]},
		"Zed":{"id":"Zed","description":"Last\nbut first.","properties":{
			"z_id":{"type":"string","required":true},
			"a_list":{"type":"List[Helper]","required":true},
			"chan":{"type":"Channel"},
			"when":{"type":"Date","required":true},
			"data":{"type":"object","required":true}}},
		"Alpha":{"id":"Alpha","properties":{}},
		"Helper":{"id":"Helper","properties":{"channel_ids":{"type":"List[string]","required":true}}}}}`
	code, err := Generate([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	s := string(code)
	for _, want := range []string{
		"ARI 9.9.9); DO NOT EDIT.",
		"import \"encoding/json\"",
		"// Zed is the ARI event \"Zed\" (events.json): Last but first.",
		"ZID   string          `json:\"z_id\"`",
		"AList []Helper        `json:\"a_list\"`",
		"Chan  *Channel        `json:\"chan,omitempty\"`",
		"When  Time            `json:\"when\"`",
		"Data  json.RawMessage `json:\"data\"`",
		"ChannelIDs []string `json:\"channel_ids\"`",
		"\"Zed\":   func() Event { return new(Zed) },",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q in\n%s", want, s)
		}
	}
	// Document order is kept: Zed before Alpha, z_id before a_list.
	if strings.Index(s, "type Zed") > strings.Index(s, "type Alpha") || strings.Index(s, "ZID") > strings.Index(s, "AList") {
		t.Errorf("order not kept:\n%s", s)
	}
	if strings.Contains(s, "type Helper struct {\n\tEventBase") {
		t.Error("Helper is not an event")
	}

	if _, err := Generate([]byte(`{"models":{"Message":{"subTypes":["Event"]},"Event":{"subTypes":["X"]},"X":{"properties":{"p":{"type":"Mystery"}}}}}`)); err == nil {
		t.Error("unknown type accepted")
	}
}

func TestGoName(t *testing.T) {
	for in, want := range map[string]string{
		"id": "ID", "channel_ids": "ChannelIDs", "asterisk_id": "AsteriskID", "media_uri": "MediaURI",
		"duration_ms": "DurationMs", "cause_txt": "CauseTxt", "eventname": "EventName", "is_external": "IsExternal",
	} {
		if got := goName(in); got != want {
			t.Errorf("goName(%q) = %q, want %q", in, got, want)
		}
	}
}
