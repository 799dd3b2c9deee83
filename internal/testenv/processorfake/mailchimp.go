package processorfake

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// DefaultMailchimpKey is the API key a new Mailchimp fake accepts.
const DefaultMailchimpKey = "0123456789abcdef0123456789abcdef-us6"

// MailchimpMember is an audience member in the Mailchimp fake.
type MailchimpMember struct {
	Email string
	// Status is subscribed, unsubscribed, cleaned, pending, transactional
	// or archived.
	Status      string
	MergeFields map[string]string
	// ContactID is Mailchimp's opaque id for the contact, assigned when
	// empty; the member paths accept it in place of the subscriber hash.
	ContactID string
}

type mcList struct {
	name      string
	members   map[string]*MailchimpMember // by subscriber hash
	forgotten map[string]bool             // hashes permanently deleted
}

// Mailchimp answers like the Marketing API v3 under /3.0: HTTP Basic with
// the key as password, members addressed by subscriber hash (lower-case
// MD5 of the lower-cased email), DELETE archiving, delete-permanent
// removing for good (a later PUT gets 400 "Forgotten Email Not
// Subscribed"), application/problem+json errors whose detail quotes
// the email as the real service does, and batch operations (POST
// /batches, run in an order of their own when their status is read,
// results as JSON arrays in a gzipped tar behind an unauthenticated URL).
type Mailchimp struct {
	*Server
	// APIKey is the key accepted as Basic password.
	APIKey string

	lists      map[string]*mcList
	reqSeq     atomic.Int64
	contactSeq int
	batches    []*mcBatch
	batchPolls int
	operations []Call // what batches ran
	opFaults   []*Fault
}

// NewMailchimp starts a Mailchimp fake; connectors use URL() as base URL.
func NewMailchimp(t testing.TB) *Mailchimp {
	f := &Mailchimp{APIKey: DefaultMailchimpKey, lists: map[string]*mcList{}}
	f.Server = newServer(t, style{
		authorize: func(r *http.Request) bool {
			if strings.HasPrefix(r.URL.Path, mcBatchResultsPath) {
				return true // a signed URL in the real service
			}
			_, pass, ok := r.BasicAuth()
			return ok && pass == f.APIKey
		},
		writeError: func(w http.ResponseWriter, status int, _, message string) {
			title := http.StatusText(status)
			switch status {
			case http.StatusUnauthorized:
				title, message = "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter."
			case http.StatusBadRequest:
				title = "Invalid Resource"
			}
			mcProblem(w, status, title, message)
		},
		retryHint: retryAfterSeconds,
		decorate: func(h http.Header) {
			h.Set("X-Request-Id", fmt.Sprintf("00000000-0000-4000-8000-%012d", f.reqSeq.Add(1)))
		},
	})
	f.handle("GET /3.0/lists/{list}", f.getList)
	f.handle("GET /3.0/lists/{list}/members/{hash}", f.getMember)
	f.handle("PATCH /3.0/lists/{list}/members/{hash}", f.patchMember)
	f.handle("PUT /3.0/lists/{list}/members/{hash}", f.putMember)
	f.handle("DELETE /3.0/lists/{list}/members/{hash}", f.archiveMember)
	f.handle("POST /3.0/lists/{list}/members/{hash}/actions/delete-permanent", f.deletePermanent)
	f.handle("POST /3.0/batches", f.startBatch)
	f.handle("GET /3.0/batches/{id}", f.getBatch)
	f.handle("GET "+mcBatchResultsPath+"{file}", f.batchResults)
	return f
}

// URL is the API base URL, ending in /3.0.
func (f *Mailchimp) URL() string { return f.Origin() + "/3.0" }

// SubscriberHash is Mailchimp's member id for an email.
func SubscriberHash(email string) string {
	sum := md5.Sum([]byte(strings.ToLower(email)))
	return hex.EncodeToString(sum[:])
}

