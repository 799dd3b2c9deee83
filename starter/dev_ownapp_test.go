//go:build !nodev

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/s3local"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
	"github.com/lethe-privacy/lethe/internal/testenv/shopapp"
	"github.com/lethe-privacy/lethe/internal/wiring"
)

// `starter dev` on an application of one's own (the bookshop, which shares
// nothing with the demo): its map and database given, dev creates and seeds
// nothing in that database, says what the map covers, and erases a person
// for real, every version and delete marker of their files in a versioned
// bucket included; with dev's own S3 and with an S3 of one's own.
func TestDevRunsOnAnotherApplication(t *testing.T) {
	for _, external := range []bool{false, true} {
		name := "dev's own S3"
		if external {
			name = "LETHE_S3_ENDPOINT"
		}
		t.Run(name, func(t *testing.T) { testDevOnTheShop(t, external) })
	}
}

func testDevOnTheShop(t *testing.T, externalS3 bool) {
	ctx := context.Background()
	appURL := pgtest.NewDatabase(t)
	shop, err := pgxpool.New(ctx, appURL)
	if err != nil {
		t.Fatal(err)
	}
	defer shop.Close()
	mapFile := filepath.Join(t.TempDir(), "shop.yaml")
	if err := os.WriteFile(mapFile, shopapp.DataMapYAML(), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"LETHE_DATABASE_URL":     pgtest.NewDatabase(t),
		"LETHE_APP_DATABASE_URL": appURL,
		"LETHE_DATA_MAP":         mapFile,
		"LETHE_API_LISTEN":       "127.0.0.1:0", // the listener says which port (st.apiURL)
		"LETHE_LOG_LEVEL":        "error",
		// Metrics on ports of their own, never a running dev stack's.
		"LETHE_METRICS_ADDR":     "127.0.0.1:0",
		"LETHE_API_METRICS_ADDR": "127.0.0.1:0",
	}

	// The shop exists before dev starts: its rows, and with an S3 of its
	// own, its versioned bucket of avatars.
	var customers []shopapp.Customer
	var external *s3.Client
	if externalS3 {
		srv, err := s3local.StartMemory("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		env["LETHE_S3_ENDPOINT"], env["LETHE_S3_PATH_STYLE"], env["LETHE_S3_REGION"] = srv.URL, "true", s3local.Region
		env["LETHE_S3_ACCESS_KEY_ID"], env["LETHE_S3_SECRET_ACCESS_KEY"] = s3local.AccessKeyID, s3local.SecretAccessKey
		if external, err = objectstore.New(ctx, objectstore.Options{Endpoint: srv.URL, Region: s3local.Region,
			AccessKeyID: s3local.AccessKeyID, SecretAccessKey: s3local.SecretAccessKey, UsePathStyle: true}); err != nil {
			t.Fatal(err)
		}
		customers, err = shopapp.Seed(ctx, shop, external, 3)
		if err != nil {
			t.Fatal(err)
		}
	} else if customers, err = shopapp.Seed(ctx, shop, nil, 3); err != nil {
		t.Fatal(err)
	}
	before := databaseShape(t, shop)

	cfg, err := config.FromMap(env)
	if err != nil {
		t.Fatal(err)
	}
	f := devFixture{cfg: cfg, opt: devOptions{Dir: t.TempDir(), TemporalPort: freePort(t), UIPort: freePort(t),
		S3Addr: "127.0.0.1:0", SeedAccounts: 3, Sandboxes: true}}
	st := f.start(t)
	defer st.Stop()
	if after := databaseShape(t, shop); after != before {
		t.Fatalf("dev changed the application database:\nbefore %s\nafter  %s", before, after)
	}

	objects, err := wiring.Objects(ctx, st.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if externalS3 {
		if st.s3 != nil {
			t.Fatal("dev started an S3 of its own beside LETHE_S3_ENDPOINT")
		}
		// Dev creates nothing in someone else's S3: the missing export bucket is reported.
		if _, err := external.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(st.cfg.S3ExportBucket)}); err == nil {
			t.Fatal("dev created a bucket in the S3 of LETHE_S3_ENDPOINT")
		}
		if len(st.missingBuckets) != 1 || st.missingBuckets[0] != st.cfg.S3ExportBucket {
			t.Fatalf("missing buckets %v, want the export bucket", st.missingBuckets)
		}
	} else {
		// Dev's own S3 made the bucket the map names, and versions it.
		if _, err := objects.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(shopapp.Bucket)}); err != nil {
			t.Fatalf("the map's bucket was not created in dev's S3: %v", err)
		}
		if _, err := objects.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(shopapp.Bucket),
			VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
			t.Fatalf("PutBucketVersioning on dev's S3: %v", err)
		}
		for _, c := range customers {
			for _, body := range []string{"first avatar", "second avatar"} {
				putObject(t, objects, shopapp.Bucket, c.AvatarKey, body)
			}
			if _, err := objects.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(shopapp.Bucket), Key: aws.String(c.AvatarKey)}); err != nil {
				t.Fatal(err)
			}
			putObject(t, objects, shopapp.Bucket, fmt.Sprintf("avatars/%d/banner.png", c.ID), "banner")
		}
	}
	person, other := customers[0], customers[1]
	prefix := func(c shopapp.Customer) string { return fmt.Sprintf("avatars/%d/", c.ID) }
	if n := countVersions(t, objects, prefix(person)); n != 4 {
		t.Fatalf("the person has %d object versions and markers before the erasure, want 4", n)
	}
	otherVersions := countVersions(t, objects, prefix(other))

	var welcome strings.Builder
	st.printWelcome(&welcome)
	for _, want := range []string{"Nothing was created or seeded", "shop.customers", "shop.newsletter_signups",
		"s3://kestrel-uploads/avatars/{user_id}/", "<shop.customers.id>", "<shop.customers.email>", "go run ./starter outbox"} {
		if !strings.Contains(welcome.String(), want) {
			t.Errorf("the welcome lacks %q:\n%s", want, welcome.String())
		}
	}
	if strings.Contains(welcome.String(), "demo") {
		t.Errorf("the welcome speaks of the demo:\n%s", welcome.String())
	}

	id := postRequest(t, st, fmt.Sprintf(`{"type":"erasure","subject":{"user_id":%q,"email":%q},"jurisdiction":"gdpr","verified":true}`, person.UserID(), person.Email))
	done := waitCompleted(t, st, id)
	t.Logf("receipt: %v", done["outcome"])

	if n := countVersions(t, objects, prefix(person)); n != 0 {
		t.Errorf("%d object versions and delete markers of the person left", n)
	}
	if n := countVersions(t, objects, prefix(other)); n != otherVersions {
		t.Errorf("another customer has %d object versions, want %d", n, otherVersions)
	}
	var email string
	var addresses, signups int
	if err := shop.QueryRow(ctx, `SELECT email, (SELECT count(*) FROM shop.addresses WHERE customer_id = $1),
		(SELECT count(*) FROM shop.newsletter_signups WHERE lower(address) = lower($2))
		FROM shop.customers WHERE id = $1`, person.ID, person.Email).Scan(&email, &addresses, &signups); err != nil {
		t.Fatal(err)
	}
	if email == person.Email || addresses != 0 || signups != 0 {
		t.Errorf("the person is still in the shop: email kept %v, %d addresses, %d newsletter sign-ups", email == person.Email, addresses, signups)
	}
	if after := databaseShape(t, shop); schemasAndTables(after) != schemasAndTables(before) {
		t.Fatalf("the erasure changed the application database's schemas or tables:\nbefore %s\nafter  %s", before, after)
	}
}

