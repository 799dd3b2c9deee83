package metrics

// Series is one of Lethe's own series, as README.md "Metrics" lists it.
type Series struct {
	Name   string
	Type   string // counter, gauge or histogram
	Labels []string
	// Process is the endpoint that serves it: "worker" or "api".
	Process string
	Help    string
}

// The names of Lethe's series.
const (
	// The worker's: what its activities did.
	ProcessorCalls        = "lethe_processor_calls_total"
	ProcessorCallDuration = "lethe_processor_call_duration_seconds"
	MailSent              = "lethe_mail_sent_total"
	NoticesSent           = "lethe_notices_total"

	// The API's: its HTTP traffic.
	HTTPRequests        = "lethe_http_requests_total"
	HTTPRequestDuration = "lethe_http_request_duration_seconds"

	// The API's, read from Lethe's database at every scrape.
	Requests                 = "lethe_requests"
	RequestsOverdue          = "lethe_requests_overdue"
	RequestsDueSoon          = "lethe_requests_due_soon"
	RequestOldestOverdue     = "lethe_request_oldest_overdue_seconds"
	OperatorTasksOpen        = "lethe_operator_tasks_open"
	OperatorTasksOverdue     = "lethe_operator_tasks_overdue"
	OperatorTaskOldestAge    = "lethe_operator_task_oldest_age_seconds"
	BackupWatchesOpen        = "lethe_backup_watches_open"
	BackupWatchesPastPromise = "lethe_backup_watches_past_promise"
	BackupWatchOldestAge     = "lethe_backup_watch_oldest_age_seconds"
	HoldsActive              = "lethe_holds_active"
	DatabaseUp               = "lethe_metrics_database_up"
	DatabaseScrapeDuration   = "lethe_metrics_database_scrape_seconds"
)

// Catalogue lists every lethe_* series, the single place their names,
// labels and help texts are written.
func Catalogue() []Series {
	return []Series{
		{ProcessorCalls, "counter", []string{"processor", "action", "outcome"}, "worker",
			"Calls of a processor's API (or manual connector) by the worker: action erase (also when asking how an asynchronous erasure goes), confirm (a later check), export, update or consent; outcome the processor's answer (done, already_gone, not_found, pending_async, needs_operator, not_applicable, still_present) or error_retryable, error_needs_operator, error."},
		{ProcessorCallDuration, "histogram", []string{"processor", "action"}, "worker",
			"How long a call of a processor took, in seconds, whatever its outcome."},
		{MailSent, "counter", []string{"template"}, "worker",
			"Mail sent to one person (request mail, the privacy team's reminders and tasks, the authority's breach report), by template; a retried activity that finds its mail sent counts nothing."},
		{NoticesSent, "counter", []string{"template", "outcome"}, "worker",
			"People a breach or policy-change notice went to (outcome sent), or could not go to for want of an address (outcome no_email), by template (breach_notice, policy_change)."},
		{HTTPRequests, "counter", []string{"route", "code"}, "api",
			"API requests by route pattern (e.g. \"POST /v1/requests\", \"unmatched\") and HTTP status code."},
		{HTTPRequestDuration, "histogram", []string{"route"}, "api",
			"How long the API took to answer, in seconds, by route pattern."},
		{Requests, "gauge", []string{"type", "status"}, "api",
			"Privacy requests on record by type and status, closed ones included."},
		{RequestsOverdue, "gauge", []string{"type"}, "api",
			"Open requests past their due date, by type."},
		{RequestsDueSoon, "gauge", []string{"type"}, "api",
			"Open requests due within LETHE_METRICS_DUE_SOON (7 days) and not yet overdue, by type."},
		{RequestOldestOverdue, "gauge", []string{"type"}, "api",
			"How long ago the due date of the most overdue open request passed, in seconds, by type (0: none overdue)."},
		{OperatorTasksOpen, "gauge", []string{"processor"}, "api",
			"Operator tasks open (an erasure at a processor waiting for the privacy team), by processor."},
		{OperatorTasksOverdue, "gauge", []string{"processor"}, "api",
			"Open operator tasks past their deadline, by processor."},
		{OperatorTaskOldestAge, "gauge", []string{"processor"}, "api",
			"Age of the oldest open operator task, in seconds, by processor (0: none open)."},
		{BackupWatchesOpen, "gauge", nil, "api",
			"Erased people whose backups from before the erasure are not yet known to have rotated out (the erasure ledger's open backup watches); only when the data map declares backups."},
		{BackupWatchesPastPromise, "gauge", nil, "api",
			"Of those, the ones erased longer ago than the data map's backup promise: the promise is broken for them."},
		{BackupWatchOldestAge, "gauge", nil, "api",
			"Time since the erasure of the oldest open backup watch, in seconds (0: none open)."},
		{HoldsActive, "gauge", []string{"table"}, "api",
			"Legal holds still keeping a person's rows (one per erasure and held table), by table."},
		{DatabaseUp, "gauge", nil, "api",
			"1 when the last scrape read every database gauge, 0 when a read failed (its series are missing from that scrape)."},
		{DatabaseScrapeDuration, "gauge", nil, "api",
			"How long reading the database gauges took at the last scrape, in seconds."},
	}
}

// series finds a catalogue entry by name; a name not there is a bug.
func series(name string) Series {
	for _, s := range Catalogue() {
		if s.Name == name {
			return s
		}
	}
	panic("metrics: " + name + " is not in the catalogue")
}
