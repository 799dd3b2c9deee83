// Package temporalclient dials Temporal the same way for every Lethe process:
// the worker, the API and the dev stack, with TLS or an API key when configured
// and Lethe's data converter (which encrypts payloads).
package temporalclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
)

// Options are what a Temporal connection needs beyond the address.
type Options struct {
	Address   string
	Namespace string
	TLS       bool
	TLSCert   string // client certificate file (mTLS)
	TLSKey    string
	TLSCA     string // CA bundle file; empty: the system's
	APIKey    string

	DataConverter    converter.DataConverter
	FailureConverter converter.FailureConverter
	Logger           *slog.Logger
	// MetricsHandler receives the SDK's metrics (internal/metrics); nil: none.
	MetricsHandler client.MetricsHandler
}

// ClientOptions turns Options into the SDK's client options.
func ClientOptions(o Options) (client.Options, error) {
	co := client.Options{
		HostPort:         o.Address,
		Namespace:        o.Namespace,
		DataConverter:    o.DataConverter,
		FailureConverter: o.FailureConverter,
		MetricsHandler:   o.MetricsHandler,
	}
	if o.Logger != nil {
		co.Logger = sdklog.NewStructuredLogger(o.Logger)
	}
	if o.TLS || o.TLSCert != "" || o.APIKey != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.TLSCert != "" {
			cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
			if err != nil {
				return co, fmt.Errorf("LETHE_TEMPORAL_TLS_CERT/KEY: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		if o.TLSCA != "" {
			pem, err := os.ReadFile(o.TLSCA)
			if err != nil {
				return co, fmt.Errorf("LETHE_TEMPORAL_TLS_CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return co, errors.New("LETHE_TEMPORAL_TLS_CA: no certificate found")
			}
			tc.RootCAs = pool
		}
		co.ConnectionOptions.TLS = tc
	}
	if o.APIKey != "" {
		co.Credentials = client.NewAPIKeyStaticCredentials(o.APIKey)
	}
	return co, nil
}

// Dial connects to Temporal and checks that it answers.
func Dial(ctx context.Context, o Options) (client.Client, error) {
	co, err := ClientOptions(o)
	if err != nil {
		return nil, err
	}
	c, err := client.DialContext(ctx, co)
	if err != nil {
		return nil, fmt.Errorf("the Temporal server at %s (LETHE_TEMPORAL_ADDRESS) does not answer: %w", o.Address, err)
	}
	return c, nil
}

// FromExisting is a second client over existing's connection, with o's
// options (its own metrics handler, as the dev stack's API has beside its
// worker); the address and connection options of o are not used. Close it
// as well as existing.
func FromExisting(ctx context.Context, existing client.Client, o Options) (client.Client, error) {
	co, err := ClientOptions(o)
	if err != nil {
		return nil, err
	}
	c, err := client.NewClientFromExistingWithContext(ctx, existing, co)
	if err != nil {
		return nil, fmt.Errorf("a second Temporal client: %w", err)
	}
	return c, nil
}

// EnsureSearchAttributes registers every attribute in attrs that the
// namespace lacks (safe to call on every start).
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string, attrs map[string]enumspb.IndexedValueType) error {
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes: %w", err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range attrs {
		if _, ok := have.GetCustomAttributes()[name]; !ok {
			missing[name] = typ
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing})
	if err != nil {
		return fmt.Errorf("add search attributes: %w", err)
	}
	return nil
}
