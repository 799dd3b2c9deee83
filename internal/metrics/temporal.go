package metrics

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
)

// Temporal carries the Temporal SDK's own metrics into a registry: the
// SDK's contrib handler records them with OpenTelemetry, whose Prometheus
// exporter is a collector of the registry. Give Handler to the client
// (temporalclient.Options.MetricsHandler): the client's calls and the
// workers built on it report temporal_request_total,
// temporal_workflow_completed_total, temporal_activity_execution_latency_seconds
// and the rest of the SDK's series.
type Temporal struct {
	handler  client.MetricsHandler
	provider *sdkmetric.MeterProvider
}

// NewTemporal registers the SDK's series with reg.
func NewTemporal(reg prometheus.Registerer, log *slog.Logger) (*Temporal, error) {
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		return nil, fmt.Errorf("metrics: temporal SDK exporter: %w", err)
	}
	// The SDK's timers are in seconds: OpenTelemetry's default buckets
	// (0 to 10000) are made for milliseconds.
	latency := sdkmetric.NewView(sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram},
		sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: buckets()}})
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter), sdkmetric.WithView(latency))
	log = logger(log)
	return &Temporal{
		provider: provider,
		handler: temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
			Meter:                provider.Meter("temporal-sdk-go"),
			UseMonotonicCounters: true, // Prometheus counters (_total), not gauges
			OnError:              func(err error) { log.Warn("temporal SDK metric not recorded", "error", err) },
		}),
	}, nil
}

// Handler is the SDK's metrics handler.
func (t *Temporal) Handler() client.MetricsHandler { return t.handler }

// Close stops the SDK's metrics.
func (t *Temporal) Close(ctx context.Context) error {
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("metrics: temporal SDK: %w", err)
	}
	return nil
}
