package processors

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// MailchimpBatchOperations is the most operations one Mailchimp batch
// takes (the Marketing API's limit is 1,000).
const MailchimpBatchOperations = 1000

// The steps of a Mailchimp batch erasure: each member's contact_id first
// (the evidence a later Confirm checks without the email: once a member is
// deleted nothing can be read of them), then delete-permanent. Mailchimp
// does not promise the order of a batch's operations, so they are two
// batches.
const (
	mailchimpStepLookup = "lookup"
	mailchimpStepErase  = "erase"
)

// maxBatchResultsBytes bounds what Lethe reads of a batch's results,
// decompressed.
const maxBatchResultsBytes = 256 << 20

// BatchSize implements BatchEraser: every person costs one operation per
// audience.
func (m *Mailchimp) BatchSize() int { return MailchimpBatchOperations / len(m.lists) }

// mailchimpOperation is one operation of a batch. Its id names the step,
// the person's place in the job and the audience's: never the person.
type mailchimpOperation struct {
	Method      string            `json:"method"`
	Path        string            `json:"path"`
	Params      map[string]string `json:"params,omitempty"`
	OperationID string            `json:"operation_id"`
}

func mailchimpOperationID(step string, person, list int) string {
	return step + "-" + strconv.Itoa(person) + "-" + strconv.Itoa(list)
}

// StartErasures implements BatchEraser: after checking that every
// audience exists (a member's 404 then means "not a member"), it submits
// the batch that reads each person's contact_id in every audience.
func (m *Mailchimp) StartErasures(ctx context.Context, subjects []Subject) (BatchJob, error) {
	if len(subjects) == 0 || len(subjects) > m.BatchSize() {
		return BatchJob{}, m.c.local(ActionErase, "a batch takes 1 to %d people, not %d", m.BatchSize(), len(subjects))
	}
	for _, list := range m.lists {
		if err := m.listGone(ctx, ActionErase, list); err != nil {
			return BatchJob{}, err
		}
	}
	refused := make([]string, len(subjects))
	var ops []mailchimpOperation
	for i, s := range subjects {
		if s.Email == "" {
			refused[i] = "mailchimp erase: subject has no email"
			continue
		}
		for l, list := range m.lists {
			ops = append(ops, mailchimpOperation{Method: http.MethodGet, Path: m.memberPath(list, s.Email),
				Params: map[string]string{"fields": "contact_id"}, OperationID: mailchimpOperationID(mailchimpStepLookup, i, l)})
		}
	}
	if len(ops) == 0 {
		return BatchJob{ID: mailchimpNoBatch, Step: mailchimpStepErase, Refused: refused}, nil
	}
	id, err := m.submitBatch(ctx, ops)
	if err != nil {
		return BatchJob{}, err
	}
	return BatchJob{ID: id, Step: mailchimpStepLookup, Refused: refused}, nil
}

// mailchimpNoBatch is the job of a step with no operation to submit.
const mailchimpNoBatch = "none"

// ErasuresProgress implements BatchEraser. When the lookup batch has
// finished it submits the erasure batch (the job moves on to it); when the
// erasure batch has finished, each person's outcome is read from its
// results: 204 erased, 404 already gone (the audience was checked), any
// other status a refusal for that person alone.
func (m *Mailchimp) ErasuresProgress(ctx context.Context, job BatchJob, subjects []Subject) (BatchProgress, error) {
	if len(job.Refused) != len(subjects) {
		return BatchProgress{}, m.c.local(ActionErase, "batch %s is not one of these %d people's", scrub(job.ID), len(subjects))
	}
	prog := BatchProgress{Job: job}
	results := map[string]mailchimpResult{}
	if job.ID != mailchimpNoBatch {
		st, err := m.batchStatus(ctx, job.ID)
		if err != nil {
			return BatchProgress{}, err
		}
		prog.Finished, prog.Total = st.FinishedOperations, st.TotalOperations
		if st.Status != "finished" {
			return prog, nil
		}
		if results, err = m.batchResults(ctx, st.ResponseBodyURL); err != nil {
			return BatchProgress{}, err
		}
	}
	refused := slices.Clone(job.Refused)
	switch job.Step {
	case mailchimpStepLookup:
		found := make([][]Ref, len(subjects))
		var ops []mailchimpOperation
		for i, s := range subjects {
			if refused[i] != "" {
				continue
			}
			for l, list := range m.lists {
				r, ok := results[mailchimpOperationID(mailchimpStepLookup, i, l)]
				switch {
				case !ok:
					refused[i] = "mailchimp lookup: the batch has no result for this person"
				case r.StatusCode == http.StatusOK:
					var mem struct {
						ContactID string `json:"contact_id"`
					}
					if json.Unmarshal([]byte(r.Response), &mem) == nil && mem.ContactID != "" && !strings.ContainsAny(mem.ContactID, "/?#@") {
						found[i] = append(found[i], Ref{Kind: "member", ID: list + "/" + mem.ContactID})
					}
				case r.StatusCode == http.StatusNotFound:
					// Not a member: the erasure's own answer says so.
				default:
					// No evidence to check later: this person is erased on
					// their own, as the call per person does.
					refused[i] = fmt.Sprintf("mailchimp lookup: %d %s", r.StatusCode, scrub(mailchimpErrorCode([]byte(r.Response))))
				}
			}
			if refused[i] != "" {
				continue
			}
			for l, list := range m.lists {
				ops = append(ops, mailchimpOperation{Method: http.MethodPost, Path: m.memberPath(list, s.Email) + "/actions/delete-permanent",
					OperationID: mailchimpOperationID(mailchimpStepErase, i, l)})
			}
		}
		prog.Job = BatchJob{ID: mailchimpNoBatch, Step: mailchimpStepErase, Found: found, Refused: refused}
		if len(ops) > 0 {
			id, err := m.submitBatch(ctx, ops)
			if err != nil {
				return BatchProgress{}, err
			}
			prog.Job.ID = id
		}
		prog.Finished, prog.Total = 0, len(ops)
		return prog, nil
	case mailchimpStepErase:
		prog.Done = true
		prog.Outcomes = make([]BatchOutcome, len(subjects))
		for i := range subjects {
			if refused[i] != "" {
				prog.Outcomes[i].Err = refused[i]
				continue
			}
			out := Outcome{Processor: m.name, Action: ActionErase, Status: StatusAlreadyGone}
			for l, list := range m.lists {
				r, ok := results[mailchimpOperationID(mailchimpStepErase, i, l)]
				switch {
				case !ok:
					prog.Outcomes[i].Err = "mailchimp erase: the batch has no result for this person"
				case r.StatusCode == http.StatusNoContent || r.StatusCode == http.StatusOK:
					out.Status = StatusDone
					if i < len(job.Found) {
						for _, ref := range job.Found[i] {
							if strings.HasPrefix(ref.ID, list+"/") {
								out.addRef(ref.Kind, ref.ID)
							}
						}
					}
				case r.StatusCode == http.StatusNotFound:
				default:
					prog.Outcomes[i].Err = fmt.Sprintf("mailchimp erase: %d %s", r.StatusCode, scrub(mailchimpErrorCode([]byte(r.Response))))
				}
				out.HTTPStatus = r.StatusCode
				out.addRef("list", list)
			}
			if job.ID != mailchimpNoBatch {
				out.addRef("batch", job.ID)
			}
			if prog.Outcomes[i].Err == "" {
				prog.Outcomes[i].Outcome = out
			}
		}
		return prog, nil
	default:
		return BatchProgress{}, m.c.local(ActionErase, "batch step %q is not one of Mailchimp's", job.Step)
	}
}

