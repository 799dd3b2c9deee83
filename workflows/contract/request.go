package contract

import (
	"time"

	"github.com/lethe-privacy/lethe/internal/domain"
)

// RequestInput starts a request. Identity is the person's email and user id,
// sealed with their own data key (see internal/person): destroying that
// key makes every copy unreadable, this history included.
type RequestInput struct {
	RequestID    string
	Type         string
	SubjectRef   string
	Jurisdiction string
	Identity     []byte
	HasEmail     bool   // Lethe can write to the person
	HasUserID    bool   // the company's user id is known
	PreVerified  bool   // submitted by the company's authenticated backend
	SubmittedBy  string // "subject" or "backend:<key id>"
	PushTo       string // portability: the third party's HTTPS endpoint the person named
	// Expedited: an operator's erasure of a child's data (P15), with its own
	// short deadline in Policy and short operator-task deadlines.
	Expedited bool
	Policy    domain.Policy
}

// Transition is one step of a request's life, as the query shows it.
type Transition struct {
	At     time.Time `json:"at"`
	Status string    `json:"status"`
	Actor  string    `json:"actor"`
}

// Extension records one extension of the deadline.
type Extension struct {
	At     time.Time     `json:"at"`
	By     domain.Period `json:"by"`
	Reason string        `json:"reason"`
	Actor  string        `json:"actor"`
}

// VerificationView is the state of identity verification (never the code).
type VerificationView struct {
	CodesSent     int       `json:"codes_sent"`
	CodeExpiresAt time.Time `json:"code_expires_at,omitzero"`
	TriesLeft     int       `json:"tries_left"`
	Locked        bool      `json:"locked"`
	LapsesAt      time.Time `json:"lapses_at"`
	RemindedAt    time.Time `json:"reminded_at,omitzero"`
}

// RequestView is a request's state, readable at any moment with QueryProgress.
// It carries no personal data.
type RequestView struct {
	RequestID     string            `json:"id"`
	Type          string            `json:"type"`
	Jurisdiction  string            `json:"jurisdiction"`
	SubjectRef    string            `json:"subject_ref"`
	Status        string            `json:"status"`
	ReceivedAt    time.Time         `json:"received_at"`
	DueAt         time.Time         `json:"due_at"`
	OriginalDueAt time.Time         `json:"original_due_at"`
	ConfirmBy     time.Time         `json:"receipt_confirm_by,omitzero"`
	ConfirmedAt   time.Time         `json:"receipt_confirmed_at,omitzero"`
	Verification  *VerificationView `json:"verification,omitempty"`
	Extensions    []Extension       `json:"extensions,omitempty"`
	Reminded      []time.Time       `json:"operator_reminders_sent,omitempty"`
	EscalatedAt   time.Time         `json:"escalated_at,omitzero"`
	Reason        string            `json:"reason,omitempty"` // why denied or cancelled
	Attention     *Attention        `json:"attention,omitempty"`
	Outcome       []string          `json:"outcome,omitempty"`
	Systems       []SystemProgress  `json:"systems,omitempty"`
	History       []Transition      `json:"history"`
}

// Updates a request answers synchronously; each has a validator, so an
// impossible action is refused without touching the history.
const (
	UpdateVerify     = "verify"
	UpdateResendCode = "resend_code"
	UpdateApprove    = "approve"
	UpdateDeny       = "deny"
	UpdateExtend     = "extend"
	UpdateCancel     = "cancel"
	UpdateComplete   = "complete"
	// UpdateRetry runs again what failed of a request that needs attention.
	UpdateRetry = "retry"
)

// Attention is why a request waits for the privacy team (needs_attention):
// what failed, without personal data, and how often the work was tried.
type Attention struct {
	Since    time.Time `json:"since"`
	Why      string    `json:"why"`    // the failure's type, e.g. ErasureIncomplete
	Failed   string    `json:"failed"` // what failed, e.g. "erasure failed in postgres application database"
	Attempts int       `json:"attempts"`
}