// databaseShape is the database's schemas, its tables and each table's
// row count, as one comparable line.
func databaseShape(t *testing.T, db *pgxpool.Pool) string {
	t.Helper()
	ctx := context.Background()
	rows, err := db.Query(ctx, `SELECT nspname FROM pg_namespace ORDER BY nspname`)
	if err != nil {
		t.Fatal(err)
	}
	schemas, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	rows, err = db.Query(ctx, `SELECT table_schema || '.' || table_name FROM information_schema.tables
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]string, len(tables))
	for i, tbl := range tables {
		schema, name, _ := strings.Cut(tbl, ".")
		var n int
		if err := db.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{schema, name}.Sanitize()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		counts[i] = fmt.Sprintf("%s=%d", tbl, n)
	}
	return "schemas " + strings.Join(schemas, ",") + " | tables " + strings.Join(counts, ",")
}

// schemasAndTables is a databaseShape without the row counts.
func schemasAndTables(shape string) string {
	var out []string
	for _, part := range strings.Split(shape, ",") {
		name, _, _ := strings.Cut(part, "=")
		out = append(out, name)
	}
	return strings.Join(out, ",")
}

func putObject(t *testing.T, c *s3.Client, bucket, key, body string) {
	t.Helper()
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
}

// countVersions counts the object versions and delete markers under prefix.
func countVersions(t *testing.T, c *s3.Client, prefix string) int {
	t.Helper()
	p := s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: aws.String(shopapp.Bucket), Prefix: aws.String(prefix)})
	n := 0
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Versions) + len(page.DeleteMarkers)
	}
	return n
}
