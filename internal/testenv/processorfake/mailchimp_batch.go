package processorfake

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"
)

// mcBatch is a batch operations request in the Mailchimp fake.
type mcBatch struct {
	id       string
	ops      []mcOperation
	polls    int // status reads before it finishes
	finished bool
	results  []byte // the gzipped tar of results
	errored  int
}

type mcOperation struct {
	Method      string            `json:"method"`
	Path        string            `json:"path"`
	Params      map[string]string `json:"params"`
	Body        string            `json:"body"`
	OperationID string            `json:"operation_id"`
}

// mcBatchResultsPath is where the fake keeps a batch's results (Mailchimp
// keeps them on S3 behind a signed URL: no credential is asked there).
const mcBatchResultsPath = "/batch-results/"

// SetBatchPolls makes every new batch answer "started" to n status reads
// before it runs its operations and answers "finished" (default 1).
func (f *Mailchimp) SetBatchPolls(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batchPolls = n
}

// Operations returns the batch operations the fake ran with this method
// (any if "") whose path starts with pathPrefix (under /3.0), each as a
// Call whose Status is what the operation answered.
func (f *Mailchimp) Operations(method, pathPrefix string) []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Call
	for _, c := range f.operations {
		if (method == "" || c.Method == method) && strings.HasPrefix(c.Path, pathPrefix) {
			out = append(out, c)
		}
	}
	return out
}

// FailNextOperations makes the next n batch operations on paths starting
// with pathPrefix (under /3.0) answer status with Mailchimp's error body,
// as one operation of a batch can fail while the others succeed.
func (f *Mailchimp) FailNextOperations(n, status int, pathPrefix string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opFaults = append(f.opFaults, &Fault{Status: status, Times: n, PathPrefix: pathPrefix})
}

// Batches is how many batches the fake was given.
func (f *Mailchimp) Batches() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.batches)
}

func (f *Mailchimp) startBatch(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Operations []mcOperation `json:"operations"`
	}
	if err := readJSON(r, &b); err != nil || len(b.Operations) == 0 {
		mcProblem(w, http.StatusBadRequest, "Invalid Resource", "The resource submitted could not be validated.")
		return
	}
	if len(b.Operations) > 1000 {
		mcProblem(w, http.StatusBadRequest, "Invalid Resource", "A batch takes at most 1000 operations.")
		return
	}
	for _, op := range b.Operations {
		if op.Method == "" || !strings.HasPrefix(op.Path, "/") {
			mcProblem(w, http.StatusBadRequest, "Invalid Resource", "Each operation needs a method and a relative path.")
			return
		}
	}
	polls := f.batchPolls
	if polls == 0 {
		polls = 1
	}
	bt := &mcBatch{id: fmt.Sprintf("b%09d", len(f.batches)+1), ops: b.Operations, polls: polls}
	f.batches = append(f.batches, bt)
	writeJSON(w, http.StatusOK, f.batchJSON(bt))
}

func (f *Mailchimp) batchJSON(bt *mcBatch) map[string]any {
	out := map[string]any{"id": bt.id, "status": "pending", "total_operations": len(bt.ops), "finished_operations": 0,
		"errored_operations": 0, "submitted_at": time.Now().UTC().Format(time.RFC3339), "response_body_url": ""}
	if bt.finished {
		out["status"], out["finished_operations"], out["errored_operations"] = "finished", len(bt.ops), bt.errored
		out["response_body_url"] = f.Origin() + mcBatchResultsPath + bt.id + ".tar.gz"
	} else if bt.polls < 1 {
		out["status"] = "started"
	}
	return out
}

func (f *Mailchimp) getBatch(w http.ResponseWriter, r *http.Request) {
	var bt *mcBatch
	for _, b := range f.batches {
		if b.id == r.PathValue("id") {
			bt = b
		}
	}
	if bt == nil {
		mcNotFound(w)
		return
	}
	if !bt.finished {
		if bt.polls > 0 {
			bt.polls--
		} else {
			f.runBatch(bt)
		}
	}
	writeJSON(w, http.StatusOK, f.batchJSON(bt))
}

// runBatch runs a batch's operations, in an order of its own (Mailchimp
// does not keep the request's), through the same routes as single calls,
// and keeps the results as Mailchimp does: JSON arrays in a gzipped tar.
func (f *Mailchimp) runBatch(bt *mcBatch) {
	type result struct {
		StatusCode  int    `json:"status_code"`
		OperationID string `json:"operation_id"`
		Response    string `json:"response"`
	}
	results := make([]result, 0, len(bt.ops))
	for k := range bt.ops {
		op := bt.ops[len(bt.ops)-1-k] // last first
		u := &url.URL{Path: "/3.0" + op.Path}
		q := url.Values{}
		for k, v := range op.Params {
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
		req := httptest.NewRequest(op.Method, u.String(), strings.NewReader(op.Body))
		rec := httptest.NewRecorder()
		if fault := f.takeOperationFault(req.URL.Path); fault != nil {
			mcProblem(rec, fault.Status, http.StatusText(fault.Status), "An unexpected error occurred.")
		} else {
			f.mux.ServeHTTP(rec, req)
		}
		f.operations = append(f.operations, Call{Method: op.Method, Path: req.URL.Path, Query: q, Body: []byte(op.Body), Status: rec.Code, At: time.Now()})
		if rec.Code >= 400 {
			bt.errored++
		}
		results = append(results, result{StatusCode: rec.Code, OperationID: op.OperationID, Response: rec.Body.String()})
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	// Two files, as a large batch's results come in several.
	for part, rs := range [][]result{results[:len(results)/2], results[len(results)/2:]} {
		data, _ := json.Marshal(rs)
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%s/part-%d.json", bt.id, part), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	tw.Close()
	gz.Close()
	bt.results = buf.Bytes()
	bt.finished = true
}

func (f *Mailchimp) batchResults(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSuffix(r.PathValue("file"), ".tar.gz")
	for _, b := range f.batches {
		if b.id == id && b.finished {
			w.Header().Set("Content-Type", "application/x-gzip")
			w.WriteHeader(http.StatusOK)
			w.Write(b.results)
			return
		}
	}
	http.NotFound(w, r)
}

func (f *Mailchimp) takeOperationFault(path string) *Fault {
	for i, fault := range f.opFaults {
		if !strings.HasPrefix(path, fault.PathPrefix) {
			continue
		}
		if fault.Times--; fault.Times <= 0 {
			f.opFaults = append(f.opFaults[:i], f.opFaults[i+1:]...)
		}
		return fault
	}
	return nil
}
