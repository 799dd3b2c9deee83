package store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/testenv/gosource"
)

// owners is the one package that reads and writes each of Lethe's own
// tables. A package whose table carries its own invariants (the audit
// chain, the key store, …) owns it; the request records are the store's.
// Neither activities nor internal/api own any.
var owners = map[string]string{
	"requests":           "internal/store",
	"verification_codes": "internal/store",
	"erasure_steps":      "internal/store",
	"inactivity_notices": "internal/store",
	"drp_agents":         "internal/store",
	"drp_requests":       "internal/store",
	"drp_seen":           "internal/store",
	"mail_sent":          "internal/mail",
	"api_keys":           "internal/apikeys",
	"audit_log":          "internal/audit",
	"notice_targets":     "internal/bulk",
	"erasure_ledger":     "internal/ledger",
	"subject_keys":       "internal/person",
}

var (
	createTable = regexp.MustCompile(`(?i)CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?lethe\.([a-z_]+)`)
	tableRef    = regexp.MustCompile(`\blethe\.([a-z_]+)\b`)
)

// TestEveryTableHasAnOwner: each table the migrations create is in owners,
// and owners names no table that does not exist.
func TestEveryTableHasAnOwner(t *testing.T) {
	created := map[string]bool{}
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range createTable.FindAllStringSubmatch(string(b), -1) {
			created[m[1]] = true
		}
	}
	for table := range created {
		if owners[table] == "" {
			t.Errorf("lethe.%s has no owner: add it to owners in owners_test.go with the one package that reads and writes it", table)
		}
	}
	for table := range owners {
		if !created[table] {
			t.Errorf("owners names lethe.%s, which no migration creates", table)
		}
	}
}

// TestTablesHaveOneOwner reads every string literal of every non-test Go
// file of the module: a statement on one of Lethe's tables may only be
// written in the package that owns the table. Comments (such as the
// contract's) do not count; migrations are SQL files, not Go.
func TestTablesHaveOneOwner(t *testing.T) {
	statuses := []string{
		domain.StatusReceived, domain.StatusAwaitingVerification, domain.StatusVerified, domain.StatusAwaitingApproval,
		domain.StatusInProgress, domain.StatusCompleted, domain.StatusDenied, domain.StatusExpired,
		domain.StatusCancelled, domain.StatusFailed, domain.StatusAbandoned,
	}
	var problems []string
	gosource.StringLiterals(t, nil, func(l gosource.Literal) {
		storeTable := false
		for _, m := range tableRef.FindAllStringSubmatch(l.Value, -1) {
			owner, known := owners[m[1]]
			if !known {
				continue // not a table: a schema name such as lethe.breach_report.v1
			}
			storeTable = storeTable || owner == "internal/store"
			if owner != l.Dir {
				problems = append(problems, fmt.Sprintf("%s:%d: SQL on lethe.%s outside %s, its owner: call a method of %s",
					l.File, l.Line, m[1], owner, owner))
			}
		}
		if storeTable {
			for _, w := range statuses {
				if strings.Contains(l.Value, "'"+w+"'") {
					problems = append(problems, fmt.Sprintf("%s:%d: the status %q written in SQL: pass the domain constant as a parameter", l.File, l.Line, w))
				}
			}
		}
	})
	sort.Strings(problems)
	for _, p := range problems {
		t.Error(p)
	}
}
