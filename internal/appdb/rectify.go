package appdb

// Corrections of a person's data in the application database
// (rectification, P13) and their consents (P12), as the data map's fields
// and consent sections say.
//
// Corrected values are personal data: they are written and passed on to the
// processors, never logged, and no error here repeats them. Old values are
// not read.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lethe-privacy/lethe/internal/datamap"
)

// FieldChange is one field corrected: Rows is how many of the person's rows the
// update matched (0: the application holds no such row for them). It carries
// no value.
type FieldChange struct {
	Field  string
	Table  string
	Column string
	Rows   int
}

// CorrectionRefused is the error of a correction that was not made at all: Fields maps
// each refused field name to the reason, which never repeats the value.
type CorrectionRefused struct {
	Fields map[string]string
}

func (r *CorrectionRefused) Error() string {
	names := make([]string, 0, len(r.Fields))
	for n := range r.Fields {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s: %s", showName(n), r.Fields[n])
	}
	return "rectify: refused, nothing written: " + strings.Join(parts, "; ")
}

// showName prints a requested field name: as it is when it could be one,
// quoted and cut short otherwise (it came from outside).
func showName(n string) string {
	plain := n != "" && len(n) <= 64 && !strings.ContainsFunc(n, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_')
	})
	if plain {
		return n
	}
	if len(n) > 32 {
		n = n[:32] + "…"
	}
	return fmt.Sprintf("%q", n)
}

// Reason given for a name the data map does not let people correct.
const reasonUnknown = "not a field that can be corrected"

