// Package export builds a person's data bundle for an access request (GDPR
// Art. 15, CCPA right to know) or a portability request (GDPR Art. 20): one
// ZIP archive streamed to S3 as it is written, so memory stays flat
// whatever the size of the data.
//
// The bundle gathers the person's rows from every table of the data map
// (minus the columns the map excludes), their files from every S3
// location, and what each processor returns, and adds an index.html a
// person can read offline (what the bundle holds, the Art. 15 information:
// purposes, categories, recipients, retention, source of the data, rights,
// what was left out and what could not be exported) and a manifest.json
// for programs.
//
// # manifest.json
//
// The manifest's schema is stable; ManifestSchema names its version and
// changes only when a field changes meaning or goes away (fields may be
// added). Its fields:
//
//	schema        "lethe-export/v1"
//	generated_at  when the bundle was made (RFC 3339, UTC)
//	portability   true for a portability bundle: only data the person provided
//	counts        {sources, rows, files, file_bytes, records, exclusions, gaps}
//	sources       [{name, kind, path, count, bytes, complete}]: kind is account,
//	              table, objects or processor; name is schema.table, the S3
//	              location as s3://bucket/prefix-template, or the processor's
//	              name; path is the JSON file in the archive (tables and
//	              processors); count is rows, files or records; complete is
//	              false when a source failed part-way (see gaps)
//	files         [{source, bucket, key, path, size, sha256, last_modified}]:
//	              each object copied, where it is in the archive, and its
//	              SHA-256 (hex)
//	exclusions    [{source, column, reason}]: columns never disclosed
//	gaps          [{source, reason}]: sources that could not be exported
package export

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"github.com/lethe-privacy/lethe/internal/appdb"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/processors"
)

// ManifestSchema is the version of manifest.json's schema.
const ManifestSchema = "lethe-export/v1"

// Manifest describes a bundle; it is written as manifest.json.
//
// Files hold object keys, which usually contain the user id: keep them out
// of logs and workflow histories (Summary drops them).
type Manifest struct {
	Schema      string      `json:"schema"`
	GeneratedAt time.Time   `json:"generated_at"`
	Portability bool        `json:"portability"`
	Counts      Counts      `json:"counts"`
	Sources     []Source    `json:"sources"`
	Files       []File      `json:"files"`
	Exclusions  []Exclusion `json:"exclusions"`
	Gaps        []Gap       `json:"gaps"`
}

// Summary is the manifest without its Files: counts, sources, exclusions and
// gaps, none of which names the person, fit for a workflow history.
func (m Manifest) Summary() Manifest {
	m.Files = nil
	return m
}

// Counts totals a bundle.
type Counts struct {
	Sources    int   `json:"sources"`
	Rows       int   `json:"rows"`       // rows of tables, the account row included
	Files      int   `json:"files"`      // objects copied
	FileBytes  int64 `json:"file_bytes"` // their bytes
	Records    int   `json:"records"`    // processors' records
	Exclusions int   `json:"exclusions"`
	Gaps       int   `json:"gaps"`
}

// Source is one place the bundle's data came from.
type Source struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"` // KindAccount, KindTable, KindObjects or KindProcessor
	Path     string `json:"path,omitempty"`
	Count    int    `json:"count"`
	Bytes    int64  `json:"bytes,omitempty"`
	Complete bool   `json:"complete"`
}

// File is one object copied into the bundle.
type File struct {
	Source       string    `json:"source"` // the S3 location's s3://bucket/prefix-template
	Bucket       string    `json:"bucket"`
	Key          string    `json:"key"`
	Path         string    `json:"path"` // in the archive
	Size         int64     `json:"size"`
	SHA256       string    `json:"sha256"`
	LastModified time.Time `json:"last_modified"`
}

// Exclusion is a column never disclosed.
type Exclusion struct {
	Source string `json:"source"` // schema.table
	Column string `json:"column"`
	Reason string `json:"reason"`
}

// Gap is a source that could not be exported, and why.
type Gap struct {
	Source string `json:"source"`
	Reason string `json:"reason"`
}

// Index is what index.html says beside the bundle's contents.
type Index struct {
	// Title heads the page; empty: "Your personal data".
	Title string
	// Statement is the GDPR Art. 15 information, as datamap.Map.Statement
	// gives it.
	Statement datamap.Disclosure
	// Portability marks a portability bundle (GDPR Art. 20).
	Portability bool
	// GeneratedAt is when the bundle was made; zero: now.
	GeneratedAt time.Time
}

