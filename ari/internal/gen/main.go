// Command gen writes ari/events_gen.go, the typed event structs, from
// Asterisk's own description of ARI events (events.json, Swagger 1.1).
//
// Every subtype of Message and Event becomes a struct embedding
// ari.EventBase and is registered for ari.DecodeEvent; the other models of
// events.json become plain structs. Models defined by the other resource
// files (Channel, Bridge, ...) are written by hand in ari/models.go.
//
// Run by `go generate ./ari/` or `make generate` (see the //go:generate line
// in ari/doc.go). Without -api it reads the events.json that the test
// Asterisk ships (Debian's asterisk package installs Asterisk's ARI
// description under /usr/share/asterisk/rest-api), in the root that
// internal/asterisktest runs Asterisk in; scripts/asterisk-root.sh builds
// that root first if it is not there yet.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/format"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/earpiece/earpiece/internal/asterisktest"
)

func main() {
	api := flag.String("api", "", "directory holding Asterisk's ARI description (events.json); default: <test Asterisk root>/"+asterisktest.RESTAPIDir)
	out := flag.String("out", "ari/events_gen.go", "Go file to write")
	flag.Parse()

	dir := *api
	if dir == "" {
		var err error
		if dir, err = testAsteriskAPIDir(); err != nil {
			fmt.Fprintf(os.Stderr, "gen: %v (or name a directory with -api)\n", err)
			os.Exit(1)
		}
	}
	in := filepath.Join(dir, "events.json")
	src, err := os.ReadFile(in)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gen: reading events description (-api=%q): %v\n", dir, err)
		os.Exit(1)
	}
	code, err := Generate(src)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gen: %s: %v\n", in, err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, code, 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "gen: writing %s (-out): %v\n", *out, err)
		os.Exit(1)
	}
}

// testAsteriskAPIDir returns the directory of the test Asterisk's own ARI
// description (events.json among it), provisioning the test Asterisk's root
// if needed.
func testAsteriskAPIDir() (string, error) {
	root, err := asterisktest.Root()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, asterisktest.RESTAPIDir), nil
}

type model struct {
	ID          string          `json:"id"`
	Description string          `json:"description"`
	Properties  json.RawMessage `json:"properties"`
	SubTypes    []string        `json:"subTypes"`
}

type property struct {
	Type        string `json:"type"`
	Required    bool   `json:"required"`
	Description string `json:"description"`
}

// external are models that events.json uses but other resource files define;
// ari/models.go declares them under these names.
var external = map[string]bool{
	"Channel": true, "Bridge": true, "Endpoint": true, "Playback": true,
	"LiveRecording": true, "DeviceState": true, "TextMessage": true,
}

// handWritten are the base models, declared in ari/events.go as EventBase.
var handWritten = map[string]bool{"Message": true, "Event": true}

// fieldNames overrides the mechanical snake_case to CamelCase conversion
// where Asterisk runs words together.
var fieldNames = map[string]string{
	"eventname":  "EventName",
	"userevent":  "UserEvent",
	"musicclass": "MusicClass",
	"dialstring": "DialString",
	"dialstatus": "DialStatus",
}

// fieldTypes gives string properties that hold an id its typed id.
var fieldTypes = map[string]string{
	"BridgeVideoSourceChanged.old_video_source_id": "ChannelID",
	"BridgeAttendedTransfer.destination_bridge":    "BridgeID",
}

var initialisms = map[string]string{"id": "ID", "ids": "IDs", "uri": "URI", "url": "URL", "dtmf": "DTMF"}

