package processors_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
)

func TestOpenDSRRequestIDIsDeterministicUUIDv4(t *testing.T) {
	a := processors.OpenDSRRequestID("req-1", "erasure")
	if a != processors.OpenDSRRequestID("req-1", "erasure") {
		t.Fatal("not deterministic")
	}
	if a == processors.OpenDSRRequestID("req-1", "access") || a == processors.OpenDSRRequestID("req-2", "erasure") {
		t.Fatal("ids collide across requests or types")
	}
	if len(a) != 36 || a[14] != '4' || !strings.ContainsRune("89ab", rune(a[19])) || strings.ToLower(a) != a {
		t.Fatalf("%s is not a lower-case UUIDv4", a)
	}
}

func verifierFor(f *processorfake.OpenDSR) *processors.OpenDSRVerifier {
	return &processors.OpenDSRVerifier{
		AllowedDomains: []string{f.Domain()},
		Roots:          f.Roots(),
		Certificates: func(ctx context.Context, domain string) ([]*x509.Certificate, error) {
			return processors.FetchOpenDSRCertificates(ctx, nil, f.DiscoveryURL())
		},
	}
}

func TestOpenDSREraseSubmitsOnceAndFollowsProgress(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewOpenDSR(t, processorfake.OpenDSROptions{})
	c := newOpenDSR(t, f, func(cfg *processors.OpenDSRConfig) { cfg.Verifier = verifierFor(f) })
	id := processors.OpenDSRRequestID("req-1", "erasure")

	out, err := c.Erase(ctx, subject("req-1"))
	mustOutcome(t, out, err, processors.StatusPending)
	if out.JobID != id || out.HTTPStatus != http.StatusCreated {
		t.Fatalf("outcome %+v", out)
	}
	req, ok := f.Request(id)
	if !ok || req.Type != "erasure" || req.Regulation != "gdpr" || len(req.Identities) != 2 {
		t.Fatalf("request at processor %+v", req)
	}

	// A retry asks for the status and does not file a second request.
	out, err = c.Erase(ctx, subject("req-1"))
	mustOutcome(t, out, err, processors.StatusPending)
	if n := len(f.CallsTo(http.MethodPost, "/v2/requests")); n != 1 {
		t.Fatalf("%d POSTs", n)
	}

	if st, err := f.Advance(ctx, id); err != nil || st != "in_progress" {
		t.Fatalf("advance: %s %v", st, err)
	}
	out, err = c.Erase(ctx, subject("req-1"))
	mustOutcome(t, out, err, processors.StatusPending)
	if !strings.Contains(out.Note, "in_progress") {
		t.Fatalf("note %q", out.Note)
	}
	if _, err := f.Advance(ctx, id); err != nil {
		t.Fatal(err)
	}
	out, err = c.Erase(ctx, subject("req-1"))
	mustOutcome(t, out, err, processors.StatusDone)
}

func TestOpenDSRLostAnswerDoesNotDuplicate(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewOpenDSR(t, processorfake.OpenDSROptions{})
	c := newOpenDSR(t, f)
	if _, err := c.Erase(ctx, subject("req-1")); err != nil {
		t.Fatal(err)
	}
	// The status check fails once as if the request were unknown; the
	// connector POSTs, gets "already exists" and reads the status instead.
	f.Inject(processorfake.Fault{Status: http.StatusNotFound, Times: 1, Method: http.MethodGet})
	out, err := c.Erase(ctx, subject("req-1"))
	mustOutcome(t, out, err, processors.StatusPending)
	if n := len(f.Requests()); n != 1 {
		t.Fatalf("%d requests at the processor", n)
	}
	posts := f.CallsTo(http.MethodPost, "/v2/requests")
	if len(posts) != 2 || posts[1].Status != http.StatusBadRequest {
		t.Fatalf("posts %+v", posts)
	}
}

