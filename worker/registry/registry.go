// Package registry registers every Lethe workflow and activity on a worker.
// `go run ./worker` and the dev stack (`starter dev`) both call it, so what
// runs in dev is what runs in production.
package registry

import (
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/lethe-privacy/lethe/activities"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/workflows"
)

// Deps are the real parts the activities work with.
type Deps struct {
	Lethe   *pgxpool.Pool // Lethe's own database
	App     *pgxpool.Pool // the application database of the data map
	Objects *s3.Client
	Map     *datamap.Map
	Log     *slog.Logger
}

// Register puts every workflow and activity on r under its contract name.
func Register(r worker.Registry, d Deps) {
	r.RegisterWorkflowWithOptions(workflows.EraseSubject, workflow.RegisterOptions{Name: workflows.WorkflowEraseSubject})

	for name, fn := range Activities(d) {
		r.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
}

// Activities maps each activity name of the workflows' contract to its implementation.
func Activities(d Deps) map[string]any {
	requests := &activities.Requests{DB: d.Lethe}
	erasure := &activities.Erasure{App: d.App, Objects: d.Objects, Map: d.Map, Log: d.Log}
	return map[string]any{
		workflows.ActivityRecordRequest: requests.RecordRequest,
		workflows.ActivityEraseTables:   erasure.EraseTables,
		workflows.ActivityEraseObjects:  erasure.EraseObjects,
	}
}
