package webhooks

// The browser under the dashboard's end-to-end test. It is chromedp driving Debian's Chromium
// through the DevTools protocol: chromedp is pure Go (a dependency of the tests only, in the
// module cache like the others), so `make test` needs no Node.js toolchain, no npm packages
// and no WebDriver binary of a matching version; Chromium comes from Debian's own package
// (scripts/test-deps.sh installs it), and the protocol also gives the test what WebDriver
// would not: every console message, every event-stream message the page received, and the
// requests it made.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// envChromium names the Chromium to run instead of /usr/bin/chromium; envArtifacts, the
// directory for the screenshots and downloads (default: artifacts/dashboard at the top of the
// repository, which git ignores).
const (
	envChromium  = "EARPIECE_TEST_CHROMIUM"
	envArtifacts = "EARPIECE_TEST_ARTIFACTS"
)

// chromiumPath finds Chromium, or fails t: a browser test that cannot run must not pass.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(envChromium); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			t.Fatalf("%s=%s: %v: the dashboard's browser test needs a Chromium", envChromium, p, err)
		}
		return path
	}
	for _, p := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatalf("Chromium not found: the dashboard's browser test needs it. Install Debian's package "+
		"(apt-get install chromium; `make test` does it through scripts/test-deps.sh), or name another "+
		"Chromium in %s.", envChromium)
	return ""
}

// artifactsDir is where the test writes its screenshots.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(envArtifacts)
	if dir == "" {
		dir = filepath.Join("..", "artifacts", "dashboard")
	}
	dir, err := filepath.Abs(dir)
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		t.Fatalf("artifacts directory: %v", err)
	}
	// The screenshots of an earlier run go: what is there is this run's.
	old, _ := filepath.Glob(filepath.Join(dir, "[0-9][0-9]-*.png"))
	for _, f := range old {
		_ = os.Remove(f)
	}
	return dir
}

// testBrowser is one headless Chromium for a whole test; each tab has a browser context of its
// own (its own cookies: one signed-in user each).
type testBrowser struct {
	t         *testing.T
	ctx       context.Context
	artifacts string
	wg        sync.WaitGroup
	mu        sync.Mutex
	shots     []string
}

// startBrowser starts Chromium; it is stopped when t ends.
func startBrowser(t *testing.T, path, artifacts string) *testBrowser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // the test may run as root, where Chromium's sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		// Tabs in the background keep their timers and event streams running.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.UserDataDir(t.TempDir()), // a fresh profile
		chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b := &testBrowser{t: t, ctx: ctx, artifacts: artifacts}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		_ = chromedp.Cancel(cctx)
		cancel()
		cancelAlloc()
		b.wg.Wait()
	})
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium (%s): %v", path, err)
	}
	t.Logf("Chromium started in %v", time.Since(start).Round(time.Millisecond))
	return b
}

// browserTab is one tab in a browser context of its own, with what it logged and received.
type browserTab struct {
	b    *testBrowser
	name string
	ctx  context.Context

	mu       sync.Mutex
	problems []string // console errors, exceptions, failed loads of the dashboard's files
	apiFails []string // failed /v1 requests (status text), which a test step may expect
	sse      []string // event-stream messages received: "type data"
	requests []string // request URLs
}

// tab opens a tab; name labels its failures and screenshots.
func (b *testBrowser) tab(name string) *browserTab {
	b.t.Helper()
	tb := &browserTab{b: b, name: name}
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext(), chromedp.WithListener(tb.listen))
	b.t.Cleanup(cancel)
	tb.ctx = ctx
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("%s: opening a tab: %v", name, err)
	}
	// Downloads (the audit log's CSV) go to the artifacts directory.
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: b.artifacts,
		BrowserContextID: chromedp.FromContext(ctx).BrowserContextID,
	}); err != nil {
		b.t.Fatalf("%s: download behaviour: %v", name, err)
	}
	return tb
}

// listen runs on the tab's event loop: record, return fast.
func (tb *browserTab) listen(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		tb.problems = append(tb.problems, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, text))
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert || ev.Type == runtime.ConsoleAPICalledTypeWarning {
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			tb.problems = append(tb.problems, fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
		}
	case *log.EventEntryAdded:
		e := ev.Entry
		if e.Level != log.EntryLevelError && e.Level != log.EntryLevelWarning {
			return
		}
		if e.Source == log.EntrySourceNetwork && strings.Contains(e.URL, "/v1/") {
			tb.apiFails = append(tb.apiFails, e.Text+" "+e.URL)
			return
		}
		tb.problems = append(tb.problems, fmt.Sprintf("log %s %s: %s (%s)", e.Level, e.Source, e.Text, e.URL))
	case *network.EventEventSourceMessageReceived:
		tb.sse = append(tb.sse, ev.EventName+" "+ev.Data)
	case *network.EventRequestWillBeSent:
		tb.requests = append(tb.requests, ev.Request.Method+" "+ev.Request.URL)
	}
}

