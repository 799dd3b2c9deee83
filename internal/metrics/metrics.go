// Package metrics is what Lethe tells Prometheus about itself: the Temporal
// SDK's own series (temporal_*, through the SDK's OpenTelemetry contrib
// handler and the OpenTelemetry Prometheus exporter) and Lethe's (lethe_*,
// listed in Catalogue and README.md "Metrics").
//
// Each process has its own *prometheus.Registry (NewRegistry), served on its
// own listener (Listen), apart from the public API port:
//
//   - the worker records what its activities did: processor calls with
//     their outcome and latency, mail sent by template, notices sent
//     (Worker, through the observers of internal/processors and
//     internal/mail);
//   - the API records its HTTP traffic by route (API) and, at every scrape,
//     reads from Lethe's database where the requests, operator tasks,
//     backups and legal holds stand (Database), through typed methods of
//     the packages that own those tables.
//
// No label ever holds personal data: label values are request types and
// statuses, processor, template and table names from the configuration and
// the data map, route patterns and outcomes from fixed vocabularies. A value
// that does not look like one becomes "other" (label).
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where an endpoint serves its series.
const Path = "/metrics"

// NewRegistry is a process's registry, with the Go runtime's and the
// process's own collectors (go_*, process_*) already in it.
func NewRegistry() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return reg, nil
}

// Handler serves reg's series. A collector that fails (the database does
// not answer) costs its own series, not the scrape.
func Handler(reg *prometheus.Registry, log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(logger(log).Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             30 * time.Second,
	})
}

// Endpoint serves one registry at Path on a listener of its own.
type Endpoint struct {
	// URL is the endpoint's address, e.g. http://127.0.0.1:9464/metrics.
	URL  string
	srv  *http.Server
	done chan struct{}
}

// Listen starts serving reg at http://addr/metrics. addr is a setting
// (LETHE_METRICS_ADDR, LETHE_API_METRICS_ADDR): its error names the
// variable given as setting.
func Listen(addr, setting string, reg *prometheus.Registry, log *slog.Logger) (*Endpoint, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: metrics endpoint: %w", setting, addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+Path, Handler(reg, log))
	e := &Endpoint{
		URL:  "http://" + hostPort(ln.Addr()) + Path,
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute},
		done: make(chan struct{}),
	}
	go func() {
		defer close(e.done)
		if err := e.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger(log).Error("metrics endpoint stopped", "addr", addr, "error", err)
		}
	}()
	logger(log).Info("metrics endpoint listening", "url", e.URL)
	return e, nil
}

// Close stops serving, letting a scrape under way finish for a few seconds.
func (e *Endpoint) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := e.srv.Shutdown(ctx)
	<-e.done
	if err != nil {
		return fmt.Errorf("metrics endpoint: %w", err)
	}
	return nil
}

// hostPort is a listener's address as a client dials it: a wildcard host
// becomes 127.0.0.1.
func hostPort(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// Other is the label value of anything that does not look like a name
// from Lethe's configuration or vocabulary.
const Other = "other"

// label keeps a label value to what names are made of (letters, digits,
// '_', '-', '.', at most 64 characters): anything else, such as an email
// address that found its way in by mistake, becomes Other.
func label(v string) string {
	if v == "" || len(v) > 64 || strings.ContainsFunc(v, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.')
	}) {
		return Other
	}
	return v
}

// oneOf is v when the vocabulary has it, else Other.
func oneOf(v string, vocabulary []string) string {
	for _, w := range vocabulary {
		if v == w {
			return v
		}
	}
	return Other
}

// buckets are the latency buckets of Lethe's histograms and of the SDK's
// timers, in seconds: from a fast local call to a slow processor.
func buckets() []float64 {
	return []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
}
