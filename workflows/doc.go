// Package workflows holds Lethe's workflows: deterministic code only, one file
// per process. A workflow reads like the policy it enforces; the I/O it needs
// happens in activities, which it calls by their methods on nil pointers of
// package activities (see activities.go), so the compiler checks that every
// activity a workflow calls exists.
// Their inputs and results, and everything else the API and the activities
// share with the workflows, are in package contract.
//
// Nothing here may do I/O, read the clock or draw random numbers outside the
// Temporal SDK: the package imports activities only to name their methods,
// never to run them.
package workflows
