package processorfake

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Default Help Scout fake credentials (an app's id and secret).
const (
	DefaultHelpScoutClientID     = "hs-fake-app-id"
	DefaultHelpScoutClientSecret = "hs-fake-app-secret-0123"
)

// HelpScoutConversation is a conversation of a Help Scout customer.
type HelpScoutConversation struct {
	// ID is assigned by AddCustomer when 0.
	ID        int
	Subject   string
	Status    string // active, pending, closed...; "active" when empty
	MailboxID int
}

// HelpScoutCustomer is a customer in the Help Scout fake.
type HelpScoutCustomer struct {
	// ID is assigned by AddCustomer when 0.
	ID            int
	FirstName     string
	LastName      string
	Emails        []string
	Phones        []string
	Conversations []HelpScoutConversation
	// Deleting is true between an asynchronous DELETE and its completion
	// (SetDeferredDeletes): the customer is still listed and readable.
	Deleting bool
}

// HelpScout answers like the Help Scout Mailbox API 2.0 (api.helpscout.net
// under /v2) for an app using the OAuth 2.0 client-credentials grant:
//
//   - POST /v2/oauth2/token (form or JSON: grant_type=client_credentials,
//     client_id, client_secret) answers {"token_type":"bearer",
//     "access_token","expires_in"}; a wrong client 401 invalid_client;
//   - every other route needs "Authorization: Bearer <token>" with a token
//     it issued and has not expired (ExpireTokens), else 401;
//   - GET /v2/customers?query=(email:"…")&page=N lists, HAL style
//     (_embedded.customers with their _embedded.emails, and page), the
//     customers one of whose emails contains the text, case-insensitively
//     (as loosely as a search); GET /v2/customers/{id} reads one;
//   - DELETE /v2/customers/{id}?async=true answers 202 (without async
//     204), 404 for an unknown id; with SetDeferredDeletes the customer
//     stays until CompleteDeletes;
//   - GET /v2/conversations?query=(customerIds:N)&status=all&page=N lists
//     a customer's conversations;
//   - every answer carries X-RateLimit-Limit-Minute and
//     X-RateLimit-Remaining-Minute; a 429 announces its wait in
//     X-RateLimit-Retry-After (seconds).
//
// Errors are vnd.error bodies ({"message","logRef"}).
type HelpScout struct {
	*Server
	// ClientID and ClientSecret are the app credentials accepted.
	ClientID, ClientSecret string
	// TokenTTL is the issued tokens' life (48 h, as Help Scout's).
	TokenTTL time.Duration

	seq        int
	customers  map[int]*HelpScoutCustomer
	tokens     map[string]time.Time
	issued     int
	pageSize   int
	deferred   bool
	listEmails bool
}

// NewHelpScout starts a Help Scout fake; connectors use URL() as base URL.
func NewHelpScout(t testing.TB) *HelpScout {
	f := &HelpScout{ClientID: DefaultHelpScoutClientID, ClientSecret: DefaultHelpScoutClientSecret,
		TokenTTL: 48 * time.Hour, seq: 100, customers: map[int]*HelpScoutCustomer{}, tokens: map[string]time.Time{},
		pageSize: 50, listEmails: true}
	f.Server = newServer(t, style{
		writeError: hsError,
		retryHint: func(h http.Header, d time.Duration, _ time.Time) {
			h.Set("X-RateLimit-Remaining-Minute", "0")
			h.Set("X-RateLimit-Retry-After", formatSeconds(d))
		},
		decorate: func(h http.Header) {
			h.Set("X-RateLimit-Limit-Minute", "400")
			h.Set("X-RateLimit-Remaining-Minute", "399")
		},
	})
	f.handle("POST /v2/oauth2/token", f.token)
	f.handle("GET /v2/customers", f.authed(f.listCustomers))
	f.handle("GET /v2/customers/{id}", f.authed(f.getCustomer))
	f.handle("DELETE /v2/customers/{id}", f.authed(f.deleteCustomer))
	f.handle("GET /v2/conversations", f.authed(f.listConversations))
	return f
}

// URL is the API base URL (with /v2).
func (f *HelpScout) URL() string { return f.Origin() + "/v2" }

// Credential is the app id and secret as a connector's credential
// variable holds them ("id:secret").
func (f *HelpScout) Credential() string { return f.ClientID + ":" + f.ClientSecret }

// AddCustomer seeds a customer and returns its id.
func (f *HelpScout) AddCustomer(c HelpScoutCustomer) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.ID == 0 {
		f.seq++
		c.ID = f.seq
	}
	c.Emails, c.Phones = slices.Clone(c.Emails), slices.Clone(c.Phones)
	c.Conversations = slices.Clone(c.Conversations)
	for i := range c.Conversations {
		if c.Conversations[i].ID == 0 {
			f.seq++
			c.Conversations[i].ID = f.seq
		}
		if c.Conversations[i].Status == "" {
			c.Conversations[i].Status = "active"
		}
	}
	f.customers[c.ID] = &c
	return c.ID
}

