// Package domain is Lethe's vocabulary, written once: periods ("1mo",
// "45d", "10bd") and the calendar arithmetic behind them, jurisdictions and
// the policy a request is promised, request types and statuses. It has no
// Temporal SDK and no I/O: workflows, activities, the data map and the API
// all import it.
package domain
