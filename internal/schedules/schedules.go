// Package schedules keeps Lethe's Temporal Schedules as code: every schedule
// is declared once, and Apply creates it or brings it in line with the
// configuration, idempotently, on every worker start. Schedules are visible
// and pausable in the Temporal UI's Schedules page; Apply never unpauses one.
package schedules

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// Spec is one schedule: run Workflow with Args every Every.
type Spec struct {
	ID        string
	Every     time.Duration
	Workflow  string
	Args      []any
	TaskQueue string
	Note      string // shown in the UI
}

func (s Spec) action() *client.ScheduleWorkflowAction {
	return &client.ScheduleWorkflowAction{ID: s.ID + "-run", Workflow: s.Workflow, Args: s.Args, TaskQueue: s.TaskQueue}
}

func (s Spec) spec() client.ScheduleSpec {
	return client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: s.Every}}}
}

// Apply creates each schedule or updates its interval, workflow and
// arguments; a schedule's paused state and history are left as they are.
func Apply(ctx context.Context, c client.Client, specs []Spec) error {
	for _, s := range specs {
		if s.Every <= 0 {
			return fmt.Errorf("schedule %s: interval must be positive", s.ID)
		}
		h := c.ScheduleClient().GetHandle(ctx, s.ID)
		_, err := h.Describe(ctx)
		var nf *serviceerror.NotFound
		switch {
		case errors.As(err, &nf):
			_, err = c.ScheduleClient().Create(ctx, client.ScheduleOptions{
				ID: s.ID, Spec: s.spec(), Action: s.action(), Note: s.Note,
				Overlap: 0, // skip a run while the previous one is still going
			})
			if err != nil {
				return fmt.Errorf("create schedule %s: %w", s.ID, err)
			}
		case err != nil:
			return fmt.Errorf("describe schedule %s: %w", s.ID, err)
		default:
			err = h.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
				sched := in.Description.Schedule
				spec := s.spec()
				sched.Spec, sched.Action = &spec, s.action()
				return &client.ScheduleUpdate{Schedule: &sched}, nil
			}})
			if err != nil {
				return fmt.Errorf("update schedule %s: %w", s.ID, err)
			}
		}
	}
	return nil
}
