package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/lethe-privacy/lethe/internal/portal"
)

// A real browser (Chromium, driven over the DevTools protocol) on the
// privacy portal. Every page it loads must carry the portal's security
// headers, log no console error, fail no request, label every field and
// pass axe-core with no serious or critical violation.

const chromiumHint = "the privacy portal's browser tests need Chromium: apt-get update && apt-get install -y chromium (.ci/run does this when /usr/bin/chromium is missing)"

// axeDir holds package.json and package-lock.json for axe-core; .ci/run runs `npm ci` there.
const axeDir = "testdata/axe"

type browserTab struct {
	ctx     context.Context
	base    string // the API's URL: pages under it are the portal's
	axe     string // axe.min.js
	mu      sync.Mutex
	errs    []string
	urls    []string // every URL the browser requested
	docs    int      // portal documents loaded
	allowed func(url string) bool
	dls     chan string // completed downloads' GUIDs
}

// chromiumPath finds Chromium, installing Debian's package first when it
// is missing and this process may (root, apt-get present), so that the
// README's test command works on a fresh machine; otherwise the test fails
// saying how to install it.
func chromiumPath(t testing.TB) string {
	t.Helper()
	find := func() string {
		for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
		if p, err := exec.LookPath("chromium"); err == nil {
			return p
		}
		return ""
	}
	if p := find(); p != "" {
		return p
	}
	installChromium.Do(func() {
		if _, err := exec.LookPath("apt-get"); err != nil || os.Geteuid() != 0 {
			return
		}
		t.Log("installing Chromium for the browser tests (apt-get install chromium)")
		for _, args := range [][]string{{"update", "-q"}, {"install", "-y", "-q", "chromium"}} {
			cmd := exec.Command("apt-get", args...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Logf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
				return
			}
		}
	})
	if p := find(); p != "" {
		return p
	}
	t.Fatal(chromiumHint)
	return ""
}

// installChromium and installAxe run once per test process.
var installChromium, installAxe sync.Once

func axeSource(t testing.TB) string {
	t.Helper()
	file := filepath.Join(axeDir, "node_modules", "axe-core", "axe.min.js")
	if _, err := os.Stat(file); err != nil {
		installAxe.Do(func() {
			if _, err := exec.LookPath("npm"); err != nil {
				return
			}
			t.Log("installing axe-core for the browser tests (npm ci in starter/" + axeDir + ")")
			cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
			cmd.Dir = axeDir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Logf("npm ci: %v\n%s", err, out)
			}
		})
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("axe-core is not installed: run `npm ci --no-audit --no-fund` in starter/%s (.ci/run does this when node_modules is missing): %v", axeDir, err)
	}
	return string(b)
}

// newBrowser starts headless Chromium with a fresh profile, on a closed network.
func newBrowser(t testing.TB, base string, width, height int) *browserTab {
	t.Helper()
	path := chromiumPath(t)
	axe := axeSource(t)
	profile := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(width, height),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	b := &browserTab{ctx: ctx, base: base, axe: axe, allowed: func(string) bool { return false }, dls: make(chan string, 4)}
	// The first call starts the browser: no timeout on it (it would stop the browser).
	if err := chromedp.Listen(ctx, b.onEvent); err != nil {
		t.Fatalf("start Chromium (%s): %v", chromiumHint, err)
	}
	if err := chromedp.ListenBrowser(ctx, func(ev any) {
		if ev, ok := ev.(*browser.EventDownloadProgress); ok && ev.State == browser.DownloadProgressStateCompleted {
			select {
			case b.dls <- ev.GUID:
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	b.run(t, "set the viewport", chromedp.EmulateViewport(int64(width), int64(height)))
	return b
}

func (b *browserTab) problem(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errs = append(b.errs, fmt.Sprintf(format, args...))
}

func header(h network.Headers, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return fmt.Sprint(v)
		}
	}
	return ""
}

func (b *browserTab) onEvent(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			b.problem("console error: %s", strings.Join(parts, " "))
		}
	case *runtime.EventExceptionThrown:
		b.problem("uncaught exception: %s", ev.ExceptionDetails.Text)
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level == cdplog.EntryLevelError && !b.allowed(ev.Entry.Text) {
			b.problem("browser error (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
		}
	case *network.EventRequestWillBeSent:
		b.mu.Lock()
		b.urls = append(b.urls, ev.Request.URL)
		b.mu.Unlock()
		if ref := header(ev.Request.Headers, "Referer"); ref != "" {
			b.problem("a request carries a Referer (%s) to %s", ref, ev.Request.URL)
		}
	case *network.EventResponseReceived:
		r := ev.Response
		if !strings.HasPrefix(r.URL, b.base) {
			return
		}
		if r.Status >= 500 || r.Status == 404 && ev.Type != network.ResourceTypeDocument {
			b.problem("%d for %s", r.Status, r.URL)
		}
		if ev.Type != network.ResourceTypeDocument {
			return
		}
		b.mu.Lock()
		b.docs++
		b.mu.Unlock()
		csp := header(r.Headers, "Content-Security-Policy")
		if csp != portal.CSP || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
			b.problem("%s: Content-Security-Policy %q", r.URL, csp)
		}
		if header(r.Headers, "Referrer-Policy") != "no-referrer" {
			b.problem("%s: Referrer-Policy %q", r.URL, header(r.Headers, "Referrer-Policy"))
		}
		if header(r.Headers, "X-Content-Type-Options") != "nosniff" {
			b.problem("%s: X-Content-Type-Options %q", r.URL, header(r.Headers, "X-Content-Type-Options"))
		}
	case *network.EventLoadingFailed:
		if !b.allowed(ev.ErrorText) {
			b.problem("request failed: %s (%s, blocked: %s)", ev.ErrorText, ev.Type, ev.BlockedReason)
		}
	}
}

