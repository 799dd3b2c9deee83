package datamap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// DiscoverOptions say where discover starts: the identity table of Map
// (identity, else accounts), else Identity (schema.table), else a guess.
// With Map, the discovery also says what the map leaves out (Gaps).
type DiscoverOptions struct {
	Map      *Map
	Identity string
}

// Discovery is what the live schema of an application database says about
// where a person's data lives. It is read from the catalog only: table and
// column names, types and keys, never a row.
type Discovery struct {
	Identity DiscoveredIdentity
	// Holders are the tables holding the person's rows: the identity table,
	// the tables whose foreign keys lead to it (directly: key; through
	// other tables: via), and the tables matched by email address (by).
	// Children come before their parents, the identity table last.
	Holders []Holder
	// Personal lists, by table, the columns whose names or types suggest
	// personal data, in column order.
	Personal map[string][]PersonalColumn
	// NoPersonal are the tables with no way to the person and no column
	// that looks personal: what a map ignores.
	NoPersonal []string
	// Unreached are the tables with columns that look personal but no way
	// to the person: mapped by hand, or ignored with a reason.
	Unreached []string
	// Unmappable says, table by table, what a data map cannot express
	// (a name not in lower case, a foreign key of several columns).
	Unmappable map[string]string

	cat *catalog
	m   *Map
}

// DiscoveredIdentity is the table people are found in, and how discover
// chose it.
type DiscoveredIdentity struct {
	Table, Key, Email string
	How               string
}

// Holder is a table holding the person's rows and its way to them, as a
// data map's table would say it: Key (with By, the identity column it
// holds) or Via.
type Holder struct {
	Table string
	Key   string
	By    string
	Via   *Via
	Depth int    // foreign keys between the table and the identity table
	Why   string // how discover found it
	// Notes are what a person must look at: other foreign keys to the
	// person the single key leaves aside.
	Notes []string
	// Matched is set for a table matched by an email column alone, with
	// no foreign key to the person.
	Matched bool
}

// Discover reads the live schema and finds the tables and columns that
// hold a person's data; see Discovery.
func Discover(ctx context.Context, db Querier, o DiscoverOptions) (*Discovery, error) {
	cat, err := readCatalog(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("discover: %w", err)
	}
	d := &Discovery{cat: cat, m: o.Map, Personal: map[string][]PersonalColumn{}, Unmappable: map[string]string{}}
	if d.Identity, err = findIdentity(cat, o); err != nil {
		return nil, err
	}
	d.reach()
	for _, name := range cat.names {
		t := cat.tables[name]
		h, reached := d.holder(name)
		for _, c := range t.columns {
			why := classify(c, reached)
			if reached && h.By != "" && c.name == h.Key {
				why = whyEmail
			}
			if why != "" {
				d.Personal[name] = append(d.Personal[name], PersonalColumn{Column: c.name, Type: c.typ, Why: why})
			}
		}
		_, odd := d.Unmappable[name]
		switch {
		case reached || odd:
		case len(d.Personal[name]) == 0:
			d.NoPersonal = append(d.NoPersonal, name)
		default:
			d.Unreached = append(d.Unreached, name)
		}
	}
	return d, nil
}

// Tables is the number of tables discover read.
func (d *Discovery) Tables() int { return len(d.cat.names) }

func (d *Discovery) holder(table string) (Holder, bool) {
	for _, h := range d.Holders {
		if h.Table == table {
			return h, true
		}
	}
	return Holder{}, false
}

