package activities

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/lethe-privacy/lethe/internal/appdb"
	"github.com/lethe-privacy/lethe/internal/ledger"
	"github.com/lethe-privacy/lethe/internal/templates"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// AccountLife works on accounts over time: deactivation and restore, the
// inactivity sweep, and the deletion of ID documents.
type AccountLife struct {
	Lifecycle    *Lifecycle
	Erasure      *Erasure
	ExportBucket string // dry-run reports go here
}

// SetAccountStatus deactivates or restores the person's account in the
// application database; without a status column in the data map it only
// checks the account exists. Safe to repeat.
func (a *AccountLife) SetAccountStatus(ctx context.Context, in contract.AccountStatusInput) error {
	userID, err := a.Erasure.userID(ctx, in.SubjectRef, in.Identity)
	if err != nil {
		return err
	}
	acc := a.Lifecycle.Map.Accounts
	if acc == nil {
		return temporal.NewNonRetryableApplicationError("the data map has no accounts section", "NotConfigured", nil)
	}
	to, from := acc.Deactivated, acc.Active
	if in.Status != contract.AccountDeactivated {
		to, from = acc.Active, acc.Deactivated
	}
	_, err = appdb.SetAccountStatus(ctx, a.Lifecycle.App, a.Lifecycle.Map, userID, to, from)
	if errors.Is(err, appdb.ErrNoAccount) {
		return temporal.NewNonRetryableApplicationError("the application has no such account", "UnknownAccount", nil)
	}
	return classifyDB(err)
}

// sweepPageSize is how many accounts one page of the sweep looks at.
const sweepPageSize = 500

// SweepInactivePage does one page of the inactivity sweep: it warns the
// inactive accounts not warned yet, erases those warned whose date has come
// and that stayed inactive, and erases closed accounts past their keep. The
// inactivity notices Lethe keeps (store.InactivityNotice) make every step
// happen once per person.
func (a *AccountLife) SweepInactivePage(ctx context.Context, in contract.SweepPageInput) (contract.SweepPageResult, error) {
	res := contract.SweepPageResult{Next: in.Cursor}
	if acc := a.Lifecycle.Map.Accounts; acc != nil && (in.Phase == contract.PhaseClosed && acc.ClosedAt == "" || in.Phase != contract.PhaseClosed && acc.LastActive == "") {
		// The data map has no column for this phase (no last activity, no
		// closing date): nobody to sweep; the worker said so at start.
		res.Done = true
		return res, nil
	}
	var report bytes.Buffer
	var list []appdb.Account
	var err error
	p := in.Policy
	// The last day before which someone must have been active not to be warned.
	deadline := p.InactiveAfter.Before(in.Now)
	size := sweepPageSize
	if in.PageSize > 0 {
		size = in.PageSize
	}
	if in.Phase == contract.PhaseClosed {
		cutoff := p.ClosedKeep.Before(in.Now)
		list, err = appdb.ClosedAccounts(ctx, a.Lifecycle.App, a.Lifecycle.Map, cutoff, in.Cursor.ID, size)
	} else {
		threshold := deadline.Add(p.WarnBefore)
		list, err = appdb.InactiveAccounts(ctx, a.Lifecycle.App, a.Lifecycle.Map, threshold, appdb.AccountCursor{LastActive: in.Cursor.LastActive, ID: in.Cursor.ID}, size)
	}
	if err != nil {
		return res, classifyDB(err)
	}
	for i, acc := range list {
		res.Scanned++
		res.Next = contract.SweepCursor{LastActive: acc.LastActive, ID: acc.ID}
		ref := string(a.Lifecycle.Subjects.UserID(acc.ID))
		if in.Phase == contract.PhaseClosed {
			if err := a.sweepErase(ctx, in, &res, acc, ref, &report, "closed"); err != nil {
				return res, err
			}
			continue
		}
		notice, found, err := a.Lifecycle.records().InactivityNotice(ctx, ref)
		if err != nil {
			return res, classifyDB(err)
		}
		warned := found && notice.LastActive.Equal(acc.LastActive)
		switch {
		case warned && notice.Erased != nil:
			// Done in an earlier run.
		case warned && !in.Now.Before(notice.Due):
			if err := a.sweepErase(ctx, in, &res, acc, ref, &report, "inactive"); err != nil {
				return res, err
			}
		case warned:
			res.Waiting++
		default:
			// Warn once for this last activity; the date is never sooner than WarnBefore.
			due := p.InactiveAfter.After(acc.LastActive)
			if min := in.Now.Add(p.WarnBefore); due.Before(min) {
				due = min
			}
			if err := a.sweepWarn(ctx, in, acc, ref, due, &report); err != nil {
				return res, err
			}
			res.Warned++
		}
		if i%50 == 0 {
			activity.RecordHeartbeat(ctx, res.Next)
		}
	}
	res.Done = len(list) < size
	if in.DryRun && report.Len() > 0 {
		key := fmt.Sprintf("reports/inactivity-dry-run/%s/page-%05d.csv", in.RunKey, in.Page)
		if _, err := a.Erasure.Objects.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(a.ExportBucket), Key: aws.String(key),
			Body: bytes.NewReader(report.Bytes()), ServerSideEncryption: "AES256"}); err != nil {
			return res, fmt.Errorf("write dry-run report: %w", err)
		}
		res.ReportKey = fmt.Sprintf("s3://%s/reports/inactivity-dry-run/%s/", a.ExportBucket, in.RunKey)
	}
	return res, nil
}

