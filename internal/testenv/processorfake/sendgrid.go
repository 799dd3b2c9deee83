package processorfake

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// DefaultSendGridKey is the API key a new SendGrid fake accepts.
const DefaultSendGridKey = "SG.fake-lethe-key"

// SendGridContact is a Marketing contact in the SendGrid fake.
type SendGridContact struct {
	// ID is assigned by AddContact when empty.
	ID              string
	Email           string
	AlternateEmails []string
	FirstName       string
	LastName        string
	PhoneNumber     string
	AddressLine1    string
	AddressLine2    string
	City            string
	State           string
	PostalCode      string
	Country         string
	ListIDs         []string
	CustomFields    map[string]string
}

// SendGrid answers like api.sendgrid.com for Marketing contacts and ASM
// suppressions: bearer auth, X-RateLimit-* headers on every answer, 429
// announcing the wait in X-RateLimit-Reset (no Retry-After), search by
// email returning 404 when nothing matches, contact deletes and upserts
// answering 202 {"job_id"} (applied at once, or deletes after some reads:
// SetDeletionLag), batched reads of up to 100 contacts by id, and
// {"errors":[{"field","message"}]} errors.
type SendGrid struct {
	*Server
	// APIKey is the key accepted as bearer token.
	APIKey string

	seq      int
	contacts map[string]*SendGridContact
	order    []string
	groups   map[int]map[string]bool
	global   map[string]bool
	jobs     []string
	lag      int            // reads a deleted contact stays readable for
	deleting map[string]int // contact id: reads left before the deletion job reaches it
}

// NewSendGrid starts a SendGrid fake; connectors use URL() as base URL.
func NewSendGrid(t testing.TB) *SendGrid {
	f := &SendGrid{APIKey: DefaultSendGridKey, contacts: map[string]*SendGridContact{},
		groups: map[int]map[string]bool{}, global: map[string]bool{}}
	f.Server = newServer(t, style{
		authorize: func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer "+f.APIKey },
		writeError: func(w http.ResponseWriter, status int, code, message string) {
			switch status {
			case http.StatusTooManyRequests:
				message = "too many requests"
			case http.StatusUnauthorized:
				message = "authorization required"
			}
			sgError(w, status, "", message)
		},
		retryHint: func(h http.Header, d time.Duration, now time.Time) {
			h.Set("X-RateLimit-Remaining", "0")
			h.Set("X-RateLimit-Reset", strconv.FormatInt(now.Add(d).Unix()+1, 10))
		},
		decorate: func(h http.Header) {
			h.Set("X-RateLimit-Limit", "600")
			h.Set("X-RateLimit-Remaining", "599")
			h.Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Minute).Unix(), 10))
		},
	})
	f.handle("POST /v3/marketing/contacts/search/emails", f.searchEmails)
	f.handle("GET /v3/marketing/contacts/{id}", f.getContact)
	f.handle("POST /v3/marketing/contacts/batch", f.batchContacts)
	f.handle("DELETE /v3/marketing/contacts", f.deleteContacts)
	f.handle("PUT /v3/marketing/contacts", f.upsertContacts)
	f.handle("GET /v3/marketing/contacts/imports/{id}", f.importStatus)
	f.handle("POST /v3/asm/groups/{group}/suppressions", f.addGroupSuppressions)
	f.handle("GET /v3/asm/groups/{group}/suppressions", f.listGroupSuppressions)
	f.handle("DELETE /v3/asm/groups/{group}/suppressions/{email}", f.deleteGroupSuppression)
	f.handle("POST /v3/asm/suppressions/global", f.addGlobal)
	f.handle("GET /v3/asm/suppressions/global/{email}", f.getGlobal)
	f.handle("DELETE /v3/asm/suppressions/global/{email}", f.deleteGlobal)
	return f
}

// URL is the API base URL (the origin; paths start with /v3).
func (f *SendGrid) URL() string { return f.Origin() }

