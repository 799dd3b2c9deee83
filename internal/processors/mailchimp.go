package processors

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// MailchimpConfig configures a Mailchimp Marketing API v3 connector.
type MailchimpConfig struct {
	// Name defaults to "mailchimp".
	Name string
	// BaseURL defaults to https://<dc>.api.mailchimp.com/3.0, the data
	// centre being the API key's suffix after the dash.
	BaseURL string
	// APIKey is sent as the HTTP Basic password.
	APIKey string
	// ListIDs are the audiences the connector acts on; every call covers
	// each of them (erasure is per audience). At least one.
	ListIDs []string
	// Purposes are the consent purposes these audiences serve; default
	// {"marketing"}. SetSubscribed for any other purpose is not applicable.
	Purposes []string
	// ResubscribeStatus is the status set when a subject subscribes again:
	// "subscribed" (default) or "pending" (double opt-in).
	ResubscribeStatus string
	// HTTPClient defaults to a client with a 60 s timeout.
	HTTPClient *http.Client
}

// Mailchimp erases, exports, rectifies and (un)subscribes list members,
// addressed by subscriber hash (MailchimpSubscriberHash of Subject.Email).
//
// Erasure is POST …/members/{hash}/actions/delete-permanent (not DELETE,
// which only archives); a 404 counts as already gone once the list itself
// is confirmed to exist. Before deleting, it reads the member's contact_id
// and records it as a "member" ref ("<list>/<contact id>"), so that Confirm
// can check the erasure later without the email (the subscriber hash, being
// derived from the email, is never recorded). Unsubscribing PATCHes
// status=unsubscribed (keeping the suppression); subscribing upserts with PUT. A permanently deleted
// address cannot be re-subscribed through the API (400 "Forgotten Email Not
// Subscribed", KindNeedsOperator).
//
// Update fields: email, first_name (FNAME), last_name (LNAME), phone
// (PHONE), and any upper-case merge tag such as "COMPANY".
type Mailchimp struct {
	name        string
	lists       []string
	purposes    []string
	resubscribe string
	c           *httpClient
}

// MailchimpSubscriberHash is Mailchimp's member id: the lower-case hex MD5
// of the lower-cased email address.
func MailchimpSubscriberHash(email string) string {
	sum := md5.Sum([]byte(strings.ToLower(email)))
	return hex.EncodeToString(sum[:])
}

// MailchimpBaseURL derives the API base URL from a key's data-centre suffix
// ("…-us6" gives https://us6.api.mailchimp.com/3.0).
func MailchimpBaseURL(apiKey string) (string, error) {
	i := strings.LastIndexByte(apiKey, '-')
	dc := apiKey[i+1:]
	if i < 0 || dc == "" || strings.ContainsFunc(dc, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	}) {
		return "", fmt.Errorf("API key has no data-centre suffix (like -us6); set the base URL")
	}
	return "https://" + dc + ".api.mailchimp.com/3.0", nil
}

// NewMailchimp checks cfg and returns a Mailchimp connector.
func NewMailchimp(cfg MailchimpConfig) (*Mailchimp, error) {
	if cfg.Name == "" {
		cfg.Name = "mailchimp"
	}
	if cfg.APIKey == "" {
		return nil, fmt.Errorf("mailchimp %q: API key is empty", cfg.Name)
	}
	if cfg.BaseURL == "" {
		u, err := MailchimpBaseURL(cfg.APIKey)
		if err != nil {
			return nil, fmt.Errorf("mailchimp %q: %w", cfg.Name, err)
		}
		cfg.BaseURL = u
	}
	if err := validBaseURL(cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("mailchimp %q: %w", cfg.Name, err)
	}
	if len(cfg.ListIDs) == 0 {
		return nil, fmt.Errorf("mailchimp %q: no list id", cfg.Name)
	}
	for _, l := range cfg.ListIDs {
		if l == "" || strings.ContainsAny(l, "/?#") {
			return nil, fmt.Errorf("mailchimp %q: list id %q is not valid", cfg.Name, l)
		}
	}
	if len(cfg.Purposes) == 0 {
		cfg.Purposes = []string{"marketing"}
	}
	switch cfg.ResubscribeStatus {
	case "":
		cfg.ResubscribeStatus = "subscribed"
	case "subscribed", "pending":
	default:
		return nil, fmt.Errorf("mailchimp %q: resubscribe status %q is not subscribed or pending", cfg.Name, cfg.ResubscribeStatus)
	}
	c := newHTTPClient(cfg.Name, cfg.BaseURL, cfg.HTTPClient)
	key := cfg.APIKey
	c.auth = func(r *http.Request) { r.SetBasicAuth("lethe", key) }
	c.code = mailchimpErrorCode
	c.requestIDHeader = "X-Request-Id"
	return &Mailchimp{
		name: cfg.Name, lists: slices.Clone(cfg.ListIDs), purposes: slices.Clone(cfg.Purposes),
		resubscribe: cfg.ResubscribeStatus, c: c,
	}, nil
}

