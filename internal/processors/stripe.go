package processors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// StripeDefaultBaseURL is Stripe's API host.
const StripeDefaultBaseURL = "https://api.stripe.com"

// StripeConfig configures a Stripe connector.
type StripeConfig struct {
	// Name is the connector's name in outcomes and errors; default "stripe".
	Name string
	// BaseURL defaults to StripeDefaultBaseURL; tests point it at a fake.
	BaseURL string
	// APIKey is a secret or restricted key (sk_…, rk_…), sent as a bearer token.
	APIKey string
	// APIVersion, when set, is sent as Stripe-Version.
	APIVersion string
	// ExportLists names the per-customer lists an export includes besides
	// the customer itself: "charges" (the default) and/or "invoices".
	ExportLists []string
	// PageSize is the list page size, 1 to 100; default 100.
	PageSize int
	// HTTPClient defaults to a client with a 60 s timeout.
	HTTPClient *http.Client
}

// Stripe erases, exports and rectifies Stripe customers.
//
// A customer is the one named by Subject.IDs[IDStripeCustomer], or else every
// customer whose email equals Subject.Email (Stripe's filter is
// case-sensitive, so the lower-cased address is tried as well). Erasure is
// DELETE /v1/customers/{id}; a 404 resource_missing, or (for a known id) a
// GET answering {"deleted":true}, counts as already gone.
// Export writes the customer and its charges (and invoices, if configured),
// page by page. Update POSTs form fields with an Idempotency-Key derived from
// Subject.RequestID. Stripe has no consent state, so there is no SetSubscribed.
//
// Update fields: email, name, phone, description, address_line1,
// address_line2, city, state, postal_code, country, "metadata.<key>", and
// raw bracketed parameters such as "shipping[name]".
type Stripe struct {
	name     string
	lists    []string
	pageSize int
	c        *httpClient
}

// NewStripe checks cfg and returns a Stripe connector.
func NewStripe(cfg StripeConfig) (*Stripe, error) {
	if cfg.Name == "" {
		cfg.Name = "stripe"
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = StripeDefaultBaseURL
	}
	if err := validBaseURL(cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("stripe %q: %w", cfg.Name, err)
	}
	if cfg.APIKey == "" {
		return nil, fmt.Errorf("stripe %q: API key is empty", cfg.Name)
	}
	if len(cfg.ExportLists) == 0 {
		cfg.ExportLists = []string{"charges"}
	}
	for _, l := range cfg.ExportLists {
		if l != "charges" && l != "invoices" {
			return nil, fmt.Errorf("stripe %q: export list %q is not charges or invoices", cfg.Name, l)
		}
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = 100
	}
	if cfg.PageSize < 1 || cfg.PageSize > 100 {
		return nil, fmt.Errorf("stripe %q: page size %d is not between 1 and 100", cfg.Name, cfg.PageSize)
	}
	c := newHTTPClient(cfg.Name, cfg.BaseURL, cfg.HTTPClient)
	key := cfg.APIKey
	c.auth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) }
	if cfg.APIVersion != "" {
		c.header.Set("Stripe-Version", cfg.APIVersion)
	}
	c.code = stripeErrorCode
	c.requestIDHeader = "Request-Id"
	c.kind = func(r *response, k Kind) Kind {
		// Stripe says explicitly when a retry can help (e.g. a replayed
		// idempotent 500 will not), and its SDKs obey it.
		switch r.Header.Get("Stripe-Should-Retry") {
		case "true":
			return KindRetryable
		case "false":
			return KindNeedsOperator
		}
		return k
	}
	return &Stripe{name: cfg.Name, lists: slices.Clone(cfg.ExportLists), pageSize: cfg.PageSize, c: c}, nil
}

// Name implements Connector.
func (s *Stripe) Name() string { return s.name }

