package api

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/lethe-privacy/lethe/internal/apikeys"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

const fuzzMaxBody = 4096

// violated reports a broken property, named by the kind of bug it would be.
func violated(t *testing.T, bug string, format string, args ...any) {
	t.Helper()
	t.Errorf("%s: "+format, append([]any{bug}, args...)...)
}

// emailLike returns the tokens of body, raw and as JSON strings decode them,
// that look like an email address: an "@" with a letter or digit somewhere
// on each side. None of them may appear in an answer.
func emailLike(body []byte) []string {
	texts := []string{string(body)}
	dec := json.NewDecoder(bytes.NewReader(body))
	for range 10000 {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if s, ok := tok.(string); ok {
			texts = append(texts, s)
		}
	}
	sep := func(r rune) bool {
		return r == utf8.RuneError || r == ' ' || !strconv.IsPrint(r) || strings.ContainsRune(`"{}[],:\`, r)
	}
	alnum := func(s string) bool {
		return strings.IndexFunc(s, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) >= 0
	}
	var out []string
	for _, text := range texts {
		for _, tok := range strings.FieldsFunc(text, sep) {
			before, after, ok := strings.Cut(tok, "@")
			if ok && alnum(before) && alnum(after) && !slices.Contains(out, tok) {
				out = append(out, tok)
			}
		}
	}
	return out
}

// leakBug names the known bug behind an answer that echoes the input.
func leakBug(msg string) string {
	switch {
	case strings.HasPrefix(msg, "malformed JSON: unknown field "):
		return "echo-unknown-field"
	case strings.HasPrefix(msg, `type: "`):
		return "echo-type"
	case strings.HasPrefix(msg, `by: period "`):
		return "echo-by"
	}
	return ""
}

// checkRefusal checks an answer that refuses: 4xx, JSON, exactly
// {"error": "<non-empty>"}, and no email-like token of body in it.
func checkRefusal(t *testing.T, rec *httptest.ResponseRecorder, body []byte) string {
	t.Helper()
	if rec.Code < 400 || rec.Code > 499 {
		t.Errorf("refusal answered %d, want a 4xx; body %q", rec.Code, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("refusal Content-Type %q, want application/json", ct)
	}
	var e map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("refusal body is not JSON: %v: %q", err, rec.Body.String())
	}
	msg, ok := e["error"].(string)
	if len(e) != 1 || !ok || msg == "" {
		t.Fatalf(`refusal body %q, want exactly {"error": "<reason>"}`, rec.Body.String())
	}
	for _, tok := range emailLike(body) {
		if strings.Contains(msg, tok) || strings.Contains(rec.Body.String(), tok) {
			violated(t, leakBug(msg), "error %q echoes %q from the input", msg, tok)
		}
	}
	return msg
}

// checkDecode checks what (*Server).decode did with body: true leaves the
// answer to the caller (nothing written); false wrote a proper refusal, and
// a body over MaxBody is refused 413 (and only such a body is).
func checkDecode(t *testing.T, ok bool, rec *httptest.ResponseRecorder, body []byte, contentType string) {
	t.Helper()
	jsonCT := contentType == "" || strings.HasPrefix(contentType, "application/json")
	if !jsonCT && (ok || rec.Code != http.StatusUnsupportedMediaType) {
		t.Errorf("Content-Type %q: decode %v, answer %d; want 415", contentType, ok, rec.Code)
	}
	if ok {
		if rec.Body.Len() != 0 || len(rec.Header()) != 0 {
			t.Errorf("decode accepted but wrote %d %q", rec.Code, rec.Body.String())
		}
		if len(body) > fuzzMaxBody {
			violated(t, "oversize-accepted", "body of %d bytes (MaxBody %d) accepted", len(body), fuzzMaxBody)
		}
		return
	}
	msg := checkRefusal(t, rec, body)
	switch {
	case !jsonCT:
	case len(body) > fuzzMaxBody && rec.Code != http.StatusRequestEntityTooLarge:
		violated(t, "oversize-not-413", "body of %d bytes (MaxBody %d) answered %d %q, want 413", len(body), fuzzMaxBody, rec.Code, msg)
	case len(body) <= fuzzMaxBody && rec.Code == http.StatusRequestEntityTooLarge:
		t.Errorf("body of %d bytes (MaxBody %d) answered 413", len(body), fuzzMaxBody)
	}
}

func fuzzServer() *Server {
	return &Server{MaxBody: fuzzMaxBody, Log: slog.New(slog.DiscardHandler)}
}

func fuzzCaller(role uint8) caller {
	switch role % 3 {
	case 1:
		return caller{role: apikeys.RoleBackend, keyID: "k1"}
	case 2:
		return caller{role: apikeys.RoleOperator, keyID: "k2"}
	}
	return caller{} // the person
}

// FuzzSubmitDecoding drives decode and validateSubmission as submit does
// (POST /v1/requests) with a fuzzed body, Content-Type and caller role
// (0 the person, 1 backend key, 2 operator key).
func FuzzSubmitDecoding(f *testing.F) {
	f.Add([]byte(`{"type":"erasure","subject":{"email":"alice@example.com"}}`), "application/json", uint8(0))
	f.Add([]byte(`{"type":"access","subject":{"user_id":"u-1"},"jurisdiction":"gdpr","verified":true}`), "", uint8(1))
	f.Fuzz(func(t *testing.T, body []byte, contentType string, role uint8) {
		s := fuzzServer()
		r := httptest.NewRequest(http.MethodPost, "/v1/requests", bytes.NewReader(body))
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		rec := httptest.NewRecorder()
		var in SubmitRequest
		ok := s.decode(rec, r, &in)
		checkDecode(t, ok, rec, body, contentType)
		if !ok {
			return
		}

		// As submit does after decoding.
		c := fuzzCaller(role)
		if in.Jurisdiction == "" {
			in.Jurisdiction = domain.Company
		}
		if msg := validateSubmission(in, c); msg != "" {
			status := http.StatusUnprocessableEntity
			if in.Verified && c.role != apikeys.RoleBackend {
				status = http.StatusForbidden
			}
			rec := httptest.NewRecorder()
			writeError(rec, status, "%s", msg)
			checkRefusal(t, rec, body)
			return
		}

		// Accepted: a known type and jurisdiction, a subject, and an email
		// that is exactly an address whenever it will be verified.
		if !slices.Contains(domain.RequestTypes(), in.Type) {
			t.Errorf("accepted type %q", in.Type)
		}
		if !slices.Contains(domain.Jurisdictions(), in.Jurisdiction) {
			t.Errorf("accepted jurisdiction %q", in.Jurisdiction)
		}
		if in.Subject.Email == "" && in.Subject.UserID == "" {
			t.Errorf("accepted a request with no subject: %+v", in)
		}
		if in.Verified && c.role != apikeys.RoleBackend {
			t.Errorf("accepted verified=true from caller %q", c.actor())
		}
		if e := in.Subject.Email; e != "" || !in.Verified {
			a, err := mail.ParseAddress(e)
			if err != nil || a.Address != e || a.Name != "" || len(e) > 254 {
				t.Errorf("accepted email %q: net/mail gives %+v, %v", e, a, err)
			}
		}
		if id := in.Subject.UserID; id != "" {
			if len(id) > 128 || strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@-") != "" {
				t.Errorf("accepted user id %q", id)
			}
		}
	})
}

