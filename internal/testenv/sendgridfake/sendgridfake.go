// Package sendgridfake is a local stand-in for Twilio SendGrid's v3 mail-send
// API, for integration tests, benchmarks and development tools.
//
// The server listens on a random loopback port and answers
// POST /v3/mail/send the way the real API does: it checks the bearer key,
// validates the request shape (personalizations, recipient limits, from,
// subject, content, duplicate addresses) and answers 400 with SendGrid's
// {"errors":[{"field":…,"message":…}]} body when something is wrong, or 202
// with an empty body and an X-Message-Id header when the mail is accepted.
// Every response carries X-RateLimit-Limit, X-RateLimit-Remaining and
// X-RateLimit-Reset like the real API.
//
// Accepted mail is recorded once per recipient (to, cc and bcc), with that
// personalization's substitutions applied to the subject and content. Tests
// read it back with Messages, To and WaitFor, and inject failures with
// FailNext. For load tests, KeepBodies(false) keeps only a delivery count per
// address, a few bytes each, so a million recipients fit comfortably.
package sendgridfake

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Limits of the real API that the fake enforces.
const (
	// MaxPersonalizations is the most personalizations one request may carry.
	MaxPersonalizations = 1000
	// MaxRecipients is the most to+cc+bcc addresses one request may carry.
	MaxRecipients = 1000
	// MaxBodyBytes is the largest request body accepted (30 MB); larger
	// bodies get 413.
	MaxBodyBytes = 30 << 20
	// RateLimit is the value of the X-RateLimit-Limit header.
	RateLimit = 600
)

// SendPath is the only endpoint the fake serves.
const SendPath = "/v3/mail/send"

// Delivered is one accepted message as one recipient would receive it.
type Delivered struct {
	// MessageID is the X-Message-Id of the API call that carried it.
	MessageID string
	// Call is the 1-based number of the API call that carried it.
	Call int
	// Personalization is the index of its personalization in that call.
	Personalization int
	// Kind is "to", "cc" or "bcc".
	Kind string

	To, Name            string
	FromEmail, FromName string
	ReplyTo             string

	// Subject, Text and HTML have the personalization's substitutions applied.
	Subject, Text, HTML string
	// TemplateID is the request's template_id, if any.
	TemplateID string
	// Headers and CustomArgs merge the request's values with the
	// personalization's (which win); nil when there are none. Deliveries of
	// one personalization share these maps and Categories: treat them as
	// read-only.
	Headers, CustomArgs map[string]string
	// Categories are the request's categories, if any.
	Categories []string
	// SendAt is the scheduled send time (unix seconds), 0 when unscheduled.
	SendAt int64
}

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	srv    *httptest.Server
	apiKey string
	seed   maphash.Seed
	idBase [8]byte
	idSeq  atomic.Uint64
	calls  atomic.Int64

	mu         sync.Mutex
	keepBodies bool
	messages   []Delivered
	index      map[string][]int // lower-cased address -> indexes into messages
	counts     map[uint64]int32 // hash of lower-cased address -> deliveries
	recipients int
	failures   []failure
	changed    chan struct{} // closed and replaced on every delivery or Reset
}

type failure struct {
	status     int
	retryAfter time.Duration
}

// New starts a fake that accepts apiKey and closes it when the test ends.
func New(t testing.TB, apiKey string) *Server {
	t.Helper()
	s, err := Start(apiKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Start starts a fake that accepts apiKey on a random loopback port. Call
// Close when done. It is for benchmarks and tools; tests use New.
func Start(apiKey string) (*Server, error) {
	if apiKey == "" {
		return nil, errors.New("sendgridfake: empty API key")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sendgridfake: listen: %w", err)
	}
	s := &Server{
		apiKey:     apiKey,
		seed:       maphash.MakeSeed(),
		keepBodies: true,
		index:      make(map[string][]int),
		counts:     make(map[uint64]int32),
		changed:    make(chan struct{}),
	}
	binary.BigEndian.PutUint64(s.idBase[:], rand.Uint64())
	mux := http.NewServeMux()
	mux.HandleFunc(SendPath, s.handleSend)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErrors(w, http.StatusNotFound, apiError{Message: "not found"})
	})
	s.srv = httptest.NewUnstartedServer(mux)
	s.srv.Listener.Close()
	s.srv.Listener = ln
	s.srv.Start()
	return s, nil
}

