// Package contract is the contract between Lethe's workflows, its
// activities and its API: the inputs, results and views of every workflow,
// the inputs and results of every activity, the names of workflows,
// updates, signals and queries, workflow ids, mail template names, the
// erasure receipt, and the search attributes. One file per process, as in
// package workflows.
//
// These types are what Temporal records in workflow histories: a field or
// JSON tag changed here must still decode every running workflow's history.
//
// The package is plain data and pure helpers. It never imports the SDK's
// workflow package (only go.temporal.io/sdk/temporal, for the search
// attribute keys), so activities and the API use it without depending on
// the workflows, and the workflows can refer to the activities' methods.
package contract