func (a *AccountLife) sweepWarn(ctx context.Context, in contract.SweepPageInput, acc appdb.Account, ref string, due time.Time, report *bytes.Buffer) error {
	if in.DryRun {
		fmt.Fprintf(report, "%s,warn,%s,%s\n", acc.ID, acc.LastActive.Format(time.RFC3339), due.Format(time.RFC3339))
		return nil
	}
	// Mail and audit first, the record of the warning last: a page retried
	// after a failed mail must not find the person "warned" and erase them
	// at the due date without a warning. Both are keyed, so a retry that
	// repeats them sends and writes once; the due date comes from the
	// workflow's time, the same on every attempt.
	if acc.Email != "" {
		msg, err := a.Lifecycle.render(templates.InactivityWarning, templates.Data{FinalDate: due, LastActive: acc.LastActive, LinkURL: a.Lifecycle.PublicURL,
			Anonymize: a.Lifecycle.Map.Accounts.EraseAction == "anonymize"})
		if err != nil {
			return err
		}
		key := fmt.Sprintf("inactive:%s:%d", ref, acc.LastActive.Unix())
		if err := a.Lifecycle.send(ctx, acc.Email, msg, key, "", templates.InactivityWarning); err != nil {
			return err
		}
	}
	if err := a.Lifecycle.AppendAudit(ctx, contract.AuditInput{SubjectRef: ref, Actor: "system", Action: "inactivity.warned",
		Detail: map[string]string{"due_at": due.Format(time.RFC3339)}, Key: fmt.Sprintf("inactive-warned:%s:%d", ref, acc.LastActive.Unix())}); err != nil {
		return err
	}
	if err := a.Lifecycle.records().RecordInactivityWarning(ctx, ref, acc.LastActive, in.Now, due); err != nil {
		return classifyDB(err)
	}
	return nil
}

// sweepErase erases one account the sweep found due: in bulk (in.Batch
// set), by sealing it into the page's batch for EraseInBulk, which counts
// it; else here, rows and objects (runs from before bulk erasure).
func (a *AccountLife) sweepErase(ctx context.Context, in contract.SweepPageInput, res *contract.SweepPageResult, acc appdb.Account, ref string, report *bytes.Buffer, why string) error {
	if in.DryRun {
		fmt.Fprintf(report, "%s,erase-%s,%s,\n", acc.ID, why, acc.LastActive.Format(time.RFC3339))
		res.Erased++
		return nil
	}
	if in.Batch != "" {
		s, err := sealBulkSubject(ctx, a.Lifecycle.Keys, in.Batch, ref, acc.ID, acc.Email)
		if err != nil {
			return err
		}
		res.Erase = append(res.Erase, s)
		return nil
	}
	res.Erased++
	// Into the erasure ledger first, as every erasure: no restore brings the account back.
	if err := ledger.Record(ctx, a.Lifecycle.DB, ref, "sweep:"+why, a.Lifecycle.Map.Digest(), in.Now); err != nil {
		return classifyDB(err)
	}
	n, err := a.Erasure.eraseAccount(ctx, acc.ID, ref)
	if err != nil {
		return err
	}
	if why == "inactive" {
		if err := a.Lifecycle.records().MarkInactiveErased(ctx, ref, in.Now); err != nil {
			return classifyDB(err)
		}
	}
	return a.Lifecycle.AppendAudit(ctx, contract.AuditInput{SubjectRef: ref, Actor: "system", Action: "account.erased_" + why,
		Detail: map[string]string{"items": fmt.Sprint(n)}, Key: sweptKey(ref, why)})
}

