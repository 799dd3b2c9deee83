package processorfake

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// DefaultStripeKey is the secret key a new Stripe fake accepts.
const DefaultStripeKey = "sk_test_lethe_fake"

// StripeCustomer is a customer in the Stripe fake.
type StripeCustomer struct {
	// ID is assigned by AddCustomer when empty (cus_fake…).
	ID          string
	Email       string
	Name        string
	Phone       string
	Description string
	// Address keys are Stripe's: line1, line2, city, state, postal_code, country.
	Address  map[string]string
	Metadata map[string]string
	Deleted  bool
	Created  int64
}

// StripeCharge is a charge in the Stripe fake.
type StripeCharge struct {
	ID       string
	Customer string
	Amount   int64
	Currency string
	Created  int64
}

// StripeInvoice is an invoice in the Stripe fake.
type StripeInvoice struct {
	ID        string
	Customer  string
	AmountDue int64
	Currency  string
	Created   int64
}

// Stripe answers like api.stripe.com for customers, charges and invoices:
// bearer (or Basic username) key auth, form-encoded POSTs with
// Idempotency-Key replay, JSON lists with has_more and starting_after
// paging (newest first), DELETE giving {"deleted":true} and then 404
// resource_missing, and {"error":{type,code,param,message}} errors.
type Stripe struct {
	*Server
	// APIKey is the secret key accepted (DefaultStripeKey).
	APIKey string

	seq       int
	customers map[string]*StripeCustomer
	order     []string // customer ids, oldest first
	charges   []*StripeCharge
	invoices  []*StripeInvoice
	idem      map[string]stripeIdem
	reqSeq    atomic.Int64
}

type stripeIdem struct {
	fingerprint [32]byte
	status      int
	body        []byte
}

// NewStripe starts a Stripe fake; the test's cleanup stops it. Point the
// connector's base URL at URL().
func NewStripe(t testing.TB) *Stripe {
	f := &Stripe{APIKey: DefaultStripeKey, customers: map[string]*StripeCustomer{}, idem: map[string]stripeIdem{}}
	f.Server = newServer(t, style{
		authorize: func(r *http.Request) bool {
			if user, _, ok := r.BasicAuth(); ok {
				return user == f.APIKey
			}
			return r.Header.Get("Authorization") == "Bearer "+f.APIKey
		},
		writeError: func(w http.ResponseWriter, status int, code, message string) {
			typ := "invalid_request_error"
			if status >= 500 {
				typ = "api_error"
			}
			if code == "unauthorized" {
				code = ""
				message = "Invalid API Key provided"
			}
			stripeError(w, status, typ, code, "", message)
		},
		retryHint: retryAfterSeconds,
		decorate: func(h http.Header) {
			h.Set("Request-Id", fmt.Sprintf("req_fake%06d", f.reqSeq.Add(1)))
		},
	})
	f.handle("GET /v1/customers", f.listCustomers)
	f.handle("GET /v1/customers/{id}", f.getCustomer)
	f.handle("POST /v1/customers/{id}", f.updateCustomer)
	f.handle("DELETE /v1/customers/{id}", f.deleteCustomer)
	f.handle("GET /v1/charges", f.listCharges)
	f.handle("GET /v1/invoices", f.listInvoices)
	return f
}

// URL is the API base URL (the origin; paths start with /v1).
func (f *Stripe) URL() string { return f.Origin() }