// Rectify corrects a person's fields: corrections maps field names of the data
// map to new values. Every field is checked first; if any is unknown or its
// value fails datamap.CheckValue, nothing is written and the error is a
// *CorrectionRefused with a reason per refused field. Otherwise all corrections are
// written in one transaction, one UPDATE per table, and the changes are
// returned sorted by table and field. Applying the same corrections again
// writes the same values: it is harmless.
func Rectify(ctx context.Context, db TxStarter, m *datamap.Map, userID string, corrections map[string]string) ([]FieldChange, error) {
	if userID == "" {
		return nil, errors.New("rectify: no user id")
	}
	if len(corrections) == 0 {
		return nil, errors.New("rectify: no corrections")
	}
	refused := map[string]string{}
	type group struct {
		table, key string
		fields     []datamap.Field
	}
	groups := map[string]*group{}
	for _, name := range slices.Sorted(maps.Keys(corrections)) {
		f, ok := m.Field(name)
		if !ok {
			refused[name] = reasonUnknown
			continue
		}
		if err := datamap.CheckValue(f, corrections[name]); err != nil {
			refused[name] = err.Error()
			continue
		}
		k := f.Table + "\x00" + f.Key
		if groups[k] == nil {
			groups[k] = &group{table: f.Table, key: f.Key}
		}
		groups[k].fields = append(groups[k].fields, f)
	}
	if len(refused) > 0 {
		return nil, &CorrectionRefused{Fields: refused}
	}

	values := make([]string, 0, len(corrections))
	for _, v := range corrections {
		values = append(values, v)
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("rectify: begin: %w", withheld(err, values))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op

	var changes []FieldChange
	for _, k := range slices.Sorted(maps.Keys(groups)) {
		g := groups[k]
		sets := make([]string, len(g.fields))
		args := make([]any, 0, len(g.fields)+1)
		for i, f := range g.fields {
			sets[i] = fmt.Sprintf("%s = $%d", pgx.Identifier{f.Column}.Sanitize(), i+1)
			args = append(args, corrections[f.Name])
		}
		args = append(args, userID)
		sql := fmt.Sprintf("UPDATE %s SET %s WHERE %s = $%d", g.fields[0].Identifier().Sanitize(),
			strings.Join(sets, ", "), pgx.Identifier{g.key}.Sanitize(), len(args))
		tag, err := tx.Exec(ctx, sql, args...)
		if err != nil {
			return nil, fmt.Errorf("rectify: update %s: %w", g.table, withheld(err, values))
		}
		for _, f := range g.fields {
			changes = append(changes, FieldChange{Field: f.Name, Table: f.Table, Column: f.Column, Rows: int(tag.RowsAffected())})
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("rectify: commit: %w", withheld(err, values))
	}
	return changes, nil
}

// CorrectedProcessorFields says what to send each processor after a correction: for
// every processor named by a corrected field, its own field names mapped to
// the new values. Names the data map does not know are left out (Rectify
// refuses them).
func CorrectedProcessorFields(m *datamap.Map, corrections map[string]string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for name, value := range corrections {
		f, ok := m.Field(name)
		if !ok {
			continue
		}
		for proc, remote := range f.Processors {
			if out[proc] == nil {
				out[proc] = map[string]string{}
			}
			out[proc][remote] = value
		}
	}
	return out
}

// RecordConsent records that userID granted (or withdrew) consent for
// purpose, from source, at the given time: one row per user and purpose in
// the data map's consent table, inserted or updated. Recording the same
// change again changes nothing; a change older than the one recorded is
// ignored, so a retry that arrives late cannot undo a newer choice.
func RecordConsent(ctx context.Context, db Querier, m *datamap.Map, userID, purpose string, granted bool, source string, at time.Time) error {
	c := m.Consent
	switch {
	case c == nil:
		return errors.New("rectify: the data map has no consent section")
	case userID == "":
		return errors.New("rectify: consent: no user id")
	case source == "":
		return errors.New("rectify: consent: no source")
	case at.IsZero():
		return errors.New("rectify: consent: no time")
	}
	if _, ok := m.Purpose(purpose); !ok {
		return fmt.Errorf("rectify: consent: purpose %s is not in the data map", showName(purpose))
	}
	col := func(name string) string { return pgx.Identifier{name}.Sanitize() }
	sql := fmt.Sprintf(`INSERT INTO %[1]s AS cur (%[2]s, %[3]s, %[4]s, %[5]s, %[6]s) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (%[2]s, %[3]s) DO UPDATE SET %[4]s = EXCLUDED.%[4]s, %[5]s = EXCLUDED.%[5]s, %[6]s = EXCLUDED.%[6]s
		WHERE cur.%[6]s IS NULL OR cur.%[6]s <= EXCLUDED.%[6]s`,
		c.Identifier().Sanitize(), col(c.Key), col(c.Purpose), col(c.Granted), col(c.Source), col(c.ChangedAt))
	if _, err := db.Exec(ctx, sql, userID, purpose, granted, source, at); err != nil {
		return fmt.Errorf("rectify: record consent in %s: %w", c.Table, err)
	}
	return nil
}

// withheld keeps err for errors.Is and errors.As but, when its text holds
// one of the values, says so instead of showing it. A database error is
// shown by its code and the names it carries, never its message's detail.
func withheld(err error, values []string) error {
	msg := err.Error()
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		msg = "database error " + pg.Code
		for _, kv := range [][2]string{{"table", pg.TableName}, {"column", pg.ColumnName}, {"constraint", pg.ConstraintName}} {
			if kv[1] != "" {
				msg += fmt.Sprintf(" %s %s", kv[0], kv[1])
			}
		}
		if !containsAny(pg.Message, values) {
			msg += ": " + pg.Message
		}
	}
	if containsAny(msg, values) {
		msg = "error withheld: its message holds a corrected value"
	}
	return &safeError{msg: msg, err: err}
}

func containsAny(s string, values []string) bool {
	for _, v := range values {
		if v != "" && strings.Contains(s, v) {
			return true
		}
	}
	return false
}

type safeError struct {
	msg string
	err error
}

func (e *safeError) Error() string { return e.msg }
func (e *safeError) Unwrap() error { return e.err }
