package contract

import "time"

// Incident is a personal-data breach an operator declared (P11). Its texts
// are the company's, the same for everyone affected: no personal data.
type Incident struct {
	ID             string
	AwareAt        time.Time // when the team became aware: the deadlines run from here
	WhatHappened   string
	DataCategories []string
	Consequences   string
	Measures       string
	WhatYouCanDo   string
	Contact        string
	Records        int // approximate number of records, 0 when unknown

	NotificationRequired bool
	NoNotificationReason string // why not, when not: every breach is recorded
	PublicNotice         bool   // the operator judged individual notice impossible or disproportionate

	Affected     AffectedSource
	NotifyWithin time.Duration // 48 hours from awareness
	ReportWithin time.Duration // 72 hours (GDPR Art. 33)
	EscalateAt   []float64     // fractions of NotifyWithin at which the privacy team is told while notices remain (0.5, 0.8)
	KeepOpen     time.Duration // people found later can be added this long (30 days)
	DeclaredBy   string
}

// AffectedSource says how to find the people: a data-map selector with its
// parameters, or a list of user ids in an S3 object.
type AffectedSource struct {
	Selector  string   `json:"selector,omitempty"`
	Params    []string `json:"params,omitempty"`
	ObjectKey string   `json:"object_key,omitempty"`
}

// NoticeCounts is how far a campaign got.
type NoticeCounts struct {
	Found, Sent, NoEmail, Failed, Pending int
}

// IncidentView is the incident's state (QueryProgress).
type IncidentView struct {
	ID          string       `json:"id"`
	Status      string       `json:"status"`
	AwareAt     time.Time    `json:"aware_at"`
	NotifyBy    time.Time    `json:"notify_by"`
	ReportBy    time.Time    `json:"report_by"`
	Counts      NoticeCounts `json:"counts"`
	Reports     []string     `json:"reports,omitempty"` // S3 locations of the authority report, per phase
	PublicURL   string       `json:"public_notice,omitempty"`
	Escalations []time.Time  `json:"escalations,omitempty"`
	NotifiedAt  time.Time    `json:"notified_at,omitzero"`
}

// Incident statuses.
const (
	IncidentRecorded  = "recorded" // no notification needed; the reason is on record
	IncidentNotifying = "notifying"
	IncidentNotified  = "notified"
	IncidentClosed    = "closed"
)

// Updates of a running incident.
const (
	UpdateAddPeople     = "add_people"
	UpdateCloseIncident = "close"
)

// CollectInput adds people to a campaign from a source.
type CollectInput struct {
	Campaign string
	Source   AffectedSource
}

// NoticeMessage is the rendered notice, identical for everyone.
type NoticeMessage struct {
	Subject, Text, HTML, Template string
}

// SendNoticesInput sends a campaign's pending notices, at most Batches calls.
type SendNoticesInput struct {
	Campaign string
	Message  NoticeMessage
	Batches  int
	First    int // the first batch number of this range: a retry reuses the numbers
}

// SendBatchInput sends one batch of up to 1000 notices.
type SendBatchInput struct {
	Campaign string
	Message  NoticeMessage
	Batch    int
}

// SendBatchResult is one batch's outcome.
type SendBatchResult struct {
	Claimed, Sent, NoEmail int
	Done                   bool
}

// ReportInput writes the authority report (or the record of a breach that
// needs no notification) for one phase.
type ReportInput struct {
	Incident Incident
	Phase    int
	Counts   NoticeCounts
}

// PolicyNotice announces a significant change of the privacy policy (P16).
type PolicyNotice struct {
	ID           string
	Title        string
	Summary      string
	URL          string
	EffectiveAt  time.Time // zero: notice + NoticePeriod
	NoticePeriod time.Duration
	Audience     AffectedSource // e.g. the data map's selector of active accounts
	DeclaredBy   string
}

// PolicyNoticeView is the notice campaign's state (QueryProgress).
type PolicyNoticeView struct {
	ID          string       `json:"id"`
	Status      string       `json:"status"`
	EffectiveAt time.Time    `json:"effective_at"`
	Counts      NoticeCounts `json:"counts"`
}
