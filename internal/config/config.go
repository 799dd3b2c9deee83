// Package config reads Lethe's configuration from the environment.
//
// Every setting has a documented default (see README.md, "Configuration");
// a value that does not parse fails at start with a message naming the variable.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"strings"

	"github.com/caarlos0/env/v11"
)

// Config is everything a Lethe process needs to know about its surroundings.
type Config struct {
	// DatabaseURL is Lethe's own PostgreSQL database (requests, audit trail, keys).
	DatabaseURL string `env:"LETHE_DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/lethe?sslmode=disable"`
	// AppDatabaseURL is the company's application database that the data map covers.
	// Empty means the same database as DatabaseURL.
	AppDatabaseURL string `env:"LETHE_APP_DATABASE_URL"`

	TemporalAddress   string `env:"LETHE_TEMPORAL_ADDRESS" envDefault:"127.0.0.1:7233"`
	TemporalNamespace string `env:"LETHE_TEMPORAL_NAMESPACE" envDefault:"default"`
	TemporalTaskQueue string `env:"LETHE_TEMPORAL_TASK_QUEUE" envDefault:"lethe"`
	TemporalTLS       bool   `env:"LETHE_TEMPORAL_TLS" envDefault:"false"`
	TemporalTLSCert   string `env:"LETHE_TEMPORAL_TLS_CERT"`
	TemporalTLSKey    string `env:"LETHE_TEMPORAL_TLS_KEY"`
	TemporalTLSCA     string `env:"LETHE_TEMPORAL_TLS_CA"`
	TemporalAPIKey    string `env:"LETHE_TEMPORAL_API_KEY"`

	S3Endpoint        string `env:"LETHE_S3_ENDPOINT"`
	S3Region          string `env:"LETHE_S3_REGION" envDefault:"us-east-1"`
	S3AccessKeyID     string `env:"LETHE_S3_ACCESS_KEY_ID"`
	S3SecretAccessKey string `env:"LETHE_S3_SECRET_ACCESS_KEY"`
	S3UsePathStyle    bool   `env:"LETHE_S3_PATH_STYLE" envDefault:"false"`
	// S3ExportBucket receives access/portability bundles and reports.
	S3ExportBucket string `env:"LETHE_S3_EXPORT_BUCKET" envDefault:"lethe-exports"`

	SendGridAPIKey  string `env:"LETHE_SENDGRID_API_KEY"`
	SendGridBaseURL string `env:"LETHE_SENDGRID_BASE_URL" envDefault:"https://api.sendgrid.com"`
	MailFrom        string `env:"LETHE_MAIL_FROM" envDefault:"privacy@example.com"`
	MailFromName    string `env:"LETHE_MAIL_FROM_NAME" envDefault:"Privacy team"`
	// OutboxDir receives mail as files when no SendGrid key is set (dev).
	OutboxDir string `env:"LETHE_OUTBOX_DIR" envDefault:".lethe/outbox"`

	// DataMap is the YAML file that says where a person's data lives (see
	// internal/datamap). Empty in dev means the demo application's map.
	DataMap string `env:"LETHE_DATA_MAP"`

	APIListen string `env:"LETHE_API_LISTEN" envDefault:":8080"`
	// MaxBodyBytes bounds every API request body.
	MaxBodyBytes int64 `env:"LETHE_API_MAX_BODY_BYTES" envDefault:"65536"`

	// PayloadKeys are the AES-256 keys that encrypt Temporal payloads, as
	// "id:base64key" pairs separated by commas; the first one encrypts, all decrypt.
	PayloadKeys string `env:"LETHE_PAYLOAD_KEYS"`
	// MasterKeys wrap the per-person data keys (crypto-shredding), in the same
	// "id:base64key" form; keep them apart from the payload keys.
	MasterKeys string `env:"LETHE_MASTER_KEYS"`
	// SubjectHashKey keys the HMAC that turns a person's identifiers into a
	// subject reference (workflow ids, search attributes, audit entries), base64.
	SubjectHashKey string `env:"LETHE_SUBJECT_HASH_KEY"`

	LogLevel string `env:"LETHE_LOG_LEVEL" envDefault:"info"`
}

// FromEnv reads the configuration from the process environment.
func FromEnv() (Config, error) {
	return parse(env.Options{})
}

// FromMap reads the configuration from the given variables only (tests).
func FromMap(vars map[string]string) (Config, error) {
	return parse(env.Options{Environment: vars})
}

