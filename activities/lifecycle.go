package activities

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/lethe-privacy/lethe/internal/appdb"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/mail"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/templates"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// Lifecycle records, verifies and writes to people for every request.
type Lifecycle struct {
	DB          *pgxpool.Pool // Lethe's own database
	App         *pgxpool.Pool // the application database (identity lookups)
	Map         *datamap.Map
	Keys        *person.Keyring
	Subjects    *person.Hasher
	Mail        mail.Sender // wrapped so each idempotency key sends once
	Templates   *templates.Renderer
	CompanyName string
	PublicURL   string // where people submit requests and type codes
	PrivacyTeam string // the privacy team's address for reminders and escalations
	Log         *slog.Logger
}

// RecordTransition projects the request's state into its record and
// appends the step to the hash-chained audit trail; running it twice appends
// nothing more (the audit entry's idempotency key is request and step).
func (l *Lifecycle) RecordTransition(ctx context.Context, in contract.TransitionInput) error {
	var closedAt *time.Time
	if domain.Closed(in.Status) {
		now := time.Now().UTC()
		closedAt = &now
	}
	err := l.records().RecordTransition(ctx, store.Transition{
		ID: in.RequestID, Type: in.Type, SubjectRef: in.SubjectRef, Jurisdiction: in.Jurisdiction, Status: in.Status,
		ReceivedAt: in.ReceivedAt, DueAt: in.DueAt, ClosedAt: closedAt,
	})
	if err != nil {
		return classifyDB(err)
	}
	detail := map[string]any{"status": in.Status}
	for k, v := range in.Detail {
		if v != "" {
			detail[k] = v
		}
	}
	_, err = audit.Append(ctx, l.DB, audit.Entry{
		RequestID: in.RequestID, SubjectRef: in.SubjectRef, Actor: in.Actor, Action: in.Action,
		Detail: detail, IdempotencyKey: fmt.Sprintf("%s:%d", in.RequestID, in.Seq),
	})
	if errors.Is(err, audit.ErrRefused) {
		// Something personal slipped into the entry: retrying cannot help.
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("audit %s refused", in.Action), "AuditRefused", nil)
	}
	if err != nil {
		return classifyDB(fmt.Errorf("audit %s: %w", in.Action, err))
	}
	return nil
}

// AppendAudit appends an entry to the audit trail, once per key: about an
// account, an incident, an export, or a request's erasure receipt.
func (l *Lifecycle) AppendAudit(ctx context.Context, in contract.AuditInput) error {
	detail := map[string]any{}
	for k, v := range in.Detail {
		detail[k] = v
	}
	_, err := audit.Append(ctx, l.DB, audit.Entry{RequestID: in.RequestID, SubjectRef: in.SubjectRef, Actor: in.Actor, Action: in.Action, Detail: detail, IdempotencyKey: in.Key})
	return classifyDB(err)
}

// IssueVerificationCode mails a fresh 6-digit code drawn from a CSPRNG and
// returns only its keyed hash. Retried after the mail went out, it returns
// the hash of the code that was mailed instead of making another.
func (l *Lifecycle) IssueVerificationCode(ctx context.Context, in contract.IssueCodeInput) (contract.IssueCodeResult, error) {
	key := fmt.Sprintf("%s:code:%d", in.RequestID, in.Seq)
	if once, ok := l.Mail.(*mail.Once); ok {
		sent, err := once.Sent(ctx, key)
		if err != nil {
			return contract.IssueCodeResult{}, classifyDB(err)
		}
		if sent {
			hash, ok, err := l.records().CodeHash(ctx, in.RequestID, in.Seq)
			if err != nil {
				return contract.IssueCodeResult{}, classifyDB(err)
			}
			if ok {
				return contract.IssueCodeResult{CodeHash: hash}, nil
			}
		}
	}
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return contract.IssueCodeResult{}, fmt.Errorf("draw code: %w", err)
	}
	code := fmt.Sprintf("%06d", n.Int64())
	hash := l.Subjects.CodeHash(in.RequestID, code)
	if err := l.records().StoreCodeHash(ctx, in.RequestID, in.Seq, hash); err != nil {
		return contract.IssueCodeResult{}, classifyDB(err)
	}
	id, err := l.openIdentity(ctx, in.SubjectRef, in.Identity)
	if err != nil {
		return contract.IssueCodeResult{}, err
	}
	if id.Email == "" {
		return contract.IssueCodeResult{}, temporal.NewNonRetryableApplicationError("no email to send a code to", "NoEmail", nil)
	}
	msg, err := l.render(templates.VerificationCode, templates.Data{RequestID: in.RequestID, RequestType: in.RequestType, Code: code, CodeValidFor: in.ValidFor,
		StatusURL: l.statusURL(in.RequestID)})
	if err != nil {
		return contract.IssueCodeResult{}, err
	}
	if err := l.send(ctx, id.Email, msg, key, in.RequestID, templates.VerificationCode); err != nil {
		return contract.IssueCodeResult{}, err
	}
	l.Log.InfoContext(ctx, "verification code sent", "request_id", in.RequestID, "subject_ref", in.SubjectRef, "seq", in.Seq)
	return contract.IssueCodeResult{CodeHash: hash}, nil
}

