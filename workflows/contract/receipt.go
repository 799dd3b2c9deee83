package contract

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe/internal/domain"
)

// Receipt is the proof an erasure leaves (P4–P7): per system, what was
// deleted, anonymized or retained (with its legal basis and end date), with
// counts, and what each processor confirmed. It goes into the audit trail
// and, through the request's completion mail, to the person. It names
// tables, locations and processors, never the person.
type Receipt struct {
	RequestID   string         `json:"request_id"`
	CompletedAt time.Time      `json:"completed_at"`
	MapDigest   string         `json:"datamap_digest,omitempty"`
	Entries     []ReceiptEntry `json:"entries"`
	// BackupsGoneBy is when the last backup older than the erasure rotates
	// out; the backups watch confirms it by listing.
	BackupsGoneBy time.Time `json:"backups_gone_by,omitzero"`
	// NothingHeld: the application did not know the person at all.
	NothingHeld bool `json:"nothing_held,omitempty"`
}

// ReceiptEntry is what happened in one table, location, processor or backup.
type ReceiptEntry struct {
	System string `json:"system"` // postgres, s3, processor, backups
	Name   string `json:"name"`
	// Action: deleted, anonymized, retained (postgres); deleted (s3);
	// confirmed, already_gone, done_by_hand, skipped (processor);
	// rotating out (backups).
	Action       string    `json:"action"`
	Count        int       `json:"count"`
	Basis        string    `json:"basis,omitempty"` // legal basis of a hold, reason of a skip
	Until        time.Time `json:"until,omitzero"`  // end of a hold, of a backup rotation
	Confirmation string    `json:"confirmation,omitempty"`
}

func (r *Receipt) Add(e ReceiptEntry) {
	r.Entries = append(r.Entries, e)
	// Systems finish in any order; the receipt reads the same every time.
	slices.SortStableFunc(r.Entries, func(a, b ReceiptEntry) int {
		if c := strings.Compare(systemOrder(a.System), systemOrder(b.System)); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
}

func systemOrder(s string) string {
	return map[string]string{SystemPostgres: "1", SystemS3: "2", SystemProcessor: "3", SystemBackups: "4"}[s] + s
}

// Lines says the receipt in sentences, one per entry.
func (r Receipt) Lines() []string {
	if r.NothingHeld {
		return []string{"We hold no data about you: there was nothing to erase."}
	}
	var lines []string
	for _, e := range r.Entries {
		lines = append(lines, e.Line())
	}
	return lines
}

// Line says one entry in a sentence.
func (e ReceiptEntry) Line() string {
	day := func(t time.Time) string { return t.Format(domain.DateLayout) }
	switch {
	case e.System == SystemPostgres && e.Action == "retained":
		return fmt.Sprintf("Kept %s in %s until %s: %s", count(e.Count, "row"), e.Name, day(e.Until), e.Basis)
	case e.System == SystemPostgres && e.Action == "anonymized":
		return fmt.Sprintf("Anonymized %s in %s", count(e.Count, "row"), e.Name)
	case e.System == SystemPostgres:
		return fmt.Sprintf("Deleted %s from %s", count(e.Count, "row"), e.Name)
	case e.System == SystemS3:
		line := fmt.Sprintf("Deleted %s from %s", count(e.Count, "file"), e.Name)
		if e.Confirmation != "" {
			line += " (" + e.Confirmation + ")"
		}
		return line
	case e.System == SystemProcessor && e.Action == ProcessorSkipped:
		return fmt.Sprintf("%s: not erased by Lethe: %s", e.Name, e.Basis)
	case e.System == SystemProcessor && e.Action == ProcessorDoneByHand:
		return fmt.Sprintf("%s: erased by our privacy team (%s)", e.Name, e.Confirmation)
	case e.System == SystemProcessor && e.Action == ProcessorEarlierAttempt:
		return fmt.Sprintf("%s: handled in an earlier attempt of this request (its workflow %s holds the outcome)", e.Name, e.Confirmation)
	case e.System == SystemProcessor:
		line := fmt.Sprintf("%s: erasure confirmed", e.Name)
		if e.Action == ProcessorAlreadyGone {
			line = fmt.Sprintf("%s: held nothing (confirmed)", e.Name)
		}
		if e.Confirmation != "" {
			line += " (" + e.Confirmation + ")"
		}
		if !e.Until.IsZero() {
			line += fmt.Sprintf("; checked again after %s", day(e.Until))
		}
		return line
	case e.System == SystemBackups:
		return fmt.Sprintf("Backups in %s rotate out by %s; a restore cannot bring your data back", e.Name, day(e.Until))
	}
	return fmt.Sprintf("%s %s: %s %d", e.System, e.Name, e.Action, e.Count)
}

// count says n things: "1 row", "6 rows".
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// AuditDetail is the receipt as an audit entry's detail: one numbered line
// per entry, with the counts and the data map's version.
func (r Receipt) AuditDetail() map[string]string {
	d := map[string]string{"request_id": r.RequestID, "datamap_digest": r.MapDigest, "entries": fmt.Sprint(len(r.Entries))}
	for i, l := range r.Lines() {
		d[fmt.Sprintf("line_%02d", i+1)] = l
	}
	return d
}
