package domain

import "time"

// Jurisdictions Lethe knows: each has its deadline, extension and receipt
// rules (internal/policy reads their periods from the configuration).
const (
	GDPR    = "gdpr"
	CCPA    = "ccpa"
	Company = "default" // the company's own policy
)

// Jurisdictions lists them.
func Jurisdictions() []string { return []string{GDPR, CCPA, Company} }

// Policy is what a request's jurisdiction and the company's configuration
// promise. It is fixed when the request arrives, so a configuration change
// never moves the deadlines of requests already running.
type Policy struct {
	Due           Period // the law's: GDPR 1 calendar month; CCPA 45 days
	CompanyDue    Period // the company's own promise; the earlier of the two applies
	MaxExtension  Period // GDPR: 2 more months; CCPA: 45 more days
	ConfirmWithin Period // CCPA: receipt confirmed within 10 business days

	CodeTTL             time.Duration // a verification code is valid this long (15 minutes)
	MaxCodeAttempts     int           // wrong tries before the code locks (5)
	ResendInterval      time.Duration // at least this long between two codes (1 minute)
	MaxCodes            int           // codes per request (5)
	VerifyWithin        time.Duration // unverified requests lapse after this (7 days)
	VerifyReminderAfter time.Duration // the person is reminded after this (3 days)

	LinkValidFor         time.Duration // an export's download link (and the bundle) lasts this long (7 days)
	DeactivationGrace    time.Duration // a deactivated account stays restorable this long (30 days)
	DeactivationReminder time.Duration // the person is reminded this long before the end (7 days)

	RequireApproval   bool            // an operator approves before the work starts
	FulfilByHand      bool            // the privacy team does the work and completes the request
	OperatorReminders []time.Duration // remind the privacy team this long before the due date
}

// DueAt is the due date of a request received at t: the law's deadline, or
// the company's own promise when that is earlier.
func (p Policy) DueAt(t time.Time) time.Time {
	due := p.Due.After(t)
	if p.Due.IsZero() {
		due = p.CompanyDue.After(t)
	}
	if !p.CompanyDue.IsZero() {
		if c := p.CompanyDue.After(t); c.Before(due) {
			due = c
		}
	}
	return due
}
