package processors

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// SendGridBatchSize is the most people one SendGrid batch erasure takes:
// the contact search takes 100 addresses, and the batched read of contacts
// 100 ids.
const SendGridBatchSize = 100

// The steps of a SendGrid batch erasure: the people's contacts found (and
// recorded before anything is deleted: a retry after the deletion could
// find nothing, and the receipt would lose its evidence), then the
// deletion job, followed until none of its contacts can be read.
const (
	sendGridStepFound  = "found"
	sendGridStepDelete = "delete"
)

// sendGridSearchesPerBatch bounds the contact searches of one batch: one,
// and enough more to find one or two invalid addresses among a hundred by
// halving (searchEmails: about 14 searches for one, 27 for two).
const sendGridSearchesPerBatch = 32

// BatchSize implements BatchEraser.
func (s *SendGrid) BatchSize() int { return SendGridBatchSize }

// StartErasures implements BatchEraser: one search for everyone's contacts
// (or the contact ids the application keeps). A person with neither is
// refused alone. Nothing is deleted yet.
func (s *SendGrid) StartErasures(ctx context.Context, subjects []Subject) (BatchJob, error) {
	if len(subjects) == 0 || len(subjects) > SendGridBatchSize {
		return BatchJob{}, s.c.local(ActionErase, "a batch takes 1 to %d people, not %d", SendGridBatchSize, len(subjects))
	}
	job := BatchJob{ID: "search", Step: sendGridStepFound, Found: make([][]Ref, len(subjects)), Refused: make([]string, len(subjects))}
	byEmail := map[string][]int{}
	for i, subj := range subjects {
		switch {
		case subj.ID(IDSendGridContact) != "":
			job.Found[i] = []Ref{{Kind: "contact", ID: subj.ID(IDSendGridContact)}}
		case subj.Email == "":
			job.Refused[i] = "sendgrid erase: subject has neither " + IDSendGridContact + " nor email"
		default:
			e := strings.ToLower(subj.Email)
			byEmail[e] = append(byEmail[e], i)
		}
	}
	if len(byEmail) == 0 {
		return job, nil
	}
	searches := sendGridSearchesPerBatch
	contacts, invalid, err := s.searchEmails(ctx, slices.Sorted(maps.Keys(byEmail)), &searches)
	if err != nil {
		return BatchJob{}, err
	}
	if len(invalid) > 1 && len(invalid) == len(byEmail) {
		// Not the addresses' fault: the batch fails, and its people are
		// asked one by one.
		return BatchJob{}, s.c.local(ActionErase, "the contact search refused every address of the batch (400)")
	}
	for _, e := range invalid {
		for _, i := range byEmail[e] {
			// Asked alone, SendGrid refuses it again: an operator's task.
			job.Refused[i] = "sendgrid erase: SendGrid refuses the subject's address as invalid (400)"
		}
	}
	for _, e := range slices.Sorted(maps.Keys(contacts)) {
		people, ok := byEmail[strings.ToLower(e)]
		if !ok {
			// A contact that names nobody asked for: left unattributed,
			// its person would be reported gone while it stays. The
			// batch gives way to a call per person.
			return BatchJob{}, s.c.local(ActionErase, "the contact search answered for an address that was not asked")
		}
		for _, i := range people {
			if ref := (Ref{Kind: "contact", ID: contacts[e]}); !slices.Contains(job.Found[i], ref) {
				job.Found[i] = append(job.Found[i], ref)
			}
		}
	}
	return job, nil
}

// searchEmails finds the contact ids of emails (by the address SendGrid
// answers for). SendGrid refuses a whole search (400) for one address it
// deems invalid: the search is then made again in halves, down to the
// invalid addresses alone, which come back in invalid; the others are
// searched as usual (about two searches more per level, seven levels for
// one address among a hundred), at most *searches in all. Past them the
// batch fails, and its people are asked one by one, as before.
func (s *SendGrid) searchEmails(ctx context.Context, emails []string, searches *int) (contacts map[string]string, invalid []string, err error) {
	contacts = map[string]string{}
	if *searches <= 0 {
		return nil, nil, s.c.local(ActionErase, "the contact search refused the batch (400) more often than halving allows")
	}
	*searches--
	r, err := s.c.doJSON(ctx, ActionErase, http.MethodPost, "/v3/marketing/contacts/search/emails", map[string][]string{"emails": emails})
	if err != nil {
		return nil, nil, err
	}
	switch {
	case r.Status == http.StatusOK:
		var res struct {
			Result map[string]struct {
				Contact *sendGridContact `json:"contact"`
			} `json:"result"`
		}
		if err := json.Unmarshal(r.Body, &res); err != nil || res.Result == nil {
			return nil, nil, s.c.badBody(ActionErase, r)
		}
		for e, found := range res.Result {
			if c := found.Contact; c != nil && c.ID != "" {
				contacts[e] = c.ID
			}
		}
	case r.Status == http.StatusNotFound && json.Valid(r.Body) && bytes.Contains(r.Body, []byte(`"errors"`)):
		// Nobody has a contact.
	case r.Status == http.StatusBadRequest && len(emails) == 1:
		return contacts, emails, nil
	case r.Status == http.StatusBadRequest:
		half := len(emails) / 2
		for _, part := range [][]string{emails[:half], emails[half:]} {
			c, bad, err := s.searchEmails(ctx, part, searches)
			if err != nil {
				return nil, nil, err
			}
			maps.Copy(contacts, c)
			invalid = append(invalid, bad...)
		}
	default:
		return nil, nil, s.c.fail(ActionErase, r)
	}
	return contacts, invalid, nil
}