func sgError(w http.ResponseWriter, status int, field, message string) {
	var fv any
	if field != "" {
		fv = field
	}
	writeJSON(w, status, map[string]any{"errors": []map[string]any{{"field": fv, "message": message}}})
}

func (f *SendGrid) nextID() string {
	f.seq++
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", f.seq, f.seq)
}

// AddContact seeds a contact and returns its id.
func (f *SendGrid) AddContact(c SendGridContact) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.ID == "" {
		c.ID = f.nextID()
	}
	c.Email = strings.ToLower(c.Email)
	c.CustomFields = cloneMap(c.CustomFields)
	f.contacts[c.ID] = &c
	f.order = append(f.order, c.ID)
	return c.ID
}

// AddGroup declares an unsubscribe group.
func (f *SendGrid) AddGroup(id int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.groups[id] == nil {
		f.groups[id] = map[string]bool{}
	}
}

// Contact returns a copy of the contact with this id.
func (f *SendGrid) Contact(id string) (SendGridContact, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.contacts[id]
	if !ok {
		return SendGridContact{}, false
	}
	return *c, true
}

// ContactByEmail returns a copy of the contact with this email.
func (f *SendGrid) ContactByEmail(email string) (SendGridContact, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.byEmail(email); c != nil {
		return *c, true
	}
	return SendGridContact{}, false
}

// Suppressed reports whether email is in the group's suppressions.
func (f *SendGrid) Suppressed(group int, email string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.groups[group][strings.ToLower(email)]
}

// GloballySuppressed reports whether email is globally unsubscribed.
func (f *SendGrid) GloballySuppressed(email string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.global[strings.ToLower(email)]
}

// Jobs lists the job ids handed out, oldest first.
func (f *SendGrid) Jobs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.jobs)
}

func (f *SendGrid) byEmail(email string) *SendGridContact {
	email = strings.ToLower(email)
	for _, id := range f.order {
		c := f.contacts[id]
		if c != nil && (c.Email == email || slices.Contains(c.AlternateEmails, email)) {
			return c
		}
	}
	return nil
}

