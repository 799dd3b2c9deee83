package datamap_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/domain"
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
	// A processor's ids are columns of the identity table.
	ids, _ := datamap.Parse([]byte("version: 1\nidentity: {table: app.users, key: id, email: email}\nprocessors: [{name: stripe, kind: stripe, ids: {stripe_customer_id: stripe_id}}]\n"))
	if err := ids.Validate(ctx, pool); err == nil || !strings.Contains(err.Error(), "processor stripe: ids.stripe_customer_id: identity table app.users has no column stripe_id") {
		t.Errorf("want the missing id column named, got %v", err)
	}
}

const processingYAML = `version: 1
processors:
  - {name: stripe, kind: stripe, credential_env: LETHE_STRIPE_KEY}
  - {name: mailchimp, kind: mailchimp, credential_env: LETHE_MAILCHIMP_KEY, options: {list_id: l1}}
fields:
  - name: display_name
    table: app.profiles
    key: user_id
    column: display_name
    check: {kind: text, max_length: 100}
    processors: {stripe: name, mailchimp: FNAME}
  - name: handle
    table: app.profiles
    key: user_id
    column: handle
    check: {kind: text, max_length: 20, pattern: '[a-z][a-z0-9_]*'}
consent:
  table: app.consents
  key: user_id
  purpose: purpose
  granted: granted
  source: source
  changed_at: changed_at
  purposes:
    - {name: marketing_email, processors: [mailchimp]}
    - {name: ai_training}
    - {name: sale_sharing, no_verification: true, deadline: 15bd}
`

func TestParseReadsFieldsConsentAndProcessors(t *testing.T) {
	m, err := datamap.Parse([]byte(processingYAML))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Processors) != 2 || m.Processors[1].Options["list_id"] != "l1" {
		t.Errorf("processors %+v", m.Processors)
	}
	f, ok := m.Field("display_name")
	if !ok || f.Table != "app.profiles" || f.Column != "display_name" || f.Check.MaxLength != 100 || f.Processors["mailchimp"] != "FNAME" {
		t.Errorf("display_name = %+v, %v", f, ok)
	}
	if f.Identifier().Sanitize() != `"app"."profiles"` {
		t.Errorf("identifier %s", f.Identifier().Sanitize())
	}
	if _, ok := m.Field("email"); ok {
		t.Error("field email should not exist")
	}
	p, ok := m.Purpose("sale_sharing")
	if !ok || !p.NoVerification || p.Deadline != "15bd" || len(p.Processors) != 0 {
		t.Errorf("sale_sharing = %+v, %v", p, ok)
	}
	if p, _ := m.Purpose("marketing_email"); len(p.Processors) != 1 || p.Processors[0] != "mailchimp" {
		t.Errorf("marketing_email = %+v", p)
	}
	if _, ok := m.Purpose("telemarketing"); ok {
		t.Error("purpose telemarketing should not exist")
	}
	if _, ok := (&datamap.Map{}).Purpose("ai_training"); ok {
		t.Error("no consent section, yet a purpose")
	}
	// The pattern is anchored: a value must match as a whole.
	h, _ := m.Field("handle")
	for v, want := range map[string]bool{"ada_1": true, "Ada": false, "ada-1": false, "1ada": false, "x ada": false} {
		if err := datamap.CheckValue(h, v); (err == nil) != want {
			t.Errorf("handle %q: %v", v, err)
		}
	}
}

