package processors

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/md5"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
)

// OpenDSR signature and domain headers (v2), and their OpenGDPR v1 names,
// which the v2 specification says every party must still honour.
const (
	OpenDSRDomainHeader     = "X-OpenDSR-Processor-Domain"
	OpenDSRSignatureHeader  = "X-OpenDSR-Signature"
	OpenGDPRDomainHeader    = "X-OpenGDPR-Processor-Domain"
	OpenGDPRSignatureHeader = "X-OpenGDPR-Signature"
)

// OpenDSRConfig configures a connector to an OpenDSR 2.0 (or legacy
// OpenGDPR) processor, Lethe acting as the controller.
type OpenDSRConfig struct {
	// Name defaults to "opendsr".
	Name string
	// BaseURL includes the version prefix, e.g. https://opendsr.mparticle.com/v2.
	BaseURL string
	// Username and Password, when set, are sent as HTTP Basic (mParticle:
	// key and secret). BearerToken, when set, is sent instead.
	Username, Password string
	BearerToken        string
	// Regulation is "gdpr" (default), "ccpa" or another value the
	// processor accepts; not sent in legacy mode.
	Regulation string
	// ExportType is the request type for exports: "access" (default) or
	// "portability".
	ExportType string
	// EmailFormat is how the email identity is sent: "raw" (default), or
	// "sha256", "md5", "sha1" of the lower-cased address.
	EmailFormat string
	// StatusCallbackURLs are sent as status_callback_urls.
	StatusCallbackURLs []string
	// Legacy uses the OpenGDPR v1 route /opengdpr_requests and omits the
	// v2-only fields.
	Legacy bool
	// Verifier, when set, checks the processor's signature on every
	// response to /requests; a bad one fails with KindNeedsOperator.
	Verifier *OpenDSRVerifier
	// HTTPClient defaults to a client with a 60 s timeout.
	HTTPClient *http.Client
	// Now defaults to time.Now (submitted_time).
	Now func() time.Time
}

// OpenDSR files erasure and access requests with an OpenDSR processor.
//
// Each call is submit-or-check: the subject_request_id is derived from
// Subject.RequestID and the request type (OpenDSRRequestID), the connector
// first asks GET /requests/{id} and only POSTs when the processor does not
// know the request, so a retry never files a second one. pending and
// in_progress give StatusPending (JobID is the subject_request_id),
// completed gives StatusDone, cancelled a KindNeedsOperator error. Call
// Erase or Export again to follow progress, or rely on callbacks checked
// with OpenDSRVerifier.VerifyCallback. A completed export writes one
// "opendsr.results" record holding results_url and results_count; fetching
// the results is up to the caller.
type OpenDSR struct {
	name        string
	prefix      string
	regulation  string
	exportType  string
	emailFormat string
	callbacks   []string
	legacy      bool
	verifier    *OpenDSRVerifier
	now         func() time.Time
	c           *httpClient
}

