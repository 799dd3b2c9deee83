package api

import (
	"net/http"
	"testing"

	"github.com/lethe-privacy/lethe/workflows/contract"
)

// The failure path's retries are the privacy team's: an operator key sends
// the retry update to the right workflow, a backend key is refused.
func TestRetriesNeedAnOperatorAndReachTheirWorkflow(t *testing.T) {
	e := newIntakeEnv(t, nil)
	for _, c := range []struct{ path, workflowID string }{
		{"/v1/requests/req_abcdefghijklmnopqrstuvwxyz/retry", "req_abcdefghijklmnopqrstuvwxyz"},
		{"/v1/accounts/user-42/deactivation/retry", ""},
	} {
		if rec := e.call(t, "POST", c.path, "backend", "", `{}`); rec.Code != http.StatusForbidden {
			t.Errorf("%s with a backend key: %d %s", c.path, rec.Code, rec.Body)
		}
		before := len(e.tmp.updates)
		if rec := e.call(t, "POST", c.path, "operator", "", `{}`); rec.Code != http.StatusOK {
			t.Fatalf("%s with an operator key: %d %s", c.path, rec.Code, rec.Body)
		}
		if len(e.tmp.updates) != before+1 {
			t.Fatalf("%s: no update sent", c.path)
		}
		u := e.tmp.updates[len(e.tmp.updates)-1]
		if u.UpdateName != contract.UpdateRetry || c.workflowID != "" && u.WorkflowID != c.workflowID {
			t.Errorf("%s: update %s to %s", c.path, u.UpdateName, u.WorkflowID)
		}
	}
}
