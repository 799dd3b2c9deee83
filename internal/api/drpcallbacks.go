package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/drp"
	"github.com/lethe-privacy/lethe/internal/store"
)

// RunDRPCallbacks tells agents when their requests change (section 2.03)
// until ctx ends: every CallbackEvery it reads the requests agents manage
// against their records (which every workflow keeps current at each
// status change, extension included), and POSTs the Exercise Status
// object of each that changed to its status callback, signed with
// Lethe's key (drp.CallbackSignatureHeader). A callback not answered 2xx
// is sent again, later each time (at most hourly), with the latest state;
// no workflow is touched. Several API processes share the work: each row
// is leased while it is sent.
func (s *Server) RunDRPCallbacks(ctx context.Context) {
	if s.DRP == nil {
		return
	}
	every := s.DRP.CallbackEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.DRPCallbacksOnce(ctx); err != nil && ctx.Err() == nil {
			s.Log.ErrorContext(ctx, "DRP callbacks", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// DRPCallbacksOnce looks once at every request due a look.
func (s *Server) DRPCallbacksOnce(ctx context.Context) error {
	every := s.DRP.CallbackEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	for {
		due, err := s.records().DueDRPCallbacks(ctx, time.Minute, 50)
		if err != nil {
			return err
		}
		for _, d := range due {
			s.drpCallback(ctx, d, every)
		}
		if len(due) < 50 {
			return nil
		}
	}
}

// drpMaxFinalAttempts is how often an ended request's last status is
// sent before Lethe gives up (the last ones an hour apart).
const drpMaxFinalAttempts = 40

func (s *Server) drpCallback(ctx context.Context, d store.DRPCallbackDue, every time.Duration) {
	recs := s.records()
	// What the record says now, without asking the workflow.
	st := drp.Status{RequestID: d.RequestID}
	st.Status, st.Reason = drp.StatusFor(d.Status, d.RevokedAt != nil)
	if d.DueAt != nil && !drp.Final(st.Status) {
		st.ExpectedBy = drp.Timestamp(*d.DueAt)
	}
	// Received is the moment before the workflow asks for a code or starts
	// the work: the agent's answer already said which.
	if drpSameState(drpState(st), d.NotifiedState) || d.Status == domain.StatusReceived {
		if err := recs.DRPCallbackDone(ctx, d.RequestID, d.AgentID, d.NotifiedState, domain.Closed(d.Status), time.Now().Add(every)); err != nil {
			s.Log.ErrorContext(ctx, "DRP callback", "request_id", d.RequestID, "error", err)
		}
		return
	}
	// Changed: the full status (reason, extension) from the request's view.
	if v, err := s.lookup(ctx, d.RequestID); err == nil {
		full := s.drpStatusOf(v, d.DRPRequest)
		if full.Status == st.Status && full.Reason == st.Reason {
			full.ExpectedBy = st.ExpectedBy // the record's, which the state compares
			st = full
		}
	}
	st.AgentRequestID = d.AgentRequestID
	if st.ReceivedAt == "" {
		st.ReceivedAt = drp.Timestamp(d.ReceivedAt)
	}
	s.drpVerification(&st)
	err := s.postDRPCallback(ctx, d.StatusCallback, st)
	if err != nil && domain.Closed(d.Status) && d.Attempts+1 >= drpMaxFinalAttempts {
		// The request has ended and the agent has not taken its last status
		// for a day or more: stop, and leave it to the agent's GET.
		s.Log.WarnContext(ctx, "DRP callback given up", "request_id", d.RequestID, "agent_id", d.AgentID, "attempts", d.Attempts+1, "error", err)
		if err := recs.DRPCallbackDone(ctx, d.RequestID, d.AgentID, d.NotifiedState, true, time.Now()); err != nil {
			s.Log.ErrorContext(ctx, "DRP callback", "request_id", d.RequestID, "error", err)
		}
		return
	}
	if err != nil {
		backoff := every << min(d.Attempts, 10)
		if backoff > time.Hour || backoff <= 0 {
			backoff = time.Hour
		}
		s.Log.WarnContext(ctx, "DRP callback not delivered", "request_id", d.RequestID, "agent_id", d.AgentID, "attempt", d.Attempts+1, "error", err)
		if err := recs.DRPCallbackFailed(ctx, d.RequestID, d.AgentID, time.Now().Add(backoff)); err != nil {
			s.Log.ErrorContext(ctx, "DRP callback", "request_id", d.RequestID, "error", err)
		}
		return
	}
	s.Log.InfoContext(ctx, "DRP callback delivered", "request_id", d.RequestID, "agent_id", d.AgentID, "status", st.Status, "reason", st.Reason)
	if err := recs.DRPCallbackDone(ctx, d.RequestID, d.AgentID, drpState(st), drp.Final(st.Status), time.Now().Add(every)); err != nil {
		s.Log.ErrorContext(ctx, "DRP callback", "request_id", d.RequestID, "error", err)
	}
}

// postDRPCallback POSTs st, signed, to the agent's callback. The error
// names the status code or the transport's failure, never the address.
func (s *Server) postDRPCallback(ctx context.Context, to string, st drp.Status) error {
	body, err := json.Marshal(st)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, to, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("callback address does not parse")
	}
	req.Header.Set("Content-Type", "application/json")
	sig, signedAt := drp.SignCallback(s.DRP.Key, body, time.Now())
	req.Header.Set(drp.CallbackSignatureHeader, sig)
	req.Header.Set(drp.CallbackSignedAtHeader, signedAt)
	req.Header.Set("X-DRP-Business-ID", s.DRP.BusinessID)
	client := s.DRP.Client
	if client == nil {
		// An agent's server cannot bounce the signed status elsewhere
		// (another host, an internal address): redirects are not followed.
		client = &http.Client{Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("callback not sent: %T", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16)) // discarded, as section 2.03.1 says
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the agent answered %d", resp.StatusCode)
	}
	return nil
}
