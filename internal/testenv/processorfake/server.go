// Package processorfake runs local stand-ins for the processors Lethe
// calls: Stripe, Mailchimp, SendGrid Marketing, Help Scout, a
// signed-webhook receiver and an OpenDSR processor. Each is an httptest server on a random loopback
// port that answers on the services' real paths, checks their auth, keeps
// seedable state, speaks their JSON/form shapes and status codes, and
// records every call for assertions.
//
// Every fake embeds *Server, which adds failure injection (the next N calls
// fail with a status, a 429 with a retry hint in the service's own header,
// or a dropped connection) and artificial latency.
//
// The fakes are written from the reference notes, independently of the
// connectors in internal/processors (they do not import it), so a
// connector bug is not mirrored by its fake.
package processorfake

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"log"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Call is one request a fake received.
type Call struct {
	Method string
	// Path is the decoded URL path, e.g. "/v1/customers/cus_1".
	Path   string
	Query  url.Values
	Header http.Header
	// Body is the raw request body.
	Body []byte
	// Form is the parsed body of form-encoded requests.
	Form url.Values
	// Status is what the fake answered (0 for a dropped connection).
	Status int
	// Injected tells whether a Fault produced the answer.
	Injected bool
	// At is when the call arrived.
	At time.Time
}

// Fault makes matching calls fail before they reach the service logic.
type Fault struct {
	// Status is the HTTP status to answer with (e.g. 503, 500, 429, 400).
	Status int
	// Times is how many matching calls fail; 0 or less means every one
	// until ClearFaults.
	Times int
	// RetryAfter, when set, is announced the way the service does it
	// (Retry-After seconds, or SendGrid's X-RateLimit-Reset).
	RetryAfter time.Duration
	// Drop breaks the connection in the middle of an answer (a network
	// failure).
	Drop bool
	// Method and PathPrefix, when set, restrict the fault to such calls.
	Method     string
	PathPrefix string
}

// style is what differs between services in the shared plumbing.
type style struct {
	// authorize reports whether the request carries valid credentials.
	authorize func(r *http.Request) bool
	// writeError answers with the service's error shape.
	writeError func(w http.ResponseWriter, status int, code, message string)
	// retryHint sets the service's rate-limit headers for a wait of d.
	retryHint func(h http.Header, d time.Duration, now time.Time)
	// decorate adds headers every answer carries (request ids...).
	decorate func(h http.Header)
}

// Server is the part every fake shares: the listener, the call log,
// faults and latency. Its methods are safe for concurrent use.
type Server struct {
	srv     *httptest.Server
	mux     *http.ServeMux
	style   style
	mu      sync.Mutex // guards everything below and the embedding fake's state
	calls   []Call
	faults  []*Fault
	latency time.Duration
}

func newServer(t testing.TB, st style) *Server { return newServerTLS(t, st, nil) }

// newServerTLS is newServer answering HTTPS with cert when it is not nil.
func newServerTLS(t testing.TB, st style, cert *tls.Certificate) *Server {
	s := &Server{mux: http.NewServeMux(), style: st}
	if cert == nil {
		s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	} else {
		s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
		s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
		// Clients that do not trust the certificate are expected here.
		s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		s.srv.StartTLS()
	}
	t.Cleanup(s.srv.Close)
	return s
}

// Origin is the server's scheme://host:port, without any API prefix.
func (s *Server) Origin() string { return s.srv.URL }

// Client returns an HTTP client for the server.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Close shuts the server down (also done by the test's cleanup).
func (s *Server) Close() { s.srv.Close() }

// Inject adds a fault; faults are consulted in the order added.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// FailNext makes the next n calls answer status with the service's error
// body (e.g. 503 or 500 for transient failures, 400 for a permanent one).
func (s *Server) FailNext(n, status int) { s.Inject(Fault{Status: status, Times: n}) }

