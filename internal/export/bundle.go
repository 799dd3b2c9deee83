package export

import (
	"archive/zip"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/lethe-privacy/lethe/internal/appdb"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/processors"
)

// Source kinds, as Source.Kind says them.
const (
	KindAccount   = "account"   // the account row
	KindTable     = "table"     // rows of a table of the application database
	KindObjects   = "objects"   // files under an S3 location
	KindProcessor = "processor" // records a third-party processor returned
)

// ErrSourceFailed marks the failure of a source itself (a processor whose
// export failed), after which the bundle is still usable: what the source
// wrote is kept and terminated, the source is marked incomplete and a gap
// is recorded. Any other error from a Bundle leaves it unusable.
var ErrSourceFailed = errors.New("export: a source failed")

// Bundle writes a person's data bundle: one ZIP archive, written entry by
// entry to an io.Writer (an S3Writer in ExportSubject) without holding any
// source whole in memory. Add the sources, then Close with the index. A
// Bundle is not safe for concurrent use; after an error other than
// ErrSourceFailed every call fails.
//
// The archive holds:
//
//	index.html                        what the bundle holds and the GDPR Art. 15 information, readable offline
//	manifest.json                     the same for programs (see Manifest)
//	data/postgres/<schema.table>.json a JSON array of the person's rows, one object per row
//	data/processors/<name>.json       a JSON array of a processor's records (processors.Record)
//	files/<bucket>/<key>              the person's objects, byte for byte
type Bundle struct {
	zw         *zip.Writer
	names      map[string]bool
	sources    []Source
	files      []File
	exclusions []Exclusion
	gaps       []Gap
	err        error
	closed     bool
}

// NewBundle starts a bundle written to w. Close does not close w.
func NewBundle(w io.Writer) *Bundle {
	zw := zip.NewWriter(w)
	zw.RegisterCompressor(zip.Deflate, newFlateWriter)
	return &Bundle{zw: zw, names: map[string]bool{}}
}

// flateWriters keeps deflate compressors between entries: each holds about
// a megabyte of tables and windows.
var flateWriters sync.Pool

// newFlateWriter compresses an entry at flate.BestSpeed: several times
// faster than the default level, at a small cost in size.
func newFlateWriter(w io.Writer) (io.WriteCloser, error) {
	if fw, ok := flateWriters.Get().(*flate.Writer); ok {
		fw.Reset(w)
		return &pooledFlate{fw}, nil
	}
	fw, err := flate.NewWriter(w, flate.BestSpeed)
	if err != nil {
		return nil, err
	}
	return &pooledFlate{fw}, nil
}

type pooledFlate struct{ *flate.Writer }

func (p *pooledFlate) Close() error {
	err := p.Writer.Close()
	flateWriters.Put(p.Writer)
	p.Writer = nil
	return err
}

// usable says why the bundle cannot take another entry, if it cannot.
func (b *Bundle) usable() error {
	switch {
	case b.err != nil:
		return b.err
	case b.closed:
		return errors.New("export: the bundle is closed")
	}
	return nil
}

// fail makes err the bundle's sticky error and returns it.
func (b *Bundle) fail(err error) error {
	if b.err == nil {
		b.err = err
	}
	return err
}

// create opens the archive entry name, which must be new.
func (b *Bundle) create(name string, method uint16, modified time.Time) (io.Writer, error) {
	if b.names[name] {
		return nil, fmt.Errorf("export: the bundle already holds %s", name)
	}
	w, err := b.zw.CreateHeader(&zip.FileHeader{Name: name, Method: method, Modified: modified.UTC()})
	if err != nil {
		return nil, b.fail(fmt.Errorf("export: write %s: %w", name, err))
	}
	b.names[name] = true
	return w, nil
}

// AddAccount writes the person's account row (a.Key = userID) to
// data/postgres/<a.Table>.json, leaving out the columns in a.Exclude and in
// exclude: they are never selected.
func (b *Bundle) AddAccount(ctx context.Context, db appdb.Querier, a datamap.Accounts, userID string, exclude ...string) error {
	return b.addRows(ctx, db, KindAccount, datamap.Table{Name: a.Table, Key: a.Key}, appdb.Person{UserID: userID}, union(a.Exclude, exclude))
}

