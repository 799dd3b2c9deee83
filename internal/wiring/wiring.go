// Package wiring builds the real parts a Lethe process needs from its
// configuration: database pools, the S3 client, the data map, the subject
// hasher, the Temporal client and the logger. The worker, `starter serve` and
// `starter dev` all build them here, the same way.
package wiring

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/codec"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/mail"
	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/templates"
	"github.com/lethe-privacy/lethe/internal/temporalclient"
)

// Logger is the process's structured logger (JSON on stderr).
func Logger(c config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// Databases opens Lethe's own database (creating it when missing, migrating
// it) and the application database of the data map.
func Databases(ctx context.Context, c config.Config) (lethe, app *pgxpool.Pool, err error) {
	lethe, err = store.Open(ctx, c.DatabaseURL, true)
	if err != nil {
		return nil, nil, err
	}
	if c.AppDatabase() == c.DatabaseURL {
		return lethe, lethe, nil
	}
	app, err = store.Connect(ctx, c.AppDatabase())
	if err != nil {
		lethe.Close()
		return nil, nil, fmt.Errorf("application database (LETHE_APP_DATABASE_URL): %w", err)
	}
	return lethe, app, nil
}

// Objects builds the S3 client.
func Objects(ctx context.Context, c config.Config) (*s3.Client, error) {
	return objectstore.New(ctx, objectstore.Options{
		Endpoint: c.S3Endpoint, Region: c.S3Region, AccessKeyID: c.S3AccessKeyID,
		SecretAccessKey: c.S3SecretAccessKey, UsePathStyle: c.S3UsePathStyle,
	})
}

// DataMap loads the data map named by LETHE_DATA_MAP and checks it against
// the application database: its tables and columns, and its coverage
// (Coverage).
func DataMap(ctx context.Context, c config.Config, app *pgxpool.Pool, log *slog.Logger) (*datamap.Map, error) {
	if c.DataMap == "" {
		return nil, errors.New("LETHE_DATA_MAP: set it to the data map file (see README, \"The data map\")")
	}
	m, err := datamap.Load(c.DataMap)
	if err != nil {
		return nil, fmt.Errorf("LETHE_DATA_MAP: %w", err)
	}
	if err := m.Validate(ctx, app); err != nil {
		return nil, fmt.Errorf("LETHE_DATA_MAP %s: %w", c.DataMap, err)
	}
	if err := Coverage(ctx, c, app, m, log); err != nil {
		return nil, fmt.Errorf("LETHE_DATA_MAP %s: %w", c.DataMap, err)
	}
	return m, nil
}

// Coverage refuses a data map that leaves out a table with a foreign key
// into its tables (datamap.CheckCoverage): an erasure would leave that
// table's rows behind. The error names each such table and how to cover
// it; with LETHE_DATA_MAP_UNMAPPED=warn each is logged instead.
func Coverage(ctx context.Context, c config.Config, app datamap.Querier, m *datamap.Map, log *slog.Logger) error {
	list, err := datamap.CheckCoverage(ctx, app, m)
	if err != nil || len(list) == 0 {
		return err
	}
	if c.DataMapUnmapped == "warn" {
		if log == nil {
			log = slog.Default()
		}
		for _, u := range list {
			log.Warn("data map: a table holding people's rows is neither mapped nor ignored (LETHE_DATA_MAP_UNMAPPED=warn)", "table", u.Table, "problem", u.String())
		}
		return nil
	}
	errs := make([]error, len(list))
	for i, u := range list {
		errs[i] = errors.New(u.String())
	}
	n := "1 table is"
	if len(list) > 1 {
		n = fmt.Sprintf("%d tables are", len(list))
	}
	return fmt.Errorf("%s not covered, so an erasure would leave rows behind (LETHE_DATA_MAP_UNMAPPED=warn starts anyway; `starter datamap check` lists every problem):\n%w", n, errors.Join(errs...))
}

// Subjects builds the subject hasher from LETHE_SUBJECT_HASH_KEY.
func Subjects(c config.Config) (*person.Hasher, error) {
	if c.SubjectHashKey == "" {
		return nil, errors.New("LETHE_SUBJECT_HASH_KEY: required (32+ random bytes, base64; e.g. `openssl rand -base64 32`)")
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(c.SubjectHashKey))
	if err != nil {
		return nil, errors.New("LETHE_SUBJECT_HASH_KEY: not base64")
	}
	return person.NewHasher(k)
}

// TemporalOptions are the connection options every Lethe client uses: its
// payloads and failure messages are encrypted with LETHE_PAYLOAD_KEYS.
func TemporalOptions(c config.Config, log *slog.Logger) (temporalclient.Options, error) {
	keys, err := PayloadKeys(c)
	if err != nil {
		return temporalclient.Options{}, err
	}
	dc, err := codec.NewDataConverter(keys)
	if err != nil {
		return temporalclient.Options{}, fmt.Errorf("LETHE_PAYLOAD_KEYS: %w", err)
	}
	return temporalclient.Options{
		Address: c.TemporalAddress, Namespace: c.TemporalNamespace,
		TLS: c.TemporalTLS, TLSCert: c.TemporalTLSCert, TLSKey: c.TemporalTLSKey, TLSCA: c.TemporalTLSCA,
		APIKey: c.TemporalAPIKey, Logger: log,
		DataConverter: dc, FailureConverter: codec.NewFailureConverter(dc),
	}, nil
}

// PayloadKeys are the keys that encrypt Temporal payloads; they are required.
func PayloadKeys(c config.Config) ([]config.Key, error) {
	if c.PayloadKeys == "" {
		return nil, errors.New("LETHE_PAYLOAD_KEYS: required (id:base64-32-byte-key, e.g. k1:$(openssl rand -base64 32))")
	}
	return config.ParseKeys(c.PayloadKeys)
}

// Keyring holds the per-person data keys, wrapped by LETHE_MASTER_KEYS.
func Keyring(c config.Config, db *pgxpool.Pool) (*person.Keyring, error) {
	if c.MasterKeys == "" {
		return nil, errors.New("LETHE_MASTER_KEYS: required (id:base64-32-byte-key, e.g. m1:$(openssl rand -base64 32)); keep it apart from LETHE_PAYLOAD_KEYS")
	}
	keys, err := config.ParseKeys(c.MasterKeys)
	if err != nil {
		return nil, fmt.Errorf("LETHE_MASTER_KEYS: %w", err)
	}
	return person.NewKeyring(db, keys)
}

// Mailer sends through SendGrid when LETHE_SENDGRID_API_KEY is set, else into
// the outbox directory; either way each idempotency key sends once.
func Mailer(c config.Config, db *pgxpool.Pool) (mail.Sender, error) {
	var next mail.Sender
	if c.SendGridAPIKey != "" {
		sg, err := mail.NewSendGrid(mail.SendGridConfig{APIKey: c.SendGridAPIKey, BaseURL: c.SendGridBaseURL, FromEmail: c.MailFrom, FromName: c.MailFromName})
		if err != nil {
			return nil, fmt.Errorf("LETHE_SENDGRID_API_KEY: %w", err)
		}
		next = sg
	} else {
		ob, err := mail.NewOutbox(c.OutboxDir)
		if err != nil {
			return nil, fmt.Errorf("LETHE_OUTBOX_DIR: %w", err)
		}
		next = ob
	}
	return mail.NewOnce(db, next), nil
}

// BulkMailer sends one message to up to 1000 people per call: SendGrid when
// LETHE_SENDGRID_API_KEY is set, else the outbox directory. Callers keep their
// own ledger of who was sent what (internal/bulk).
func BulkMailer(c config.Config) (mail.BulkSender, error) {
	if c.SendGridAPIKey != "" {
		return mail.NewSendGrid(mail.SendGridConfig{APIKey: c.SendGridAPIKey, BaseURL: c.SendGridBaseURL, FromEmail: c.MailFrom, FromName: c.MailFromName})
	}
	return mail.NewOutbox(c.OutboxDir)
}

// Templates loads the mail templates, with the company's overrides.
func Templates(c config.Config) (*templates.Renderer, error) {
	r, err := templates.New(c.TemplatesDir)
	if err != nil {
		return nil, fmt.Errorf("LETHE_TEMPLATES_DIR: %w", err)
	}
	return r, nil
}
