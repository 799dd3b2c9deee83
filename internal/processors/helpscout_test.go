package processors_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
)

var (
	_ processors.Eraser    = (*processors.HelpScout)(nil)
	_ processors.Exporter  = (*processors.HelpScout)(nil)
	_ processors.Confirmer = (*processors.HelpScout)(nil)
)

// newHelpScout builds the connector through the registry, as a data map
// declares it.
func newHelpScout(t *testing.T, f *processorfake.HelpScout, opts map[string]string) processors.Connector {
	t.Helper()
	reg, err := processors.NewRegistry([]processors.Config{{Name: "helpscout", Kind: "helpscout", BaseURL: f.URL(),
		CredentialEnv: "LETHE_HELPSCOUT_APP", Options: opts}},
		processors.BuildOptions{LookupEnv: envMap(map[string]string{"LETHE_HELPSCOUT_APP": f.Credential()})})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := reg.Get("helpscout")
	return c
}

func TestHelpScoutEraseIsAsynchronousAndConfirmed(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewHelpScout(t)
	f.SetDeferredDeletes(true)
	ann := f.AddCustomer(processorfake.HelpScoutCustomer{FirstName: "Ann", Emails: []string{"work@example.org", strings.ToLower(email)}})
	// A looser search match (the email inside another address) is not the subject.
	jo := f.AddCustomer(processorfake.HelpScoutCustomer{FirstName: "Jo", Emails: []string{"jo" + strings.ToLower(email)}})
	c := newHelpScout(t, f, nil)

	out, err := c.(processors.Eraser).Erase(ctx, subject("req-hs"))
	mustOutcome(t, out, err, processors.StatusPending)
	if out.HTTPStatus != http.StatusAccepted || len(out.Refs) != 1 || out.Refs[0] != (processors.Ref{Kind: "customer", ID: strconv.Itoa(ann)}) {
		t.Fatalf("outcome %+v", out)
	}
	if _, ok := f.Customer(jo); !ok {
		t.Fatal("another customer found by the search was deleted")
	}

	// What went over the wire: one token, a search by email, one async delete.
	tok := f.CallsTo(http.MethodPost, "/v2/oauth2/token")
	if len(tok) != 1 || tok[0].Form.Get("grant_type") != "client_credentials" ||
		tok[0].Form.Get("client_id") != processorfake.DefaultHelpScoutClientID || tok[0].Form.Get("client_secret") == "" {
		t.Fatalf("token calls %+v", tok)
	}
	search := f.CallsTo(http.MethodGet, "/v2/customers")
	if len(search) != 1 || search[0].Query.Get("query") != `(email:"`+email+`")` ||
		!strings.HasPrefix(search[0].Header.Get("Authorization"), "Bearer hs-token-") {
		t.Fatalf("search calls %+v", search)
	}
	del := f.CallsTo(http.MethodDelete, "/v2/customers/")
	if len(del) != 1 || del[0].Path != "/v2/customers/"+strconv.Itoa(ann) || del[0].Query.Get("async") != "true" {
		t.Fatalf("delete calls %+v", del)
	}

	// While Help Scout works, the confirmation finds the customer; after, not.
	conf := c.(processors.Confirmer)
	got, err := conf.Confirm(ctx, out)
	mustOutcome(t, got, err, processors.StatusStillPresent)
	f.CompleteDeletes()
	got, err = conf.Confirm(ctx, out)
	mustOutcome(t, got, err, processors.StatusAlreadyGone)
	if got.HTTPStatus != http.StatusNotFound || got.Refs[0].ID != strconv.Itoa(ann) {
		t.Fatalf("confirmation %+v", got)
	}

	// Erasing again is safe: nothing left.
	out, err = c.(processors.Eraser).Erase(ctx, subject("req-hs"))
	mustOutcome(t, out, err, processors.StatusAlreadyGone)
	if n := f.TokensIssued(); n != 1 {
		t.Fatalf("%d tokens fetched, want the cached one reused", n)
	}
}

