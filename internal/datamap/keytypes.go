package datamap

import (
	"fmt"
	"strings"
)

// typeFamily groups a column's base type (information_schema's udt_name,
// pg_type's typname) by the values it holds: integers, text, uuids; any
// other type is a family of its own.
func typeFamily(udt string) string {
	switch udt {
	case "int2", "int4", "int8", "numeric":
		return "integer"
	case "text", "varchar", "bpchar", "citext", "name":
		return "text"
	}
	return udt
}

// canHold tells whether a key column of family key can hold the values
// of a column of family value: its own family, or any value as text
// (Lethe binds the user id as text, and compares by keys as text).
func canHold(key, value string) bool {
	return key == value || key == "text"
}

// typeName is how a message names a column's type: its data_type, or
// the name of a user-defined type (citext, an enum).
func (c columnInfo) typeName() string {
	if c.dataType == "USER-DEFINED" || c.dataType == "" {
		return c.udt
	}
	return c.dataType
}

// emailLike tells whether a column's name or declared type suggests it
// holds email addresses: "email", "mail", "address" in its name, or a
// domain or type called so.
func emailLike(column string, c columnInfo) bool {
	for _, s := range []string{column, c.domain, c.udt} {
		s = strings.ToLower(s)
		if strings.Contains(s, "mail") || strings.Contains(s, "address") {
			return true
		}
	}
	return false
}

// userKey is the column holding the user id the map's keys hold: the
// identity table's key, else the accounts table's.
func (m *Map) userKey() (table, column string, ok bool) {
	switch {
	case m.Identity != nil:
		return m.Identity.Table, m.Identity.Key, true
	case m.Accounts != nil:
		return m.Accounts.Table, m.Accounts.Key, true
	}
	return "", "", false
}

// validateWay checks the types on t's way to the person: a key column must
// be able to hold the user id (or, with by, the identity column it names,
// which the identity table must have), a via column its parent's key; a
// key without by that looks like an email address is refused, since it
// would be compared with the user id and match nothing.
func (m *Map) validateWay(t Table, columns map[string]map[string]bool, schema schemaColumns) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if v := t.Via; v != nil {
		col, ok := schema[t.Name+"."+v.Column]
		parent, pok := schema[v.Parent+"."+v.ParentKey]
		// Compared in SQL column to column: the same family, not text for all.
		if ok && pok && typeFamily(col.udt) != typeFamily(parent.udt) {
			bad("data map: table %s: via column %s is %s, but it must hold %s.%s, which is %s: name the column that references %s (its foreign key)",
				t.Name, v.Column, col.typeName(), v.Parent, v.ParentKey, parent.typeName(), v.Parent)
		}
		return errs
	}
	key, ok := schema[t.Name+"."+t.Key]
	if !ok {
		return nil // reported as a missing column
	}
	if t.By != "" {
		id := m.Identity
		if id == nil || columns[id.Table] == nil {
			return nil // Parse requires the identity; a missing table is reported
		}
		by, ok := schema[id.Table+"."+t.By]
		switch {
		case !ok:
			bad("data map: table %s: by %s: the identity table %s has no column %s: name the identity column whose value %s holds (such as %s, its email column)",
				t.Name, t.By, id.Table, t.By, t.Key, id.Email)
		case !canHold(typeFamily(key.udt), typeFamily(by.udt)):
			bad("data map: table %s: key %s is %s, but with by %s it holds %s.%s, which is %s: a %s column cannot hold it (check by, or map the column that holds that value)",
				t.Name, t.Key, key.typeName(), t.By, id.Table, t.By, by.typeName(), key.typeName())
		}
		return errs
	}
	idTable, idKey, ok := m.userKey()
	if !ok {
		return nil
	}
	user, ok := schema[idTable+"."+idKey]
	if !ok {
		return nil // reported as a missing column
	}
	if t.Name == idTable && t.Key == idKey {
		return nil
	}
	keyFamily := typeFamily(key.udt)
	switch {
	case !canHold(keyFamily, typeFamily(user.udt)):
		bad("data map: table %s: key %s is %s, but it must hold the user id %s.%s, which is %s: a %s column cannot hold it (map the column that holds the user id, reach the table with via, or add by if it holds another identifier)",
			t.Name, t.Key, key.typeName(), idTable, idKey, user.typeName(), key.typeName())
	case keyFamily == "text" && emailLike(t.Key, key) && !emailLike(idKey, user):
		suggest := "email"
		if m.Identity != nil {
			suggest = m.Identity.Email
		}
		bad("data map: table %s: key %s looks like an email address, but without by a key must hold the user id %s.%s, so no row would match: if it holds the person's email address, add `by: %s`",
			t.Name, t.Key, idTable, idKey, suggest)
	}
	return errs
}
