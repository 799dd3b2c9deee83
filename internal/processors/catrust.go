package processors

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// OpenDSRCAFileEnv names the environment variable holding a CA bundle (a
// PEM file) trusted, beside the system CAs, for every OpenDSR processor
// without its own option ca_file: for the HTTPS calls to the processor and
// its discovery document, and for the certificate that signs its callbacks.
const OpenDSRCAFileEnv = "LETHE_OPENDSR_CA_FILE"

// openDSRTrust returns the CAs trusted for an OpenDSR processor's
// certificates: opts.OpenDSRRoots (else the system pool) plus the bundle
// named by option ca_file, else by OpenDSRCAFileEnv (read through
// opts.LookupEnv). bundle tells whether a bundle was added; without one
// the pool is opts.OpenDSRRoots as given (nil: the system pool). Errors
// name the setting and the file, never its content.
func openDSRTrust(cfg Config, opts BuildOptions) (pool *x509.CertPool, bundle bool, err error) {
	path, setting := strings.TrimSpace(cfg.Options["ca_file"]), "option ca_file"
	if path == "" && opts.LookupEnv != nil {
		if v, ok := opts.LookupEnv(OpenDSRCAFileEnv); ok {
			path, setting = strings.TrimSpace(v), OpenDSRCAFileEnv
		}
	}
	if path == "" {
		return opts.OpenDSRRoots, false, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", setting, err)
	}
	switch {
	case opts.OpenDSRRoots != nil:
		pool = opts.OpenDSRRoots.Clone()
	default:
		if pool, err = x509.SystemCertPool(); err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
	}
	if !pool.AppendCertsFromPEM(data) {
		return nil, false, fmt.Errorf("%s: %s holds no PEM certificate", setting, path)
	}
	return pool, true, nil
}

// clientTrusting returns a copy of hc (nil: a client with a 60 s timeout)
// whose TLS connections trust pool instead of the system CAs.
func clientTrusting(hc *http.Client, pool *x509.CertPool) (*http.Client, error) {
	out := &http.Client{Timeout: defaultTimeout}
	var rt http.RoundTripper = http.DefaultTransport
	if hc != nil {
		*out = *hc
		if hc.Transport != nil {
			rt = hc.Transport
		}
	}
	t, ok := rt.(*http.Transport)
	if !ok {
		return nil, errors.New("a CA bundle needs the HTTP client's transport to be an *http.Transport")
	}
	t = t.Clone()
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = new(tls.Config)
	}
	t.TLSClientConfig.RootCAs = pool
	out.Transport = t
	return out, nil
}