func mcProblem(w http.ResponseWriter, status int, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json; charset=utf-8")
	writeJSON(w, status, map[string]any{
		"type":   "https://mailchimp.com/developer/marketing/docs/errors/",
		"title":  title,
		"status": status,
		"detail": detail,
		"instance": fmt.Sprintf("%08x-0000-4000-8000-000000000000",
			time.Now().UnixNano()&0xffffffff),
	})
}

// AddList creates an audience (AddMember does it implicitly).
func (f *Mailchimp) AddList(listID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list(listID, true)
}

func (f *Mailchimp) list(id string, create bool) *mcList {
	l, ok := f.lists[id]
	if !ok && create {
		l = &mcList{name: "List " + id, members: map[string]*MailchimpMember{}, forgotten: map[string]bool{}}
		f.lists[id] = l
	}
	return l
}

// AddMember seeds a member (status defaults to subscribed) and returns its
// subscriber hash.
func (f *Mailchimp) AddMember(listID string, m MailchimpMember) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m.Status == "" {
		m.Status = "subscribed"
	}
	m.MergeFields = cloneMap(m.MergeFields)
	if m.MergeFields == nil {
		m.MergeFields = map[string]string{}
	}
	h := SubscriberHash(m.Email)
	l := f.list(listID, true)
	if m.ContactID == "" {
		m.ContactID = f.nextContactID()
	}
	l.members[h] = &m
	delete(l.forgotten, h)
	return h
}

// Member returns a copy of the member with this email.
func (f *Mailchimp) Member(listID, email string) (MailchimpMember, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.list(listID, false)
	if l == nil {
		return MailchimpMember{}, false
	}
	m, ok := l.members[SubscriberHash(email)]
	if !ok {
		return MailchimpMember{}, false
	}
	out := *m
	out.MergeFields = cloneMap(m.MergeFields)
	return out, true
}

// Forgotten reports whether the email was permanently deleted from the list.
func (f *Mailchimp) Forgotten(listID, email string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.list(listID, false)
	return l != nil && l.forgotten[SubscriberHash(email)]
}

func memberJSON(listID, hash string, m *MailchimpMember) map[string]any {
	return map[string]any{
		"id": hash, "email_address": m.Email, "unique_email_id": hash[:10], "contact_id": m.ContactID,
		"status": m.Status, "merge_fields": m.MergeFields, "list_id": listID,
		"last_changed": time.Now().UTC().Format(time.RFC3339),
	}
}