func stripeError(w http.ResponseWriter, status int, typ, code, param, message string) {
	e := map[string]any{"type": typ, "message": message}
	if code != "" {
		e["code"] = code
		e["doc_url"] = "https://stripe.com/docs/error-codes/" + strings.ReplaceAll(code, "_", "-")
	}
	if param != "" {
		e["param"] = param
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func (f *Stripe) nextID(prefix string) string {
	f.seq++
	return fmt.Sprintf("%s_fake%04d", prefix, f.seq)
}

// AddCustomer seeds a customer and returns its id.
func (f *Stripe) AddCustomer(c StripeCustomer) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.ID == "" {
		c.ID = f.nextID("cus")
	}
	if c.Created == 0 {
		c.Created = time.Now().Unix()
	}
	if c.Metadata == nil {
		c.Metadata = map[string]string{}
	}
	f.customers[c.ID] = &c
	f.order = append(f.order, c.ID)
	return c.ID
}

// AddCharge seeds a charge for a customer and returns its id.
func (f *Stripe) AddCharge(customerID string, amount int64, currency string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := &StripeCharge{ID: f.nextID("ch"), Customer: customerID, Amount: amount, Currency: currency,
		Created: time.Now().Unix()}
	f.charges = append(f.charges, ch)
	return ch.ID
}

// AddInvoice seeds an invoice for a customer and returns its id.
func (f *Stripe) AddInvoice(customerID string, amountDue int64, currency string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := &StripeInvoice{ID: f.nextID("in"), Customer: customerID, AmountDue: amountDue, Currency: currency,
		Created: time.Now().Unix()}
	f.invoices = append(f.invoices, in)
	return in.ID
}

// Customer returns a copy of a customer (deleted ones too).
func (f *Stripe) Customer(id string) (StripeCustomer, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.customers[id]
	if !ok {
		return StripeCustomer{}, false
	}
	return *c, true
}

func (c *StripeCustomer) json() map[string]any {
	if c.Deleted {
		return map[string]any{"id": c.ID, "object": "customer", "deleted": true}
	}
	var addr any
	if len(c.Address) > 0 {
		a := map[string]any{}
		for _, k := range []string{"line1", "line2", "city", "state", "postal_code", "country"} {
			if v, ok := c.Address[k]; ok {
				a[k] = v
			} else {
				a[k] = nil
			}
		}
		addr = a
	}
	return map[string]any{
		"id": c.ID, "object": "customer", "email": nullable(c.Email), "name": nullable(c.Name),
		"phone": nullable(c.Phone), "description": nullable(c.Description), "address": addr,
		"metadata": c.Metadata, "created": c.Created, "livemode": false,
	}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// page applies limit and starting_after to ids (already newest first) and
// writes a Stripe list.
func (f *Stripe) page(w http.ResponseWriter, r *http.Request, path string, ids []string, render func(id string) map[string]any) {
	q := r.URL.Query()
	limit := 10
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			stripeError(w, http.StatusBadRequest, "invalid_request_error", "parameter_invalid_integer", "limit",
				"Invalid integer: "+v)
			return
		}
		limit = n
	}
	if after := q.Get("starting_after"); after != "" {
		i := slices.Index(ids, after)
		if i < 0 {
			stripeError(w, http.StatusBadRequest, "invalid_request_error", "resource_missing", "starting_after",
				"No such object: '"+after+"'")
			return
		}
		ids = ids[i+1:]
	}
	more := len(ids) > limit
	if more {
		ids = ids[:limit]
	}
	data := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		data = append(data, render(id))
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "url": path, "has_more": more, "data": data})
}

func (f *Stripe) listCustomers(w http.ResponseWriter, r *http.Request) {
	email, filter := r.URL.Query()["email"]
	var ids []string
	for i := len(f.order) - 1; i >= 0; i-- {
		c := f.customers[f.order[i]]
		if c.Deleted || filter && c.Email != email[0] { // Stripe's email filter is exact and case-sensitive
			continue
		}
		ids = append(ids, c.ID)
	}
	f.page(w, r, "/v1/customers", ids, func(id string) map[string]any { return f.customers[id].json() })
}

func (f *Stripe) missingCustomer(w http.ResponseWriter, id string) {
	stripeError(w, http.StatusNotFound, "invalid_request_error", "resource_missing", "id",
		"No such customer: '"+id+"'")
}

