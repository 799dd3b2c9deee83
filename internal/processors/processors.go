// Package processors calls the third-party processors that received a
// person's data (Stripe, Mailchimp, SendGrid Marketing, Help Scout, a signed
// webhook, an OpenDSR 2.0 processor, or a manual operator task) to erase,
// export, rectify it, or change a consent.
//
// Every connector implements some of five small interfaces: Eraser,
// Exporter, Rectifier, ConsentSetter and Confirmer (a later check that an
// erasure holds, from what its Outcome recorded). Each call is safe to
// repeat: a second erasure reports StatusAlreadyGone, asynchronous
// processors are asked again with the same deterministic ids, and POSTs
// carry idempotency keys derived from Subject.RequestID.
//
// Results and errors are meant to be stored in Temporal histories and audit
// trails, so neither carries personal data: an Outcome holds statuses and
// processor ids only, and an *Error's message never contains the email or
// other values sent to the processor. Exported records (which are personal
// data by nature) go only to the caller's ExportWriter.
package processors

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
)

// Action names what Lethe asked of a processor.
type Action string

// The actions a connector can perform.
const (
	ActionErase   Action = "erase"
	ActionExport  Action = "export"
	ActionUpdate  Action = "update"
	ActionConsent Action = "consent"
)

// Well-known keys of Subject.IDs.
const (
	// IDStripeCustomer is a Stripe customer id (cus_…); when set, the Stripe
	// connector uses it instead of looking the customer up by email.
	IDStripeCustomer = "stripe_customer_id"
	// IDSendGridContact is a SendGrid Marketing contact id; when set, the
	// SendGrid connector uses it instead of searching by email.
	IDSendGridContact = "sendgrid_contact_id"
	// IDHelpScoutCustomer is a Help Scout customer id (a number); when
	// set, the Help Scout connector uses it instead of searching by email.
	IDHelpScoutCustomer = "helpscout_customer_id"
)

// Subject identifies the person a call is about, plus the privacy request it
// serves. Its String, GoString and LogValue methods hide the personal values,
// so a Subject printed by mistake does not leak them.
type Subject struct {
	// RequestID is Lethe's id for the privacy request. Connectors derive
	// idempotency keys and processor-side request ids from it, so a retried
	// call does not create a second request at the processor.
	RequestID string `json:"request_id,omitempty"`
	// Email is the person's email address as the processor knows it.
	Email string `json:"email,omitempty"`
	// UserID is the company's own id for the person.
	UserID string `json:"user_id,omitempty"`
	// IDs holds per-processor ids such as IDStripeCustomer.
	IDs map[string]string `json:"ids,omitempty"`
}

// ID returns the per-processor id stored under key, or "".
func (s Subject) ID(key string) string { return s.IDs[key] }

// String describes which identifiers are present without showing them.
func (s Subject) String() string {
	var parts []string
	if s.RequestID != "" {
		parts = append(parts, "request_id="+s.RequestID)
	}
	if s.Email != "" {
		parts = append(parts, "email=[redacted]")
	}
	if s.UserID != "" {
		parts = append(parts, "user_id=[redacted]")
	}
	if len(s.IDs) > 0 {
		keys := make([]string, 0, len(s.IDs))
		for k := range s.IDs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts = append(parts, "ids=["+strings.Join(keys, ",")+"]")
	}
	return "Subject{" + strings.Join(parts, " ") + "}"
}

// GoString is String, so %#v does not print personal values either.
func (s Subject) GoString() string { return s.String() }

// LogValue makes slog print the redacted form.
func (s Subject) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Status is what a call achieved.
type Status string

// Outcome statuses.
const (
	// StatusDone: the processor did what was asked.
	StatusDone Status = "done"
	// StatusAlreadyGone: an erasure found nothing left to erase (erased
	// before, or never there).
	StatusAlreadyGone Status = "already_gone"
	// StatusNotFound: an export, update or consent change found no data
	// about the subject at the processor.
	StatusNotFound Status = "not_found"
	// StatusPending: the processor accepted the request and completes it
	// asynchronously; Outcome.JobID identifies it. Repeating the call is
	// safe and, for OpenDSR and webhooks, reports the progress.
	StatusPending Status = "pending_async"
	// StatusNeedsOperator: the processor has no API for this; Outcome.Steps
	// says what an operator must do.
	StatusNeedsOperator Status = "needs_operator"
	// StatusNotApplicable: the connector is not configured for this purpose
	// (consent changes), so nothing was sent.
	StatusNotApplicable Status = "not_applicable"
)

// Ref is a processor-side reference kept as evidence, such as
// {"customer", "cus_123"} or {"request_id", "req_abc"}. Refs never hold
// personal data.
type Ref struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// Outcome records what a connector did, as evidence. It never contains
// personal data (no emails, names or hashes of them); processor ids are fine.
type Outcome struct {
	Processor string `json:"processor"`
	Action    Action `json:"action"`
	Status    Status `json:"status"`
	// HTTPStatus is the status of the call that decided the outcome
	// (0 when no call was made).
	HTTPStatus int `json:"http_status,omitempty"`
	// JobID is the processor's handle for asynchronous work: a SendGrid
	// job id, an OpenDSR subject_request_id, a webhook job id.
	JobID string `json:"job_id,omitempty"`
	// Refs lists the processor objects acted on and the processor's own
	// request ids.
	Refs []Ref `json:"refs,omitempty"`
	// Records is how many records an export wrote.
	Records int `json:"records,omitempty"`
	// Steps are the manual steps for StatusNeedsOperator.
	Steps []string `json:"steps,omitempty"`
	// Note is a short, non-personal remark (e.g. an expected completion time).
	Note string `json:"note,omitempty"`
}

