package deploycheck

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// repoRoot is the repository root as seen from this package's directory,
// where `go test` runs.
const repoRoot = "../.."

var composePath = filepath.Join(repoRoot, "docker-compose.yml")

// The services of the production shape.
var requiredServices = []string{
	"postgresql", "temporal", "temporal-admin-tools", "temporal-ui",
	"minio", "minio-setup", "migrate", "worker", "api", "prometheus", "grafana",
}

// The services that run Lethe's own image.
var letheServices = []string{"migrate", "worker", "api"}

// The secrets every Lethe process gets, which must come from the host
// environment as ${NAME:?message}.
var letheSecrets = []string{"LETHE_PAYLOAD_KEYS", "LETHE_MASTER_KEYS", "LETHE_SUBJECT_HASH_KEY", "LETHE_SENDGRID_API_KEY"}

// composeFile is the part of the Compose format the checks read.
type composeFile struct {
	Services map[string]service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
}

type service struct {
	Image       string         `yaml:"image"`
	Build       any            `yaml:"build"`       // "context" or {context, dockerfile}
	Command     any            `yaml:"command"`     // string or list
	Entrypoint  any            `yaml:"entrypoint"`  // string or list
	Environment any            `yaml:"environment"` // map or list of NAME=value
	Ports       []any          `yaml:"ports"`       // short or long syntax
	Volumes     []any          `yaml:"volumes"`     // short or long syntax
	DependsOn   any            `yaml:"depends_on"`  // list or map
	Healthcheck map[string]any `yaml:"healthcheck"`
}

func loadCompose(t *testing.T) (composeFile, []byte) {
	t.Helper()
	raw, err := os.ReadFile(composePath)
	if err != nil {
		t.Fatalf("read the compose file: %v", err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("%s is not valid YAML: %v", composePath, err)
	}
	if len(c.Services) == 0 {
		t.Fatalf("%s has no services", composePath)
	}
	return c, raw
}

// svc returns a service or stops the test naming the missing one.
func svc(t *testing.T, c composeFile, name string) service {
	t.Helper()
	s, ok := c.Services[name]
	if !ok {
		t.Fatalf("docker-compose.yml: no service %q", name)
	}
	return s
}

// settings are the environment variables internal/config reads.
func settings(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	ct := reflect.TypeOf(config.Config{})
	for i := 0; i < ct.NumField(); i++ {
		if name, _, _ := strings.Cut(ct.Field(i).Tag.Get("env"), ","); name != "" {
			out[name] = true
		}
	}
	if len(out) == 0 {
		t.Fatal("config.Config has no env tags: the check below would accept nothing")
	}
	return out
}

func scalar(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

// environment returns a service's variables (after YAML anchors and merges).
func environment(t *testing.T, name string, s service) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch env := s.Environment.(type) {
	case nil:
	case map[string]any:
		for k, v := range env {
			out[k] = scalar(v)
		}
	case []any:
		for _, e := range env {
			k, v, _ := strings.Cut(scalar(e), "=")
			out[k] = v
		}
	default:
		t.Fatalf("service %s: environment is a %T, want a map or a list", name, s.Environment)
	}
	return out
}

func stringList(v any) []string {
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		return []string{v}
	case []any:
		out := make([]string, len(v))
		for i, e := range v {
			out[i] = scalar(e)
		}
		return out
	default:
		return []string{fmt.Sprint(v)}
	}
}

type portMapping struct{ published, target string }

func ports(t *testing.T, name string, s service) []portMapping {
	t.Helper()
	var out []portMapping
	for _, p := range s.Ports {
		switch p := p.(type) {
		case map[string]any:
			out = append(out, portMapping{published: scalar(p["published"]), target: scalar(p["target"])})
		default:
			spec, _, _ := strings.Cut(scalar(p), "/") // drop /tcp
			parts := strings.Split(spec, ":")
			switch len(parts) {
			case 1:
				out = append(out, portMapping{target: parts[0]}) // not published on a fixed port
			case 2:
				out = append(out, portMapping{published: parts[0], target: parts[1]})
			case 3:
				out = append(out, portMapping{published: parts[1], target: parts[2]})
			default:
				t.Errorf("service %s: cannot read port %q", name, spec)
			}
		}
	}
	return out
}