// URL is the base URL to hand to a SendGrid client in place of
// https://api.sendgrid.com, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server and waits for in-flight requests.
func (s *Server) Close() { s.srv.Close() }

// KeepBodies chooses whether deliveries after this call are recorded in full
// (the default) or only counted per address. Without bodies Messages and To
// return nothing for those deliveries, Count and Recipients still work, and
// WaitFor returns records with only To set.
func (s *Server) KeepBodies(keep bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keepBodies = keep
}

// FailNext makes the next n API calls with a valid key fail with status
// instead of being processed. A 429 carries X-RateLimit-Remaining: 0 and
// X-RateLimit-Reset retryAfter from now (rounded up to whole seconds, like
// SendGrid's unix-seconds header); other statuses carry Retry-After when
// retryAfter > 0. Calls queue: FailNext(1, 429, …) then FailNext(1, 503, …)
// fails the next call with 429 and the one after with 503.
func (s *Server) FailNext(n int, status int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, failure{status: status, retryAfter: retryAfter})
	}
}

// Calls is the number of requests made to the mail-send endpoint, whatever
// their outcome.
func (s *Server) Calls() int { return int(s.calls.Load()) }

// Recipients is the number of deliveries recorded (one per recipient of each
// accepted message).
func (s *Server) Recipients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recipients
}

// Count is the number of deliveries to email (case-insensitive), with or
// without bodies.
func (s *Server) Count(email string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.counts[s.key(email)])
}

// Messages returns a copy of every delivery recorded with its body, in
// arrival order.
func (s *Server) Messages() []Delivered {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.messages)
}

// To returns the deliveries recorded with their bodies for email
// (case-insensitive), in arrival order.
func (s *Server) To(email string) []Delivered {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.toLocked(email)
}

func (s *Server) toLocked(email string) []Delivered {
	idx := s.index[strings.ToLower(email)]
	out := make([]Delivered, len(idx))
	for i, j := range idx {
		out[i] = s.messages[j]
	}
	return out
}

// WaitFor waits until at least n deliveries to email have arrived, or timeout
// passes, and returns the deliveries recorded for it. Deliveries counted
// without bodies are returned as records with only To set. On timeout it
// returns what arrived and an error.
func (s *Server) WaitFor(email string, n int, timeout time.Duration) ([]Delivered, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		got := int(s.counts[s.key(email)])
		if got >= n {
			out := s.toLocked(email)
			for len(out) < got {
				out = append(out, Delivered{To: email})
			}
			s.mu.Unlock()
			return out, nil
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			s.mu.Lock()
			out := s.toLocked(email)
			got = int(s.counts[s.key(email)])
			s.mu.Unlock()
			return out, fmt.Errorf("sendgridfake: waited %v for %d messages to the address, got %d", timeout, n, got)
		}
	}
}

// Reset forgets every delivery, the call count and pending failures.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = nil
	s.index = make(map[string][]int)
	s.counts = make(map[uint64]int32)
	s.recipients = 0
	s.failures = nil
	s.calls.Store(0)
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) key(email string) uint64 {
	return maphash.String(s.seed, strings.ToLower(email))
}

// nextMessageID returns a 22-character id shaped like SendGrid's.
func (s *Server) nextMessageID() string {
	var b [16]byte
	copy(b[:8], s.idBase[:])
	binary.BigEndian.PutUint64(b[8:], s.idSeq.Add(1))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Wire types: the subset of the v3 mail-send body the fake understands.
// Unknown fields are ignored, as they are by SendGrid.

type address struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
}