func (c *SendGridContact) json() map[string]any {
	custom := map[string]any{}
	for k, v := range c.CustomFields {
		custom[k] = v
	}
	return map[string]any{
		"id": c.ID, "email": c.Email, "alternate_emails": nonNil(c.AlternateEmails),
		"first_name": c.FirstName, "last_name": c.LastName, "phone_number": c.PhoneNumber,
		"address_line_1": c.AddressLine1, "address_line_2": c.AddressLine2, "city": c.City,
		"state_province_region": c.State, "postal_code": c.PostalCode, "country": c.Country,
		"list_ids": nonNil(c.ListIDs), "segment_ids": []string{}, "custom_fields": custom,
		"created_at": "2024-01-01T00:00:00Z", "updated_at": time.Now().UTC().Format(time.RFC3339),
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (f *SendGrid) searchEmails(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Emails []string `json:"emails"`
	}
	if err := readJSON(r, &body); err != nil || len(body.Emails) == 0 {
		sgError(w, http.StatusBadRequest, "emails", "emails are required")
		return
	}
	if len(body.Emails) > 100 {
		sgError(w, http.StatusBadRequest, "emails", "too many emails (max 100)")
		return
	}
	result := map[string]any{}
	found := 0
	for i, e := range body.Emails {
		if !strings.Contains(e, "@") {
			sgError(w, http.StatusBadRequest, fmt.Sprintf("emails[%d]", i), "email address "+e+" is invalid")
			return
		}
		if c := f.byEmail(e); c != nil {
			result[strings.ToLower(e)] = map[string]any{"contact": c.json()}
			found++
		} else {
			result[strings.ToLower(e)] = map[string]any{"error": "contact not found"}
		}
	}
	if found == 0 {
		sgError(w, http.StatusNotFound, "", "No contacts found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": result})
}

// SetDeletionLag makes a contact deleted from now on stay readable (by id,
// alone or in a batch, and by search) for n reads of it by id, as
// SendGrid's asynchronous deletion job leaves it until it runs.
func (f *SendGrid) SetDeletionLag(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lag = n
	if f.deleting == nil {
		f.deleting = map[string]int{}
	}
}

// read returns the contact with this id, counting the read against a
// pending deletion (which removes it once its reads are used up).
func (f *SendGrid) read(id string) (*SendGridContact, bool) {
	c, ok := f.contacts[id]
	if !ok {
		return nil, false
	}
	if left, deleting := f.deleting[id]; deleting {
		if left <= 0 {
			delete(f.contacts, id)
			delete(f.deleting, id)
			f.order = slices.DeleteFunc(f.order, func(x string) bool { return x == id })
			return nil, false
		}
		f.deleting[id] = left - 1
	}
	return c, true
}

func (f *SendGrid) batchContacts(w http.ResponseWriter, r *http.Request) {
	var body struct {
		IDs []string `json:"ids"`
	}
	if err := readJSON(r, &body); err != nil || len(body.IDs) == 0 {
		sgError(w, http.StatusBadRequest, "ids", "ids are required")
		return
	}
	if len(body.IDs) > 100 {
		sgError(w, http.StatusBadRequest, "ids", "too many ids (max 100)")
		return
	}
	result := []any{}
	for _, id := range body.IDs {
		if c, ok := f.read(id); ok {
			result = append(result, c.json())
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": result})
}

func (f *SendGrid) getContact(w http.ResponseWriter, r *http.Request) {
	c, ok := f.read(r.PathValue("id"))
	if !ok {
		sgError(w, http.StatusNotFound, "", "Contact not found")
		return
	}
	writeJSON(w, http.StatusOK, c.json())
}

func (f *SendGrid) job() string {
	id := f.nextID()
	f.jobs = append(f.jobs, id)
	return id
}

func (f *SendGrid) deleteContacts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("delete_all_contacts") == "true" {
		f.contacts = map[string]*SendGridContact{}
		f.order = nil
		writeJSON(w, http.StatusAccepted, map[string]any{"job_id": f.job()})
		return
	}
	ids := strings.Split(q.Get("ids"), ",")
	if q.Get("ids") == "" || len(ids) > 100 {
		sgError(w, http.StatusBadRequest, "ids", "ids (at most 100) or delete_all_contacts are required")
		return
	}
	for _, id := range ids {
		id = strings.TrimSpace(id)
		if _, ok := f.contacts[id]; ok && f.lag > 0 {
			if _, already := f.deleting[id]; !already {
				f.deleting[id] = f.lag
			}
			continue
		}
		delete(f.contacts, id)
	}
	f.order = slices.DeleteFunc(f.order, func(id string) bool { return f.contacts[id] == nil })
	writeJSON(w, http.StatusAccepted, map[string]any{"job_id": f.job()})
}

func (f *SendGrid) upsertContacts(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ListIDs  []string         `json:"list_ids"`
		Contacts []map[string]any `json:"contacts"`
	}
	if err := readJSON(r, &body); err != nil || len(body.Contacts) == 0 {
		sgError(w, http.StatusBadRequest, "contacts", "contacts are required")
		return
	}
	// Validate everything first: a bad contact rejects the request.
	for i, in := range body.Contacts {
		email, _ := in["email"].(string)
		if !strings.Contains(email, "@") {
			sgError(w, http.StatusBadRequest, fmt.Sprintf("contacts[%d].email", i), "email is required and must be valid")
			return
		}
		for k := range in {
			if !slices.Contains([]string{"email", "alternate_emails", "first_name", "last_name", "phone_number",
				"address_line_1", "address_line_2", "city", "state_province_region", "postal_code", "country",
				"custom_fields"}, k) {
				sgError(w, http.StatusBadRequest, fmt.Sprintf("contacts[%d].%s", i, k), "unknown field")
				return
			}
		}
	}
	for _, in := range body.Contacts {
		email := strings.ToLower(in["email"].(string))
		c := f.byEmail(email)
		if c == nil {
			c = &SendGridContact{ID: f.nextID(), Email: email}
			f.contacts[c.ID] = c
			f.order = append(f.order, c.ID)
		}
		str := func(k string, dst *string) {
			if v, ok := in[k].(string); ok {
				*dst = v
			}
		}
		str("first_name", &c.FirstName)
		str("last_name", &c.LastName)
		str("phone_number", &c.PhoneNumber)
		str("address_line_1", &c.AddressLine1)
		str("address_line_2", &c.AddressLine2)
		str("city", &c.City)
		str("state_province_region", &c.State)
		str("postal_code", &c.PostalCode)
		str("country", &c.Country)
		if cf, ok := in["custom_fields"].(map[string]any); ok {
			if c.CustomFields == nil {
				c.CustomFields = map[string]string{}
			}
			for k, v := range cf {
				c.CustomFields[k] = fmt.Sprint(v)
			}
		}
		for _, l := range body.ListIDs {
			if !slices.Contains(c.ListIDs, l) {
				c.ListIDs = append(c.ListIDs, l)
			}
		}
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"job_id": f.job()})
}