// findIdentity takes the map's identity (or accounts) table, else the one
// named, else guesses: of the tables with an email column and a primary
// key of one column, the one whose key the most foreign keys reference.
func findIdentity(cat *catalog, o DiscoverOptions) (DiscoveredIdentity, error) {
	if m := o.Map; m != nil {
		switch {
		case m.Identity != nil:
			return DiscoveredIdentity{Table: m.Identity.Table, Key: m.Identity.Key, Email: m.Identity.Email, How: "the map's identity"}, nil
		case m.Accounts != nil:
			return DiscoveredIdentity{Table: m.Accounts.Table, Key: m.Accounts.Key, Email: m.Accounts.Email, How: "the map's accounts table"}, nil
		}
	}
	if o.Identity != "" {
		t := cat.tables[o.Identity]
		switch {
		case t == nil:
			return DiscoveredIdentity{}, fmt.Errorf("identity %s: no such table in the application database (want schema.table)", o.Identity)
		case !expressible(o.Identity):
			return DiscoveredIdentity{}, fmt.Errorf("identity %s: a data map names tables in lower case only", o.Identity)
		case len(t.pk) != 1 || !expressible(t.pk[0]):
			return DiscoveredIdentity{}, fmt.Errorf("identity %s: want a primary key of one column (the user id) named in lower case", o.Identity)
		case emailColumn(t) == "":
			return DiscoveredIdentity{}, fmt.Errorf("identity %s: no email column (Lethe finds a person by the address they prove they own)", o.Identity)
		}
		return DiscoveredIdentity{Table: o.Identity, Key: t.pk[0], Email: emailColumn(t), How: "chosen with --identity"}, nil
	}
	var best *catTable
	bestN := -1
	for _, name := range cat.names {
		t := cat.tables[name]
		if len(t.pk) != 1 || emailColumn(t) == "" || !expressible(name) || !expressible(t.pk[0]) {
			continue
		}
		n := 0
		for _, fk := range cat.referencing(name) {
			if slices.Equal(fk.refColumns, t.pk) {
				n++
			}
		}
		if n > bestN {
			best, bestN = t, n
		}
	}
	if best == nil {
		return DiscoveredIdentity{}, errors.New("no table has an email column and a primary key of one column to take for the identity table: name it with --identity schema.table")
	}
	return DiscoveredIdentity{Table: best.name, Key: best.pk[0], Email: emailColumn(best),
		How: fmt.Sprintf("guessed: of the tables with an email column, the one whose primary key the most foreign keys reference (%d); choose another with --identity", bestN)}, nil
}

// reach follows the foreign keys into the identity table, then into the
// tables found, breadth first (the shortest way wins, a key before a
// via); then matches by email the tables left that have an email column,
// and follows the foreign keys into those.
func (d *Discovery) reach() {
	id := d.Identity
	reached := map[string]*Holder{id.Table: {Table: id.Table, Key: id.Key, Why: "the identity table"}}
	order := []string{id.Table}
	follow := func(queue []string) {
		for len(queue) > 0 {
			cur := queue[0]
			queue = queue[1:]
			for _, fk := range d.cat.referencing(cur) {
				h, seen := reached[fk.table]
				switch {
				case seen && cur == id.Table && h.Key != "" && len(fk.columns) == 1:
					h.Notes = append(h.Notes, fmt.Sprintf("column %s also references %s.%s, but a table has one key: rows naming the person only there are not reached", fk.columns[0], cur, fk.refColumns[0]))
					continue
				case seen:
					continue
				case !expressible(fk.table):
					d.Unmappable[fk.table] = fmt.Sprintf("references %s, but its name is not in lower case, which a data map cannot name: rename it", cur)
					continue
				case len(fk.columns) != 1 || !expressible(fk.columns[0]):
					if _, noted := d.Unmappable[fk.table]; !noted {
						d.Unmappable[fk.table] = fmt.Sprintf("reaches the person only through the foreign key (%s) into %s, which a data map cannot follow: map it by hand (key or via on one column) or add it to ignore with a reason",
							strings.Join(fk.columns, ", "), cur)
					}
					continue
				}
				delete(d.Unmappable, fk.table)
				col, ref := fk.columns[0], fk.refColumns[0]
				h = &Holder{Table: fk.table, Depth: reached[cur].Depth + 1}
				switch {
				case cur == id.Table:
					h.Key = col
					if ref != id.Key {
						h.By = ref
					}
					h.Why = fmt.Sprintf("its column %s references %s.%s", col, cur, ref)
				default:
					h.Via = &Via{Column: col, Parent: cur, ParentKey: ref}
					h.Why = fmt.Sprintf("its column %s references %s.%s, a table holding the person's rows", col, cur, ref)
				}
				reached[fk.table] = h
				order = append(order, fk.table)
				queue = append(queue, fk.table)
			}
		}
	}
	follow([]string{id.Table})
	var byEmail []string
	for _, name := range d.cat.names {
		if _, ok := reached[name]; ok || !expressible(name) {
			continue
		}
		if col := emailKeyColumn(d.cat.tables[name]); col != "" {
			reached[name] = &Holder{Table: name, Key: col, By: id.Email, Depth: 1, Matched: true,
				Why: fmt.Sprintf("no foreign key leads to the person, but its column %s looks like an email address: matched with %s.%s", col, id.Table, id.Email)}
			order = append(order, name)
			byEmail = append(byEmail, name)
		}
	}
	follow(byEmail)
	for _, name := range order {
		d.Holders = append(d.Holders, *reached[name])
	}
	// Children before their parents, the identity table last.
	slices.SortStableFunc(d.Holders, func(a, b Holder) int {
		if a.Depth != b.Depth {
			return b.Depth - a.Depth
		}
		return strings.Compare(a.Table, b.Table)
	})
}