type personalization struct {
	To            []address         `json:"to"`
	Cc            []address         `json:"cc"`
	Bcc           []address         `json:"bcc"`
	Subject       string            `json:"subject"`
	Headers       map[string]string `json:"headers"`
	Substitutions map[string]string `json:"substitutions"`
	CustomArgs    map[string]string `json:"custom_args"`
	SendAt        int64             `json:"send_at"`
}

type content struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type mailSend struct {
	Personalizations []personalization `json:"personalizations"`
	From             *address          `json:"from"`
	ReplyTo          *address          `json:"reply_to"`
	Subject          string            `json:"subject"`
	Content          []content         `json:"content"`
	TemplateID       string            `json:"template_id"`
	Headers          map[string]string `json:"headers"`
	CustomArgs       map[string]string `json:"custom_args"`
	Categories       []string          `json:"categories"`
	SendAt           int64             `json:"send_at"`
}

// apiError is one entry of SendGrid's error body. Field is null when the
// error is not about a particular field.
type apiError struct {
	Field   *string `json:"field"`
	Message string  `json:"message"`
	Help    *string `json:"help,omitempty"`
}

func fieldError(field, message string) apiError {
	return apiError{Field: &field, Message: message}
}

func (s *Server) handleSend(w http.ResponseWriter, r *http.Request) {
	call := int(s.calls.Add(1))
	setRateLimitHeaders(w.Header(), RateLimit-1, nextMinute())

	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeErrors(w, http.StatusMethodNotAllowed, apiError{Message: "method not allowed"})
		return
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		writeErrors(w, http.StatusUnauthorized, apiError{Message: "authorization required"})
		return
	}
	if auth != "Bearer "+s.apiKey {
		writeErrors(w, http.StatusUnauthorized, apiError{Message: "The provided authorization grant is invalid, expired, or revoked"})
		return
	}
	if f, ok := s.takeFailure(); ok {
		writeFailure(w, f)
		return
	}
	if a := r.Header.Get("Accept"); a != "" && !strings.Contains(a, "application/json") && !strings.Contains(a, "*/*") {
		writeErrors(w, http.StatusNotAcceptable, apiError{Message: "Accept header must allow application/json"})
		return
	}

	body, status, err := readBody(r)
	if err != nil {
		writeErrors(w, status, apiError{Message: err.Error()})
		return
	}
	var req mailSend
	if err := json.Unmarshal(body, &req); err != nil {
		writeErrors(w, http.StatusBadRequest, apiError{Message: "Bad Request"})
		return
	}
	if errs := validate(&req); len(errs) > 0 {
		writeErrors(w, http.StatusBadRequest, errs...)
		return
	}

	id := s.nextMessageID()
	s.record(id, call, &req)
	w.Header().Set("X-Message-Id", id)
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) takeFailure() (failure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) == 0 {
		return failure{}, false
	}
	f := s.failures[0]
	s.failures = s.failures[1:]
	return f, true
}

// readBody reads at most MaxBodyBytes, gunzipping when the client compressed
// the body.
func readBody(r *http.Request) ([]byte, int, error) {
	if r.ContentLength > MaxBodyBytes {
		return nil, http.StatusRequestEntityTooLarge, errors.New("request entity too large")
	}
	var src io.Reader = r.Body
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(io.LimitReader(r.Body, MaxBodyBytes+1))
		if err != nil {
			return nil, http.StatusBadRequest, errors.New(http.StatusText(http.StatusBadRequest)) // SendGrid's own words
		}
		defer zr.Close()
		src = zr
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("unsupported content encoding %q", enc)
	}
	body, err := io.ReadAll(io.LimitReader(src, MaxBodyBytes+1))
	if err != nil {
		return nil, http.StatusBadRequest, errors.New(http.StatusText(http.StatusBadRequest)) // SendGrid's own words
	}
	if len(body) > MaxBodyBytes {
		return nil, http.StatusRequestEntityTooLarge, errors.New("request entity too large")
	}
	return body, 0, nil
}

