package processors

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// SendGridDefaultBaseURL is SendGrid's global API host (EU subusers use
// https://api.eu.sendgrid.com).
const SendGridDefaultBaseURL = "https://api.sendgrid.com"

// SendGridConfig configures a SendGrid Marketing Contacts connector.
type SendGridConfig struct {
	// Name defaults to "sendgrid".
	Name string
	// BaseURL defaults to SendGridDefaultBaseURL.
	BaseURL string
	// APIKey is sent as a bearer token.
	APIKey string
	// OnBehalfOf, when set, is sent as On-Behalf-Of (a subuser).
	OnBehalfOf string
	// GroupIDs maps a consent purpose to the unsubscribe (ASM) group that
	// carries it, e.g. {"marketing": 123}.
	GroupIDs map[string]int
	// GlobalPurposes are purposes handled with the global suppression list
	// (all mail but transactional), e.g. {"all_email"}.
	GlobalPurposes []string
	// HTTPClient defaults to a client with a 60 s timeout.
	HTTPClient *http.Client
}

// SendGrid erases, exports and rectifies Marketing contacts and manages
// unsubscribe-group suppressions.
//
// Contacts are found with POST /v3/marketing/contacts/search/emails (or
// taken from Subject.IDs[IDSendGridContact]). Erasure is DELETE
// /v3/marketing/contacts?ids=…, which SendGrid runs asynchronously: the
// outcome is StatusPending with the job id, and a repeat after the job ran
// finds nothing (StatusAlreadyGone). Update upserts by the current email
// (PUT /v3/marketing/contacts, also asynchronous); changing the email itself
// needs an operator, since SendGrid keys contacts by email. Consent adds or
// removes the address in the purpose's suppression group.
//
// Update fields: first_name, last_name, phone (phone_number), address_line1,
// address_line2, city, state, postal_code, country, and "custom.<field id>".
type SendGrid struct {
	name   string
	groups map[string]int
	global []string
	c      *httpClient
}

// NewSendGrid checks cfg and returns a SendGrid connector.
func NewSendGrid(cfg SendGridConfig) (*SendGrid, error) {
	if cfg.Name == "" {
		cfg.Name = "sendgrid"
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = SendGridDefaultBaseURL
	}
	if err := validBaseURL(cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("sendgrid %q: %w", cfg.Name, err)
	}
	if cfg.APIKey == "" {
		return nil, fmt.Errorf("sendgrid %q: API key is empty", cfg.Name)
	}
	for p, id := range cfg.GroupIDs {
		if p == "" || id <= 0 {
			return nil, fmt.Errorf("sendgrid %q: group %q=%d is not a purpose with a positive group id", cfg.Name, p, id)
		}
		if slices.Contains(cfg.GlobalPurposes, p) {
			return nil, fmt.Errorf("sendgrid %q: purpose %q is both a group and global", cfg.Name, p)
		}
	}
	c := newHTTPClient(cfg.Name, cfg.BaseURL, cfg.HTTPClient)
	key := cfg.APIKey
	c.auth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) }
	if cfg.OnBehalfOf != "" {
		c.header.Set("On-Behalf-Of", cfg.OnBehalfOf)
	}
	c.code = sendGridErrorCode
	return &SendGrid{name: cfg.Name, groups: maps.Clone(cfg.GroupIDs), global: slices.Clone(cfg.GlobalPurposes), c: c}, nil
}

// Name implements Connector.
func (s *SendGrid) Name() string { return s.name }