// Customer returns a copy of the customer, if it still exists.
func (f *HelpScout) Customer(id int) (HelpScoutCustomer, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.customers[id]
	if !ok {
		return HelpScoutCustomer{}, false
	}
	return *c, true
}

// TokensIssued counts the tokens the token endpoint gave out.
func (f *HelpScout) TokensIssued() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issued
}

// ExpireTokens makes every token issued so far invalid (401), as when
// they expire or the app's secret is rotated.
func (f *HelpScout) ExpireTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.tokens)
}

// SetDeferredDeletes makes an asynchronous DELETE leave the customer in
// place (Deleting) until CompleteDeletes, as Help Scout's background job.
func (f *HelpScout) SetDeferredDeletes(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deferred = on
}

// CompleteDeletes finishes the deferred deletions.
func (f *HelpScout) CompleteDeletes() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, c := range f.customers {
		if c.Deleting {
			delete(f.customers, id)
		}
	}
}

// SetPageSize sets how many items one list page holds (default 50).
func (f *HelpScout) SetPageSize(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pageSize = max(n, 1)
}

// SetListEmails chooses whether customer lists embed each customer's
// emails (default true); without them a client must read each customer.
func (f *HelpScout) SetListEmails(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listEmails = on
}

func hsError(w http.ResponseWriter, status int, _ string, message string) {
	w.Header().Set("Content-Type", "application/vnd.error+json")
	writeJSON(w, status, map[string]any{"message": message, "logRef": fmt.Sprintf("fake-%d", status)})
}

// token is the client-credentials grant.
func (f *HelpScout) token(w http.ResponseWriter, r *http.Request) {
	var in struct {
		GrantType    string `json:"grant_type"`
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/json":
		if readJSON(r, &in) != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
			return
		}
	case "application/x-www-form-urlencoded":
		body, _ := readAll(r)
		form, err := url.ParseQuery(string(body))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
			return
		}
		in.GrantType, in.ClientID, in.ClientSecret = form.Get("grant_type"), form.Get("client_id"), form.Get("client_secret")
	default:
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"error": "invalid_request"})
		return
	}
	if in.GrantType != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	if in.ClientID != f.ClientID || in.ClientSecret != f.ClientSecret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client",
			"error_description": "Bad client credentials"})
		return
	}
	b := make([]byte, 16)
	rand.Read(b)
	tok := "hs-token-" + hex.EncodeToString(b)
	f.tokens[tok] = time.Now().Add(f.TokenTTL)
	f.issued++
	writeJSON(w, http.StatusOK, map[string]any{"token_type": "bearer", "access_token": tok,
		"expires_in": int(f.TokenTTL / time.Second)})
}

// authed checks the bearer token (with the server's lock held).
func (f *HelpScout) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		exp, known := f.tokens[tok]
		if !ok || !known || time.Now().After(exp) {
			hsError(w, http.StatusUnauthorized, "", "Unauthorized: invalid or expired token")
			return
		}
		h(w, r)
	}
}

var (
	hsEmailQuery    = regexp.MustCompile(`^\(email:"((?:[^"\\]|\\.)*)"\)$`)
	hsCustomerQuery = regexp.MustCompile(`^\(customerIds:(\d+)\)$`)
)