// NewOpenDSR checks cfg and returns an OpenDSR connector.
func NewOpenDSR(cfg OpenDSRConfig) (*OpenDSR, error) {
	if cfg.Name == "" {
		cfg.Name = "opendsr"
	}
	if err := validBaseURL(cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("opendsr %q: %w", cfg.Name, err)
	}
	if cfg.Regulation == "" {
		cfg.Regulation = "gdpr"
	}
	switch cfg.ExportType {
	case "":
		cfg.ExportType = "access"
	case "access", "portability":
	default:
		return nil, fmt.Errorf("opendsr %q: export type %q is not access or portability", cfg.Name, cfg.ExportType)
	}
	switch cfg.EmailFormat {
	case "":
		cfg.EmailFormat = "raw"
	case "raw", "sha256", "md5", "sha1":
	default:
		return nil, fmt.Errorf("opendsr %q: email format %q is not raw, sha256, md5 or sha1", cfg.Name, cfg.EmailFormat)
	}
	for _, u := range cfg.StatusCallbackURLs {
		if err := validBaseURL(u); err != nil {
			return nil, fmt.Errorf("opendsr %q: callback: %w", cfg.Name, err)
		}
	}
	if cfg.BearerToken != "" && cfg.Username != "" {
		return nil, fmt.Errorf("opendsr %q: set either basic credentials or a bearer token, not both", cfg.Name)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := newHTTPClient(cfg.Name, cfg.BaseURL, cfg.HTTPClient)
	c.now = cfg.Now
	switch {
	case cfg.BearerToken != "":
		tok := cfg.BearerToken
		c.auth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	case cfg.Username != "" || cfg.Password != "":
		user, pass := cfg.Username, cfg.Password
		c.auth = func(r *http.Request) { r.SetBasicAuth(user, pass) }
	}
	c.code = openDSRErrorCode
	prefix := "/requests"
	if cfg.Legacy {
		prefix = "/opengdpr_requests"
	}
	return &OpenDSR{
		name: cfg.Name, prefix: prefix, regulation: cfg.Regulation, exportType: cfg.ExportType,
		emailFormat: cfg.EmailFormat, callbacks: slices.Clone(cfg.StatusCallbackURLs), legacy: cfg.Legacy,
		verifier: cfg.Verifier, now: cfg.Now, c: c,
	}, nil
}

// Name implements Connector.
func (o *OpenDSR) Name() string { return o.name }

// openDSRErrorCode returns the reasons of {"error":{"code","errors":[{reason}]}}.
func openDSRErrorCode(body []byte) string {
	var e struct {
		Error struct {
			Errors []struct {
				Reason string `json:"reason"`
			} `json:"errors"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	var rs []string
	for _, x := range e.Error.Errors {
		if x.Reason != "" {
			rs = append(rs, x.Reason)
		}
	}
	return strings.Join(rs, ",")
}

// OpenDSRRequestID derives the subject_request_id for Lethe's request and a
// request type: a lower-case UUID with version 4 and RFC 4122 variant bits,
// whose other bits come from SHA-256, so the same inputs always give the
// same id and the processor sees a well-formed UUIDv4.
func OpenDSRRequestID(requestID, requestType string) string {
	sum := sha256.Sum256([]byte("lethe/opendsr\x00" + requestID + "\x00" + requestType))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// openDSRIdentity is one subject identity.
type openDSRIdentity struct {
	Type   string `json:"identity_type"`
	Value  string `json:"identity_value"`
	Format string `json:"identity_format"`
}

// openDSRRequest is the POST /requests body.
type openDSRRequest struct {
	Regulation         string            `json:"regulation,omitempty"`
	SubjectRequestID   string            `json:"subject_request_id"`
	SubjectRequestType string            `json:"subject_request_type"`
	SubmittedTime      string            `json:"submitted_time"`
	SubjectIdentities  []openDSRIdentity `json:"subject_identities"`
	APIVersion         string            `json:"api_version,omitempty"`
	StatusCallbackURLs []string          `json:"status_callback_urls,omitempty"`
}

// openDSRStatus is the body of POST and GET /requests answers.
type openDSRStatus struct {
	ControllerID           string `json:"controller_id"`
	ExpectedCompletionTime string `json:"expected_completion_time"`
	SubjectRequestID       string `json:"subject_request_id"`
	RequestStatus          string `json:"request_status"`
	ResultsURL             string `json:"results_url,omitempty"`
	ResultsCount           *int   `json:"results_count,omitempty"`
}

func (o *OpenDSR) identities(subj Subject) []openDSRIdentity {
	var ids []openDSRIdentity
	if subj.Email != "" {
		v := subj.Email
		var h hash.Hash
		switch o.emailFormat {
		case "sha256":
			h = sha256.New()
		case "md5":
			h = md5.New()
		case "sha1":
			h = sha1.New()
		}
		if h != nil {
			io.WriteString(h, strings.ToLower(v))
			v = hex.EncodeToString(h.Sum(nil))
		}
		ids = append(ids, openDSRIdentity{Type: "email", Value: v, Format: o.emailFormat})
	}
	if subj.UserID != "" {
		ids = append(ids, openDSRIdentity{Type: "controller_customer_id", Value: subj.UserID, Format: "raw"})
	}
	return ids
}

// getStatus asks GET /requests/{id}; found is false on 404.
func (o *OpenDSR) getStatus(ctx context.Context, action Action, id string) (st openDSRStatus, r *response, found bool, err error) {
	r, err = o.c.do(ctx, action, call{method: http.MethodGet, path: o.prefix + "/" + url.PathEscape(id)})
	if err != nil {
		return st, nil, false, err
	}
	switch r.Status {
	case http.StatusOK:
	case http.StatusNotFound:
		return st, r, false, nil
	default:
		return st, r, false, o.c.fail(action, r)
	}
	st, err = o.parse(ctx, action, r)
	return st, r, err == nil, err
}

// parse verifies (when configured) and decodes a status answer.
func (o *OpenDSR) parse(ctx context.Context, action Action, r *response) (openDSRStatus, error) {
	var st openDSRStatus
	if o.verifier != nil {
		if err := o.verifier.VerifyResponse(ctx, r.Header, r.Body); err != nil {
			e := o.c.badBody(action, r)
			e.Reason = "response signature not valid: " + err.Error()
			return st, e
		}
	}
	if err := json.Unmarshal(r.Body, &st); err != nil {
		return st, o.c.badBody(action, r)
	}
	return st, nil
}

// submitOrCheck files the request unless the processor knows it already,
// and reports its state.
func (o *OpenDSR) submitOrCheck(ctx context.Context, action Action, subj Subject, reqType string) (Outcome, openDSRStatus, error) {
	if subj.RequestID == "" {
		return Outcome{}, openDSRStatus{}, o.c.local(action, "subject has no request id")
	}
	ids := o.identities(subj)
	if len(ids) == 0 {
		return Outcome{}, openDSRStatus{}, o.c.local(action, "subject has neither email nor user id")
	}
	id := OpenDSRRequestID(subj.RequestID, reqType)
	out := Outcome{Processor: o.name, Action: action, JobID: id}
	st, r, found, err := o.getStatus(ctx, action, id)
	if err != nil {
		return Outcome{}, st, err
	}
	if !found {
		req := openDSRRequest{
			SubjectRequestID:   id,
			SubjectRequestType: reqType,
			SubmittedTime:      o.now().UTC().Format(time.RFC3339),
			SubjectIdentities:  ids,
			StatusCallbackURLs: o.callbacks,
		}
		if !o.legacy {
			req.Regulation = o.regulation
			req.APIVersion = "2.0"
		}
		r, err = o.c.doJSON(ctx, action, http.MethodPost, o.prefix, req)
		if err != nil {
			return Outcome{}, st, err
		}
		switch r.Status {
		case http.StatusCreated, http.StatusOK, http.StatusAccepted:
			if st, err = o.parse(ctx, action, r); err != nil {
				return Outcome{}, st, err
			}
			if st.RequestStatus == "" {
				st.RequestStatus = "pending"
			}
		case http.StatusBadRequest, http.StatusConflict, http.StatusUnprocessableEntity:
			// Perhaps filed meanwhile (a lost answer, a concurrent retry).
			post := r
			st, r, found, err = o.getStatus(ctx, action, id)
			if err != nil {
				return Outcome{}, st, err
			}
			if !found {
				return Outcome{}, st, o.c.fail(action, post)
			}
		default:
			return Outcome{}, st, o.c.fail(action, r)
		}
	}
	out.HTTPStatus = r.Status
	out.addRef("controller", scrub(st.ControllerID))
	if st.SubjectRequestID != "" && st.SubjectRequestID != id {
		e := o.c.badBody(action, r)
		e.Reason = "processor answered for another subject_request_id"
		return Outcome{}, st, e
	}
	switch st.RequestStatus {
	case "pending", "in_progress":
		out.Status = StatusPending
		out.Note = "processor status " + st.RequestStatus
		if st.ExpectedCompletionTime != "" {
			out.Note += ", expected completion " + scrub(st.ExpectedCompletionTime)
		}
	case "completed":
		out.Status = StatusDone
	case "cancelled":
		e := o.c.badBody(action, r)
		e.Code, e.Reason = "cancelled", "the processor cancelled the request"
		return Outcome{}, st, e
	default:
		e := o.c.badBody(action, r)
		e.Reason = "unknown request_status"
		return Outcome{}, st, e
	}
	return out, st, nil
}

// Erase implements Eraser with an "erasure" request.
func (o *OpenDSR) Erase(ctx context.Context, subj Subject) (Outcome, error) {
	out, _, err := o.submitOrCheck(ctx, ActionErase, subj, "erasure")
	return out, err
}

// Export implements Exporter with an "access" (or "portability") request.
func (o *OpenDSR) Export(ctx context.Context, subj Subject, w ExportWriter) (Outcome, error) {
	out, st, err := o.submitOrCheck(ctx, ActionExport, subj, o.exportType)
	if err != nil || out.Status != StatusDone {
		return out, err
	}
	data, err := json.Marshal(map[string]any{
		"subject_request_id": out.JobID, "results_url": st.ResultsURL, "results_count": st.ResultsCount,
	})
	if err != nil {
		return Outcome{}, o.c.local(ActionExport, "cannot encode results")
	}
	if err := writeRecord(ctx, w, o.name, Record{Kind: "opendsr.results", ID: out.JobID, Data: data}); err != nil {
		return Outcome{}, err
	}
	out.Records = 1
	return out, nil
}

// OpenDSRCallback is a processor's status callback body.
type OpenDSRCallback struct {
	ControllerID           string `json:"controller_id"`
	ExpectedCompletionTime string `json:"expected_completion_time"`
	StatusCallbackURL      string `json:"status_callback_url"`
	SubjectRequestID       string `json:"subject_request_id"`
	RequestStatus          string `json:"request_status"`
	ResultsURL             string `json:"results_url,omitempty"`
	ResultsCount           *int   `json:"results_count,omitempty"`
}

// OpenDSRVerifier checks X-OpenDSR-Signature (or X-OpenGDPR-Signature) on
// callbacks and responses: the processor domain must be allow-listed, its
// certificate must chain to Roots and name the domain, and the Base64
// signature must verify over the SHA-256 digest of the raw body (RSA
// PKCS#1 v1.5, RSA-PSS or ECDSA). Revocation is not checked here.
type OpenDSRVerifier struct {
	// AllowedDomains are the processor domains whose signatures count.
	AllowedDomains []string
	// Certificates returns a domain's certificate chain, leaf first, e.g.
	// FetchOpenDSRCertificates on its discovery URL behind a cache.
	Certificates func(ctx context.Context, domain string) ([]*x509.Certificate, error)
	// Roots are the trusted CAs; nil means the system pool.
	Roots *x509.CertPool
	// CallbackURLs, when set, must contain a callback's status_callback_url.
	CallbackURLs []string
	// Now defaults to time.Now (certificate validity).
	Now func() time.Time
}

// OpenDSRVerifyError says why a signature was refused. Status is the reply
// the security guidelines suggest: 401 for an untrusted domain or
// certificate, 400 for a bad signature or body.
type OpenDSRVerifyError struct {
	Status int
	Reason string
}

func (e *OpenDSRVerifyError) Error() string { return "opendsr signature: " + e.Reason }

func verifyErr(status int, format string, args ...any) error {
	return &OpenDSRVerifyError{Status: status, Reason: fmt.Sprintf(format, args...)}
}

// VerifyResponse checks the signature headers of a processor response.
func (v *OpenDSRVerifier) VerifyResponse(ctx context.Context, h http.Header, body []byte) error {
	domain := h.Get(OpenDSRDomainHeader)
	sig := h.Get(OpenDSRSignatureHeader)
	if domain == "" {
		domain, sig = h.Get(OpenGDPRDomainHeader), h.Get(OpenGDPRSignatureHeader)
	}
	domain = strings.ToLower(strings.TrimSpace(domain))
	if domain == "" {
		return verifyErr(http.StatusUnauthorized, "no processor domain header")
	}
	if !slices.ContainsFunc(v.AllowedDomains, func(d string) bool { return strings.EqualFold(d, domain) }) {
		return verifyErr(http.StatusUnauthorized, "domain %q is not allowed", domain)
	}
	if v.Certificates == nil {
		return verifyErr(http.StatusUnauthorized, "no certificate source configured")
	}
	chain, err := v.Certificates(ctx, domain)
	if err != nil || len(chain) == 0 {
		return verifyErr(http.StatusUnauthorized, "no certificate for %q: %v", domain, err)
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{
		DNSName: domain, Roots: v.Roots, Intermediates: inter, CurrentTime: now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return verifyErr(http.StatusUnauthorized, "certificate for %q not trusted: %v", domain, err)
	}
	return VerifyOpenDSRSignature(chain[0], sig, body)
}

// VerifyCallback checks a status callback's signature, then decodes it and
// checks its status_callback_url.
func (v *OpenDSRVerifier) VerifyCallback(ctx context.Context, h http.Header, body []byte) (OpenDSRCallback, error) {
	var cb OpenDSRCallback
	if err := v.VerifyResponse(ctx, h, body); err != nil {
		return cb, err
	}
	if err := json.Unmarshal(body, &cb); err != nil {
		return cb, verifyErr(http.StatusBadRequest, "body is not a callback")
	}
	if len(v.CallbackURLs) > 0 && !slices.Contains(v.CallbackURLs, cb.StatusCallbackURL) {
		return cb, verifyErr(http.StatusBadRequest, "status_callback_url is not ours")
	}
	return cb, nil
}

// VerifyOpenDSRSignature checks a Base64 signature (whitespace allowed, as
// in folded headers) over the SHA-256 digest of body with cert's key.
func VerifyOpenDSRSignature(cert *x509.Certificate, signature string, body []byte) error {
	sig, err := base64.StdEncoding.DecodeString(strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, signature))
	if err != nil || len(sig) == 0 {
		return verifyErr(http.StatusBadRequest, "signature missing or not Base64")
	}
	sum := sha256.Sum256(body)
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) == nil ||
			rsa.VerifyPSS(pub, crypto.SHA256, sum[:], sig, nil) == nil {
			return nil
		}
	case *ecdsa.PublicKey:
		if ecdsa.VerifyASN1(pub, sum[:], sig) {
			return nil
		}
	default:
		return verifyErr(http.StatusUnauthorized, "unsupported key type %T", pub)
	}
	return verifyErr(http.StatusBadRequest, "signature does not match body")
}

// FetchOpenDSRCertificates reads a processor's discovery document and
// downloads the PEM chain its processor_certificate names; that URL must be
// on the discovery URL's host. hc nil means a client with a 60 s timeout.
// Callers cache the result for the certificate's lifetime.
func FetchOpenDSRCertificates(ctx context.Context, hc *http.Client, discoveryURL string) ([]*x509.Certificate, error) {
	if hc == nil {
		hc = &http.Client{Timeout: defaultTimeout}
	}
	get := func(u string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
		}
		return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	}
	data, err := get(discoveryURL)
	if err != nil {
		return nil, fmt.Errorf("opendsr discovery: %w", err)
	}
	var d struct {
		ProcessorCertificate string `json:"processor_certificate"`
	}
	if err := json.Unmarshal(data, &d); err != nil || d.ProcessorCertificate == "" {
		return nil, fmt.Errorf("opendsr discovery: no processor_certificate")
	}
	du, _ := url.Parse(discoveryURL)
	cu, err := url.Parse(d.ProcessorCertificate)
	if err != nil || du == nil || !strings.EqualFold(cu.Hostname(), du.Hostname()) {
		return nil, fmt.Errorf("opendsr discovery: processor_certificate is not on the processor's host")
	}
	data, err = get(cu.String())
	if err != nil {
		return nil, fmt.Errorf("opendsr certificate: %w", err)
	}
	var chain []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("opendsr certificate: %w", err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("opendsr certificate: no PEM certificate")
	}
	return chain, nil
}