// Name implements Connector.
func (m *Mailchimp) Name() string { return m.name }

// mailchimpErrorCode returns the problem+json title (never the detail,
// which quotes the email).
func mailchimpErrorCode(body []byte) string {
	var p struct {
		Title string `json:"title"`
	}
	if json.Unmarshal(body, &p) != nil {
		return ""
	}
	return p.Title
}

func (m *Mailchimp) memberPath(list, email string) string {
	return "/lists/" + url.PathEscape(list) + "/members/" + MailchimpSubscriberHash(email)
}

// listGone handles a member 404: it is "no such member" only if the list
// exists; an unknown list is a configuration error an operator must fix.
func (m *Mailchimp) listGone(ctx context.Context, action Action, list string) error {
	r, err := m.c.do(ctx, action, call{method: http.MethodGet, path: "/lists/" + url.PathEscape(list),
		query: url.Values{"fields": {"id"}}})
	if err != nil {
		return err
	}
	switch r.Status {
	case http.StatusOK:
		return nil
	case http.StatusNotFound:
		e := m.c.fail(action, r)
		e.Reason = "audience " + list + " does not exist (check list_id)"
		return e
	default:
		return m.c.fail(action, r)
	}
}

func (m *Mailchimp) needEmail(action Action, subj Subject) error {
	if subj.Email == "" {
		return m.c.local(action, "subject has no email")
	}
	return nil
}

// Erase implements Eraser: delete-permanent in every configured audience.
func (m *Mailchimp) Erase(ctx context.Context, subj Subject) (Outcome, error) {
	if err := m.needEmail(ActionErase, subj); err != nil {
		return Outcome{}, err
	}
	out := Outcome{Processor: m.name, Action: ActionErase, Status: StatusAlreadyGone}
	for _, list := range m.lists {
		contact, err := m.contactID(ctx, list, subj.Email)
		if err != nil {
			return Outcome{}, err
		}
		r, err := m.c.do(ctx, ActionErase, call{method: http.MethodPost,
			path: m.memberPath(list, subj.Email) + "/actions/delete-permanent"})
		if err != nil {
			return Outcome{}, err
		}
		switch r.Status {
		case http.StatusNoContent, http.StatusOK:
			out.Status = StatusDone
			if contact != "" {
				// Evidence a later Confirm can check without the email.
				out.addRef("member", list+"/"+contact)
			}
		case http.StatusNotFound:
			if err := m.listGone(ctx, ActionErase, list); err != nil {
				return Outcome{}, err
			}
		default:
			return Outcome{}, m.c.fail(ActionErase, r)
		}
		out.HTTPStatus = r.Status
		out.addRef("list", list)
		out.addRef("request_id", m.c.requestID(r))
	}
	return out, nil
}

// contactID reads the member's contact_id (Mailchimp's opaque id for the
// contact, unlike the subscriber hash, which is derived from the email), or
// "" when the audience has no such member.
func (m *Mailchimp) contactID(ctx context.Context, list, email string) (string, error) {
	r, err := m.c.do(ctx, ActionErase, call{method: http.MethodGet, path: m.memberPath(list, email),
		query: url.Values{"fields": {"contact_id"}}})
	if err != nil {
		return "", err
	}
	switch r.Status {
	case http.StatusOK:
	case http.StatusNotFound:
		return "", nil // the delete that follows decides what the 404 means
	default:
		return "", m.c.fail(ActionErase, r)
	}
	var mem struct {
		ContactID string `json:"contact_id"`
	}
	if json.Unmarshal(r.Body, &mem) != nil {
		return "", m.c.badBody(ActionErase, r)
	}
	if strings.ContainsAny(mem.ContactID, "/?#@") {
		return "", nil // not an id Lethe can use in a path later; keep no evidence
	}
	return mem.ContactID, nil
}