func TestOpenDSRExportWritesResultsWhenCompleted(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewOpenDSR(t, processorfake.OpenDSROptions{RSA: true})
	c := newOpenDSR(t, f, func(cfg *processors.OpenDSRConfig) {
		cfg.Verifier = verifierFor(f)
		cfg.EmailFormat = "sha256"
	})
	var col collector
	out, err := c.Export(ctx, subject("req-2"), &col)
	mustOutcome(t, out, err, processors.StatusPending)
	if len(col.records) != 0 {
		t.Fatal("records before completion")
	}
	req, _ := f.Request(out.JobID)
	if req.Type != "access" || req.Identities[0].Format != "sha256" || strings.Contains(req.Identities[0].Value, "@") {
		t.Fatalf("request %+v", req)
	}
	if err := f.Complete(ctx, out.JobID); err != nil {
		t.Fatal(err)
	}
	out, err = c.Export(ctx, subject("req-2"), &col)
	mustOutcome(t, out, err, processors.StatusDone)
	if len(col.records) != 1 || col.records[0].Kind != "opendsr.results" || !strings.Contains(string(col.records[0].Data), "/results/") {
		t.Fatalf("records %+v", col.records)
	}
}

func TestOpenDSRLegacyRoute(t *testing.T) {
	f := processorfake.NewOpenDSR(t, processorfake.OpenDSROptions{})
	c := newOpenDSR(t, f, func(cfg *processors.OpenDSRConfig) {
		cfg.Legacy = true
		cfg.Verifier = verifierFor(f)
	})
	out, err := c.Erase(context.Background(), subject("req-3"))
	mustOutcome(t, out, err, processors.StatusPending)
	posts := f.CallsTo(http.MethodPost, "/v2/opengdpr_requests")
	if len(posts) != 1 || strings.Contains(string(posts[0].Body), "regulation") {
		t.Fatalf("legacy posts %+v", posts)
	}
}

func TestOpenDSRBadResponseSignatureNeedsOperator(t *testing.T) {
	f := processorfake.NewOpenDSR(t, processorfake.OpenDSROptions{})
	f.BreakSignatures(true)
	c := newOpenDSR(t, f, func(cfg *processors.OpenDSRConfig) { cfg.Verifier = verifierFor(f) })
	out, err := c.Erase(context.Background(), subject("r"))
	e := mustError(t, out, err, processors.KindNeedsOperator, http.StatusCreated)
	if !strings.Contains(e.Error(), "signature") {
		t.Fatalf("error %v", e)
	}
}

func TestOpenDSRCancelledRequestNeedsOperator(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewOpenDSR(t, processorfake.OpenDSROptions{})
	c := newOpenDSR(t, f)
	out, err := c.Erase(ctx, subject("r"))
	mustOutcome(t, out, err, processors.StatusPending)
	req, _ := http.NewRequest(http.MethodDelete, f.URL()+"/requests/"+out.JobID, nil)
	req.SetBasicAuth(f.Username(), f.Password())
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("cancel: %v %v", resp, err)
	}
	resp.Body.Close()
	out, err = c.Erase(ctx, subject("r"))
	e := mustError(t, out, err, processors.KindNeedsOperator, http.StatusOK)
	if e.Code != "cancelled" {
		t.Fatalf("code %q", e.Code)
	}
}

// controller is a callback endpoint using OpenDSRVerifier.VerifyCallback.
type controller struct {
	mu       sync.Mutex
	got      []processors.OpenDSRCallback
	refusals []int
}

func (c *controller) handler(v *processors.OpenDSRVerifier) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		cb, err := v.VerifyCallback(r.Context(), r.Header, body)
		c.mu.Lock()
		defer c.mu.Unlock()
		var ve *processors.OpenDSRVerifyError
		if errors.As(err, &ve) {
			c.refusals = append(c.refusals, ve.Status)
			w.WriteHeader(ve.Status)
			return
		}
		c.got = append(c.got, cb)
		w.WriteHeader(http.StatusAccepted)
	})
}