// mailTemplates maps the workflows' mail events to the templates' names.
var mailTemplates = map[string]string{
	contract.MailReceipt:              templates.Receipt,
	contract.MailVerificationReminder: templates.VerificationReminder,
	contract.MailVerificationExpired:  templates.VerificationExpired,
	contract.MailExtension:            templates.Extension,
	contract.MailCompleted:            templates.Completed,
	contract.MailDenied:               templates.Denied,
	contract.MailCancelled:            templates.Cancelled,
	contract.MailOperatorReminder:     templates.OperatorReminder,
	contract.MailOperatorEscalation:   templates.OperatorEscalation,
	contract.MailDeactivationNotice:   templates.DeactivationNotice,
	contract.MailDeactivationReminder: templates.DeactivationReminder,
	contract.MailAccountRestored:      templates.AccountRestored,
	contract.MailAccountErased:        templates.AccountErased,
	contract.MailIncidentEscalation:   templates.OperatorReminder,
	contract.MailOperatorTask:         templates.OperatorTask,
}

// SendRequestMail sends one templated mail about a request, at most once
// per idempotency key: to the person (their sealed identity opened here) or
// to the privacy team.
func (l *Lifecycle) SendRequestMail(ctx context.Context, in contract.SendMailInput) error {
	name, ok := mailTemplates[in.Template]
	if !ok {
		return temporal.NewNonRetryableApplicationError("unknown mail template "+in.Template, "BadTemplate", nil)
	}
	to := l.PrivacyTeam
	if !in.ToPrivacyTeam {
		id, err := l.openIdentity(ctx, in.SubjectRef, in.Identity)
		if err != nil {
			return err
		}
		to = id.Email
	}
	if to == "" {
		return temporal.NewNonRetryableApplicationError("no address to write to", "NoEmail", nil)
	}
	due, err := l.mailDueDate(ctx, in)
	if err != nil {
		return err
	}
	msg, err := l.render(name, templates.Data{
		RequestID: in.RequestID, RequestType: in.Data.RequestType, Jurisdiction: in.Data.Jurisdiction,
		DueDate: due, OriginalDueDate: in.Data.OriginalDueDate, LapseDate: in.Data.LapseDate,
		Reason: in.Data.Reason, Lines: l.mailLines(in),
		FinalDate: in.Data.FinalDate, LastActive: in.Data.LastActive, Anonymize: in.Data.Anonymize,
		LinkURL: in.Data.Link, LinkExpires: in.Data.LinkExpires,
		Verified: in.Data.Verified, TaskDeadline: in.Data.TaskDeadline,
		StatusURL: l.personStatusURL(in),
	})
	if err != nil {
		return err
	}
	return l.send(ctx, to, msg, in.Key, in.RequestID, name)
}

