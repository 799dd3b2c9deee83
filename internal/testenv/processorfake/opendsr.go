package processorfake

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// Default OpenDSR fake settings.
const (
	DefaultOpenDSRDomain   = "opendsr.processor.test"
	DefaultOpenDSRUser     = "lethe-key"
	DefaultOpenDSRPassword = "lethe-secret"
)

// OpenDSROptions configures an OpenDSR fake.
type OpenDSROptions struct {
	// Domain is the processor domain in its certificate and headers.
	Domain string
	// RSA signs with an RSA-2048 key (PKCS#1 v1.5, as mParticle does)
	// instead of ECDSA P-256.
	RSA bool
	// Username and Password are the HTTP Basic credentials accepted.
	Username, Password string
	// ControllerID is the controller_id the processor reports.
	ControllerID string
	// TLS serves HTTPS with a certificate for 127.0.0.1 and localhost
	// issued by the fake's own CA (CAPEM), which no system trusts.
	TLS bool
}

// OpenDSRIdentity is one subject identity of a request.
type OpenDSRIdentity struct {
	Type   string `json:"identity_type"`
	Value  string `json:"identity_value"`
	Format string `json:"identity_format"`
}

// OpenDSRRequest is a subject request the fake received.
type OpenDSRRequest struct {
	SubjectRequestID   string
	Type               string
	Regulation         string
	Status             string // pending, in_progress, completed, cancelled
	SubmittedTime      string
	Identities         []OpenDSRIdentity
	CallbackURLs       []string
	Legacy             bool
	ExpectedCompletion string
	// Body is the raw POST body.
	Body []byte
}

// CallbackDelivery is one status callback the fake sent.
type CallbackDelivery struct {
	URL              string
	SubjectRequestID string
	RequestStatus    string
	HTTPStatus       int
	Err              error
}

// OpenDSR is an OpenDSR 2.0 processor under /v2 (with the OpenGDPR v1
// /opengdpr_requests routes too): GET /discovery, POST /requests (201,
// duplicates 400 "Subject request already exists"), GET /requests/{id},
// DELETE /requests/{id} (202 while pending). Answers to /requests carry
// X-OpenDSR-Processor-Domain and X-OpenDSR-Signature (X-OpenGDPR-* on
// legacy routes): a Base64 signature over the SHA-256 digest of the exact
// body, by a key whose certificate (GET /cert.pem, chained to Roots())
// names the domain. Requests move pending → in_progress → completed when a
// test calls Advance, which also POSTs signed callbacks.
type OpenDSR struct {
	*Server
	opts     OpenDSROptions
	key      crypto.Signer
	leaf     *x509.Certificate
	leafPEM  []byte
	caPEM    []byte
	tlsCert  *tls.Certificate
	roots    *x509.CertPool
	client   *http.Client
	breakSig bool

	requests  map[string]*OpenDSRRequest
	callbacks []CallbackDelivery
}

// NewOpenDSR starts an OpenDSR fake with a fresh CA and signing key.
func NewOpenDSR(t testing.TB, opts OpenDSROptions) *OpenDSR {
	if opts.Domain == "" {
		opts.Domain = DefaultOpenDSRDomain
	}
	if opts.Username == "" && opts.Password == "" {
		opts.Username, opts.Password = DefaultOpenDSRUser, DefaultOpenDSRPassword
	}
	if opts.ControllerID == "" {
		opts.ControllerID = "lethe-controller"
	}
	f := &OpenDSR{opts: opts, requests: map[string]*OpenDSRRequest{}, client: &http.Client{Timeout: 5 * time.Second}}
	if err := f.makeCertificates(); err != nil {
		t.Fatalf("opendsr fake certificates: %v", err)
	}
	f.Server = newServerTLS(t, style{
		authorize: func(r *http.Request) bool {
			p := r.URL.Path
			if p == "/cert.pem" || p == "/v2/discovery" || strings.HasPrefix(p, "/results/") {
				return true
			}
			u, pw, ok := r.BasicAuth()
			return ok && u == f.opts.Username && pw == f.opts.Password
		},
		writeError: func(w http.ResponseWriter, status int, code, message string) {
			dsrError(w, status, code, message)
		},
		retryHint: retryAfterSeconds,
	}, f.tlsCert)
	f.handle("GET /cert.pem", f.certificate)
	f.handle("GET /v2/discovery", f.discovery)
	f.handle("GET /results/{id}", f.results)
	for _, base := range []string{"/v2/requests", "/v2/opengdpr_requests"} {
		f.handle("POST "+base, f.create)
		f.handle("GET "+base+"/{id}", f.status)
		f.handle("DELETE "+base+"/{id}", f.cancel)
	}
	return f
}