// sweptKey is the audit key of the sweep's erasure of one account: the
// same whichever path erased it, so nobody is recorded twice.
func sweptKey(ref, why string) string { return fmt.Sprintf("account-erased:%s:%s", ref, why) }

// DeleteTicketDocuments deletes the ID documents of one appeal ticket: their
// S3 objects, then their rows, and records the proof. Safe to repeat.
func (a *AccountLife) DeleteTicketDocuments(ctx context.Context, in contract.TicketDocumentsInput) (contract.IDDocumentResult, error) {
	docs, err := appdb.TicketIDDocuments(ctx, a.Lifecycle.App, a.Lifecycle.Map, in.Ticket)
	if err != nil {
		return contract.IDDocumentResult{}, classifyDB(err)
	}
	res, err := a.deleteDocuments(ctx, docs)
	if err != nil {
		return res, err
	}
	return res, a.Lifecycle.AppendAudit(ctx, contract.AuditInput{Actor: "system", Action: "id_documents.deleted",
		Detail: map[string]string{"ticket": in.Ticket, "objects": fmt.Sprint(res.Objects), "rows": fmt.Sprint(res.Rows)},
		Key:    "id-documents:" + in.Ticket})
}

// DeleteOverdueIDDocuments deletes every ID document whose ticket closed
// before the cutoff, in batches: the sweep behind the per-ticket timers.
func (a *AccountLife) DeleteOverdueIDDocuments(ctx context.Context, in contract.OverdueDocumentsInput) (contract.IDDocumentResult, error) {
	var total contract.IDDocumentResult
	for {
		docs, err := appdb.OverdueIDDocuments(ctx, a.Lifecycle.App, a.Lifecycle.Map, in.Cutoff, 500)
		if err != nil {
			return total, classifyDB(err)
		}
		if len(docs) == 0 {
			break
		}
		res, err := a.deleteDocuments(ctx, docs)
		if err != nil {
			return total, err
		}
		total.Objects += res.Objects
		total.Rows += res.Rows
		activity.RecordHeartbeat(ctx, total)
	}
	if total.Rows > 0 {
		err := a.Lifecycle.AppendAudit(ctx, contract.AuditInput{Actor: "system", Action: "id_documents.swept",
			Detail: map[string]string{"objects": fmt.Sprint(total.Objects), "rows": fmt.Sprint(total.Rows), "cutoff": in.Cutoff.Format(time.RFC3339)},
			Key:    "id-documents-sweep:" + in.Cutoff.Format(time.RFC3339)})
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (a *AccountLife) deleteDocuments(ctx context.Context, docs []appdb.IDDocument) (contract.IDDocumentResult, error) {
	var res contract.IDDocumentResult
	if len(docs) == 0 {
		return res, nil
	}
	bucket := a.Lifecycle.Map.IDDocuments.Bucket
	ids := make([]string, 0, len(docs))
	for _, d := range docs {
		if _, err := a.Erasure.Objects.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(d.Object)}); err != nil {
			return res, fmt.Errorf("delete ID document object: %w", err)
		}
		res.Objects++
		ids = append(ids, d.ID)
	}
	n, err := appdb.DeleteIDDocuments(ctx, a.Lifecycle.App, a.Lifecycle.Map, ids)
	if err != nil {
		return res, classifyDB(err)
	}
	res.Rows = n
	return res, nil
}