func (f *SendGrid) importStatus(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !slices.Contains(f.jobs, id) {
		sgError(w, http.StatusNotFound, "", "job not found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "status": "completed", "job_type": "upsert"})
}

func (f *SendGrid) groupParam(w http.ResponseWriter, r *http.Request) (int, bool) {
	g, err := strconv.Atoi(r.PathValue("group"))
	if err != nil || g <= 0 {
		sgError(w, http.StatusBadRequest, "group_id", "group_id must be a positive integer")
		return 0, false
	}
	return g, true
}

func readRecipients(w http.ResponseWriter, r *http.Request) ([]string, bool) {
	var body struct {
		RecipientEmails []string `json:"recipient_emails"`
	}
	if err := readJSON(r, &body); err != nil || len(body.RecipientEmails) == 0 {
		sgError(w, http.StatusBadRequest, "recipient_emails", "recipient_emails are required")
		return nil, false
	}
	return body.RecipientEmails, true
}

func (f *SendGrid) addGroupSuppressions(w http.ResponseWriter, r *http.Request) {
	g, ok := f.groupParam(w, r)
	if !ok {
		return
	}
	emails, ok := readRecipients(w, r)
	if !ok {
		return
	}
	target := f.groups[g]
	if target == nil { // a missing group sends the addresses to global suppressions
		target = f.global
	}
	for _, e := range emails {
		target[strings.ToLower(e)] = true
	}
	writeJSON(w, http.StatusCreated, map[string]any{"recipient_emails": emails})
}

func (f *SendGrid) listGroupSuppressions(w http.ResponseWriter, r *http.Request) {
	g, ok := f.groupParam(w, r)
	if !ok {
		return
	}
	out := []string{}
	for e := range f.groups[g] {
		out = append(out, e)
	}
	slices.Sort(out)
	writeJSON(w, http.StatusOK, out)
}

func (f *SendGrid) deleteGroupSuppression(w http.ResponseWriter, r *http.Request) {
	g, ok := f.groupParam(w, r)
	if !ok {
		return
	}
	delete(f.groups[g], strings.ToLower(r.PathValue("email")))
	w.WriteHeader(http.StatusNoContent)
}

func (f *SendGrid) addGlobal(w http.ResponseWriter, r *http.Request) {
	emails, ok := readRecipients(w, r)
	if !ok {
		return
	}
	for _, e := range emails {
		f.global[strings.ToLower(e)] = true
	}
	writeJSON(w, http.StatusCreated, map[string]any{"recipient_emails": emails})
}

func (f *SendGrid) getGlobal(w http.ResponseWriter, r *http.Request) {
	e := strings.ToLower(r.PathValue("email"))
	if f.global[e] {
		writeJSON(w, http.StatusOK, map[string]any{"recipient_email": e})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

func (f *SendGrid) deleteGlobal(w http.ResponseWriter, r *http.Request) {
	delete(f.global, strings.ToLower(r.PathValue("email")))
	w.WriteHeader(http.StatusNoContent)
}
