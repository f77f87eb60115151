// Package dashboard holds the browser dashboard's files, embedded in the binary: earpiece
// serves them itself at / (package webhooks, dashboard.go), beside the /v1 API they use.
//
// The dashboard is plain HTML, CSS and JavaScript ES modules, with no framework, no
// dependency and no build step. That is a choice for the long run: what is in static/ is
// exactly what the browser runs, so there is no toolchain to install, upgrade or audit, no
// lockfile of transitive packages to keep patched, nothing generated that can drift from its
// source, and anyone who can read JavaScript can maintain it with the browser's own tools.
// The pages are small (a list of live calls, a few forms and tables), which is what the
// platform does well without help. The price is some code a framework would have brought
// (a tiny element builder in dom.js, rendering by rebuilding a section), accepted to keep the
// whole dashboard some fifteen hundred lines of JavaScript anyone can read in a day.
//
// Rules the files follow, which the page's Content-Security-Policy enforces (webhooks sets it):
// no inline script or style, no HTML built from strings (text goes in with textContent;
// Trusted Types are required, so innerHTML and its kin throw), nothing loaded from another
// origin (no CDN, no web font: the system's fonts), and every request to the same /v1 API a
// CRM uses, with the signed-in session's cookie and CSRF token.
//
// The modules (static/):
//
//   - index.html: the page's skeleton: sign-in form, header, the views' sections;
//   - main.js: start-up, sign-in and sign-out, which views the role gets;
//   - api.js: fetch of the /v1 API (CSRF header, JSON errors); live.js: the event stream
//     (EventSource), reconnecting by itself and saying when it is offline;
//   - supervisor.js: live calls and help alerts; agent.js: the agent's help request and the
//     coaching indicator; admin.js: directory, API keys, audit log, report, tenants;
//   - chart.js: the report's bar chart, drawn as inline SVG; dom.js: element building and
//     formatting helpers;
//   - app.css: the one style sheet; icon.svg: the tab's icon.
package dashboard

import (
	"embed"
	"io/fs"
)

//go:embed static
var files embed.FS

// Files are the dashboard's files, by name (index.html, main.js, ...): one flat directory.
func Files() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded directory exists: it is compiled in
	}
	return sub
}
