package processors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxResponseBytes bounds how much of one response a connector reads.
const maxResponseBytes = 32 << 20

// defaultTimeout bounds one HTTP call when the caller gives no client.
const defaultTimeout = 60 * time.Second

// userAgent identifies Lethe to processors.
const userAgent = "lethe-processors/1"

// response is a fully read HTTP response.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// httpClient is the plumbing every HTTP connector shares: base URL, auth,
// reading bounded bodies and turning failures into *Error.
type httpClient struct {
	processor string
	base      string // no trailing slash
	hc        *http.Client
	now       func() time.Time
	// auth adds credentials to a request.
	auth func(*http.Request)
	// header is added to every request.
	header http.Header
	// code extracts the processor's error code from an error body.
	code func(body []byte) string
	// requestIDHeader names the processor's request id header, if any.
	requestIDHeader string
	// kind, when set, may override the status-based classification.
	kind func(r *response, k Kind) Kind
	// credential names what the processor's credential is ("API key",
	// "HMAC secret"); credentialEnv the variable holding it (set by the
	// registry); signatureNote what else a refusal may be about (the
	// webhook's signature scheme). They make the message of a 401 or 403.
	credential    string
	credentialEnv string
	signatureNote string
}

// authCheck says what to check when the processor refuses our credential
// or signature (401, 403): never the credential itself.
func (h *httpClient) authCheck() string {
	what := h.credential
	if what == "" {
		what = "credential"
	}
	where := "the variable named by the processor's credential_env"
	if h.credentialEnv != "" {
		where = h.credentialEnv
	}
	s := "the " + what + " in " + where
	if h.signatureNote != "" {
		s += " and " + h.signatureNote
	}
	return s
}

func newHTTPClient(processor, base string, hc *http.Client) *httpClient {
	if hc == nil {
		hc = &http.Client{Timeout: defaultTimeout}
	}
	return &httpClient{
		processor: processor,
		base:      strings.TrimRight(base, "/"),
		hc:        hc,
		now:       time.Now,
		header:    http.Header{},
		code:      func([]byte) string { return "" },
	}
}

// call is one request to send.
type call struct {
	method      string
	path        string // already escaped, starts with "/"
	query       url.Values
	contentType string
	body        []byte
	header      http.Header
}

// do sends c and reads the whole response. It returns an error only when no
// response arrived (network failure, timeout, cancelled context); callers
// judge the status themselves and call fail for unexpected ones.
func (h *httpClient) do(ctx context.Context, action Action, c call) (*response, error) {
	u := h.base + c.path
	if len(c.query) > 0 {
		u += "?" + c.query.Encode()
	}
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, u, body)
	if err != nil {
		// The URL may hold personal values: keep only our own words.
		return nil, &Error{Processor: h.processor, Action: action, Kind: KindNeedsOperator,
			Reason: "cannot build request (check base_url)"}
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "application/json")
	for k, vs := range h.header {
		req.Header[k] = vs
	}
	for k, vs := range c.header {
		req.Header[k] = vs
	}
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	if h.auth != nil {
		h.auth(req)
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		return nil, h.networkError(ctx, action, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, h.networkError(ctx, action, err)
	}
	if len(data) > maxResponseBytes {
		return nil, &Error{Processor: h.processor, Action: action, Kind: KindNeedsOperator,
			Status: resp.StatusCode, Reason: "response larger than 32 MiB"}
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
}

// doJSON is do with a JSON-encoded body.
func (h *httpClient) doJSON(ctx context.Context, action Action, method, path string, v any) (*response, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, &Error{Processor: h.processor, Action: action, Kind: KindNeedsOperator,
			Reason: "cannot encode request body"}
	}
	return h.do(ctx, action, call{method: method, path: path, contentType: "application/json", body: data})
}

// networkError turns a transport failure into a retryable *Error, keeping
// the URL (which may contain an email in its query) out of the message.
func (h *httpClient) networkError(ctx context.Context, action Action, err error) *Error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		err = ctxErr
	}
	return &Error{Processor: h.processor, Action: action, Kind: KindRetryable, Reason: "network:", Err: err}
}

// fail builds the *Error for an unexpected response.
func (h *httpClient) fail(action Action, r *response) *Error {
	e := &Error{
		Processor: h.processor,
		Action:    action,
		Kind:      KindForStatus(r.Status),
		Status:    r.Status,
		Code:      scrub(h.code(r.Body)),
	}
	if h.kind != nil {
		e.Kind = h.kind(r, e.Kind)
	}
	if h.requestIDHeader != "" {
		e.RequestID = scrub(r.Header.Get(h.requestIDHeader))
	}
	if r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden {
		e.Check = h.authCheck()
	}
	switch {
	case r.Status == http.StatusTooManyRequests:
		// Rate-limit headers (X-RateLimit-Reset...) only mean a wait here:
		// SendGrid sends them on every answer.
		e.RetryAfter = ParseRetryAfter(r.Header, h.now())
	case e.Kind == KindRetryable:
		if v := r.Header.Get("Retry-After"); v != "" {
			e.RetryAfter = ParseRetryAfter(http.Header{"Retry-After": {v}}, h.now())
		}
	}
	return e
}

// badBody is the *Error for a 2xx answer whose body does not parse.
func (h *httpClient) badBody(action Action, r *response) *Error {
	e := &Error{Processor: h.processor, Action: action, Kind: KindNeedsOperator, Status: r.Status,
		Reason: "unexpected response body"}
	if h.requestIDHeader != "" {
		e.RequestID = scrub(r.Header.Get(h.requestIDHeader))
	}
	return e
}

// local is an *Error for a problem found before calling the processor.
func (h *httpClient) local(action Action, format string, args ...any) *Error {
	return &Error{Processor: h.processor, Action: action, Kind: KindNeedsOperator,
		Reason: fmt.Sprintf(format, args...)}
}

// requestID returns the processor's id for the call, when it sends one.
func (h *httpClient) requestID(r *response) string {
	if h.requestIDHeader == "" {
		return ""
	}
	return scrub(r.Header.Get(h.requestIDHeader))
}

// validBaseURL checks that s is an absolute http(s) URL.
func validBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("base URL %q is not an absolute http(s) URL", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("base URL %q must not have a query or fragment", s)
	}
	return nil
}
