package contract

import (
	"time"

	"github.com/lethe-privacy/lethe/internal/domain"
)

// RetentionInput says how long Lethe keeps its own records of a closed request.
type RetentionInput struct {
	KeepFor domain.Period // 24 months by default: the CCPA record-keeping period
}

// PurgeRecordsInput asks for the personal data of requests closed before Cutoff to go.
type PurgeRecordsInput struct {
	Cutoff time.Time
}

// PurgeRecordsResult counts what went.
type PurgeRecordsResult struct {
	Requests    int `json:"requests"`     // closed requests past their retention
	SubjectKeys int `json:"subject_keys"` // people whose key was destroyed
}