// fakeTemporal records the workflow update an API call asks for and answers
// that the workflow has ended (so the handler answers 409).
type fakeTemporal struct {
	client.Client // nil: any other call panics, and the handler answers 500
	update        *client.UpdateWorkflowOptions
}

func (f *fakeTemporal) UpdateWorkflow(_ context.Context, o client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	f.update = &o
	return nil, serviceerror.NewNotFound("workflow not found")
}

type fakeKeys struct{ role string }

func (k fakeKeys) Authenticate(context.Context, string) (apikeys.Key, error) {
	return apikeys.Key{ID: "k2", Role: k.role}, nil
}

const fuzzRequestID = "req_abcdefghijklmnopqrstuvwxyz"

// serveFuzz sends body to path through the real routes, with a fake
// Temporal and key store; it returns the answer and the update asked for.
func serveFuzz(t *testing.T, path string, body []byte, contentType string, header http.Header) (*httptest.ResponseRecorder, *client.UpdateWorkflowOptions, *person.Hasher) {
	t.Helper()
	h, err := person.NewHasher(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	tmp := &fakeTemporal{}
	s := fuzzServer()
	s.Subjects, s.Temporal, s.APIKeys = h, tmp, fakeKeys{role: apikeys.RoleOperator}
	r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	for k, v := range header {
		r.Header[k] = v
	}
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, r)
	return rec, tmp.update, h
}

