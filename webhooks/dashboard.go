package webhooks

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/earpiece/earpiece/dashboard"
)

// The browser dashboard (package dashboard): its page at / and its files at /ui/{file}, served
// from the binary, public (they hold no data: everything comes from /v1 once signed in, see
// session.go). Each answer carries a strict Content-Security-Policy and an ETag; browsers
// revalidate (no-cache), so a new release shows at the next load without file names that
// change.

// dashboardCSP is the page's Content-Security-Policy: scripts, styles, images and requests from
// earpiece itself only, no inline script or style, no plugin, no frame, no form submitted by
// the browser (the scripts send them), and Trusted Types required with no policy allowed, so
// that no string can ever become HTML or script.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; " +
	"require-trusted-types-for 'script'; trusted-types 'none'"

// asset is one dashboard file, ready to serve.
type asset struct {
	body        []byte
	etag        string
	contentType string
}

// dashboardTypes are the content types of the file kinds the dashboard has; other files are
// not served.
var dashboardTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

// loadAssets reads the dashboard's files.
func loadAssets(fsys fs.FS) map[string]asset {
	out := map[string]asset{}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		panic(err) // embedded: cannot fail
	}
	for _, e := range entries {
		ct, ok := dashboardTypes[path.Ext(e.Name())]
		if e.IsDir() || !ok {
			continue
		}
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			panic(err)
		}
		sum := sha256.Sum256(body)
		out[e.Name()] = asset{body: body, etag: `"` + hex.EncodeToString(sum[:16]) + `"`, contentType: ct}
	}
	return out
}

// dashboardAssets are the embedded files (read once: they never change in a running binary).
var dashboardAssets = loadAssets(dashboard.Files())

// dashboardRoutes serves the page and its files.
func (s *Server) dashboardRoutes() {
	s.echo.GET("/", func(c *echo.Context) error { return serveAsset(c, "index.html") })
	s.echo.GET("/ui/:file", func(c *echo.Context) error {
		name := c.Param("file")
		if name == "index.html" || strings.ContainsAny(name, "/\\") {
			return newError(http.StatusNotFound, codeNotFound, "no such file")
		}
		return serveAsset(c, name)
	})
}

func serveAsset(c *echo.Context, name string) error {
	a, ok := dashboardAssets[name]
	if !ok {
		return newError(http.StatusNotFound, codeNotFound, "no such file")
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	for _, tag := range strings.Split(c.Request().Header.Get("If-None-Match"), ",") {
		if t := strings.TrimPrefix(strings.TrimSpace(tag), "W/"); t == a.etag || t == "*" {
			return c.NoContent(http.StatusNotModified)
		}
	}
	return c.Blob(http.StatusOK, a.contentType, a.body)
}