// TableGap is one table the map does not cover, or covers only in part,
// with why each finding is flagged.
type TableGap struct {
	Table    string
	Findings []string
}

// Gaps are the tables and columns the map (DiscoverOptions.Map) does not
// cover: tables holding the person's rows (by foreign key or email) that
// are neither mapped nor ignored, tables with columns that look personal
// and no way to the person, columns that look personal which an anonymize
// action or the anonymized account row leaves, and ignored tables with
// such columns. Nil without a map.
func (d *Discovery) Gaps() []TableGap {
	m := d.m
	if m == nil {
		return nil
	}
	var gaps []TableGap
	columnsOf := func(name string, skip func(string) bool, why string) []string {
		var out []string
		for _, p := range d.Personal[name] {
			if !skip(p.Column) {
				out = append(out, fmt.Sprintf("column %s (%s) looks like %s%s", p.Column, p.Type, p.Why, why))
			}
		}
		return out
	}
	none := func(string) bool { return false }
	for _, name := range d.cat.names {
		var findings []string
		t, mapped := m.Table(name)
		h, reached := d.holder(name)
		switch {
		case mapped && t.Action == ActionAnonymize:
			findings = columnsOf(name, func(c string) bool {
				return slices.ContainsFunc(t.Anonymize, func(a Anonymization) bool { return a.Column == c }) || slices.Contains(t.Exclude, c)
			}, ", and anonymize leaves it: add it to anonymize if it can name the person")
		case mapped:
		case m.Accounts != nil && name == m.Accounts.Table:
			if a := m.Accounts; a.EraseAction == "anonymize" {
				findings = columnsOf(name, func(c string) bool {
					return c == a.Email || c == a.Key || slices.Contains(a.Clear, c) || slices.Contains(a.Exclude, c)
				}, ", and anonymizing the account row leaves it: add it to accounts.clear")
			}
		case m.Identity != nil && name == m.Identity.Table:
			findings = append(findings, fmt.Sprintf("the identity table is not in tables and no accounts section erases its rows: the person's row stays after an erasure: map it (key: %s, action: delete or anonymize)", m.Identity.Key))
		case m.ignored(name):
			findings = columnsOf(name, none, ", but the table is ignored: check the reason")
		case reached:
			findings = append(findings, fmt.Sprintf("holds the person's rows (%s), but is neither in tables nor in ignore: map it (%s) or add it to ignore with a reason", h.Why, h.way()))
			findings = append(findings, columnsOf(name, none, "")...)
		case len(d.Personal[name]) > 0:
			findings = append(findings, "no foreign key leads to the person, but columns look personal: map it if it holds a person's data (key, via or by), else add it to ignore with a reason")
			findings = append(findings, columnsOf(name, none, "")...)
		}
		if why, ok := d.Unmappable[name]; ok && !mapped && !m.ignored(name) {
			findings = append(findings, why)
		}
		if len(findings) > 0 {
			gaps = append(gaps, TableGap{Table: name, Findings: findings})
		}
	}
	return gaps
}

// way is how a map's table reaches the holder's rows, in YAML flow style.
func (h Holder) way() string {
	switch {
	case h.Via != nil:
		return fmt.Sprintf("via: {column: %s, parent: %s, parent_key: %s}", h.Via.Column, h.Via.Parent, h.Via.ParentKey)
	case h.By != "":
		return fmt.Sprintf("key: %s, by: %s", h.Key, h.By)
	}
	return "key: " + h.Key
}

