package contract

import "time"

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