// maxErrors bounds the errors reported for one request.
const maxErrors = 25

// validate checks req the way the real API does and returns its errors.
func validate(req *mailSend) []apiError {
	var errs []apiError
	add := func(field, msg string) {
		if len(errs) < maxErrors {
			errs = append(errs, fieldError(field, msg))
		}
	}

	switch n := len(req.Personalizations); {
	case n == 0:
		add("personalizations", "The personalizations field is required and must have at least one personalization.")
	case n > MaxPersonalizations:
		add("personalizations", fmt.Sprintf("The personalizations field is limited to %d items per request.", MaxPersonalizations))
	}

	if req.From == nil || req.From.Email == "" {
		add("from.email", `The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter.  e.g. {"email" : "example@example.com"}  or {"email" : "example@example.com", "name" : "Example Recipient"}.`)
	} else if !validEmail(req.From.Email) {
		add("from.email", "The from email does not contain a valid address.")
	}
	if req.ReplyTo != nil && !validEmail(req.ReplyTo.Email) {
		add("reply_to.email", "The reply_to email does not contain a valid address.")
	}

	if req.TemplateID == "" {
		if len(req.Content) == 0 {
			add("content", "Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block. We typically suggest both text/plain and text/html blocks are included, but only one block is required.")
		}
		if req.Subject == "" {
			for _, p := range req.Personalizations {
				if p.Subject == "" {
					add("subject", "The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.")
					break
				}
			}
		}
	}
	for i, c := range req.Content {
		switch {
		case c.Type == "":
			add(fmt.Sprintf("content.%d.type", i), "The content type must be a string at least one character in length.")
		case c.Value == "":
			add(fmt.Sprintf("content.%d.value", i), "The content value must be a string at least one character in length.")
		}
		if c.Type == "text/plain" && i > 0 {
			add(fmt.Sprintf("content.%d.type", i), "If present, text/plain content must be first, followed by text/html, then any other content.")
		}
		if c.Type == "text/html" && i > 0 && req.Content[i-1].Type != "text/plain" {
			add(fmt.Sprintf("content.%d.type", i), "If present, text/plain content must be first, followed by text/html, then any other content.")
		}
	}

	total := 0
	seen := make(map[string]struct{}, min(len(req.Personalizations), MaxRecipients))
	for i, p := range req.Personalizations {
		if len(p.To) == 0 {
			add(fmt.Sprintf("personalizations.%d.to", i), "The to array is required for all personalization objects, and must have at least one email object with a valid email address.")
		}
		for _, list := range []struct {
			kind  string
			addrs []address
		}{{"to", p.To}, {"cc", p.Cc}, {"bcc", p.Bcc}} {
			total += len(list.addrs)
			for j, a := range list.addrs {
				if !validEmail(a.Email) {
					add(fmt.Sprintf("personalizations.%d.%s.%d.email", i, list.kind, j), "Does not contain a valid address.")
					continue
				}
				k := strings.ToLower(a.Email)
				if _, dup := seen[k]; dup {
					// The real API quotes the address, so clients must keep
					// these messages out of their logs.
					add(fmt.Sprintf("personalizations.%d.%s", i, list.kind),
						fmt.Sprintf("Each email address in the personalization block should be unique between to, cc, and bcc. We found the first duplicate instance of [%s] in the personalizations.%d.%s field.", a.Email, i, list.kind))
					continue
				}
				seen[k] = struct{}{}
			}
		}
	}
	if total > MaxRecipients {
		add("personalizations", fmt.Sprintf("The total number of recipients must be no more than %d. This includes all recipients defined within the to, cc, and bcc parameters, across each object that you include in the personalizations array.", MaxRecipients))
	}
	return errs
}

// validEmail is a plausibility check: one '@' with something either side, a
// dot in the domain, and no spaces or angle brackets.
func validEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	if at <= 0 || at != strings.LastIndexByte(s, '@') || at == len(s)-1 {
		return false
	}
	if strings.ContainsAny(s, " \t\r\n<>,;\"") {
		return false
	}
	domain := s[at+1:]
	dot := strings.IndexByte(domain, '.')
	return dot > 0 && dot < len(domain)-1
}

