package processors

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HelpScoutDefaultBaseURL is Help Scout's Mailbox API 2.0.
const HelpScoutDefaultBaseURL = "https://api.helpscout.net/v2"

// HelpScoutConfig configures a Help Scout connector.
type HelpScoutConfig struct {
	// Name defaults to "helpscout".
	Name string
	// BaseURL defaults to HelpScoutDefaultBaseURL; the token endpoint is
	// BaseURL + "/oauth2/token".
	BaseURL string
	// ClientID and ClientSecret are the app id and secret of a Help Scout
	// app (OAuth 2.0 client credentials), which acts as the user who made it.
	ClientID, ClientSecret string
	// SkipConversations leaves the customer's conversation list out of an
	// export (the customer record alone).
	SkipConversations bool
	// HTTPClient defaults to a client with a 60 s timeout.
	HTTPClient *http.Client
	// Now defaults to time.Now (token expiry, Retry-After dates).
	Now func() time.Time
}

// HelpScout erases and exports Help Scout customers through the Mailbox API
// 2.0, and re-checks erasures.
//
// Every call carries a bearer token from the client-credentials grant
// (POST /oauth2/token), cached until shortly before it expires and fetched
// again once when an API call answers 401 (an expired or revoked token).
// A customer is the one named by Subject.IDs[IDHelpScoutCustomer], or
// else every customer GET /customers?query=(email:"…") finds whose emails
// include Subject.Email (compared case-insensitively, so a fuzzy search
// never deletes someone else). Erasure is DELETE /customers/{id}?async=true:
// 202 means Help Scout deletes the customer, their conversations and
// survey answers in the background (StatusPending; Confirm follows it),
// 404 means already gone. Export writes the customer (GET /customers/{id})
// and the list of their conversations (GET /conversations?query=
// (customerIds:{id})&status=all), page by page. 429 is retried after
// X-RateLimit-Retry-After (or Retry-After).
type HelpScout struct {
	name          string
	id, secret    string
	conversations bool
	now           func() time.Time
	c             *httpClient

	mu      sync.Mutex
	token   string
	expires time.Time
}

// NewHelpScout checks cfg and returns a Help Scout connector.
func NewHelpScout(cfg HelpScoutConfig) (*HelpScout, error) {
	if cfg.Name == "" {
		cfg.Name = "helpscout"
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = HelpScoutDefaultBaseURL
	}
	if err := validBaseURL(cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("helpscout %q: %w", cfg.Name, err)
	}
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, fmt.Errorf("helpscout %q: app id and app secret are both needed", cfg.Name)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := newHTTPClient(cfg.Name, cfg.BaseURL, cfg.HTTPClient)
	c.now = cfg.Now
	c.code = helpScoutErrorCode
	c.credential = "app id and secret (id:secret)"
	return &HelpScout{name: cfg.Name, id: cfg.ClientID, secret: cfg.ClientSecret,
		conversations: !cfg.SkipConversations, now: cfg.Now, c: c}, nil
}

// Name implements Connector.
func (h *HelpScout) Name() string { return h.name }

