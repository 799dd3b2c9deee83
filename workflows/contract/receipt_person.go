package contract

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe/internal/domain"
)

// ReceiptLabels name, in the person's words, what the tables and S3
// locations of a receipt hold: the data map's labels ("your reviews",
// "your uploaded files").
type ReceiptLabels struct {
	Tables    map[string]string // schema.table → label
	Locations map[string]string // bucket/prefix template, as in the receipt → label
}

// Labels a table or S3 location gets when the data map gives it none.
const (
	OtherRecordsLabel = "other records"
	FilesLabel        = "files"
)

// PersonLines says the receipt to the person, in plain words: what was
// deleted, anonymized and kept under a legal hold, named by the data map's
// labels (tables without one are "other records", several tables with one
// label are counted together), and what each processor, named by its name,
// was asked and answered. Unlike Lines, it never names a table, a bucket, a
// prefix or an id at a processor, and never repeats an operator's evidence
// or reason: those stay in the operator's receipt.
func (r Receipt) PersonLines(labels ReceiptLabels) []string {
	if r.NothingHeld {
		return []string{"We hold no data about you: there was nothing to erase."}
	}
	day := func(t time.Time) string { return t.UTC().Format(domain.DateLayout) }
	type item struct {
		label string
		files bool // counted in files, not records
		count int
		notes []string
	}
	// groups keeps items in their first appearance's order, merged by label.
	type group struct{ items []*item }
	add := func(g *group, label string, files bool, n int, note string) {
		for _, it := range g.items {
			if it.label == label && it.files == files {
				it.count += n
				if note != "" && !slices.Contains(it.notes, note) {
					it.notes = append(it.notes, note)
				}
				return
			}
		}
		it := &item{label: label, files: files, count: n}
		if note != "" {
			it.notes = []string{note}
		}
		g.items = append(g.items, it)
	}
	var deleted, anonymized group
	held := map[string]*group{} // by the hold's end, "" when it has none
	var holdEnds []time.Time
	var processors []string
	var backupsUntil time.Time
	for _, e := range r.Entries {
		switch e.System {
		case SystemPostgres:
			if e.Count <= 0 {
				continue
			}
			label := labelOf(labels.Tables, e.Name, OtherRecordsLabel)
			switch e.Action {
			case "retained":
				key := ""
				if !e.Until.IsZero() {
					key = day(e.Until)
				}
				if held[key] == nil {
					held[key] = &group{}
					holdEnds = append(holdEnds, e.Until)
				}
				add(held[key], label, false, e.Count, plainNote(e.Basis))
			case "anonymized":
				add(&anonymized, label, false, e.Count, "")
			default:
				add(&deleted, label, false, e.Count, "")
			}
		case SystemS3:
			if e.Count > 0 {
				add(&deleted, labelOf(labels.Locations, e.Name, FilesLabel), true, e.Count, "")
			}
		case SystemProcessor:
			processors = append(processors, processorPersonLine(e, day))
		case SystemBackups:
			if e.Until.After(backupsUntil) {
				backupsUntil = e.Until
			}
		}
	}
	list := func(g group, withCounts bool) string {
		parts := make([]string, 0, len(g.items))
		for _, it := range g.items {
			var in []string
			if withCounts {
				if it.files {
					in = append(in, count(it.count, "file"))
				} else {
					in = append(in, fmt.Sprint(it.count))
				}
			}
			in = append(in, it.notes...)
			if len(in) == 0 {
				parts = append(parts, it.label)
				continue
			}
			parts = append(parts, it.label+" ("+strings.Join(in, "; ")+")")
		}
		return strings.Join(parts, ", ")
	}
	var lines []string
	if len(deleted.items) > 0 {
		lines = append(lines, "Deleted: "+list(deleted, true)+".")
	}
	if len(anonymized.items) > 0 {
		lines = append(lines, "Anonymized, so that they no longer identify you: "+list(anonymized, true)+".")
	}
	slices.SortFunc(holdEnds, func(a, b time.Time) int { return a.Compare(b) })
	for _, until := range holdEnds {
		if until.IsZero() {
			lines = append(lines, "Kept under a legal hold: "+list(*held[""], false)+".")
			continue
		}
		lines = append(lines, "Kept under a legal hold until "+day(until)+": "+list(*held[day(until)], false)+".")
	}
	lines = append(lines, processors...)
	if !backupsUntil.IsZero() {
		lines = append(lines, "Our backups still hold a copy until "+day(backupsUntil)+
			", when they are replaced; if one is restored before then, your data is erased from it again.")
	}
	if len(lines) == 0 {
		lines = append(lines, "We found nothing of yours left to erase.")
	}
	return lines
}

// processorPersonLine says what a processor was asked and answered, by
// its name only: no ids, no operator's evidence or reason.
func processorPersonLine(e ReceiptEntry, day func(time.Time) string) string {
	asked := "Asked " + e.Name + " to erase your data: "
	var line string
	switch e.Action {
	case ProcessorSkipped:
		return "We did not ask " + e.Name + " to erase your data; our privacy team recorded why."
	case ProcessorDoneByHand:
		line = asked + "done by our privacy team"
	case ProcessorAlreadyGone:
		line = asked + "it held nothing about you (confirmed)"
	case ProcessorEarlierAttempt:
		return "We asked " + e.Name + " to erase your data in an earlier attempt of this request."
	default:
		line = asked + "confirmed"
	}
	if !e.Until.IsZero() {
		line += "; we check again after " + day(e.Until)
	}
	return line + "."
}

// labelOf is the label of name, or def when the map gives none.
func labelOf(labels map[string]string, name, def string) string {
	if l := strings.TrimSpace(labels[name]); l != "" {
		return l
	}
	return def
}

// plainNote is a hold's legal basis as the data map states it, kept out
// when it looks like anything but one line of text.
func plainNote(s string) string {
	s = strings.TrimSpace(s)
	if strings.ContainsAny(s, "{}\n\r") {
		return ""
	}
	return s
}
