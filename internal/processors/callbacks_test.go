package processors_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
)

const ourCallback = "https://lethe.test/v1/callbacks/opendsr/dsr"

// signedCallback is a callback body for id and the headers f signs it with.
func signedCallback(f *processorfake.OpenDSR, id, status string) ([]byte, http.Header) {
	body, _ := json.Marshal(map[string]string{"subject_request_id": id, "request_status": status,
		"controller_id": "lethe-controller", "status_callback_url": ourCallback})
	h := http.Header{}
	h.Set(processors.OpenDSRDomainHeader, f.Domain())
	h.Set(processors.OpenDSRSignatureHeader, f.Sign(body))
	return body, h
}

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func verifyStatus(t *testing.T, err error) int {
	t.Helper()
	var ve *processors.OpenDSRVerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("want an OpenDSRVerifyError, got %v", err)
	}
	return ve.Status
}

func TestOpenDSRCallbacksVerifyWithTheCachedCertificate(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewOpenDSR(t, processorfake.OpenDSROptions{})
	clk := &clock{t: time.Now()}
	cbs, err := processors.NewOpenDSRCallbacks([]processors.Config{
		{Name: "stripe", Kind: "stripe", CredentialEnv: "LETHE_STRIPE_KEY"}, // no credential needed: ignored
		{Name: "dsr", Kind: "opendsr", BaseURL: f.URL(), Options: map[string]string{
			"processor_domain": f.Domain(), "callback_urls": ourCallback}},
	}, processors.BuildOptions{OpenDSRRoots: f.Roots(), Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if !cbs.Has("dsr") || cbs.Has("stripe") || cbs.Has("nobody") {
		t.Fatal("Has does not list exactly the OpenDSR processors")
	}
	id := processors.OpenDSRRequestID("req-1", "erasure")
	fetches := func() int { return len(f.CallsTo(http.MethodGet, "/cert.pem")) }

	body, h := signedCallback(f, id, "completed")
	cb, err := cbs.Verify(ctx, "dsr", h, body)
	if err != nil || cb.SubjectRequestID != id || cb.RequestStatus != "completed" {
		t.Fatalf("callback %+v, %v", cb, err)
	}
	if _, err := cbs.Verify(ctx, "dsr", h, body); err != nil || fetches() != 1 {
		t.Fatalf("second callback: %v, certificate fetched %d times, want once", err, fetches())
	}

	// A forged signature is refused, and makes no fetch within a minute.
	forged := h.Clone()
	forged.Set(processors.OpenDSRSignatureHeader, f.Sign([]byte("something else")))
	if _, err := cbs.Verify(ctx, "dsr", forged, body); verifyStatus(t, err) != http.StatusBadRequest || errors.Is(err, processors.ErrBadCallback) || fetches() != 1 {
		t.Fatalf("forged signature: %v, %d fetches", err, fetches())
	}
	// Later, one failure reads the certificate again (a rotated key), once.
	clk.add(2 * time.Minute)
	if _, err := cbs.Verify(ctx, "dsr", forged, body); verifyStatus(t, err) != http.StatusBadRequest || fetches() != 2 {
		t.Fatalf("forged signature later: %v, %d fetches, want 2", err, fetches())
	}

	// Not our callback URL, another domain, no OpenDSR processor.
	other, _ := json.Marshal(map[string]string{"subject_request_id": id, "request_status": "completed", "status_callback_url": "https://evil.test/cb"})
	oh := h.Clone()
	oh.Set(processors.OpenDSRSignatureHeader, f.Sign(other))
	if _, err := cbs.Verify(ctx, "dsr", oh, other); verifyStatus(t, err) != http.StatusBadRequest || !errors.Is(err, processors.ErrBadCallback) {
		t.Fatal("a callback for another URL was accepted")
	}
	dh := h.Clone()
	dh.Set(processors.OpenDSRDomainHeader, "evil.test")
	if _, err := cbs.Verify(ctx, "dsr", dh, body); verifyStatus(t, err) != http.StatusUnauthorized {
		t.Fatal("another domain was accepted")
	}
	if _, err := cbs.Verify(ctx, "stripe", h, body); !errors.Is(err, processors.ErrNotOpenDSR) {
		t.Fatalf("stripe: %v", err)
	}
}

func TestOpenDSRCallbacksReadARotatedCertificateAgain(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewOpenDSR(t, processorfake.OpenDSROptions{})
	old := processorfake.NewOpenDSR(t, processorfake.OpenDSROptions{}) // same domain, the key before
	var serving atomic.Pointer[processorfake.OpenDSR]
	serving.Store(old)
	var proxy *httptest.Server
	proxy = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/discovery":
			json.NewEncoder(w).Encode(map[string]string{"processor_certificate": proxy.URL + "/cert.pem"})
		case "/cert.pem":
			resp, err := http.Get(serving.Load().Origin() + "/cert.pem")
			if err != nil {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			io.Copy(w, resp.Body)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer proxy.Close()

	clk := &clock{t: time.Now()}
	cbs, err := processors.NewOpenDSRCallbacks([]processors.Config{{Name: "dsr", Kind: "opendsr", BaseURL: f.URL(),
		Options: map[string]string{"processor_domain": f.Domain(), "discovery_url": proxy.URL + "/discovery"}}},
		processors.BuildOptions{OpenDSRRoots: f.Roots(), Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	body, h := signedCallback(f, processors.OpenDSRRequestID("req-1", "erasure"), "completed")
	if _, err := cbs.Verify(ctx, "dsr", h, body); verifyStatus(t, err) != http.StatusUnauthorized {
		t.Fatalf("the old certificate (another CA) verified: %v", err)
	}
	serving.Store(f) // the processor now publishes its new certificate
	if _, err := cbs.Verify(ctx, "dsr", h, body); err == nil {
		t.Fatal("refetched at once: a forged callback could make Lethe fetch on every request")
	}
	clk.add(2 * time.Minute)
	if _, err := cbs.Verify(ctx, "dsr", h, body); err != nil {
		t.Fatalf("the new certificate was not read again: %v", err)
	}
}

func TestOpenDSRCallbacksRefuseABadDiscoveryURL(t *testing.T) {
	_, err := processors.NewOpenDSRCallbacks([]processors.Config{{Name: "dsr", Kind: "opendsr", BaseURL: "https://dsr.test/v2",
		Options: map[string]string{"discovery_url": "ftp://dsr.test/discovery"}}}, processors.BuildOptions{})
	if err == nil {
		t.Fatal("an ftp discovery URL was accepted")
	}
}
