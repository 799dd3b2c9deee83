package metrics

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// API records the API's HTTP traffic by route pattern, never by path: a
// path holds request ids and user ids, a pattern only their placeholders.
type API struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewAPI registers the API's HTTP series with reg.
func NewAPI(reg prometheus.Registerer) (*API, error) {
	a := &API{requests: counterVec(HTTPRequests), duration: histogramVec(HTTPRequestDuration)}
	for _, c := range []prometheus.Collector{a.requests, a.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: api: %w", err)
		}
	}
	return a, nil
}

// Unmatched is the route of a request no pattern matched.
const Unmatched = "unmatched"

// Middleware records every request next answers. next must route with an
// http.ServeMux that sees the same *http.Request (it sets its Pattern).
func (a *API) Middleware(next http.Handler) http.Handler {
	if a == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			route := r.Pattern
			if route == "" || len(route) > 100 {
				route = Unmatched
			}
			code := sw.status
			if code == 0 {
				code = http.StatusOK
			}
			a.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
			a.duration.WithLabelValues(route).Observe(time.Since(began).Seconds())
		}()
		next.ServeHTTP(sw, r)
	})
}

// statusWriter remembers the status an answer was given.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
