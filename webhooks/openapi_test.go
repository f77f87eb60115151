package webhooks

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v5"
)

var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// TestOpenAPIMatchesRoutes keeps the document honest: every route echo serves is described,
// and every operation described is routed.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t)
	rec := e.do(http.MethodGet, "/v1/openapi.json", "", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /v1/openapi.json = %d", rec.Code)
	}
	var doc struct {
		OpenAPI    string                                `json:"openapi"`
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			SecuritySchemes map[string]struct {
				Type, Scheme string
			} `json:"securitySchemes"`
		} `json:"components"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Errorf("openapi = %q", doc.OpenAPI)
	}
	if b := doc.Components.SecuritySchemes["bearer"]; b.Type != "http" || b.Scheme != "bearer" {
		t.Errorf("bearer security scheme = %+v", b)
	}

	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				documented[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	routed := map[string]bool{}
	for _, r := range e.srv.echo.Router().Routes() {
		if r.Method == echo.RouteNotFound || r.Method == echo.RouteAny {
			continue
		}
		routed[r.Method+" "+echoParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	if len(routed) < 10 {
		t.Fatalf("only %d routes: %v", len(routed), routed)
	}
	for r := range routed {
		if !documented[r] {
			t.Errorf("route %s is not in the OpenAPI document", r)
		}
	}
	for d := range documented {
		if !routed[d] {
			t.Errorf("the OpenAPI document describes %s, which is not routed", d)
		}
	}
}

// TestOpenAPIRefsResolve checks that every $ref points at something in the document.
func TestOpenAPIRefsResolve(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	var refs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "$ref" {
					refs = append(refs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	if len(refs) == 0 {
		t.Fatal("no $ref found")
	}
	slices.Sort(refs)
	for _, ref := range slices.Compact(refs) {
		node := any(doc)
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			m, ok := node.(map[string]any)
			if !ok {
				node = nil
				break
			}
			node = m[part]
		}
		if node == nil {
			t.Errorf("$ref %s does not resolve", ref)
		}
	}
}

// TestOpenAPIDocumentsRefusals: every /v1 operation can be rate limited (429 with Retry-After),
// every one with a JSON body refuses other media types and charsets (415), and /readyz shows a
// status only.
func TestOpenAPIDocumentsRefusals(t *testing.T) {
	type operation struct {
		RequestBody *json.RawMessage           `json:"requestBody"`
		Responses   map[string]json.RawMessage `json:"responses"`
	}
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Responses map[string]struct {
				Headers map[string]json.RawMessage `json:"headers"`
			} `json:"responses"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	if _, ok := doc.Components.Responses["TooManyRequests"].Headers["Retry-After"]; !ok {
		t.Error("the 429 answer does not document Retry-After")
	}
	op := func(path, method string) operation {
		var o operation
		if err := json.Unmarshal(doc.Paths[path][method], &o); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return o
	}
	for path, item := range doc.Paths {
		for method := range item {
			if !strings.HasPrefix(path, "/v1/") || !slices.Contains([]string{"get", "post", "put", "patch", "delete"}, method) {
				continue
			}
			op := op(path, method)
			if _, ok := op.Responses["429"]; !ok {
				t.Errorf("%s %s does not document 429", method, path)
			}
			if _, ok := op.Responses["415"]; op.RequestBody != nil && !ok {
				t.Errorf("%s %s takes a body but does not document 415", method, path)
			}
		}
	}
	if r := string(op("/readyz", "get").Responses["503"]); strings.Contains(r, "failed") {
		t.Errorf("/readyz 503 documents more than a status: %s", r)
	}
}
