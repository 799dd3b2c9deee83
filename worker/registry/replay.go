package registry

import (
	"fmt"

	"go.temporal.io/sdk/worker"

	"github.com/lethe-privacy/lethe/internal/codec"
	"github.com/lethe-privacy/lethe/internal/config"
)

// NewReplayer is a workflow replayer with every workflow of this build
// registered as the worker registers it, reading payloads sealed under
// payloadKeys: it replays a recorded history against today's code, and
// fails, naming the event, where the code would now decide differently
// (see worker/registry/testdata/histories and README, "Changing a workflow").
func NewReplayer(payloadKeys []config.Key) (worker.WorkflowReplayer, error) {
	dc, err := codec.NewDataConverter(payloadKeys)
	if err != nil {
		return nil, fmt.Errorf("replayer: %w", err)
	}
	r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
		DataConverter: dc, FailureConverter: codec.NewFailureConverter(dc),
	})
	if err != nil {
		return nil, fmt.Errorf("replayer: %w", err)
	}
	RegisterWorkflows(r)
	return r, nil
}
