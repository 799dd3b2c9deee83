package contract

import "time"

// ExportInput builds a person's data bundle (P3): access, or portability.
type ExportInput struct {
	RequestID   string
	SubjectRef  string
	Identity    []byte
	Portability bool // only the data the person provided (GDPR Art. 20)
}

// ExportResult is where the bundle is and what it holds (no personal data).
type ExportResult struct {
	Key     string   `json:"key"` // the bundle's S3 key in the export bucket
	Sources []string `json:"sources"`
	Gaps    []string `json:"gaps,omitempty"`
	Bytes   int64    `json:"bytes"`
}

// ProcessorExportInput fetches one processor's data about the person into
// Lethe's export bucket, ahead of the bundle.
type ProcessorExportInput struct {
	RequestID  string
	SubjectRef string
	Identity   []byte
	Processor  string
}

// BundleInput builds the bundle from every system, with the processors' parts fetched before.
type BundleInput struct {
	RequestID   string
	SubjectRef  string
	Identity    []byte
	Portability bool
	Processors  []string          // fetched parts to include
	Gaps        map[string]string // processor -> why it is missing
}

// ExpiryInput keeps a bundle for as long as its link is valid.
type ExpiryInput struct {
	RequestID string
	Key       string
	ValidFor  time.Duration
}

// LinkResult is a download link.
type LinkResult struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// LinkInput asks for a presigned link to a bundle, valid until ExpiresAt.
type LinkInput struct {
	Key       string
	ExpiresAt time.Time
}

// UpdateNewLink asks a kept bundle for a fresh link.
const UpdateNewLink = "new_link"

// ExpiryWorkflowID is the workflow that keeps a request's bundle.
func ExpiryWorkflowID(requestID string) string { return requestID + "-bundle" }

// ProcessorDecision is an operator's decision about a processor that keeps failing.
type ProcessorDecision struct {
	Processor string
	Action    string // "retry" or "skip"
	Reason    string // why it is left out (skip); stated in the bundle's index
	Actor     string
}

// UpdateProcessorDecision carries a ProcessorDecision to a running export.
const UpdateProcessorDecision = "processor_decision"

// PushInput sends a bundle to a third party's HTTPS endpoint.
type PushInput struct {
	RequestID string
	Key       string
	URL       string // personal-ish (the person chose it): only in encrypted payloads
}