// page cuts items to the requested page and returns the page block.
func hsPage[T any](r *http.Request, items []T, size int) ([]T, map[string]int, bool) {
	n := 1
	if v := r.URL.Query().Get("page"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			return nil, nil, false
		}
	}
	total := max(1, (len(items)+size-1)/size)
	start, end := min((n-1)*size, len(items)), min(n*size, len(items))
	return items[start:end], map[string]int{"size": size, "totalElements": len(items), "totalPages": total, "number": n}, true
}

func (f *HelpScout) customerJSON(c *HelpScoutCustomer, emails bool) map[string]any {
	out := map[string]any{"id": c.ID, "firstName": c.FirstName, "lastName": c.LastName,
		"createdAt": "2024-01-02T03:04:05Z"}
	if emails {
		var es, ps []map[string]any
		for i, e := range c.Emails {
			es = append(es, map[string]any{"id": c.ID*10 + i, "value": e, "type": "work"})
		}
		for i, p := range c.Phones {
			ps = append(ps, map[string]any{"id": c.ID*10 + i, "value": p, "type": "work"})
		}
		out["_embedded"] = map[string]any{"emails": es, "phones": ps}
	}
	return out
}

func (f *HelpScout) listCustomers(w http.ResponseWriter, r *http.Request) {
	var ids []int
	q := r.URL.Query().Get("query")
	m := hsEmailQuery.FindStringSubmatch(q)
	if q != "" && m == nil {
		hsError(w, http.StatusBadRequest, "", "Invalid query")
		return
	}
	for id, c := range f.customers {
		if m == nil || slices.ContainsFunc(c.Emails, func(e string) bool {
			return strings.Contains(strings.ToLower(e), strings.ToLower(strings.ReplaceAll(m[1], `\"`, `"`)))
		}) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	page, info, ok := hsPage(r, ids, f.pageSize)
	if !ok {
		hsError(w, http.StatusBadRequest, "", "Invalid page")
		return
	}
	list := []map[string]any{}
	for _, id := range page {
		list = append(list, f.customerJSON(f.customers[id], f.listEmails))
	}
	writeJSON(w, http.StatusOK, map[string]any{"_embedded": map[string]any{"customers": list}, "page": info})
}

func (f *HelpScout) customer(w http.ResponseWriter, r *http.Request) *HelpScoutCustomer {
	id, err := strconv.Atoi(r.PathValue("id"))
	c, ok := f.customers[id]
	if err != nil || !ok {
		hsError(w, http.StatusNotFound, "", "Resource not found")
		return nil
	}
	return c
}

func (f *HelpScout) getCustomer(w http.ResponseWriter, r *http.Request) {
	if c := f.customer(w, r); c != nil {
		writeJSON(w, http.StatusOK, f.customerJSON(c, true))
	}
}

func (f *HelpScout) deleteCustomer(w http.ResponseWriter, r *http.Request) {
	c := f.customer(w, r)
	if c == nil {
		return
	}
	async := r.URL.Query().Get("async") == "true"
	if async && f.deferred {
		c.Deleting = true
	} else {
		delete(f.customers, c.ID)
	}
	if async {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *HelpScout) listConversations(w http.ResponseWriter, r *http.Request) {
	m := hsCustomerQuery.FindStringSubmatch(r.URL.Query().Get("query"))
	if m == nil {
		hsError(w, http.StatusBadRequest, "", "Invalid query")
		return
	}
	id, _ := strconv.Atoi(m[1])
	status := r.URL.Query().Get("status")
	var convs []map[string]any
	if c, ok := f.customers[id]; ok {
		for _, cv := range c.Conversations {
			if status != "all" && cv.Status != orDefault(status, "active") {
				continue
			}
			var email string
			if len(c.Emails) > 0 {
				email = c.Emails[0]
			}
			convs = append(convs, map[string]any{"id": cv.ID, "number": cv.ID, "subject": cv.Subject,
				"status": cv.Status, "mailboxId": cv.MailboxID,
				"primaryCustomer": map[string]any{"id": c.ID, "email": email}})
		}
	}
	page, info, ok := hsPage(r, convs, f.pageSize)
	if !ok {
		hsError(w, http.StatusBadRequest, "", "Invalid page")
		return
	}
	if page == nil {
		page = []map[string]any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"_embedded": map[string]any{"conversations": page}, "page": info})
}

// orDefault returns s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