func mcNotFound(w http.ResponseWriter) {
	mcProblem(w, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.")
}

// member resolves the path's list and hash; the hash slot also takes a raw
// email or a contact_id, as the real API does.
func (f *Mailchimp) member(r *http.Request) (*mcList, string) {
	l := f.list(r.PathValue("list"), false)
	h := r.PathValue("hash")
	if strings.Contains(h, "@") {
		h = SubscriberHash(h)
	}
	if l != nil && l.members[h] == nil {
		for mh, m := range l.members {
			if m.ContactID == h {
				return l, mh
			}
		}
	}
	return l, h
}

// nextContactID hands out an opaque contact id (not derived from the email).
func (f *Mailchimp) nextContactID() string {
	f.contactSeq++
	return fmt.Sprintf("c%031x", f.contactSeq)
}

func (f *Mailchimp) getList(w http.ResponseWriter, r *http.Request) {
	l := f.list(r.PathValue("list"), false)
	if l == nil {
		mcNotFound(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": r.PathValue("list"), "name": l.name})
}

func (f *Mailchimp) getMember(w http.ResponseWriter, r *http.Request) {
	l, h := f.member(r)
	if l == nil || l.members[h] == nil {
		mcNotFound(w)
		return
	}
	writeJSON(w, http.StatusOK, memberJSON(r.PathValue("list"), h, l.members[h]))
}

func mcValidStatus(s string) bool {
	return slices.Contains([]string{"subscribed", "unsubscribed", "cleaned", "pending", "transactional"}, s)
}

type mcMemberBody struct {
	EmailAddress *string        `json:"email_address"`
	Status       *string        `json:"status"`
	StatusIfNew  *string        `json:"status_if_new"`
	MergeFields  map[string]any `json:"merge_fields"`
}

func (f *Mailchimp) readMember(w http.ResponseWriter, r *http.Request) (mcMemberBody, bool) {
	var b mcMemberBody
	if err := readJSON(r, &b); err != nil {
		mcProblem(w, http.StatusBadRequest, "JSON Schema Validation Failed", "The request body is not valid JSON.")
		return b, false
	}
	for _, s := range []*string{b.Status, b.StatusIfNew} {
		if s != nil && !mcValidStatus(*s) {
			mcProblem(w, http.StatusBadRequest, "Invalid Resource", "The resource submitted could not be validated.")
			return b, false
		}
	}
	return b, true
}

func applyMerge(m *MailchimpMember, fields map[string]any) {
	for k, v := range fields {
		m.MergeFields[k] = fmt.Sprint(v)
	}
}

func (f *Mailchimp) patchMember(w http.ResponseWriter, r *http.Request) {
	l, h := f.member(r)
	if l == nil || l.members[h] == nil {
		mcNotFound(w)
		return
	}
	b, ok := f.readMember(w, r)
	if !ok {
		return
	}
	m := l.members[h]
	if b.EmailAddress != nil && SubscriberHash(*b.EmailAddress) != h {
		nh := SubscriberHash(*b.EmailAddress)
		if l.members[nh] != nil {
			mcProblem(w, http.StatusBadRequest, "Member Exists", *b.EmailAddress+" is already a list member.")
			return
		}
		delete(l.members, h)
		h = nh
		l.members[h] = m
		m.Email = *b.EmailAddress
	}
	if b.Status != nil {
		m.Status = *b.Status
	}
	applyMerge(m, b.MergeFields)
	writeJSON(w, http.StatusOK, memberJSON(r.PathValue("list"), h, m))
}

func (f *Mailchimp) putMember(w http.ResponseWriter, r *http.Request) {
	l, h := f.member(r)
	if l == nil {
		mcNotFound(w)
		return
	}
	b, ok := f.readMember(w, r)
	if !ok {
		return
	}
	if b.EmailAddress == nil || SubscriberHash(*b.EmailAddress) != h {
		mcProblem(w, http.StatusBadRequest, "Invalid Resource", "The email address does not match the subscriber hash.")
		return
	}
	if l.forgotten[h] {
		mcProblem(w, http.StatusBadRequest, "Forgotten Email Not Subscribed", *b.EmailAddress+
			" was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list.")
		return
	}
	m := l.members[h]
	if m == nil {
		if b.StatusIfNew == nil && b.Status == nil {
			mcProblem(w, http.StatusBadRequest, "Invalid Resource", "The resource submitted could not be validated.")
			return
		}
		m = &MailchimpMember{Email: *b.EmailAddress, MergeFields: map[string]string{}, ContactID: f.nextContactID()}
		if b.StatusIfNew != nil {
			m.Status = *b.StatusIfNew
		} else {
			m.Status = *b.Status
		}
		l.members[h] = m
	} else if b.Status != nil {
		m.Status = *b.Status
	}
	applyMerge(m, b.MergeFields)
	writeJSON(w, http.StatusOK, memberJSON(r.PathValue("list"), h, m))
}

func (f *Mailchimp) archiveMember(w http.ResponseWriter, r *http.Request) {
	l, h := f.member(r)
	if l == nil || l.members[h] == nil {
		mcNotFound(w)
		return
	}
	l.members[h].Status = "archived"
	w.WriteHeader(http.StatusNoContent)
}

func (f *Mailchimp) deletePermanent(w http.ResponseWriter, r *http.Request) {
	l, h := f.member(r)
	if l == nil || l.members[h] == nil {
		mcNotFound(w)
		return
	}
	delete(l.members, h)
	l.forgotten[h] = true
	w.WriteHeader(http.StatusNoContent)
}
