package wiring_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
	"github.com/lethe-privacy/lethe/internal/testenv/shopapp"
	"github.com/lethe-privacy/lethe/internal/wiring"
)

// The worker refuses a map that leaves out a table with a foreign key to
// the person, naming it and the way out; LETHE_DATA_MAP_UNMAPPED=warn
// starts it with a warning naming the table instead.
func TestDataMapRefusesATableLeftOutUnlessToldToWarn(t *testing.T) {
	ctx := context.Background()
	app, _ := pgtest.NewPool(t)
	if _, err := shopapp.Seed(ctx, app, nil, 1); err != nil {
		t.Fatal(err)
	}
	const line = "  - {name: shop.login_events, key: customer_id, action: delete, label: your sign-in history}\n"
	text := string(shopapp.DataMapYAML())
	if !strings.Contains(text, line) {
		t.Fatal("the shop's map has no login events line to leave out")
	}
	path := filepath.Join(t.TempDir(), "datamap.yaml")
	if err := os.WriteFile(path, []byte(strings.Replace(text, line, "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.FromMap(map[string]string{"LETHE_DATA_MAP": path})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataMapUnmapped != "refuse" {
		t.Fatalf("LETHE_DATA_MAP_UNMAPPED defaults to %q, want refuse", cfg.DataMapUnmapped)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	_, err = wiring.DataMap(ctx, cfg, app, log)
	if err == nil || !strings.Contains(err.Error(), "table shop.login_events is neither in tables nor in ignore") ||
		!strings.Contains(err.Error(), "add it to ignore with a reason") || !strings.Contains(err.Error(), "LETHE_DATA_MAP_UNMAPPED=warn") {
		t.Fatalf("want the worker refused, naming shop.login_events: %v", err)
	}

	cfg, err = config.FromMap(map[string]string{"LETHE_DATA_MAP": path, "LETHE_DATA_MAP_UNMAPPED": "warn"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := wiring.DataMap(ctx, cfg, app, log)
	if err != nil || m == nil {
		t.Fatalf("warn: %v", err)
	}
	if !strings.Contains(logs.String(), `"level":"WARN"`) || !strings.Contains(logs.String(), `"table":"shop.login_events"`) {
		t.Errorf("no warning naming the table: %s", logs.String())
	}

	// The shop's whole map starts without a word.
	if err := os.WriteFile(path, shopapp.DataMapYAML(), 0o600); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	cfg.DataMapUnmapped = "refuse"
	if _, err := wiring.DataMap(ctx, cfg, app, log); err != nil || logs.Len() != 0 {
		t.Errorf("the whole map: %v %s", err, logs.String())
	}

	if _, err := config.FromMap(map[string]string{"LETHE_DATA_MAP_UNMAPPED": "ignore"}); err == nil || !strings.Contains(err.Error(), "LETHE_DATA_MAP_UNMAPPED: want refuse or warn") {
		t.Errorf("a bad value: %v", err)
	}
}