// Reasons an update is refused (the application error's type).
const (
	RefusedState       = "InvalidState"
	RefusedExpired     = "CodeExpired"
	RefusedLocked      = "CodeLocked"
	RefusedRateLimited = "RateLimited"
	RefusedInput       = "BadInput"
)

// VerifyInput carries the keyed hash of the code the person typed (the API
// hashes it; the plain code never reaches Temporal).
type VerifyInput struct {
	CodeHash string
}

// VerifyResult answers a verification attempt.
type VerifyResult struct {
	Accepted  bool `json:"accepted"`
	TriesLeft int  `json:"tries_left"`
	Locked    bool `json:"locked"`
}

// OperatorAction is an operator's approve, deny, extend, cancel or complete.
type OperatorAction struct {
	Actor  string        // "operator:<key id>"
	Reason string        // required to deny, extend and cancel
	By     domain.Period // extend: how much longer
	Lines  []string      // complete: what was done (no personal data)
}

// IssueCodeInput asks for a fresh verification code to be mailed.
type IssueCodeInput struct {
	RequestID   string
	RequestType string
	SubjectRef  string
	Identity    []byte
	Seq         int
	ValidFor    time.Duration
}

// IssueCodeResult is the keyed hash of the code that was mailed.
type IssueCodeResult struct {
	CodeHash string
}

// MailData fills a mail template; it holds no personal data (the activity
// opens the identity to address the mail).
type MailData struct {
	RequestType     string
	Jurisdiction    string
	DueDate         time.Time
	OriginalDueDate time.Time
	LapseDate       time.Time
	Reason          string
	Lines           []string
	Link            string    // an export's download link
	LinkExpires     time.Time // and when it stops working
	FinalDate       time.Time // account lifecycle: when the account goes
	LastActive      time.Time // inactivity: the last activity seen
	Anonymize       bool      // inactivity: anonymized rather than deleted
	// Verified: the receipt of a request whose identity the company's
	// backend vouched for; no code will be mailed.
	Verified bool
	// TaskDeadline is an operator task's deadline (privacy team mails about
	// a processor): the activity then reads the request's own due date.
	TaskDeadline time.Time
	// Receipt is an erasure's receipt: the completion mail says it in the
	// person's words (Lines stay the operator's wording, for the API).
	Receipt *Receipt `json:",omitempty"`
}

// SendMailInput asks for one templated mail, sent at most once per Key.
type SendMailInput struct {
	RequestID     string
	SubjectRef    string
	Identity      []byte
	Template      string
	Key           string // idempotency key: one mail per event
	ToPrivacyTeam bool
	Data          MailData
}

// TransitionInput records a step in Lethe's database: the request's row and
// an entry in the hash-chained audit trail (at most once per Seq).
type TransitionInput struct {
	RequestID    string
	Type         string
	SubjectRef   string
	Jurisdiction string
	Status       string
	ReceivedAt   time.Time
	DueAt        time.Time
	Actor        string
	Action       string
	Detail       map[string]string
	Seq          int
}

// ChangeInput asks for a rectification or consent change to be applied, in
// the application database or (Processor set) at one processor.
type ChangeInput struct {
	RequestID  string
	SubjectRef string
	Identity   []byte // sealed: who, and the change itself
	Processor  string
}

// ChangeResult says what changed (no values) and which processors must follow.
type ChangeResult struct {
	Lines      []string
	Processors []string
}

// RefusedNeedsOperator: a processor refused for good; a person must act.
const RefusedNeedsOperator = "NeedsOperator"

// Mail templates (see internal/templates).
const (
	MailReceipt              = "receipt"
	MailVerificationReminder = "verification_reminder"
	MailVerificationExpired  = "verification_expired"
	MailExtension            = "extension"
	MailCompleted            = "completed"
	MailDenied               = "denied"
	MailCancelled            = "cancelled"
	MailOperatorReminder     = "operator_reminder"
	MailOperatorEscalation   = "operator_escalation"
	MailIncidentEscalation   = "incident_escalation"
	// MailOperatorTask gives the privacy team a task Lethe cannot do on its
	// own (a mail that cannot be sent, an audit entry that cannot be written).
	MailOperatorTask = "operator_task"
)