// dependencies maps each service a service depends on to the condition.
func dependencies(t *testing.T, name string, s service) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch d := s.DependsOn.(type) {
	case nil:
	case []any:
		for _, e := range d {
			out[scalar(e)] = "service_started"
		}
	case map[string]any:
		for dep, v := range d {
			cond := "service_started"
			if m, ok := v.(map[string]any); ok && m["condition"] != nil {
				cond = scalar(m["condition"])
			}
			out[dep] = cond
		}
	default:
		t.Fatalf("service %s: depends_on is a %T, want a list or a map", name, s.DependsOn)
	}
	return out
}

type bindMount struct{ source, target string }

// bindMounts returns a service's bind mounts (named volumes excluded).
// envFileMounted is the repository file that service name mounts where its
// environment variable key points; the test fails when key is unset (why
// says what that costs) or nothing is mounted there.
func envFileMounted(t *testing.T, c composeFile, name, key, why string) string {
	t.Helper()
	s := svc(t, c, name)
	target := environment(t, name, s)[key]
	if target == "" {
		t.Fatalf("service %s: %s is not set%s", name, key, why)
	}
	source := mountedSource(s, target)
	if source == "" {
		t.Fatalf("service %s: %s is %s, but nothing is mounted there", name, key, target)
	}
	return source
}

func bindMounts(s service) []bindMount {
	var out []bindMount
	for _, v := range s.Volumes {
		switch v := v.(type) {
		case map[string]any:
			if scalar(v["type"]) == "bind" {
				out = append(out, bindMount{source: scalar(v["source"]), target: scalar(v["target"])})
			}
		default:
			parts := strings.Split(scalar(v), ":")
			if len(parts) >= 2 && (strings.HasPrefix(parts[0], ".") || strings.HasPrefix(parts[0], "/")) {
				out = append(out, bindMount{source: parts[0], target: parts[1]})
			}
		}
	}
	return out
}

// shellText is what a service runs: entrypoint and command, joined.
func shellText(s service) string {
	return strings.Join(append(stringList(s.Entrypoint), stringList(s.Command)...), "\n")
}

func TestServicesExist(t *testing.T) {
	c, _ := loadCompose(t)
	for _, name := range requiredServices {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("docker-compose.yml: missing service %q (the stack needs %s)", name, strings.Join(requiredServices, ", "))
		}
	}
}

func TestLetheServicesBuildFromTheRepositoryDockerfile(t *testing.T) {
	c, _ := loadCompose(t)
	wantCommand := map[string][]string{
		"migrate": {"/lethe", "migrate"},
		"worker":  {"/worker"},
		"api":     {"/lethe", "serve"},
	}
	for _, name := range letheServices {
		s := svc(t, c, name)
		var context, dockerfile string
		switch b := s.Build.(type) {
		case nil:
			t.Errorf("service %s: no build section; it must be built from the repository's Dockerfile (build: {context: ., dockerfile: Dockerfile})", name)
			continue
		case string:
			context = b
		case map[string]any:
			context, dockerfile = scalar(b["context"]), scalar(b["dockerfile"])
		default:
			t.Errorf("service %s: build is a %T, want a string or a map", name, s.Build)
			continue
		}
		if dockerfile == "" {
			dockerfile = "Dockerfile"
		}
		ctxDir := filepath.Join(repoRoot, context)
		if filepath.Clean(ctxDir) != filepath.Clean(repoRoot) {
			t.Errorf("service %s: build context %q is not the repository root (the file sits there: use \".\")", name, context)
		}
		df := filepath.Join(ctxDir, dockerfile)
		if filepath.Clean(df) != filepath.Join(repoRoot, "Dockerfile") {
			t.Errorf("service %s: builds from %s, want the repository's Dockerfile", name, dockerfile)
		}
		if _, err := os.Stat(df); err != nil {
			t.Errorf("service %s: its Dockerfile is missing: %v", name, err)
		}
		if got := stringList(s.Command); !slices.Equal(got, wantCommand[name]) {
			t.Errorf("service %s: command %q, want %q", name, got, wantCommand[name])
		}
	}
}