// stripeErrorCode turns {"error":{"type","code","param"}} into
// "type/code param=p" (never the message, which may quote values).
func stripeErrorCode(body []byte) string {
	var e struct {
		Error struct {
			Type  string `json:"type"`
			Code  string `json:"code"`
			Param string `json:"param"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error.Type == "" {
		return ""
	}
	code := e.Error.Type
	if e.Error.Code != "" {
		code += "/" + e.Error.Code
	}
	if e.Error.Param != "" {
		code += " param=" + e.Error.Param
	}
	return code
}

// resourceMissing reports whether r is Stripe's 404 for an unknown object,
// as opposed to, say, a proxy's 404 for a wrong base URL.
func resourceMissing(r *response) bool {
	if r.Status != http.StatusNotFound {
		return false
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	return json.Unmarshal(r.Body, &e) == nil && e.Error.Code == "resource_missing"
}

// stripeObject is the part of any Stripe object the connector reads.
type stripeObject struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
	raw     json.RawMessage
}

// customers resolves the subject to customer ids (with the objects when a
// search returned them). status is the HTTP status of the last list call.
func (s *Stripe) customers(ctx context.Context, action Action, subj Subject) (objs []stripeObject, status int, err error) {
	if id := subj.ID(IDStripeCustomer); id != "" {
		return []stripeObject{{ID: id}}, 0, nil
	}
	if subj.Email == "" {
		return nil, 0, s.c.local(action, "subject has neither %s nor email", IDStripeCustomer)
	}
	emails := []string{subj.Email}
	if lower := strings.ToLower(subj.Email); lower != subj.Email {
		emails = append(emails, lower)
	}
	seen := map[string]bool{}
	for _, e := range emails {
		status, err = s.list(ctx, action, "/v1/customers", url.Values{"email": {e}}, func(o stripeObject) error {
			if !seen[o.ID] && !o.Deleted {
				seen[o.ID] = true
				objs = append(objs, o)
			}
			return nil
		})
		if err != nil {
			return nil, 0, err
		}
	}
	return objs, status, nil
}

// list walks a Stripe list endpoint with cursor paging, calling fn per object.
func (s *Stripe) list(ctx context.Context, action Action, path string, q url.Values, fn func(stripeObject) error) (int, error) {
	q.Set("limit", strconv.Itoa(s.pageSize))
	for {
		r, err := s.c.do(ctx, action, call{method: http.MethodGet, path: path, query: q})
		if err != nil {
			return 0, err
		}
		if r.Status != http.StatusOK {
			return r.Status, s.c.fail(action, r)
		}
		var page struct {
			HasMore bool              `json:"has_more"`
			Data    []json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(r.Body, &page); err != nil {
			return r.Status, s.c.badBody(action, r)
		}
		last := ""
		for _, raw := range page.Data {
			var o stripeObject
			if err := json.Unmarshal(raw, &o); err != nil || o.ID == "" {
				return r.Status, s.c.badBody(action, r)
			}
			o.raw = raw
			if err := fn(o); err != nil {
				return r.Status, err
			}
			last = o.ID
		}
		if !page.HasMore || last == "" {
			return r.Status, nil
		}
		q.Set("starting_after", last)
	}
}

func customerPath(id string) string { return "/v1/customers/" + url.PathEscape(id) }

// Erase implements Eraser: DELETE /v1/customers/{id} for each customer.
func (s *Stripe) Erase(ctx context.Context, subj Subject) (Outcome, error) {
	out := Outcome{Processor: s.name, Action: ActionErase, Status: StatusAlreadyGone}
	custs, status, err := s.customers(ctx, ActionErase, subj)
	if err != nil {
		return Outcome{}, err
	}
	out.HTTPStatus = status
	if len(custs) == 0 {
		out.Note = "no customer has this email"
		return out, nil
	}
	for _, cu := range custs {
		if cu.raw == nil {
			// A known id: a customer deleted before still answers GET with
			// {"deleted":true}, which is the evidence we want.
			gone, status, err := s.goneAlready(ctx, cu.ID)
			if err != nil {
				return Outcome{}, err
			}
			if gone {
				out.HTTPStatus = status
				out.addRef("customer", cu.ID)
				continue
			}
		}
		r, err := s.c.do(ctx, ActionErase, call{method: http.MethodDelete, path: customerPath(cu.ID)})
		if err != nil {
			return Outcome{}, err
		}
		switch {
		case r.Status == http.StatusOK:
			var o stripeObject
			if json.Unmarshal(r.Body, &o) != nil || !o.Deleted {
				return Outcome{}, s.c.badBody(ActionErase, r)
			}
			out.Status = StatusDone
		case resourceMissing(r):
			// Deleted before (or never existed): nothing left to erase.
		default:
			return Outcome{}, s.c.fail(ActionErase, r)
		}
		out.HTTPStatus = r.Status
		out.addRef("customer", cu.ID)
		out.addRef("request_id", s.c.requestID(r))
	}
	return out, nil
}

// goneAlready reports whether a known customer id is deleted or unknown,
// with the status of the GET that said so.
func (s *Stripe) goneAlready(ctx context.Context, id string) (bool, int, error) {
	r, err := s.c.do(ctx, ActionErase, call{method: http.MethodGet, path: customerPath(id)})
	if err != nil {
		return false, 0, err
	}
	switch {
	case resourceMissing(r):
		return true, r.Status, nil
	case r.Status != http.StatusOK:
		return false, r.Status, s.c.fail(ActionErase, r)
	}
	var o stripeObject
	if json.Unmarshal(r.Body, &o) != nil {
		return false, r.Status, s.c.badBody(ActionErase, r)
	}
	return o.Deleted, r.Status, nil
}

// Export implements Exporter: each customer, then its configured lists.
func (s *Stripe) Export(ctx context.Context, subj Subject, w ExportWriter) (Outcome, error) {
	out := Outcome{Processor: s.name, Action: ActionExport, Status: StatusNotFound}
	custs, status, err := s.customers(ctx, ActionExport, subj)
	if err != nil {
		return Outcome{}, err
	}
	out.HTTPStatus = status
	for _, cu := range custs {
		if cu.raw == nil {
			r, err := s.c.do(ctx, ActionExport, call{method: http.MethodGet, path: customerPath(cu.ID)})
			if err != nil {
				return Outcome{}, err
			}
			out.HTTPStatus = r.Status
			if resourceMissing(r) {
				continue
			}
			if r.Status != http.StatusOK {
				return Outcome{}, s.c.fail(ActionExport, r)
			}
			if json.Unmarshal(r.Body, &cu) != nil {
				return Outcome{}, s.c.badBody(ActionExport, r)
			}
			if cu.Deleted {
				continue
			}
			cu.raw = r.Body
		}
		if err := writeRecord(ctx, w, s.name, Record{Kind: "stripe.customer", ID: cu.ID, Data: cu.raw}); err != nil {
			return Outcome{}, err
		}
		out.Records++
		out.Status = StatusDone
		out.addRef("customer", cu.ID)
		for _, list := range s.lists {
			kind := "stripe." + strings.TrimSuffix(list, "s")
			st, err := s.list(ctx, ActionExport, "/v1/"+list, url.Values{"customer": {cu.ID}}, func(o stripeObject) error {
				out.Records++
				return writeRecord(ctx, w, s.name, Record{Kind: kind, ID: o.ID, Data: o.raw})
			})
			if err != nil {
				return Outcome{}, err
			}
			out.HTTPStatus = st
		}
	}
	return out, nil
}

// stripeForm maps Lethe field names to Stripe customer parameters.
func stripeForm(fields map[string]string) (url.Values, string) {
	direct := map[string]string{
		"email": "email", "name": "name", "phone": "phone", "description": "description",
		"address_line1": "address[line1]", "address_line2": "address[line2]",
		"city": "address[city]", "state": "address[state]",
		"postal_code": "address[postal_code]", "country": "address[country]",
	}
	form := url.Values{}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		v := fields[k]
		switch {
		case direct[k] != "":
			form.Set(direct[k], v)
		case strings.HasPrefix(k, "metadata.") && len(k) > len("metadata."):
			form.Set("metadata["+strings.TrimPrefix(k, "metadata.")+"]", v)
		case strings.Contains(k, "[") && strings.HasSuffix(k, "]"):
			form.Set(k, v)
		default:
			return nil, k
		}
	}
	return form, ""
}

// idempotencyKey derives a Stripe Idempotency-Key from the request id and
// everything that makes this POST what it is, so a retry replays the first
// answer and a changed request gets a fresh key.
func idempotencyKey(requestID string, parts ...string) string {
	if requestID == "" {
		return ""
	}
	h := sha256.New()
	h.Write([]byte(requestID))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return "lethe-" + hex.EncodeToString(h.Sum(nil))[:48]
}

// Update implements Rectifier: POST /v1/customers/{id} with form fields.
func (s *Stripe) Update(ctx context.Context, subj Subject, fields map[string]string) (Outcome, error) {
	form, bad := stripeForm(fields)
	if bad != "" {
		return Outcome{}, s.c.local(ActionUpdate, "field %q is not supported by Stripe", bad)
	}
	if len(form) == 0 {
		return Outcome{}, s.c.local(ActionUpdate, "no fields to update")
	}
	out := Outcome{Processor: s.name, Action: ActionUpdate, Status: StatusNotFound}
	custs, status, err := s.customers(ctx, ActionUpdate, subj)
	if err != nil {
		return Outcome{}, err
	}
	out.HTTPStatus = status
	body := form.Encode()
	for _, cu := range custs {
		c := call{method: http.MethodPost, path: customerPath(cu.ID), contentType: "application/x-www-form-urlencoded",
			body: []byte(body)}
		if key := idempotencyKey(subj.RequestID, s.name, string(ActionUpdate), cu.ID, body); key != "" {
			c.header = http.Header{"Idempotency-Key": {key}}
		}
		r, err := s.c.do(ctx, ActionUpdate, c)
		if err != nil {
			return Outcome{}, err
		}
		out.HTTPStatus = r.Status
		if resourceMissing(r) {
			continue
		}
		if r.Status != http.StatusOK {
			return Outcome{}, s.c.fail(ActionUpdate, r)
		}
		out.Status = StatusDone
		out.addRef("customer", cu.ID)
		out.addRef("request_id", s.c.requestID(r))
	}
	return out, nil
}