func TestParseRefusesBadFieldsConsentAndProcessors(t *testing.T) {
	field := func(s string) string { return "version: 1\nfields:\n  - " + s + "\n" }
	consent := func(s string) string {
		return "version: 1\nprocessors: [{name: crm, kind: webhook}]\nconsent: {table: app.consents, key: user_id, purpose: purpose, granted: granted, source: source, changed_at: changed_at, " + s + "}\n"
	}
	okCheck := "check: {kind: text}"
	for name, c := range map[string]struct{ yaml, want string }{
		"unknown field key":      {field("{name: a, table: app.p, key: id, column: c, " + okCheck + ", secret: x}"), "field secret not found"},
		"unknown check key":      {field("{name: a, table: app.p, key: id, column: c, check: {kind: text, min: 1}}"), "field min not found"},
		"field name":             {field("{name: Display-Name, table: app.p, key: id, column: c, " + okCheck + "}"), `fields[0]: name "Display-Name"`},
		"field table":            {field("{name: a, table: profiles, key: id, column: c, " + okCheck + "}"), "fields[0] (a): table \"profiles\""},
		"field key":              {field("{name: a, table: app.p, key: 'id or 1=1', column: c, " + okCheck + "}"), "fields[0] (a): key"},
		"field column":           {field("{name: a, table: app.p, key: id, column: 'c; drop', " + okCheck + "}"), "fields[0] (a): column"},
		"column is the key":      {field("{name: a, table: app.p, key: id, column: id, " + okCheck + "}"), "user id cannot be corrected"},
		"no check":               {field("{name: a, table: app.p, key: id, column: c}"), "check kind \"\""},
		"check kind":             {field("{name: a, table: app.p, key: id, column: c, check: {kind: url}}"), "check kind \"url\""},
		"negative max_length":    {field("{name: a, table: app.p, key: id, column: c, check: {kind: text, max_length: -1}}"), "max_length -1"},
		"bad pattern":            {field("{name: a, table: app.p, key: id, column: c, check: {kind: text, pattern: '(a'}}"), "not a valid RE2"},
		"field twice":            {"version: 1\nfields: [{name: a, table: app.p, key: id, column: c, " + okCheck + "}, {name: a, table: app.p, key: id, column: d, " + okCheck + "}]\n", `field "a" appears twice`},
		"column twice":           {"version: 1\nfields: [{name: a, table: app.p, key: id, column: c, " + okCheck + "}, {name: b, table: app.p, key: id, column: c, " + okCheck + "}]\n", "already field a"},
		"unknown processor":      {field("{name: a, table: app.p, key: id, column: c, " + okCheck + ", processors: {stripe: name}}"), `processor "stripe" is not in processors`},
		"bad processor field":    {"version: 1\nprocessors: [{name: s, kind: stripe}]\n" + field("{name: a, table: app.p, key: id, column: c, " + okCheck + ", processors: {s: 'na me'}}")[len("version: 1\n"):], "processor s field"},
		"processor field twice":  {"version: 1\nprocessors: [{name: s, kind: stripe}]\nfields: [{name: a, table: app.p, key: id, column: c, " + okCheck + ", processors: {s: name}}, {name: b, table: app.p, key: id, column: d, " + okCheck + ", processors: {s: name}}]\n", "processor s field name is already field a"},
		"accounts status":        {"version: 1\naccounts: {table: app.accounts, key: id, email: email, status: status, active: a, deactivated: d, erased: e, last_active: seen, erase_action: delete}\n" + field("{name: a, table: app.accounts, key: id, column: status, " + okCheck + "}")[len("version: 1\n"):], "managed by Lethe"},
		"consent table as field": {consent("purposes: [{name: p}]") + "fields: [{name: a, table: app.consents, key: user_id, column: granted, " + okCheck + "}]\n", "is the consent table"},
		"processor name":         {"version: 1\nprocessors: [{name: Stripe!, kind: stripe}]\n", `name "Stripe!"`},
		"processor twice":        {"version: 1\nprocessors: [{name: s, kind: stripe}, {name: s, kind: stripe}]\n", `processor "s" appears twice`},
		"processor kind":         {"version: 1\nprocessors: [{name: s}]\n", "kind is required"},
		"processor env":          {"version: 1\nprocessors: [{name: s, kind: stripe, credential_env: 'my key'}]\n", "credential_env"},
		"processor unknown key":  {"version: 1\nprocessors: [{name: s, kind: stripe, secret: x}]\n", "field secret not found"},
		"consent table":          {"version: 1\nconsent: {table: consents, key: k, purpose: p, granted: g, source: s, changed_at: c, purposes: [{name: x}]}\n", `consent: table "consents"`},
		"consent column":         {"version: 1\nconsent: {table: a.c, key: k, purpose: p, granted: 'g g', source: s, changed_at: c, purposes: [{name: x}]}\n", `granted "g g"`},
		"consent missing column": {"version: 1\nconsent: {table: a.c, key: k, purpose: p, granted: g, changed_at: c, purposes: [{name: x}]}\n", `source ""`},
		"consent column twice":   {"version: 1\nconsent: {table: a.c, key: k, purpose: k, granted: g, source: s, changed_at: c, purposes: [{name: x}]}\n", "column k is used twice"},
		"no purposes":            {consent("purposes: []"), "want at least one"},
		"purpose name":           {consent("purposes: [{name: Marketing Email}]"), `name "Marketing Email"`},
		"purpose twice":          {consent("purposes: [{name: p}, {name: p}]"), `purpose "p" appears twice`},
		"purpose processor":      {consent("purposes: [{name: p, processors: [mailchimp]}]"), `processor "mailchimp" is not in processors`},
		"processor listed twice": {consent("purposes: [{name: p, processors: [crm, crm]}]"), `processor "crm" is listed twice`},
		"deadline":               {consent("purposes: [{name: p, deadline: 2w}]"), `deadline "2w"`},
		"zero deadline":          {consent("purposes: [{name: p, deadline: 0d}]"), `deadline "0d"`},
		"purpose unknown key":    {consent("purposes: [{name: p, verify: false}]"), "field verify not found"},
		"processor ids key":      {"version: 1\nidentity: {table: app.u, key: id, email: email}\nprocessors: [{name: s, kind: stripe, ids: {Stripe-ID: c}}]\n", `ids: key "Stripe-ID"`},
		"processor ids column":   {"version: 1\nidentity: {table: app.u, key: id, email: email}\nprocessors: [{name: s, kind: stripe, ids: {stripe_customer_id: 'c; drop'}}]\n", "ids.stripe_customer_id"},
		"processor ids no table": {"version: 1\nprocessors: [{name: s, kind: stripe, ids: {stripe_customer_id: c}}]\n", "ids need the identity section"},
		"accounts clear managed": {"version: 1\naccounts: {table: app.accounts, key: id, email: email, status: status, active: a, deactivated: d, erased: e, last_active: seen, erase_action: anonymize, clear: [email]}\n", "clear: email is managed by Lethe"},
	} {
		m, err := datamap.Parse([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", name, err, c.want)
		}
		if m != nil {
			t.Errorf("%s: a map with an error", name)
		}
	}
}

func TestDeadlineReadsLikeParsePeriod(t *testing.T) {
	for _, d := range []string{"15bd", "45d", "1mo", " 10d ", "+3d", "10000d", "10001d", "-1d", "d", "bd", "3w", "1.5d", "12", "1MO", "0bd", "0mo"} {
		_, err := datamap.Parse([]byte("version: 1\nconsent: {table: a.c, key: k, purpose: p, granted: g, source: s, changed_at: c, purposes: [{name: x, deadline: '" + d + "'}]}\n"))
		p, perr := domain.ParsePeriod(d)
		if want := perr == nil && !p.IsZero(); (err == nil) != want {
			t.Errorf("deadline %q: Parse says %v, ParsePeriod says %v, %v", d, err, p, perr)
		}
	}
}

func TestCheckValue(t *testing.T) {
	field := func(kind string, max int) datamap.Field {
		return datamap.Field{Name: "f", Check: datamap.Check{Kind: kind, MaxLength: max}}
	}
	for _, c := range []struct {
		f      datamap.Field
		value  string
		reason string // "" for accepted
	}{
		{field("text", 5), "héllo", ""},
		{field("text", 5), "héllo!", "too long: at most 5 characters"},
		{field("text", 0), "two\nlines\tand a tab", ""},
		{field("text", 0), "", ""},
		{field("text", 0), "nul\x00byte", "control character"},
		{field("text", 0), "bad \xff utf-8", "UTF-8"},
		{field("name", 0), "Zoë O'Brien-Smith Jr.", ""},
		{field("name", 0), "José María", ""},
		{field("name", 0), "", "must not be empty"},
		{field("name", 0), " Ada", "start or end with a space"},
		{field("name", 0), "Ada\nLovelace", "control character"},
		{field("name", 0), "Ada <script>", "letters, spaces"},
		{field("name", 0), "---", "at least one letter"},
		{field("email", 0), "ada@example.com", ""},
		{field("email", 0), "ada.lovelace+lethe@mail.example.co.uk", ""},
		{field("email", 0), "ada@example", "not a valid email address"},
		{field("email", 0), "Ada <ada@example.com>", "not a valid email address"},
		{field("email", 0), "ada@@example.com", "not a valid email address"},
		{field("email", 0), "ada @example.com", "not a valid email address"},
		{field("email", 0), "ada@-example.com", "not a valid email address"},
		{field("email", 0), "ada@1.2.3.4", "not a valid email address"},
		{field("email", 0), strings.Repeat("a", 65) + "@example.com", "not a valid email address"},
		{field("email", 10), "ada@example.com", "too long: at most 10 characters"},
		{field("country", 0), "DE", ""},
		{field("country", 0), "AX", ""},
		{field("country", 0), "SS", ""},
		{field("country", 0), "de", "want a country code such as DE"},
		{field("country", 0), "XK", "want a country code such as DE"},
		{field("country", 0), "UK", "want a country code such as DE"},
		{field("country", 0), "DEU", "want a country code such as DE"},
		{field("country", 0), "Germany", "want a country code such as DE"},
		{field("phone", 0), "+4930901820", ""},
		{field("phone", 0), "+14155552671", ""},
		{field("phone", 0), "030 901820", "E.164"},
		{field("phone", 0), "+49 30 901820", "E.164"},
		{field("phone", 0), "+0123456789", "E.164"},
		{field("phone", 0), "+1234567890123456", "E.164"},
		{datamap.Field{Check: datamap.Check{Kind: "text", Pattern: "[A-Z]{3}"}}, "ABC", ""},
		{datamap.Field{Check: datamap.Check{Kind: "text", Pattern: "[A-Z]{3}"}}, "ABCD", "not in the form"},
		{datamap.Field{Check: datamap.Check{Kind: "text", Pattern: "("}}, "ABC", "cannot be corrected"},
		{datamap.Field{Check: datamap.Check{Kind: "url"}}, "https://example.com", "cannot be corrected"},
	} {
		err := datamap.CheckValue(c.f, c.value)
		switch {
		case c.reason == "" && err != nil:
			t.Errorf("%s %q: refused: %v", c.f.Check.Kind, c.value, err)
		case c.reason != "" && (err == nil || !strings.Contains(err.Error(), c.reason)):
			t.Errorf("%s %q: got %v, want %q", c.f.Check.Kind, c.value, err, c.reason)
		case err != nil && len(c.value) > 2 && strings.Contains(err.Error(), c.value):
			t.Errorf("%s %q: the reason repeats the value: %v", c.f.Check.Kind, c.value, err)
		}
	}
}

func TestValidateNamesMissingFieldAndConsentColumns(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE SCHEMA app;
		CREATE TABLE app.profiles (user_id text PRIMARY KEY, display_name text);
		CREATE TABLE app.consents (user_id text, purpose text, granted boolean, source text, changed_at timestamptz, PRIMARY KEY (purpose, user_id));
		CREATE TABLE app.consents_no_key (user_id text, purpose text, granted boolean, source text, changed_at timestamptz);
		CREATE UNIQUE INDEX ON app.consents_no_key (user_id, purpose) WHERE granted;
		CREATE UNIQUE INDEX ON app.consents_no_key (user_id);`); err != nil {
		t.Fatal(err)
	}
	m, err := datamap.Parse([]byte(processingYAML))
	if err != nil {
		t.Fatal(err)
	}
	err = m.Validate(ctx, pool)
	if err == nil || !strings.Contains(err.Error(), "table app.profiles has no column handle") {
		t.Errorf("want the missing column handle named, got %v", err)
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE app.profiles ADD COLUMN handle text`); err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(ctx, pool); err != nil {
		t.Errorf("valid map refused: %v", err)
	}

	m.Consent.Table = "app.consents_no_key"
	if err := m.Validate(ctx, pool); err == nil || !strings.Contains(err.Error(), "app.consents_no_key has no primary key or unique index on exactly (user_id, purpose)") {
		t.Errorf("want the missing unique index named, got %v", err)
	}
	m.Consent.Table, m.Consent.Source = "app.consents", "origin"
	if err := m.Validate(ctx, pool); err == nil || !strings.Contains(err.Error(), "table app.consents has no column origin") {
		t.Errorf("want the missing consent column named, got %v", err)
	}
	m.Consent.Table = "app.gone"
	if err := m.Validate(ctx, pool); err == nil || !strings.Contains(err.Error(), "table app.gone does not exist") {
		t.Errorf("want the missing consent table named, got %v", err)
	}
}