var letheVarRe = regexp.MustCompile(`\bLETHE_[A-Z0-9_]+`)

func TestEveryLetheVariableIsASetting(t *testing.T) {
	c, raw := loadCompose(t)
	known := settings(t)
	// Anywhere in the file: variable names, ${...} references, comments.
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for line := 1; sc.Scan(); line++ {
		for _, name := range letheVarRe.FindAllString(sc.Text(), -1) {
			if !known[name] {
				t.Errorf("docker-compose.yml:%d: %s is not a setting of internal/config (no `env:\"%s\"` tag on config.Config); a typo would be ignored silently", line, name, name)
			}
		}
	}
	// And the parsed environments, in case a name is assembled some other way.
	for name, s := range c.Services {
		for k := range environment(t, name, s) {
			if strings.HasPrefix(k, "LETHE_") && !known[k] {
				t.Errorf("service %s: environment variable %s is not a setting of internal/config", name, k)
			}
		}
	}
}

// secretNameRe matches variable names that hold credentials.
var secretNameRe = regexp.MustCompile(`(PASSWORD|PWD|SECRET|_KEY|_KEYS)$`)

func TestSecretsComeFromTheHostEnvironment(t *testing.T) {
	c, _ := loadCompose(t)
	for _, name := range letheServices {
		env := environment(t, name, svc(t, c, name))
		for _, secret := range letheSecrets {
			v, ok := env[secret]
			if !ok {
				t.Errorf("service %s: %s is not set", name, secret)
				continue
			}
			want := regexp.MustCompile(`^\$\{` + secret + `:\?[^}]+\}$`)
			if !want.MatchString(v) {
				t.Errorf("service %s: %s is %q; want it from the host, failing when unset: ${%s:?message}", name, secret, v, secret)
			}
		}
	}
	// No credential anywhere is a literal or has a default.
	required := regexp.MustCompile(`^\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]+\}$`)
	for name, s := range c.Services {
		for k, v := range environment(t, name, s) {
			if secretNameRe.MatchString(k) && !required.MatchString(v) {
				t.Errorf("service %s: %s looks like a credential but is %q; take it from the host as ${VAR:?message}", name, k, v)
			}
		}
	}
}

func TestPortsArePublished(t *testing.T) {
	c, _ := loadCompose(t)
	for _, want := range []struct {
		service           string
		published, target string
	}{
		{"api", "8080", "8080"},
		{"temporal-ui", "8233", "8080"},
		{"temporal", "7233", "7233"},
	} {
		got := ports(t, want.service, svc(t, c, want.service))
		if !slices.Contains(got, portMapping{want.published, want.target}) {
			t.Errorf("service %s: port %s is not published (want %q in ports, have %v)", want.service, want.published, want.published+":"+want.target, got)
		}
	}
}