func (f *Stripe) getCustomer(w http.ResponseWriter, r *http.Request) {
	c, ok := f.customers[r.PathValue("id")]
	if !ok {
		f.missingCustomer(w, r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, c.json()) // deleted customers answer {"deleted":true}
}

func (f *Stripe) deleteCustomer(w http.ResponseWriter, r *http.Request) {
	c, ok := f.customers[r.PathValue("id")]
	if !ok || c.Deleted {
		f.missingCustomer(w, r.PathValue("id"))
		return
	}
	c.Deleted = true
	writeJSON(w, http.StatusOK, map[string]any{"id": c.ID, "object": "customer", "deleted": true})
}

// recorder keeps an answer for idempotent replay.
type recorder struct {
	header http.Header
	status int
	body   []byte
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(code int)        { r.status = code }
func (r *recorder) Write(b []byte) (int, error) { r.body = append(r.body, b...); return len(b), nil }

func (f *Stripe) updateCustomer(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		f.applyUpdate(w, r)
		return
	}
	if len(key) > 255 {
		stripeError(w, http.StatusBadRequest, "invalid_request_error", "", "", "Idempotency key too long")
		return
	}
	body, _ := readAll(r)
	fp := sha256.Sum256([]byte(r.Method + " " + r.URL.Path + "\n" + string(body)))
	if prev, ok := f.idem[key]; ok {
		if prev.fingerprint != fp {
			stripeError(w, http.StatusBadRequest, "idempotency_error", "", "",
				"Keys for idempotent requests can only be used with the same parameters they were first used with.")
			return
		}
		w.Header().Set("Idempotent-Replayed", "true")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(prev.status)
		w.Write(prev.body)
		return
	}
	rec := &recorder{header: w.Header(), status: http.StatusOK}
	f.applyUpdate(rec, r)
	if rec.status != http.StatusBadRequest && rec.status != http.StatusUnauthorized { // 400s are not cached
		f.idem[key] = stripeIdem{fingerprint: fp, status: rec.status, body: rec.body}
	}
	w.WriteHeader(rec.status)
	w.Write(rec.body)
}

func (f *Stripe) applyUpdate(w http.ResponseWriter, r *http.Request) {
	c, ok := f.customers[r.PathValue("id")]
	if !ok || c.Deleted {
		f.missingCustomer(w, r.PathValue("id"))
		return
	}
	if err := r.ParseForm(); err != nil {
		stripeError(w, http.StatusBadRequest, "invalid_request_error", "", "", "Invalid request body")
		return
	}
	next := *c
	next.Address = cloneMap(c.Address)
	next.Metadata = cloneMap(c.Metadata)
	for k, vs := range r.PostForm {
		v := vs[0]
		switch {
		case k == "email":
			next.Email = v
		case k == "name":
			next.Name = v
		case k == "phone":
			next.Phone = v
		case k == "description":
			next.Description = v
		case strings.HasPrefix(k, "address[") && strings.HasSuffix(k, "]"):
			part := strings.TrimSuffix(strings.TrimPrefix(k, "address["), "]")
			if !slices.Contains([]string{"line1", "line2", "city", "state", "postal_code", "country"}, part) {
				stripeError(w, http.StatusBadRequest, "invalid_request_error", "parameter_unknown", k,
					"Received unknown parameter: "+k)
				return
			}
			if next.Address == nil {
				next.Address = map[string]string{}
			}
			next.Address[part] = v
		case strings.HasPrefix(k, "metadata[") && strings.HasSuffix(k, "]"):
			next.Metadata[strings.TrimSuffix(strings.TrimPrefix(k, "metadata["), "]")] = v
		default:
			stripeError(w, http.StatusBadRequest, "invalid_request_error", "parameter_unknown", k,
				"Received unknown parameter: "+k)
			return
		}
	}
	*c = next
	writeJSON(w, http.StatusOK, c.json())
}

func (f *Stripe) listCharges(w http.ResponseWriter, r *http.Request) {
	cus := r.URL.Query().Get("customer")
	var ids []string
	byID := map[string]*StripeCharge{}
	for i := len(f.charges) - 1; i >= 0; i-- {
		ch := f.charges[i]
		if cus != "" && ch.Customer != cus {
			continue
		}
		ids = append(ids, ch.ID)
		byID[ch.ID] = ch
	}
	f.page(w, r, "/v1/charges", ids, func(id string) map[string]any {
		ch := byID[id]
		out := map[string]any{"id": ch.ID, "object": "charge", "amount": ch.Amount, "currency": ch.Currency,
			"customer": ch.Customer, "created": ch.Created, "status": "succeeded", "paid": true}
		if c, ok := f.customers[ch.Customer]; ok && !c.Deleted {
			out["billing_details"] = map[string]any{"email": nullable(c.Email), "name": nullable(c.Name)}
		}
		return out
	})
}

func (f *Stripe) listInvoices(w http.ResponseWriter, r *http.Request) {
	cus := r.URL.Query().Get("customer")
	var ids []string
	byID := map[string]*StripeInvoice{}
	for i := len(f.invoices) - 1; i >= 0; i-- {
		in := f.invoices[i]
		if cus != "" && in.Customer != cus {
			continue
		}
		ids = append(ids, in.ID)
		byID[in.ID] = in
	}
	f.page(w, r, "/v1/invoices", ids, func(id string) map[string]any {
		in := byID[id]
		return map[string]any{"id": in.ID, "object": "invoice", "amount_due": in.AmountDue, "currency": in.Currency,
			"customer": in.Customer, "created": in.Created, "status": "paid"}
	})
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
