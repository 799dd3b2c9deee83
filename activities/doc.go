// Package activities holds Lethe's activities: thin, retryable adapters from
// the workflows' contracts (package workflows) to the real parts in internal/.
//
// Every activity is idempotent by construction: it can run twice, or resume
// after a crash, without harm. Each one classifies its failures once, here at
// the boundary: transient ones are returned as they are and Temporal retries
// them; permanent ones become non-retryable application errors. No error
// string carries personal data: Temporal keeps error strings in histories.
package activities