func TestDependenciesExist(t *testing.T) {
	c, _ := loadCompose(t)
	conditions := []string{"service_started", "service_healthy", "service_completed_successfully"}
	for name, s := range c.Services {
		for dep, cond := range dependencies(t, name, s) {
			d, ok := c.Services[dep]
			if !ok {
				t.Errorf("service %s: depends on %q, which is not a service", name, dep)
				continue
			}
			if !slices.Contains(conditions, cond) {
				t.Errorf("service %s: depends on %s with condition %q; want one of %v", name, dep, cond, conditions)
			}
			if cond == "service_healthy" && d.Healthcheck == nil {
				t.Errorf("service %s: waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
			}
		}
	}
	worker := dependencies(t, "worker", svc(t, c, "worker"))
	for dep, cond := range map[string]string{
		"temporal":    "",
		"migrate":     "service_completed_successfully",
		"minio-setup": "service_completed_successfully",
	} {
		got, ok := worker[dep]
		if !ok {
			t.Errorf("service worker: does not depend on %s", dep)
		} else if cond != "" && got != cond {
			t.Errorf("service worker: depends on %s with condition %s, want %s", dep, got, cond)
		}
	}
}

func TestMountedFilesExist(t *testing.T) {
	c, _ := loadCompose(t)
	for name, s := range c.Services {
		for _, m := range bindMounts(s) {
			if filepath.IsAbs(m.source) {
				t.Errorf("service %s: mounts %s, a path outside the repository", name, m.source)
				continue
			}
			if _, err := os.Stat(filepath.Join(repoRoot, m.source)); err != nil {
				t.Errorf("service %s: mounts %s, which is not in the repository: %v", name, m.source, err)
			}
		}
	}
}

// The Temporal server reads the repository's dynamic configuration, which
// gives every task queue one partition: the server splits a queue's rate
// limit across its partitions, and each processor's queue must be
// dispatched at its whole rate.
func TestTemporalHasOnePartitionPerTaskQueue(t *testing.T) {
	c, _ := loadCompose(t)
	source := envFileMounted(t, c, "temporal", "DYNAMIC_CONFIG_FILE_PATH", "")
	b, err := os.ReadFile(filepath.Join(repoRoot, source))
	if err != nil {
		t.Fatal(err)
	}
	var dc map[string][]struct {
		Value       any            `yaml:"value"`
		Constraints map[string]any `yaml:"constraints"`
	}
	if err := yaml.Unmarshal(b, &dc); err != nil {
		t.Fatalf("%s: %v", source, err)
	}
	for _, key := range []string{"matching.numTaskqueueReadPartitions", "matching.numTaskqueueWritePartitions"} {
		if v := dc[key]; len(v) != 1 || fmt.Sprint(v[0].Value) != "1" || len(v[0].Constraints) != 0 {
			t.Errorf("%s: %s is %+v, want one value of 1 for every task queue", source, key, v)
		}
	}
}

// mcBucketRe matches `mc mb [flags] alias/bucket`.
var mcBucketRe = regexp.MustCompile(`mc\s+mb\s+(?:--?[\w-]+\s+)*[\w.-]+/([a-z0-9.-]+)`)

func TestDataMapIsMountedAndItsBucketsCreated(t *testing.T) {
	c, _ := loadCompose(t)
	source := envFileMounted(t, c, "worker", "LETHE_DATA_MAP", "; the worker refuses to start without a data map")
	m, err := datamap.Load(filepath.Join(repoRoot, source))
	if err != nil {
		t.Fatalf("service worker: the mounted data map %s does not load: %v", source, err)
	}

	created := map[string]bool{}
	for _, match := range mcBucketRe.FindAllStringSubmatch(shellText(svc(t, c, "minio-setup")), -1) {
		created[match[1]] = true
	}
	need := map[string]string{}
	for _, loc := range m.S3 {
		need[loc.Bucket] = "the data map " + source
	}
	defaults := config.Config{}
	if cfg, err := config.FromMap(nil); err == nil {
		defaults = cfg
	}
	exports := environment(t, "worker", svc(t, c, "worker"))["LETHE_S3_EXPORT_BUCKET"]
	if exports == "" {
		exports = defaults.S3ExportBucket
	}
	need[exports] = "LETHE_S3_EXPORT_BUCKET"
	for b, why := range need {
		if b != "" && !created[b] {
			t.Errorf("bucket %q (from %s) is not created by minio-setup (`mc mb`); it creates %v", b, why, slices.Sorted(maps.Keys(created)))
		}
	}
}

func TestSearchAttributesAreRegistered(t *testing.T) {
	c, _ := loadCompose(t)
	script := shellText(svc(t, c, "temporal-admin-tools"))
	if !strings.Contains(script, "search-attribute create") {
		t.Fatal("service temporal-admin-tools: does not run `temporal operator search-attribute create`")
	}
	got := map[string]string{}
	for _, m := range regexp.MustCompile(`--name\s+(\S+)\s+--type\s+(\S+)`).FindAllStringSubmatch(script, -1) {
		got[m[1]] = strings.ToLower(m[2])
	}
	for name, typ := range contract.SearchAttributes() {
		want := strings.ToLower(strings.TrimPrefix(typ.String(), "INDEXED_VALUE_TYPE_"))
		if got[name] == "" {
			t.Errorf("service temporal-admin-tools: does not register search attribute %s (%s); contract.SearchAttributes lists it", name, want)
		} else if got[name] != want {
			t.Errorf("service temporal-admin-tools: registers %s as %s, contract.SearchAttributes says %s", name, got[name], want)
		}
	}
	ns := environment(t, "worker", svc(t, c, "worker"))["LETHE_TEMPORAL_NAMESPACE"]
	if ns == "" {
		ns = "default"
	}
	for _, m := range regexp.MustCompile(`search-attribute create\s+--namespace[ =](\S+)`).FindAllStringSubmatch(script, -1) {
		if m[1] != ns {
			t.Errorf("service temporal-admin-tools: registers search attributes on namespace %s, the worker uses %s (LETHE_TEMPORAL_NAMESPACE)", m[1], ns)
		}
	}
}

// TestLetheEnvironmentIsAValidConfiguration reads each Lethe service's
// environment the way the process would, with the host secrets filled in.
func TestLetheEnvironmentIsAValidConfiguration(t *testing.T) {
	c, _ := loadCompose(t)
	host := map[string]string{
		"POSTGRES_PASSWORD":      "postgrespassword",
		"MINIO_ROOT_PASSWORD":    "miniopassword",
		"LETHE_PAYLOAD_KEYS":     "k1:" + randomKey(t),
		"LETHE_MASTER_KEYS":      "m1:" + randomKey(t),
		"LETHE_SUBJECT_HASH_KEY": randomKey(t),
		"LETHE_SENDGRID_API_KEY": "SG.placeholder",
	}
	for _, name := range letheServices {
		vars := map[string]string{}
		for k, v := range environment(t, name, svc(t, c, name)) {
			got, err := interpolate(v, host)
			if err != nil {
				t.Errorf("service %s: %s: %v", name, k, err)
				continue
			}
			vars[k] = got
		}
		if _, err := config.FromMap(vars); err != nil {
			t.Errorf("service %s: its environment is not a valid configuration: %v", name, err)
		}
	}
}

// interpolate does what Compose does to a value: $$, $VAR, ${VAR},
// ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}.
func interpolate(s string, vars map[string]string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch next := s[i+1]; {
		case next == '$':
			b.WriteByte('$')
			i++
		case next == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("unclosed ${ in %q", s)
			}
			expr := s[i+2 : i+end]
			i += end
			name, op, arg := expr, "", ""
			if j := strings.IndexAny(expr, ":-?"); j >= 0 {
				name, op = expr[:j], expr[j:]
				if strings.HasPrefix(op, ":") && len(op) > 1 {
					op, arg = op[:2], op[2:]
				} else {
					op, arg = op[:1], op[1:]
				}
			}
			v, set := vars[name]
			switch op {
			case "":
			case ":-", "-":
				if !set || (op == ":-" && v == "") {
					v = arg
				}
			case ":?", "?":
				if !set || (op == ":?" && v == "") {
					return "", fmt.Errorf("${%s} is required: %s", name, arg)
				}
			default:
				return "", fmt.Errorf("cannot read ${%s}", expr)
			}
			b.WriteString(v)
		default:
			j := i + 1
			for j < len(s) && (s[j] == '_' || 'A' <= s[j] && s[j] <= 'Z' || 'a' <= s[j] && s[j] <= 'z' || j > i+1 && '0' <= s[j] && s[j] <= '9') {
				j++
			}
			if j == i+1 {
				b.WriteByte('$')
				continue
			}
			b.WriteString(vars[s[i+1:j]])
			i = j - 1
		}
	}
	return b.String(), nil
}

