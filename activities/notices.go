package activities

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.temporal.io/sdk/temporal"

	"github.com/lethe-privacy/lethe/internal/bulk"
	"github.com/lethe-privacy/lethe/internal/mail"
	"github.com/lethe-privacy/lethe/internal/templates"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// Notices finds the people a breach or a policy change concerns and mails
// each of them once, in batches of 1000 per SendGrid call (P11, P16).
type Notices struct {
	Lifecycle      *Lifecycle
	Bulk           mail.BulkSender
	Objects        *s3.Client
	ExportBucket   string // affected-people lists are read from here; reports are written here
	AuthorityEmail string // where the authority report goes
	// Sent hears how many people each batch reached (the worker's
	// metrics); nil hears nothing.
	Sent NoticeObserver
}

// NoticeObserver hears of each batch of notices sent: to how many people,
// and how many had no address, by template (breach_notice, policy_change).
type NoticeObserver interface {
	NoticesSent(template string, sent, noEmail int)
}

// CollectAffected adds the people of a source to the campaign: a selector of
// the data map (parameters bound) or a list of user ids in S3. Adding the
// same people again adds nobody twice.
func (n *Notices) CollectAffected(ctx context.Context, in contract.CollectInput) error {
	switch {
	case in.Source.Selector != "":
		sel, ok := n.Lifecycle.Map.Selector(in.Source.Selector)
		if !ok {
			return temporal.NewNonRetryableApplicationError("unknown selector", "BadInput", nil)
		}
		args := make([]any, len(in.Source.Params))
		for i, p := range in.Source.Params {
			args[i] = p
		}
		added, err := bulk.AddFromQuery(ctx, n.Lifecycle.DB, n.Lifecycle.App, in.Campaign, sel.SQL, args)
		if err != nil {
			return classifyDB(err)
		}
		n.Lifecycle.Log.InfoContext(ctx, "affected people added", "campaign", in.Campaign, "added", added)
	default:
		obj, err := n.Objects.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(n.ExportBucket), Key: aws.String(in.Source.ObjectKey)})
		if err != nil {
			return fmt.Errorf("read the list of affected people: %w", err)
		}
		defer obj.Body.Close()
		added, err := bulk.AddFromLines(ctx, n.Lifecycle.DB, in.Campaign, obj.Body)
		if err != nil {
			return err
		}
		n.Lifecycle.Log.InfoContext(ctx, "affected people added", "campaign", in.Campaign, "added", added)
	}
	return nil
}

// NoticeCounts says how far a campaign got.
func (n *Notices) NoticeCounts(ctx context.Context, campaign string) (contract.NoticeCounts, error) {
	c, err := bulk.Counts(ctx, n.Lifecycle.DB, campaign)
	if err != nil {
		return contract.NoticeCounts{}, classifyDB(err)
	}
	return contract.NoticeCounts{Found: c.Found, Sent: c.Sent, NoEmail: c.NoEmail, Failed: c.Failed, Pending: c.Pending}, nil
}

// SendNoticeBatch sends one batch of up to 1000 notices in one SendGrid call.
// A retry of the same batch number sends exactly the people that batch claimed.
func (n *Notices) SendNoticeBatch(ctx context.Context, in contract.SendBatchInput) (contract.SendBatchResult, error) {
	// Once a batch is on its way it is finished, even if the worker is told to
	// stop meanwhile: a send cut off after SendGrid accepted it, but before the
	// ledger recorded it, is the one way a person could be mailed twice.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	res, err := bulk.SendBatch(ctx, n.Lifecycle.DB, n.Lifecycle.App, n.Lifecycle.Map, n.Bulk, in.Campaign,
		bulk.Message{Subject: in.Message.Subject, Text: in.Message.Text, HTML: in.Message.HTML, Template: in.Message.Template}, in.Batch)
	if err != nil {
		if mail.IsPermanent(err) {
			return contract.SendBatchResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("send notices: %v", err), "MailRefused", nil)
		}
		if after := mail.RetryAfterOf(err); after > 0 {
			return contract.SendBatchResult{}, temporal.NewApplicationErrorWithOptions(fmt.Sprintf("send notices: %v", err), "MailRetry", temporal.ApplicationErrorOptions{NextRetryDelay: after})
		}
		return contract.SendBatchResult{}, classifyDB(err)
	}
	// A retried batch sends (and so counts) only those not settled before.
	if n.Sent != nil {
		n.Sent.NoticesSent(in.Message.Template, res.Sent, res.NoEmail)
	}
	return contract.SendBatchResult{Claimed: res.Claimed, Sent: res.Sent, NoEmail: res.NoEmail, Done: res.Done}, nil
}