// unmappedQuiet are the tables neither mapped nor ignored with nothing
// found in them: no way to the person, no personal column.
func (d *Discovery) unmappedQuiet() []string {
	var out []string
	for _, name := range d.NoPersonal {
		if _, mapped := d.m.Table(name); !mapped && !d.m.ignored(name) && !d.isUserTable(name) {
			if _, odd := d.Unmappable[name]; !odd {
				out = append(out, name)
			}
		}
	}
	return out
}

func (d *Discovery) isUserTable(name string) bool {
	return (d.m.Identity != nil && d.m.Identity.Table == name) || (d.m.Accounts != nil && d.m.Accounts.Table == name)
}

// WriteReport writes what discover found, for a person to read: without a
// map, every table holding the person with its way and personal columns,
// then the tables without personal data; with one, the gaps table by table.
func (d *Discovery) WriteReport(w io.Writer) error {
	var b strings.Builder
	id := d.Identity
	fmt.Fprintf(&b, "Read the schema of %d tables (names and types only, no row).\n", d.Tables())
	fmt.Fprintf(&b, "identity: %s (key %s, email %s): %s\n", id.Table, id.Key, id.Email, id.How)
	if d.m != nil {
		gaps := d.Gaps()
		quiet := d.unmappedQuiet()
		if len(gaps) == 0 && len(quiet) == 0 {
			fmt.Fprintf(&b, "The map covers every table and column discover flags (%d tables, %d ignored).\n", len(d.m.Tables), len(d.m.Ignore))
		} else {
			fmt.Fprintf(&b, "\nWhat the map does not cover (%d %s):\n", len(gaps), plural(len(gaps), "table", "tables"))
		}
		for _, g := range gaps {
			fmt.Fprintf(&b, "\n%s\n", g.Table)
			for _, f := range g.Findings {
				fmt.Fprintf(&b, "  - %s\n", f)
			}
		}
		if len(quiet) > 0 {
			fmt.Fprintf(&b, "\nNot in the map, nothing personal found (add them to ignore with a reason to say so): %s\n", strings.Join(quiet, ", "))
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	fmt.Fprintf(&b, "\nTables holding the person (%d):\n", len(d.Holders))
	for _, h := range d.Holders {
		way := h.way()
		if h.Table == id.Table {
			way = "the identity table"
		}
		fmt.Fprintf(&b, "  %-28s %s\n", h.Table, way)
		if h.Table != id.Table {
			fmt.Fprintf(&b, "      found: %s\n", h.Why)
		}
		for _, p := range d.Personal[h.Table] {
			fmt.Fprintf(&b, "      %s (%s): %s\n", p.Column, p.Type, p.Why)
		}
		for _, n := range h.Notes {
			fmt.Fprintf(&b, "      review: %s\n", n)
		}
	}
	if len(d.Unreached) > 0 {
		fmt.Fprintf(&b, "\nColumns that look personal, but no way to the person (map by hand, or ignore with a reason):\n")
		for _, name := range d.Unreached {
			fmt.Fprintf(&b, "  %s\n", name)
			for _, p := range d.Personal[name] {
				fmt.Fprintf(&b, "      %s (%s): %s\n", p.Column, p.Type, p.Why)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(d.Unmappable)) {
		fmt.Fprintf(&b, "\n%s: %s\n", name, d.Unmappable[name])
	}
	if len(d.NoPersonal) > 0 {
		fmt.Fprintf(&b, "\nNo personal data found (no way to the person, no column that looks personal): %s\n", strings.Join(d.NoPersonal, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// retainWords in a table's name suggest records a law may keep.
var retainWords = []string{"order", "orders", "invoice", "invoices", "purchase", "purchases", "payment", "payments", "transaction", "transactions", "receipt", "receipts"}

// Draft is a data map for the discovered schema: the identity, every
// holder with its key, by or via and action delete, each line marked
// "# review:" with what a person must decide; ignore entries for the
// tables without personal data, and those with personal columns but no
// way to the person (marked for review). It parses with Parse and
// validates against the database it was read from.
func (d *Discovery) Draft(source string) []byte {
	var b strings.Builder
	id := d.Identity
	fmt.Fprintf(&b, "# A draft data map, written by `starter datamap discover` from the schema of %s\n", source)
	b.WriteString("# (table and column names, types and foreign keys: no row was read).\n")
	b.WriteString("# Every line marked \"# review:\" needs a person's decision. Then run\n")
	b.WriteString("#   go run ./starter datamap check --map <this file>\n")
	b.WriteString("# and see README.md, \"The data map\".\n")
	b.WriteString("version: 1\n")
	fmt.Fprintf(&b, "identity: {table: %s, key: %s, email: %s}", id.Table, id.Key, id.Email)
	if !strings.HasPrefix(id.How, "the map") && id.How != "chosen with --identity" {
		fmt.Fprintf(&b, "   # review: %s", strings.TrimSuffix(id.How, "; choose another with --identity"))
	}
	b.WriteString("\n")
	b.WriteString("# Actions: delete removes the rows; anonymize keeps them and overwrites the listed\n")
	b.WriteString("# columns (anonymize: [{column, set: \"null\" | fixed | hash}]); retain keeps them under\n")
	b.WriteString("# a legal hold (hold: {reason, period, since}). Children are listed before their parents.\n")
	b.WriteString("tables:\n")
	for _, h := range d.Holders {
		fmt.Fprintf(&b, "  - {name: %s, %s, action: delete}", h.Table, h.way())
		var review []string
		switch {
		case h.Table == id.Table:
			review = append(review, "the person's own row: delete it, or anonymize it when rows of other tables are kept (retain) and point at it")
		case h.Matched:
			review = append(review, fmt.Sprintf("no foreign key leads to the person: its rows are matched by %s against %s.%s (case-insensitively); check it holds email addresses; delete, or anonymize", h.Key, id.Table, h.By))
		case h.By != "":
			review = append(review, fmt.Sprintf("its rows are matched by %s against %s.%s (case-insensitively); delete, or anonymize", h.Key, id.Table, h.By))
		case slices.ContainsFunc(strings.Split(strings.SplitN(h.Table, ".", 2)[1], "_"), func(s string) bool { return slices.Contains(retainWords, s) }):
			review = append(review, "delete, anonymize, or retain under a legal hold (tax law often keeps orders and invoices)")
		default:
			review = append(review, "delete, or anonymize to keep the rows")
		}
		if cols := d.Personal[h.Table]; len(cols) > 0 {
			names := make([]string, len(cols))
			for i, p := range cols {
				names[i] = p.Column
			}
			review = append(review, "looks personal: "+strings.Join(names, ", "))
		}
		review = append(review, h.Notes...)
		fmt.Fprintf(&b, "   # review: %s\n", strings.Join(review, "; "))
	}
	for _, name := range slices.Sorted(maps.Keys(d.Unmappable)) {
		fmt.Fprintf(&b, "  # review: %s is not in this draft: it %s\n", name, d.Unmappable[name])
	}
	var ignore []string
	for _, name := range d.NoPersonal {
		if _, odd := d.Unmappable[name]; !odd {
			ignore = append(ignore, fmt.Sprintf("  - {table: %s, reason: %s}   # review: confirm it holds nothing about a person\n",
				name, yamlString("no column looks personal and no foreign key leads to a person (datamap discover)")))
		}
	}
	for _, name := range d.Unreached {
		if _, odd := d.Unmappable[name]; odd {
			continue
		}
		cols := make([]string, 0, len(d.Personal[name]))
		for _, p := range d.Personal[name] {
			cols = append(cols, p.Column)
		}
		// No reason is written: check refuses the draft until a person has
		// decided whether these columns are a person's data.
		ignore = append(ignore, fmt.Sprintf("  - {table: %s, reason: \"\"}   # review: %s look personal: map the table (key, via or by) if they are a person's data, else say why it holds nothing of a person\n",
			name, strings.Join(cols, ", ")))
	}
	if len(ignore) > 0 {
		b.WriteString("ignore:\n")
		for _, line := range ignore {
			b.WriteString(line)
		}
	}
	return []byte(b.String())
}

// yamlString quotes s for YAML (a JSON string is a YAML double-quoted one).
func yamlString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}
