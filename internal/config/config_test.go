package config_test

import (
	"bytes"
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

// A generated key goes first in a list that ParseKeys reads back as it was:
// the form the rotation commands print.
func TestGeneratedKeysFormatAndParseBack(t *testing.T) {
	a, err := config.GenerateKey("m")
	if err != nil {
		t.Fatal(err)
	}
	b, err := config.GenerateKey("m")
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == b.ID || !strings.HasPrefix(a.ID, "m") || len(a.Material) != 32 || bytes.Equal(a.Material, b.Material) {
		t.Fatalf("generated keys %q and %q: want distinct ids starting with m and distinct 32-byte material", a.ID, b.ID)
	}
	keys, err := config.ParseKeys(config.FormatKeys([]config.Key{a, b}))
	if err != nil || len(keys) != 2 || keys[0].ID != a.ID || !bytes.Equal(keys[0].Material, a.Material) || keys[1].ID != b.ID || !bytes.Equal(keys[1].Material, b.Material) {
		t.Fatalf("parsed back %d keys, %v", len(keys), err)
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
