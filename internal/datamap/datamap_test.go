package datamap_test

import (
	"context"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
)

func TestParseRefusesWhatCannotWork(t *testing.T) {
	for name, c := range map[string]struct{ yaml, want string }{
		"unknown field":   {"version: 1\ntables: []\nsecret: x\n", "field secret not found"},
		"bad version":     {"version: 2\n", "version"},
		"bad table name":  {"version: 1\ntables: [{name: 'x; drop table y', key: id, action: delete}]\n", "schema.table"},
		"bad column":      {"version: 1\ntables: [{name: a.b, key: 'id or 1=1', action: delete}]\n", "column name"},
		"bad action":      {"version: 1\ntables: [{name: a.b, key: id, action: shred}]\n", "action"},
		"twice":           {"version: 1\ntables: [{name: a.b, key: id, action: delete}, {name: a.b, key: id, action: delete}]\n", "twice"},
		"prefix template": {"version: 1\ns3: [{bucket: my-bucket, prefix: 'users/'}]\n", "{user_id}"},
		"other template":  {"version: 1\ns3: [{bucket: my-bucket, prefix: '{email}/{user_id}/'}]\n", "only {user_id}"},
		"bad bucket":      {"version: 1\ns3: [{bucket: B, prefix: '{user_id}/'}]\n", "bucket"},
		"bad identity":    {"version: 1\nidentity: {table: accounts, key: id, email: email}\n", "identity"},
	} {
		_, err := datamap.Parse([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", name, err, c.want)
		}
	}
}

func TestPrefixForRefusesIDsThatEscape(t *testing.T) {
	l := datamap.Location{Bucket: "b-1", Prefix: "projects/{user_id}/"}
	if p, err := l.PrefixFor("u-1"); err != nil || p != "projects/u-1/" {
		t.Fatalf("%q %v", p, err)
	}
	for _, bad := range []string{"", "../u-2", "u/2", "{user_id}"} {
		if _, err := l.PrefixFor(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestValidateNamesTheMissingTableOrColumn(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE SCHEMA app; CREATE TABLE app.users (id text, email text); CREATE TABLE app.files (owner text)`); err != nil {
		t.Fatal(err)
	}
	good, err := datamap.Parse([]byte("version: 1\nidentity: {table: app.users, key: id, email: email}\ntables: [{name: app.files, key: owner, action: delete}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := good.Validate(ctx, pool); err != nil {
		t.Fatalf("valid map refused: %v", err)
	}
	bad, _ := datamap.Parse([]byte("version: 1\nidentity: {table: app.users, key: id, email: mail}\ntables: [{name: app.gone, key: owner, action: delete}, {name: app.files, key: user_id, action: delete}]\n"))
	err = bad.Validate(ctx, pool)
	for _, want := range []string{"app.gone does not exist", "app.files has no column user_id", "app.users has no column mail"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}
