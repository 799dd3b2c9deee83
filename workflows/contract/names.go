package contract

// Workflow names, as the worker registers them and the API starts them.
const (
	WorkflowPrivacyRequest = "PrivacyRequest"
	WorkflowEraseSubject   = "EraseSubject"
	WorkflowRetainRecords  = "RetainLetheRecords"
	WorkflowDeactivation   = "AccountDeactivation"
	WorkflowInactiveSweep  = "InactiveAccountSweep"
	WorkflowIDDocuments    = "IDDocumentDeletion"
	WorkflowIDDocSweep     = "IDDocumentSweep"
	WorkflowBreach         = "BreachNotification"
	WorkflowSendNotices    = "SendNotices"
	WorkflowPolicyNotice   = "PolicyChangeNotice"
	WorkflowBuildExport    = "BuildExport"
	WorkflowKeepExport     = "KeepExport"
	WorkflowReleaseHold    = "ReleaseHold"
)

// TaskQueue is where Lethe's workflows and activities run unless configured otherwise.
const TaskQueue = "lethe"