// Options say whose bundle ExportSubject builds, from where, and where it goes.
type Options struct {
	DB  appdb.TxStarter // the application database: a *pgxpool.Pool or a *pgx.Conn
	S3  *s3.Client      // reads the person's objects and writes the bundle
	Map *datamap.Map
	// UserID is the person's id in the application.
	UserID string
	// Identifiers are the person's values of identity-table columns that
	// tables keyed by them (the data map's by) match, by column: every
	// email address the request knows, for the email column. nil: read
	// from the person's identity row.
	Identifiers map[string][]string
	// Bucket and Key name the bundle's object. The key should not contain
	// the user id (use the request id): it shows in logs and links.
	Bucket, Key string
	// Portability limits the bundle to the data the person provided (the
	// data map's disclosure.provided_by_person) and leaves processors out.
	Portability bool
	// Processors export what each processor holds, by processor name: a
	// function typically calls a connector's Export with the ExportWriter
	// it is given. A processor of the data map without a function here is
	// listed as a gap.
	Processors map[string]func(processors.ExportWriter) error
	// Gaps give the reason a processor of the data map is missing (e.g. the
	// privacy team skipped it); the index states it.
	Gaps map[string]string
	// GeneratedAt is the bundle's date; zero: now.
	GeneratedAt time.Time
	// Title heads index.html; empty: "Your personal data".
	Title string
}

// ExportSubject builds the bundle of one person into one S3 object,
// bucket/key, written as a multipart upload (see S3Writer), and returns its
// manifest. The account row and the tables are read in one read-only,
// repeatable-read transaction, so they agree with each other; then the
// files are copied and the processors asked. A processor that fails is
// recorded as a gap and the bundle completed without it; any other error
// aborts the upload, so no partial bundle is ever left in S3. Errors carry
// no personal data.
func ExportSubject(ctx context.Context, o Options) (Manifest, error) {
	switch {
	case o.DB == nil || o.S3 == nil || o.Map == nil:
		return Manifest{}, errors.New("export: a database, an S3 client and a data map are required")
	case o.UserID == "":
		return Manifest{}, errors.New("export: an empty user id")
	}
	w, err := NewS3Writer(ctx, o.S3, o.Bucket, o.Key)
	if err != nil {
		return Manifest{}, err
	}
	m, err := export(ctx, o, NewBundle(w))
	if err != nil {
		_ = w.Abort()
		return Manifest{}, err
	}
	if err := w.Close(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

func export(ctx context.Context, o Options, b *Bundle) (Manifest, error) {
	dm := o.Map
	include := func(ref string) bool { return !o.Portability || dm.ProvidedByPerson(ref) }

	tx, err := o.DB.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return Manifest{}, dbError("begin a read-only transaction", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	person := appdb.Person{UserID: o.UserID, Identifiers: o.Identifiers}
	if person.Identifiers == nil {
		if person.Identifiers, err = appdb.Identifiers(ctx, tx, dm, o.UserID); err != nil {
			return Manifest{}, err
		}
	}
	var accountExclude []string
	if a := dm.Accounts; a != nil {
		accountExclude = a.Exclude
		// A table listed under tables as well adds its exclusions.
		for _, t := range dm.Tables {
			if t.Name == a.Table {
				accountExclude = union(accountExclude, t.Exclude)
			}
		}
		if include(a.Table) {
			if err := b.AddAccount(ctx, tx, *a, o.UserID, accountExclude...); err != nil {
				return Manifest{}, err
			}
		}
	}
	for _, t := range dm.Tables {
		if (dm.Accounts != nil && t.Name == dm.Accounts.Table) || !include(t.Name) {
			continue
		}
		if err := b.AddTable(ctx, tx, t, person); err != nil {
			return Manifest{}, err
		}
	}
	if err := tx.Rollback(ctx); err != nil { // read-only: nothing to commit
		return Manifest{}, dbError("end the read-only transaction", err)
	}

	for _, loc := range dm.S3 {
		if !include(loc.LocationRef()) {
			continue
		}
		if err := b.AddObjects(ctx, o.S3, loc, o.UserID); err != nil {
			return Manifest{}, err
		}
	}

	if !o.Portability {
		for _, name := range slices.Sorted(maps.Keys(o.Processors)) {
			err := b.AddProcessor(name, o.Processors[name])
			if err != nil && !errors.Is(err, ErrSourceFailed) {
				return Manifest{}, err
			}
		}
		for _, p := range dm.Processors {
			if _, ok := o.Processors[p.Name]; !ok {
				reason, decided := o.Gaps[p.Name]
				if !decided {
					reason = "this processor has no automatic export: what it holds is not in this bundle"
				}
				b.AddGap(p.Name, reason)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return Manifest{}, &redacted{msg: "export: " + describe(err), err: err}
	}
	return b.Close(Index{Title: o.Title, Statement: dm.Statement(), Portability: o.Portability, GeneratedAt: o.GeneratedAt})
}
