package webhooks

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDashboardServed: the page and its files are served from the binary with the strict
// Content-Security-Policy and the other protective headers, revalidated with their ETag; only
// the dashboard's own files are, and nothing of the /v1 API needs them.
func TestDashboardServed(t *testing.T) {
	e := newEnv(t)
	rec := e.do(http.MethodGet, "/", "", "")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" ||
		!strings.Contains(rec.Body.String(), `<script type="module" src="/ui/main.js">`) {
		t.Fatalf("GET / = %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	for name, want := range map[string]string{
		"Content-Security-Policy": dashboardCSP,
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-cache",
	} {
		if got := rec.Header().Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	for _, directive := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
		"frame-ancestors 'none'", "require-trusted-types-for 'script'"} {
		if !strings.Contains(dashboardCSP, directive+";") && !strings.HasSuffix(dashboardCSP, directive) {
			t.Errorf("the CSP lacks %q", directive)
		}
	}
	if strings.Contains(dashboardCSP, "unsafe") {
		t.Errorf("the CSP allows something unsafe: %s", dashboardCSP)
	}
	etag := rec.Header().Get("ETag")
	if rec := e.do(http.MethodGet, "/", "", "", "If-None-Match", etag); rec.Code != http.StatusNotModified {
		t.Errorf("revalidation: %d", rec.Code)
	}

	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
	for name := range dashboardAssets {
		if name == "index.html" {
			continue
		}
		rec := e.do(http.MethodGet, "/ui/"+name, "", "")
		ext := name[strings.LastIndex(name, "."):]
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != types[ext] || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET /ui/%s = %d %q", name, rec.Code, rec.Header().Get("Content-Type"))
		}
	}
	for _, path := range []string{"/ui/nope.js", "/ui/index.html", "/ui/..%2Fdashboard.go", "/ui/%2e%2e/go.mod", "/ui/dashboard.go", "/ui/"} {
		if rec := e.do(http.MethodGet, path, "", ""); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d", path, rec.Code)
		}
	}
}

var (
	importRE = regexp.MustCompile(`(?m)^\s*import\s[^'"]*['"]\./([^'"]+)['"]`)
	uiRefRE  = regexp.MustCompile(`/ui/([A-Za-z0-9._-]+)`)
	urlRE    = regexp.MustCompile(`(?i)\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
)

// TestDashboardFilesFollowTheRules: what the CSP enforces in the browser, checked in the
// source too: no inline script or style, no HTML from strings, nothing from another origin;
// and every module and file the page refers to exists.
func TestDashboardFilesFollowTheRules(t *testing.T) {
	html := string(dashboardAssets["index.html"].body)
	for _, tag := range regexp.MustCompile(`<script[^>]*>[^<]*`).FindAllString(html, -1) {
		if !strings.Contains(tag, " src=") || !strings.HasSuffix(tag, ">") {
			t.Errorf("index.html has an inline script: %q", tag)
		}
	}
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`\son[a-z]+\s*=`), // inline event handlers
		regexp.MustCompile(`\sstyle\s*=`),    // inline style
		regexp.MustCompile(`<style`),
	} {
		if loc := bad.FindStringIndex(html); loc != nil {
			t.Errorf("index.html has inline code: %q", html[loc[0]:min(loc[1]+40, len(html))])
		}
	}
	for _, m := range uiRefRE.FindAllStringSubmatch(html, -1) {
		if _, ok := dashboardAssets[m[1]]; !ok {
			t.Errorf("index.html refers to /ui/%s, which is not served", m[1])
		}
	}
	sinks := []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute('style'",
		".style.", "srcdoc"}
	for name, a := range dashboardAssets {
		src := string(a.body)
		if strings.HasSuffix(name, ".js") {
			for _, s := range sinks {
				if strings.Contains(src, s) {
					t.Errorf("%s uses %s", name, s)
				}
			}
			for _, m := range importRE.FindAllStringSubmatch(src, -1) {
				if _, ok := dashboardAssets[m[1]]; !ok {
					t.Errorf("%s imports ./%s, which is not served", name, m[1])
				}
			}
		}
		for _, u := range urlRE.FindAllString(src, -1) {
			if !slices.Contains([]string{"http://www.w3.org"}, strings.ToLower(u)) {
				t.Errorf("%s refers to another origin: %s", name, u)
			}
		}
		if strings.HasSuffix(name, ".css") && (strings.Contains(src, "@import") || strings.Contains(src, "url(")) {
			t.Errorf("%s loads something", name)
		}
	}
}
