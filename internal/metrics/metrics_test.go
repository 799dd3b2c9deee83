package metrics_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	"github.com/lethe-privacy/lethe/internal/metrics"
)

// scrape gathers reg into "name{label="value",…}" → value; a histogram
// gives its _count and _sum, a bucket "name_bucket{…,le="…"}".
func scrape(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := make([]string, 0, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := func(name string, extra ...string) string {
				all := append(slices.Clone(labels), extra...)
				sort.Strings(all)
				return name + "{" + strings.Join(all, ",") + "}"
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key(f.GetName())] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key(f.GetName())] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				out[key(f.GetName()+"_count")] = float64(h.GetSampleCount())
				out[key(f.GetName()+"_sum")] = h.GetSampleSum()
				for _, b := range h.GetBucket() {
					out[key(f.GetName()+"_bucket", fmt.Sprintf("le=%q", fmt.Sprint(b.GetUpperBound())))] = float64(b.GetCumulativeCount())
				}
			}
		}
	}
	return out
}

// expect fails for each series whose value is not the one wanted.
func expect(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("no series %s", k)
			continue
		}
		if g != v {
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
}

func TestCatalogueNamesAreLethesAndDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	valid := regexp.MustCompile(`^lethe_[a-z_]+$`)
	for _, s := range metrics.Catalogue() {
		if !valid.MatchString(s.Name) || seen[s.Name] {
			t.Errorf("series %q: not a lethe_ name, or listed twice", s.Name)
		}
		seen[s.Name] = true
		if s.Help == "" || (s.Process != "worker" && s.Process != "api") {
			t.Errorf("series %s: help %q, process %q", s.Name, s.Help, s.Process)
		}
		if s.Type == "counter" && !strings.HasSuffix(s.Name, "_total") {
			t.Errorf("counter %s does not end in _total", s.Name)
		}
		if !strings.Contains(string(readme), "`"+s.Name+"`") {
			t.Errorf("README.md does not document %s", s.Name)
		}
	}
}

// The worker's series count what happened, by names from the
// configuration only: a value that is not a name (an email address passed
// by mistake) never becomes a label.
func TestWorkerCountsCallsMailAndNoticesWithoutPersonalLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	w, err := metrics.NewWorker(reg)
	if err != nil {
		t.Fatal(err)
	}
	w.ProcessorCall("stripe", "erase", "done", 120*time.Millisecond)
	w.ProcessorCall("stripe", "erase", "error_retryable", 3*time.Second)
	w.ProcessorCall("paypal", "erase", "needs_operator", time.Millisecond)
	w.ProcessorCall("ada@example.com", "erase", "done", time.Millisecond)
	w.MailSent("receipt")
	w.MailSent("receipt")
	w.MailSent("grace@example.com")
	w.NoticesSent("breach_notice", 998, 2)
	var none *metrics.Worker
	none.ProcessorCall("stripe", "erase", "done", time.Second) // a nil worker records nothing, and does not panic
	none.MailSent("receipt")
	none.NoticesSent("breach_notice", 1, 1)

	got := scrape(t, reg)
	expect(t, got, map[string]float64{
		`lethe_processor_calls_total{action="erase",outcome="done",processor="stripe"}`:             1,
		`lethe_processor_calls_total{action="erase",outcome="error_retryable",processor="stripe"}`:  1,
		`lethe_processor_calls_total{action="erase",outcome="needs_operator",processor="paypal"}`:   1,
		`lethe_processor_calls_total{action="erase",outcome="done",processor="other"}`:              1,
		`lethe_processor_call_duration_seconds_count{action="erase",processor="stripe"}`:            2,
		`lethe_processor_call_duration_seconds_bucket{action="erase",le="0.25",processor="stripe"}`: 1,
		`lethe_processor_call_duration_seconds_sum{action="erase",processor="stripe"}`:              3.12,
		`lethe_mail_sent_total{template="receipt"}`:                                                 2,
		`lethe_mail_sent_total{template="other"}`:                                                   1,
		`lethe_notices_total{outcome="sent",template="breach_notice"}`:                              998,
		`lethe_notices_total{outcome="no_email",template="breach_notice"}`:                          2,
	})
	for k := range got {
		if strings.Contains(k, "@") || strings.Contains(k, "example.com") {
			t.Errorf("a personal value became a label: %s", k)
		}
	}
	if _, err := metrics.NewWorker(reg); err == nil {
		t.Error("registering the worker's series twice: no error")
	}
}

