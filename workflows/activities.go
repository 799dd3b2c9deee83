package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/lethe-privacy/lethe/activities"
)

// The activities more than one workflow calls. A workflow names an activity
// by its method (workflow.ExecuteActivity(ctx, lifecycle.AppendAudit, in)):
// the SDK takes the method's name, which is the name the worker registers
// it under, and the compiler checks that the method exists (not the input:
// ExecuteActivity takes any). These pointers stay nil: a workflow never
// runs an activity itself.
var (
	lifecycle *activities.Lifecycle   // request records, audit, mail, codes, keys
	ledger    *activities.Ledger      // the erasure ledger and the backups (P6)
	accounts  *activities.AccountLife // account status, the inactivity sweep, ID documents
)

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
