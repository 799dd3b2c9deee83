package main

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/testenv"
	"github.com/lethe-privacy/lethe/internal/wiring"
)

// The privacy portal, in a real browser, on the whole product: Temporal,
// PostgreSQL, S3 and the mail fake (see browser_test.go for what every
// page must pass).

// mailedCode is the newest verification code mailed to email.
func mailedCode(t *testing.T, e *e2e, email string) string {
	t.Helper()
	var code string
	testenv.Eventually(t, 20*time.Second, "a code mailed to the person", func() bool {
		for _, m := range e.SendGrid.To(email) {
			if codeRe.MatchString(m.Text) && strings.Contains(strings.ToLower(m.Subject), "code") {
				code = codeRe.FindString(m.Text)
			}
		}
		return code != ""
	})
	return code
}

// askInBrowser goes from the portal's home to right's form, fills it and sends it.
func askInBrowser(t *testing.T, b *browserTab, base, right, email, jurisdiction string) {
	t.Helper()
	b.run(t, "open the portal", chromedp.Navigate(base+"/privacy/"))
	b.checkPage(t, "home")
	b.run(t, "choose "+right, chromedp.Click(chromedp.CSS(`a[href="/privacy/ask/`+right+`"]`)), chromedp.WaitVisible(chromedp.ID("email")))
	b.checkPage(t, right+" form")
	b.run(t, "fill the form", chromedp.SendKeys(chromedp.ID("email"), email), chromedp.SetValue(chromedp.ID("jurisdiction"), jurisdiction))
	// By keyboard: Enter in the email field sends the form.
	b.run(t, "send the form", chromedp.SendKeys(chromedp.ID("email"), "\r"), chromedp.WaitVisible(chromedp.ID("status")))
	if loc := b.location(t); !strings.HasSuffix(loc, "/privacy/request") {
		t.Fatalf("after sending the form the browser is at %s, want /privacy/request", loc)
	}
}

// verifyInBrowser types a wrong code (the page says the tries left, tied to
// the field), then the mailed one.
func verifyInBrowser(t *testing.T, b *browserTab, e *e2e, email string) {
	t.Helper()
	b.waitForElement(t, "code", 30*time.Second)
	b.checkPage(t, "code form")
	code := mailedCode(t, e, email)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	submit := `form[action="/privacy/request/verify"] button[type=submit]`
	b.run(t, "type a wrong code", chromedp.SendKeys(chromedp.ID("code"), wrong), chromedp.Click(chromedp.CSS(submit)), chromedp.WaitVisible(chromedp.ID("code-error")))
	b.checkPage(t, "wrong code")
	invalid := get(t, b, "aria-invalid", chromedp.AttributeValue(chromedp.ID("code"), "aria-invalid")).Value
	describedBy := get(t, b, "aria-describedby", chromedp.AttributeValue(chromedp.ID("code"), "aria-describedby")).Value
	summary := get(t, b, "the alert", chromedp.Evaluate[string](`document.querySelector('[role=alert]') ? document.querySelector('[role=alert]').innerText : ''`))
	if invalid != "true" || !strings.Contains(describedBy, "code-error") || !strings.Contains(summary, "4 tries left") {
		t.Fatalf("a wrong code: aria-invalid %q, aria-describedby %q, alert %q; want the error tied to the field and 4 tries left announced", invalid, describedBy, summary)
	}
	b.run(t, "type the mailed code", chromedp.SendKeys(chromedp.ID("code"), code), chromedp.Click(chromedp.CSS(submit)), chromedp.WaitNotPresent(chromedp.ID("code-error")))
}

