package processors

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// ActionConfirm is a later check that an earlier erasure holds.
const ActionConfirm Action = "confirm"

// StatusStillPresent: a confirmation found the processor still holding
// data an earlier erasure removed or was asked to remove.
const StatusStillPresent Status = "still_present"

// Confirmer re-checks an earlier erasure at the processor, weeks later,
// when the person's identity may be gone: it uses only what the erasure's
// Outcome recorded (its Refs and JobID), never a Subject.
//
// The answer's Status is StatusAlreadyGone when the processor holds
// nothing of what the erasure named, StatusDone when the processor reports
// its own erasure completed (OpenDSR), StatusPending while it still works
// on it, StatusStillPresent when the data is still there, and
// StatusNeedsOperator (with Steps) when the connector has no way to check:
// a person must ask the processor.
type Confirmer interface {
	Confirm(ctx context.Context, o Outcome) (Outcome, error)
}

// refIDs returns the ids of o's refs of one kind, in order.
func refIDs(o Outcome, kind string) []string {
	var ids []string
	for _, r := range o.Refs {
		if r.Kind == kind && r.ID != "" {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

// nothingToCheck answers a confirmation of an erasure that found nothing
// to erase (and so recorded no object): nothing can have come back through
// it, and without the identity there is nothing else to look up.
func nothingToCheck(name string, earlier Outcome, kind string) (Outcome, bool) {
	out := Outcome{Processor: name, Action: ActionConfirm, Status: StatusAlreadyGone, JobID: earlier.JobID}
	if len(refIDs(earlier, kind)) > 0 {
		return out, false
	}
	if earlier.Status == StatusAlreadyGone {
		out.Note = "the erasure found nothing to erase; nothing to re-check"
		return out, true
	}
	out.Status = StatusNeedsOperator
	out.Steps = []string{"The erasure recorded no " + kind + " id to re-check: ask " + name +
		" to confirm that the subject's data is erased, and record its answer."}
	return out, true
}

// Confirm implements Confirmer: GET /v1/customers/{id} for every customer
// the erasure named; {"deleted":true} and 404 resource_missing count as gone.
func (s *Stripe) Confirm(ctx context.Context, earlier Outcome) (Outcome, error) {
	if out, done := nothingToCheck(s.name, earlier, "customer"); done {
		return out, nil
	}
	out := Outcome{Processor: s.name, Action: ActionConfirm, Status: StatusAlreadyGone}
	for _, id := range refIDs(earlier, "customer") {
		r, err := s.c.do(ctx, ActionConfirm, call{method: http.MethodGet, path: customerPath(id)})
		if err != nil {
			return Outcome{}, err
		}
		out.HTTPStatus = r.Status
		out.addRef("customer", id)
		out.addRef("request_id", s.c.requestID(r))
		switch {
		case resourceMissing(r):
			continue
		case r.Status != http.StatusOK:
			return Outcome{}, s.c.fail(ActionConfirm, r)
		}
		var o stripeObject
		if json.Unmarshal(r.Body, &o) != nil {
			return Outcome{}, s.c.badBody(ActionConfirm, r)
		}
		if !o.Deleted {
			out.Status = StatusStillPresent
		}
	}
	return out, nil
}

// Confirm implements Confirmer: GET each member the erasure named, by the
// "<list>/<contact id>" it recorded (Mailchimp accepts a contact_id where
// it takes a subscriber hash); 404 counts as gone.
func (m *Mailchimp) Confirm(ctx context.Context, earlier Outcome) (Outcome, error) {
	if out, done := nothingToCheck(m.name, earlier, "member"); done {
		return out, nil
	}
	out := Outcome{Processor: m.name, Action: ActionConfirm, Status: StatusAlreadyGone}
	for _, ref := range refIDs(earlier, "member") {
		list, member, ok := strings.Cut(ref, "/")
		if !ok || list == "" || member == "" {
			return Outcome{}, m.c.local(ActionConfirm, "member ref %q is not <list>/<contact id>", ref)
		}
		r, err := m.c.do(ctx, ActionConfirm, call{method: http.MethodGet,
			path:  "/lists/" + url.PathEscape(list) + "/members/" + url.PathEscape(member),
			query: url.Values{"fields": {"contact_id,status"}}})
		if err != nil {
			return Outcome{}, err
		}
		out.HTTPStatus = r.Status
		switch r.Status {
		case http.StatusNotFound:
		case http.StatusOK:
			out.Status = StatusStillPresent
		default:
			return Outcome{}, m.c.fail(ActionConfirm, r)
		}
		out.addRef("member", ref)
	}
	return out, nil
}

// Confirm implements Confirmer: GET /v3/marketing/contacts/{id} for every
// contact the erasure named; 404 counts as gone. While SendGrid's
// asynchronous delete job has not run, the contact is still present.
func (s *SendGrid) Confirm(ctx context.Context, earlier Outcome) (Outcome, error) {
	if out, done := nothingToCheck(s.name, earlier, "contact"); done {
		return out, nil
	}
	out := Outcome{Processor: s.name, Action: ActionConfirm, Status: StatusAlreadyGone, JobID: earlier.JobID}
	for _, id := range refIDs(earlier, "contact") {
		r, err := s.c.do(ctx, ActionConfirm, call{method: http.MethodGet,
			path: "/v3/marketing/contacts/" + url.PathEscape(id)})
		if err != nil {
			return Outcome{}, err
		}
		out.HTTPStatus = r.Status
		out.addRef("contact", id)
		switch {
		case r.Status == http.StatusNotFound && json.Valid(r.Body):
		case r.Status == http.StatusOK:
			out.Status = StatusStillPresent
		default:
			return Outcome{}, s.c.fail(ActionConfirm, r)
		}
	}
	return out, nil
}

// Confirm implements Confirmer: GET /requests/{subject_request_id} (the
// erasure's JobID). completed gives StatusDone, pending and in_progress
// StatusPending, cancelled a KindNeedsOperator error; a processor that no
// longer knows the request leaves it to an operator.
func (o *OpenDSR) Confirm(ctx context.Context, earlier Outcome) (Outcome, error) {
	out := Outcome{Processor: o.name, Action: ActionConfirm, JobID: earlier.JobID}
	if earlier.JobID == "" {
		out.Status = StatusNeedsOperator
		out.Steps = []string{"The erasure recorded no subject_request_id: ask " + o.name +
			" to confirm that the subject's data is erased, and record its answer."}
		return out, nil
	}
	st, r, found, err := o.getStatus(ctx, ActionConfirm, earlier.JobID)
	if err != nil {
		return Outcome{}, err
	}
	out.HTTPStatus = r.Status
	if !found {
		out.Status = StatusNeedsOperator
		out.Steps = []string{"The processor no longer knows subject request " + earlier.JobID +
			": ask " + o.name + " to confirm that the erasure was carried out, and record its answer."}
		return out, nil
	}
	out.addRef("controller", scrub(st.ControllerID))
	if st.SubjectRequestID != "" && st.SubjectRequestID != earlier.JobID {
		e := o.c.badBody(ActionConfirm, r)
		e.Reason = "processor answered for another subject_request_id"
		return Outcome{}, e
	}
	switch st.RequestStatus {
	case "completed":
		out.Status = StatusDone
	case "pending", "in_progress":
		out.Status = StatusPending
		out.Note = "processor status " + st.RequestStatus
	case "cancelled":
		e := o.c.badBody(ActionConfirm, r)
		e.Code, e.Reason = "cancelled", "the processor cancelled the request"
		return Outcome{}, e
	default:
		e := o.c.badBody(ActionConfirm, r)
		e.Reason = "unknown request_status"
		return Outcome{}, e
	}
	return out, nil
}

// Confirm implements Confirmer. Lethe's webhook protocol has no status
// call (every call names the subject, whose identity is gone by now), so a
// person must ask the receiver's owner.
func (h *Webhook) Confirm(_ context.Context, earlier Outcome) (Outcome, error) {
	step := "The webhook protocol has no status call: ask the owner of " + h.name +
		" to confirm that the subject's data is erased"
	if earlier.JobID != "" {
		step += " (their job " + earlier.JobID + ")"
	}
	return Outcome{Processor: h.name, Action: ActionConfirm, Status: StatusNeedsOperator, JobID: earlier.JobID,
		Steps: []string{step + ", and record the answer."}}, nil
}

// Confirm implements Confirmer: a manual processor is asked by a person.
func (m *Manual) Confirm(context.Context, Outcome) (Outcome, error) {
	out := m.outcome(ActionConfirm)
	if len(m.steps[ActionConfirm]) == 0 {
		out.Steps = []string{"Ask " + m.name + " to confirm that the subject's data is erased (its retention window has passed), and record its answer."}
	}
	return out, nil
}