// Generate returns the formatted Go source for events.json.
func Generate(src []byte) ([]byte, error) {
	var doc struct {
		APIVersion string          `json:"apiVersion"`
		Models     json.RawMessage `json:"models"`
	}
	if err := json.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	order, err := objectKeys(doc.Models)
	if err != nil {
		return nil, fmt.Errorf("models: %w", err)
	}
	var models map[string]model
	if err := json.Unmarshal(doc.Models, &models); err != nil {
		return nil, fmt.Errorf("models: %w", err)
	}
	for _, base := range []string{"Message", "Event"} {
		if _, ok := models[base]; !ok {
			return nil, fmt.Errorf("model %s missing", base)
		}
	}
	isEvent := map[string]bool{}
	for _, base := range []string{"Message", "Event"} {
		for _, sub := range models[base].SubTypes {
			if !handWritten[sub] {
				isEvent[sub] = true
			}
		}
	}

	var b bytes.Buffer

	var events []string
	var errs []error
	for _, name := range order {
		if handWritten[name] {
			continue
		}
		m := models[name]
		if isEvent[name] {
			events = append(events, name)
		}
		if err := writeModel(&b, name, m, isEvent[name], models); err != nil {
			errs = append(errs, fmt.Errorf("model %s: %w", name, err))
		}
	}
	for name := range isEvent {
		if _, ok := models[name]; !ok {
			errs = append(errs, fmt.Errorf("subtype %s has no model", name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	b.WriteString("// eventTypes maps an event's \"type\" to a constructor of its struct.\n")
	b.WriteString("var eventTypes = map[string]func() Event{\n")
	for _, name := range events {
		fmt.Fprintf(&b, "\t%q: func() Event { return new(%s) },\n", name, name)
	}
	b.WriteString("}\n")

	var head bytes.Buffer
	fmt.Fprintf(&head, "// Code generated by ari/internal/gen from Asterisk's events.json (ARI %s); DO NOT EDIT.\n\n", doc.APIVersion)
	head.WriteString("package ari\n\n")
	if bytes.Contains(b.Bytes(), []byte("json.RawMessage")) {
		head.WriteString("import \"encoding/json\"\n\n")
	}
	head.Write(b.Bytes())
	code, err := format.Source(head.Bytes())
	if err != nil {
		return nil, fmt.Errorf("formatting generated code: %w\n%s", err, head.Bytes())
	}
	return code, nil
}

func writeModel(b *bytes.Buffer, name string, m model, event bool, models map[string]model) error {
	kind := "model"
	if event {
		kind = "event"
	}
	writeComment(b, "", fmt.Sprintf("%s is the ARI %s %q (events.json): %s", name, kind, name, m.Description))
	fmt.Fprintf(b, "type %s struct {\n", name)
	if event {
		b.WriteString("\tEventBase\n")
	}
	keys, err := objectKeys(m.Properties)
	if err != nil {
		return err
	}
	var props map[string]property
	if len(m.Properties) > 0 {
		if err := json.Unmarshal(m.Properties, &props); err != nil {
			return err
		}
	}
	seen := map[string]string{}
	for _, key := range keys {
		if event && (key == "type" || key == "application" || key == "timestamp" || key == "asterisk_id") {
			continue // in EventBase
		}
		p := props[key]
		field := goName(key)
		if prev, dup := seen[field]; dup {
			return fmt.Errorf("properties %s and %s both become field %s", prev, key, field)
		}
		seen[field] = key
		typ, model, err := goType(p.Type, models)
		if err != nil {
			return fmt.Errorf("property %s: %w", key, err)
		}
		if t, ok := fieldTypes[name+"."+key]; ok {
			if typ != "string" {
				return fmt.Errorf("property %s: typed id override on %s", key, typ)
			}
			typ = t
		}
		tag := key
		if !p.Required {
			tag += ",omitempty"
			if model {
				typ = "*" + typ
			}
		}
		if p.Description != "" {
			writeComment(b, "\t", p.Description)
		}
		fmt.Fprintf(b, "\t%s %s `json:%q`\n", field, typ, tag)
	}
	b.WriteString("}\n\n")
	return nil
}

// goType maps a Swagger type to Go; model reports a struct type (made a
// pointer when optional, so absence can be told from a zero value).
func goType(t string, models map[string]model) (typ string, model bool, err error) {
	switch t {
	case "string":
		return "string", false, nil
	case "int":
		return "int", false, nil
	case "long":
		return "int64", false, nil
	case "double":
		return "float64", false, nil
	case "boolean":
		return "bool", false, nil
	case "Date":
		return "Time", false, nil
	case "object":
		return "json.RawMessage", false, nil
	}
	if inner, ok := strings.CutPrefix(t, "List["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		if !ok {
			return "", false, fmt.Errorf("bad type %q", t)
		}
		el, _, err := goType(inner, models)
		if err != nil {
			return "", false, err
		}
		return "[]" + el, false, nil
	}
	if _, ok := models[t]; (ok && !handWritten[t]) || external[t] {
		return t, true, nil
	}
	return "", false, fmt.Errorf("unknown type %q", t)
}

func goName(key string) string {
	if n, ok := fieldNames[key]; ok {
		return n
	}
	var s strings.Builder
	for part := range strings.SplitSeq(key, "_") {
		if part == "" {
			continue
		}
		if n, ok := initialisms[part]; ok {
			s.WriteString(n)
			continue
		}
		s.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return s.String()
}

var space = regexp.MustCompile(`\s+`)

// writeComment writes text as a // comment wrapped near 80 columns.
func writeComment(b *bytes.Buffer, indent, text string) {
	words := strings.Fields(space.ReplaceAllString(text, " "))
	line := indent + "//"
	for _, w := range words {
		if len(line)+1+len(w) > 78 && len(line) > len(indent)+2 {
			b.WriteString(line + "\n")
			line = indent + "//"
		}
		line += " " + w
	}
	b.WriteString(line + "\n")
}

// objectKeys returns the keys of a JSON object in document order (Go maps
// lose it, and Swagger's order groups related fields).
func objectKeys(raw json.RawMessage) ([]string, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, errors.New("not an object")
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		if slices.Contains(keys, key) {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		keys = append(keys, key)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}