func (o *Outcome) addRef(kind, id string) {
	if id == "" {
		return
	}
	r := Ref{Kind: kind, ID: id}
	if !slices.Contains(o.Refs, r) {
		o.Refs = append(o.Refs, r)
	}
}

// Record is one exported item. Data is the processor's JSON as received and
// is personal data: it goes to the export bundle, never into an Outcome.
type Record struct {
	// Kind names the processor object, e.g. "stripe.customer", "stripe.charge".
	Kind string `json:"kind"`
	// ID is the processor's id for the object, when it has one.
	ID   string          `json:"id,omitempty"`
	Data json.RawMessage `json:"data"`
}

// ExportWriter receives exported records one at a time, so that large
// sources never sit whole in memory.
type ExportWriter interface {
	WriteRecord(ctx context.Context, r Record) error
}

// ExportFunc adapts a function to ExportWriter.
type ExportFunc func(ctx context.Context, r Record) error

// WriteRecord calls f.
func (f ExportFunc) WriteRecord(ctx context.Context, r Record) error { return f(ctx, r) }

// Connector is any processor connector. It implements one or more of
// Eraser, Exporter, Rectifier and ConsentSetter.
type Connector interface {
	// Name is the connector's configured name, used in Outcomes and errors.
	Name() string
}

// Eraser deletes everything a processor holds about a subject.
type Eraser interface {
	Erase(ctx context.Context, s Subject) (Outcome, error)
}

// BatchEraser erases many people in one asynchronous job, at a processor
// whose API takes batches (Mailchimp's /batches): a bulk erasure asks it
// once per job instead of once per person. Both calls are safe to repeat:
// a job submitted twice erases nobody twice (the second finds them gone).
type BatchEraser interface {
	// BatchSize is the most people one job takes.
	BatchSize() int
	// StartErasures submits the job for subjects and returns it.
	StartErasures(ctx context.Context, subjects []Subject) (BatchJob, error)
	// ErasuresProgress follows the job started for the same subjects, in
	// the same order. While it runs, Done is false and Job is what to
	// follow next (a job of several steps moves on to its next one).
	ErasuresProgress(ctx context.Context, job BatchJob, subjects []Subject) (BatchProgress, error)
}

// BatchJob is a processor's batch job, as Lethe follows it. It never holds
// personal data: processor ids and counts only.
type BatchJob struct {
	// ID is the processor's id for the job.
	ID string `json:"id"`
	// Step names the job's current step, for connectors with several.
	Step string `json:"step,omitempty"`
	// Found carries what an earlier step learnt, per subject (processor
	// ids, such as Mailchimp contact ids), for the outcomes.
	Found [][]Ref `json:"found,omitempty"`
	// Refused says, per subject, why an earlier step left them out
	// ("" for none): their outcome is that refusal, and they are asked
	// again on their own.
	Refused []string `json:"refused,omitempty"`
}

// BatchProgress is how a batch job stands.
type BatchProgress struct {
	Done bool     `json:"done"`
	Job  BatchJob `json:"job"`
	// Finished and Total count the job's operations, when the processor
	// says.
	Finished int `json:"finished,omitempty"`
	Total    int `json:"total,omitempty"`
	// Outcomes, once Done, has one entry per subject, in order. A subject
	// the processor could not erase has Err set (non-personal, like an
	// *Error's message) and a zero Outcome.
	Outcomes []BatchOutcome `json:"outcomes,omitempty"`
}

// BatchOutcome is what a batch job did for one subject.
type BatchOutcome struct {
	Outcome Outcome `json:"outcome"`
	// Err says why the processor refused this subject's erasure, "" when
	// it did not.
	Err string `json:"err,omitempty"`
}

// Exporter streams what a processor holds about a subject to w.
// An error from w is returned wrapped, unclassified.
type Exporter interface {
	Export(ctx context.Context, s Subject, w ExportWriter) (Outcome, error)
}

// Rectifier corrects a subject's data at a processor. Field names are
// Lethe's canonical ones (email, name, first_name, last_name, phone,
// address_line1, address_line2, city, state, postal_code, country) plus
// connector-specific ones documented on each connector; an unsupported name
// fails with KindNeedsOperator before anything is sent.
type Rectifier interface {
	Update(ctx context.Context, s Subject, fields map[string]string) (Outcome, error)
}

// ConsentSetter subscribes or unsubscribes a subject for a purpose
// (e.g. "marketing"). A connector not configured for the purpose returns
// StatusNotApplicable.
type ConsentSetter interface {
	SetSubscribed(ctx context.Context, s Subject, purpose string, subscribed bool) (Outcome, error)
}

// writeRecord calls w and wraps its error with the connector name.
func writeRecord(ctx context.Context, w ExportWriter, name string, r Record) error {
	if err := w.WriteRecord(ctx, r); err != nil {
		return fmt.Errorf("%s export: write record %s: %w", name, r.Kind, err)
	}
	return nil
}
