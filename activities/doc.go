// Package activities holds Lethe's activities: thin, retryable adapters from
// the workflows' contract (package workflows/contract) to the real parts in
// internal/. Each struct's exported methods are its activities: the worker
// registers the struct, and every method under its own name, which the
// workflows call it by and their histories record, so renaming one is a
// change to running workflows. A helper a struct needs is unexported.
//
// Every activity is idempotent by construction: it can run twice, or resume
// after a crash, without harm. Each one classifies its failures once, here at
// the boundary: transient ones are returned as they are and Temporal retries
// them; permanent ones become non-retryable application errors. No error
// string carries personal data: Temporal keeps error strings in histories.
package activities
