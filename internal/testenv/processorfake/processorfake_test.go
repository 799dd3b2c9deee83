package processorfake_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
)

// do sends one request and returns status, headers and body.
func do(t *testing.T, method, u string, body io.Reader, set func(*http.Request)) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if set != nil {
		set(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, data
}

func bearer(key string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) }
}

func TestStripeFake(t *testing.T) {
	f := processorfake.NewStripe(t)
	id := f.AddCustomer(processorfake.StripeCustomer{Email: "a@example.com", Name: "A"})
	for range 3 {
		f.AddCharge(id, 100, "eur")
	}

	if st, _, _ := do(t, "GET", f.URL()+"/v1/customers", nil, bearer("sk_wrong")); st != http.StatusUnauthorized {
		t.Fatalf("wrong key: %d", st)
	}
	// Basic auth with the key as user works too.
	st, _, body := do(t, "GET", f.URL()+"/v1/customers?email=a@example.com", nil,
		func(r *http.Request) { r.SetBasicAuth(f.APIKey, "") })
	if st != http.StatusOK || !strings.Contains(string(body), id) {
		t.Fatalf("list: %d %s", st, body)
	}
	// The email filter is exact.
	_, _, body = do(t, "GET", f.URL()+"/v1/customers?email=A@example.com", nil, bearer(f.APIKey))
	if strings.Contains(string(body), id) {
		t.Fatal("case-insensitive match")
	}

	// Paging.
	_, _, body = do(t, "GET", f.URL()+"/v1/charges?customer="+id+"&limit=2", nil, bearer(f.APIKey))
	var page struct {
		HasMore bool `json:"has_more"`
		Data    []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	json.Unmarshal(body, &page)
	if !page.HasMore || len(page.Data) != 2 {
		t.Fatalf("page 1 %s", body)
	}
	_, _, body = do(t, "GET", f.URL()+"/v1/charges?customer="+id+"&limit=2&starting_after="+page.Data[1].ID, nil, bearer(f.APIKey))
	json.Unmarshal(body, &page)
	if page.HasMore || len(page.Data) != 1 {
		t.Fatalf("page 2 %s", body)
	}

	// Idempotent update: replay, then a conflicting reuse.
	form := func(v string) io.Reader { return strings.NewReader(url.Values{"name": {v}}.Encode()) }
	post := func(key string) func(*http.Request) {
		return func(r *http.Request) {
			bearer(f.APIKey)(r)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("Idempotency-Key", key)
		}
	}
	st, _, _ = do(t, "POST", f.URL()+"/v1/customers/"+id, form("B"), post("k1"))
	st2, h2, _ := do(t, "POST", f.URL()+"/v1/customers/"+id, form("B"), post("k1"))
	if st != 200 || st2 != 200 || h2.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %d %v", st, st2, h2)
	}
	st, _, body = do(t, "POST", f.URL()+"/v1/customers/"+id, form("C"), post("k1"))
	if st != http.StatusBadRequest || !strings.Contains(string(body), "idempotency_error") {
		t.Fatalf("conflicting reuse: %d %s", st, body)
	}
	st, _, body = do(t, "POST", f.URL()+"/v1/customers/"+id, strings.NewReader("shoe=1"), post("k2"))
	if st != http.StatusBadRequest || !strings.Contains(string(body), "parameter_unknown") {
		t.Fatalf("unknown parameter: %d %s", st, body)
	}
	if c, _ := f.Customer(id); c.Name != "B" {
		t.Fatalf("name %q", c.Name)
	}

	// Delete, then resource_missing; GET shows deleted:true.
	st, _, body = do(t, "DELETE", f.URL()+"/v1/customers/"+id, nil, bearer(f.APIKey))
	if st != 200 || !strings.Contains(string(body), `"deleted":true`) {
		t.Fatalf("delete: %d %s", st, body)
	}
	st, h, body := do(t, "DELETE", f.URL()+"/v1/customers/"+id, nil, bearer(f.APIKey))
	if st != 404 || !strings.Contains(string(body), "resource_missing") || h.Get("Request-Id") == "" {
		t.Fatalf("second delete: %d %s", st, body)
	}
	_, _, body = do(t, "GET", f.URL()+"/v1/customers/"+id, nil, bearer(f.APIKey))
	if !strings.Contains(string(body), `"deleted":true`) {
		t.Fatalf("get deleted: %s", body)
	}

	calls := f.CallsTo("DELETE", "/v1/customers/")
	if len(calls) != 2 || calls[0].Status != 200 || calls[1].Status != 404 {
		t.Fatalf("recorded %+v", calls)
	}
	if got := f.CallsTo("POST", "/v1/customers/")[0].Form.Get("name"); got != "B" {
		t.Fatalf("recorded form %q", got)
	}
}