// ErasuresProgress implements BatchEraser. After the search it deletes
// every contact found, in one asynchronous job; then the job is done when
// none of its contacts can be read any more (one batched read of up to
// 100 ids).
func (s *SendGrid) ErasuresProgress(ctx context.Context, job BatchJob, subjects []Subject) (BatchProgress, error) {
	if len(job.Found) != len(subjects) || len(job.Refused) != len(subjects) {
		return BatchProgress{}, s.c.local(ActionErase, "batch job %s is not these %d people's", scrub(job.ID), len(subjects))
	}
	ids := contactIDs(job.Found)
	switch job.Step {
	case sendGridStepFound:
		if len(ids) == 0 {
			break // nothing to delete: done
		}
		r, err := s.c.do(ctx, ActionErase, call{method: http.MethodDelete, path: "/v3/marketing/contacts",
			query: url.Values{"ids": {strings.Join(ids, ",")}}})
		if err != nil {
			return BatchProgress{}, err
		}
		next := job
		next.Step, next.ID = sendGridStepDelete, "deletion"
		switch r.Status {
		case http.StatusAccepted, http.StatusOK:
			if id := scrub(jobID(r.Body)); id != "" {
				next.ID = id
			}
		case http.StatusNotFound:
			// Only with known contact ids, deleted before: the reads that
			// follow say whether any is left.
		default:
			return BatchProgress{}, s.c.fail(ActionErase, r)
		}
		return BatchProgress{Job: next, Total: len(ids)}, nil
	case sendGridStepDelete:
	default:
		return BatchProgress{}, s.c.local(ActionErase, "batch step %q is not one of SendGrid's", job.Step)
	}
	present, status := 0, 0
	if len(ids) > 0 {
		r, err := s.c.doJSON(ctx, ActionErase, http.MethodPost, "/v3/marketing/contacts/batch", map[string][]string{"ids": ids})
		if err != nil {
			return BatchProgress{}, err
		}
		status = r.Status
		switch {
		case r.Status == http.StatusOK:
			var res struct {
				Result []sendGridContact `json:"result"`
			}
			if json.Unmarshal(r.Body, &res) != nil {
				return BatchProgress{}, s.c.badBody(ActionErase, r)
			}
			for _, c := range res.Result {
				if slices.Contains(ids, c.ID) {
					present++
				}
			}
		case r.Status == http.StatusNotFound && json.Valid(r.Body):
			// None of them is left.
		default:
			return BatchProgress{}, s.c.fail(ActionErase, r)
		}
	}
	prog := BatchProgress{Job: job, Total: len(ids), Finished: len(ids) - present}
	if present > 0 {
		return prog, nil
	}
	prog.Done = true
	prog.Outcomes = make([]BatchOutcome, len(subjects))
	for i, refs := range job.Found {
		if job.Refused[i] != "" {
			prog.Outcomes[i].Err = job.Refused[i]
			continue
		}
		// The read that found nothing left decides.
		out := Outcome{Processor: s.name, Action: ActionErase, Status: StatusAlreadyGone, HTTPStatus: status}
		if len(refs) == 0 {
			out.Note = "no contact has this email"
		} else {
			out.Status = StatusDone
			if job.Step == sendGridStepDelete && job.ID != "deletion" {
				out.JobID = job.ID
			}
			for _, r := range refs {
				out.addRef(r.Kind, r.ID)
			}
		}
		prog.Outcomes[i].Outcome = out
	}
	return prog, nil
}

// contactIDs is every contact id of found, once, in order.
func contactIDs(found [][]Ref) []string {
	var ids []string
	for _, refs := range found {
		for _, r := range refs {
			if r.Kind == "contact" && !slices.Contains(ids, r.ID) {
				ids = append(ids, r.ID)
			}
		}
	}
	return ids
}