// RateLimitNext makes the next n calls answer 429 announcing a wait of
// retryAfter in the service's own header.
func (s *Server) RateLimitNext(n int, retryAfter time.Duration) {
	s.Inject(Fault{Status: http.StatusTooManyRequests, Times: n, RetryAfter: retryAfter})
}

// DropNext makes the next n calls lose their connection.
func (s *Server) DropNext(n int) { s.Inject(Fault{Drop: true, Times: n}) }

// ClearFaults removes every pending fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// SetLatency delays every answer by d (cut short if the client gives up).
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// Calls returns a copy of the call log.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CallsTo returns the calls with this method (any if "") whose path starts
// with pathPrefix.
func (s *Server) CallsTo(method, pathPrefix string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if (method == "" || c.Method == method) && strings.HasPrefix(c.Path, pathPrefix) {
			out = append(out, c)
		}
	}
	return out
}

// BusiestSecond is the most calls of calls that arrived within any one
// second: what a processor's rate limit is measured against.
func BusiestSecond(calls []Call) int {
	most := 0
	for i := range calls {
		n := 0
		for _, c := range calls {
			if !c.At.Before(calls[i].At) && c.At.Sub(calls[i].At) < time.Second {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}

// ResetCalls empties the call log.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

// handle registers a route (Go ServeMux pattern). The handler runs with
// the server's lock held, so it may touch the fake's state freely.
func (s *Server) handle(pattern string, h http.HandlerFunc) { s.mux.HandleFunc(pattern, h) }

// takeFault returns the first fault matching r and consumes one use.
func (s *Server) takeFault(r *http.Request) *Fault {
	for i, f := range s.faults {
		if f.Method != "" && f.Method != r.Method || !strings.HasPrefix(r.URL.Path, f.PathPrefix) {
			continue
		}
		out := *f
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
		}
		return &out
	}
	return nil
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	r.Body = io.NopCloser(bytes.NewReader(body))
	c := Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body, At: time.Now()}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
		c.Form, _ = url.ParseQuery(string(body))
	}

	s.mu.Lock()
	fault := s.takeFault(r)
	latency := s.latency
	s.mu.Unlock()

	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	rec := &statusRecorder{ResponseWriter: w}
	if s.style.decorate != nil {
		s.style.decorate(w.Header())
	}
	switch {
	case fault != nil && fault.Drop:
		c.Injected = true
		// Break off in the middle of an answer: clients cannot mistake it
		// for an idle connection closed early and retry it silently.
		if hj, ok := w.(http.Hijacker); ok {
			if conn, buf, err := hj.Hijack(); err == nil {
				buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"partial")
				buf.Flush()
				conn.Close()
			}
		}
	case fault != nil:
		c.Injected = true
		if fault.RetryAfter > 0 && s.style.retryHint != nil {
			s.style.retryHint(w.Header(), fault.RetryAfter, time.Now())
		}
		s.style.writeError(rec, fault.Status, faultCode(fault.Status), http.StatusText(fault.Status))
	case s.style.authorize != nil && !s.style.authorize(r):
		s.style.writeError(rec, http.StatusUnauthorized, "unauthorized", "invalid credentials")
	default:
		s.mu.Lock()
		s.mux.ServeHTTP(rec, r)
		s.mu.Unlock()
	}
	c.Status = rec.status

	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()
}

func faultCode(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "rate_limit"
	case status >= 500:
		return "server_error"
	default:
		return "invalid_request"
	}
}

// retryAfterSeconds is the usual Retry-After hint.
func retryAfterSeconds(h http.Header, d time.Duration, _ time.Time) {
	h.Set("Retry-After", formatSeconds(d))
}

func formatSeconds(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	w.Write(data)
}

// readJSON decodes the (already buffered) request body into v.
func readJSON(r *http.Request, v any) error {
	return json.NewDecoder(r.Body).Decode(v)
}

// readAll returns the (buffered) request body and leaves it readable again.
func readAll(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	return b, err
}
