package appdb

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-privacy/lethe/internal/datamap"
)

// Sought is one person of a page whose identifiers TracesOfPage searches
// for: who they are and what else is known of them, as for Traces.
type Sought struct {
	Person Person
	Known  Known // Known.Searched is not called: TracesOfPage takes its own
}

// candidatesPerPerson is how many rows of one table a page's scan keeps as
// one person's candidates; beyond it that person's search of that table
// reads the whole table again, as Traces does.
const candidatesPerPerson = 1000

// TracesOfPage is Traces for a page of people at once, with the same
// answer for each person as Traces gives (a test holds them equal): each
// table is read once for the whole page, and only the rows where one of a
// person's identifiers occurs are searched again for that person, with
// Traces's own statement restricted to those rows. Both reads happen in
// one read-only snapshot, so a row cannot move between them.
//
// The page's scan compares in Go what the statement compares in
// PostgreSQL: the values lower-cased by PostgreSQL's lower(), the email
// addresses and other identifiers contained in them (or, if shorter than
// an identifier is searched inside a value, equal to them), the user id
// equal to the value as text. searched is called after each table, and
// every scanProgress rows of a large one (an activity heartbeats there).
func TracesOfPage(ctx context.Context, db TxStarter, m *datamap.Map, people []Sought, searched func(table string)) ([][]Trace, error) {
	for _, p := range people {
		if p.Person.UserID == "" {
			return nil, fmt.Errorf("appdb: traces: an empty user id")
		}
	}
	out := make([][]Trace, len(people))
	if len(people) == 0 {
		return out, nil
	}
	tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, dbError("begin the search of", "the application's schemas", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	s, err := newSearch(ctx, tx, m)
	if err != nil {
		return nil, err
	}
	sought := make([]sought, len(people))
	for i, p := range people {
		sought[i] = seek(m, p.Person, p.Known)
	}
	match := newPageMatcher(sought)
	for _, tbl := range s.cols.tables() {
		cols := s.columnsOf(tbl)
		var anyone bool
		for _, p := range sought {
			anyone = anyone || cols.searched(p)
		}
		if !anyone {
			continue
		}
		var candidates [][]string
		if cols.nondeterministic {
			// A column compares case- or accent-insensitively: only
			// PostgreSQL can say what it holds, so each person's own
			// search reads the whole table, as Traces does.
			candidates = make([][]string, len(sought))
			for i, p := range sought {
				if cols.searched(p) {
					candidates[i] = []string{}
				}
			}
		} else if candidates, err = match.scan(ctx, tx, cols, searched); err != nil {
			return nil, err
		}
		for i, ctids := range candidates {
			if ctids == nil {
				continue // nothing of theirs in this table
			}
			if len(ctids) > candidatesPerPerson || len(ctids) == 0 {
				ctids = nil // too many (or not scanned): search the whole table for them
			}
			found, err := s.count(ctx, tx, tbl, cols, sought[i], ctids)
			if err != nil {
				return nil, err
			}
			out[i] = append(out[i], found...)
			if searched != nil {
				searched(tbl) // a long table: each person's count is progress
			}
		}
		if searched != nil {
			searched(tbl)
		}
	}
	return out, nil
}

// pageMatcher finds which of a page's people a value holds an identifier
// of. Values contained somewhere are found through an index of their
// first gram bytes, so a value is read once whatever the page's size.
type pageMatcher struct {
	contained map[uint32][]pattern // by the first gram bytes of the pattern
	short     []pattern            // contained patterns shorter than a gram
	equal     map[string][]int     // whole lower-cased values (short identifiers): people
	userIDs   map[string][]int     // user ids: people
	people    int
}

type pattern struct {
	value  string
	person int
	email  bool // an email address: searched in email columns too
}

const gram = 4

// scanProgress is how many rows a page's scan reads between two calls of
// its progress function.
const scanProgress = 100_000

func gramOf(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

func newPageMatcher(people []sought) *pageMatcher {
	m := &pageMatcher{contained: map[uint32][]pattern{}, equal: map[string][]int{}, userIDs: map[string][]int{}, people: len(people)}
	add := func(p pattern) {
		if len(p.value) < gram {
			m.short = append(m.short, p)
			return
		}
		k := gramOf([]byte(p.value[:gram]))
		m.contained[k] = append(m.contained[k], p)
	}
	for i, p := range people {
		for _, e := range p.emails {
			add(pattern{value: e, person: i, email: true})
		}
		for _, o := range p.others {
			if len(o.value) >= containedFrom {
				add(pattern{value: o.value, person: i})
			} else {
				m.equal[o.value] = append(m.equal[o.value], i)
			}
		}
		m.userIDs[p.userID] = append(m.userIDs[p.userID], i)
	}
	return m
}

// scan reads the table once and gives, per person, the ctids of the rows
// holding one of their identifiers (nil: none), each list cut a little
// beyond candidatesPerPerson.
func (m *pageMatcher) scan(ctx context.Context, tx pgx.Tx, cols tableColumns, progress func(table string)) ([][]string, error) {
	exprs := []string{"ctid::text"}
	type read struct {
		col   searchedColumn
		lower bool // lower(value) for emails and others, else the value for the user id
	}
	var reads []read
	for _, c := range cols.cols {
		if c.emails || c.others {
			exprs = append(exprs, fmt.Sprintf("lower(%s::text)", column(0, c.name)))
			reads = append(reads, read{col: c, lower: true})
		}
		if c.userID {
			exprs = append(exprs, fmt.Sprintf("%s::text", column(0, c.name)))
			reads = append(reads, read{col: c})
		}
	}
	rows, err := tx.Query(ctx, fmt.Sprintf("SELECT %s FROM %s AS %s", strings.Join(exprs, ", "), table(cols.table), alias(0)))
	if err != nil {
		return nil, dbError("search for the page's identifiers in", cols.table, err)
	}
	defer rows.Close()
	out := make([][]string, m.people)
	hit := make([]bool, m.people)
	var hits []int
	mark := func(i int) {
		if !hit[i] {
			hit[i] = true
			hits = append(hits, i)
		}
	}
	for n := 1; rows.Next(); n++ {
		if n%scanProgress == 0 && progress != nil {
			progress(cols.table)
		}
		raw := rows.RawValues()
		for k, r := range reads {
			v := raw[k+1]
			if v == nil {
				continue
			}
			if !r.lower {
				for _, i := range m.userIDs[string(v)] {
					mark(i)
				}
				continue
			}
			if r.col.others {
				for _, i := range m.equal[string(v)] {
					mark(i)
				}
			}
			m.contains(v, r.col, mark)
		}
		if len(hits) == 0 {
			continue
		}
		ctid := string(raw[0])
		for _, i := range hits {
			if len(out[i]) <= candidatesPerPerson {
				out[i] = append(out[i], ctid)
			}
			hit[i] = false
		}
		hits = hits[:0]
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("search for the page's identifiers in", cols.table, err)
	}
	return out, nil
}

// contains marks each person one of whose patterns searched in col occurs
// in v.
func (m *pageMatcher) contains(v []byte, col searchedColumn, mark func(int)) {
	applies := func(p pattern) bool { return p.email && col.emails || !p.email && col.others }
	for _, p := range m.short {
		if applies(p) && strings.Contains(string(v), p.value) {
			mark(p.person)
		}
	}
	for at := 0; at+gram <= len(v); at++ {
		ps, ok := m.contained[gramOf(v[at:])]
		if !ok {
			continue
		}
		for _, p := range ps {
			if applies(p) && len(v)-at >= len(p.value) && string(v[at:at+len(p.value)]) == p.value {
				mark(p.person)
			}
		}
	}
}
