// Package demo creates the demo application database and its S3 files: a
// small SaaS company's accounts, profiles, projects with files and comments,
// purchases kept for tax, public reviews, support tickets, ID documents,
// marketing consents and activity.
// `starter dev` seeds it so every workflow can be tried at once; tests and
// benchmarks use it as the application Lethe works on.
package demo

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/processors"
)

//go:embed schema.sql
var schemaSQL string

//go:embed datamap.yaml
var dataMapYAML []byte

// DataMap is the demo application's data map.
func DataMap() (*datamap.Map, error) { return datamap.Parse(dataMapYAML) }

// DataMapWithoutProcessors is the demo data map with its third-party
// processors left out (and the fields and purposes that name them cleared):
// what deploy/datamap.yaml holds, and what the dev stack runs with
// --sandboxes=false.
func DataMapWithoutProcessors() (*datamap.Map, error) {
	m, err := DataMap()
	if err != nil {
		return nil, err
	}
	m.Processors = nil
	for i := range m.Fields {
		m.Fields[i].Processors = nil
	}
	if m.Consent != nil {
		for i := range m.Consent.Purposes {
			m.Consent.Purposes[i].Processors = nil
		}
	}
	return m, nil
}

// Sandboxed is the demo data map as `starter dev` runs it: each processor's
// base_url replaced by the local sandbox standing in for it (baseURLs, by
// processor name; a processor without one keeps its URL), and a PayPal
// processor added, which has no erasure API: every erasure opens an operator
// task there, as it would for a company that takes payments through PayPal.
func Sandboxed(baseURLs map[string]string) (*datamap.Map, error) {
	m, err := DataMap()
	if err != nil {
		return nil, err
	}
	for i, p := range m.Processors {
		if u, ok := baseURLs[p.Name]; ok {
			m.Processors[i].BaseURL = u
		}
	}
	m.Processors = append(m.Processors, processors.Config{Name: PayPal, Kind: "manual", Options: map[string]string{"preset": "paypal"}})
	return m, nil
}

// PayPal is the name of the processor Sandboxed adds.
const PayPal = "paypal"

// DataMapYAML is the demo data map's text, for people to read and copy.
func DataMapYAML() []byte { return append([]byte(nil), dataMapYAML...) }

// Bucket holds the demo application's files.
const Bucket = "lethe-app-data"

// BackupBucket is where the demo's database backups rotate (the data map's
// backups section): the erasure's backups watch lists it.
const BackupBucket = "lethe-backups"

// CreateSchema creates the demo tables (safe to run again).
func CreateSchema(ctx context.Context, db *pgxpool.Pool) error {
	if _, err := db.Exec(ctx, schemaSQL); err != nil {
		return fmt.Errorf("demo schema: %w", err)
	}
	return nil
}

// Account is one seeded demo account.
type Account struct {
	ID    string
	Email string
	Name  string
}

// Accounts returns the first n demo accounts' identities (stable across runs).
func Accounts(n int) []Account {
	first := []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret", "Ken"}
	out := make([]Account, n)
	for i := range out {
		name := first[i%len(first)]
		out[i] = Account{
			ID:    fmt.Sprintf("u-%04d", 1001+i),
			Email: fmt.Sprintf("%s.%d@example.com", lower(name), 1001+i),
			Name:  fmt.Sprintf("%s Demo%d", name, 1001+i),
		}
	}
	return out
}

// FakePasswordHash is the stand-in password hash seeded for an account: it
// looks like an argon2id hash but is none. The data map excludes the column,
// so it must never appear in an access bundle.
func FakePasswordHash(accountID string) string {
	return "argon2id$v=19$m=65536,t=3,p=4$fake-salt-" + accountID + "$fake-hash-not-a-real-secret"
}

func lower(s string) string { return string(bytes.ToLower([]byte(s))) }

// SeedOptions say how much to seed.
type SeedOptions struct {
	Accounts         int // default 20
	FilesPerProject  int // default 3
	ProjectsPerUser  int // default 2
	FileBytes        int // default 64
	SkipObjectUpload bool
	// StripeCustomers gives each new account its customer id at Stripe
	// (StripeCustomerID), as an application billing through Stripe keeps
	// it: the dev stack's Stripe sandbox holds those customers.
	StripeCustomers bool
}

// StripeCustomerID is the Stripe customer id SeedOptions.StripeCustomers
// gives an account.
func StripeCustomerID(accountID string) string {
	return "cus_demo_" + strings.ReplaceAll(accountID, "-", "")
}

// Customer is a demo account as the processors know it.
type Customer struct {
	ID, Email, Name  string
	StripeCustomerID string // empty when the account has none
}

