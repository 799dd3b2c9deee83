package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"

	"github.com/lethe-privacy/lethe/internal/config"
)

// Process is one process's metrics: its registry, the Temporal SDK's
// handler over it, and the endpoint that serves it. A nil *Process (metrics
// off) records and serves nothing; every method may be called on it.
type Process struct {
	Registry *prometheus.Registry
	temporal *Temporal
	endpoint *Endpoint
}

// Start serves a new registry at http://addr/metrics, with the Temporal
// SDK's series in it. setting names the variable addr comes from, for
// errors. addr config.MetricsOff ("off") gives nil: no metrics.
func Start(addr, setting string, log *slog.Logger) (*Process, error) {
	if addr == config.MetricsOff {
		return nil, nil
	}
	reg, err := NewRegistry()
	if err != nil {
		return nil, err
	}
	t, err := NewTemporal(reg, log)
	if err != nil {
		return nil, err
	}
	e, err := Listen(addr, setting, reg, log)
	if err != nil {
		return nil, errors.Join(err, t.Close(context.Background()))
	}
	return &Process{Registry: reg, temporal: t, endpoint: e}, nil
}

// TemporalHandler is the SDK's metrics handler, for the process's Temporal
// client (temporalclient.Options.MetricsHandler); nil when off.
func (p *Process) TemporalHandler() client.MetricsHandler {
	if p == nil {
		return nil
	}
	return p.temporal.Handler()
}

// Worker registers the worker's series; nil when off.
func (p *Process) Worker() (*Worker, error) {
	if p == nil {
		return nil, nil
	}
	return NewWorker(p.Registry)
}

// API registers the API's HTTP series; nil when off.
func (p *Process) API() (*API, error) {
	if p == nil {
		return nil, nil
	}
	return NewAPI(p.Registry)
}

// Register adds a collector (the Database gauges); nothing when off.
func (p *Process) Register(c prometheus.Collector) error {
	if p == nil {
		return nil
	}
	if err := p.Registry.Register(c); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// URL is where the series are served; "" when off.
func (p *Process) URL() string {
	if p == nil {
		return ""
	}
	return p.endpoint.URL
}

// Close stops serving and the SDK's metrics.
func (p *Process) Close() error {
	if p == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(p.endpoint.Close(), p.temporal.Close(ctx))
}