func TestFaultInjection(t *testing.T) {
	f := processorfake.NewStripe(t)
	u := f.URL() + "/v1/customers"

	f.FailNext(2, http.StatusServiceUnavailable)
	for range 2 {
		if st, _, body := do(t, "GET", u, nil, bearer(f.APIKey)); st != 503 || !strings.Contains(string(body), "api_error") {
			t.Fatalf("%d %s", st, body)
		}
	}
	if st, _, _ := do(t, "GET", u, nil, bearer(f.APIKey)); st != 200 {
		t.Fatalf("after faults: %d", st)
	}

	f.RateLimitNext(1, 1500*time.Millisecond)
	if st, h, _ := do(t, "GET", u, nil, bearer(f.APIKey)); st != 429 || h.Get("Retry-After") != "2" {
		t.Fatalf("429: %d %v", st, h)
	}

	f.Inject(processorfake.Fault{Status: 400, Method: "DELETE"}) // every DELETE, permanently
	for range 2 {
		if st, _, _ := do(t, "DELETE", u+"/cus_x", nil, bearer(f.APIKey)); st != 400 {
			t.Fatalf("permanent 400: %d", st)
		}
	}
	if st, _, _ := do(t, "GET", u, nil, bearer(f.APIKey)); st != 200 {
		t.Fatal("GET hit by a DELETE fault")
	}
	f.ClearFaults()
	if st, _, _ := do(t, "DELETE", u+"/cus_x", nil, bearer(f.APIKey)); st != 404 {
		t.Fatalf("after ClearFaults: %d", st)
	}

	f.DropNext(1)
	req, _ := http.NewRequest("GET", u, nil)
	bearer(f.APIKey)(req)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Fatal("dropped call succeeded")
		}
	}

	f.SetLatency(30 * time.Millisecond)
	start := time.Now()
	do(t, "GET", u, nil, bearer(f.APIKey))
	if time.Since(start) < 30*time.Millisecond {
		t.Fatal("no latency")
	}
	f.SetLatency(0)

	injected := 0
	for _, c := range f.Calls() {
		if c.Injected {
			injected++
		}
	}
	if injected != 6 {
		t.Fatalf("%d injected calls recorded, want 6", injected)
	}
	f.ResetCalls()
	if len(f.Calls()) != 0 {
		t.Fatal("calls not reset")
	}
}

func TestMailchimpFake(t *testing.T) {
	f := processorfake.NewMailchimp(t)
	h := f.AddMember("L1", processorfake.MailchimpMember{Email: "Urist.McVankab@FreddiesJokes.com"})
	if h != "62eeb292278cc15f5817cb78f7790b08" {
		t.Fatalf("hash %s", h)
	}
	auth := func(r *http.Request) { r.SetBasicAuth("anystring", f.APIKey) }
	member := f.URL() + "/lists/L1/members/" + h

	if st, hd, body := do(t, "GET", member, nil, func(r *http.Request) { r.SetBasicAuth("x", "bad") }); st != 401 ||
		!strings.HasPrefix(hd.Get("Content-Type"), "application/problem+json") || !strings.Contains(string(body), "API Key Invalid") {
		t.Fatalf("bad key: %d %s", st, body)
	}
	if st, _, body := do(t, "GET", member, nil, auth); st != 200 || !strings.Contains(string(body), `"status":"subscribed"`) {
		t.Fatalf("get: %d %s", st, body)
	}
	if st, _, _ := do(t, "PATCH", member, strings.NewReader(`{"status":"bogus"}`), auth); st != 400 {
		t.Fatalf("bad status accepted: %d", st)
	}
	if st, _, _ := do(t, "POST", member+"/actions/delete-permanent", nil, auth); st != 204 {
		t.Fatalf("delete-permanent: %d", st)
	}
	if st, _, _ := do(t, "POST", member+"/actions/delete-permanent", nil, auth); st != 404 {
		t.Fatalf("repeat: %d", st)
	}
	if st, _, _ := do(t, "GET", member, nil, auth); st != 404 {
		t.Fatalf("get after erase: %d", st)
	}
	st, _, body := do(t, "PUT", member, strings.NewReader(`{"email_address":"urist.mcvankab@freddiesjokes.com","status_if_new":"subscribed"}`), auth)
	if st != 400 || !strings.Contains(string(body), "Forgotten Email Not Subscribed") {
		t.Fatalf("re-add: %d %s", st, body)
	}
	if st, _, _ := do(t, "GET", f.URL()+"/lists/nope", nil, auth); st != 404 {
		t.Fatalf("unknown list: %d", st)
	}
}