// URL is the versioned API base, ending in /v2.
func (f *OpenDSR) URL() string { return f.Origin() + "/v2" }

// DiscoveryURL is GET /v2/discovery.
func (f *OpenDSR) DiscoveryURL() string { return f.URL() + "/discovery" }

// Domain is the processor domain.
func (f *OpenDSR) Domain() string { return f.opts.Domain }

// Username is the Basic user name accepted.
func (f *OpenDSR) Username() string { return f.opts.Username }

// Password is the Basic password accepted.
func (f *OpenDSR) Password() string { return f.opts.Password }

// CAPEM is the fake CA's certificate in PEM: the one issuer of the
// signing certificate and, with OpenDSROptions.TLS, of the server's.
func (f *OpenDSR) CAPEM() []byte { return bytes.Clone(f.caPEM) }

// Roots holds the fake CA that issued the signing certificate.
func (f *OpenDSR) Roots() *x509.CertPool { return f.roots }

// Certificate is the signing certificate.
func (f *OpenDSR) Certificate() *x509.Certificate { return f.leaf }

// Sign returns the Base64 signature of body, as the headers carry it.
func (f *OpenDSR) Sign(body []byte) string {
	sum := sha256.Sum256(body)
	sig, err := f.key.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		panic(err) // only with a broken key, which makeCertificates rules out
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// BreakSignatures makes answers and callbacks carry signatures that do not
// match their bodies.
func (f *OpenDSR) BreakSignatures(broken bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.breakSig = broken
}

// Request returns a copy of the request with this subject_request_id.
func (f *OpenDSR) Request(id string) (OpenDSRRequest, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.requests[id]
	if !ok {
		return OpenDSRRequest{}, false
	}
	return *r, true
}

// Requests returns copies of all requests received.
func (f *OpenDSR) Requests() []OpenDSRRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []OpenDSRRequest
	for _, r := range f.requests {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b OpenDSRRequest) int { return strings.Compare(a.SubjectRequestID, b.SubjectRequestID) })
	return out
}

// Callbacks returns the callbacks sent so far.
func (f *OpenDSR) Callbacks() []CallbackDelivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.callbacks)
}

// Advance moves a request one step (pending → in_progress → completed),
// then POSTs a signed callback to each of its status_callback_urls. It
// returns the new status; callback failures are recorded in Callbacks and
// joined into the error.
func (f *OpenDSR) Advance(ctx context.Context, id string) (string, error) {
	f.mu.Lock()
	r, ok := f.requests[id]
	if !ok {
		f.mu.Unlock()
		return "", fmt.Errorf("no request %s", id)
	}
	switch r.Status {
	case "pending":
		r.Status = "in_progress"
	case "in_progress":
		r.Status = "completed"
	default:
		f.mu.Unlock()
		return r.Status, fmt.Errorf("request %s is %s", id, r.Status)
	}
	req := *r
	f.mu.Unlock()
	return req.Status, f.sendCallbacks(ctx, req)
}

// Complete advances a request until it is completed.
func (f *OpenDSR) Complete(ctx context.Context, id string) error {
	for {
		st, err := f.Advance(ctx, id)
		if err != nil || st == "completed" {
			return err
		}
	}
}

func (f *OpenDSR) makeCertificates() error {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Lethe fake OpenDSR CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	if f.opts.RSA {
		f.key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		f.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: f.opts.Domain, Organization: []string{"Fake Processor"}},
		DNSNames: []string{f.opts.Domain}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, f.key.Public(), caKey)
	if err != nil {
		return err
	}
	if f.leaf, err = x509.ParseCertificate(leafDER); err != nil {
		return err
	}
	f.leafPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	f.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	f.roots = x509.NewCertPool()
	f.roots.AddCert(ca)
	if !f.opts.TLS {
		return nil
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "127.0.0.1"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	f.tlsCert = &tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
	return nil
}