const disclosureYAML = `version: 1
accounts: {table: app.accounts, key: id, email: email, status: status, active: a, deactivated: d, erased: e, last_active: seen, erase_action: delete, exclude: [password_hash]}
tables:
  - {name: app.ids, key: user_id, action: delete, exclude: [passport_no, iban]}
  - {name: app.events, key: user_id, action: delete}
s3: [{bucket: my-bucket, prefix: 'uploads/{user_id}/'}, {bucket: my-bucket, prefix: 'logs/{user_id}/'}]
processors: [{name: stripe, kind: stripe}, {name: crm, kind: webhook}]
disclosure:
  purposes: [to provide the service, security]
  categories: [identifiers, content you upload]
  recipients: [Amazon Web Services, crm]
  retention: While the account is active and 30 days after.
  sources: Payment status comes from Stripe.
  provided_by_person: [app.ids, app.accounts, 's3://my-bucket/uploads/{user_id}/']
`

func TestParseReadsExcludeAndDisclosure(t *testing.T) {
	m, err := datamap.Parse([]byte(disclosureYAML))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Accounts.Exclude; len(got) != 1 || got[0] != "password_hash" {
		t.Errorf("accounts.exclude = %q", got)
	}
	if got := m.Tables[0].Exclude; len(got) != 2 || got[1] != "iban" {
		t.Errorf("tables[0].exclude = %q", got)
	}
	st := m.Statement()
	if st.Rights != datamap.DefaultRights {
		t.Errorf("rights default not applied: %q", st.Rights)
	}
	for _, right := range []string{"rectified", "erased", "restrict", "object", "portability", "supervisory authority"} {
		if !strings.Contains(datamap.DefaultRights, right) {
			t.Errorf("DefaultRights does not mention %q", right)
		}
	}
	if want := []string{"Amazon Web Services", "crm", "stripe"}; strings.Join(st.Recipients, "|") != strings.Join(want, "|") {
		t.Errorf("recipients %q, want %q (processors added once)", st.Recipients, want)
	}
	if len(m.Disclosure.Recipients) != 2 {
		t.Errorf("Statement changed the map: %q", m.Disclosure.Recipients)
	}
	for ref, want := range map[string]bool{"app.ids": true, "app.accounts": true, "app.events": false,
		m.S3[0].LocationRef(): true, m.S3[1].LocationRef(): false} {
		if m.ProvidedByPerson(ref) != want {
			t.Errorf("ProvidedByPerson(%q) = %v", ref, !want)
		}
	}
	if m.S3[0].LocationRef() != "s3://my-bucket/uploads/{user_id}/" {
		t.Errorf("LocationRef %q", m.S3[0].LocationRef())
	}
	// Without a disclosure section: the default rights and the processors.
	bare := &datamap.Map{Processors: m.Processors}
	if st := bare.Statement(); st.Rights != datamap.DefaultRights || len(st.Recipients) != 2 || bare.ProvidedByPerson("app.ids") {
		t.Errorf("bare statement %+v", st)
	}
}