// sendGridErrorCode returns the "field" names of {"errors":[…]} (messages
// may quote the address, so they are left out) or "too many requests".
func sendGridErrorCode(body []byte) string {
	var e struct {
		Errors []struct {
			Field   *string `json:"field"`
			Message string  `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	var parts []string
	for _, x := range e.Errors {
		switch {
		case x.Field != nil && *x.Field != "":
			parts = append(parts, "field="+*x.Field)
		case x.Message == "too many requests" || x.Message == "authorization required":
			parts = append(parts, x.Message)
		}
	}
	return strings.Join(parts, " ")
}

// sendGridContact is a contact from a search.
type sendGridContact struct {
	ID    string `json:"id"`
	Email string `json:"email"`
}

// findContacts resolves the subject to contacts. status is the search's
// HTTP status (0 when the contact id was known).
func (s *SendGrid) findContacts(ctx context.Context, action Action, subj Subject) ([]sendGridContact, int, error) {
	if id := subj.ID(IDSendGridContact); id != "" {
		return []sendGridContact{{ID: id}}, 0, nil
	}
	if subj.Email == "" {
		return nil, 0, s.c.local(action, "subject has neither %s nor email", IDSendGridContact)
	}
	r, err := s.c.doJSON(ctx, action, http.MethodPost, "/v3/marketing/contacts/search/emails",
		map[string][]string{"emails": {subj.Email}})
	if err != nil {
		return nil, 0, err
	}
	switch r.Status {
	case http.StatusOK:
	case http.StatusNotFound:
		// "No contacts found": SendGrid answers with its error shape; a
		// body that is not JSON is someone else's 404 (wrong base URL).
		if !json.Valid(r.Body) || !bytes.Contains(r.Body, []byte(`"errors"`)) {
			return nil, 0, s.c.fail(action, r)
		}
		return nil, r.Status, nil
	default:
		return nil, 0, s.c.fail(action, r)
	}
	var res struct {
		Result map[string]struct {
			Contact *sendGridContact `json:"contact"`
		} `json:"result"`
	}
	if err := json.Unmarshal(r.Body, &res); err != nil || res.Result == nil {
		return nil, 0, s.c.badBody(action, r)
	}
	var out []sendGridContact
	for _, k := range slices.Sorted(maps.Keys(res.Result)) {
		if c := res.Result[k].Contact; c != nil && c.ID != "" &&
			!slices.ContainsFunc(out, func(x sendGridContact) bool { return x.ID == c.ID }) {
			out = append(out, *c)
		}
	}
	return out, r.Status, nil
}

// jobID reads {"job_id": …}; the spec types it loosely, so any JSON value
// is kept as text.
func jobID(body []byte) string {
	var j struct {
		JobID json.RawMessage `json:"job_id"`
	}
	if json.Unmarshal(body, &j) != nil || len(j.JobID) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(j.JobID, &s) == nil {
		return s
	}
	return string(j.JobID)
}

// Erase implements Eraser: an asynchronous contact deletion.
func (s *SendGrid) Erase(ctx context.Context, subj Subject) (Outcome, error) {
	out := Outcome{Processor: s.name, Action: ActionErase, Status: StatusAlreadyGone}
	contacts, status, err := s.findContacts(ctx, ActionErase, subj)
	if err != nil {
		return Outcome{}, err
	}
	out.HTTPStatus = status
	if len(contacts) == 0 {
		out.Note = "no contact has this email"
		return out, nil
	}
	ids := make([]string, len(contacts))
	for i, c := range contacts {
		ids[i] = c.ID
	}
	r, err := s.c.do(ctx, ActionErase, call{method: http.MethodDelete, path: "/v3/marketing/contacts",
		query: url.Values{"ids": {strings.Join(ids, ",")}}})
	if err != nil {
		return Outcome{}, err
	}
	out.HTTPStatus = r.Status
	switch r.Status {
	case http.StatusAccepted, http.StatusOK:
		out.Status = StatusPending
		out.JobID = scrub(jobID(r.Body))
		out.Note = "SendGrid deletes contacts asynchronously; repeat the erasure to confirm"
	case http.StatusNotFound:
		// Only possible with a known contact id that is already deleted.
	default:
		return Outcome{}, s.c.fail(ActionErase, r)
	}
	for _, id := range ids {
		out.addRef("contact", id)
	}
	return out, nil
}

// Export implements Exporter: GET /v3/marketing/contacts/{id} per contact.
func (s *SendGrid) Export(ctx context.Context, subj Subject, w ExportWriter) (Outcome, error) {
	out := Outcome{Processor: s.name, Action: ActionExport, Status: StatusNotFound}
	contacts, status, err := s.findContacts(ctx, ActionExport, subj)
	if err != nil {
		return Outcome{}, err
	}
	out.HTTPStatus = status
	for _, c := range contacts {
		r, err := s.c.do(ctx, ActionExport, call{method: http.MethodGet,
			path: "/v3/marketing/contacts/" + url.PathEscape(c.ID)})
		if err != nil {
			return Outcome{}, err
		}
		out.HTTPStatus = r.Status
		switch {
		case r.Status == http.StatusNotFound:
			continue
		case r.Status != http.StatusOK:
			return Outcome{}, s.c.fail(ActionExport, r)
		case !json.Valid(r.Body):
			return Outcome{}, s.c.badBody(ActionExport, r)
		}
		if err := writeRecord(ctx, w, s.name, Record{Kind: "sendgrid.contact", ID: c.ID, Data: r.Body}); err != nil {
			return Outcome{}, err
		}
		out.Records++
		out.Status = StatusDone
		out.addRef("contact", c.ID)
	}
	return out, nil
}

// sendGridFields maps Lethe field names to contact fields.
func sendGridFields(fields map[string]string) (map[string]any, string) {
	direct := map[string]string{
		"first_name": "first_name", "last_name": "last_name", "phone": "phone_number",
		"address_line1": "address_line_1", "address_line2": "address_line_2", "city": "city",
		"state": "state_province_region", "postal_code": "postal_code", "country": "country",
	}
	out := map[string]any{}
	custom := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		switch {
		case direct[k] != "":
			out[direct[k]] = fields[k]
		case strings.HasPrefix(k, "custom.") && len(k) > len("custom."):
			custom[strings.TrimPrefix(k, "custom.")] = fields[k]
		default:
			return nil, k
		}
	}
	if len(custom) > 0 {
		out["custom_fields"] = custom
	}
	return out, ""
}

// Update implements Rectifier: an asynchronous upsert of the existing
// contact, matched by its current email.
func (s *SendGrid) Update(ctx context.Context, subj Subject, fields map[string]string) (Outcome, error) {
	if _, ok := fields["email"]; ok {
		return Outcome{}, s.c.local(ActionUpdate,
			"SendGrid keys contacts by email: changing it means adding a new contact and deleting the old one, an operator task")
	}
	contact, bad := sendGridFields(fields)
	if bad != "" {
		return Outcome{}, s.c.local(ActionUpdate, "field %q is not supported by SendGrid", bad)
	}
	if len(contact) == 0 {
		return Outcome{}, s.c.local(ActionUpdate, "no fields to update")
	}
	if subj.Email == "" {
		return Outcome{}, s.c.local(ActionUpdate, "subject has no email")
	}
	found, status, err := s.findContacts(ctx, ActionUpdate, Subject{Email: subj.Email})
	if err != nil {
		return Outcome{}, err
	}
	if len(found) == 0 {
		// Never create a contact while rectifying.
		return Outcome{Processor: s.name, Action: ActionUpdate, Status: StatusNotFound, HTTPStatus: status}, nil
	}
	out := Outcome{Processor: s.name, Action: ActionUpdate}
	var batch []map[string]any
	for _, c := range found {
		m := maps.Clone(contact)
		m["email"] = c.Email
		if c.Email == "" {
			m["email"] = strings.ToLower(subj.Email)
		}
		batch = append(batch, m)
		out.addRef("contact", c.ID)
	}
	r, err := s.c.doJSON(ctx, ActionUpdate, http.MethodPut, "/v3/marketing/contacts", map[string]any{"contacts": batch})
	if err != nil {
		return Outcome{}, err
	}
	out.HTTPStatus = r.Status
	if r.Status != http.StatusAccepted && r.Status != http.StatusOK {
		return Outcome{}, s.c.fail(ActionUpdate, r)
	}
	out.Status = StatusPending
	out.JobID = scrub(jobID(r.Body))
	out.Note = "SendGrid applies contact updates asynchronously"
	return out, nil
}

// SetSubscribed implements ConsentSetter with unsubscribe-group (or
// global) suppressions. Removing a suppression that is not there is done.
func (s *SendGrid) SetSubscribed(ctx context.Context, subj Subject, purpose string, subscribed bool) (Outcome, error) {
	group, isGroup := s.groups[purpose]
	if !isGroup && !slices.Contains(s.global, purpose) {
		return Outcome{Processor: s.name, Action: ActionConsent, Status: StatusNotApplicable,
			Note: "purpose " + purpose + " has no suppression group"}, nil
	}
	if subj.Email == "" {
		return Outcome{}, s.c.local(ActionConsent, "subject has no email")
	}
	base := "/v3/asm/suppressions/global"
	if isGroup {
		base = "/v3/asm/groups/" + strconv.Itoa(group) + "/suppressions"
	}
	out := Outcome{Processor: s.name, Action: ActionConsent, Status: StatusDone}
	if isGroup {
		out.addRef("group", strconv.Itoa(group))
	} else {
		out.addRef("suppression", "global")
	}
	var (
		r   *response
		err error
	)
	if subscribed {
		r, err = s.c.do(ctx, ActionConsent, call{method: http.MethodDelete, path: base + "/" + url.PathEscape(subj.Email)})
	} else {
		r, err = s.c.doJSON(ctx, ActionConsent, http.MethodPost, base,
			map[string][]string{"recipient_emails": {subj.Email}})
	}
	if err != nil {
		return Outcome{}, err
	}
	out.HTTPStatus = r.Status
	switch {
	case r.Status/100 == 2:
	case subscribed && r.Status == http.StatusNotFound && json.Valid(r.Body):
		// Not suppressed: already subscribed.
	default:
		return Outcome{}, s.c.fail(ActionConsent, r)
	}
	return out, nil
}
