package datamap

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Uncovered is a table of the application database that the map neither
// lists in tables nor in ignore although a foreign key of it points at a
// table holding the person's rows: an erasure would leave its rows behind
// (or fail on the foreign key).
type Uncovered struct {
	Table      string   // schema.table
	Columns    []string // its foreign-key column(s)
	References string   // the table they reference
	RefColumns []string // the columns they reference
	// Through is set when References is itself uncovered: Table reaches
	// the person through it.
	Through bool
	// kind of References: "identity", "accounts" or "" (a table of the map)
	kind string
	// by is, for a foreign key into the identity table's email (or other)
	// column, that column: the table is keyed with by.
	by string
}

// String says which table is uncovered, why, and how to cover it.
func (u Uncovered) String() string {
	cols := strings.Join(u.Columns, ", ")
	var target, suggest string
	switch {
	case u.Through:
		target = fmt.Sprintf("%s, itself neither mapped nor ignored", u.References)
		suggest = fmt.Sprintf("map both (via: {column: %s, parent: %s, parent_key: %s}) or add them to ignore with a reason", u.Columns[0], u.References, u.RefColumns[0])
	case u.kind != "":
		target = fmt.Sprintf("%s (the %s table)", u.References, u.kind)
		if u.by != "" {
			suggest = fmt.Sprintf("map it (key: %s, by: %s) or add it to ignore with a reason", u.Columns[0], u.by)
		} else {
			suggest = fmt.Sprintf("map it (key: %s) or add it to ignore with a reason", u.Columns[0])
		}
	default:
		target = fmt.Sprintf("%s, a table of the map", u.References)
		suggest = fmt.Sprintf("map it (via: {column: %s, parent: %s, parent_key: %s}) or add it to ignore with a reason", u.Columns[0], u.References, u.RefColumns[0])
	}
	if len(u.Columns) > 1 {
		suggest = "map it by one of those columns (key or via) or add it to ignore with a reason"
	}
	s := fmt.Sprintf("table %s is neither in tables nor in ignore, but its %s %s %s %s: %s",
		u.Table, plural(len(u.Columns), "column", "columns"), cols, plural(len(u.Columns), "references", "reference"), target, suggest)
	if !expressible(u.Table) {
		s += " (its name is not in lower case, which a data map cannot name: rename the table)"
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// CheckCoverage lists the tables of the live database that have a foreign
// key into a table holding the person's rows (a table of the map, the
// identity or the accounts table) and are neither in tables nor in ignore,
// and, through them, the tables that reach the person by way of those. An
// erasure would miss their rows, so the worker refuses to start while one
// exists (LETHE_DATA_MAP_UNMAPPED=warn makes it a warning). Tables are
// listed direct ones first, each by name.
func CheckCoverage(ctx context.Context, db Querier, m *Map) ([]Uncovered, error) {
	cat, err := readCatalog(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("data map coverage: %w", err)
	}
	return m.coverage(cat), nil
}

// holders are the tables holding the person's rows, by name, with what
// they are to the map: "identity", "accounts" (even when also in tables:
// a table referencing them holds the user id), "" for a table of tables.
func (m *Map) holders() map[string]string {
	out := map[string]string{}
	for _, t := range m.Tables {
		out[t.Name] = ""
	}
	if a := m.Accounts; a != nil {
		out[a.Table] = "accounts"
	}
	if id := m.Identity; id != nil {
		out[id.Table] = "identity"
	}
	return out
}

func (m *Map) ignored(table string) bool { return m.IgnoresTable(table) }

func (m *Map) coverage(cat *catalog) []Uncovered {
	holders := m.holders()
	var queue []string
	for _, name := range cat.names {
		if _, ok := holders[name]; ok {
			queue = append(queue, name)
		}
	}
	found := map[string]bool{}
	var direct, through []Uncovered
	for len(queue) > 0 {
		target := queue[0]
		queue = queue[1:]
		kind, held := holders[target]
		for _, fk := range cat.referencing(target) {
			if _, mapped := holders[fk.table]; mapped || m.ignored(fk.table) || found[fk.table] {
				continue
			}
			found[fk.table] = true
			u := Uncovered{Table: fk.table, Columns: fk.columns, References: target, RefColumns: fk.refColumns, Through: !held}
			if held && kind != "" {
				u.kind = kind
				if kind == "identity" && len(fk.refColumns) == 1 && fk.refColumns[0] != m.Identity.Key {
					u.by = fk.refColumns[0] // a column of the identity table other than its key, such as its email
				}
			}
			if u.Through {
				through = append(through, u)
			} else {
				direct = append(direct, u)
			}
			queue = append(queue, fk.table)
		}
	}
	byName := func(a, b Uncovered) int { return strings.Compare(a.Table, b.Table) }
	slices.SortFunc(direct, byName)
	slices.SortFunc(through, byName)
	return append(direct, through...)
}