// record stores one accepted request, one delivery per recipient.
func (s *Server) record(id string, call int, req *mailSend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range req.Personalizations {
		p := &req.Personalizations[i]
		var d Delivered
		if s.keepBodies {
			d = s.expand(id, call, i, req, p)
		}
		for _, list := range []struct {
			kind  string
			addrs []address
		}{{"to", p.To}, {"cc", p.Cc}, {"bcc", p.Bcc}} {
			for _, a := range list.addrs {
				s.counts[s.key(a.Email)]++
				s.recipients++
				if !s.keepBodies {
					continue
				}
				d.Kind, d.To, d.Name = list.kind, a.Email, a.Name
				lower := strings.ToLower(a.Email)
				s.index[lower] = append(s.index[lower], len(s.messages))
				s.messages = append(s.messages, d)
			}
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// expand builds the delivery of personalization i, without its recipient.
func (s *Server) expand(id string, call, i int, req *mailSend, p *personalization) Delivered {
	sub := substituter(p.Substitutions)
	d := Delivered{
		MessageID:       id,
		Call:            call,
		Personalization: i,
		FromEmail:       req.From.Email,
		FromName:        req.From.Name,
		TemplateID:      req.TemplateID,
		Headers:         merge(req.Headers, p.Headers),
		CustomArgs:      merge(req.CustomArgs, p.CustomArgs),
		Categories:      slices.Clone(req.Categories),
		SendAt:          req.SendAt,
	}
	if req.ReplyTo != nil {
		d.ReplyTo = req.ReplyTo.Email
	}
	if p.SendAt != 0 {
		d.SendAt = p.SendAt
	}
	d.Subject = req.Subject
	if p.Subject != "" {
		d.Subject = p.Subject
	}
	d.Subject = sub(d.Subject)
	for _, c := range req.Content {
		switch c.Type {
		case "text/plain":
			d.Text = sub(c.Value)
		case "text/html":
			d.HTML = sub(c.Value)
		}
	}
	return d
}

// substituter replaces each substitution tag with its value, longest tags
// first so that "-name-" never eats part of "-name-full-".
func substituter(subs map[string]string) func(string) string {
	if len(subs) == 0 {
		return func(s string) string { return s }
	}
	tags := make([]string, 0, len(subs))
	for k := range subs {
		if k != "" {
			tags = append(tags, k)
		}
	}
	slices.SortFunc(tags, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	pairs := make([]string, 0, 2*len(tags))
	for _, k := range tags {
		pairs = append(pairs, k, subs[k])
	}
	return strings.NewReplacer(pairs...).Replace
}

func merge(base, over map[string]string) map[string]string {
	if len(base) == 0 && len(over) == 0 {
		return nil
	}
	out := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

func nextMinute() time.Time {
	return time.Now().Truncate(time.Minute).Add(time.Minute)
}

func setRateLimitHeaders(h http.Header, remaining int, reset time.Time) {
	h.Set("X-RateLimit-Limit", strconv.Itoa(RateLimit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
}

// writeFailure answers an injected failure the way SendGrid would.
func writeFailure(w http.ResponseWriter, f failure) {
	secs := int64((f.retryAfter + time.Second - 1) / time.Second) // round up
	if f.status == http.StatusTooManyRequests {
		setRateLimitHeaders(w.Header(), 0, time.Unix(time.Now().Unix()+secs, 0))
		writeErrors(w, f.status, apiError{Message: "too many requests"})
		return
	}
	if f.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	writeErrors(w, f.status, apiError{Message: strings.ToLower(http.StatusText(f.status))})
}

func writeErrors(w http.ResponseWriter, status int, errs ...apiError) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(struct {
		Errors []apiError `json:"errors"`
	}{errs})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
