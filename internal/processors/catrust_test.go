package processors_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
)

// tlsOpenDSR starts an OpenDSR fake on HTTPS whose CA (generated for the
// test, so in no system pool; no SSL_CERT_FILE involved) is written to a
// PEM file.
func tlsOpenDSR(t *testing.T) (*processorfake.OpenDSR, string) {
	t.Helper()
	f := processorfake.NewOpenDSR(t, processorfake.OpenDSROptions{TLS: true})
	if !strings.HasPrefix(f.URL(), "https://") {
		t.Fatalf("fake URL %s", f.URL())
	}
	path := filepath.Join(t.TempDir(), "opendsr-ca.pem")
	if err := os.WriteFile(path, f.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return f, path
}

func TestOpenDSRCAFileForTheAPI(t *testing.T) {
	ctx := context.Background()
	f, caFile := tlsOpenDSR(t)
	cred := f.Username() + ":" + f.Password()
	build := func(opts map[string]string, env map[string]string) processors.Eraser {
		t.Helper()
		env["LETHE_DSR_KEY"] = cred
		reg, err := processors.NewRegistry([]processors.Config{{Name: "dsr", Kind: "opendsr", BaseURL: f.URL(),
			CredentialEnv: "LETHE_DSR_KEY", Options: opts}}, processors.BuildOptions{LookupEnv: envMap(env)})
		if err != nil {
			t.Fatal(err)
		}
		e, _ := reg.Eraser("dsr")
		return e
	}

	// Without the bundle the processor's certificate is not trusted.
	out, err := build(nil, map[string]string{}).Erase(ctx, subject("req-ca"))
	mustError(t, out, err, processors.KindRetryable, 0)
	if !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("error %v", err)
	}
	if len(f.Requests()) != 0 {
		t.Fatal("a request reached the processor")
	}

	// With option ca_file, or the variable, it is.
	out, err = build(map[string]string{"ca_file": caFile}, map[string]string{}).Erase(ctx, subject("req-ca"))
	mustOutcome(t, out, err, processors.StatusPending)
	out, err = build(nil, map[string]string{processors.OpenDSRCAFileEnv: caFile}).Erase(ctx, subject("req-ca-2"))
	mustOutcome(t, out, err, processors.StatusPending)
	if n := len(f.Requests()); n != 2 {
		t.Fatalf("%d requests filed, want 2", n)
	}
}

func TestOpenDSRCAFileForCallbacks(t *testing.T) {
	ctx := context.Background()
	f, caFile := tlsOpenDSR(t)
	cfg := func(opts map[string]string) []processors.Config {
		opts["processor_domain"] = f.Domain()
		return []processors.Config{{Name: "dsr", Kind: "opendsr", BaseURL: f.URL(), Options: opts}}
	}
	id := processors.OpenDSRRequestID("req-1", "erasure")
	body, h := signedCallback(f, id, "completed")

	// No bundle: neither the discovery document (HTTPS) nor the signing
	// certificate is trusted.
	cbs, err := processors.NewOpenDSRCallbacks(cfg(map[string]string{}), processors.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cbs.Verify(ctx, "dsr", h, body)
	if verifyStatus(t, err) != http.StatusUnauthorized {
		t.Fatalf("untrusted: %v", err)
	}

	for name, build := range map[string]func() (*processors.OpenDSRCallbacks, error){
		"option": func() (*processors.OpenDSRCallbacks, error) {
			return processors.NewOpenDSRCallbacks(cfg(map[string]string{"ca_file": caFile}), processors.BuildOptions{})
		},
		"variable": func() (*processors.OpenDSRCallbacks, error) {
			return processors.NewOpenDSRCallbacks(cfg(map[string]string{}), processors.BuildOptions{
				LookupEnv: envMap(map[string]string{processors.OpenDSRCAFileEnv: caFile})})
		},
	} {
		cbs, err := build()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cb, err := cbs.Verify(ctx, "dsr", h, body)
		if err != nil || cb.SubjectRequestID != id {
			t.Fatalf("%s: callback %+v, %v", name, cb, err)
		}
		// A body the processor did not sign is still refused.
		if _, err := cbs.Verify(ctx, "dsr", h, append(body[:len(body)-1:len(body)-1], ' ', '}')); err == nil {
			t.Fatalf("%s: tampered body verified", name)
		}
	}
	if n := len(f.CallsTo(http.MethodGet, "/v2/discovery")); n < 2 {
		t.Fatalf("discovery fetched %d times over HTTPS", n)
	}
}

func TestOpenDSRCAFileTrustsTheSigningCertificate(t *testing.T) {
	// A processor on plain HTTP (a test setup) whose signing certificate
	// comes from a private CA: the bundle is what makes it trusted.
	ctx := context.Background()
	f := processorfake.NewOpenDSR(t, processorfake.OpenDSROptions{})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, f.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	body, h := signedCallback(f, processors.OpenDSRRequestID("req-2", "erasure"), "completed")
	for _, tc := range []struct {
		opts map[string]string
		ok   bool
	}{{map[string]string{}, false}, {map[string]string{"ca_file": caFile}, true}} {
		tc.opts["processor_domain"] = f.Domain()
		cbs, err := processors.NewOpenDSRCallbacks([]processors.Config{{Name: "dsr", Kind: "opendsr", BaseURL: f.URL(),
			Options: tc.opts}}, processors.BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cbs.Verify(ctx, "dsr", h, body)
		if tc.ok && err != nil {
			t.Fatalf("with the bundle: %v", err)
		}
		if !tc.ok && (verifyStatus(t, err) != http.StatusUnauthorized || !strings.Contains(err.Error(), "not trusted")) {
			t.Fatalf("without the bundle: %v", err)
		}
	}
}

func TestOpenDSRCAFileErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgs := []processors.Config{
		{Name: "a", Kind: "opendsr", BaseURL: "https://dsr.example/v2", Options: map[string]string{"ca_file": filepath.Join(dir, "missing.pem")}},
		{Name: "b", Kind: "opendsr", BaseURL: "https://dsr.example/v2", Options: map[string]string{"ca_file": notPEM}},
	}
	_, err := processors.NewRegistry(cfgs, processors.BuildOptions{})
	if err == nil || !strings.Contains(err.Error(), `processor "a": option ca_file: open `) ||
		!strings.Contains(err.Error(), `processor "b": option ca_file: `+notPEM+` holds no PEM certificate`) {
		t.Fatalf("registry: %v", err)
	}
	_, err = processors.NewOpenDSRCallbacks(cfgs[1:], processors.BuildOptions{})
	if err == nil || !strings.Contains(err.Error(), `processor "b": option ca_file:`) {
		t.Fatalf("callbacks: %v", err)
	}
	_, err = processors.NewRegistry([]processors.Config{{Name: "c", Kind: "opendsr", BaseURL: "https://dsr.example/v2"}},
		processors.BuildOptions{LookupEnv: envMap(map[string]string{processors.OpenDSRCAFileEnv: notPEM})})
	if err == nil || !strings.Contains(err.Error(), `processor "c": LETHE_OPENDSR_CA_FILE: `+notPEM+` holds no PEM certificate`) {
		t.Fatalf("variable: %v", err)
	}
}
