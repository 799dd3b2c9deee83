package datamap

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// catalog is what discover and the coverage check read of the live
// application database: its tables, their columns and primary keys, and
// the foreign keys between them. It comes from pg_catalog and holds the
// schema only, never a row.
type catalog struct {
	tables map[string]*catTable // by schema.table
	names  []string             // the tables' names, sorted
	fks    []foreignKey         // in the order of the referencing table's name, then the constraint's
}

type catTable struct {
	name    string // schema.table
	columns []catColumn
	pk      []string // primary key columns, in key order
}

type catColumn struct {
	name    string
	typ     string // as format_type writes it: bigint, character varying(200), inet, …
	udt     string // the base type's name (through a domain): int8, varchar, inet, …
	domain  string // the domain the column is declared with, if any
	notNull bool
}

type foreignKey struct {
	table      string   // the referencing table
	columns    []string // its columns, in key order
	refTable   string   // the referenced table
	refColumns []string
}

// skippedSchemas are never read: PostgreSQL's own, and Lethe's (its
// tables live in the schema lethe when Lethe shares the database).
const skippedSchemas = `n.nspname NOT IN ('pg_catalog', 'information_schema', 'lethe') AND n.nspname NOT LIKE 'pg\_%'`

// readCatalog reads the ordinary and partitioned tables of every schema
// but PostgreSQL's and Lethe's own (partitions are their parent's), with
// their columns, primary keys and foreign keys.
func readCatalog(ctx context.Context, db Querier) (*catalog, error) {
	cat := &catalog{tables: map[string]*catTable{}}
	rows, err := db.Query(ctx, `SELECT n.nspname || '.' || c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
			bt.typname, CASE WHEN t.typtype = 'd' THEN t.typname ELSE '' END, a.attnotnull
		FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
		JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
		WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND `+skippedSchemas+`
		ORDER BY 1, a.attnum`)
	if err != nil {
		return nil, fmt.Errorf("read the schema: %w", err)
	}
	for rows.Next() {
		var table string
		var c catColumn
		if err := rows.Scan(&table, &c.name, &c.typ, &c.udt, &c.domain, &c.notNull); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read the schema: %w", err)
		}
		t := cat.tables[table]
		if t == nil {
			t = &catTable{name: table}
			cat.tables[table] = t
			cat.names = append(cat.names, table)
		}
		t.columns = append(t.columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the schema: %w", err)
	}
	slices.Sort(cat.names)

	// Primary and foreign keys, their columns in key order. A constraint
	// cloned onto a partition (conparentid) is its parent's.
	rows, err = db.Query(ctx, `SELECT k.contype::text, n.nspname || '.' || c.relname,
			ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY AS u(num, ord)
				JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.num ORDER BY u.ord),
			coalesce(rn.nspname || '.' || rc.relname, ''),
			ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY AS u(num, ord)
				JOIN pg_catalog.pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.num ORDER BY u.ord)
		FROM pg_catalog.pg_constraint k
		JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_catalog.pg_class rc ON rc.oid = k.confrelid
		LEFT JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
		WHERE k.contype IN ('p', 'f') AND k.conparentid = 0 AND `+skippedSchemas+`
		ORDER BY 2, k.conname`)
	if err != nil {
		return nil, fmt.Errorf("read the schema's keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind, table, refTable string
		var cols, refCols []string
		if err := rows.Scan(&kind, &table, &cols, &refTable, &refCols); err != nil {
			return nil, fmt.Errorf("read the schema's keys: %w", err)
		}
		t := cat.tables[table]
		if t == nil {
			continue // a partition's or another skipped relation's
		}
		switch kind {
		case "p":
			t.pk = cols
		case "f":
			if cat.tables[refTable] == nil {
				continue // into a schema not read
			}
			cat.fks = append(cat.fks, foreignKey{table: table, columns: cols, refTable: refTable, refColumns: refCols})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the schema's keys: %w", err)
	}
	return cat, nil
}

// referencing are the foreign keys into table from other tables.
func (c *catalog) referencing(table string) []foreignKey {
	var out []foreignKey
	for _, fk := range c.fks {
		if fk.refTable == table && fk.table != table {
			out = append(out, fk)
		}
	}
	return out
}

// expressible tells whether a data map can name a table or column: lower
// case letters, digits and underscores (Parse's rule).
func expressible(name string) bool {
	schema, table, ok := strings.Cut(name, ".")
	if !ok {
		return identRe.MatchString(name)
	}
	return identRe.MatchString(schema) && identRe.MatchString(table)
}