func TestSendGridFake(t *testing.T) {
	f := processorfake.NewSendGrid(t)
	id := f.AddContact(processorfake.SendGridContact{Email: "A@Example.com", FirstName: "A"})
	search := func(emails string) (int, http.Header, []byte) {
		return do(t, "POST", f.URL()+"/v3/marketing/contacts/search/emails",
			strings.NewReader(`{"emails":[`+emails+`]}`), bearer(f.APIKey))
	}
	st, h, body := search(`"a@example.com","b@example.com"`)
	if st != 200 || !strings.Contains(string(body), id) || !strings.Contains(string(body), "contact not found") ||
		h.Get("X-RateLimit-Reset") == "" {
		t.Fatalf("search: %d %s %v", st, body, h)
	}
	if st, _, _ := search(`"nobody@example.com"`); st != 404 {
		t.Fatalf("no match: %d", st)
	}
	st, _, body = do(t, "DELETE", f.URL()+"/v3/marketing/contacts?ids="+id, nil, bearer(f.APIKey))
	if st != 202 || !strings.Contains(string(body), "job_id") {
		t.Fatalf("delete: %d %s", st, body)
	}
	if _, ok := f.Contact(id); ok {
		t.Fatal("not deleted")
	}

	f.RateLimitNext(1, 2*time.Second)
	st, h, body = search(`"a@example.com"`)
	reset, _ := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	if st != 429 || h.Get("Retry-After") != "" || reset < time.Now().Add(time.Second).Unix() ||
		!strings.Contains(string(body), "too many requests") {
		t.Fatalf("429: %d %v %s", st, h, body)
	}

	f.AddGroup(7)
	st, _, _ = do(t, "POST", f.URL()+"/v3/asm/groups/7/suppressions", strings.NewReader(`{"recipient_emails":["x@example.com"]}`), bearer(f.APIKey))
	if st != 201 || !f.Suppressed(7, "x@example.com") {
		t.Fatalf("suppress: %d", st)
	}
	// A missing group sends the address to global suppressions.
	do(t, "POST", f.URL()+"/v3/asm/groups/99/suppressions", strings.NewReader(`{"recipient_emails":["y@example.com"]}`), bearer(f.APIKey))
	if !f.GloballySuppressed("y@example.com") {
		t.Fatal("missing group did not fall back to global")
	}
	if st, _, _ := do(t, "DELETE", f.URL()+"/v3/asm/groups/7/suppressions/x@example.com", nil, bearer(f.APIKey)); st != 204 || f.Suppressed(7, "x@example.com") {
		t.Fatalf("unsuppress: %d", st)
	}
}

func signWebhook(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

func TestWebhookFakeChecksSignature(t *testing.T) {
	f := processorfake.NewWebhook(t)
	f.AddSubject(processorfake.WebhookSubject{UserID: "u1"})
	body := []byte(`{"action":"erase","request_id":"r1","subject":{"user_id":"u1"}}`)
	send := func(ts, sig string) int {
		st, _, _ := do(t, "POST", f.URL(), bytes.NewReader(body), func(r *http.Request) {
			r.Header.Set("X-Lethe-Timestamp", ts)
			r.Header.Set("X-Lethe-Signature", sig)
		})
		return st
	}
	now := strconv.FormatInt(time.Now().Unix(), 10)
	old := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	if st := send(now, signWebhook([]byte("wrong-secret"), now, body)); st != 401 {
		t.Fatalf("wrong secret: %d", st)
	}
	if st := send(old, signWebhook(f.Secret, old, body)); st != 401 {
		t.Fatalf("stale timestamp: %d", st)
	}
	if st := send(now, signWebhook(f.Secret, now, body)); st != 200 {
		t.Fatalf("good signature: %d", st)
	}
	if st := send(now, signWebhook(f.Secret, now, body)); st != 404 {
		t.Fatalf("erased subject: %d", st)
	}
	if d := f.Deliveries(); len(d) != 2 || d[0].UserID != "u1" || d[0].Action != "erase" {
		t.Fatalf("deliveries %+v", d)
	}
}

func verifySig(t *testing.T, cert *x509.Certificate, sig string, body []byte) bool {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	switch pub := cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(pub, sum[:], raw)
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], raw) == nil
	}
	t.Fatalf("key type %T", cert.PublicKey)
	return false
}