func parse(opts env.Options) (Config, error) {
	var c Config
	if err := env.ParseWithOptions(&c, opts); err != nil {
		return Config{}, nameVariables(err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// nameVariables rewrites the library's parse errors, which name struct fields,
// so that each names the environment variable a person has to fix.
func nameVariables(err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("configuration: %w", err)
	}
	vars := map[string]string{}
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		vars[t.Field(i).Name] = t.Field(i).Tag.Get("env")
	}
	var out []error
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) && vars[pe.Name] != "" {
			out = append(out, fmt.Errorf("%s: want a %s value: %w", vars[pe.Name], pe.Type, pe.Err))
			continue
		}
		out = append(out, e)
	}
	return fmt.Errorf("configuration: %w", errors.Join(out...))
}

// Validate checks values that parse but cannot work; each error names its variable.
func (c Config) Validate() error {
	var errs []error
	bad := func(name, why string) { errs = append(errs, fmt.Errorf("%s: %s", name, why)) }
	for name, raw := range map[string]string{"LETHE_DATABASE_URL": c.DatabaseURL, "LETHE_APP_DATABASE_URL": c.AppDatabaseURL} {
		if raw == "" && name == "LETHE_APP_DATABASE_URL" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			bad(name, "want a postgres:// URL")
		}
	}
	if _, _, err := net.SplitHostPort(c.TemporalAddress); err != nil {
		bad("LETHE_TEMPORAL_ADDRESS", "want host:port")
	}
	if c.TemporalNamespace == "" {
		bad("LETHE_TEMPORAL_NAMESPACE", "must not be empty")
	}
	if c.TemporalTaskQueue == "" {
		bad("LETHE_TEMPORAL_TASK_QUEUE", "must not be empty")
	}
	if (c.TemporalTLSCert == "") != (c.TemporalTLSKey == "") {
		bad("LETHE_TEMPORAL_TLS_CERT", "set together with LETHE_TEMPORAL_TLS_KEY")
	}
	if c.S3Endpoint != "" {
		if u, err := url.Parse(c.S3Endpoint); err != nil || u.Scheme == "" || u.Host == "" {
			bad("LETHE_S3_ENDPOINT", "want an http(s):// URL")
		}
	}
	if (c.S3AccessKeyID == "") != (c.S3SecretAccessKey == "") {
		bad("LETHE_S3_ACCESS_KEY_ID", "set together with LETHE_S3_SECRET_ACCESS_KEY")
	}
	if b := c.S3ExportBucket; len(b) < 3 || len(b) > 63 || strings.ToLower(b) != b {
		bad("LETHE_S3_EXPORT_BUCKET", "want a bucket name of 3 to 63 lower-case characters")
	}
	if u, err := url.Parse(c.SendGridBaseURL); err != nil || u.Scheme == "" || u.Host == "" {
		bad("LETHE_SENDGRID_BASE_URL", "want an http(s):// URL")
	}
	if !strings.Contains(c.MailFrom, "@") {
		bad("LETHE_MAIL_FROM", "want an email address")
	}
	if _, _, err := net.SplitHostPort(c.APIListen); err != nil {
		bad("LETHE_API_LISTEN", "want [host]:port")
	}
	if c.MaxBodyBytes < 1024 {
		bad("LETHE_API_MAX_BODY_BYTES", "want at least 1024")
	}
	if c.PayloadKeys != "" {
		if _, err := ParseKeys(c.PayloadKeys); err != nil {
			bad("LETHE_PAYLOAD_KEYS", err.Error())
		}
	}
	if c.MasterKeys != "" {
		if _, err := ParseKeys(c.MasterKeys); err != nil {
			bad("LETHE_MASTER_KEYS", err.Error())
		}
	}
	if c.SubjectHashKey != "" {
		if k, err := base64.StdEncoding.DecodeString(c.SubjectHashKey); err != nil || len(k) < 32 {
			bad("LETHE_SUBJECT_HASH_KEY", "want at least 32 bytes, base64")
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("LETHE_LOG_LEVEL", "want debug, info, warn or error")
	}
	return errors.Join(errs...)
}

// AppDatabase is the application database URL, defaulting to Lethe's own.
func (c Config) AppDatabase() string {
	if c.AppDatabaseURL != "" {
		return c.AppDatabaseURL
	}
	return c.DatabaseURL
}

// Key is one named AES-256 key.
type Key struct {
	ID       string
	Material []byte
}

// ParseKeys reads "id:base64key,id2:base64key2"; the first key is the active one.
// Key material is never part of an error message.
func ParseKeys(s string) ([]Key, error) {
	var keys []Key
	seen := map[string]bool{}
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		id, b64, ok := strings.Cut(part, ":")
		if !ok || id == "" {
			return nil, fmt.Errorf("key %d: want id:base64key", i+1)
		}
		if seen[id] {
			return nil, fmt.Errorf("key %d: id %q appears twice", i+1, id)
		}
		seen[id] = true
		m, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(m) != 32 {
			return nil, fmt.Errorf("key %q: want 32 bytes, base64", id)
		}
		keys = append(keys, Key{ID: id, Material: m})
	}
	return keys, nil
}