// AddTable writes the person's rows of t (those whose key column holds
// their user id, or their identifier for a table keyed by another (by),
// or, for a via table, those reached through its chain) to
// data/postgres/<t.Name>.json: a JSON array with one object per row, keys
// in column order, values as PostgreSQL's row_to_json gives them (numbers,
// strings, booleans, ISO 8601 timestamps, nested JSON for json columns).
// Rows are read and written one at a time. The columns in t.Exclude and
// in exclude are never selected. Each must exist, or nothing is written:
// an excluded column that is gone was most likely renamed, and would
// otherwise be disclosed under its new name.
func (b *Bundle) AddTable(ctx context.Context, db appdb.Querier, t datamap.Table, person appdb.Person, exclude ...string) error {
	return b.addRows(ctx, db, KindTable, t, person, union(t.Exclude, exclude))
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, c := range b {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

var tableRe = regexp.MustCompile(`^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$`)

func (b *Bundle) addRows(ctx context.Context, db appdb.Querier, kind string, t datamap.Table, person appdb.Person, exclude []string) error {
	if err := b.usable(); err != nil {
		return err
	}
	table, path := t.Name, t.Path()
	if !tableRe.MatchString(table) || len(path) == 0 {
		return fmt.Errorf("export: table %q: want schema.table and a key column or a via chain", table)
	}
	key := path[0].Column // the key, or the column a via chain starts from
	if _, _, err := appdb.Match(t, 1); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if person.UserID == "" {
		return errors.New("export: an empty user id")
	}
	cols, err := appdb.TableColumns(ctx, db, table)
	if err != nil {
		return dbError("read the columns of table "+table, err)
	}
	has := func(name string) bool {
		return slices.ContainsFunc(cols, func(c appdb.TableColumn) bool { return c.Name == name })
	}
	if !has(key) {
		return fmt.Errorf("export: table %s has no column %s (its key)", table, key)
	}
	for _, c := range exclude {
		if !has(c) {
			return fmt.Errorf("export: table %s has no column %s, which the data map excludes: check the map against the schema", table, c)
		}
	}
	// Every column but the excluded ones, in table order, the rows ordered
	// by the primary key's selected columns, so a bundle made twice reads
	// the same.
	rows, err := appdb.PersonRows(ctx, db, t, person, cols, exclude)
	if err != nil {
		return dbError("read table "+table, err)
	}
	defer rows.Close()
	name := "data/postgres/" + table + ".json"
	w, err := b.create(name, zip.Deflate, time.Now())
	if err != nil {
		return err
	}
	n := 0
	write := func(p []byte) error {
		if _, err := w.Write(p); err != nil {
			return b.fail(fmt.Errorf("export: write %s: %w", name, err))
		}
		return nil
	}
	if err := write([]byte("[")); err != nil {
		return err
	}
	for rows.Next() {
		sep := ",\n"
		if n == 0 {
			sep = "\n"
		}
		if err := write([]byte(sep)); err != nil {
			return err
		}
		if err := write(rows.RawValues()[0]); err != nil {
			return err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return b.fail(dbError("read table "+table, err))
	}
	if err := write([]byte("\n]\n")); err != nil {
		return err
	}
	b.sources = append(b.sources, Source{Name: table, Kind: kind, Path: name, Count: n, Complete: true})
	for _, c := range exclude {
		b.exclusions = append(b.exclusions, Exclusion{Source: table, Column: c, Reason: "never disclosed"})
	}
	return nil
}

// sniffSize is how much of an object AddObjects reads ahead to decide
// whether compressing it is worth it.
const sniffSize = 64 << 10

// copyBufferSize is the buffer AddObjects copies objects through.
const copyBufferSize = 256 << 10

var (
	sniffBuffers = sync.Pool{New: func() any { b := make([]byte, sniffSize); return &b }}
	copyBuffers  = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}
)

// AddObjects copies every object under loc's prefix for userID into
// files/<bucket>/<key>, byte for byte: each body is streamed from GetObject
// into the archive, never read whole. Objects that compress by less than a
// tenth (images, archives, PDFs) are stored rather than deflated. An object
// deleted between listing and reading is skipped.
func (b *Bundle) AddObjects(ctx context.Context, client *s3.Client, loc datamap.Location, userID string) error {
	if err := b.usable(); err != nil {
		return err
	}
	ref := loc.LocationRef()
	prefix, err := loc.PrefixFor(userID)
	if err != nil {
		return fmt.Errorf("export: S3 location %s: %w", ref, err)
	}
	src := Source{Name: ref, Kind: KindObjects, Complete: true}
	pages := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(loc.Bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return s3Error("list S3 location "+ref, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if strings.HasSuffix(key, "/") && aws.ToInt64(o.Size) == 0 {
				continue // a "folder" marker, no data
			}
			f, ok, err := b.addObject(ctx, client, loc.Bucket, key, ref)
			if err != nil {
				return err
			}
			if ok {
				b.files = append(b.files, f)
				src.Count++
				src.Bytes += f.Size
			}
		}
	}
	b.sources = append(b.sources, src)
	return nil
}

// addObject copies one object into the archive; ok is false when the
// object was deleted before it could be read.
func (b *Bundle) addObject(ctx context.Context, client *s3.Client, bucket, key, ref string) (f File, ok bool, err error) {
	obj, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		var gone *types.NoSuchKey
		if errors.As(err, &gone) {
			return File{}, false, nil
		}
		return File{}, false, s3Error("read an object of S3 location "+ref, err)
	}
	defer obj.Body.Close()

	headBuf := sniffBuffers.Get().(*[]byte)
	defer sniffBuffers.Put(headBuf)
	n, err := io.ReadFull(obj.Body, *headBuf)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return File{}, false, s3Error("read an object of S3 location "+ref, err)
	}
	head := (*headBuf)[:n]

	modified := aws.ToTime(obj.LastModified)
	if modified.IsZero() {
		modified = time.Now()
	}
	name := b.uniqueName("files/" + bucket + "/" + safePath(key))
	w, err := b.create(name, compressionFor(head), modified)
	if err != nil {
		return File{}, false, err
	}
	sum := sha256.New()
	dst := io.MultiWriter(w, sum)
	if _, err := dst.Write(head); err != nil {
		return File{}, false, b.fail(fmt.Errorf("export: write a file of S3 location %s: %w", ref, err))
	}
	size := int64(len(head))
	if n == len(*headBuf) {
		buf := copyBuffers.Get().(*[]byte)
		rest, err := io.CopyBuffer(dst, readerOnly{obj.Body}, *buf)
		copyBuffers.Put(buf)
		size += rest
		if err != nil {
			// The entry is half written: the archive cannot be finished.
			return File{}, false, b.fail(s3Error("copy an object of S3 location "+ref, err))
		}
	}
	if want := aws.ToInt64(obj.ContentLength); obj.ContentLength != nil && want != size {
		return File{}, false, b.fail(fmt.Errorf("export: an object of S3 location %s: read %d bytes, S3 announced %d", ref, size, want))
	}
	return File{
		Source: ref, Bucket: bucket, Key: key, Path: name, Size: size,
		SHA256: hex.EncodeToString(sum.Sum(nil)), LastModified: modified.UTC(),
	}, true, nil
}

