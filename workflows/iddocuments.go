package workflows

import (
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe/workflows/contract"
	"go.temporal.io/sdk/workflow"
)

// IDDocumentDeletion keeps "we will delete it within sixty days after the age
// appeal ticket is closed": a durable timer until ClosedAt + DeleteAfter,
// then the document's object and rows go, and the proof is audited.
func IDDocumentDeletion(ctx workflow.Context, in contract.IDDocumentInput) (contract.IDDocumentResult, error) {
	if wait := in.ClosedAt.Add(in.DeleteAfter).Sub(workflow.Now(ctx)); wait > 0 {
		if err := workflow.Sleep(ctx, wait); err != nil {
			return contract.IDDocumentResult{}, err
		}
	}
	ctx = withActivityDefaults(ctx)
	var res contract.IDDocumentResult
	if err := workflow.ExecuteActivity(ctx, accounts.DeleteTicketDocuments, contract.TicketDocumentsInput{Ticket: in.Ticket}).Get(ctx, &res); err != nil {
		return res, fmt.Errorf("delete ID documents: %w", err)
	}
	res.DeletedAt = workflow.Now(ctx)
	return res, nil
}

// IDDocumentSweep runs daily: it catches any document whose timer was missed
// (a ticket closed while Lethe was down, or never reported).
func IDDocumentSweep(ctx workflow.Context, deleteAfter time.Duration) (contract.IDDocumentResult, error) {
	ctx = withActivityDefaults(ctx)
	var res contract.IDDocumentResult
	cutoff := workflow.Now(ctx).Add(-deleteAfter)
	if err := workflow.ExecuteActivity(ctx, accounts.DeleteOverdueIDDocuments, contract.OverdueDocumentsInput{Cutoff: cutoff}).Get(ctx, &res); err != nil {
		return res, fmt.Errorf("sweep ID documents: %w", err)
	}
	res.DeletedAt = workflow.Now(ctx)
	return res, nil
}