func TestPortalAccessJourneyEndsWithTheDownloadedBundle(t *testing.T) {
	e := newE2E(t, 3, nil)
	ctx := context.Background()
	person := demo.Accounts(3)[0]
	b := newBrowser(t, e.API.URL, 1280, 900)

	askInBrowser(t, b, e.API.URL, "access", person.Email, "gdpr")
	verifyInBrowser(t, b, e, person.Email)
	b.waitForStatus(t, "completed", 90*time.Second)
	b.checkPage(t, "completed access request")
	var id string
	if err := e.Lethe.QueryRow(ctx, "SELECT id FROM lethe.requests WHERE type = 'access'").Scan(&id); err != nil {
		t.Fatal(err)
	}

	// The bundle, downloaded by the browser, is the one Lethe built.
	b.run(t, "ask for the link", chromedp.Click(chromedp.CSS(`form[action="/privacy/request/download"] button`)), chromedp.WaitVisible(chromedp.ID("download-link")))
	b.checkPage(t, "download link")
	dir := t.TempDir()
	b.allowed = func(s string) bool { return s == "net::ERR_ABORTED" } // a navigation that turns into a download ends so
	yes := true
	if _, err := chromedp.CallBrowser(b.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: &yes}); err != nil {
		t.Fatal(err)
	}
	b.run(t, "download", chromedp.Click(chromedp.ID("download-link")))
	var got []byte
	select {
	case guid := <-b.dls:
		var err error
		if got, err = os.ReadFile(filepath.Join(dir, guid)); err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no download completed; browser problems: %v", b.problems())
	}
	b.allowed = func(string) bool { return false }
	obj, err := e.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(e.Config.S3ExportBucket), Key: aws.String("exports/" + id + "/bundle.zip")})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if !bytes.Equal(got, want) || len(got) == 0 {
		t.Fatalf("the browser downloaded %d bytes, the bundle has %d", len(got), len(want))
	}
	zr, err := zip.NewReader(bytes.NewReader(got), int64(len(got)))
	if err != nil {
		t.Fatalf("the download is not a ZIP: %v", err)
	}
	var names []string
	var holdsEmail bool
	for _, f := range zr.File {
		names = append(names, f.Name)
		rc, _ := f.Open()
		body, _ := io.ReadAll(rc)
		rc.Close()
		holdsEmail = holdsEmail || bytes.Contains(body, []byte(person.Email))
	}
	if !strings.Contains(strings.Join(names, " "), "manifest.json") || !strings.Contains(strings.Join(names, " "), "data/postgres/") || !holdsEmail {
		t.Fatalf("the bundle lacks the person's data: %v", names)
	}

	// Every mail links to the request's page; opening it moves the token
	// into a cookie and out of the address, and script cannot read it.
	hasher, err := wiring.Subjects(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	token := hasher.RequestToken(id)
	var link string
	for _, m := range e.SendGrid.To(person.Email) {
		if l := regexp.MustCompile(`https?://\S+/privacy/status/\S+`).FindString(m.Text); l != "" {
			link = l
		}
	}
	if !strings.Contains(link, id) || !strings.Contains(link, token) {
		t.Fatalf("the mails carry no link to the request's page: %q", link)
	}
	fresh := newBrowser(t, e.API.URL, 1280, 900)
	mailed := e.API.URL + link[strings.Index(link, "/privacy/"):]
	fresh.run(t, "open the mailed link", chromedp.Navigate(mailed), chromedp.WaitVisible(chromedp.ID("status")))
	fresh.checkPage(t, "request page from the mail")
	if loc := fresh.location(t); strings.Contains(loc, token) || !strings.HasSuffix(loc, "/privacy/request") {
		t.Fatalf("after the mailed link the address is %s: the token must leave it", loc)
	}
	if fresh.status(t) != "completed" {
		t.Fatalf("the mailed link shows %q", fresh.status(t))
	}
	cookies := get(t, fresh, "read document.cookie", chromedp.Evaluate[string](`document.cookie`))
	if strings.Contains(cookies, "lethe_request") || strings.Contains(cookies, token) {
		t.Fatal("script can read the request's cookie: it must be HttpOnly")
	}
	for _, tab := range []*browserTab{b, fresh} {
		for i, u := range tab.urls {
			if strings.Contains(u, token) && !(tab == fresh && i == 0) {
				t.Fatalf("the token is in a requested address: %s", u)
			}
		}
	}
	if strings.Contains(e.LogOutput.String(), person.Email) || strings.Contains(e.LogOutput.String(), token) {
		t.Fatal("the logs carry the person's email or the request's token")
	}
}

