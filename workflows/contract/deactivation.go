package contract

import "time"

// DeactivationInput deactivates one account for a grace period (P8).
type DeactivationInput struct {
	SubjectRef     string
	Identity       []byte // sealed: the user id and email
	HasEmail       bool
	GracePeriod    time.Duration // 30 days: restorable until then
	ReminderBefore time.Duration // remind this long before the end (7 days)
	RequestedBy    string        // "backend:<key>" or "request:<id>"
}

// Deactivation statuses.
const (
	AccountDeactivated = "deactivated"
	AccountRestored    = "restored"
	AccountErased      = "erased"
	// AccountNeedsAttention: the erasure at the end of the grace period
	// failed for good; it waits for the privacy team to retry it.
	AccountNeedsAttention = "needs_attention"
)

// DeactivationView is the deactivation's state (QueryProgress).
type DeactivationView struct {
	SubjectRef    string     `json:"subject_ref"`
	Status        string     `json:"status"`
	DeactivatedAt time.Time  `json:"deactivated_at"`
	FinalAt       time.Time  `json:"final_at"` // the end of the grace period
	RemindedAt    time.Time  `json:"reminded_at,omitzero"`
	RestoredAt    time.Time  `json:"restored_at,omitzero"`
	ErasedAt      time.Time  `json:"erased_at,omitzero"`
	Outcome       []string   `json:"outcome,omitempty"`
	Attention     *Attention `json:"attention,omitempty"`
}

// RestoreInput restores a deactivated account.
type RestoreInput struct {
	Actor string
}

// AccountStatusInput sets the account's status column (deactivate, restore).
type AccountStatusInput struct {
	SubjectRef string
	Identity   []byte
	Status     string // AccountDeactivated or "active"
}

// AuditInput appends an entry about an account (not a request) to the audit trail.
type AuditInput struct {
	RequestID  string // the privacy request the entry is about, if any
	SubjectRef string
	Actor      string
	Action     string
	Detail     map[string]string
	Key        string // idempotency key
}

// UpdateRestore restores a deactivated account before its grace period ends.
const UpdateRestore = "restore"

// Mail templates of the account lifecycle.
const (
	MailDeactivationNotice   = "deactivation_notice"
	MailDeactivationReminder = "deactivation_reminder"
	MailAccountRestored      = "account_restored"
	MailAccountErased        = "account_erased"
)

// DeactivationWorkflowID is the one deactivation workflow of a person: a
// second deactivation while one runs is the same deactivation.
func DeactivationWorkflowID(subjectRef string) string { return "deactivation-" + subjectRef }
