package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// openDSRJobRe is a subject_request_id as Lethe makes them
// (processors.OpenDSRRequestID): a lower-case UUID. Only such a value goes
// into a visibility query.
var openDSRJobRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// openDSRStatuses are the request_status values passed on to the erasure;
// any other is passed as "unknown".
var openDSRStatuses = []string{"pending", "in_progress", "completed", "cancelled"}

// openDSRCallback receives an OpenDSR processor's status callback
// (POST /v1/callbacks/opendsr/{processor}). No API key: the processor's
// signature over the body is the authentication. A verified callback wakes
// the pending erasure with that subject_request_id at this processor
// (SignalProcessorCallback), which then asks the processor itself; the
// answer is 202 whether or not such an erasure is pending, as the
// processor retries callbacks that are not accepted.
func (s *Server) openDSRCallback(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("processor")
	if !processors.ValidName(name) || !s.Callbacks.Has(name) {
		writeError(w, http.StatusNotFound, "no OpenDSR processor of this name")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.MaxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeError(w, http.StatusRequestEntityTooLarge, "body larger than %d bytes", s.MaxBody)
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "could not read the body")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	cb, err := s.Callbacks.Verify(ctx, name, r.Header, body)
	if err != nil {
		status, reason := callbackRefusal(err)
		s.Log.InfoContext(r.Context(), "processor callback refused", "processor", name, "status", status, "reason", reason)
		writeError(w, status, "%s", reason)
		return
	}
	if !openDSRJobRe.MatchString(cb.SubjectRequestID) {
		writeError(w, http.StatusBadRequest, "subject_request_id is not a lower-case UUID")
		return
	}
	status := cb.RequestStatus
	if !slices.Contains(openDSRStatuses, status) {
		status = "unknown"
	}
	woke, err := s.wakeProcessorErasures(ctx, name, cb.SubjectRequestID, status)
	if err != nil {
		s.unavailable(w, r, "signal processor erasure", err)
		return
	}
	if woke == 0 {
		// Perhaps an erasure that has ended, or a request of another kind.
		s.Log.InfoContext(r.Context(), "processor callback for no pending erasure", "processor", name, "callback_status", status)
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"processor": name, "accepted": true})
}

// callbackRefusal is the answer to a refused callback: 401 for a domain or
// certificate not trusted, 403 for a signature that does not match, 400
// for a signed body that is no callback for Lethe. The reason never
// repeats what could be someone's address.
func callbackRefusal(err error) (int, string) {
	status, reason := http.StatusForbidden, "signature not valid"
	var ve *processors.OpenDSRVerifyError
	switch {
	case errors.Is(err, processors.ErrBadCallback):
		status = http.StatusBadRequest
		if errors.As(err, &ve) {
			reason = ve.Reason
		}
	case errors.As(err, &ve):
		reason = ve.Reason
		if ve.Status == http.StatusUnauthorized {
			status = http.StatusUnauthorized
		}
	}
	if strings.Contains(reason, "@") {
		reason = "signature not valid"
	}
	return status, truncateReason(reason)
}

// truncateReason bounds a refusal's reason.
func truncateReason(s string) string {
	const n = 300
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// wakeProcessorErasures signals the running erasures at processor whose
// LetheProcessorJob is jobID, and says how many it woke. An erasure that
// ends meanwhile is not an error.
func (s *Server) wakeProcessorErasures(ctx context.Context, processor, jobID, status string) (int, error) {
	query := fmt.Sprintf("%s = '%s' AND WorkflowType = '%s' AND ExecutionStatus = 'Running'",
		contract.ProcessorJobKey.GetName(), jobID, contract.WorkflowEraseAtProcessor)
	resp, err := s.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: 20})
	if err != nil {
		return 0, fmt.Errorf("find the erasure by its processor job: %w", err)
	}
	woke := 0
	for _, ex := range resp.GetExecutions() {
		wid, run := ex.GetExecution().GetWorkflowId(), ex.GetExecution().GetRunId()
		// The same subject_request_id is sent to every OpenDSR processor of
		// a request: only this processor's erasure is woken.
		if !strings.HasSuffix(wid, "-erasure-"+processor) {
			continue
		}
		err := s.Temporal.SignalWorkflow(ctx, wid, run, contract.SignalProcessorCallback, contract.ProcessorCallback{Status: status})
		var nf *serviceerror.NotFound
		switch {
		case errors.As(err, &nf):
		case err != nil:
			return woke, fmt.Errorf("signal the erasure at %s: %w", processor, err)
		default:
			woke++
		}
	}
	return woke, nil
}
