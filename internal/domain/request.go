package domain

// Request types: every privacy request enters through PrivacyRequest.
const (
	TypeAccess        = "access"
	TypePortability   = "portability"
	TypeErasure       = "erasure"
	TypeRectification = "rectification"
	TypeConsent       = "consent"
	TypeDeactivation  = "deactivation"
)

// RequestTypes lists every request type.
func RequestTypes() []string {
	return []string{TypeAccess, TypePortability, TypeErasure, TypeRectification, TypeConsent, TypeDeactivation}
}

// The lifecycle of a request: received → awaiting verification → verified →
// (awaiting approval) → in progress → completed | denied | expired | cancelled.
// A request whose work failed for good waits as needs attention until an
// operator retries what failed (back to in progress) or closes it.
const (
	StatusNeedsAttention       = "needs_attention"
	StatusAwaitingVerification = "awaiting_verification"
	StatusVerified             = "verified"
	StatusAwaitingApproval     = "awaiting_approval"
	StatusDenied               = "denied"
	StatusExpired              = "expired"
	StatusCancelled            = "cancelled"
)

// Closed says whether a status is final. Abandoned is: the API closes such
// a row itself, and no workflow ever reports it.
func Closed(status string) bool {
	switch status {
	case StatusCompleted, StatusDenied, StatusExpired, StatusCancelled, StatusFailed, StatusAbandoned:
		return true
	}
	return false
}

// Request statuses shared by every workflow.
const (
	StatusReceived   = "received"
	StatusInProgress = "in_progress"
	StatusCompleted  = "completed"
	StatusFailed     = "failed"
)

// StatusAbandoned is a request whose submission was claimed but never
// started (its workflow could not be started and the submitter gave up).
const StatusAbandoned = "abandoned"

// RequestStatuses lists every status a request's record can hold, in
// lifecycle order.
func RequestStatuses() []string {
	return []string{StatusReceived, StatusAwaitingVerification, StatusVerified, StatusAwaitingApproval, StatusInProgress,
		StatusNeedsAttention, StatusCompleted, StatusDenied, StatusExpired, StatusCancelled, StatusFailed, StatusAbandoned}
}

// UncountedStatuses are the statuses of requests that do not count towards a
// person's request limits: refused, lapsed unverified, withdrawn, or never
// started. A completed or a failed request counts.
func UncountedStatuses() []string {
	return []string{StatusDenied, StatusExpired, StatusCancelled, StatusAbandoned}
}

// TypeBreach is the request type an incident's workflow is listed under (the
// request-type search attribute), so that operators find incidents beside
// requests. It is not a privacy request: RequestTypes does not list it.
const TypeBreach = "breach"
