package api

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/lethe-privacy/lethe/internal/apikeys"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// NoticePolicy is what the incident and policy-notice routes promise.
type NoticePolicy struct {
	NotifyWithin time.Duration // 48 hours
	ReportWithin time.Duration // 72 hours
	EscalateAt   []float64     // 0.5, 0.8
	KeepOpen     time.Duration // 30 days
	PolicyNotice time.Duration // 7 days between a policy notice and the change
	ExportBucket string        // where lists of affected user ids are uploaded
}

// IncidentBody declares a breach.
type IncidentBody struct {
	AwareAt              time.Time    `json:"aware_at"`
	WhatHappened         string       `json:"what_happened"`
	DataCategories       []string     `json:"data_categories"`
	Consequences         string       `json:"consequences"`
	Measures             string       `json:"measures"`
	WhatYouCanDo         string       `json:"what_you_can_do"`
	Contact              string       `json:"contact"`
	Records              int          `json:"records,omitempty"`
	NotificationRequired *bool        `json:"notification_required,omitempty"` // default true
	NoNotificationReason string       `json:"no_notification_reason,omitempty"`
	PublicNotice         bool         `json:"public_notice,omitempty"`
	Affected             AffectedBody `json:"affected"`
}

// AffectedBody names the affected people: a data-map selector with its
// parameters by name, or an S3 object (in the export bucket) of user ids, one a line.
type AffectedBody struct {
	Selector  string            `json:"selector,omitempty"`
	Params    map[string]string `json:"params,omitempty"`
	ObjectKey string            `json:"object_key,omitempty"`
}

// PolicyNoticeBody announces a policy change to an audience.
type PolicyNoticeBody struct {
	Title       string       `json:"title"`
	Summary     string       `json:"summary"`
	URL         string       `json:"url"`
	EffectiveAt time.Time    `json:"effective_at,omitzero"`
	Audience    AffectedBody `json:"audience"`
}

var (
	incidentIDRe = regexp.MustCompile(`^(inc|pn)_[a-z2-7]{16}$`)
	objectKeyRe  = regexp.MustCompile(`^[A-Za-z0-9!_.*'()/-]{1,512}$`)
)

func newID(prefix string) string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return prefix + "_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

func (s *Server) operator(w http.ResponseWriter, r *http.Request) (caller, bool) {
	c, ok := s.caller(w, r)
	if !ok {
		return c, false
	}
	if c.role != apikeys.RoleOperator {
		writeError(w, http.StatusForbidden, "this route needs an operator key")
		return c, false
	}
	return c, true
}

// affected checks a source against the data map.
func (s *Server) affected(b AffectedBody) (contract.AffectedSource, string) {
	switch {
	case (b.Selector == "") == (b.ObjectKey == ""):
		return contract.AffectedSource{}, "give affected.selector (with params) or affected.object_key"
	case b.ObjectKey != "":
		if !objectKeyRe.MatchString(b.ObjectKey) || strings.Contains(b.ObjectKey, "..") {
			return contract.AffectedSource{}, "object_key: not a valid object key"
		}
		return contract.AffectedSource{ObjectKey: b.ObjectKey}, ""
	}
	if s.Map == nil {
		return contract.AffectedSource{}, "selector: this API has no data map (LETHE_DATA_MAP)"
	}
	sel, ok := s.Map.Selector(b.Selector)
	if !ok {
		return contract.AffectedSource{}, "selector: not a selector of the data map"
	}
	params := make([]string, len(sel.Params))
	for i, name := range sel.Params {
		v, ok := b.Params[name]
		if !ok {
			return contract.AffectedSource{}, fmt.Sprintf("params: %s is required by selector %s", name, sel.Name)
		}
		params[i] = v
	}
	if len(b.Params) != len(sel.Params) {
		return contract.AffectedSource{}, "params: only the selector's own parameters: " + strings.Join(sel.Params, ", ")
	}
	return contract.AffectedSource{Selector: sel.Name, Params: params}, ""
}

