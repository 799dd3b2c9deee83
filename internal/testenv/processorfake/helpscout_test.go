package processorfake_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
)

func TestHelpScoutFake(t *testing.T) {
	f := processorfake.NewHelpScout(t)
	id := f.AddCustomer(processorfake.HelpScoutCustomer{FirstName: "A", Emails: []string{"a@example.com"},
		Conversations: []processorfake.HelpScoutConversation{{Subject: "Hi"}, {Subject: "Bye", Status: "closed"}}})
	form := func(id, secret string) *strings.Reader {
		return strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}.Encode())
	}
	formType := func(r *http.Request) { r.Header.Set("Content-Type", "application/x-www-form-urlencoded") }

	// Token: a wrong client is refused; the right one gets a bearer token.
	if st, _, body := do(t, "POST", f.URL()+"/oauth2/token", form(f.ClientID, "nope"), formType); st != 401 ||
		!strings.Contains(string(body), "invalid_client") {
		t.Fatalf("wrong client: %d %s", st, body)
	}
	st, _, body := do(t, "POST", f.URL()+"/oauth2/token", form(f.ClientID, f.ClientSecret), formType)
	var tok struct {
		TokenType   string `json:"token_type"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if st != 200 || json.Unmarshal(body, &tok) != nil || tok.TokenType != "bearer" || tok.ExpiresIn != 172800 {
		t.Fatalf("token: %d %s", st, body)
	}
	// JSON works too.
	if st, _, _ := do(t, "POST", f.URL()+"/oauth2/token",
		strings.NewReader(`{"grant_type":"client_credentials","client_id":"`+f.ClientID+`","client_secret":"`+f.ClientSecret+`"}`),
		func(r *http.Request) { r.Header.Set("Content-Type", "application/json") }); st != 200 {
		t.Fatalf("JSON token request: %d", st)
	}

	// The API needs the token.
	if st, _, _ := do(t, "GET", f.URL()+"/customers", nil, nil); st != 401 {
		t.Fatalf("no token: %d", st)
	}
	st, h, body := do(t, "GET", f.URL()+"/customers?query="+url.QueryEscape(`(email:"A@example.com")`), nil, bearer(tok.AccessToken))
	var list struct {
		Embedded struct {
			Customers []struct {
				ID       int `json:"id"`
				Embedded struct {
					Emails []struct{ Value string } `json:"emails"`
				} `json:"_embedded"`
			} `json:"customers"`
		} `json:"_embedded"`
		Page struct{ TotalPages, Number int } `json:"page"`
	}
	if st != 200 || json.Unmarshal(body, &list) != nil || len(list.Embedded.Customers) != 1 ||
		list.Embedded.Customers[0].ID != id || list.Embedded.Customers[0].Embedded.Emails[0].Value != "a@example.com" ||
		h.Get("X-RateLimit-Remaining-Minute") == "" {
		t.Fatalf("search: %d %s", st, body)
	}
	if st, _, _ := do(t, "GET", f.URL()+"/customers?query=oops", nil, bearer(tok.AccessToken)); st != 400 {
		t.Fatalf("bad query: %d", st)
	}
	st, _, body = do(t, "GET", f.URL()+"/conversations?status=all&query="+url.QueryEscape("(customerIds:"+strconv.Itoa(id)+")"), nil, bearer(tok.AccessToken))
	if st != 200 || strings.Count(string(body), `"subject"`) != 2 {
		t.Fatalf("conversations: %d %s", st, body)
	}

	// 429 tells the wait in X-RateLimit-Retry-After.
	f.RateLimitNext(1, 3*time.Second)
	st, h, _ = do(t, "GET", f.URL()+"/customers/"+strconv.Itoa(id), nil, bearer(tok.AccessToken))
	if st != 429 || h.Get("X-RateLimit-Retry-After") != "3" {
		t.Fatalf("rate limit: %d %v", st, h)
	}

	// Delete: 202 when async, the customer gone; then 404.
	f.SetDeferredDeletes(true)
	if st, _, _ := do(t, "DELETE", f.URL()+"/customers/"+strconv.Itoa(id)+"?async=true", nil, bearer(tok.AccessToken)); st != 202 {
		t.Fatalf("delete: %d", st)
	}
	if c, ok := f.Customer(id); !ok || !c.Deleting {
		t.Fatalf("deferred delete: %+v %v", c, ok)
	}
	f.CompleteDeletes()
	if st, _, _ := do(t, "GET", f.URL()+"/customers/"+strconv.Itoa(id), nil, bearer(tok.AccessToken)); st != 404 {
		t.Fatalf("deleted customer: %d", st)
	}
	if st, _, _ := do(t, "DELETE", f.URL()+"/customers/"+strconv.Itoa(id)+"?async=true", nil, bearer(tok.AccessToken)); st != 404 {
		t.Fatalf("second delete: %d", st)
	}

	// Expired tokens are refused.
	f.ExpireTokens()
	if st, _, _ := do(t, "GET", f.URL()+"/customers", nil, bearer(tok.AccessToken)); st != 401 {
		t.Fatalf("expired token: %d", st)
	}
}
