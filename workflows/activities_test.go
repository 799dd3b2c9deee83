package workflows_test

import (
	"reflect"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"

	"github.com/lethe-privacy/lethe/activities"
)

// The activities the workflows call, named by their methods as the
// workflows name them: nil pointers, never run (a test puts a fake in the
// place of every activity its workflow calls).
var (
	lc          *activities.Lifecycle
	eraser      *activities.Erasure
	atProcessor *activities.ProcessorErasure
	ledger      *activities.Ledger
	notices     *activities.Notices
	exports     *activities.Exports
	changes     *activities.Changes
	accounts    *activities.AccountLife
	bulk        *activities.BulkErasure
)

// fake puts fn in the place of the activity act on env, for every call:
// act is an activity method (lc.AppendAudit), fn a function of the same
// signature, which the compiler checks. The first fake of an activity on
// an env answers; a later one for the same activity is never called. A
// fake need not be called (env.AssertExpectations checks other mocks).
func fake[F any](env *testsuite.TestWorkflowEnvironment, act, fn F) {
	args := make([]any, reflect.TypeOf(act).NumIn())
	for i := range args {
		args[i] = mock.Anything
	}
	env.OnActivity(act, args...).Return(fn).Maybe()
}