func TestOpenDSRFake(t *testing.T) {
	ctx := context.Background()
	var got [][]byte
	var gotSig []string
	ctl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, b)
		gotSig = append(gotSig, r.Header.Get("X-OpenDSR-Signature"))
		w.WriteHeader(http.StatusAccepted)
	}))
	defer ctl.Close()

	f := processorfake.NewOpenDSR(t, processorfake.OpenDSROptions{})
	auth := func(r *http.Request) { r.SetBasicAuth(f.Username(), f.Password()) }

	// Discovery and the certificate are public; the chain verifies.
	st, _, body := do(t, "GET", f.DiscoveryURL(), nil, nil)
	if st != 200 || !strings.Contains(string(body), f.Origin()+"/cert.pem") {
		t.Fatalf("discovery: %d %s", st, body)
	}
	_, _, pemData := do(t, "GET", f.Origin()+"/cert.pem", nil, nil)
	block, _ := pem.Decode(pemData)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: f.Domain(), Roots: f.Roots()}); err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != f.Domain() {
		t.Fatalf("subject %v", cert.Subject)
	}

	id := "3d8a1f1e-2b4c-4d5e-8f60-718293a4b5c6"
	reqBody := `{"regulation":"gdpr","subject_request_id":"` + id + `","subject_request_type":"erasure",` +
		`"submitted_time":"2026-05-01T10:00:00Z","subject_identities":[{"identity_type":"email","identity_value":"a@example.com","identity_format":"raw"}],` +
		`"api_version":"2.0","status_callback_urls":["` + ctl.URL + `/cb"]}`
	if st, _, _ := do(t, "POST", f.URL()+"/requests", strings.NewReader(reqBody), nil); st != 401 {
		t.Fatalf("no auth: %d", st)
	}
	st, h, body := do(t, "POST", f.URL()+"/requests", strings.NewReader(reqBody), auth)
	if st != 201 || h.Get("X-OpenDSR-Processor-Domain") != f.Domain() || !verifySig(t, cert, h.Get("X-OpenDSR-Signature"), body) {
		t.Fatalf("create: %d %v %s", st, h, body)
	}
	if st, _, body := do(t, "POST", f.URL()+"/requests", strings.NewReader(reqBody), auth); st != 400 || !strings.Contains(string(body), "already exists") {
		t.Fatalf("duplicate: %d %s", st, body)
	}
	bad := strings.Replace(reqBody, `"regulation":"gdpr",`, "", 1)
	bad = strings.Replace(bad, id, "3d8a1f1e-2b4c-4d5e-8f60-718293a4b5c7", 1)
	if st, _, _ := do(t, "POST", f.URL()+"/requests", strings.NewReader(bad), auth); st != 400 {
		t.Fatalf("v2 without regulation: %d", st)
	}
	if st, h, _ := do(t, "POST", f.URL()+"/opengdpr_requests", strings.NewReader(bad), auth); st != 201 || h.Get("X-OpenGDPR-Signature") == "" {
		t.Fatalf("legacy without regulation: %d %v", st, h)
	}

	st, h, body = do(t, "GET", f.URL()+"/requests/"+id, nil, auth)
	if st != 200 || !strings.Contains(string(body), `"request_status":"pending"`) || !verifySig(t, cert, h.Get("X-OpenDSR-Signature"), body) {
		t.Fatalf("status: %d %s", st, body)
	}
	if st, _, _ := do(t, "GET", f.URL()+"/requests/00000000-0000-4000-8000-000000000000", nil, auth); st != 404 {
		t.Fatalf("unknown: %d", st)
	}

	if err := f.Complete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !strings.Contains(string(got[1]), `"request_status":"completed"`) ||
		!strings.Contains(string(got[1]), `"status_callback_url":"`+ctl.URL+`/cb"`) || !verifySig(t, cert, gotSig[1], got[1]) {
		t.Fatalf("callbacks %q", got)
	}
	if cb := f.Callbacks(); len(cb) != 2 || cb[1].HTTPStatus != 202 || cb[1].Err != nil {
		t.Fatalf("deliveries %+v", cb)
	}
	if _, err := f.Advance(ctx, id); err == nil {
		t.Fatal("advanced past completed")
	}
	if st, _, _ := do(t, "DELETE", f.URL()+"/requests/"+id, nil, auth); st != 400 {
		t.Fatalf("cancel completed: %d", st)
	}
}