// readerOnly hides a reader's WriteTo, so io.CopyBuffer uses the buffer
// given instead of a reader's own (possibly larger) one.
type readerOnly struct{ io.Reader }

// compressionFor picks an entry's method from its first bytes: Store when a
// fast trial compression saves less than a tenth (the data is compressed
// already), Deflate otherwise.
func compressionFor(head []byte) uint16 {
	if len(head) < 1024 {
		return zip.Deflate
	}
	var c countingWriter
	fw, _ := newFlateWriter(&c)
	_, _ = fw.Write(head)
	_ = fw.Close()
	if c.n*10 >= int64(len(head))*9 {
		return zip.Store
	}
	return zip.Deflate
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// safePath turns an object key into an archive path that unpacks inside
// its folder everywhere. A key that needs it (one with an empty, "." or
// ".." segment, as in "a//b" or "../x", a backslash, a control character
// or invalid UTF-8) has those bytes percent-encoded, "%" included, and its
// segments "", "." and ".." written %00, %2E and %2E%2E. The manifest maps
// every path back to its key.
func safePath(key string) string {
	segs := strings.Split(key, "/")
	clean := utf8.ValidString(key) && !strings.ContainsFunc(key, func(r rune) bool { return r == '\\' || r < 0x20 || r == 0x7f })
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			clean = false
		}
	}
	if clean {
		return key
	}
	for i, s := range segs {
		var e strings.Builder
		for j := 0; j < len(s); {
			r, size := utf8.DecodeRuneInString(s[j:])
			switch {
			case r == utf8.RuneError && size <= 1, r == '%', r == '\\', r < 0x20, r == 0x7f:
				for k := j; k < j+max(size, 1); k++ {
					fmt.Fprintf(&e, "%%%02X", s[k])
				}
			default:
				e.WriteString(s[j : j+size])
			}
			j += max(size, 1)
		}
		switch e.String() {
		case "":
			segs[i] = "%00"
		case ".":
			segs[i] = "%2E"
		case "..":
			segs[i] = "%2E%2E"
		default:
			segs[i] = e.String()
		}
	}
	return strings.Join(segs, "/")
}

// uniqueName returns name, or name~2, name~3… when the archive holds it
// already (two keys that map to one path).
func (b *Bundle) uniqueName(name string) string {
	if !b.names[name] {
		return name
	}
	for i := 2; ; i++ {
		if n := fmt.Sprintf("%s~%d", name, i); !b.names[n] {
			return n
		}
	}
}

var processorNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// AddProcessor writes what a third-party processor holds to
// data/processors/<name>.json: fn receives an ExportWriter (give it to the
// connector's Export) whose records are written one at a time as a JSON
// array of processors.Record. If fn fails, the records written are kept,
// the source is marked incomplete, a gap is recorded with the error as its
// reason (processors' errors carry no personal data), and the error
// returned wraps ErrSourceFailed: the bundle remains usable.
func (b *Bundle) AddProcessor(name string, fn func(processors.ExportWriter) error) error {
	if err := b.usable(); err != nil {
		return err
	}
	if !processorNameRe.MatchString(name) {
		return fmt.Errorf("export: processor name %q: want 1-64 characters of a-z, 0-9, '_', '.', '-'", name)
	}
	path := "data/processors/" + name + ".json"
	w, err := b.create(path, zip.Deflate, time.Now())
	if err != nil {
		return err
	}
	rw := &recordWriter{w: w, path: path}
	if _, err := w.Write([]byte("[")); err != nil {
		return b.fail(fmt.Errorf("export: write %s: %w", path, err))
	}
	fnErr := fn(rw)
	if rw.err != nil {
		return b.fail(rw.err) // the archive failed, not the processor
	}
	if _, err := w.Write([]byte("\n]\n")); err != nil {
		return b.fail(fmt.Errorf("export: write %s: %w", path, err))
	}
	b.sources = append(b.sources, Source{Name: name, Kind: KindProcessor, Path: path, Count: rw.n, Complete: fnErr == nil})
	if fnErr != nil {
		reason := "the export failed: " + describe(fnErr)
		if rw.n > 0 {
			reason += fmt.Sprintf(" (after %d records, which are included)", rw.n)
		}
		b.gaps = append(b.gaps, Gap{Source: name, Reason: reason})
		return fmt.Errorf("%w: processor %s: %s", ErrSourceFailed, name, describe(fnErr))
	}
	return nil
}

// recordWriter is the processors.ExportWriter of AddProcessor.
type recordWriter struct {
	w    io.Writer
	path string
	n    int
	err  error // a write to the archive failed
}

// WriteRecord appends r to the processor's file. Its Data must be valid JSON.
func (rw *recordWriter) WriteRecord(ctx context.Context, r processors.Record) error {
	if rw.err != nil {
		return rw.err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	line, err := json.Marshal(r)
	if err != nil {
		return &redacted{msg: fmt.Sprintf("export: record %d of %s is not valid JSON", rw.n+1, rw.path), err: err}
	}
	sep := ",\n"
	if rw.n == 0 {
		sep = "\n"
	}
	if _, err := rw.w.Write(append([]byte(sep), line...)); err != nil {
		rw.err = fmt.Errorf("export: write %s: %w", rw.path, err)
		return rw.err
	}
	rw.n++
	return nil
}

// AddGap records a source that could not be exported and why, for the
// index and the manifest to list (call it before Close). The reason is
// shown to the person and returned in the Manifest, so it must carry no
// personal data.
func (b *Bundle) AddGap(source, reason string) {
	b.gaps = append(b.gaps, Gap{Source: source, Reason: reason})
}

// Close writes index.html and manifest.json and finishes the archive (the
// underlying writer stays open). It returns the manifest written.
func (b *Bundle) Close(index Index) (Manifest, error) {
	if err := b.usable(); err != nil {
		return Manifest{}, err
	}
	if index.GeneratedAt.IsZero() {
		index.GeneratedAt = time.Now()
	}
	m := Manifest{
		Schema:      ManifestSchema,
		GeneratedAt: index.GeneratedAt.UTC().Truncate(time.Second),
		Portability: index.Portability,
		Sources:     append([]Source{}, b.sources...),
		Files:       append([]File{}, b.files...),
		Exclusions:  append([]Exclusion{}, b.exclusions...),
		Gaps:        append([]Gap{}, b.gaps...),
	}
	m.Counts = Counts{Sources: len(m.Sources), Files: len(m.Files), Exclusions: len(m.Exclusions), Gaps: len(m.Gaps)}
	for _, s := range m.Sources {
		switch s.Kind {
		case KindAccount, KindTable:
			m.Counts.Rows += s.Count
		case KindObjects:
			m.Counts.FileBytes += s.Bytes
		case KindProcessor:
			m.Counts.Records += s.Count
		}
	}
	w, err := b.create("index.html", zip.Deflate, m.GeneratedAt)
	if err != nil {
		return Manifest{}, err
	}
	if err := writeIndex(w, index, m); err != nil {
		return Manifest{}, b.fail(fmt.Errorf("export: write index.html: %w", err))
	}
	if w, err = b.create("manifest.json", zip.Deflate, m.GeneratedAt); err != nil {
		return Manifest{}, err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return Manifest{}, b.fail(fmt.Errorf("export: write manifest.json: %w", err))
	}
	if err := b.zw.Close(); err != nil {
		return Manifest{}, b.fail(fmt.Errorf("export: finish the archive: %w", err))
	}
	b.closed = true
	return m, nil
}

// href is an archive path as a relative link: each segment escaped, so
// that a "%" in a name is not read as an escape.
func href(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