// Customers are the demo accounts not erased, with what the processors
// hold about them: the dev stack seeds its processor sandboxes with them at
// every start, so an erased person is not brought back there either.
func Customers(ctx context.Context, db *pgxpool.Pool) ([]Customer, error) {
	rows, err := db.Query(ctx, `SELECT a.id, a.email, coalesce(p.display_name, ''), coalesce(a.stripe_customer_id, '')
		FROM demo.accounts a LEFT JOIN demo.profiles p ON p.account_id = a.id
		WHERE a.status <> 'erased' ORDER BY a.id`)
	if err != nil {
		return nil, fmt.Errorf("demo customers: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Customer, error) {
		var c Customer
		err := r.Scan(&c.ID, &c.Email, &c.Name, &c.StripeCustomerID)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("demo customers: %w", err)
	}
	return out, nil
}

// Seed fills the demo database and bucket. Accounts already present are left
// as they are, so seeding again after an erasure does not bring anyone back.
func Seed(ctx context.Context, db *pgxpool.Pool, objects *s3.Client, o SeedOptions) error {
	if o.Accounts == 0 {
		o.Accounts = 20
	}
	if o.FilesPerProject == 0 {
		o.FilesPerProject = 3
	}
	if o.ProjectsPerUser == 0 {
		o.ProjectsPerUser = 2
	}
	if o.FileBytes == 0 {
		o.FileBytes = 64
	}
	now := time.Now().UTC()
	for i, a := range Accounts(o.Accounts) {
		var created bool
		err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			var stripeID *string
			if o.StripeCustomers {
				id := StripeCustomerID(a.ID)
				stripeID = &id
			}
			tag, err := tx.Exec(ctx, `INSERT INTO demo.accounts (id, email, last_active_at, password_hash, stripe_customer_id) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
				a.ID, a.Email, now.Add(-time.Duration(i)*24*time.Hour), FakePasswordHash(a.ID), stripeID)
			if err != nil || tag.RowsAffected() == 0 {
				return err
			}
			created = true
			batch := &pgx.Batch{}
			batch.Queue(`INSERT INTO demo.profiles (account_id, display_name, bio, country) VALUES ($1, $2, $3, 'DE')`, a.ID, a.Name, "Hello, I am "+a.Name)
			batch.Queue(`INSERT INTO demo.purchases (account_id, amount_cents, currency, purchased_at) VALUES ($1, 1900, 'EUR', $2)`, a.ID, now.AddDate(-1, 0, 0))
			batch.Queue(`INSERT INTO demo.marketing_consents (account_id, purpose, granted, source) VALUES ($1, 'marketing_email', true, 'signup'), ($1, 'ai_training', true, 'signup')`, a.ID)
			batch.Queue(`INSERT INTO demo.activity_events (account_id, kind, at) VALUES ($1, 'login', $2), ($1, 'export', $2)`, a.ID, now)
			batch.Queue(`INSERT INTO demo.reviews (account_id, author_name, author_email, rating, body) VALUES ($1, $2, $3, 5, 'Does what it says.')`, a.ID, a.Name, a.Email)
			if err := tx.SendBatch(ctx, batch).Close(); err != nil {
				return err
			}
			var ticket int64
			if err := tx.QueryRow(ctx, `INSERT INTO demo.support_tickets (account_id, subject, body) VALUES ($1, 'Age appeal', 'Please review my age verification') RETURNING id`, a.ID).Scan(&ticket); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO demo.id_documents (account_id, ticket_id, s3_key) VALUES ($1, $2, $3)`, a.ID, ticket, "id-documents/"+a.ID+"/passport.jpg"); err != nil {
				return err
			}
			for p := 0; p < o.ProjectsPerUser; p++ {
				var project int64
				if err := tx.QueryRow(ctx, `INSERT INTO demo.projects (account_id, name) VALUES ($1, $2) RETURNING id`, a.ID, fmt.Sprintf("project %d", p+1)).Scan(&project); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, `INSERT INTO demo.project_comments (project_id, body) VALUES ($1, $2), ($1, $3)`,
					project, "First draft of "+fmt.Sprintf("project %d", p+1), "Reviewed by "+a.Name); err != nil {
					return err
				}
				for f := 0; f < o.FilesPerProject; f++ {
					key := fmt.Sprintf("projects/%s/%d/file-%d.txt", a.ID, project, f+1)
					if _, err := tx.Exec(ctx, `INSERT INTO demo.project_files (project_id, account_id, s3_key, size_bytes) VALUES ($1, $2, $3, $4)`, project, a.ID, key, o.FileBytes); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("seed account %d: %w", i+1, err)
		}
		if !created || o.SkipObjectUpload {
			continue
		}
		if err := uploadFiles(ctx, db, objects, a.ID, o.FileBytes); err != nil {
			return fmt.Errorf("seed files of account %d: %w", i+1, err)
		}
	}
	return nil
}

func uploadFiles(ctx context.Context, db *pgxpool.Pool, objects *s3.Client, accountID string, size int) error {
	rows, err := db.Query(ctx, `SELECT s3_key FROM demo.project_files WHERE account_id = $1 UNION ALL SELECT s3_key FROM demo.id_documents WHERE account_id = $1`, accountID)
	if err != nil {
		return err
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	body := bytes.Repeat([]byte("lethe demo file\n"), size/16+1)[:size]
	for _, k := range keys {
		if _, err := objects.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(Bucket), Key: aws.String(k), Body: bytes.NewReader(body)}); err != nil {
			return err
		}
	}
	return nil
}
