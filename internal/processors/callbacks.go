package processors

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// How long a processor's certificates are used before they are read again
// from its discovery document, and how soon after a read a failed
// verification may read them again (a rotated key), so that forged
// callbacks cannot make Lethe fetch on every request.
const (
	certificatesCacheFor = 12 * time.Hour
	certificatesRefetch  = time.Minute
)

// OpenDSRCallbacks verifies the signed status callbacks of a data map's
// OpenDSR processors. It needs no processor credential, so the API can
// build it from the data map alone. Each processor's certificate chain is
// read from its discovery document (FetchOpenDSRCertificates) and cached;
// a signature that fails with a cached chain reads the chain once more (a
// processor that rotated its key), at most once a minute. Safe for
// concurrent use.
type OpenDSRCallbacks struct {
	byName map[string]*openDSRCallbackSource
}

// openDSRCallbackSource is one processor: its verifier and its cached
// certificate chain.
type openDSRCallbackSource struct {
	verifier     OpenDSRVerifier // Certificates is set per call
	discoveryURL string
	hc           *http.Client
	now          func() time.Time

	mu        sync.Mutex
	chain     []*x509.Certificate
	fetchedAt time.Time
}

// NewOpenDSRCallbacks prepares the verification of callbacks from every
// processor of kind opendsr in cfgs (other kinds are ignored):
//
//   - the signing domain is option processor_domain, else base_url's host;
//   - the certificates come from option discovery_url, else
//     base_url + "/discovery";
//   - option callback_urls, when set, must list the callback's
//     status_callback_url;
//   - opts.OpenDSRRoots are the trusted CAs (nil: the system pool), plus
//     the PEM bundle of option ca_file, else of the variable
//     OpenDSRCAFileEnv (read through opts.LookupEnv), which the HTTPS
//     fetch of the discovery document trusts too;
//   - opts.HTTPClient fetches the certificates, opts.Now is the clock.
func NewOpenDSRCallbacks(cfgs []Config, opts BuildOptions) (*OpenDSRCallbacks, error) {
	c := &OpenDSRCallbacks{byName: map[string]*openDSRCallbackSource{}}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	var errs []error
	for _, cfg := range cfgs {
		if cfg.Kind != "opendsr" {
			continue
		}
		s, err := newOpenDSRCallbackSource(cfg, opts, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("processor %q: %w", cfg.Name, err))
			continue
		}
		c.byName[cfg.Name] = s
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

func newOpenDSRCallbackSource(cfg Config, opts BuildOptions, now func() time.Time) (*openDSRCallbackSource, error) {
	if err := validBaseURL(cfg.BaseURL); err != nil {
		return nil, err
	}
	base, _ := url.Parse(cfg.BaseURL)
	domain := strings.ToLower(strings.TrimSpace(cfg.Options["processor_domain"]))
	if domain == "" {
		domain = strings.ToLower(base.Hostname())
	}
	discovery := strings.TrimSpace(cfg.Options["discovery_url"])
	if discovery == "" {
		discovery = strings.TrimSuffix(cfg.BaseURL, "/") + "/discovery"
	}
	if err := validBaseURL(discovery); err != nil {
		return nil, fmt.Errorf("option discovery_url: %w", err)
	}
	roots, bundle, err := openDSRTrust(cfg, opts)
	if err != nil {
		return nil, err
	}
	hc := opts.HTTPClient
	if bundle {
		// The discovery document and certificate are fetched over HTTPS
		// from the same processor: trust the bundle there too.
		if hc, err = clientTrusting(hc, roots); err != nil {
			return nil, fmt.Errorf("option ca_file: %w", err)
		}
	}
	if hc == nil {
		hc = &http.Client{Timeout: defaultTimeout}
	}
	return &openDSRCallbackSource{
		verifier: OpenDSRVerifier{AllowedDomains: []string{domain}, Roots: roots,
			CallbackURLs: splitList(cfg.Options["callback_urls"]), Now: now},
		discoveryURL: discovery, hc: hc, now: now,
	}, nil
}

// Has reports whether name is an OpenDSR processor of the data map.
func (c *OpenDSRCallbacks) Has(name string) bool {
	if c == nil {
		return false
	}
	_, ok := c.byName[name]
	return ok
}

// Verify's errors besides signature refusals.
var (
	// ErrNotOpenDSR: the name is no OpenDSR processor of the data map.
	ErrNotOpenDSR = errors.New("not an OpenDSR processor of the data map")
	// ErrBadCallback wraps the refusal of a correctly signed body: not a
	// callback, or one for another status_callback_url.
	ErrBadCallback = errors.New("signed, but not a callback for Lethe")
)

// Verify checks a status callback from processor name: its domain and
// signature headers against the processor's certificate, then its body
// and status_callback_url. A refusal is an *OpenDSRVerifyError (Status 401
// for an untrusted domain or certificate, 400 for a bad signature or body),
// wrapped in ErrBadCallback when the signature held but the body did not;
// a name that is no OpenDSR processor is ErrNotOpenDSR.
func (c *OpenDSRCallbacks) Verify(ctx context.Context, name string, h http.Header, body []byte) (OpenDSRCallback, error) {
	if !c.Has(name) {
		return OpenDSRCallback{}, ErrNotOpenDSR
	}
	s := c.byName[name]
	v, cached := s.verifierForCall()
	err := v.VerifyResponse(ctx, h, body)
	if err != nil && *cached && s.mayRefetch() {
		s.forget()
		v, _ = s.verifierForCall()
		err = v.VerifyResponse(ctx, h, body)
	}
	if err != nil {
		return OpenDSRCallback{}, err
	}
	// The signature holds: decode the body and check the callback URL
	// (with the chain now cached, no second fetch).
	cb, err := v.VerifyCallback(ctx, h, body)
	if err != nil {
		return OpenDSRCallback{}, fmt.Errorf("%w: %w", ErrBadCallback, err)
	}
	return cb, nil
}

// verifierForCall returns the processor's verifier reading the cached
// chain; *cached tells, after a verification, whether the chain came from
// the cache rather than a fetch made for it.
func (s *openDSRCallbackSource) verifierForCall() (OpenDSRVerifier, *bool) {
	v := s.verifier
	cached := new(bool)
	v.Certificates = func(ctx context.Context, _ string) ([]*x509.Certificate, error) {
		chain, fromCache, err := s.certificates(ctx)
		*cached = fromCache
		return chain, err
	}
	return v, cached
}

// certificates returns the cached chain while it is fresh, else fetches it.
func (s *openDSRCallbackSource) certificates(ctx context.Context) ([]*x509.Certificate, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.chain) > 0 && now.Sub(s.fetchedAt) < certificatesCacheFor && now.Before(s.chain[0].NotAfter) {
		return s.chain, true, nil
	}
	chain, err := FetchOpenDSRCertificates(ctx, s.hc, s.discoveryURL)
	if err != nil {
		return nil, false, err
	}
	s.chain, s.fetchedAt = chain, now
	return chain, false, nil
}

// mayRefetch reports whether the chain was read long enough ago to read
// it again after a failed verification.
func (s *openDSRCallbackSource) mayRefetch() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now().Sub(s.fetchedAt) >= certificatesRefetch
}

// forget drops the cached chain.
func (s *openDSRCallbackSource) forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chain = nil
}