// do runs actions, failing the test after 15 s.
func (tb *browserTab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.b.t.Fatalf("%s: %s: %v\nproblems: %v", tb.name, what, err, tb.Problems())
	}
}

// click clicks the element sel with the mouse, as a person would. The page re-renders a list
// when an event comes in, so the node found may be replaced before the click lands ("could not
// find node"): then it is found again and clicked, within 10 s.
func (tb *browserTab) click(what, sel string) {
	tb.b.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel)))
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.b.t.Fatalf("%s: %s: %v\nproblems: %v", tb.name, what, err, tb.Problems())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eval evaluates a JavaScript expression in the page.
func evalIn[T any](tb *browserTab, expr string) T {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.b.t.Fatalf("%s: evaluating %s: %v", tb.name, expr, err)
	}
	return v
}

// wait polls a JavaScript condition until it holds (within limit). It evaluates through the
// protocol: chromedp's Poll builds its predicate with new Function, which the page's CSP
// forbids, as it should.
func (tb *browserTab) wait(what, cond string, limit time.Duration) {
	tb.b.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok := evalIn[bool](tb, "Boolean("+cond+")")
		if ok {
			return
		}
		if time.Now().After(deadline) {
			body := evalIn[string](tb, "document.querySelector('main').innerText")
			reqs := tb.Requests()
			tb.b.t.Fatalf("%s: timed out after %v waiting for %s (%s)\npage: %s\nproblems: %v\nfailed API requests: %v\nlast requests: %v",
				tb.name, limit, what, cond, body, tb.Problems(), tb.APIFailures(), reqs[max(0, len(reqs)-6):])
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// shot saves a screenshot of the whole page as <artifacts>/<name>.png, after checking that the
// page shows no value the scripts failed to render.
func (tb *browserTab) shot(name string) {
	tb.b.t.Helper()
	if junk := evalIn[string](tb, `(document.body.innerText.match(/\b(null|undefined|NaN|Invalid Date)\b|\[object /) || [''])[0]`); junk != "" {
		tb.b.t.Errorf("%s: the page shows %q (%s)", tb.name, junk, name)
	}
	if bad := evalIn[[]string](tb, a11yCheck); len(bad) > 0 {
		tb.b.t.Errorf("%s: accessibility problems (%s):\n%s", tb.name, name, strings.Join(bad, "\n"))
	}
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.b.t.Fatalf("%s: screenshot %s: %v", tb.name, name, err)
	}
	path := filepath.Join(tb.b.artifacts, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.b.t.Fatal(err)
	}
	tb.b.mu.Lock()
	tb.b.shots = append(tb.b.shots, path)
	tb.b.mu.Unlock()
}

// a11yCheck lists what keyboard and screen-reader users could not use on the page as shown: a
// control without a label, a button or link without a name, an image without alt text, an id
// used twice (labels and descriptions would point at the wrong element).
const a11yCheck = `(() => {
  const bad = [];
  const shown = (el) => !el.closest('[hidden]');
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    if (shown(el) && !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
      bad.push('control without a label: ' + el.outerHTML.slice(0, 100));
  }
  for (const el of document.querySelectorAll('button, a[href]')) {
    if (shown(el) && !el.textContent.trim() && !el.getAttribute('aria-label'))
      bad.push('button or link without a name: ' + el.outerHTML.slice(0, 100));
  }
  for (const el of document.querySelectorAll('img')) if (!el.hasAttribute('alt')) bad.push('image without alt: ' + el.src);
  const seen = new Set();
  for (const el of document.querySelectorAll('[id]')) {
    if (seen.has(el.id)) bad.push('id used twice: ' + el.id);
    seen.add(el.id);
  }
  for (const el of document.querySelectorAll('[aria-describedby], [aria-labelledby], [aria-controls]')) {
    for (const attr of ['aria-describedby', 'aria-labelledby', 'aria-controls'])
      for (const id of (el.getAttribute(attr) || '').split(/\s+/).filter(Boolean))
        if (!document.getElementById(id)) bad.push(attr + ' names no element: ' + id);
  }
  return bad;
})()`

// Problems are the console errors and exceptions so far.
func (tb *browserTab) Problems() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.problems...)
}

// SSE is the event-stream messages received so far.
func (tb *browserTab) SSE() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.sse...)
}

// APIFailures are the failed /v1 requests so far, as the console reported them.
func (tb *browserTab) APIFailures() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.apiFails...)
}

// Requests are the URLs the tab requested so far.
func (tb *browserTab) Requests() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.requests...)
}