// submitBatch POSTs /batches and returns the batch's id.
func (m *Mailchimp) submitBatch(ctx context.Context, ops []mailchimpOperation) (string, error) {
	r, err := m.c.doJSON(ctx, ActionErase, http.MethodPost, "/batches", map[string]any{"operations": ops})
	if err != nil {
		return "", err
	}
	if r.Status != http.StatusOK {
		return "", m.c.fail(ActionErase, r)
	}
	var b struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(r.Body, &b) != nil || b.ID == "" || strings.ContainsAny(b.ID, "/?#") {
		return "", m.c.badBody(ActionErase, r)
	}
	return b.ID, nil
}

// mailchimpBatch is a batch's status.
type mailchimpBatch struct {
	Status             string `json:"status"` // pending, preprocessing, started, finalizing, finished
	TotalOperations    int    `json:"total_operations"`
	FinishedOperations int    `json:"finished_operations"`
	ResponseBodyURL    string `json:"response_body_url"`
}

func (m *Mailchimp) batchStatus(ctx context.Context, id string) (mailchimpBatch, error) {
	r, err := m.c.do(ctx, ActionErase, call{method: http.MethodGet, path: "/batches/" + url.PathEscape(id)})
	if err != nil {
		return mailchimpBatch{}, err
	}
	if r.Status != http.StatusOK {
		return mailchimpBatch{}, m.c.fail(ActionErase, r)
	}
	var b mailchimpBatch
	if json.Unmarshal(r.Body, &b) != nil || b.Status == "" || b.Status == "finished" && b.ResponseBodyURL == "" {
		return mailchimpBatch{}, m.c.badBody(ActionErase, r)
	}
	return b, nil
}

// mailchimpResult is one operation's result in a batch's results.
type mailchimpResult struct {
	StatusCode  int    `json:"status_code"`
	OperationID string `json:"operation_id"`
	Response    string `json:"response"`
}

// batchResults downloads a finished batch's results, a gzipped tar of JSON
// files each holding an array of results, from where Mailchimp stores them
// (a signed URL: no credential is sent there).
func (m *Mailchimp) batchResults(ctx context.Context, where string) (map[string]mailchimpResult, error) {
	u, err := url.Parse(where)
	if err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return nil, m.c.local(ActionErase, "the batch's results are not at an http(s) URL")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where, nil)
	if err != nil {
		return nil, m.c.local(ActionErase, "cannot build the request for the batch's results")
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := m.c.hc.Do(req)
	if err != nil {
		return nil, m.c.networkError(ctx, ActionErase, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, m.c.fail(ActionErase, &response{Status: resp.StatusCode, Header: resp.Header, Body: body})
	}
	bad := func(why string) error {
		return &Error{Processor: m.name, Action: ActionErase, Kind: KindRetryable, Status: resp.StatusCode, Reason: "batch results: " + why}
	}
	gz, err := gzip.NewReader(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, bad("not gzip")
	}
	out := map[string]mailchimpResult{}
	tr := tar.NewReader(io.LimitReader(gz, maxBatchResultsBytes))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, bad("not a tar archive")
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		// Every file is an array of results, whatever its name.
		var rs []mailchimpResult
		if err := json.NewDecoder(tr).Decode(&rs); err != nil {
			return nil, bad("a file is not a JSON array of results")
		}
		for _, r := range rs {
			out[r.OperationID] = r
		}
	}
	return out, nil
}
