// Package workflows holds Lethe's workflows: deterministic code only, one file
// per process. A workflow reads like the policy it enforces; the I/O it needs
// happens in activities, which it names by the constants in activities.go and
// whose inputs and results are the types declared next to each workflow.
//
// Nothing here may do I/O, read the clock or draw random numbers outside the
// Temporal SDK: the package imports no database, network or storage client.
package workflows