func TestInterpolate(t *testing.T) {
	vars := map[string]string{"A": "a", "E": ""}
	for in, want := range map[string]string{
		"x$$y":         "x$y",
		"$A/${A}":      "a/a",
		"${B:-d}":      "d",
		"${E:-d}":      "d",
		"${E-d}":       "",
		"${A:?m}":      "a",
		"p://u:${A}@h": "p://u:a@h",
	} {
		if got, err := interpolate(in, vars); err != nil || got != want {
			t.Errorf("interpolate(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := interpolate("${B:?set B}", vars); err == nil || !strings.Contains(err.Error(), "set B") {
		t.Errorf("interpolate(${B:?set B}) error = %v, want the message", err)
	}
}

// dockerInstructions returns the Dockerfile's instructions with continuation
// lines joined, comments dropped.
func dockerInstructions(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatalf("read the Dockerfile: %v", err)
	}
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cur.WriteString(trimmed)
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	return out
}

func TestDockerfile(t *testing.T) {
	inst := dockerInstructions(t)
	type build struct {
		args []string
		pkg  string
	}
	var builds []build
	var finalCopies []string // destinations copied into the last stage
	var exposed, cmd string
	for _, in := range inst {
		keyword, rest, _ := strings.Cut(in, " ")
		switch strings.ToUpper(keyword) {
		case "FROM":
			finalCopies, exposed, cmd = nil, "", ""
		case "COPY":
			f := strings.Fields(rest)
			finalCopies = append(finalCopies, f[len(f)-1])
		case "EXPOSE":
			exposed += " " + rest
		case "CMD":
			cmd = rest
		case "RUN":
			for _, part := range regexp.MustCompile(`&&|;`).Split(rest, -1) {
				f := strings.Fields(part)
				for i := 0; i+1 < len(f); i++ {
					if f[i] == "go" && f[i+1] == "build" {
						b := build{args: f[i+2:]}
						for _, a := range b.args {
							if strings.HasPrefix(a, "./") {
								b.pkg = a
							}
						}
						builds = append(builds, b)
					}
				}
			}
		}
	}
	hasTag := func(args []string, tag string) bool {
		for i, a := range args {
			var list string
			switch {
			case (a == "-tags" || a == "--tags") && i+1 < len(args):
				list = args[i+1]
			case strings.HasPrefix(a, "-tags=") || strings.HasPrefix(a, "--tags="):
				_, list, _ = strings.Cut(a, "=")
			}
			if slices.Contains(strings.Split(strings.Trim(list, `"'`), ","), tag) {
				return true
			}
		}
		return false
	}
	found := map[string]bool{}
	for _, b := range builds {
		found[b.pkg] = true
		if !slices.Contains(b.args, "-trimpath") {
			t.Errorf("Dockerfile: `go build %s` lacks -trimpath", strings.Join(b.args, " "))
		}
		if b.pkg == "./starter" && !hasTag(b.args, "nodev") {
			t.Errorf("Dockerfile: builds ./starter without -tags nodev; the production binary would embed the Temporal dev server")
		}
	}
	for _, pkg := range []string{"./starter", "./worker"} {
		if !found[pkg] {
			t.Errorf("Dockerfile: no `go build ... %s`", pkg)
		}
	}
	if !slices.Contains(strings.Fields(exposed), "8080") {
		t.Errorf("Dockerfile: the final stage does not EXPOSE 8080 (the API)")
	}
	if !strings.Contains(cmd, "serve") {
		t.Errorf("Dockerfile: the final stage's CMD is %q; want the API (lethe serve)", cmd)
	}
	// The binaries the compose services run are in the image.
	c, _ := loadCompose(t)
	for _, name := range letheServices {
		command := stringList(svc(t, c, name).Command)
		if len(command) > 0 && !slices.Contains(finalCopies, command[0]) {
			t.Errorf("service %s runs %s, which the Dockerfile's final stage does not copy in (it copies %v)", name, command[0], finalCopies)
		}
	}
}

func randomKey(t *testing.T) string {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(k)
}
