package appdb_test

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/appdb"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
)

// setup gives a fresh demo database with two seeded accounts and the demo map.
func setup(t *testing.T) (context.Context, *pgxpool.Pool, *datamap.Map) {
	t.Helper()
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	if err := demo.CreateSchema(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if err := demo.Seed(ctx, pool, nil, demo.SeedOptions{Accounts: 2, SkipObjectUpload: true}); err != nil {
		t.Fatal(err)
	}
	m, err := demo.DataMap()
	if err != nil {
		t.Fatal(err)
	}
	return ctx, pool, m
}

type profile struct{ name, country, bio string }

func readProfile(t *testing.T, ctx context.Context, pool *pgxpool.Pool, id string) profile {
	t.Helper()
	var p profile
	if err := pool.QueryRow(ctx, `SELECT display_name, coalesce(country, ''), coalesce(bio, '') FROM demo.profiles WHERE account_id = $1`, id).Scan(&p.name, &p.country, &p.bio); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDemoDataMapValidatesAndBuildsItsProcessors(t *testing.T) {
	ctx, pool, m := setup(t)
	if err := m.Validate(ctx, pool); err != nil {
		t.Fatalf("demo data map does not fit the demo schema: %v", err)
	}
	for _, name := range []string{"display_name", "country", "bio"} {
		if _, ok := m.Field(name); !ok {
			t.Errorf("field %s missing", name)
		}
	}
	if p, ok := m.Purpose("sale_sharing"); !ok || !p.NoVerification || p.Deadline != "15bd" {
		t.Errorf("sale_sharing = %+v, %v", p, ok)
	}
	env := map[string]string{
		"LETHE_STRIPE_KEY":         "sk_test_fake",
		"LETHE_MAILCHIMP_KEY":      "fake-us6",
		"LETHE_SENDGRID_KEY":       "SG.fake",
		"LETHE_CRM_WEBHOOK_SECRET": "0123456789abcdef-fake-secret",
	}
	for _, p := range m.Processors {
		if !strings.HasPrefix(p.BaseURL, "http://127.0.0.1:9/") {
			t.Errorf("processor %s: base_url %q points somewhere real", p.Name, p.BaseURL)
		}
		if _, ok := env[p.CredentialEnv]; !ok {
			t.Errorf("processor %s: credential_env %q not covered by this test", p.Name, p.CredentialEnv)
		}
	}
	reg, err := processors.NewRegistry(m.Processors, processors.BuildOptions{LookupEnv: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}})
	if err != nil {
		t.Fatalf("registry: %v", err)
	}
	// Every processor a field or purpose names can do what it is named for.
	for _, f := range m.Fields {
		for p := range f.Processors {
			if _, ok := reg.Rectifier(p); !ok {
				t.Errorf("field %s: processor %s cannot rectify", f.Name, p)
			}
		}
	}
	for _, pu := range m.Consent.Purposes {
		for _, p := range pu.Processors {
			if _, ok := reg.ConsentSetter(p); !ok {
				t.Errorf("purpose %s: processor %s cannot change consent", pu.Name, p)
			}
		}
	}
}

func TestApplyCorrectsEveryFieldAndIsHarmlessTwice(t *testing.T) {
	ctx, pool, m := setup(t)
	before := readProfile(t, ctx, pool, "u-1002")
	corr := map[string]string{"display_name": "Ada Lovelace", "country": "GB", "bio": "Analyst.\nPoet."}
	for range 2 {
		changes, err := appdb.Rectify(ctx, pool, m, "u-1001", corr)
		if err != nil {
			t.Fatal(err)
		}
		want := []appdb.FieldChange{
			{Field: "bio", Table: "demo.profiles", Column: "bio", Rows: 1},
			{Field: "country", Table: "demo.profiles", Column: "country", Rows: 1},
			{Field: "display_name", Table: "demo.profiles", Column: "display_name", Rows: 1},
		}
		if len(changes) != len(want) {
			t.Fatalf("changes %+v", changes)
		}
		for i := range want {
			if changes[i] != want[i] {
				t.Errorf("change %d = %+v, want %+v", i, changes[i], want[i])
			}
		}
		if got := readProfile(t, ctx, pool, "u-1001"); got != (profile{"Ada Lovelace", "GB", "Analyst.\nPoet."}) {
			t.Errorf("profile %+v", got)
		}
	}
	if got := readProfile(t, ctx, pool, "u-1002"); got != before {
		t.Errorf("another person's profile changed: %+v -> %+v", before, got)
	}
	// Someone without a profile row: nothing matched, nothing created.
	changes, err := appdb.Rectify(ctx, pool, m, "u-9999", map[string]string{"bio": "x"})
	if err != nil || len(changes) != 1 || changes[0].Rows != 0 {
		t.Errorf("unknown user: %+v %v", changes, err)
	}
}

func TestApplyWritesAllTablesInOneTransaction(t *testing.T) {
	ctx, pool, _ := setup(t)
	m, err := datamap.Parse([]byte(`version: 1
fields:
  - {name: email, table: demo.accounts, key: id, column: email, check: {kind: email}}
  - {name: bio, table: demo.profiles, key: account_id, column: bio, check: {kind: text, max_length: 500}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	// The database refuses the second table's update (demo.accounts is
	// written first): the first must not stay written.
	if _, err := pool.Exec(ctx, `ALTER TABLE demo.profiles ADD CONSTRAINT bio_short CHECK (length(bio) < 20) NOT VALID`); err != nil {
		t.Fatal(err)
	}
	const bio = "A bio that the database finds far too long"
	_, err = appdb.Rectify(ctx, pool, m, "u-1001", map[string]string{"email": "ada.new@example.org", "bio": bio})
	if err == nil {
		t.Fatal("want an error")
	}
	if strings.Contains(err.Error(), bio) || strings.Contains(err.Error(), "ada.new@example.org") {
		t.Errorf("error repeats a value: %v", err)
	}
	t.Logf("the refusal reads: %v", err)
	if !strings.Contains(err.Error(), "bio_short") || !strings.Contains(err.Error(), "23514") {
		t.Errorf("error does not say which constraint: %v", err)
	}
	var email string
	if err := pool.QueryRow(ctx, `SELECT email FROM demo.accounts WHERE id = 'u-1001'`).Scan(&email); err != nil {
		t.Fatal(err)
	}
	if email != demo.Accounts(1)[0].Email {
		t.Errorf("email %q was written though the transaction failed", email)
	}
	// Both tables at once when the database agrees.
	changes, err := appdb.Rectify(ctx, pool, m, "u-1001", map[string]string{"email": "ada.new@example.org", "bio": "short"})
	if err != nil || len(changes) != 2 || changes[0].Table != "demo.accounts" || changes[1].Table != "demo.profiles" {
		t.Fatalf("%+v %v", changes, err)
	}
}

func TestApplyRefusesEachBadFieldAndWritesNothing(t *testing.T) {
	ctx, pool, m := setup(t)
	before := readProfile(t, ctx, pool, "u-1001")
	values := map[string]string{
		"display_name": strings.Repeat("Ω", 101),
		"country":      "Germany",
		"bio":          "Fine, this one alone would pass.",
		"nickname":     "Zed the Unknown",
		"Email; DROP":  "zed@example.com",
	}
	_, err := appdb.Rectify(ctx, pool, m, "u-1001", values)
	var refused *appdb.CorrectionRefused
	if !errors.As(err, &refused) {
		t.Fatalf("want *Refused, got %v", err)
	}
	want := map[string]string{
		"display_name": "too long: at most 100 characters",
		"country":      "want a country code such as DE",
		"nickname":     "not a field that can be corrected",
		"Email; DROP":  "not a field that can be corrected",
	}
	if len(refused.Fields) != len(want) {
		t.Errorf("refused %v", refused.Fields)
	}
	for f, reason := range want {
		if !strings.Contains(refused.Fields[f], reason) {
			t.Errorf("%s: reason %q, want %q", f, refused.Fields[f], reason)
		}
	}
	for f, v := range values {
		if strings.Contains(err.Error(), v) {
			t.Errorf("error repeats the value of %s: %v", f, err)
		}
	}
	if got := readProfile(t, ctx, pool, "u-1001"); got != before {
		t.Errorf("written despite refusal: %+v -> %+v", before, got)
	}
	if _, err := appdb.Rectify(ctx, pool, m, "u-1001", nil); err == nil {
		t.Error("no corrections: want an error")
	}
	if _, err := appdb.Rectify(ctx, pool, m, "", map[string]string{"bio": "x"}); err == nil {
		t.Error("no user: want an error")
	}
}

func TestNoErrorRepeatsTheValue(t *testing.T) {
	ctx, pool, m := setup(t)
	bad := map[string][]string{
		"display_name": {strings.Repeat("Quixotic ", 20), "Quixote\x00Null", "Quixote\x1bEscape", "Quixote\xff\xfe"},
		"country":      {"Quixotia", "qx", "XK", "Q1"},
		"bio":          {strings.Repeat("Quixotic bio ", 50), "Quixote\aBell"},
	}
	for field, values := range bad {
		for _, v := range values {
			_, err := appdb.Rectify(ctx, pool, m, "u-1001", map[string]string{field: v})
			var refused *appdb.CorrectionRefused
			if !errors.As(err, &refused) || refused.Fields[field] == "" {
				t.Errorf("%s = %q: want a refusal, got %v", field, v, err)
				continue
			}
			if strings.Contains(err.Error(), v) || strings.Contains(refused.Fields[field], strings.TrimSpace(v)) {
				t.Errorf("%s: error repeats the value: %v", field, err)
			}
		}
	}
	// Database errors too: a column of another type refuses the value.
	if _, err := pool.Exec(ctx, `ALTER TABLE demo.profiles ADD COLUMN score integer`); err != nil {
		t.Fatal(err)
	}
	m2, err := datamap.Parse([]byte("version: 1\nfields: [{name: score, table: demo.profiles, key: account_id, column: score, check: {kind: text}}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	const v = "Quixotic-not-a-number"
	_, err = appdb.Rectify(ctx, pool, m2, "u-1001", map[string]string{"score": v})
	if err == nil || strings.Contains(err.Error(), v) {
		t.Errorf("database error repeats the value or is missing: %v", err)
	}
	t.Logf("the database error reads: %v", err)
}

func TestProcessorFields(t *testing.T) {
	m, err := demo.DataMap()
	if err != nil {
		t.Fatal(err)
	}
	got := appdb.CorrectedProcessorFields(m, map[string]string{"display_name": "Ada L.", "country": "GB", "unknown": "x"})
	want := map[string]map[string]string{
		"stripe":    {"name": "Ada L."},
		"mailchimp": {"FNAME": "Ada L."},
		"crm":       {"display_name": "Ada L."},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for p, fields := range want {
		if !maps.Equal(got[p], fields) {
			t.Errorf("%s: got %v, want %v", p, got[p], fields)
		}
	}
}

func TestRecordConsentUpsertsOnceAndKeepsTheNewest(t *testing.T) {
	ctx, pool, m := setup(t)
	type row struct {
		granted bool
		source  string
		at      time.Time
	}
	read := func(purpose string) (row, int) {
		t.Helper()
		var r row
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) OVER (), granted, source, changed_at FROM demo.marketing_consents WHERE account_id = 'u-1001' AND purpose = $1`, purpose).Scan(&n, &r.granted, &r.source, &r.at); err != nil {
			t.Fatal(err)
		}
		return r, n
	}
	at := time.Now().Add(time.Minute).UTC().Truncate(time.Microsecond)
	for range 2 {
		// Withdraws the seeded grant, then the same again.
		if err := appdb.RecordConsent(ctx, pool, m, "u-1001", "marketing_email", false, "request r-1", at); err != nil {
			t.Fatal(err)
		}
		if r, n := read("marketing_email"); n != 1 || r.granted || r.source != "request r-1" || !r.at.Equal(at) {
			t.Errorf("marketing_email: %+v, %d rows", r, n)
		}
		// A purpose with no row yet is inserted.
		if err := appdb.RecordConsent(ctx, pool, m, "u-1001", "sale_sharing", false, "request r-2", at); err != nil {
			t.Fatal(err)
		}
		if r, n := read("sale_sharing"); n != 1 || r.granted || r.source != "request r-2" {
			t.Errorf("sale_sharing: %+v, %d rows", r, n)
		}
	}
	// A late retry of an older change does not undo the newer one.
	if err := appdb.RecordConsent(ctx, pool, m, "u-1001", "marketing_email", true, "request r-0", at.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if r, _ := read("marketing_email"); r.granted || r.source != "request r-1" {
		t.Errorf("older change won: %+v", r)
	}
	// The other person's consent is untouched.
	var granted bool
	if err := pool.QueryRow(ctx, `SELECT granted FROM demo.marketing_consents WHERE account_id = 'u-1002' AND purpose = 'marketing_email'`).Scan(&granted); err != nil || !granted {
		t.Errorf("u-1002: %v %v", granted, err)
	}
	if err := appdb.RecordConsent(ctx, pool, m, "u-1001", "telemarketing", false, "request r-3", at); err == nil || !strings.Contains(err.Error(), "telemarketing") {
		t.Errorf("unknown purpose: %v", err)
	}
	noConsent := *m
	noConsent.Consent = nil
	if err := appdb.RecordConsent(ctx, pool, &noConsent, "u-1001", "marketing_email", false, "request r-3", at); err == nil {
		t.Error("no consent section: want an error")
	}
}