// Export implements Exporter: the member record from every audience.
func (m *Mailchimp) Export(ctx context.Context, subj Subject, w ExportWriter) (Outcome, error) {
	if err := m.needEmail(ActionExport, subj); err != nil {
		return Outcome{}, err
	}
	out := Outcome{Processor: m.name, Action: ActionExport, Status: StatusNotFound}
	for _, list := range m.lists {
		r, err := m.c.do(ctx, ActionExport, call{method: http.MethodGet, path: m.memberPath(list, subj.Email)})
		if err != nil {
			return Outcome{}, err
		}
		out.HTTPStatus = r.Status
		switch r.Status {
		case http.StatusOK:
		case http.StatusNotFound:
			if err := m.listGone(ctx, ActionExport, list); err != nil {
				return Outcome{}, err
			}
			continue
		default:
			return Outcome{}, m.c.fail(ActionExport, r)
		}
		if !json.Valid(r.Body) {
			return Outcome{}, m.c.badBody(ActionExport, r)
		}
		if err := writeRecord(ctx, w, m.name, Record{Kind: "mailchimp.member", ID: list, Data: r.Body}); err != nil {
			return Outcome{}, err
		}
		out.Records++
		out.Status = StatusDone
		out.addRef("list", list)
	}
	return out, nil
}

// mailchimpPatch maps Lethe field names to a member PATCH body.
func mailchimpPatch(fields map[string]string) (map[string]any, string) {
	tags := map[string]string{"first_name": "FNAME", "last_name": "LNAME", "phone": "PHONE"}
	body := map[string]any{}
	merge := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		v := fields[k]
		switch {
		case k == "email":
			body["email_address"] = v
		case tags[k] != "":
			merge[tags[k]] = v
		case isMergeTag(k):
			merge[k] = v
		default:
			return nil, k
		}
	}
	if len(merge) > 0 {
		body["merge_fields"] = merge
	}
	return body, ""
}

func isMergeTag(k string) bool {
	return k != "" && !strings.ContainsFunc(k, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_')
	})
}

// Update implements Rectifier: PATCH the member in every audience.
func (m *Mailchimp) Update(ctx context.Context, subj Subject, fields map[string]string) (Outcome, error) {
	if err := m.needEmail(ActionUpdate, subj); err != nil {
		return Outcome{}, err
	}
	body, bad := mailchimpPatch(fields)
	if bad != "" {
		return Outcome{}, m.c.local(ActionUpdate, "field %q is not supported by Mailchimp", bad)
	}
	if len(body) == 0 {
		return Outcome{}, m.c.local(ActionUpdate, "no fields to update")
	}
	return m.patchAll(ctx, ActionUpdate, subj, body)
}

func (m *Mailchimp) patchAll(ctx context.Context, action Action, subj Subject, body any) (Outcome, error) {
	out := Outcome{Processor: m.name, Action: action, Status: StatusNotFound}
	for _, list := range m.lists {
		r, err := m.c.doJSON(ctx, action, http.MethodPatch, m.memberPath(list, subj.Email), body)
		if err != nil {
			return Outcome{}, err
		}
		out.HTTPStatus = r.Status
		switch r.Status {
		case http.StatusOK:
			out.Status = StatusDone
			out.addRef("list", list)
			out.addRef("request_id", m.c.requestID(r))
		case http.StatusNotFound:
			if err := m.listGone(ctx, action, list); err != nil {
				return Outcome{}, err
			}
		default:
			return Outcome{}, m.c.fail(action, r)
		}
	}
	return out, nil
}

// SetSubscribed implements ConsentSetter. Unsubscribing a non-member is
// StatusNotFound; subscribing upserts the member.
func (m *Mailchimp) SetSubscribed(ctx context.Context, subj Subject, purpose string, subscribed bool) (Outcome, error) {
	if !slices.Contains(m.purposes, purpose) {
		return Outcome{Processor: m.name, Action: ActionConsent, Status: StatusNotApplicable,
			Note: "purpose " + purpose + " is not configured for this connector"}, nil
	}
	if err := m.needEmail(ActionConsent, subj); err != nil {
		return Outcome{}, err
	}
	if !subscribed {
		return m.patchAll(ctx, ActionConsent, subj, map[string]string{"status": "unsubscribed"})
	}
	out := Outcome{Processor: m.name, Action: ActionConsent, Status: StatusDone}
	body := map[string]string{"email_address": subj.Email, "status_if_new": m.resubscribe, "status": m.resubscribe}
	for _, list := range m.lists {
		r, err := m.c.doJSON(ctx, ActionConsent, http.MethodPut, m.memberPath(list, subj.Email), body)
		if err != nil {
			return Outcome{}, err
		}
		if r.Status != http.StatusOK {
			return Outcome{}, m.c.fail(ActionConsent, r)
		}
		out.HTTPStatus = r.Status
		out.addRef("list", list)
		out.addRef("request_id", m.c.requestID(r))
	}
	return out, nil
}