// The API's series name routes by their pattern, never by the path, which
// holds request and user ids.
func TestAPIRecordsRoutesByPattern(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := metrics.NewAPI(reg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/requests/{id}", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "{}") })
	mux.HandleFunc("POST /v1/accounts/{user_id}/deactivate", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) })
	srv := httptest.NewServer(a.Middleware(mux))
	defer srv.Close()
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/requests/req_abc"}, {"GET", "/v1/requests/req_def"},
		{"POST", "/v1/accounts/u-1001/deactivate"}, {"GET", "/nowhere/ada@example.com"},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	got := scrape(t, reg)
	expect(t, got, map[string]float64{
		`lethe_http_requests_total{code="200",route="GET /v1/requests/{id}"}`:                  2,
		`lethe_http_requests_total{code="202",route="POST /v1/accounts/{user_id}/deactivate"}`: 1,
		`lethe_http_requests_total{code="404",route="unmatched"}`:                              1,
		`lethe_http_request_duration_seconds_count{route="GET /v1/requests/{id}"}`:             2,
	})
	for k := range got {
		if strings.Contains(k, "req_abc") || strings.Contains(k, "u-1001") || strings.Contains(k, "@") {
			t.Errorf("a path became a label: %s", k)
		}
	}
}

// The Temporal SDK's metrics, through its OpenTelemetry contrib handler,
// come out as Prometheus counters, gauges and histograms in seconds.
func TestTemporalSDKSeriesReachTheRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	tm, err := metrics.NewTemporal(reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Close(t.Context())
	h := tm.Handler().WithTags(map[string]string{"namespace": "default", "operation": "StartWorkflowExecution"})
	h.Counter("temporal_request").Inc(1)
	h.Counter("temporal_request").Inc(2)
	h.Timer("temporal_request_latency").Record(30 * time.Millisecond)
	h.Gauge("temporal_num_pollers").Update(4)
	got := scrape(t, reg)
	expect(t, got, map[string]float64{
		`temporal_request_total{namespace="default",operation="StartWorkflowExecution"}`:                             3,
		`temporal_request_latency_seconds_count{namespace="default",operation="StartWorkflowExecution"}`:             1,
		`temporal_request_latency_seconds_bucket{le="0.05",namespace="default",operation="StartWorkflowExecution"}`:  1,
		`temporal_request_latency_seconds_bucket{le="0.025",namespace="default",operation="StartWorkflowExecution"}`: 0,
		`temporal_num_pollers{namespace="default",operation="StartWorkflowExecution"}`:                               4,
	})
	for k := range got {
		if strings.HasPrefix(k, "otel_scope_info") || strings.HasPrefix(k, "target_info") || strings.Contains(k, "otel_scope_name") {
			t.Errorf("OpenTelemetry bookkeeping in the scrape: %s", k)
		}
	}
}

// A process's metrics are served at /metrics on a listener of their own;
// "off" serves nothing and every method of the nil process is safe.
func TestProcessServesItsRegistry(t *testing.T) {
	p, err := metrics.Start("127.0.0.1:0", "LETHE_METRICS_ADDR", nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := p.Worker()
	if err != nil {
		t.Fatal(err)
	}
	w.MailSent("receipt")
	p.TemporalHandler().Counter("temporal_request").Inc(1)
	resp, err := http.Get(p.URL())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`lethe_mail_sent_total{template="receipt"} 1`, "temporal_request_total", "go_goroutines", "process_"} {
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, lacks %q", p.URL(), resp.StatusCode, want)
		}
	}
	if resp, err := http.Get(strings.TrimSuffix(p.URL(), "/metrics") + "/"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /: %v %v, want 404", resp, err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(p.URL()); err == nil {
		t.Error("still serving after Close")
	}
	if _, err := metrics.Start("256.0.0.1:1", "LETHE_METRICS_ADDR", nil); err == nil || !strings.Contains(err.Error(), "LETHE_METRICS_ADDR") {
		t.Errorf("a bad address: %v, want an error naming the variable", err)
	}

	off, err := metrics.Start("off", "LETHE_METRICS_ADDR", nil)
	if err != nil || off != nil {
		t.Fatalf("off: %v %v", off, err)
	}
	if w, err := off.Worker(); w != nil || err != nil {
		t.Errorf("off.Worker: %v %v", w, err)
	}
	if a, err := off.API(); a != nil || err != nil {
		t.Errorf("off.API: %v %v", a, err)
	}
	if off.TemporalHandler() != nil || off.URL() != "" || off.Register(collectors.NewGoCollector()) != nil || off.Close() != nil {
		t.Error("the nil process does something")
	}
	var a *metrics.API
	if h := a.Middleware(http.NotFoundHandler()); h == nil {
		t.Error("a nil API's middleware is nil")
	}
}