// FuzzVerifyDecoding posts a fuzzed body to POST /v1/requests/{id}/verify as
// the person (with the request's token).
func FuzzVerifyDecoding(f *testing.F) {
	f.Add([]byte(`{"code":"123456"}`), "application/json")
	f.Add([]byte(`{"code":123456}`), "")
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		h, _ := person.NewHasher(bytes.Repeat([]byte("k"), 32))
		header := http.Header{"X-Request-Token": {h.RequestToken(fuzzRequestID)}}
		rec, update, h := serveFuzz(t, "/v1/requests/"+fuzzRequestID+"/verify", body, contentType, header)
		if update == nil {
			checkRefusal(t, rec, body)
			checkSize(t, rec, body, contentType)
			return
		}
		if len(body) > fuzzMaxBody {
			violated(t, "oversize-accepted", "body of %d bytes (MaxBody %d) accepted", len(body), fuzzMaxBody)
		}
		// Accepted: the code was exactly 6 ASCII digits, and only its hash goes on.
		var in VerifyBody
		_ = json.NewDecoder(bytes.NewReader(body)).Decode(&in)
		if len(in.Code) != 6 || strings.Trim(in.Code, "0123456789") != "" {
			t.Errorf("accepted code %q", in.Code)
		}
		arg, _ := update.Args[0].(contract.VerifyInput)
		if update.UpdateName != contract.UpdateVerify || len(update.Args) != 1 || arg.CodeHash != h.CodeHash(fuzzRequestID, in.Code) {
			t.Errorf("update %q %+v for code %q", update.UpdateName, update.Args, in.Code)
		}
	})
}

// checkSize checks the status of a refusal against the body's size, for
// targets that go through a whole handler.
func checkSize(t *testing.T, rec *httptest.ResponseRecorder, body []byte, contentType string) {
	t.Helper()
	if contentType != "" && !strings.HasPrefix(contentType, "application/json") {
		return
	}
	if len(body) > fuzzMaxBody && rec.Code != http.StatusRequestEntityTooLarge {
		violated(t, "oversize-not-413", "body of %d bytes (MaxBody %d) answered %d %q, want 413", len(body), fuzzMaxBody, rec.Code, rec.Body.String())
	}
	if len(body) <= fuzzMaxBody && rec.Code == http.StatusRequestEntityTooLarge {
		t.Errorf("body of %d bytes (MaxBody %d) answered 413", len(body), fuzzMaxBody)
	}
}

var fuzzActions = []string{contract.UpdateApprove, contract.UpdateDeny, contract.UpdateExtend, contract.UpdateCancel, contract.UpdateComplete}

// FuzzActionDecoding posts a fuzzed body to POST /v1/requests/{id}/{action}
// with an operator key; action picks one of approve, deny, extend, cancel,
// complete.
func FuzzActionDecoding(f *testing.F) {
	f.Add([]byte(`{"reason":"legal hold","by":"1mo"}`), "application/json", uint8(2))
	f.Add([]byte(`{"lines":["deleted the rows of app.users"]}`), "", uint8(4))
	f.Fuzz(func(t *testing.T, body []byte, contentType string, action uint8) {
		name := fuzzActions[int(action)%len(fuzzActions)]
		header := http.Header{"Authorization": {"Bearer k"}}
		rec, update, _ := serveFuzz(t, "/v1/requests/"+fuzzRequestID+"/"+name, body, contentType, header)
		if update == nil {
			checkRefusal(t, rec, body)
			checkSize(t, rec, body, contentType)
			return
		}
		if len(body) > fuzzMaxBody {
			violated(t, "oversize-accepted", "body of %d bytes (MaxBody %d) accepted", len(body), fuzzMaxBody)
		}
		// Accepted: the action asked for is the route's, by this operator,
		// with a trimmed reason of at most 500 bytes and, to extend, a period
		// of 0 to 10000 units.
		a, ok := update.Args[0].(contract.OperatorAction)
		if update.UpdateName != name || len(update.Args) != 1 || !ok {
			t.Fatalf("update %q %+v for %s", update.UpdateName, update.Args, name)
		}
		if a.Actor != "operator:k2" {
			t.Errorf("actor %q", a.Actor)
		}
		if len(a.Reason) > 500 || strings.TrimSpace(a.Reason) != a.Reason {
			t.Errorf("accepted reason %q", a.Reason)
		}
		var in ActionBody
		_ = json.NewDecoder(bytes.NewReader(body)).Decode(&in)
		if !slices.Equal(a.Lines, in.Lines) {
			t.Errorf("lines %q, sent %q", a.Lines, in.Lines)
		}
		p := a.By
		if name != contract.UpdateExtend && p != (domain.Period{}) {
			t.Errorf("%s with a period %+v", name, p)
		}
		for _, n := range []int{p.Months, p.Days, p.BusinessDays} {
			if n < 0 || n > 10000 {
				t.Errorf("accepted period %+v from %q", p, in.By)
			}
		}
	})
}
