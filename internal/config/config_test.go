package config_test

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/config"
)

func TestDefaultsAreUsable(t *testing.T) {
	c, err := config.FromMap(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if c.APIListen != ":8080" || c.TemporalAddress != "127.0.0.1:7233" || c.AppDatabase() != c.DatabaseURL {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

func TestBadValueNamesTheVariable(t *testing.T) {
	for name, value := range map[string]string{
		"LETHE_TEMPORAL_ADDRESS":   "no-port",
		"LETHE_DATABASE_URL":       "mysql://x",
		"LETHE_API_LISTEN":         "8080",
		"LETHE_PAYLOAD_KEYS":       "k1:c2hvcnQ=",
		"LETHE_API_MAX_BODY_BYTES": "lots",
		"LETHE_TEMPORAL_TLS":       "maybe",
		"LETHE_S3_EXPORT_BUCKET":   "X",
		"LETHE_SUBJECT_HASH_KEY":   "!!",
		"LETHE_SENDGRID_BASE_URL":  "nope",
	} {
		_, err := config.FromMap(map[string]string{name: value})
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%q: want an error naming the variable, got %v", name, value, err)
		}
	}
}

func TestParseKeysKeepsOrderAndHidesMaterial(t *testing.T) {
	k := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	keys, err := config.ParseKeys("new:" + k + ",old:" + k)
	if err != nil || len(keys) != 2 || keys[0].ID != "new" {
		t.Fatalf("got %v %v", keys, err)
	}
	if _, err := config.ParseKeys("a:" + k[:10]); err == nil || strings.Contains(err.Error(), k[:10]) {
		t.Fatalf("want an error without the key material, got %v", err)
	}
}

// Every setting is documented in README.md's configuration table.
func TestREADMEDocumentsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	typ := reflect.TypeOf(config.Config{})
	for i := 0; i < typ.NumField(); i++ {
		name := typ.Field(i).Tag.Get("env")
		if name != "" && !strings.Contains(string(readme), "`"+name+"`") {
			t.Errorf("README.md does not document %s", name)
		}
	}
}

// .ci/run runs exactly the README's test command.
func TestCIRunsTheREADMETestCommand(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	const cmd = "go test ./..."
	if !strings.Contains(string(readme), "```sh\n"+cmd+"\n```") {
		t.Fatalf("README.md's set-up section should show %q", cmd)
	}
	if !strings.Contains(string(ci), "\n"+cmd+"\n") {
		t.Fatalf(".ci/run should run %q", cmd)
	}
}
