// Package config reads Lethe's configuration from the environment.
//
// Every setting has a documented default (see README.md, "Configuration");
// a value that does not parse fails at start with a message naming the variable.
package config

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/lethe-privacy/lethe/internal/drp"
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
	// WorkerBuildID names the build a worker runs (e.g. the image's git
	// commit). Set, the worker joins the Temporal worker deployment
	// WorkerDeployment as that version; empty, it is unversioned.
	WorkerBuildID    string `env:"LETHE_WORKER_BUILD_ID"`
	WorkerDeployment string `env:"LETHE_WORKER_DEPLOYMENT" envDefault:"lethe"`
	TemporalTLS      bool   `env:"LETHE_TEMPORAL_TLS" envDefault:"false"`
	TemporalTLSCert  string `env:"LETHE_TEMPORAL_TLS_CERT"`
	TemporalTLSKey   string `env:"LETHE_TEMPORAL_TLS_KEY"`
	TemporalTLSCA    string `env:"LETHE_TEMPORAL_TLS_CA"`
	TemporalAPIKey   string `env:"LETHE_TEMPORAL_API_KEY"`

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
	// DataMapUnmapped is what the worker does at start about tables with a
	// foreign key into the map's tables that are neither mapped nor ignored
	// (datamap.CheckCoverage): "refuse" to start, or "warn" and start.
	DataMapUnmapped string `env:"LETHE_DATA_MAP_UNMAPPED" envDefault:"refuse"`

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

	// The company, as people see it in mail.
	CompanyName      string `env:"LETHE_COMPANY_NAME" envDefault:"Example Company"`
	PublicURL        string `env:"LETHE_PUBLIC_URL" envDefault:"http://localhost:8080"`
	PrivacyTeamEmail string `env:"LETHE_PRIVACY_TEAM_EMAIL" envDefault:"privacy-team@example.com"`
	TemplatesDir     string `env:"LETHE_TEMPLATES_DIR"`
	// PortalDir overrides the privacy portal's pages, styles, logo and
	// messages (internal/portal/web): files of the same relative names win.
	PortalDir string `env:"LETHE_PORTAL_DIR"`

	// Deadlines per jurisdiction, as periods: "1mo" (calendar month), "45d", "10bd" (business days).
	DueGDPR       string `env:"LETHE_DUE_GDPR" envDefault:"1mo"`
	DueCCPA       string `env:"LETHE_DUE_CCPA" envDefault:"45d"`
	DueCompany    string `env:"LETHE_DUE_COMPANY" envDefault:"30d"`
	ExtendGDPR    string `env:"LETHE_EXTENSION_GDPR" envDefault:"2mo"`
	ExtendCCPA    string `env:"LETHE_EXTENSION_CCPA" envDefault:"45d"`
	ExtendCompany string `env:"LETHE_EXTENSION_COMPANY" envDefault:"0d"`
	ReceiptCCPA   string `env:"LETHE_RECEIPT_CCPA" envDefault:"10bd"`
	// The expedited erasure of a child's data (P15), started by an operator.
	DueExpedited string `env:"LETHE_DUE_EXPEDITED" envDefault:"3d"`

	// Identity verification by a one-time code.
	CodeTTL             time.Duration `env:"LETHE_CODE_TTL" envDefault:"15m"`
	CodeMaxAttempts     int           `env:"LETHE_CODE_MAX_ATTEMPTS" envDefault:"5"`
	CodeResendInterval  time.Duration `env:"LETHE_CODE_RESEND_INTERVAL" envDefault:"1m"`
	CodeMaxSends        int           `env:"LETHE_CODE_MAX_SENDS" envDefault:"5"`
	VerifyWithin        time.Duration `env:"LETHE_VERIFY_WITHIN" envDefault:"168h"`
	VerifyReminderAfter time.Duration `env:"LETHE_VERIFY_REMINDER_AFTER" envDefault:"72h"`

	// ApprovalTypes lists the request types an operator approves before the work starts.
	ApprovalTypes []string `env:"LETHE_APPROVAL_TYPES" envSeparator:","`
	// ManualTypes lists the request types the privacy team fulfils by hand.
	ManualTypes []string `env:"LETHE_MANUAL_TYPES" envSeparator:","`
	// ExportLinkValidFor is how long an export's link (and the bundle) lasts.
	ExportLinkValidFor time.Duration `env:"LETHE_EXPORT_LINK_VALID_FOR" envDefault:"168h"`
	// OperatorReminders: remind the privacy team this long before a due date.
	OperatorReminders []time.Duration `env:"LETHE_OPERATOR_REMINDERS" envSeparator:"," envDefault:"72h,24h"`
	// RequestLimits: "type@jurisdiction=N/period", comma-separated (jurisdiction * for all).
	RequestLimits string `env:"LETHE_REQUEST_LIMITS" envDefault:"access@ccpa=2/12mo,portability@ccpa=2/12mo"`

	// Rate limits of the public routes, per client IP and per person.
	RatePerIP      float64 `env:"LETHE_RATE_PER_IP" envDefault:"1"`
	BurstPerIP     int     `env:"LETHE_BURST_PER_IP" envDefault:"20"`
	RatePerSubject float64 `env:"LETHE_RATE_PER_SUBJECT" envDefault:"0.1"`
	BurstPerSubj   int     `env:"LETHE_BURST_PER_SUBJECT" envDefault:"5"`

	// Account lifecycle (P8, P9, P10).
	DeactivationGrace     time.Duration `env:"LETHE_DEACTIVATION_GRACE" envDefault:"720h"`
	DeactivationReminder  time.Duration `env:"LETHE_DEACTIVATION_REMINDER" envDefault:"168h"`
	InactiveAfter         string        `env:"LETHE_INACTIVE_AFTER" envDefault:"24mo"`
	InactiveWarnBefore    time.Duration `env:"LETHE_INACTIVE_WARN_BEFORE" envDefault:"720h"`
	ClosedAccountKeep     string        `env:"LETHE_CLOSED_ACCOUNT_KEEP" envDefault:"30d"`
	InactiveDryRun        bool          `env:"LETHE_INACTIVE_DRY_RUN" envDefault:"false"`
	IDDocumentDeleteAfter time.Duration `env:"LETHE_ID_DOCUMENT_DELETE_AFTER" envDefault:"1440h"`
	SweepEvery            time.Duration `env:"LETHE_SWEEP_EVERY" envDefault:"24h"`

	// Breach notification (P11) and policy-change notices (P16).
	BreachNotifyWithin time.Duration `env:"LETHE_BREACH_NOTIFY_WITHIN" envDefault:"48h"`
	BreachReportWithin time.Duration `env:"LETHE_BREACH_REPORT_WITHIN" envDefault:"72h"`
	BreachEscalateAt   []float64     `env:"LETHE_BREACH_ESCALATE_AT" envSeparator:"," envDefault:"0.5,0.8"`
	IncidentKeepOpen   time.Duration `env:"LETHE_INCIDENT_KEEP_OPEN" envDefault:"720h"`
	PolicyNoticePeriod time.Duration `env:"LETHE_POLICY_NOTICE_PERIOD" envDefault:"168h"`
	AuthorityEmail     string        `env:"LETHE_AUTHORITY_EMAIL" envDefault:"dpa@example.org"`

	// Lethe's own records: a closed request's personal data goes after this
	// ("24mo", the CCPA record-keeping period), checked every RecordsRetentionEvery.
	RecordsRetention      string        `env:"LETHE_RECORDS_RETENTION" envDefault:"24mo"`
	RecordsRetentionEvery time.Duration `env:"LETHE_RECORDS_RETENTION_EVERY" envDefault:"24h"`

	// MetricsAddr is where the worker serves its Prometheus metrics
	// (/metrics), on a listener of its own; APIMetricsAddr the API's
	// (`starter serve`; `starter dev` serves both). "off" serves none.
	// Neither is the public API port: keep them inside the network that
	// Prometheus scrapes from.
	MetricsAddr    string `env:"LETHE_METRICS_ADDR" envDefault:":9464"`
	APIMetricsAddr string `env:"LETHE_API_METRICS_ADDR" envDefault:":9465"`
	// MetricsDueSoon is how far ahead a due date counts as soon for
	// lethe_requests_due_soon.
	MetricsDueSoon time.Duration `env:"LETHE_METRICS_DUE_SOON" envDefault:"168h"`

	// The Data Rights Protocol (README "Data Rights Protocol"): off while
	// DRPBusinessID is empty. DRPSigningKey (base64 Ed25519 seed) signs the
	// status callbacks to agents; DRPSalePurpose is the data map's consent
	// purpose a sale:opt-out withdraws.
	DRPBusinessID    string        `env:"LETHE_DRP_BUSINESS_ID"`
	DRPSigningKey    string        `env:"LETHE_DRP_SIGNING_KEY"`
	DRPSalePurpose   string        `env:"LETHE_DRP_SALE_PURPOSE" envDefault:"sale_sharing"`
	DRPMaxWindow     time.Duration `env:"LETHE_DRP_MAX_WINDOW" envDefault:"15m"`
	DRPClockSkew     time.Duration `env:"LETHE_DRP_CLOCK_SKEW" envDefault:"1m"`
	DRPCallbackEvery time.Duration `env:"LETHE_DRP_CALLBACK_EVERY" envDefault:"10s"`

	// CodecToken is the operator credential of the codec server at /codec
	// (empty: no codec route outside dev); CodecOrigins are the UI origins it serves.
	CodecToken   string   `env:"LETHE_CODEC_TOKEN"`
	CodecOrigins []string `env:"LETHE_CODEC_ORIGINS" envSeparator:"," envDefault:"http://localhost:8233"`
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
	if c.DRPBusinessID != "" {
		if !drp.AgentIDRe.MatchString(c.DRPBusinessID) {
			bad("LETHE_DRP_BUSINESS_ID", "want the business id of the DRP directory (letters, digits, _ and -)")
		}
		if _, err := drp.ParseSigningKey(c.DRPSigningKey); err != nil {
			bad("LETHE_DRP_SIGNING_KEY", "want the base64 of a 32-byte Ed25519 seed, required with LETHE_DRP_BUSINESS_ID (make one with `starter drp key`)")
		}
		if c.DRPMaxWindow <= 0 || c.DRPClockSkew < 0 || c.DRPCallbackEvery <= 0 {
			bad("LETHE_DRP_MAX_WINDOW", "LETHE_DRP_MAX_WINDOW and LETHE_DRP_CALLBACK_EVERY must be positive, LETHE_DRP_CLOCK_SKEW not negative")
		}
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
	for name, addr := range map[string]string{"LETHE_METRICS_ADDR": c.MetricsAddr, "LETHE_API_METRICS_ADDR": c.APIMetricsAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil && addr != MetricsOff {
			bad(name, "want [host]:port, or off")
		}
	}
	if c.MetricsDueSoon <= 0 {
		bad("LETHE_METRICS_DUE_SOON", "must be positive")
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
	for name, v := range map[string]int{"LETHE_CODE_MAX_ATTEMPTS": c.CodeMaxAttempts, "LETHE_CODE_MAX_SENDS": c.CodeMaxSends, "LETHE_BURST_PER_IP": c.BurstPerIP, "LETHE_BURST_PER_SUBJECT": c.BurstPerSubj} {
		if v < 1 {
			bad(name, "must be at least 1")
		}
	}
	for name, d := range map[string]time.Duration{"LETHE_CODE_TTL": c.CodeTTL, "LETHE_VERIFY_WITHIN": c.VerifyWithin} {
		if d <= 0 {
			bad(name, "must be positive")
		}
	}
	if c.RatePerIP <= 0 || c.RatePerSubject <= 0 {
		bad("LETHE_RATE_PER_IP", "rates must be positive (LETHE_RATE_PER_IP, LETHE_RATE_PER_SUBJECT)")
	}
	if !strings.Contains(c.PrivacyTeamEmail, "@") {
		bad("LETHE_PRIVACY_TEAM_EMAIL", "want an email address")
	}
	if u, err := url.Parse(c.PublicURL); err != nil || u.Scheme == "" || u.Host == "" {
		bad("LETHE_PUBLIC_URL", "want an http(s):// URL")
	}
	if c.CodecToken != "" && len(c.CodecToken) < 16 {
		bad("LETHE_CODEC_TOKEN", "want at least 16 characters")
	}
	if c.DataMapUnmapped != "" && c.DataMapUnmapped != "refuse" && c.DataMapUnmapped != "warn" { // empty: refuse
		bad("LETHE_DATA_MAP_UNMAPPED", "want refuse or warn")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("LETHE_LOG_LEVEL", "want debug, info, warn or error")
	}
	return errors.Join(errs...)
}

// MetricsOff, as LETHE_METRICS_ADDR or LETHE_API_METRICS_ADDR, serves no
// metrics.
const MetricsOff = "off"

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

// FormatKeys renders keys as "id:base64key,…", the form [ParseKeys] reads,
// keys[0] first (the active one). The result contains key material: treat
// it as a secret.
func FormatKeys(keys []Key) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k.ID + ":" + base64.StdEncoding.EncodeToString(k.Material)
	}
	return strings.Join(parts, ",")
}

// GenerateKey returns a new random 32-byte key whose id is prefix, the UTC
// date and a random suffix, e.g. "m20260102-9f3a1c": ids tell keys apart
// and say when each was made, and carry nothing of the material.
func GenerateKey(prefix string) (Key, error) {
	material := make([]byte, 32)
	if _, err := rand.Read(material); err != nil {
		return Key{}, fmt.Errorf("generate key: %w", err)
	}
	suffix := make([]byte, 3)
	if _, err := rand.Read(suffix); err != nil {
		return Key{}, fmt.Errorf("generate key id: %w", err)
	}
	return Key{ID: prefix + time.Now().UTC().Format("20060102") + "-" + hex.EncodeToString(suffix), Material: material}, nil
}