func toIncident(in contract.Incident, company string, phase int, c contract.NoticeCounts) templates.Incident {
	return templates.Incident{
		ID: in.ID, AwareAt: in.AwareAt, WhatHappened: in.WhatHappened, DataCategories: in.DataCategories,
		Consequences: in.Consequences, Measures: in.Measures, WhatYouCanDo: in.WhatYouCanDo, Contact: in.Contact,
		CompanyName: company, Phase: phase, Found: c.Found, Notified: c.Sent, WithoutContact: c.NoEmail, Records: in.Records,
		ReportedAt: time.Now().UTC(), NotificationRequired: in.NotificationRequired, NoNotificationReason: in.NoNotificationReason,
		AuthorityDeadline: in.ReportWithin,
	}
}

// RenderBreachNotice renders the notice every affected person receives.
func (n *Notices) RenderBreachNotice(ctx context.Context, in contract.Incident) (contract.NoticeMessage, error) {
	msg, err := templates.BreachNotice(toIncident(in, n.Lifecycle.CompanyName, 0, contract.NoticeCounts{}))
	if err != nil {
		return contract.NoticeMessage{}, temporal.NewNonRetryableApplicationError(err.Error(), "BadIncident", nil)
	}
	return contract.NoticeMessage{Subject: msg.Subject, Text: msg.Text, HTML: msg.HTML, Template: "breach_notice"}, nil
}

// RenderPolicyNotice renders a policy-change notice.
func (n *Notices) RenderPolicyNotice(ctx context.Context, in contract.PolicyNotice) (contract.NoticeMessage, error) {
	msg, err := templates.PolicyChangeNotice(templates.PolicyChange{CompanyName: n.Lifecycle.CompanyName, Title: in.Title, Summary: in.Summary, URL: in.URL, EffectiveAt: in.EffectiveAt})
	if err != nil {
		return contract.NoticeMessage{}, temporal.NewNonRetryableApplicationError(err.Error(), "BadNotice", nil)
	}
	return contract.NoticeMessage{Subject: msg.Subject, Text: msg.Text, HTML: msg.HTML, Template: "policy_change"}, nil
}

// WriteAuthorityReport writes the GDPR Art. 33(3) report of one phase to S3
// (HTML and JSON) and mails it to the data-protection contact, once per phase.
func (n *Notices) WriteAuthorityReport(ctx context.Context, in contract.ReportInput) (string, error) {
	html, doc, err := templates.AuthorityReport(toIncident(in.Incident, n.Lifecycle.CompanyName, in.Phase, in.Counts))
	if err != nil {
		return "", temporal.NewNonRetryableApplicationError(err.Error(), "BadIncident", nil)
	}
	base := fmt.Sprintf("reports/incidents/%s/phase-%d", in.Incident.ID, in.Phase)
	for ext, body := range map[string][]byte{".html": html, ".json": doc} {
		if err := n.put(ctx, base+ext, body); err != nil {
			return "", err
		}
	}
	if n.AuthorityEmail != "" {
		err := n.Lifecycle.Mail.Send(ctx, mail.Message{To: n.AuthorityEmail, Subject: fmt.Sprintf("Personal data breach report %s, phase %d", in.Incident.ID, in.Phase),
			Text: "The report is attached as HTML below and stored at s3://" + n.ExportBucket + "/" + base + ".html", HTML: string(html),
			Template: "authority_report", IdempotencyKey: base, RequestID: in.Incident.ID})
		if err != nil && !errors.Is(err, mail.ErrSentNotRecorded) {
			return "", fmt.Errorf("mail the authority report: %w", err)
		}
	}
	return "s3://" + n.ExportBucket + "/" + base + ".html", nil
}

// WritePublicNotice writes the public notice for when people cannot be told one by one.
func (n *Notices) WritePublicNotice(ctx context.Context, in contract.ReportInput) (string, error) {
	ni := toIncident(in.Incident, n.Lifecycle.CompanyName, 0, in.Counts)
	if in.Incident.PublicNotice {
		ni.PublicNoticeReason = "Telling each person individually would take disproportionate effort."
	}
	page, err := templates.PublicNotice(ni)
	if err != nil {
		return "", temporal.NewNonRetryableApplicationError(err.Error(), "BadIncident", nil)
	}
	key := fmt.Sprintf("reports/incidents/%s/public-notice.html", in.Incident.ID)
	if err := n.put(ctx, key, page); err != nil {
		return "", err
	}
	return "s3://" + n.ExportBucket + "/" + key, nil
}

func (n *Notices) put(ctx context.Context, key string, body []byte) error {
	_, err := n.Objects.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(n.ExportBucket), Key: aws.String(key),
		Body: bytes.NewReader(body), ServerSideEncryption: "AES256"})
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}