// helpScoutErrorCode reads an OAuth error ({"error":"invalid_client"}) or
// Help Scout's vnd.error body ({"message","logRef","_embedded":{"errors":
// [{"path"}]}}): the message and paths, never the values.
func helpScoutErrorCode(body []byte) string {
	var e struct {
		Error    any    `json:"error"`
		Message  string `json:"message"`
		LogRef   string `json:"logRef"`
		Embedded struct {
			Errors []struct {
				Path string `json:"path"`
			} `json:"errors"`
		} `json:"_embedded"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	var parts []string
	if s, ok := e.Error.(string); ok && s != "" {
		parts = append(parts, s)
	}
	if e.Message != "" {
		parts = append(parts, e.Message)
	}
	for _, x := range e.Embedded.Errors {
		if x.Path != "" {
			parts = append(parts, "path="+x.Path)
		}
	}
	if e.LogRef != "" {
		parts = append(parts, "logRef="+e.LogRef)
	}
	return strings.Join(parts, " ")
}

// tokenMargin is how long before its expiry a token is replaced.
const tokenMargin = time.Minute

// bearer returns a valid access token, fetching one when none is cached,
// it is about to expire, or stale (the token an API call was refused with).
func (h *HelpScout) bearer(ctx context.Context, action Action, stale string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.token != "" && h.token != stale && h.now().Before(h.expires.Add(-tokenMargin)) {
		return h.token, nil
	}
	h.token = ""
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {h.id}, "client_secret": {h.secret}}
	r, err := h.c.do(ctx, action, call{method: http.MethodPost, path: "/oauth2/token",
		contentType: "application/x-www-form-urlencoded", body: []byte(form.Encode())})
	if err != nil {
		return "", err
	}
	if r.Status != http.StatusOK {
		e := h.c.fail(action, r)
		if r.Status == http.StatusBadRequest {
			// OAuth answers a bad client id or secret with 400 invalid_client too.
			e.Check = h.c.authCheck()
			e.Reason = "the token endpoint refused the app credentials"
		}
		return "", e
	}
	var tok struct {
		AccessToken string  `json:"access_token"`
		ExpiresIn   float64 `json:"expires_in"`
	}
	if json.Unmarshal(r.Body, &tok) != nil || tok.AccessToken == "" {
		e := h.c.badBody(action, r)
		e.Reason = "token response without access_token"
		return "", e
	}
	ttl := time.Duration(tok.ExpiresIn) * time.Second
	if ttl <= 0 {
		ttl = 2 * tokenMargin // unknown lifetime: use it briefly, then fetch another
	}
	h.token, h.expires = tok.AccessToken, h.now().Add(ttl)
	return h.token, nil
}

// api sends one API call with a bearer token; a 401 fetches a new token
// and sends the call once more.
func (h *HelpScout) api(ctx context.Context, action Action, c call) (*response, error) {
	stale := ""
	for attempt := 0; ; attempt++ {
		tok, err := h.bearer(ctx, action, stale)
		if err != nil {
			return nil, err
		}
		c.header = http.Header{"Authorization": {"Bearer " + tok}}
		r, err := h.c.do(ctx, action, c)
		if err != nil || r.Status != http.StatusUnauthorized || attempt > 0 {
			return r, err
		}
		stale = tok
	}
}

// helpScoutPage is the paging block of a list answer.
type helpScoutPage struct {
	Number     int `json:"number"`
	TotalPages int `json:"totalPages"`
}

// helpScoutCustomer is what a customer list entry says about emails.
type helpScoutCustomer struct {
	ID       json.Number `json:"id"`
	Embedded *struct {
		Emails []struct {
			Value string `json:"value"`
		} `json:"emails"`
	} `json:"_embedded"`
}

// maxHelpScoutPages bounds a paged list (50 per page).
const maxHelpScoutPages = 100

func helpScoutCustomerPath(id string) string { return "/customers/" + url.PathEscape(id) }

// searchValue quotes an email for Help Scout's query syntax.
func searchValue(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// customers returns the ids of the subject's customers and the status of
// the last call that decided it.
func (h *HelpScout) customers(ctx context.Context, action Action, subj Subject) ([]string, int, error) {
	if id := strings.TrimSpace(subj.ID(IDHelpScoutCustomer)); id != "" {
		if _, err := strconv.ParseUint(id, 10, 64); err != nil {
			return nil, 0, h.c.local(action, "%s is not a Help Scout customer id", IDHelpScoutCustomer)
		}
		return []string{id}, 0, nil
	}
	email := strings.TrimSpace(subj.Email)
	if email == "" {
		return nil, 0, h.c.local(action, "subject has neither an email nor a %s", IDHelpScoutCustomer)
	}
	var ids []string
	status := 0
	for page := 1; page <= maxHelpScoutPages; page++ {
		r, err := h.api(ctx, action, call{method: http.MethodGet, path: "/customers",
			query: url.Values{"query": {"(email:" + searchValue(email) + ")"}, "page": {strconv.Itoa(page)}}})
		if err != nil {
			return nil, 0, err
		}
		status = r.Status
		if r.Status != http.StatusOK {
			return nil, 0, h.c.fail(action, r)
		}
		var list struct {
			Embedded struct {
				Customers []helpScoutCustomer `json:"customers"`
			} `json:"_embedded"`
			Page helpScoutPage `json:"page"`
		}
		if json.Unmarshal(r.Body, &list) != nil {
			return nil, 0, h.c.badBody(action, r)
		}
		for _, cust := range list.Embedded.Customers {
			id := cust.ID.String()
			if id == "" {
				return nil, 0, h.c.badBody(action, r)
			}
			match, err := h.hasEmail(ctx, action, cust, email)
			if err != nil {
				return nil, 0, err
			}
			if match && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		if page >= list.Page.TotalPages {
			break
		}
	}
	return ids, status, nil
}

// hasEmail tells whether a found customer has the email (a search may
// match more loosely); a list entry without its emails is read whole.
func (h *HelpScout) hasEmail(ctx context.Context, action Action, cust helpScoutCustomer, email string) (bool, error) {
	if cust.Embedded == nil || cust.Embedded.Emails == nil {
		r, err := h.api(ctx, action, call{method: http.MethodGet, path: helpScoutCustomerPath(cust.ID.String())})
		if err != nil {
			return false, err
		}
		switch r.Status {
		case http.StatusOK:
		case http.StatusNotFound:
			return false, nil
		default:
			return false, h.c.fail(action, r)
		}
		if json.Unmarshal(r.Body, &cust) != nil || cust.Embedded == nil {
			return false, h.c.badBody(action, r)
		}
	}
	for _, e := range cust.Embedded.Emails {
		if strings.EqualFold(strings.TrimSpace(e.Value), email) {
			return true, nil
		}
	}
	return false, nil
}

// Erase implements Eraser: DELETE /customers/{id}?async=true for each
// customer; 202 is StatusPending, 200/204 StatusDone, 404 already gone.
func (h *HelpScout) Erase(ctx context.Context, subj Subject) (Outcome, error) {
	ids, status, err := h.customers(ctx, ActionErase, subj)
	if err != nil {
		return Outcome{}, err
	}
	out := Outcome{Processor: h.name, Action: ActionErase, Status: StatusAlreadyGone, HTTPStatus: status}
	for _, id := range ids {
		r, err := h.api(ctx, ActionErase, call{method: http.MethodDelete, path: helpScoutCustomerPath(id),
			query: url.Values{"async": {"true"}}})
		if err != nil {
			return Outcome{}, err
		}
		out.HTTPStatus = r.Status
		switch r.Status {
		case http.StatusAccepted:
			out.Status = StatusPending
			out.Note = "Help Scout deletes the customer and their conversations in the background"
		case http.StatusOK, http.StatusNoContent:
			if out.Status != StatusPending {
				out.Status = StatusDone
			}
		case http.StatusNotFound:
			continue
		default:
			return Outcome{}, h.c.fail(ActionErase, r)
		}
		out.addRef("customer", id)
	}
	return out, nil
}

// Confirm implements Confirmer: GET /customers/{id} for every customer the
// erasure named; 404 counts as gone, 200 as still present (a deletion
// Help Scout has not finished, or a customer created again).
func (h *HelpScout) Confirm(ctx context.Context, earlier Outcome) (Outcome, error) {
	if out, done := nothingToCheck(h.name, earlier, "customer"); done {
		return out, nil
	}
	out := Outcome{Processor: h.name, Action: ActionConfirm, Status: StatusAlreadyGone}
	for _, id := range refIDs(earlier, "customer") {
		r, err := h.api(ctx, ActionConfirm, call{method: http.MethodGet, path: helpScoutCustomerPath(id)})
		if err != nil {
			return Outcome{}, err
		}
		out.HTTPStatus = r.Status
		out.addRef("customer", id)
		switch r.Status {
		case http.StatusNotFound:
		case http.StatusOK:
			out.Status = StatusStillPresent
		default:
			return Outcome{}, h.c.fail(ActionConfirm, r)
		}
	}
	return out, nil
}

// Export implements Exporter: each customer's record ("helpscout.customer")
// and, unless SkipConversations, their conversations as listed
// ("helpscout.conversation": subject, status, mailbox, dates, preview; the
// threads stay in Help Scout).
func (h *HelpScout) Export(ctx context.Context, subj Subject, w ExportWriter) (Outcome, error) {
	ids, status, err := h.customers(ctx, ActionExport, subj)
	if err != nil {
		return Outcome{}, err
	}
	out := Outcome{Processor: h.name, Action: ActionExport, Status: StatusNotFound, HTTPStatus: status}
	for _, id := range ids {
		r, err := h.api(ctx, ActionExport, call{method: http.MethodGet, path: helpScoutCustomerPath(id)})
		if err != nil {
			return Outcome{}, err
		}
		out.HTTPStatus = r.Status
		switch r.Status {
		case http.StatusOK:
		case http.StatusNotFound:
			continue
		default:
			return Outcome{}, h.c.fail(ActionExport, r)
		}
		if !json.Valid(r.Body) {
			return Outcome{}, h.c.badBody(ActionExport, r)
		}
		if err := writeRecord(ctx, w, h.name, Record{Kind: "helpscout.customer", ID: id, Data: r.Body}); err != nil {
			return Outcome{}, err
		}
		out.Records++
		out.Status = StatusDone
		out.addRef("customer", id)
		if h.conversations {
			n, err := h.exportConversations(ctx, id, w)
			if err != nil {
				return Outcome{}, err
			}
			out.Records += n
		}
	}
	return out, nil
}

// exportConversations writes the customer's conversations, page by page.
func (h *HelpScout) exportConversations(ctx context.Context, customerID string, w ExportWriter) (int, error) {
	n := 0
	for page := 1; page <= maxHelpScoutPages; page++ {
		r, err := h.api(ctx, ActionExport, call{method: http.MethodGet, path: "/conversations",
			query: url.Values{"query": {"(customerIds:" + customerID + ")"}, "status": {"all"}, "page": {strconv.Itoa(page)}}})
		if err != nil {
			return n, err
		}
		if r.Status != http.StatusOK {
			return n, h.c.fail(ActionExport, r)
		}
		var list struct {
			Embedded struct {
				Conversations []json.RawMessage `json:"conversations"`
			} `json:"_embedded"`
			Page helpScoutPage `json:"page"`
		}
		if json.Unmarshal(r.Body, &list) != nil {
			return n, h.c.badBody(ActionExport, r)
		}
		for _, conv := range list.Embedded.Conversations {
			var id struct {
				ID json.Number `json:"id"`
			}
			_ = json.Unmarshal(conv, &id)
			if err := writeRecord(ctx, w, h.name, Record{Kind: "helpscout.conversation", ID: id.ID.String(), Data: conv}); err != nil {
				return n, err
			}
			n++
		}
		if page >= list.Page.TotalPages {
			break
		}
	}
	return n, nil
}
