package registry

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.temporal.io/sdk/worker"

	"github.com/lethe-privacy/lethe/internal/codec"
	"github.com/lethe-privacy/lethe/internal/config"
)

// HistoryKeys are the payload keys the recorded histories in dir are sealed
// under (dir/payload-key.txt): a test key that seals only test data.
func HistoryKeys(dir string) ([]config.Key, error) {
	b, err := os.ReadFile(filepath.Join(dir, "payload-key.txt"))
	if err != nil {
		return nil, fmt.Errorf("history keys: %w", err)
	}
	keys, err := config.ParseKeys(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("history keys: %w", err)
	}
	return keys, nil
}

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
