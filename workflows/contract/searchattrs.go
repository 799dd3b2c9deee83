package contract

import (
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
)

// Search attributes let an operator find requests in the Temporal UI, e.g.
// `LetheRequestType = "erasure" AND LetheStatus = "in_progress"`.
// They never carry personal data: the person is a keyed-hash subject reference.
var (
	RequestTypeKey  = temporal.NewSearchAttributeKeyKeyword("LetheRequestType")
	StatusKey       = temporal.NewSearchAttributeKeyKeyword("LetheStatus")
	SubjectRefKey   = temporal.NewSearchAttributeKeyKeyword("LetheSubjectRef")
	JurisdictionKey = temporal.NewSearchAttributeKeyKeyword("LetheJurisdiction")
	DueAtKey        = temporal.NewSearchAttributeKeyTime("LetheDueAt")
	// A notice campaign's progress (breach, policy change).
	NoticesFoundKey = temporal.NewSearchAttributeKeyInt64("LetheNoticesFound")
	NoticesSentKey  = temporal.NewSearchAttributeKeyInt64("LetheNoticesSent")
	// ProcessorJobKey is a processor's id for a pending erasure there (for
	// OpenDSR the subject_request_id UUID): a status callback finds the
	// EraseAtProcessor workflow by it.
	ProcessorJobKey = temporal.NewSearchAttributeKeyKeyword("LetheProcessorJob")
	// TaskDueAtKey is set while an erasure at a processor waits on an
	// operator: the task's deadline. The privacy team's list of open tasks
	// in the Temporal UI is `LetheTaskDueAt IS NOT NULL`, soonest first.
	TaskDueAtKey = temporal.NewSearchAttributeKeyTime("LetheTaskDueAt")
)

// SearchAttributes lists Lethe's search attributes with their types, for
// registering them on a namespace.
func SearchAttributes() map[string]enumspb.IndexedValueType {
	return map[string]enumspb.IndexedValueType{
		RequestTypeKey.GetName():  enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		StatusKey.GetName():       enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SubjectRefKey.GetName():   enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		JurisdictionKey.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		DueAtKey.GetName():        enumspb.INDEXED_VALUE_TYPE_DATETIME,
		NoticesFoundKey.GetName(): enumspb.INDEXED_VALUE_TYPE_INT,
		NoticesSentKey.GetName():  enumspb.INDEXED_VALUE_TYPE_INT,
		ProcessorJobKey.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		TaskDueAtKey.GetName():    enumspb.INDEXED_VALUE_TYPE_DATETIME,
	}
}
