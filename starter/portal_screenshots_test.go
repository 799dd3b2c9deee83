package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/lethe-privacy/lethe/internal/demo"
)

// screenshotsDir is where TestPortalPagesInBothLanguagesAtBothWidths keeps
// its screenshots:
//
//	go test ./starter -run TestPortalPagesInBothLanguagesAtBothWidths -args -screenshots DIR
//
// Without it they go to a temporary directory: the test still walks every
// page in English and German, at desktop and phone width, through the
// checks of every page (headers, console, labels, axe-core).
var screenshotsDir = flag.String("screenshots", "", "write the privacy portal's screenshots to this directory")

type viewport struct {
	name          string
	width, height int
	mobile        bool
}

func TestPortalPagesInBothLanguagesAtBothWidths(t *testing.T) {
	dir := *screenshotsDir
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e := newE2E(t, 4, nil)
	people := demo.Accounts(4)
	langs := []struct{ tag, accept, home string }{
		{"en", "en-GB,en;q=0.9", "Your privacy rights"},
		{"de", "de-DE,de;q=0.9", "Ihre Datenschutzrechte"},
	}
	views := []viewport{{"desktop", 1280, 900, false}, {"phone", 390, 844, true}}
	written := 0
	i := 0
	for _, lang := range langs {
		for _, vp := range views {
			person := people[i]
			i++
			b := newBrowser(t, e.API.URL, vp.width, vp.height)
			if vp.mobile {
				b.run(t, "phone viewport", chromedp.EmulateViewport(int64(vp.width), int64(vp.height), chromedp.EmulateMobile))
			}
			setHeaders := func(h network.Headers) {
				if _, err := chromedp.Call(b.ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: h}); err != nil {
					t.Fatal(err)
				}
			}
			setHeaders(network.Headers{"Accept-Language": lang.accept})
			shot := func(page string) {
				t.Helper()
				b.checkPage(t, page+" ("+lang.tag+", "+vp.name+")")
				if got := get(t, b, "lang", chromedp.Evaluate[string](`document.documentElement.lang`)); got != lang.tag {
					t.Fatalf("%s: the page is in %q, want %q", page, got, lang.tag)
				}
				if vp.mobile {
					// Nothing wider than the phone: no sideways scrolling.
					if w := get(t, b, "width", chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > vp.width {
						t.Errorf("%s (%s): the page is %d px wide on a %d px phone", page, lang.tag, w, vp.width)
					}
				}
				png := get(t, b, "screenshot", chromedp.FullScreenshot(100))
				name := filepath.Join(dir, fmt.Sprintf("%s-%s-%s.png", page, lang.tag, vp.name))
				if err := os.WriteFile(name, png, 0o644); err != nil {
					t.Fatal(err)
				}
				written++
			}
			goTo := func(path string) { b.run(t, "open "+path, chromedp.Navigate(e.API.URL+path)) }

			goTo("/privacy/")
			if !strings.Contains(b.text(t), lang.home) {
				t.Fatalf("the %s home page does not say %q", lang.tag, lang.home)
			}
			shot("01-home")
			goTo("/privacy/ask/correction")
			shot("02-ask-correction")
			goTo("/privacy/ask/consent")
			shot("03-ask-consent")
			goTo("/privacy/ask/access")
			b.run(t, "send without an email", chromedp.Click(chromedp.CSS(`button[type=submit]`)), chromedp.WaitVisible(chromedp.ID("email-error")))
			shot("04-ask-errors")
			b.run(t, "send the form", chromedp.SendKeys(chromedp.ID("email"), person.Email+"\r"), chromedp.WaitVisible(chromedp.ID("status")))
			b.waitForElement(t, "code", 30*time.Second)
			shot("05-request-code")
			code := mailedCode(t, e, person.Email)
			wrong := "000000"
			if code == wrong {
				wrong = "111111"
			}
			submit := chromedp.CSS(`form[action="/privacy/request/verify"] button[type=submit]`)
			b.run(t, "a wrong code", chromedp.SendKeys(chromedp.ID("code"), wrong), chromedp.Click(submit), chromedp.WaitVisible(chromedp.ID("code-error")))
			shot("06-request-wrong-code")
			b.run(t, "the right code", chromedp.SendKeys(chromedp.ID("code"), code), chromedp.Click(submit), chromedp.WaitNotPresent(chromedp.ID("code-error")))
			b.waitForStatus(t, "completed", 90*time.Second)
			b.run(t, "ask for the link", chromedp.Click(chromedp.CSS(`form[action="/privacy/request/download"] button`)), chromedp.WaitVisible(chromedp.ID("download-link")))
			shot("07-request-completed")
			b.run(t, "forget the request", chromedp.Click(chromedp.CSS(`form[action="/privacy/request/forget"] button`)), chromedp.WaitVisible(chromedp.CSS(".rights")))
			goTo("/privacy/request")
			shot("08-no-request")
			setHeaders(network.Headers{"Accept-Language": lang.accept, "Sec-GPC": "1"})
			goTo("/privacy/")
			shot("09-home-gpc")
		}
	}
	if written != 36 {
		t.Fatalf("%d screenshots, want 36", written)
	}
	t.Logf("%d screenshots in %s", written, dir)
}
