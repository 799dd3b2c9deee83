package activities

import (
	"context"
	"time"

	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// AccountLabel is how the person's mail names the account row when the
// data map gives its table no label.
const AccountLabel = "your account"

// receiptLabels are the data map's labels of its tables and S3 locations,
// by the names an erasure's receipt uses (schema.table, bucket/prefix).
func receiptLabels(m *datamap.Map) contract.ReceiptLabels {
	l := contract.ReceiptLabels{Tables: map[string]string{}, Locations: map[string]string{}}
	if m == nil {
		return l
	}
	if a := m.Accounts; a != nil {
		l.Tables[a.Table] = AccountLabel
	}
	for _, t := range m.Tables {
		if t.Label != "" {
			l.Tables[t.Name] = t.Label
		}
	}
	for _, s := range m.S3 {
		if s.Label != "" {
			l.Locations[s.Bucket+"/"+s.Prefix] = s.Label
		}
	}
	return l
}

// mailLines are the lines a mail shows: an erasure's receipt in the
// person's words when the mail goes to the person, else the workflow's.
func (l *Lifecycle) mailLines(in contract.SendMailInput) []string {
	if in.Data.Receipt != nil && !in.ToPrivacyTeam {
		return in.Data.Receipt.PersonLines(receiptLabels(l.Map))
	}
	return in.Data.Lines
}

// mailDueDate is the due date a mail shows: for a task's mail, the
// request's own due date as Lethe recorded it (extensions included), zero
// when the task belongs to no request (an account's erasure).
func (l *Lifecycle) mailDueDate(ctx context.Context, in contract.SendMailInput) (time.Time, error) {
	if in.Data.TaskDeadline.IsZero() {
		return in.Data.DueDate, nil
	}
	due, _, err := l.records().DueAt(ctx, in.RequestID)
	if err != nil {
		return time.Time{}, classifyDB(err)
	}
	return due, nil
}
