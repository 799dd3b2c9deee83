package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"
)

// IDDocumentInput: an age-appeal ticket closed; its ID documents must go (P10).
type IDDocumentInput struct {
	Ticket      string
	ClosedAt    time.Time
	DeleteAfter time.Duration // at most 60 days after the ticket closed
}

// IDDocumentResult is the proof of deletion.
type IDDocumentResult struct {
	Objects   int       `json:"objects"`
	Rows      int       `json:"rows"`
	DeletedAt time.Time `json:"deleted_at"`
}

// TicketDocumentsInput asks for one ticket's documents to go.
type TicketDocumentsInput struct {
	Ticket string
}

// OverdueDocumentsInput asks for every document of tickets closed before Cutoff to go.
type OverdueDocumentsInput struct {
	Cutoff time.Time
}

// IDDocumentWorkflowID is the one deletion workflow of a ticket.
func IDDocumentWorkflowID(ticket string) string { return "id-documents-" + ticket }

// IDDocumentDeletion keeps "we will delete it within sixty days after the age
// appeal ticket is closed": a durable timer until ClosedAt + DeleteAfter,
// then the document's object and rows go, and the proof is audited.
func IDDocumentDeletion(ctx workflow.Context, in IDDocumentInput) (IDDocumentResult, error) {
	if wait := in.ClosedAt.Add(in.DeleteAfter).Sub(workflow.Now(ctx)); wait > 0 {
		if err := workflow.Sleep(ctx, wait); err != nil {
			return IDDocumentResult{}, err
		}
	}
	ctx = withActivityDefaults(ctx)
	var res IDDocumentResult
	if err := workflow.ExecuteActivity(ctx, ActivityDeleteTicketDocs, TicketDocumentsInput{Ticket: in.Ticket}).Get(ctx, &res); err != nil {
		return res, fmt.Errorf("delete ID documents: %w", err)
	}
	res.DeletedAt = workflow.Now(ctx)
	return res, nil
}

// IDDocumentSweep runs daily: it catches any document whose timer was missed
// (a ticket closed while Lethe was down, or never reported).
func IDDocumentSweep(ctx workflow.Context, deleteAfter time.Duration) (IDDocumentResult, error) {
	ctx = withActivityDefaults(ctx)
	var res IDDocumentResult
	cutoff := workflow.Now(ctx).Add(-deleteAfter)
	if err := workflow.ExecuteActivity(ctx, ActivityDeleteOverdueIDs, OverdueDocumentsInput{Cutoff: cutoff}).Get(ctx, &res); err != nil {
		return res, fmt.Errorf("sweep ID documents: %w", err)
	}
	res.DeletedAt = workflow.Now(ctx)
	return res, nil
}
