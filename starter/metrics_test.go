//go:build !nodev

package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/testenv"
)

// series is one scrape: "name{label="value",…}" (labels sorted) → value;
// a histogram gives name_count.
type series map[string]float64

// scrapeMetrics reads a Prometheus endpoint.
func scrapeMetrics(tb testing.TB, url string) series {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("scrape %s: %d %s", url, resp.StatusCode, b)
	}
	var parser expfmt.TextParser
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		tb.Fatalf("scrape %s: not the Prometheus text format: %v", url, err)
	}
	out := series{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(labels)
			key := "{" + strings.Join(labels, ",") + "}"
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[name+key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[name+key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[name+"_count"+key] = float64(m.GetHistogram().GetSampleCount())
			default:
				out[name+key] = m.GetUntyped().GetValue()
			}
		}
	}
	return out
}

// sum adds the series whose key starts with prefix and holds every one of
// the label pairs given.
func (s series) sum(prefix string, labels ...string) (total float64, found int) {
	for k, v := range s {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(k, l)
		}
		if all {
			total += v
			found++
		}
	}
	return total, found
}

// The dev stack serves the worker's and the API's metrics apart, as
// production does. After two erasures across the processor sandboxes and
// an access request waiting for its code, the worker's endpoint has the
// SDK's worker series and counts every processor call with its outcome and
// every mail sent; the API's has the SDK's client series, its HTTP traffic
// by route, and the database gauges: requests by type and status, PayPal's
// operator tasks while they are open, the legal holds.
func TestMetricsOfTheDevStackWorkerAndAPI(t *testing.T) {
	f := newDevFixture(t)
	f.opt.Sandboxes = true
	st := f.start(t)
	defer st.Stop()
	workerURL, apiURL := st.workerMetrics.URL(), st.apiMetrics.URL()
	if workerURL == "" || apiURL == "" || workerURL == apiURL || strings.Contains(apiURL, portOf(mustAddr(t, st.apiURL))) {
		t.Fatalf("metrics endpoints: worker %q, API %q (API on %s)", workerURL, apiURL, st.apiURL)
	}
	var welcome strings.Builder
	st.printWelcome(&welcome)
	if !strings.Contains(welcome.String(), workerURL) || !strings.Contains(welcome.String(), apiURL) {
		t.Errorf("the welcome does not say where the metrics are:\n%s", welcome.String())
	}

	people := demo.Accounts(2)
	var ids []string
	for _, p := range people {
		ids = append(ids, postRequest(t, st, fmt.Sprintf(`{"type":"erasure","subject":{"user_id":%q,"email":%q},"jurisdiction":"gdpr","verified":true}`, p.ID, p.Email)))
	}
	// A person asking for themselves waits for their code.
	resp, err := http.Post(st.apiURL+"/v1/requests", "application/json",
		strings.NewReader(`{"type":"access","subject":{"email":"someone.else@example.com"},"jurisdiction":"ccpa"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("access request: %d", resp.StatusCode)
	}

	// PayPal has no API: both erasures wait on an operator task, which the
	// API's endpoint counts while it is open.
	testenv.Eventually(t, 60*time.Second, "two PayPal tasks open", func() bool {
		return scrapeMetrics(t, apiURL)[`lethe_operator_tasks_open{processor="paypal"}`] == 2
	})
	open := scrapeMetrics(t, apiURL)
	if v := open[`lethe_operator_task_oldest_age_seconds{processor="paypal"}`]; v <= 0 || v > 120 {
		t.Errorf("oldest PayPal task: %v s", v)
	}
	for _, id := range ids {
		if code, body := authPost(t, st, "/v1/requests/"+id+"/processors/paypal/task",
			`{"action":"done","evidence":"deleted in the PayPal dashboard, ticket 4711"}`); code != http.StatusOK {
			t.Fatalf("resolve the PayPal task: %d %s", code, body)
		}
	}
	for _, id := range ids {
		waitCompleted(t, st, id)
	}

	// A policy-change notice to the demo's active accounts, in batches.
	if code, body := authPost(t, st, "/v1/policy-notices",
		`{"title":"New policy","summary":"Shorter retention.","url":"https://example.com/p","audience":{"selector":"active_accounts"}}`); code != http.StatusAccepted {
		t.Fatalf("policy notice: %d %s", code, body)
	}

	// The worker's endpoint: every file in the outbox is a mail sent to
	// one person (lethe_mail_sent_total) or a notice (lethe_notices_total).
	var w series
	outbox := func() int {
		files, _ := filepath.Glob(filepath.Join(st.cfg.OutboxDir, "*.txt"))
		return len(files)
	}
	testenv.Eventually(t, 30*time.Second, "every mail and notice in the outbox counted", func() bool {
		w = scrapeMetrics(t, workerURL)
		sent, _ := w.sum("lethe_mail_sent_total{")
		notices := w[`lethe_notices_total{outcome="sent",template="policy_change"}`]
		return sent > 0 && notices > 0 && int(sent+notices) == outbox()
	})
	for key, want := range map[string]float64{
		`lethe_processor_calls_total{action="erase",outcome="done",processor="stripe"}`:           2,
		`lethe_processor_calls_total{action="erase",outcome="done",processor="mailchimp"}`:        2,
		`lethe_processor_calls_total{action="erase",outcome="needs_operator",processor="paypal"}`: 2,
		`lethe_processor_call_duration_seconds_count{action="erase",processor="stripe"}`:          2,
	} {
		if w[key] != want {
			t.Errorf("worker: %s = %v, want %v", key, w[key], want)
		}
	}
	if n, _ := w.sum("lethe_processor_calls_total{", `processor="crm"`); n < 2 {
		t.Errorf("worker: %v calls of the CRM webhook, want at least 2", n)
	}
	if n, _ := w.sum(`lethe_mail_sent_total{template="operator_reminder"}`); n != 2 {
		t.Errorf("worker: %v operator task mails, want 2 (one per PayPal task)", n)
	}
	// The SDK's own series, from the worker's client and workers.
	for _, prefix := range []string{"temporal_workflow_completed_total{", "temporal_activity_execution_latency_seconds_count{", "temporal_request_total{", "temporal_workflow_task_execution_latency_seconds_count{"} {
		if n, found := w.sum(prefix); found == 0 || n == 0 {
			t.Errorf("worker: no %s… series (or all 0)", prefix)
		}
	}
	if n, _ := w.sum("temporal_workflow_completed_total{", `workflow_type="PrivacyRequest"`); n != 2 {
		t.Errorf("worker: %v PrivacyRequest workflows completed, want 2 (the erasures)", n)
	}

	// The API's endpoint.
	a := scrapeMetrics(t, apiURL)
	for key, want := range map[string]float64{
		`lethe_requests{status="completed",type="erasure"}`:                                           2,
		`lethe_requests{status="awaiting_verification",type="access"}`:                                1,
		`lethe_requests{status="in_progress",type="erasure"}`:                                         0,
		`lethe_requests_overdue{type="erasure"}`:                                                      0,
		`lethe_operator_tasks_open{processor="paypal"}`:                                               0,
		`lethe_http_requests_total{code="202",route="POST /v1/requests"}`:                             3,
		`lethe_http_requests_total{code="200",route="POST /v1/requests/{id}/processors/{name}/task"}`: 2,
		`lethe_holds_active{table="demo.purchases"}`:                                                  2,
		`lethe_metrics_database_up{}`:                                                                 1,
	} {
		if got, ok := a[key]; !ok || got != want {
			t.Errorf("API: %s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	if _, ok := a[`lethe_backup_watches_open{}`]; !ok {
		t.Error("API: no backup gauges, though the demo's data map declares backups")
	}
	if n, found := a.sum("temporal_request_total{", `operation="StartWorkflowExecution"`); found == 0 || n < 3 {
		t.Errorf("API: %v StartWorkflowExecution requests of its Temporal client, want at least 3", n)
	}
	// Each endpoint has its own process's series only.
	for k := range a {
		if strings.HasPrefix(k, "lethe_processor_calls_total") || strings.HasPrefix(k, "temporal_workflow_completed_total") {
			t.Errorf("API endpoint serves the worker's %s", k)
		}
	}
	for k := range w {
		if strings.HasPrefix(k, "lethe_requests") || strings.HasPrefix(k, "lethe_http_requests_total") {
			t.Errorf("worker endpoint serves the API's %s", k)
		}
	}
	// No personal value of the run in any label.
	for _, s := range []series{w, a} {
		for k := range s {
			for _, p := range people {
				if strings.Contains(k, p.Email) || strings.Contains(k, p.ID) {
					t.Errorf("a personal value in a label: %s", k)
				}
			}
			for _, id := range ids {
				if strings.Contains(k, id) {
					t.Errorf("a request id in a label: %s", k)
				}
			}
			if strings.Contains(k, "@") {
				t.Errorf("an address in a label: %s", k)
			}
		}
	}
}

func mustAddr(tb testing.TB, url string) addr {
	tb.Helper()
	_, hostPort, ok := strings.Cut(url, "://")
	if !ok {
		tb.Fatalf("not a URL: %s", url)
	}
	return addr(hostPort)
}

// addr is a host:port as a net.Addr.
type addr string

func (a addr) Network() string { return "tcp" }
func (a addr) String() string  { return string(a) }