func TestHelpScoutEraseByRecordedIDAndUnknownID(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewHelpScout(t)
	id := f.AddCustomer(processorfake.HelpScoutCustomer{Emails: []string{"someone-else@example.org"}})
	c := newHelpScout(t, f, nil).(processors.Eraser)
	subj := subject("req-id")
	subj.IDs = map[string]string{processors.IDHelpScoutCustomer: strconv.Itoa(id)}

	out, err := c.Erase(ctx, subj)
	mustOutcome(t, out, err, processors.StatusPending)
	if _, ok := f.Customer(id); ok {
		t.Fatal("customer not deleted")
	}
	if len(f.CallsTo(http.MethodGet, "/v2/customers")) != 0 {
		t.Fatal("searched by email although the id was known")
	}
	out, err = c.Erase(ctx, subj) // 404: already gone
	mustOutcome(t, out, err, processors.StatusAlreadyGone)
	if out.HTTPStatus != http.StatusNotFound {
		t.Fatalf("outcome %+v", out)
	}

	subj.IDs[processors.IDHelpScoutCustomer] = "../admin"
	out, err = c.Erase(ctx, subj)
	mustError(t, out, err, processors.KindNeedsOperator, 0)
}

func TestHelpScoutRefreshesAnExpiredToken(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewHelpScout(t)
	id := f.AddCustomer(processorfake.HelpScoutCustomer{Emails: []string{email}})
	c := newHelpScout(t, f, nil).(processors.Confirmer)
	earlier := processors.Outcome{Processor: "helpscout", Action: processors.ActionErase, Status: processors.StatusPending,
		Refs: []processors.Ref{{Kind: "customer", ID: strconv.Itoa(id)}}}

	out, err := c.Confirm(ctx, earlier)
	mustOutcome(t, out, err, processors.StatusStillPresent)
	f.ExpireTokens()
	out, err = c.Confirm(ctx, earlier)
	mustOutcome(t, out, err, processors.StatusStillPresent)
	if n := f.TokensIssued(); n != 2 {
		t.Fatalf("%d tokens fetched, want a second after the 401", n)
	}
	gets := f.CallsTo(http.MethodGet, "/v2/customers/")
	if len(gets) != 3 || gets[1].Status != http.StatusUnauthorized || gets[2].Status != http.StatusOK ||
		gets[1].Header.Get("Authorization") == gets[2].Header.Get("Authorization") {
		t.Fatalf("calls %+v", gets)
	}
}

func TestHelpScoutRefusedCredentialsAndRateLimit(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewHelpScout(t)
	f.AddCustomer(processorfake.HelpScoutCustomer{Emails: []string{email}})
	reg, err := processors.NewRegistry([]processors.Config{{Name: "support", Kind: "helpscout", BaseURL: f.URL(),
		CredentialEnv: "LETHE_HELPSCOUT_APP"}},
		processors.BuildOptions{LookupEnv: envMap(map[string]string{"LETHE_HELPSCOUT_APP": f.ClientID + ":wrong-secret"})})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := reg.Eraser("support")
	out, err := c.Erase(ctx, subject("r"))
	e := mustError(t, out, err, processors.KindNeedsOperator, http.StatusUnauthorized)
	if !strings.Contains(e.Error(), "the processor refused our signature or credential: check the app id and secret (id:secret) in LETHE_HELPSCOUT_APP") ||
		!strings.Contains(e.Error(), "invalid_client") || strings.Contains(e.Error(), "wrong-secret") {
		t.Fatalf("message %q", e.Error())
	}
	if len(f.CallsTo("", "/v2/customers")) != 0 {
		t.Fatal("called the API without a token")
	}

	// 429 announces the wait in X-RateLimit-Retry-After only.
	good := newHelpScout(t, f, nil).(processors.Eraser)
	if _, err := good.Erase(ctx, processors.Subject{RequestID: "warm", Email: "nobody@example.net"}); err != nil {
		t.Fatal(err)
	}
	f.RateLimitNext(1, 7*time.Second)
	out, err = good.Erase(ctx, subject("r"))
	e = mustError(t, out, err, processors.KindRetryable, http.StatusTooManyRequests)
	if e.RetryAfter != 7*time.Second {
		t.Fatalf("retry after %s, want 7s", e.RetryAfter)
	}
	last := f.Calls()[len(f.Calls())-1]
	if last.Header.Get("Authorization") == "" || last.Path != "/v2/customers" {
		t.Fatalf("rate-limited call %+v", last)
	}
}

