package deploycheck

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/metrics"
)

// The services that watch Lethe.
var metricsServices = []string{"prometheus", "grafana"}

// mountedSource is the repository file or folder a service mounts at
// target, or where target lies inside a mounted folder; "" when none.
func mountedSource(s service, target string) string {
	for _, m := range bindMounts(s) {
		if m.target == target {
			return m.source
		}
		if rest, ok := strings.CutPrefix(target, strings.TrimSuffix(m.target, "/")+"/"); ok {
			return path.Join(m.source, rest)
		}
	}
	return ""
}

// readMounted reads, from the repository, the file a service sees at target.
func readMounted(t *testing.T, name string, s service, target string) []byte {
	t.Helper()
	src := mountedSource(s, target)
	if src == "" {
		t.Fatalf("service %s: nothing of the repository is mounted at %s", name, target)
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, src))
	if err != nil {
		t.Fatalf("service %s: %s (mounted at %s): %v", name, src, target, err)
	}
	return b
}

// flag is the value of --name=value in a service's command.
func flag(s service, name string) string {
	for _, a := range stringList(s.Command) {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// metricsPort is the port a Lethe service's metrics endpoint listens on:
// its environment's setting, else the default.
func metricsPort(t *testing.T, c composeFile, name, setting string) string {
	t.Helper()
	addr := environment(t, name, svc(t, c, name))[setting]
	if addr == "" {
		defaults, err := config.FromMap(nil)
		if err != nil {
			t.Fatal(err)
		}
		addr = map[string]string{"LETHE_METRICS_ADDR": defaults.MetricsAddr, "LETHE_API_METRICS_ADDR": defaults.APIMetricsAddr}[setting]
	}
	if addr == config.MetricsOff {
		t.Fatalf("service %s: %s is off, but Prometheus scrapes it", name, setting)
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("service %s: %s %q: %v", name, setting, addr, err)
	}
	return port
}

type prometheusConfig struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// Prometheus scrapes the worker and the API where their metrics listen,
// and its alert rules are files of the repository; the metrics ports are
// published on no host port.
func TestComposeMetricsPrometheusScrapesTheWorkerAndTheAPI(t *testing.T) {
	c, _ := loadCompose(t)
	for _, name := range metricsServices {
		svc(t, c, name)
	}
	prom := svc(t, c, "prometheus")
	configPath := flag(prom, "config.file")
	if configPath == "" {
		configPath = "/etc/prometheus/prometheus.yml" // the image's default
	}
	var pc prometheusConfig
	if err := yaml.Unmarshal(readMounted(t, "prometheus", prom, configPath), &pc); err != nil {
		t.Fatalf("the Prometheus configuration is not YAML: %v", err)
	}
	scraped := map[string]string{} // target → metrics path
	for _, sc := range pc.ScrapeConfigs {
		p := sc.MetricsPath
		if p == "" {
			p = "/metrics"
		}
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				scraped[target] = p
			}
		}
	}
	for name, setting := range map[string]string{"worker": "LETHE_METRICS_ADDR", "api": "LETHE_API_METRICS_ADDR"} {
		port := metricsPort(t, c, name, setting)
		target := net.JoinHostPort(name, port)
		if p, ok := scraped[target]; !ok {
			t.Errorf("Prometheus does not scrape %s (service %s, %s); it scrapes %v", target, name, setting, scraped)
		} else if p != metrics.Path {
			t.Errorf("Prometheus scrapes %s at %s, Lethe serves %s", target, p, metrics.Path)
		}
		for _, pm := range ports(t, name, svc(t, c, name)) {
			if pm.target == port && pm.published != "" {
				t.Errorf("service %s: its metrics port %s is published on the host (%s); keep it inside the compose network", name, port, pm.published)
			}
		}
	}
	if len(pc.RuleFiles) == 0 {
		t.Error("Prometheus loads no alert rules")
	}
	sdk := sdkMetricNames(t)
	for _, rf := range pc.RuleFiles {
		var rules struct {
			Groups []struct {
				Rules []struct {
					Alert string `yaml:"alert"`
					Expr  string `yaml:"expr"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(readMounted(t, "prometheus", prom, rf), &rules); err != nil {
			t.Fatalf("rule file %s is not YAML: %v", rf, err)
		}
		n := 0
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				n++
				checkSeries(t, sdk, "alert "+r.Alert, r.Expr)
			}
		}
		if n == 0 {
			t.Errorf("rule file %s holds no rule", rf)
		}
	}
	found := ports(t, "prometheus", prom)
	if !slices.Contains(found, portMapping{"9090", "9090"}) {
		t.Errorf("service prometheus: 9090 is not published (have %v)", found)
	}
}

// Grafana is provisioned from the repository: the data source is the
// compose stack's Prometheus, the dashboards folder holds Lethe's
// dashboard, and every query of it reads series Lethe or the Temporal SDK
// export, from that data source.
func TestComposeMetricsGrafanaShowsLethesDashboard(t *testing.T) {
	c, _ := loadCompose(t)
	g := svc(t, c, "grafana")
	const provisioning = "/etc/grafana/provisioning" // the image's default
	dsDir := mountedSource(g, provisioning+"/datasources")
	if dsDir == "" {
		t.Fatalf("service grafana: nothing mounted at %s", provisioning)
	}
	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	files, _ := filepath.Glob(filepath.Join(repoRoot, dsDir, "*.yml"))
	if len(files) == 0 {
		t.Fatalf("no data source in %s", dsDir)
	}
	uids := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, &ds); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, d := range ds.Datasources {
			uids[d.UID] = true
			if d.Type != "prometheus" {
				continue
			}
			if !strings.HasPrefix(d.URL, "http://prometheus:9090") {
				t.Errorf("%s: Prometheus data source at %s, want the prometheus service (http://prometheus:9090)", f, d.URL)
			}
		}
	}

	var providers struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	dashDir := mountedSource(g, provisioning+"/dashboards")
	files, _ = filepath.Glob(filepath.Join(repoRoot, dashDir, "*.yml"))
	if dashDir == "" || len(files) == 0 {
		t.Fatalf("service grafana: no dashboard provider under %s", provisioning)
	}
	dashboards := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, &providers); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, p := range providers.Providers {
			src := mountedSource(g, p.Options.Path)
			if src == "" {
				t.Errorf("%s: dashboards from %s, where nothing of the repository is mounted", f, p.Options.Path)
				continue
			}
			jsons, _ := filepath.Glob(filepath.Join(repoRoot, src, "*.json"))
			for _, j := range jsons {
				dashboards++
				checkDashboard(t, j, uids)
			}
		}
	}
	if dashboards == 0 {
		t.Fatal("Grafana is provisioned with no dashboard")
	}
	if home := environment(t, "grafana", g)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != "" {
		if src := mountedSource(g, home); src == "" {
			t.Errorf("service grafana: home dashboard %s is not mounted", home)
		} else if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
			t.Errorf("service grafana: home dashboard: %v", err)
		}
	}
}

func checkDashboard(t *testing.T, file string, uids map[string]bool) {
	t.Helper()
	sdk := sdkMetricNames(t)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			Title      string          `json:"title"`
			Type       string          `json:"type"`
			Datasource json.RawMessage `json:"datasource"`
			Targets    []struct {
				Expr       string `json:"expr"`
				Datasource struct {
					UID string `json:"uid"`
				} `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not JSON: %v", file, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("%s: no uid or title", file)
	}
	queries := 0
	seen := map[string]bool{}
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			queries++
			if !uids[q.Datasource.UID] {
				t.Errorf("%s: panel %q queries data source %q, which is not provisioned", file, p.Title, q.Datasource.UID)
			}
			for _, name := range checkSeries(t, sdk, file+": panel "+p.Title, q.Expr) {
				seen[name] = true
			}
		}
	}
	if queries == 0 {
		t.Errorf("%s: no queries", file)
	}
	// The dashboard shows every promise gauge.
	for _, want := range []string{metrics.RequestsOverdue, metrics.OperatorTasksOpen, metrics.ProcessorCalls, metrics.BackupWatchesPastPromise, metrics.HoldsActive} {
		if !seen[want] {
			t.Errorf("%s: no panel shows %s", file, want)
		}
	}
}

var seriesRe = regexp.MustCompile(`\b(lethe|temporal)_[a-z_]+\b`)

// checkSeries fails for each lethe_ or temporal_ name in expr that Lethe or
// the Temporal SDK does not export, and returns the lethe_ series named.
func checkSeries(t *testing.T, sdk map[string]bool, where, expr string) []string {
	t.Helper()
	lethe := map[string]metrics.Series{}
	for _, s := range metrics.Catalogue() {
		lethe[s.Name] = s
	}
	var out []string
	for _, name := range seriesRe.FindAllString(expr, -1) {
		if strings.HasPrefix(name, "lethe_") {
			base := name
			if s, ok := lethe[name]; !ok {
				base = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
				if s, ok := lethe[base]; !ok || s.Type != "histogram" {
					t.Errorf("%s: %s is not a series of Lethe's (metrics.Catalogue)", where, name)
					continue
				}
			} else if s.Type == "histogram" {
				t.Errorf("%s: %s is a histogram: query its _bucket, _count or _sum", where, name)
			}
			out = append(out, base)
			continue
		}
		base := name
		for _, suffix := range []string{"_bucket", "_count", "_sum", "_total", "_seconds"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if !sdk[base] {
			t.Errorf("%s: %s is not a series of the Temporal SDK (%d known)", where, name, len(sdk))
		}
	}
	return out
}

// sdkMetricNames are the metric names of the Temporal SDK in go.mod, from
// its source: the constants, and the request metrics' _failure and
// _latency forms.
func sdkMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "go.temporal.io/sdk").Output()
	if err != nil {
		t.Fatalf("go list -m go.temporal.io/sdk: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "internal", "common", "metrics", "constants.go"))
	if err != nil {
		t.Fatalf("the SDK's metric names: %v", err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`TemporalMetricsPrefix \+ "([a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		names["temporal_"+m[1]] = true
	}
	for _, r := range []string{"temporal_request", "temporal_long_request"} {
		names[r+"_failure"], names[r+"_latency"] = true, true
	}
	if len(names) < 20 {
		t.Fatalf("found %d SDK metric names: the SDK's source changed", len(names))
	}
	return names
}

// Every named volume a service uses is declared, and every declared one is
// used.
func TestComposeVolumesAreDeclaredAndUsed(t *testing.T) {
	c, _ := loadCompose(t)
	used := map[string]bool{}
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src := ""
			switch v := v.(type) {
			case map[string]any:
				if scalar(v["type"]) == "volume" {
					src = scalar(v["source"])
				}
			default:
				parts := strings.Split(scalar(v), ":")
				if len(parts) >= 2 && !strings.HasPrefix(parts[0], ".") && !strings.HasPrefix(parts[0], "/") {
					src = parts[0]
				}
			}
			if src == "" {
				continue
			}
			used[src] = true
			if _, ok := c.Volumes[src]; !ok {
				t.Errorf("service %s: uses volume %s, which the top-level volumes do not declare", name, src)
			}
		}
	}
	for v := range c.Volumes {
		if !used[v] {
			t.Errorf("volume %s is declared but no service uses it", v)
		}
	}
}