func dsrError(w http.ResponseWriter, status int, reason, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code": status, "message": message,
		"errors": []map[string]string{{"domain": "Validation", "reason": reason, "message": message}},
	}})
}

// writeSigned answers v with the domain and signature headers.
func (f *OpenDSR) writeSigned(w http.ResponseWriter, status int, v any, legacy bool) {
	body, _ := json.Marshal(v)
	dh, sh := "X-OpenDSR-Processor-Domain", "X-OpenDSR-Signature"
	if legacy {
		dh, sh = "X-OpenGDPR-Processor-Domain", "X-OpenGDPR-Signature"
	}
	w.Header().Set(dh, f.opts.Domain)
	w.Header().Set(sh, f.signature(body))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

func (f *OpenDSR) signature(body []byte) string {
	if f.breakSig {
		return f.Sign(append(bytes.Clone(body), '!'))
	}
	return f.Sign(body)
}

func (f *OpenDSR) certificate(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Write(f.leafPEM)
}

func (f *OpenDSR) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"api_version": "2.0",
		"supported_identities": []map[string]string{
			{"identity_type": "email", "identity_format": "raw"},
			{"identity_type": "email", "identity_format": "sha256"},
			{"identity_type": "controller_customer_id", "identity_format": "raw"},
		},
		"supported_subject_request_types": []string{"erasure", "access", "portability"},
		"processor_certificate":           f.Origin() + "/cert.pem",
	})
}

func isUUIDv4(s string) bool {
	if len(s) != 36 || s[14] != '4' || !strings.ContainsRune("89ab", rune(s[19])) {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
				return false
			}
		}
	}
	return true
}