func TestHelpScoutExportsCustomerAndConversations(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewHelpScout(t)
	f.SetPageSize(2)
	f.SetListEmails(false) // the connector reads each found customer to check the email
	var convs []processorfake.HelpScoutConversation
	for i := range 5 {
		convs = append(convs, processorfake.HelpScoutConversation{Subject: "Question " + strconv.Itoa(i), Status: "closed"})
	}
	id := f.AddCustomer(processorfake.HelpScoutCustomer{FirstName: "Ann", Emails: []string{email},
		Phones: []string{"+49 30 1234"}, Conversations: convs})
	f.AddCustomer(processorfake.HelpScoutCustomer{Emails: []string{"x" + email}})

	var col collector
	out, err := newHelpScout(t, f, nil).(processors.Exporter).Export(ctx, subject("req-x"), &col)
	mustOutcome(t, out, err, processors.StatusDone)
	if out.Records != 6 || col.kinds()["helpscout.customer"] != 1 || col.kinds()["helpscout.conversation"] != 5 {
		t.Fatalf("outcome %+v, kinds %v", out, col.kinds())
	}
	var cust struct {
		ID       int `json:"id"`
		Embedded struct {
			Phones []struct{ Value string } `json:"phones"`
		} `json:"_embedded"`
	}
	if json.Unmarshal(col.records[0].Data, &cust) != nil || cust.ID != id || len(cust.Embedded.Phones) != 1 {
		t.Fatalf("customer record %s", col.records[0].Data)
	}
	pages := f.CallsTo(http.MethodGet, "/v2/conversations")
	if len(pages) != 3 || pages[0].Query.Get("query") != "(customerIds:"+strconv.Itoa(id)+")" ||
		pages[0].Query.Get("status") != "all" || pages[2].Query.Get("page") != "3" {
		t.Fatalf("conversation calls %+v", pages)
	}
	if col.records[5].ID == "" || !strings.Contains(string(col.records[5].Data), "Question 4") {
		t.Fatalf("last conversation %+v", col.records[5])
	}

	// conversations: false exports the customer alone; nobody, nothing.
	col = collector{}
	out, err = newHelpScout(t, f, map[string]string{"conversations": "false"}).(processors.Exporter).Export(ctx, subject("req-y"), &col)
	mustOutcome(t, out, err, processors.StatusDone)
	if out.Records != 1 || len(col.records) != 1 {
		t.Fatalf("records %+v", col.records)
	}
	out, err = newHelpScout(t, f, nil).(processors.Exporter).Export(ctx,
		processors.Subject{RequestID: "r", Email: "nobody@example.net"}, &col)
	mustOutcome(t, out, err, processors.StatusNotFound)
}

func TestHelpScoutConfiguration(t *testing.T) {
	_, err := processors.NewRegistry([]processors.Config{
		{Name: "a", Kind: "helpscout", CredentialEnv: "NO_COLON"},
		{Name: "b", Kind: "helpscout", CredentialEnv: "OK", Options: map[string]string{"conversations": "maybe"}},
		{Name: "c", Kind: "helpscout"},
	}, processors.BuildOptions{LookupEnv: envMap(map[string]string{"NO_COLON": "app-id-and-secret", "OK": "id:secret"})})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`processor "a": credential_env NO_COLON must hold the app id and secret as app_id:app_secret`,
		`processor "b": option conversations "maybe" is not true or false`,
		`processor "c": kind helpscout needs credential_env`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%s", want, err)
		}
	}
	if strings.Contains(err.Error(), "app-id-and-secret") {
		t.Fatalf("error shows the credential: %s", err)
	}
	// The default base URL is Help Scout's.
	reg, err := processors.NewRegistry([]processors.Config{{Name: "hs", Kind: "helpscout", CredentialEnv: "OK"}},
		processors.BuildOptions{LookupEnv: envMap(map[string]string{"OK": "id:secret"})})
	if err != nil || processors.HelpScoutDefaultBaseURL != "https://api.helpscout.net/v2" {
		t.Fatal(err)
	}
	if _, ok := reg.Rectifier("hs"); ok {
		t.Fatal("helpscout claims rectification")
	}
}
