package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Activity names: the contract between these workflows and package activities.
// The worker registers each activity under exactly this name (a test checks).
const (
	ActivityRecordTransition = "RecordTransition"
	ActivityIssueCode        = "IssueVerificationCode"
	ActivitySendMail         = "SendRequestMail"
	ActivityShredSubject     = "ShredSubject"
	ActivityEraseTables      = "EraseTables"
	ActivityEraseObjects     = "EraseObjects"
	ActivityPurgeRecords     = "PurgeClosedRequests"
	ActivitySetAccountStatus = "SetAccountStatus"
	ActivityAudit            = "AppendAudit"
	ActivitySweepPage        = "SweepInactivePage"
	ActivityDeleteTicketDocs = "DeleteTicketDocuments"
	ActivityDeleteOverdueIDs = "DeleteOverdueIDDocuments"
	ActivityApplyCorrections = "ApplyCorrections"
	ActivityUpdateProcessor  = "UpdateProcessor"
	ActivityRecordConsent    = "RecordConsent"
	ActivityProcessorConsent = "SetProcessorConsent"
	ActivityCollectAffected  = "CollectAffected"
	ActivityNoticeCounts     = "NoticeCounts"
	ActivitySendBatch        = "SendNoticeBatch"
	ActivityRenderNotice     = "RenderBreachNotice"
	ActivityWriteReport      = "WriteAuthorityReport"
	ActivityPublicNotice     = "WritePublicNotice"
	ActivityRenderPolicy     = "RenderPolicyNotice"
	ActivityExportSources    = "ExportSources"
	ActivityFetchProcessor   = "FetchProcessorExport"
	ActivityBuildBundle      = "BuildBundle"
	ActivityPresignLink      = "PresignLink"
	ActivityDeleteBundle     = "DeleteBundle"
	ActivityPushBundle       = "PushBundle"
	ActivityPlanErasure      = "PlanErasure"
	ActivityVerifyErasure    = "VerifyErasure"
	ActivityEraseHeld        = "EraseHeldRows"
)

// ActivityNames lists every activity the workflows call.
func ActivityNames() []string {
	return append([]string{ActivityRecordErasure, ActivityReconcilePage, ActivityCountBackups, ActivityMarkBackupsClear, // erasure ledger and backups (ledger.go, reconcile.go, backups.go)
		ActivityRecordTransition, ActivityIssueCode, ActivitySendMail,
		ActivityShredSubject, ActivityEraseTables, ActivityEraseObjects, ActivityPurgeRecords,
		ActivitySetAccountStatus, ActivityAudit, ActivitySweepPage, ActivityDeleteTicketDocs, ActivityDeleteOverdueIDs,
		ActivityApplyCorrections, ActivityUpdateProcessor, ActivityRecordConsent, ActivityProcessorConsent,
		ActivityCollectAffected, ActivityNoticeCounts, ActivitySendBatch, ActivityRenderNotice, ActivityWriteReport,
		ActivityPublicNotice, ActivityRenderPolicy,
		ActivityExportSources, ActivityFetchProcessor, ActivityBuildBundle, ActivityPresignLink, ActivityDeleteBundle, ActivityPushBundle,
		ActivityPlanErasure, ActivityVerifyErasure, ActivityEraseHeld}, ProcessorErasureActivityNames()...)
}

// defaultActivityOptions retries with backoff for as long as a person's
// deadline allows; an activity classifies permanent failures as non-retryable.
func withActivityDefaults(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		HeartbeatTimeout:    30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    5 * time.Minute,
		},
	})
}