func (f *OpenDSR) create(w http.ResponseWriter, r *http.Request) {
	legacy := strings.Contains(r.URL.Path, "opengdpr")
	body, _ := readAll(r)
	var in struct {
		Regulation         string            `json:"regulation"`
		SubjectRequestID   string            `json:"subject_request_id"`
		SubjectRequestType string            `json:"subject_request_type"`
		SubmittedTime      string            `json:"submitted_time"`
		SubjectIdentities  []OpenDSRIdentity `json:"subject_identities"`
		StatusCallbackURLs []string          `json:"status_callback_urls"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		dsrError(w, http.StatusBadRequest, "invalid_json", "The request body is not valid JSON")
		return
	}
	switch {
	case !legacy && in.Regulation != "gdpr" && in.Regulation != "ccpa":
		dsrError(w, http.StatusBadRequest, "invalid_regulation", "regulation must be gdpr or ccpa")
		return
	case !isUUIDv4(in.SubjectRequestID):
		dsrError(w, http.StatusBadRequest, "invalid_subject_request_id", "subject_request_id must be a lower-case UUIDv4")
		return
	case !slices.Contains([]string{"erasure", "access", "portability"}, in.SubjectRequestType):
		dsrError(w, http.StatusBadRequest, "unsupported_request_type", "subject_request_type is not supported")
		return
	case len(in.SubjectIdentities) == 0:
		dsrError(w, http.StatusBadRequest, "missing_identities", "subject_identities is required")
		return
	}
	if _, err := time.Parse(time.RFC3339, in.SubmittedTime); err != nil {
		dsrError(w, http.StatusBadRequest, "invalid_submitted_time", "submitted_time must be RFC 3339")
		return
	}
	for _, id := range in.SubjectIdentities {
		if !slices.Contains([]string{"email", "controller_customer_id", "android_advertising_id", "ios_advertising_id"}, id.Type) ||
			!slices.Contains([]string{"raw", "sha1", "md5", "sha256"}, id.Format) || id.Value == "" {
			dsrError(w, http.StatusBadRequest, "unsupported_identity", "an identity type or format is not supported")
			return
		}
	}
	if _, dup := f.requests[in.SubjectRequestID]; dup {
		dsrError(w, http.StatusBadRequest, "duplicate_request", "Subject request already exists")
		return
	}
	now := time.Now().UTC()
	req := &OpenDSRRequest{
		SubjectRequestID: in.SubjectRequestID, Type: in.SubjectRequestType, Regulation: in.Regulation,
		Status: "pending", SubmittedTime: in.SubmittedTime, Identities: in.SubjectIdentities,
		CallbackURLs: in.StatusCallbackURLs, Legacy: legacy, Body: body,
		ExpectedCompletion: now.Add(7 * 24 * time.Hour).Format(time.RFC3339),
	}
	f.requests[req.SubjectRequestID] = req
	resp := map[string]any{
		"controller_id": f.opts.ControllerID, "expected_completion_time": req.ExpectedCompletion,
		"received_time": now.Format(time.RFC3339), "encoded_request": base64.StdEncoding.EncodeToString(body),
		"subject_request_id": req.SubjectRequestID,
	}
	// processor_signature signs the answer without that field.
	unsigned, _ := json.Marshal(resp)
	resp["processor_signature"] = f.signature(unsigned)
	f.writeSigned(w, http.StatusCreated, resp, legacy)
}

func (f *OpenDSR) statusBody(r *OpenDSRRequest) map[string]any {
	out := map[string]any{
		"controller_id": f.opts.ControllerID, "expected_completion_time": r.ExpectedCompletion,
		"subject_request_id": r.SubjectRequestID, "request_status": r.Status, "api_version": "2.0",
	}
	if r.Status == "completed" && r.Type != "erasure" {
		out["results_url"] = f.Origin() + "/results/" + r.SubjectRequestID
		out["results_count"] = 1
	}
	return out
}

func (f *OpenDSR) status(w http.ResponseWriter, r *http.Request) {
	req, ok := f.requests[r.PathValue("id")]
	if !ok {
		dsrError(w, http.StatusNotFound, "not_found", "Subject request not found")
		return
	}
	f.writeSigned(w, http.StatusOK, f.statusBody(req), strings.Contains(r.URL.Path, "opengdpr"))
}

func (f *OpenDSR) cancel(w http.ResponseWriter, r *http.Request) {
	req, ok := f.requests[r.PathValue("id")]
	if !ok {
		dsrError(w, http.StatusNotFound, "not_found", "Subject request not found")
		return
	}
	if req.Status != "pending" {
		dsrError(w, http.StatusBadRequest, "not_cancellable", "only pending requests can be cancelled")
		return
	}
	req.Status = "cancelled"
	f.writeSigned(w, http.StatusAccepted, map[string]any{
		"controller_id": f.opts.ControllerID, "subject_request_id": req.SubjectRequestID,
		"received_time": time.Now().UTC().Format(time.RFC3339), "api_version": "2.0",
	}, strings.Contains(r.URL.Path, "opengdpr"))
	copyReq := *req
	go f.sendCallbacks(context.Background(), copyReq) // after the answer, as a processor would
}

func (f *OpenDSR) results(w http.ResponseWriter, r *http.Request) {
	req, ok := f.requests[r.PathValue("id")]
	if !ok || req.Status != "completed" {
		w.WriteHeader(http.StatusGone)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"subject_request_id": req.SubjectRequestID,
		"identities": req.Identities, "data": []map[string]string{{"event": "page_view"}}})
}

// sendCallbacks POSTs the request's state to each callback URL.
func (f *OpenDSR) sendCallbacks(ctx context.Context, r OpenDSRRequest) error {
	var errs []error
	for _, u := range r.CallbackURLs {
		f.mu.Lock()
		body := f.statusBody(&r)
		delete(body, "api_version")
		body["status_callback_url"] = u
		data, _ := json.Marshal(body)
		sig := f.signature(data)
		f.mu.Unlock()

		d := CallbackDelivery{URL: u, SubjectRequestID: r.SubjectRequestID, RequestStatus: r.Status}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(data))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
			dh, sh := "X-OpenDSR-Processor-Domain", "X-OpenDSR-Signature"
			if r.Legacy {
				dh, sh = "X-OpenGDPR-Processor-Domain", "X-OpenGDPR-Signature"
			}
			req.Header.Set(dh, f.opts.Domain)
			req.Header.Set(sh, sig)
			var resp *http.Response
			if resp, err = f.client.Do(req); err == nil {
				resp.Body.Close()
				d.HTTPStatus = resp.StatusCode
				if resp.StatusCode/100 != 2 {
					err = fmt.Errorf("callback %s: HTTP %d", u, resp.StatusCode)
				}
			}
		}
		d.Err = err
		if err != nil {
			errs = append(errs, err)
		}
		f.mu.Lock()
		f.callbacks = append(f.callbacks, d)
		f.mu.Unlock()
	}
	return errors.Join(errs...)
}