func TestOpenDSRCallbacksAreVerified(t *testing.T) {
	for _, rsa := range []bool{false, true} {
		name := "ecdsa"
		if rsa {
			name = "rsa"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			f := processorfake.NewOpenDSR(t, processorfake.OpenDSROptions{RSA: rsa})
			ctl := &controller{}
			v := verifierFor(f)
			srv := httptest.NewServer(ctl.handler(v))
			defer srv.Close()
			v.CallbackURLs = []string{srv.URL + "/opendsr/callbacks"}

			c := newOpenDSR(t, f, func(cfg *processors.OpenDSRConfig) {
				cfg.StatusCallbackURLs = []string{srv.URL + "/opendsr/callbacks"}
			})
			out, err := c.Erase(ctx, subject("req-cb"))
			mustOutcome(t, out, err, processors.StatusPending)
			if err := f.Complete(ctx, out.JobID); err != nil {
				t.Fatal(err)
			}
			ctl.mu.Lock()
			defer ctl.mu.Unlock()
			if len(ctl.got) != 2 || ctl.got[1].RequestStatus != "completed" || ctl.got[1].SubjectRequestID != out.JobID {
				t.Fatalf("callbacks %+v, refusals %v", ctl.got, ctl.refusals)
			}
		})
	}
}

func TestOpenDSRVerifierRefusals(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewOpenDSR(t, processorfake.OpenDSROptions{})
	body, _ := json.Marshal(map[string]string{"subject_request_id": "x", "request_status": "completed",
		"status_callback_url": "https://controller.test/cb"})
	good := http.Header{}
	good.Set(processors.OpenDSRDomainHeader, f.Domain())
	good.Set(processors.OpenDSRSignatureHeader, f.Sign(body))

	status := func(err error) int {
		var ve *processors.OpenDSRVerifyError
		if !errors.As(err, &ve) {
			t.Fatalf("want OpenDSRVerifyError, got %v", err)
		}
		return ve.Status
	}

	v := verifierFor(f)
	if _, err := v.VerifyCallback(ctx, good, body); err != nil {
		t.Fatal(err)
	}
	// Folded (wrapped) signature headers still verify.
	folded := good.Clone()
	sig := f.Sign(body)
	folded.Set(processors.OpenDSRSignatureHeader, sig[:20]+"\n "+sig[20:])
	if _, err := v.VerifyCallback(ctx, folded, body); err != nil {
		t.Fatalf("folded header: %v", err)
	}
	// Legacy header names.
	legacy := http.Header{}
	legacy.Set(processors.OpenGDPRDomainHeader, f.Domain())
	legacy.Set(processors.OpenGDPRSignatureHeader, f.Sign(body))
	if _, err := v.VerifyCallback(ctx, legacy, body); err != nil {
		t.Fatalf("legacy headers: %v", err)
	}

	if _, err := v.VerifyCallback(ctx, good, append(body, ' ')); status(err) != http.StatusBadRequest {
		t.Fatal("changed body accepted")
	}
	other := &processors.OpenDSRVerifier{AllowedDomains: []string{"someone.else"}, Roots: f.Roots(), Certificates: v.Certificates}
	if _, err := other.VerifyCallback(ctx, good, body); status(err) != http.StatusUnauthorized {
		t.Fatal("domain not on the allow-list accepted")
	}
	untrusted := *v
	untrusted.Roots = x509.NewCertPool()
	if _, err := untrusted.VerifyCallback(ctx, good, body); status(err) != http.StatusUnauthorized {
		t.Fatal("certificate from an untrusted CA accepted")
	}
	ours := *v
	ours.CallbackURLs = []string{"https://controller.test/other"}
	if _, err := ours.VerifyCallback(ctx, good, body); status(err) != http.StatusBadRequest {
		t.Fatal("callback for another URL accepted")
	}
	impostor := processorfake.NewOpenDSR(t, processorfake.OpenDSROptions{}) // same domain, other key
	bad := good.Clone()
	bad.Set(processors.OpenDSRSignatureHeader, impostor.Sign(body))
	if _, err := v.VerifyCallback(ctx, bad, body); status(err) != http.StatusBadRequest {
		t.Fatal("signature by another key accepted")
	}
}
