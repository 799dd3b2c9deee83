package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A draft with tables for a person to decide (ignored without a reason) is
// written, saying so; check refuses it until they are decided.
func TestADraftWithUndecidedTablesIsWrittenAndSaysSo(t *testing.T) {
	draft := `version: 1
identity: {table: shop.customers, key: id, email: email}
tables:
  - {name: shop.addresses, key: customer_id, action: delete}   # review: …
ignore:
  - {table: shop.callbacks, reason: ""}   # review: phone look personal
`
	path := filepath.Join(t.TempDir(), "datamap.yaml")
	var out bytes.Buffer
	if err := datamapWriteDraft(&out, path, []byte(draft)); err != nil {
		t.Fatalf("write: %v", err)
	}
	written, err := os.ReadFile(path)
	if err != nil || string(written) != draft {
		t.Fatalf("written: %q, %v", written, err)
	}
	if !strings.Contains(out.String(), "1 tables under ignore have no reason yet") {
		t.Errorf("output: %s", out.String())
	}
}
