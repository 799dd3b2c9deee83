package api

import (
	"net/http"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/lethe-privacy/lethe/internal/apikeys"
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

func (s *Server) declareIncident(w http.ResponseWriter, r *http.Request) {
	c, ok := s.operator(w, r)
	if !ok {
		return
	}
	var in IncidentBody
	if !s.decode(w, r, &in) {
		return
	}
	inc, err := s.Notices.NewIncident(in, s.Map, c.actor(), time.Now())
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "%s", err.Error())
		return
	}
	d, err := StartIncident(r.Context(), s.Temporal, s.TaskQueue, inc)
	if err != nil {
		s.unavailable(w, r, "declare incident", err)
		return
	}
	s.Log.InfoContext(r.Context(), "incident declared", "incident_id", d.ID, "by", c.actor())
	writeJSON(w, http.StatusAccepted, map[string]any{"id": d.ID, "notify_by": d.NotifyBy, "report_by": d.ReportBy,
		"links": map[string]string{"self": "/v1/incidents/" + d.ID}})
}

func (s *Server) incidentID(w http.ResponseWriter, r *http.Request) (string, bool) {
	if _, ok := s.operator(w, r); !ok {
		return "", false
	}
	id := r.PathValue("id")
	if err := CheckIncidentID(id); err != nil {
		writeError(w, http.StatusBadRequest, "%s", err.Error())
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
	src, err := Affected(s.Map, in)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "%s", err.Error())
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
	src, err := Affected(s.Map, in.Audience)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "audience: %s", err.Error())
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