func TestPortalErasureJourneyRemovesTheRows(t *testing.T) {
	e := newE2E(t, 3, nil)
	target, other := demo.Accounts(2)[0], demo.Accounts(2)[1]
	b := newBrowser(t, e.API.URL, 1280, 900)

	askInBrowser(t, b, e.API.URL, "erasure", target.Email, "default")
	verifyInBrowser(t, b, e, target.Email)
	b.waitForStatus(t, "completed", 90*time.Second)
	b.checkPage(t, "completed erasure")
	if text := b.text(t); !strings.Contains(text, "What we did") || strings.Contains(text, "Withdraw my request") {
		t.Fatalf("a completed erasure's page should say what was done and offer no cancel:\n%s", text)
	}

	m, _ := demo.DataMap()
	for _, tbl := range m.Tables {
		if tbl.Action != datamap.ActionDelete || tbl.Key != "account_id" {
			continue // held, anonymized, or reached through a parent
		}
		if n := e.count(t, fmt.Sprintf("SELECT count(*) FROM %s WHERE account_id = $1", tbl.Name), target.ID); n != 0 {
			t.Errorf("%s: %d rows of the erased person left", tbl.Name, n)
		}
		if n := e.count(t, fmt.Sprintf("SELECT count(*) FROM %s WHERE account_id = $1", tbl.Name), other.ID); n == 0 {
			t.Errorf("%s: another person's rows were erased too", tbl.Name)
		}
	}
	if n := e.count(t, "SELECT count(*) FROM demo.accounts WHERE id = $1 AND email = $2", target.ID, target.Email); n != 0 {
		t.Error("the erased person's account still holds their email")
	}
}

// GPC, and a correction of a data map field on the same stack.
func TestPortalHonoursGlobalPrivacyControl(t *testing.T) {
	e := newE2E(t, 3, nil)
	person := demo.Accounts(3)[1]
	b := newBrowser(t, e.API.URL, 1280, 900)
	if _, err := chromedp.Call(b.ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Sec-GPC": "1"}}); err != nil {
		t.Fatal(err)
	}

	// Told on arrival; then, once they give their email for any request,
	// their signal is recorded as the opt-out of sale and sharing.
	askInBrowser(t, b, e.API.URL, "access", person.Email, "ccpa")
	b.run(t, "back home", chromedp.Navigate(e.API.URL+"/privacy/"))
	b.checkPage(t, "home with GPC")
	if text := b.text(t); !strings.Contains(text, "Your browser sends Global Privacy Control") || !strings.Contains(text, "We honour it") {
		t.Fatalf("the portal does not acknowledge the GPC signal:\n%s", text)
	}
	testenv.Eventually(t, 60*time.Second, "the GPC opt-out recorded in the application", func() bool {
		return e.count(t, "SELECT count(*) FROM demo.marketing_consents WHERE account_id = $1 AND purpose = 'sale_sharing' AND NOT granted AND source = 'gpc'", person.ID) == 1
	})
	if n := e.count(t, "SELECT count(*) FROM lethe.requests WHERE type = 'consent'"); n != 1 {
		t.Fatalf("%d consent requests, want the one GPC opt-out", n)
	}

	// A correction of one of the data map's fields, asked for in the portal.
	other := demo.Accounts(3)[2]
	c := newBrowser(t, e.API.URL, 1280, 900)
	c.run(t, "open the correction form", chromedp.Navigate(e.API.URL+"/privacy/ask/correction"))
	c.checkPage(t, "correction form")
	c.run(t, "fill the correction", chromedp.SendKeys(chromedp.ID("email"), other.Email), chromedp.SetValue(chromedp.ID("field"), "display_name"),
		chromedp.SendKeys(chromedp.ID("value"), "Ada Portal"), chromedp.Click(chromedp.CSS(`button[type=submit]`)), chromedp.WaitVisible(chromedp.ID("status")))
	verifyInBrowser(t, c, e, other.Email)
	c.waitForStatus(t, "completed", 60*time.Second)
	c.checkPage(t, "completed correction")
	var name string
	if err := e.App.QueryRow(context.Background(), "SELECT display_name FROM demo.profiles WHERE account_id = $1", other.ID).Scan(&name); err != nil || name != "Ada Portal" {
		t.Fatalf("display_name after the correction: %q (%v)", name, err)
	}
}