func (s *Server) declareIncident(w http.ResponseWriter, r *http.Request) {
	c, ok := s.operator(w, r)
	if !ok {
		return
	}
	var in IncidentBody
	if !s.decode(w, r, &in) {
		return
	}
	now := time.Now().UTC()
	notify := in.NotificationRequired == nil || *in.NotificationRequired
	problem := ""
	switch {
	case in.AwareAt.IsZero() || in.AwareAt.After(now.Add(time.Minute)):
		problem = "aware_at: when the team became aware, not in the future"
	case in.WhatHappened == "" || in.Measures == "" || in.Contact == "" || len(in.DataCategories) == 0:
		problem = "what_happened, data_categories, measures and contact are required"
	case !notify && in.NoNotificationReason == "":
		problem = "no_notification_reason: every breach is recorded; say why people are not told"
	}
	var src contract.AffectedSource
	if problem == "" && notify {
		src, problem = s.affected(in.Affected)
	}
	if problem != "" {
		writeError(w, http.StatusUnprocessableEntity, "%s", problem)
		return
	}
	id := newID("inc")
	inc := contract.Incident{
		ID: id, AwareAt: in.AwareAt.UTC(), WhatHappened: in.WhatHappened, DataCategories: in.DataCategories,
		Consequences: in.Consequences, Measures: in.Measures, WhatYouCanDo: in.WhatYouCanDo, Contact: in.Contact, Records: in.Records,
		NotificationRequired: notify, NoNotificationReason: in.NoNotificationReason, PublicNotice: in.PublicNotice, Affected: src,
		NotifyWithin: s.Notices.NotifyWithin, ReportWithin: s.Notices.ReportWithin, EscalateAt: s.Notices.EscalateAt, KeepOpen: s.Notices.KeepOpen,
		DeclaredBy: c.actor(),
	}
	_, err := s.Temporal.ExecuteWorkflow(r.Context(), client.StartWorkflowOptions{ID: id, TaskQueue: s.TaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(contract.RequestTypeKey.ValueSet(domain.TypeBreach), contract.StatusKey.ValueSet(contract.IncidentNotifying),
			contract.DueAtKey.ValueSet(inc.AwareAt.Add(inc.NotifyWithin)))}, contract.WorkflowBreach, inc)
	if err != nil {
		s.unavailable(w, r, "declare incident", err)
		return
	}
	s.Log.InfoContext(r.Context(), "incident declared", "incident_id", id, "by", c.actor())
	writeJSON(w, http.StatusAccepted, map[string]any{"id": id, "notify_by": inc.AwareAt.Add(inc.NotifyWithin), "report_by": inc.AwareAt.Add(inc.ReportWithin),
		"links": map[string]string{"self": "/v1/incidents/" + id}})
}

func (s *Server) incidentID(w http.ResponseWriter, r *http.Request) (string, bool) {
	if _, ok := s.operator(w, r); !ok {
		return "", false
	}
	id := r.PathValue("id")
	if !incidentIDRe.MatchString(id) {
		writeError(w, http.StatusBadRequest, "id: not an incident or notice id")
		return "", false
	}
	return id, true
}

func (s *Server) getIncident(w http.ResponseWriter, r *http.Request) {
	id, ok := s.incidentID(w, r)
	if !ok {
		return
	}
	var v any
	if s.progress(w, r, id, "no incident or notice with this id", &v) {
		writeJSON(w, http.StatusOK, v)
	}
}

func (s *Server) addPeople(w http.ResponseWriter, r *http.Request) {
	id, ok := s.incidentID(w, r)
	if !ok {
		return
	}
	var in AffectedBody
	if !s.decode(w, r, &in) {
		return
	}
	src, problem := s.affected(in)
	if problem != "" {
		writeError(w, http.StatusUnprocessableEntity, "%s", problem)
		return
	}
	var v contract.IncidentView
	if s.update(w, r, id, contract.UpdateAddPeople, src, &v) {
		writeJSON(w, http.StatusOK, v)
	}
}

func (s *Server) closeIncident(w http.ResponseWriter, r *http.Request) {
	id, ok := s.incidentID(w, r)
	if !ok {
		return
	}
	var v contract.IncidentView
	if s.update(w, r, id, contract.UpdateCloseIncident, nil, &v) {
		writeJSON(w, http.StatusOK, v)
	}
}

func (s *Server) policyNotice(w http.ResponseWriter, r *http.Request) {
	c, ok := s.operator(w, r)
	if !ok {
		return
	}
	var in PolicyNoticeBody
	if !s.decode(w, r, &in) {
		return
	}
	if in.Title == "" || in.Summary == "" || !strings.HasPrefix(in.URL, "http") {
		writeError(w, http.StatusUnprocessableEntity, "title, summary and url (http…) are required")
		return
	}
	src, problem := s.affected(in.Audience)
	if problem != "" {
		writeError(w, http.StatusUnprocessableEntity, "audience: %s", problem)
		return
	}
	id := newID("pn")
	p := contract.PolicyNotice{ID: id, Title: in.Title, Summary: in.Summary, URL: in.URL, EffectiveAt: in.EffectiveAt.UTC(),
		NoticePeriod: s.Notices.PolicyNotice, Audience: src, DeclaredBy: c.actor()}
	if in.EffectiveAt.IsZero() {
		p.EffectiveAt = time.Time{}
	}
	if _, err := s.Temporal.ExecuteWorkflow(r.Context(), client.StartWorkflowOptions{ID: id, TaskQueue: s.TaskQueue}, contract.WorkflowPolicyNotice, p); err != nil {
		s.unavailable(w, r, "start policy notice", err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"id": id, "links": map[string]string{"self": "/v1/incidents/" + id}})
}
