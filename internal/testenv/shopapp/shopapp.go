// Package shopapp is a second application for tests: a small online
// bookshop that shares nothing with the demo (bigint identity keys, uuid
// order numbers, a newsletter table keyed by email address only, a NOT NULL
// UNIQUE email anonymized to a pseudonym, order lines kept for tax law
// through a foreign-key chain, a versioned bucket of avatars). Tests that
// matter run Lethe on it as well as on the demo, so nothing works only
// because the demo was shaped for it.
package shopapp

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/jackc/pgx/v5"

	"github.com/lethe-privacy/lethe/internal/datamap"
)

//go:embed schema.sql
var schemaSQL string

//go:embed datamap.yaml
var dataMapYAML []byte

// Bucket holds the shop's avatars; it is versioned.
const Bucket = "kestrel-uploads"

// DataMapYAML is the shop's data map, as its team wrote it.
func DataMapYAML() []byte { return bytes.Clone(dataMapYAML) }

// DataMap is the shop's data map, parsed.
func DataMap() (*datamap.Map, error) { return datamap.Parse(dataMapYAML) }

// MisKeyedDataMapYAML is the shop's map with the mistake a new user makes:
// the newsletter table, which holds email addresses, mapped with key:
// address as if the column held the user id. Its erasure must never end
// "completed".
func MisKeyedDataMapYAML() []byte {
	return bytes.Replace(dataMapYAML, []byte("key: address, by: email,"), []byte("key: address,"), 1)
}

// CreateSchema creates the shop's tables (safe to run again).
func CreateSchema(ctx context.Context, db pgx.Tx) error {
	if _, err := db.Exec(ctx, schemaSQL); err != nil {
		return fmt.Errorf("shop schema: %w", err)
	}
	return nil
}

// Customer is one seeded customer, with what the tests look for.
type Customer struct {
	ID        int64
	Email     string // as the customer row holds it
	Signup    string // as the newsletter table holds it: the same address, other case
	Name      string
	Phone     string
	Helpdesk  string // the customer's id at the help desk
	AvatarKey string // the object key of the avatar, overwritten once and deleted once (a versioned bucket)
}

// UserID is the customer's id as Lethe's requests name it.
func (c Customer) UserID() string { return fmt.Sprint(c.ID) }

// Seed creates the schema if needed and n customers with a row in every
// table, two orders (one seven years old, past its tax hold; one recent),
// and an avatar with three versions in the versioned bucket (created and
// versioned if missing). objects may be nil: then no object is written.
func Seed(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, objects *s3.Client, n int) ([]Customer, error) {
	var out []Customer
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if err := CreateSchema(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO shop.books (isbn, title) VALUES ('9780141439518', 'Pride and Prejudice'), ('9780140449136', 'Crime and Punishment') ON CONFLICT DO NOTHING`); err != nil {
			return err
		}
		var base int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM shop.customers`).Scan(&base); err != nil {
			return err
		}
		now := time.Now().UTC()
		for i := range n {
			k := base + int64(i) + 1
			c := Customer{
				Email:    fmt.Sprintf("reader.%d@kestrel.example", k),
				Name:     fmt.Sprintf("Jane Reader%d", k),
				Phone:    fmt.Sprintf("+44 20 7946 %04d", k%10000),
				Helpdesk: fmt.Sprintf("hs-%d", 900000+k),
			}
			c.Signup = strings.ToUpper(c.Email[:1]) + c.Email[1:]
			if err := tx.QueryRow(ctx, `INSERT INTO shop.customers (email, full_name, phone, helpdesk_ref) VALUES ($1, $2, $3, $4) RETURNING id`,
				c.Email, c.Name, c.Phone, c.Helpdesk).Scan(&c.ID); err != nil {
				return err
			}
			c.AvatarKey = fmt.Sprintf("avatars/%d/me.png", c.ID)
			var old, recent string
			if err := tx.QueryRow(ctx, `INSERT INTO shop.orders (customer_id, placed_at, total) VALUES ($1, $2, 12.50) RETURNING order_no::text`, c.ID, now.AddDate(-7, 0, 0)).Scan(&old); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, `INSERT INTO shop.orders (customer_id, placed_at, total) VALUES ($1, $2, 30.00) RETURNING order_no::text`, c.ID, now.AddDate(0, -2, 0)).Scan(&recent); err != nil {
				return err
			}
			var wishlist int64
			if err := tx.QueryRow(ctx, `INSERT INTO shop.wishlists (customer_id, title) VALUES ($1, 'Birthday') RETURNING id`, c.ID).Scan(&wishlist); err != nil {
				return err
			}
			b := &pgx.Batch{}
			b.Queue(`INSERT INTO shop.addresses (customer_id, line1, city, postcode) VALUES ($1, '221B Baker Street', 'London', 'NW1 6XE')`, c.ID)
			b.Queue(`INSERT INTO shop.order_lines (order_no, isbn, quantity, gift_note) VALUES ($1::uuid, '9780141439518', 1, NULL), ($2::uuid, '9780140449136', 2, $3)`, old, recent, "For "+c.Name)
			b.Queue(`INSERT INTO shop.wishlist_items (wishlist_id, isbn, note) VALUES ($1, '9780141439518', $2)`, wishlist, "send offers to "+c.Email)
			b.Queue(`INSERT INTO shop.book_reviews (customer_id, reviewer_name, isbn, body) VALUES ($1, $2, '9780141439518', 'A delight.')`, c.ID, c.Name)
			b.Queue(`INSERT INTO shop.login_events (customer_id, ip) VALUES ($1, '192.0.2.10'), ($1, '192.0.2.11')`, c.ID)
			b.Queue(`INSERT INTO shop.newsletter_signups (address) VALUES ($1)`, c.Signup)
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return err
			}
			out = append(out, c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("seed the shop: %w", err)
	}
	if objects == nil {
		return out, nil
	}
	if err := versionedBucket(ctx, objects); err != nil {
		return nil, err
	}
	for _, c := range out {
		for _, body := range []string{"first avatar", "second avatar"} {
			if _, err := objects.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(Bucket), Key: aws.String(c.AvatarKey), Body: strings.NewReader(body)}); err != nil {
				return nil, fmt.Errorf("seed the shop's avatars: %w", err)
			}
		}
		// A delete marker over the two versions: still the person's data.
		if _, err := objects.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(Bucket), Key: aws.String(c.AvatarKey)}); err != nil {
			return nil, fmt.Errorf("seed the shop's avatars: %w", err)
		}
		if _, err := objects.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(Bucket), Key: aws.String(fmt.Sprintf("avatars/%d/banner.png", c.ID)), Body: strings.NewReader("banner")}); err != nil {
			return nil, fmt.Errorf("seed the shop's avatars: %w", err)
		}
	}
	return out, nil
}

// versionedBucket creates the shop's bucket if missing and turns versioning on.
func versionedBucket(ctx context.Context, objects *s3.Client) error {
	if _, err := objects.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(Bucket)}); err != nil {
		if _, err := objects.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(Bucket)}); err != nil {
			return fmt.Errorf("create bucket %s: %w", Bucket, err)
		}
	}
	if _, err := objects.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(Bucket),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
		return fmt.Errorf("version bucket %s: %w", Bucket, err)
	}
	return nil
}