// run runs actions, failing the test on an error.
func (b *browserTab) run(t testing.TB, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v\nbrowser problems so far: %v", what, err, b.problems())
	}
}

// get runs one action that answers a value.
func get[T any](t testing.TB, b *browserTab, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v\nbrowser problems so far: %v", what, err, b.problems())
	}
	return v
}

func (b *browserTab) problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

// checkPage checks the page now shown: a portal document was loaded with
// its headers, nothing went wrong in the browser, every field has a label,
// and axe finds nothing serious.
func (b *browserTab) checkPage(t testing.TB, name string) {
	t.Helper()
	b.run(t, name+": wait for the page", chromedp.WaitReady(chromedp.CSS("body")))
	unlabelled := get(t, b, name+": labels", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
		.filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
		.map(e => e.name || e.id || e.outerHTML)`))
	if len(unlabelled) > 0 {
		t.Errorf("%s: fields without a label: %v", name, unlabelled)
	}
	// Injected over the DevTools protocol, which the page's CSP does not
	// govern: the page itself still runs no script.
	b.run(t, name+": inject axe", chromedp.Evaluate[chromedp.Void](b.axe))
	violations := get(t, b, name+": axe", chromedp.Evaluate[[]string](`axe.run(document, {resultTypes: ['violations']}).then(r =>
		r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
			.map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', ')))`,
		chromedp.EvalAwaitPromise))
	for _, v := range violations {
		t.Errorf("%s: accessibility: %s", name, v)
	}
	b.mu.Lock()
	docs := b.docs
	b.mu.Unlock()
	if docs == 0 {
		t.Errorf("%s: no portal page was loaded", name)
	}
	if p := b.problems(); len(p) > 0 {
		t.Fatalf("%s: %s", name, strings.Join(p, "\n"))
	}
}

// text is the page's visible text.
func (b *browserTab) text(t testing.TB) string {
	t.Helper()
	return get(t, b, "read the page", chromedp.Text(chromedp.CSS("body")))
}

func (b *browserTab) location(t testing.TB) string {
	t.Helper()
	return get(t, b, "read the address", chromedp.Location())
}

// status is the data-status of the request page's status, "" when none.
func (b *browserTab) status(t testing.TB) string {
	t.Helper()
	return get(t, b, "read the status", chromedp.Evaluate[string](`(document.getElementById('status') || {dataset: {}}).dataset.status || ''`))
}

// waitForElement reloads the page until the element with this id is on it
// (a request's page shows the code form once the workflow has asked for one).
func (b *browserTab) waitForElement(t testing.TB, id string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !get(t, b, "look for #"+id, chromedp.Evaluate[bool](`document.getElementById(`+"`"+id+"`"+`) !== null`)) {
		if time.Now().After(deadline) {
			t.Fatalf("#%s is not on the page after %s", id, timeout)
		}
		time.Sleep(300 * time.Millisecond)
		b.run(t, "reload", chromedp.Reload())
	}
}

// waitForStatus reloads the request's page until it shows want.
func (b *browserTab) waitForStatus(t testing.TB, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if got := b.status(t); got == want {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("the request's page still says %q after %s, want %q", got, timeout, want)
		}
		time.Sleep(300 * time.Millisecond)
		b.run(t, "reload", chromedp.Reload())
	}
}

// recordingTB keeps what a check reports instead of failing the test, so a
// test can show that the checks fail on a bad page.
type recordingTB struct {
	testing.TB
	mu   sync.Mutex
	msgs []string
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, s)
}
func (r *recordingTB) Errorf(format string, args ...any) { r.add(fmt.Sprintf(format, args...)) }
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.add(fmt.Sprintf(format, args...))
	goruntime.Goexit()
}
func (r *recordingTB) Fatal(args ...any) {
	r.add(fmt.Sprint(args...))
	goruntime.Goexit()
}

// The page checks can fail: a page without the headers, with a console
// error, a missing image, an unlabelled field and no alt text fails them all.
func TestBrowserChecksFailOnABadPage(t *testing.T) {
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!DOCTYPE html><html><head><title>bad</title></head><body><main><img src="/missing.png"><input name="q"><script>console.error("boom")</script></main></body></html>`)
	}))
	defer bad.Close()
	b := newBrowser(t, bad.URL, 1280, 900)
	b.run(t, "open the bad page", chromedp.Navigate(bad.URL+"/"))
	rec := &recordingTB{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); b.checkPage(rec, "bad page") }()
	<-done
	got := strings.Join(rec.msgs, "\n")
	for _, want := range []string{"fields without a label: [q]", "accessibility: image-alt", "accessibility: label", "Content-Security-Policy", "Referrer-Policy", "X-Content-Type-Options", "console error", "404 for " + bad.URL + "/missing.png"} {
		if !strings.Contains(got, want) {
			t.Errorf("the checks did not report %q; they said:\n%s", want, got)
		}
	}
}