// ShredSubject destroys the person's data key: every sealed copy of their
// identity, wherever it was copied, becomes unreadable. Safe to repeat: a
// retry of the same activity never destroys the new key the person was
// given by a request made after the first attempt.
func (l *Lifecycle) ShredSubject(ctx context.Context, subjectRef string) error {
	var err error
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		op := info.WorkflowExecution.ID + "/" + info.WorkflowExecution.RunID + "/" + info.ActivityID
		err = l.Keys.DestroyOnce(ctx, subjectRef, op)
	} else {
		err = l.Keys.Destroy(ctx, subjectRef)
	}
	if err != nil {
		return classifyDB(fmt.Errorf("shred subject key: %w", err))
	}
	l.Log.InfoContext(ctx, "subject key destroyed", "subject_ref", subjectRef)
	return nil
}

func (l *Lifecycle) openIdentity(ctx context.Context, ref string, sealed []byte) (person.Identity, error) {
	return openIdentity(ctx, l.Keys, ref, sealed)
}

// openIdentity opens a sealed identity; a destroyed key is final.
func openIdentity(ctx context.Context, keys *person.Keyring, ref string, sealed []byte) (person.Identity, error) {
	id, err := person.Open(ctx, keys, ref, sealed)
	if errors.Is(err, person.ErrKeyDestroyed) {
		return id, temporal.NewNonRetryableApplicationError("the person's identity was shredded", "IdentityShredded", nil)
	}
	return id, err
}

// resolveUserID is the identity's user id, or the one the identity table
// holds for its email; "" when the application does not know the person.
func resolveUserID(ctx context.Context, app *pgxpool.Pool, m *datamap.Map, id person.Identity) (string, error) {
	if id.UserID != "" {
		return id.UserID, nil
	}
	if id.Email == "" || m.Identity == nil {
		return "", nil
	}
	userID, err := appdb.UserIDByEmail(ctx, app, m, id.Email)
	if err != nil {
		return "", classifyDB(err)
	}
	return userID, nil
}

// portalURL is the privacy portal's address (internal/portal).
func (l *Lifecycle) portalURL() string { return strings.TrimRight(l.PublicURL, "/") + "/privacy/" }

// statusURL is the request's page in the privacy portal, with the
// request's token (the portal moves it into a cookie on the first load).
func (l *Lifecycle) statusURL(requestID string) string {
	if l.Subjects == nil || requestID == "" {
		return ""
	}
	return l.portalURL() + "status/" + requestID + "?t=" + url.QueryEscape(l.Subjects.RequestToken(requestID))
}

// personStatusURL is statusURL for a mail to the person about their
// request; a mail to the privacy team carries no token.
func (l *Lifecycle) personStatusURL(in contract.SendMailInput) string {
	if in.ToPrivacyTeam {
		return ""
	}
	return l.statusURL(in.RequestID)
}

func (l *Lifecycle) render(name string, d templates.Data) (templates.Message, error) {
	d.CompanyName = l.CompanyName
	switch {
	case d.LinkURL != "":
	case name == templates.VerificationReminder && d.StatusURL != "":
		d.LinkURL = d.StatusURL // where to type the code or ask for a new one
	case name == templates.VerificationReminder || name == templates.VerificationExpired:
		d.LinkURL = l.portalURL() // where to ask again
	case name == templates.DeactivationNotice || name == templates.DeactivationReminder:
		d.LinkURL = l.PublicURL
	}
	msg, err := l.Templates.Render(name, d)
	if err != nil {
		return msg, temporal.NewNonRetryableApplicationError(fmt.Sprintf("render %s: %v", name, err), "BadTemplate", nil)
	}
	return msg, nil
}

func (l *Lifecycle) send(ctx context.Context, to string, msg templates.Message, key, requestID, template string) error {
	err := l.Mail.Send(ctx, mail.Message{To: to, Subject: msg.Subject, Text: msg.Text, HTML: msg.HTML, Template: template, IdempotencyKey: key, RequestID: requestID})
	switch {
	case err == nil, errors.Is(err, mail.ErrSentNotRecorded):
		// Sent: a retry must not send it again, so the activity succeeds.
		return nil
	case mail.IsPermanent(err):
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("mail %s: %v", template, err), "MailRefused", nil)
	default:
		if after := mail.RetryAfterOf(err); after > 0 {
			return temporal.NewApplicationErrorWithOptions(fmt.Sprintf("mail %s: %v", template, err), "MailRetry", temporal.ApplicationErrorOptions{NextRetryDelay: after})
		}
		return fmt.Errorf("mail %s: %w", template, err)
	}
}