func TestParseRefusesBadExcludeAndDisclosure(t *testing.T) {
	disclosure := func(s string) string {
		return "version: 1\ntables: [{name: app.ids, key: user_id, action: delete}]\ns3: [{bucket: my-bucket, prefix: 'u/{user_id}/'}]\ndisclosure: {" + s + "}\n"
	}
	for name, c := range map[string]struct{ yaml, want string }{
		"exclude column":        {"version: 1\ntables: [{name: app.ids, key: user_id, action: delete, exclude: ['iban; drop']}]\n", `tables[0] (app.ids): exclude[0] "iban; drop": want a column name`},
		"exclude twice":         {"version: 1\ntables: [{name: app.ids, key: user_id, action: delete, exclude: [iban, iban]}]\n", "column iban is listed twice"},
		"accounts exclude":      {"version: 1\naccounts: {table: app.accounts, key: id, email: email, status: status, active: a, deactivated: d, erased: e, last_active: seen, erase_action: delete, exclude: ['Hash']}\n", `accounts (app.accounts): exclude[0] "Hash"`},
		"unknown key":           {disclosure("purposes: [x], lawful_basis: y"), "field lawful_basis not found"},
		"empty purpose":         {disclosure("purposes: [' ']"), "disclosure.purposes[0]: empty"},
		"category twice":        {disclosure("categories: [a, a]"), `disclosure.categories[1]: "a" is listed twice`},
		"recipient newline":     {disclosure(`recipients: ["a\nb"]`), "disclosure.recipients[0]: want one line"},
		"retention control":     {disclosure(`retention: "a\u0000b"`), "disclosure.retention: want text"},
		"provided unknown":      {disclosure("provided_by_person: [app.gone]"), `disclosure.provided_by_person[0]: "app.gone" is neither`},
		"provided bad location": {disclosure("provided_by_person: ['s3://my-bucket/v/{user_id}/']"), "is neither a table"},
		"provided twice":        {disclosure("provided_by_person: [app.ids, app.ids]"), `"app.ids" is listed twice`},
		"disclosure not a map":  {"version: 1\ndisclosure: [a]\n", "cannot unmarshal !!seq into datamap.Disclosure"},
	} {
		m, err := datamap.Parse([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", name, err, c.want)
		}
		if m != nil {
			t.Errorf("%s: a map with an error", name)
		}
	}
}

func TestValidateNamesMissingExcludeColumn(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE SCHEMA app;
		CREATE TABLE app.accounts (id text, email text, status text, seen timestamptz, password_hash text);
		CREATE TABLE app.ids (user_id text, passport_no text);
		CREATE TABLE app.events (user_id text)`); err != nil {
		t.Fatal(err)
	}
	m, err := datamap.Parse([]byte(disclosureYAML))
	if err != nil {
		t.Fatal(err)
	}
	err = m.Validate(ctx, pool)
	if err == nil || !strings.Contains(err.Error(), "table app.ids has no column iban (exclude)") {
		t.Errorf("want the missing exclude column named, got %v", err)
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE app.ids ADD COLUMN iban text; ALTER TABLE app.accounts DROP COLUMN password_hash`); err != nil {
		t.Fatal(err)
	}
	err = m.Validate(ctx, pool)
	if err == nil || !strings.Contains(err.Error(), "accounts: table app.accounts has no column password_hash (exclude)") {
		t.Errorf("want the missing accounts exclude column named, got %v", err)
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE app.accounts ADD COLUMN password_hash text`); err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(ctx, pool); err != nil {
		t.Errorf("valid map refused: %v", err)
	}
}

const erasureYAML = `version: 1
accounts: {table: app.accounts, key: id, email: email, status: status, active: a, deactivated: d, erased: e, last_active: seen, erase_action: anonymize}
tables:
  - {name: app.files, via: {column: project_id, parent: app.projects, parent_key: id}, action: delete}
  - {name: app.projects, via: {column: owner, parent: app.accounts, parent_key: id}, action: delete}
  - name: app.reviews
    key: user_id
    action: anonymize
    anonymize:
      - {column: name, set: fixed, value: "Former customer"}
      - {column: email, set: "null"}
      - {column: ref, set: hash}
  - {name: app.orders, key: user_id, action: retain, hold: {reason: tax law, period: 120mo, since: ordered_at}}
  - {name: app.order_lines, via: {column: order_id, parent: app.orders, parent_key: id}, action: retain, hold: {reason: tax law, period: 30d}}
backups:
  promise: 40d
  locations:
    - {name: postgres-nightly, bucket: lethe-backups, prefix: "postgres/", rotation: 35d}
    - {name: whole, bucket: other-backups, prefix: "", rotation: 1mo}
processors:
  - {name: crm, kind: webhook, follow_up: 45d}
  - {name: stripe, kind: stripe}
`

func TestParseReadsViaAnonymizeHoldsAndBackups(t *testing.T) {
	m, err := datamap.Parse([]byte(erasureYAML))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := m.Table("app.files")
	want := []datamap.Step{{Table: "app.files", Column: "project_id", Refers: "id"}, {Table: "app.projects", Column: "owner"}}
	if got := files.Path(); !slices.Equal(got, want) {
		t.Errorf("app.files path %+v, want %+v", got, want)
	}
	projects, _ := m.Table("app.projects")
	if got := projects.Path(); !slices.Equal(got, []datamap.Step{{Table: "app.projects", Column: "owner"}}) {
		t.Errorf("app.projects (via the accounts table) path %+v: want the owner column to hold the user id", got)
	}
	lines, _ := m.Table("app.order_lines")
	if got := lines.Path(); len(got) != 2 || got[1] != (datamap.Step{Table: "app.orders", Column: "user_id"}) {
		t.Errorf("app.order_lines path %+v", got)
	}
	if _, ok := m.Table("app.gone"); ok {
		t.Error("Table found a table the map lacks")
	}
	// A via table made by hand has no resolved way to the person.
	if p := (datamap.Table{Name: "a.b", Via: &datamap.Via{Column: "c", Parent: "a.p", ParentKey: "id"}}).Path(); p != nil {
		t.Errorf("an unparsed via table has path %+v", p)
	}
	reviews, _ := m.Table("app.reviews")
	if a := reviews.Anonymize; len(a) != 3 || a[0].Set != datamap.SetFixed || a[0].Value == nil || *a[0].Value != "Former customer" ||
		a[1].Set != datamap.SetNull || a[1].Value != nil || a[2].Set != datamap.SetHash {
		t.Errorf("anonymize %+v", a)
	}
	orders, _ := m.Table("app.orders")
	if h := orders.Hold; h == nil || h.Since != "ordered_at" || h.Period != "120mo" {
		t.Errorf("hold %+v", h)
	}
	if b := m.Backups; b == nil || b.Promise != "40d" || len(b.Locations) != 2 ||
		b.Locations[0] != (datamap.BackupLocation{Name: "postgres-nightly", Bucket: "lethe-backups", Prefix: "postgres/", Rotation: "35d"}) || b.Locations[1].Prefix != "" {
		t.Errorf("backups %+v", b)
	}
	if got := m.Processors[0].FollowUpPeriod(); got != "45d" {
		t.Errorf("crm follow-up %q", got)
	}
	if got := m.Processors[1].FollowUpPeriod(); got != "30d" {
		t.Errorf("stripe follow-up %q, want the default 30d", got)
	}

	// The digest is that of the bytes: the same text, the same digest.
	again, _ := datamap.Parse([]byte(erasureYAML))
	other, _ := datamap.Parse([]byte(erasureYAML + "# a comment\n"))
	sum := sha256.Sum256([]byte(erasureYAML))
	if d := m.Digest(); d != hex.EncodeToString(sum[:8]) || again.Digest() != d || other.Digest() == d {
		t.Errorf("digests %s, %s, %s", d, again.Digest(), other.Digest())
	}
	if d := (&datamap.Map{Version: 1}).Digest(); len(d) != 16 || d != (&datamap.Map{Version: 1}).Digest() || d == (&datamap.Map{Version: 2}).Digest() {
		t.Errorf("digest of a map not parsed: %q", d)
	}
}

func TestHoldEndsInCalendarMonthsOrDays(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct{ period, start, want string }{
		{"1mo", "2024-01-31T10:00:00Z", "2024-02-29T10:00:00Z"}, // the last day of a shorter month
		{"120mo", "2015-03-15T00:00:00Z", "2025-03-15T00:00:00Z"},
		{"30d", "2024-02-15T12:00:00Z", "2024-03-16T12:00:00Z"},
		{"1mo", "2024-01-31T23:30:00-02:00", "2024-03-01T01:30:00Z"}, // counted in UTC: 1 Feb 01:30 + 1mo
	} {
		got, err := datamap.Hold{Period: c.period}.Ends(at(c.start))
		if err != nil || !got.Equal(at(c.want)) {
			t.Errorf("%s from %s: %v %v, want %s", c.period, c.start, got, err, c.want)
		}
	}
	for _, bad := range []string{"10bd", "0d", "0mo", "d", "1w", "-1mo", ""} {
		if _, _, err := datamap.HoldLength(bad); err == nil {
			t.Errorf("hold period %q accepted", bad)
		}
	}
}

func TestParseRefusesBadViaAnonymizeHoldsAndBackups(t *testing.T) {
	accounts := "accounts: {table: app.accounts, key: id, email: email, status: status, active: a, deactivated: d, erased: e, last_active: seen, erase_action: delete}\n"
	tables := func(s string) string { return "version: 1\n" + accounts + "tables:\n" + s }
	backups := func(s string) string { return "version: 1\nbackups: " + s + "\n" }
	for name, c := range map[string]struct{ yaml, want string }{
		"key and via":        {tables("  - {name: app.f, key: owner, via: {column: p, parent: app.accounts, parent_key: id}, action: delete}\n"), "key and via"},
		"neither":            {tables("  - {name: app.f, action: delete}\n"), "want key"},
		"via unknown field":  {tables("  - {name: app.f, via: {column: p, parent: app.accounts, parent_key: id, on: x}, action: delete}\n"), "field on not found"},
		"via column":         {tables("  - {name: app.f, via: {column: 'p; drop', parent: app.accounts, parent_key: id}, action: delete}\n"), "via column"},
		"via parent_key":     {tables("  - {name: app.f, via: {column: p, parent: app.accounts, parent_key: ''}, action: delete}\n"), "via parent_key"},
		"unknown parent":     {tables("  - {name: app.f, via: {column: p, parent: app.projects, parent_key: id}, action: delete}\n"), `parent "app.projects" is neither`},
		"accounts other key": {tables("  - {name: app.f, via: {column: p, parent: app.accounts, parent_key: email}, action: delete}\n"), "want its user id column id"},
		"own parent":         {tables("  - {name: app.f, via: {column: p, parent: app.f, parent_key: id}, action: delete}\n"), "the table itself"},
		"cycle": {tables("  - {name: app.a, via: {column: b_id, parent: app.b, parent_key: id}, action: delete}\n" +
			"  - {name: app.b, via: {column: c_id, parent: app.c, parent_key: id}, action: delete}\n" +
			"  - {name: app.c, via: {column: a_id, parent: app.a, parent_key: id}, action: delete}\n"), "a cycle: app.a → app.b → app.c → app.a"},
		"anonymize nothing":   {tables("  - {name: app.r, key: u, action: anonymize}\n"), "needs anonymize"},
		"anonymize on delete": {tables("  - {name: app.r, key: u, action: delete, anonymize: [{column: n, set: hash}]}\n"), "anonymize goes with action anonymize"},
		"column twice":        {tables("  - {name: app.r, key: u, action: anonymize, anonymize: [{column: n, set: hash}, {column: n, set: 'null'}]}\n"), "column n is listed twice"},
		"bad column":          {tables("  - {name: app.r, key: u, action: anonymize, anonymize: [{column: N, set: hash}]}\n"), `column "N"`},
		"fixed no value":      {tables("  - {name: app.r, key: u, action: anonymize, anonymize: [{column: n, set: fixed}]}\n"), "set fixed needs value"},
		"fixed email":         {tables("  - {name: app.r, key: u, action: anonymize, anonymize: [{column: n, set: fixed, value: gone@example.com}]}\n"), "contains @"},
		"value with null":     {tables("  - {name: app.r, key: u, action: anonymize, anonymize: [{column: n, set: 'null', value: x}]}\n"), "a value goes with set: fixed"},
		"unquoted null":       {tables("  - {name: app.r, key: u, action: anonymize, anonymize: [{column: n, set: null}]}\n"), `want "null" (quoted`},
		"unknown set":         {tables("  - {name: app.r, key: u, action: anonymize, anonymize: [{column: n, set: scramble}]}\n"), `set "scramble"`},
		"hold on anonymize":   {tables("  - {name: app.r, key: u, action: anonymize, anonymize: [{column: n, set: hash}], hold: {reason: r, period: 1mo}}\n"), "a hold goes with action retain"},
		"hold business days":  {tables("  - {name: app.o, key: u, action: retain, hold: {reason: tax, period: 10bd}}\n"), `hold period "10bd"`},
		"hold zero":           {tables("  - {name: app.o, key: u, action: retain, hold: {reason: tax, period: 0d}}\n"), `hold period "0d"`},
		"hold no reason":      {tables("  - {name: app.o, key: u, action: retain, hold: {period: 1mo}}\n"), "needs hold"},
		"hold since":          {tables("  - {name: app.o, key: u, action: retain, hold: {reason: tax, period: 1mo, since: 'at or 1=1'}}\n"), "hold since"},
		"retain via deleted": {tables("  - {name: app.l, via: {column: o, parent: app.o, parent_key: id}, action: retain, hold: {reason: tax, period: 1mo}}\n" +
			"  - {name: app.o, key: u, action: delete}\n"), "whose rows erasure deletes"},
		"retain via anonymized link": {tables("  - {name: app.l, via: {column: o, parent: app.o, parent_key: id}, action: retain, hold: {reason: tax, period: 1mo}}\n" +
			"  - {name: app.o, key: u, action: anonymize, anonymize: [{column: id, set: 'null'}]}\n"), "anonymizes a column of the way"},
		"retain via anonymized key": {tables("  - {name: app.l, via: {column: o, parent: app.o, parent_key: id}, action: retain, hold: {reason: tax, period: 1mo}}\n" +
			"  - {name: app.o, key: u, action: anonymize, anonymize: [{column: u, set: 'null'}]}\n"), "anonymizes a column of the way"},
		"no promise":          {backups("{locations: [{name: n, bucket: b-1, prefix: p/, rotation: 35d}]}"), `promise ""`},
		"no locations":        {backups("{promise: 40d}"), "locations: want at least one"},
		"backup name":         {backups("{promise: 40d, locations: [{name: 'Nightly Dump', bucket: b-1, rotation: 35d}]}"), `name "Nightly Dump"`},
		"backup name twice":   {backups("{promise: 40d, locations: [{name: n, bucket: b-1, rotation: 35d}, {name: n, bucket: b-2, rotation: 35d}]}"), `name "n" appears twice`},
		"backup bucket":       {backups("{promise: 40d, locations: [{name: n, bucket: B_1, rotation: 35d}]}"), `bucket "B_1"`},
		"rotation":            {backups("{promise: 40d, locations: [{name: n, bucket: b-1, rotation: 5w}]}"), `rotation "5w"`},
		"backups unknown key": {backups("{promise: 40d, locations: [{name: n, bucket: b-1, rotation: 5d, keep: 3}]}"), "field keep not found"},
		"follow_up":           {"version: 1\nprocessors: [{name: crm, kind: webhook, follow_up: 2w}]\n", `follow_up "2w"`},
		"zero follow_up":      {"version: 1\nprocessors: [{name: crm, kind: webhook, follow_up: 0d}]\n", `follow_up "0d"`},
		"negative rate_limit": {"version: 1\nprocessors: [{name: crm, kind: webhook, rate_limit: -1}]\n", `rate_limit -1`},
		"account email anonymized twice": {"version: 1\naccounts: {table: app.users, key: id, email: email, erase_action: anonymize}\n" +
			"tables: [{name: app.users, key: id, action: anonymize, anonymize: [{column: email, set: hash}]}]\n", `the accounts section's email column`},
	} {
		m, err := datamap.Parse([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", name, err, c.want)
		}
		if m != nil {
			t.Errorf("%s: a map with an error", name)
		}
	}
}

func TestValidateChecksViaAnonymizeAndHoldColumns(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE SCHEMA app;
		CREATE TABLE app.accounts (id text PRIMARY KEY, email text, status text, seen timestamptz);
		CREATE TABLE app.projects (id bigint PRIMARY KEY, owner text);
		CREATE TABLE app.files (id bigint, project_id bigint);
		CREATE TABLE app.reviews (user_id text, name text NOT NULL, email text, ref text);
		CREATE TABLE app.orders (id bigint PRIMARY KEY, user_id text, ordered_at timestamptz NOT NULL);
		CREATE TABLE app.order_lines (order_id bigint)`); err != nil {
		t.Fatal(err)
	}
	m, err := datamap.Parse([]byte(erasureYAML))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(ctx, pool); err != nil {
		t.Fatalf("valid map refused: %v", err)
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE app.files RENAME COLUMN project_id TO project;
		ALTER TABLE app.projects RENAME COLUMN id TO project_id;
		ALTER TABLE app.reviews ALTER COLUMN email SET NOT NULL;
		ALTER TABLE app.reviews ALTER COLUMN ref TYPE bigint USING NULL;
		ALTER TABLE app.reviews DROP COLUMN name;
		ALTER TABLE app.orders ALTER COLUMN ordered_at DROP NOT NULL`); err != nil {
		t.Fatal(err)
	}
	err = m.Validate(ctx, pool)
	for _, want := range []string{
		"table app.files has no column project_id (via)",
		"table app.files: via parent app.projects has no column id",
		"table app.reviews has no column name (anonymize)",
		"table app.reviews: column email is NOT NULL, so anonymize cannot set it null",
		"table app.reviews: column ref is bigint, so anonymize cannot write a pseudonym",
		"table app.orders: hold since column ordered_at may be NULL",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE app.orders DROP COLUMN ordered_at; ALTER TABLE app.orders ADD COLUMN ordered_at text NOT NULL DEFAULT ''`); err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(ctx, pool); err == nil || !strings.Contains(err.Error(), "hold since column ordered_at is text: want a timestamp or date") {
		t.Errorf("want the since column's type refused, got %v", err)
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE app.orders DROP COLUMN ordered_at`); err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(ctx, pool); err == nil || !strings.Contains(err.Error(), "table app.orders has no column ordered_at (hold since)") {
		t.Errorf("want the missing since column named, got %v", err)
	}
}
