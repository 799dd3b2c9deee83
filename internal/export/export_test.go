package export_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/logging"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/appdb"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/export"
	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/s3local"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
)

const exportBucket = "lethe-exports"

// env is a seeded demo application: PostgreSQL, an in-memory S3, its map.
type env struct {
	db     *pgxpool.Pool
	s3     *s3.Client
	srv    *s3local.Server
	dm     *datamap.Map
	people []demo.Account
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	if err := demo.CreateSchema(ctx, pool); err != nil {
		t.Fatal(err)
	}
	srv, err := s3local.StartMemory("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	client := newClient(t, srv.URL)
	for _, b := range []string{demo.Bucket, exportBucket} {
		if err := objectstore.EnsureBucket(ctx, client, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := demo.Seed(ctx, pool, client, demo.SeedOptions{Accounts: 3, FileBytes: 3000}); err != nil {
		t.Fatal(err)
	}
	dm, err := demo.DataMap()
	if err != nil {
		t.Fatal(err)
	}
	if err := dm.Validate(ctx, pool); err != nil {
		t.Fatalf("the demo map does not fit the demo schema: %v", err)
	}
	return &env{db: pool, s3: client, srv: srv, dm: dm, people: demo.Accounts(3)}
}

func newClient(t testing.TB, url string) *s3.Client {
	t.Helper()
	c, err := objectstore.New(context.Background(), objectstore.Options{
		Endpoint: url, Region: s3local.Region, AccessKeyID: s3local.AccessKeyID,
		SecretAccessKey: s3local.SecretAccessKey, UsePathStyle: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The in-process server sends no checksums; the SDK would warn on
	// every read.
	return s3.New(c.Options(), func(o *s3.Options) { o.Logger = logging.Nop{} })
}

func put(t testing.TB, c *s3.Client, bucket, key string, body []byte) {
	t.Helper()
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
}

func get(t testing.TB, c *s3.Client, bucket, key string) []byte {
	t.Helper()
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// archive is an unpacked bundle: every entry's bytes by name.
type archive struct {
	entries map[string][]byte
	methods map[string]uint16
	order   []string
}

func openBundle(t *testing.T, c *s3.Client, key string) archive {
	t.Helper()
	raw := get(t, c, exportBucket, key)
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatalf("the bundle is not a ZIP archive: %v", err)
	}
	a := archive{entries: map[string][]byte{}, methods: map[string]uint16{}}
	for _, f := range zr.File {
		if !filepath.IsLocal(f.Name) || strings.Contains(f.Name, `\`) {
			t.Errorf("entry %q would unpack outside the archive's folder", f.Name)
		}
		if _, dup := a.entries[f.Name]; dup {
			t.Errorf("entry %q twice", f.Name)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc) // checks the CRC-32 too
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		a.entries[f.Name] = b
		a.methods[f.Name] = f.Method
		a.order = append(a.order, f.Name)
	}
	return a
}

// rows decodes a data/postgres JSON file.
func (a archive) rows(t *testing.T, table string) []map[string]any {
	t.Helper()
	b, ok := a.entries["data/postgres/"+table+".json"]
	if !ok {
		t.Fatalf("no file for table %s; entries: %q", table, a.order)
	}
	var rows []map[string]any
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatalf("%s: not a JSON array of objects: %v", table, err)
	}
	return rows
}

// expectedRows reads what PostgreSQL holds for the person, minus exclude.
// personWhere is the condition that finds the person ($1) in a table of the
// map: its key, or its via chain as nested IN subqueries.
func personWhere(tb datamap.Table) string {
	path := tb.Path()
	q := func(name string) string { return pgx.Identifier(strings.SplitN(name, ".", 2)).Sanitize() }
	cond := q(path[len(path)-1].Column) + " = $1"
	for i := len(path) - 2; i >= 0; i-- {
		cond = fmt.Sprintf("%s IN (SELECT %s FROM %s WHERE %s)", q(path[i].Column), q(path[i].Refers), q(path[i+1].Table), cond)
	}
	return cond
}

// expectedRows reads the rows of table where the condition where (on $1,
// the user id) holds.
func expectedRows(t *testing.T, db *pgxpool.Pool, table, where, userID string, exclude []string) []map[string]any {
	t.Helper()
	ident := pgx.Identifier(strings.SplitN(table, ".", 2)).Sanitize()
	rows, err := db.Query(context.Background(), fmt.Sprintf("SELECT row_to_json(t)::text FROM %s t WHERE %s", ident, where), userID)
	if err != nil {
		t.Fatal(err)
	}
	texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, s := range texts {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatal(err)
		}
		for _, c := range exclude {
			delete(m, c)
		}
		out = append(out, m)
	}
	return out
}

func sameRows(a, b []map[string]any) bool {
	key := func(rows []map[string]any) []string {
		var out []string
		for _, r := range rows {
			j, _ := json.Marshal(r) // map keys sorted
			out = append(out, string(j))
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}

// listKeys lists every key under prefix.
func listKeys(t *testing.T, c *s3.Client, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

// record builds a processor record.
func record(kind, id, data string) processors.Record {
	return processors.Record{Kind: kind, ID: id, Data: json.RawMessage(data)}
}

func TestExportSubjectAccessBundle(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	person, other := e.people[0], e.people[1]

	// Files beside the seeded ones: an incompressible one (stored, not
	// deflated) and keys that would unpack outside the archive's folder.
	random := make([]byte, 300<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	randomKey := "projects/" + person.ID + "/photos/holiday.jpg"
	put(t, e.s3, demo.Bucket, randomKey, random)
	put(t, e.s3, demo.Bucket, "projects/"+person.ID+"/x/../../../etc/passwd", []byte("not really"))
	put(t, e.s3, demo.Bucket, "projects/"+person.ID+"//double\\slash.txt", []byte("odd key"))
	put(t, e.s3, demo.Bucket, "projects/"+person.ID+"/empty.txt", nil)

	stripeCalls := 0
	m, err := export.ExportSubject(ctx, export.Options{
		DB: e.db, S3: e.s3, Map: e.dm, UserID: person.ID,
		Bucket: exportBucket, Key: "exports/req-1.zip",
		Processors: map[string]func(processors.ExportWriter) error{
			"stripe": func(w processors.ExportWriter) error {
				stripeCalls++
				if err := w.WriteRecord(ctx, record("stripe.customer", "cus_1", `{"id":"cus_1","name":"`+person.Name+`"}`)); err != nil {
					return err
				}
				return w.WriteRecord(ctx, record("stripe.charge", "ch_1", `{"id":"ch_1","amount":1900}`))
			},
			"crm": func(w processors.ExportWriter) error {
				if err := w.WriteRecord(ctx, record("crm.contact", "c-1", `{"id":"c-1"}`)); err != nil {
					return err
				}
				return &processors.Error{Processor: "crm", Action: processors.ActionExport, Kind: processors.KindRetryable, Status: 503}
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if stripeCalls != 1 {
		t.Errorf("stripe export called %d times", stripeCalls)
	}
	head, err := e.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(exportBucket), Key: aws.String("exports/req-1.zip")})
	if err != nil {
		t.Fatal(err)
	}
	if head.ServerSideEncryption != types.ServerSideEncryptionAes256 {
		t.Errorf("bundle encryption %q, want AES256", head.ServerSideEncryption)
	}
	a := openBundle(t, e.s3, "exports/req-1.zip")

	// Every row of the person, in every table, and nothing else.
	check := func(table, key, where string, exclude []string) {
		got := a.rows(t, table)
		want := expectedRows(t, e.db, table, where, person.ID, exclude)
		if len(want) == 0 {
			t.Errorf("%s: the seed gave the person no rows", table)
		}
		if !sameRows(got, want) {
			t.Errorf("%s: bundle rows\n%v\nwant\n%v", table, got, want)
		}
		for _, r := range got {
			if key != "" && r[key] != person.ID { // a via table has no column naming the person
				t.Errorf("%s: a row of %v", table, r[key])
			}
		}
	}
	check("demo.accounts", "id", `"id" = $1`, []string{"password_hash"})
	for _, tb := range e.dm.Tables {
		check(tb.Name, tb.Key, personWhere(tb), tb.Exclude)
	}
	if acc := a.rows(t, "demo.accounts"); len(acc) != 1 || acc[0]["email"] != person.Email {
		t.Errorf("account row %v", acc)
	}
	if p := a.rows(t, "demo.profiles"); len(p) != 1 || p[0]["display_name"] != person.Name || p[0]["country"] != "DE" {
		t.Errorf("profile %v", p)
	}
	// Rows come in primary-key order.
	if p := a.rows(t, "demo.projects"); len(p) != 2 || p[0]["id"].(float64) > p[1]["id"].(float64) {
		t.Errorf("projects %v", p)
	}

	// The excluded column is nowhere: not as a key, not as a value.
	secret := demo.FakePasswordHash(person.ID)
	for name, b := range a.entries {
		if bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte("argon2id")) {
			t.Errorf("%s discloses the password hash", name)
		}
		if strings.HasPrefix(name, "data/") && bytes.Contains(b, []byte(`"password_hash"`)) {
			t.Errorf("%s holds the excluded column", name)
		}
		// Nothing of another person.
		for _, o := range e.people[1:] {
			if bytes.Contains(b, []byte(o.ID)) || bytes.Contains(b, []byte(o.Email)) || bytes.Contains(b, []byte(o.Name)) {
				t.Errorf("%s holds data of %s", name, o.ID)
			}
		}
		if strings.Contains(name, other.ID) {
			t.Errorf("entry %s is another person's", name)
		}
	}

	// Every file, byte for byte, and nothing but the person's.
	var keys []string
	for _, loc := range e.dm.S3 {
		prefix, _ := loc.PrefixFor(person.ID)
		keys = append(keys, listKeys(t, e.s3, loc.Bucket, prefix)...)
	}
	if len(keys) != 2*3+1+4 {
		t.Fatalf("%d objects seeded for the person: %q", len(keys), keys)
	}
	byKey := map[string]export.File{}
	for _, f := range m.Files {
		byKey[f.Key] = f
	}
	fileEntries := 0
	for name := range a.entries {
		if strings.HasPrefix(name, "files/") {
			fileEntries++
		}
	}
	if fileEntries != len(keys) || len(m.Files) != len(keys) {
		t.Errorf("%d file entries, %d in the manifest, want %d", fileEntries, len(m.Files), len(keys))
	}
	for _, k := range keys {
		f, ok := byKey[k]
		if !ok {
			t.Errorf("object %s missing from the manifest", k)
			continue
		}
		want := get(t, e.s3, demo.Bucket, k)
		got, ok := a.entries[f.Path]
		if !ok || !bytes.Equal(got, want) {
			t.Errorf("object %s: entry %s differs (%d bytes, want %d)", k, f.Path, len(got), len(want))
		}
		sum := sha256.Sum256(want)
		if f.SHA256 != hex.EncodeToString(sum[:]) || f.Size != int64(len(want)) || f.Bucket != demo.Bucket {
			t.Errorf("object %s: manifest %+v", k, f)
		}
	}
	if f := byKey[randomKey]; f.Path != "files/"+demo.Bucket+"/"+randomKey || a.methods[f.Path] != zip.Store {
		t.Errorf("incompressible file: path %s, method %d; want stored as is", f.Path, a.methods[f.Path])
	}
	if f := byKey["projects/"+person.ID+"/1/file-1.txt"]; a.methods[f.Path] != zip.Deflate {
		t.Errorf("text file %s not deflated", f.Path)
	}
	if f := byKey["projects/"+person.ID+"/x/../../../etc/passwd"]; f.Path != "files/"+demo.Bucket+"/projects/"+person.ID+"/x/%2E%2E/%2E%2E/%2E%2E/etc/passwd" {
		t.Errorf("dot-dot key stored as %q", f.Path)
	}

	// Processors: records as a JSON array; a failure is a gap, and what was
	// written before it is kept.
	var recs []processors.Record
	if err := json.Unmarshal(a.entries["data/processors/stripe.json"], &recs); err != nil || len(recs) != 2 || recs[1].Kind != "stripe.charge" || recs[0].ID != "cus_1" {
		t.Errorf("stripe records %+v (%v)", recs, err)
	}
	if err := json.Unmarshal(a.entries["data/processors/crm.json"], &recs); err != nil || len(recs) != 1 {
		t.Errorf("crm records %+v (%v)", recs, err)
	}

	// The manifest in the archive is the one returned.
	var mf export.Manifest
	if err := json.Unmarshal(a.entries["manifest.json"], &mf); err != nil {
		t.Fatal(err)
	}
	gotJSON, _ := json.Marshal(mf)
	wantJSON, _ := json.Marshal(m)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("manifest.json\n%s\nreturned\n%s", gotJSON, wantJSON)
	}
	var raw map[string]any
	_ = json.Unmarshal(a.entries["manifest.json"], &raw)
	for _, field := range []string{"schema", "generated_at", "portability", "counts", "sources", "files", "exclusions", "gaps"} {
		if _, ok := raw[field]; !ok {
			t.Errorf("manifest.json has no %s", field)
		}
	}
	if m.Schema != export.ManifestSchema || m.Portability || time.Since(m.GeneratedAt) > time.Minute {
		t.Errorf("manifest head %+v", m)
	}
	wantRows := 1
	for _, tb := range e.dm.Tables {
		wantRows += len(expectedRows(t, e.db, tb.Name, personWhere(tb), person.ID, nil))
	}
	if c := m.Counts; c.Rows != wantRows || c.Files != len(keys) || c.Records != 3 || c.Sources != 1+len(e.dm.Tables)+len(e.dm.S3)+2 || c.Gaps != 3 || c.Exclusions != 1 {
		t.Errorf("counts %+v, want %d rows", c, wantRows)
	}
	if want := (export.Exclusion{Source: "demo.accounts", Column: "password_hash", Reason: "never disclosed"}); len(m.Exclusions) != 1 || m.Exclusions[0] != want {
		t.Errorf("exclusions %+v", m.Exclusions)
	}
	gaps := map[string]string{}
	for _, g := range m.Gaps {
		gaps[g.Source] = g.Reason
	}
	if !strings.Contains(gaps["crm"], "HTTP 503") || !strings.Contains(gaps["crm"], "after 1 records") ||
		!strings.Contains(gaps["mailchimp"], "no automatic export") || !strings.Contains(gaps["sendgrid-marketing"], "no automatic export") {
		t.Errorf("gaps %+v", m.Gaps)
	}
	for _, s := range m.Sources {
		if s.Complete != (s.Name != "crm") {
			t.Errorf("source %s complete = %v", s.Name, s.Complete)
		}
	}
	if sum, _ := json.Marshal(m.Summary()); bytes.Contains(sum, []byte(person.ID)) || bytes.Contains(sum, []byte(person.Email)) {
		t.Errorf("the summary names the person: %s", sum)
	}

	// The index: contents, Art. 15 sections, exclusions and gaps, offline.
	index := string(a.entries["index.html"])
	st := e.dm.Statement()
	for _, want := range []string{
		"What this archive contains", `href="data/postgres/demo.profiles.json"`, "demo.profiles", wantRowsText(wantRows),
		"Why we process your data", htmlText(st.Purposes[0]),
		"Categories of personal data", htmlText(st.Categories[0]),
		"Who receives your data", htmlText(st.Recipients[0]), "<li>stripe</li>", "<li>crm</li>",
		"How long we keep it", htmlText(st.Retention[:60]),
		"Where the data came from", htmlText(st.Sources[:60]),
		"Your rights", htmlText(datamap.DefaultRights[:80]),
		"Left out: <code>demo.accounts.password_hash</code> – never disclosed",
		"What could not be included", "<code>mailchimp</code>: this processor has no automatic export", "HTTP 503",
		`href="files/lethe-app-data/projects/` + person.ID + `/x/%252E%252E/`,
	} {
		if !strings.Contains(index, want) {
			t.Errorf("index.html lacks %q", want)
		}
	}
	for _, external := range []string{"<script", "<link", "src=", "url(", "http://", "https://", "@import"} {
		if strings.Contains(index, external) {
			t.Errorf("index.html refers to something outside the archive: %q", external)
		}
	}
	if !slices.Contains(a.order, "index.html") || !slices.Contains(a.order, "manifest.json") {
		t.Errorf("entries %q", a.order)
	}
}

func wantRowsText(n int) string { return fmt.Sprintf("%d database rows", n) }

// htmlText is s as html/template writes it.
func htmlText(s string) string {
	return strings.NewReplacer("'", "&#39;", "\"", "&#34;", "&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func TestExportSubjectPortabilityHoldsOnlyProvidedData(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	person := e.people[2]
	called := false
	m, err := export.ExportSubject(ctx, export.Options{
		DB: e.db, S3: e.s3, Map: e.dm, UserID: person.ID,
		Bucket: exportBucket, Key: "exports/req-2.zip", Portability: true,
		Processors: map[string]func(processors.ExportWriter) error{
			"stripe": func(processors.ExportWriter) error { called = true; return nil },
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if called {
		t.Error("a processor was asked for a portability bundle")
	}
	a := openBundle(t, e.s3, "exports/req-2.zip")
	var want []string
	for _, tb := range []string{"demo.profiles", "demo.projects", "demo.project_files", "demo.project_comments", "demo.reviews", "demo.support_tickets"} {
		want = append(want, "data/postgres/"+tb+".json")
		table, _ := e.dm.Table(tb)
		if rows := a.rows(t, tb); len(rows) == 0 || !sameRows(rows, expectedRows(t, e.db, tb, personWhere(table), person.ID, nil)) {
			t.Errorf("%s: %v", tb, rows)
		}
	}
	for _, k := range listKeys(t, e.s3, demo.Bucket, "projects/"+person.ID+"/") {
		want = append(want, "files/"+demo.Bucket+"/"+k)
		if !bytes.Equal(a.entries["files/"+demo.Bucket+"/"+k], get(t, e.s3, demo.Bucket, k)) {
			t.Errorf("file %s differs", k)
		}
	}
	want = append(want, "index.html", "manifest.json")
	got := slices.Clone(a.order)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("portability entries\n%q\nwant\n%q", got, want)
	}
	if !m.Portability || m.Counts.Records != 0 || m.Counts.Files != 6 || len(m.Gaps) != 0 || len(m.Exclusions) != 0 {
		t.Errorf("manifest %+v", m.Summary())
	}
	for _, s := range m.Sources {
		if s.Name == "demo.id_documents" || s.Name == "demo.accounts" || strings.Contains(s.Name, "id-documents") || s.Kind == export.KindProcessor {
			t.Errorf("source %s in a portability bundle", s.Name)
		}
	}
	index := string(a.entries["index.html"])
	for _, wantText := range []string{"you provided to us", "GDPR Art. 20", "Why we process your data", "Your rights"} {
		if !strings.Contains(index, wantText) {
			t.Errorf("index.html lacks %q", wantText)
		}
	}
}

func TestExportSubjectLeavesNothingOnFailure(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	person := e.people[0]

	// The map excludes a column the schema no longer has (renamed, say):
	// the export stops rather than disclose it under its new name.
	dm, _ := demo.DataMap()
	dm.Tables[3].Exclude = []string{"national_id"}
	_, err := export.ExportSubject(ctx, export.Options{DB: e.db, S3: e.s3, Map: dm, UserID: person.ID, Bucket: exportBucket, Key: "exports/bad.zip"})
	if err == nil || !strings.Contains(err.Error(), "table "+dm.Tables[3].Name+" has no column national_id") {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), person.ID) {
		t.Errorf("the error names the person: %v", err)
	}
	// A processor whose records are not JSON is a gap, not a failure.
	m, err := export.ExportSubject(ctx, export.Options{DB: e.db, S3: e.s3, Map: e.dm, UserID: person.ID, Bucket: exportBucket, Key: "exports/ok.zip",
		Processors: map[string]func(processors.ExportWriter) error{
			"stripe": func(w processors.ExportWriter) error { return w.WriteRecord(ctx, record("x", "", "{not json")) },
		}})
	if err != nil || len(m.Gaps) == 0 || m.Gaps[0].Source != "stripe" || !strings.Contains(m.Gaps[0].Reason, "not valid JSON") {
		t.Errorf("invalid records: %v, gaps %+v", err, m.Gaps)
	}
	// A cancelled export leaves no object and no upload behind.
	cctx, cancel := context.WithCancel(ctx)
	_, err = export.ExportSubject(cctx, export.Options{DB: e.db, S3: e.s3, Map: e.dm, UserID: person.ID, Bucket: exportBucket, Key: "exports/cancelled.zip",
		Processors: map[string]func(processors.ExportWriter) error{
			"stripe": func(processors.ExportWriter) error { cancel(); return nil },
		}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	for _, key := range []string{"exports/bad.zip", "exports/cancelled.zip"} {
		if _, err := e.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(exportBucket), Key: aws.String(key)}); err == nil {
			t.Errorf("%s exists after a failed export", key)
		}
	}
	ups, err := e.s3.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(exportBucket)})
	if err != nil || len(ups.Uploads) != 0 {
		t.Errorf("uploads left: %v (%v)", ups, err)
	}
}

func TestErrorsDoNotNameThePerson(t *testing.T) {
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	if _, err := pool.Exec(ctx, `CREATE SCHEMA app; CREATE TABLE app.numbers (owner bigint, n int)`); err != nil {
		t.Fatal(err)
	}
	const id = "ada.lovelace@example.com"
	b := export.NewBundle(io.Discard)
	// PostgreSQL quotes a value it cannot read as the key's type.
	err := b.AddTable(ctx, pool, datamap.Table{Name: "app.numbers", Key: "owner"}, appdb.Person{UserID: id})
	if err == nil || strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), "22P02") {
		t.Errorf("table error: %v", err)
	}

	srv, err := s3local.StartMemory("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, srv.URL)
	if err := objectstore.EnsureBucket(ctx, c, "app-data"); err != nil {
		t.Fatal(err)
	}
	_ = srv.Close()
	// The SDK's own message holds the request URL, with the prefix.
	err = export.NewBundle(io.Discard).AddObjects(ctx, c, datamap.Location{Bucket: "app-data", Prefix: "users/{user_id}/"}, "u-4711")
	if err == nil || strings.Contains(err.Error(), "u-4711") || !strings.Contains(err.Error(), "s3://app-data/users/{user_id}/") {
		t.Errorf("S3 error: %v", err)
	}
}