func TestPortalAnswersAlikeForUnknownEmailsAndLetsThePersonWithdraw(t *testing.T) {
	e := newE2E(t, 2, nil)
	known := demo.Accounts(1)[0]
	unknown := "nobody.here@example.org"
	pages := map[string]string{}
	for _, email := range []string{known.Email, unknown} {
		b := newBrowser(t, e.API.URL, 1280, 900)
		askInBrowser(t, b, e.API.URL, "erasure", email, "gdpr")
		b.waitForElement(t, "code", 30*time.Second)
		b.checkPage(t, "code form")
		pages[email] = b.text(t)

		// A new code only after the resend interval.
		b.run(t, "ask for a new code at once", chromedp.Click(chromedp.CSS(`form[action="/privacy/request/resend"] button`)), chromedp.WaitVisible(chromedp.CSS(".error-summary")))
		b.checkPage(t, "resend too soon")
		if text := b.text(t); !strings.Contains(text, "You can ask for a new one in") {
			t.Fatalf("a resend within the interval should say when a new code can be had:\n%s", text)
		}

		if email == known.Email {
			// The privacy team extends the deadline: the page says so, and why.
			var reqID string
			if err := e.Lethe.QueryRow(context.Background(), "SELECT id FROM lethe.requests WHERE type = 'erasure'").Scan(&reqID); err != nil {
				t.Fatal(err)
			}
			if code, body := e.call(t, "POST", "/v1/requests/"+reqID+"/extend", e.Operator, `{"reason":"Our archive needs a second pass","by":"1mo"}`); code != 200 {
				t.Fatalf("extend: %d %v", code, body)
			}
			b.run(t, "reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(".extension")))
			b.checkPage(t, "extended")
			if text := b.text(t); !strings.Contains(text, "We need more time") || !strings.Contains(text, "Our archive needs a second pass") {
				t.Fatalf("the extension and its reason are not on the page:\n%s", text)
			}
		}

		// The person withdraws before verifying.
		b.run(t, "withdraw", chromedp.Click(chromedp.CSS(`form[action="/privacy/request/cancel"] button`)), chromedp.WaitVisible(chromedp.ID("status")))
		b.waitForStatus(t, "cancelled", 30*time.Second)
		b.checkPage(t, "withdrawn")
		if text := b.text(t); strings.Contains(text, "Withdraw my request") || !strings.Contains(text, "You withdrew this request") {
			t.Fatalf("a withdrawn request's page should give the reason and offer no withdrawal:\n%s", text)
		}
	}
	if pages[known.Email] != pages[unknown] {
		t.Fatalf("the code page differs for a customer's email and an unknown one:\n%s\n---\n%s", pages[known.Email], pages[unknown])
	}
	testenv.Eventually(t, 20*time.Second, "the cancellation mailed", func() bool {
		for _, m := range e.SendGrid.To(known.Email) {
			if strings.Contains(m.Text, "You withdrew this request") {
				return true
			}
		}
		return false
	})
	var actor string
	if err := e.Lethe.QueryRow(context.Background(), "SELECT actor FROM lethe.audit_log WHERE action = 'request.cancelled' LIMIT 1").Scan(&actor); err != nil || actor != "subject" {
		t.Fatalf("the withdrawal's audit entry: actor %q (%v), want subject", actor, err)
	}
}
