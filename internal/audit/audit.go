// Package audit keeps Lethe's tamper-evident audit trail: what happened to
// each privacy request, when, and on whose initiative.
//
// The trail is the table lethe.audit_log. Rows are only ever added, by
// [Append], and form a hash chain: each row stores the hash of the row before
// it (prev_hash, 32 zero bytes for the first row) and its own hash
//
//	hash = SHA-256(prev_hash || f(at) || f(request_id) || f(subject_ref) || f(actor) || f(action) || f(detail))
//
// where f(x) is the length of x in bytes as a 4-byte big-endian integer
// followed by x itself; at is the timestamp as stored (microseconds) in UTC,
// formatted as RFC 3339 with trailing zeros of the fraction dropped (Go's
// [time.RFC3339Nano]); a missing request_id or subject_ref is the empty
// string; and detail is canonical JSON: the jsonb value as PostgreSQL prints
// it, re-encoded with object keys sorted bytewise, no insignificant
// whitespace, numbers exactly as PostgreSQL prints them, strings in UTF-8
// with only '"', '\' and control characters (as \u00xx) escaped. The sequence
// number is not hashed, so the gap an aborted append leaves in seq is not a
// break; the idempotency key is not hashed either.
//
// [Verify] recomputes the chain and reports the first row whose contents no
// longer match its hash (the row was altered) or whose prev_hash is not the
// hash of the row before it (a row was deleted, inserted or rewritten before
// it). Like any hash chain, it cannot show that rows were cut off its end:
// keep [Report.LastSeq] and [Report.LastHash] somewhere else from time to time
// and check that they are still there.
//
// The trail holds no personal data. People are subject references ("sr_…"),
// requests are request ids ("req_…"), actors are roles or key ids
// ("operator:key_abc"). Append refuses identifiers that are not such tokens,
// and a Detail with anything that looks like an email address or a string
// longer than [MaxStringLen] characters, so that free text cannot creep in.
// Error messages never repeat the refused value.
package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	// MaxStringLen is the longest string, in characters, a Detail may hold.
	MaxStringLen = 512
	// MaxDetailBytes is the largest Detail, as JSON, Append accepts.
	MaxDetailBytes = 16 << 10
	// MaxTokenLen is the longest identifier (request id, subject reference,
	// actor, action, idempotency key) Append accepts.
	MaxTokenLen = 200

	// HashSize is the size of prev_hash and hash.
	HashSize = sha256.Size

	// appendLock is the transaction-level advisory lock ("letheaud") that
	// serialises appends, so that each one chains to the one before it.
	// Anything else that writes to lethe.audit_log must hold it too.
	appendLock int64 = 0x6c65746865617564
)

var (
	// ErrRefused means the entry was not written because it is incomplete
	// or carries something the audit trail must not hold: what looks like
	// personal data, or free text.
	ErrRefused = errors.New("audit entry refused")
	// ErrKeyConflict means the idempotency key was already used for an entry
	// about another request, subject, actor or action: a bug in how the
	// caller derives its keys. Nothing was written.
	ErrKeyConflict = errors.New("idempotency key already used for a different audit entry")
)

// Entry is one event for the audit trail.
type Entry struct {
	// RequestID is the privacy request the event is about ("req_…"), if any.
	RequestID string
	// SubjectRef is the person it is about, as a subject reference ("sr_…"), if any.
	SubjectRef string
	// Actor is who caused it: "system", "subject", "operator:key_abc",
	// "backend:key_abc". Required.
	Actor string
	// Action is what happened: "request.received", "verification.code_sent",
	// "request.extended". Required.
	Action string
	// At is when it happened; the zero time means now (the database clock).
	// It is stored and hashed with microsecond precision.
	At time.Time
	// Detail holds further facts as a JSON object: counts, ids, reasons
	// from a fixed vocabulary. Never personal data or free text.
	Detail map[string]any
	// IdempotencyKey, when set, makes the append idempotent: appending
	// another entry with the same key returns the first one and writes
	// nothing. Retried Temporal activities use it so as not to log twice.
	IdempotencyKey string
}

// Recorded is an entry as the audit trail holds it.
type Recorded struct {
	// Entry is the entry as stored: At in UTC with microsecond precision,
	// Detail decoded from the stored JSON (numbers as [json.Number]).
	Entry
	// Seq is the entry's position in the trail.
	Seq int64
	// PrevHash is the previous entry's hash, or 32 zero bytes for the first.
	PrevHash []byte
	// Hash chains the entry's contents to PrevHash (see the package doc).
	Hash []byte
}

// Report is the outcome of [Verify].
type Report struct {
	// Entries is how many entries the trail holds.
	Entries int64
	// FirstBroken is the seq of the first entry that breaks the chain,
	// 0 if the chain is intact.
	FirstBroken int64
	// Reason says how that entry breaks the chain; empty if intact.
	Reason string
	// LastSeq and LastHash are the newest entry's seq and hash (0 and nil
	// for an empty trail). Keeping them elsewhere lets a later check show
	// that no entries were cut off the end.
	LastSeq  int64
	LastHash []byte
}

// Intact reports whether the chain has no broken link.
func (r Report) Intact() bool { return r.FirstBroken == 0 }

// columns are the stored entry, in the order scanEntry reads them.
const columns = `SELECT seq, at, coalesce(request_id, ''), coalesce(subject_ref, ''), actor, action,
	detail::text, coalesce(idempotency_key, ''), prev_hash, hash FROM lethe.audit_log`

// Append adds e to the end of the trail and returns it as recorded.
//
// Appends are serialised with a transaction-level advisory lock, so that the
// chain stays linear with any number of concurrent writers, in this process
// or others. With an IdempotencyKey already in the trail, Append returns the
// entry recorded under it and writes nothing (or fails with [ErrKeyConflict]
// if that entry is about another request, subject, actor or action). An entry
// that could carry personal data is refused with [ErrRefused].
func Append(ctx context.Context, db *pgxpool.Pool, e Entry) (Recorded, error) {
	detail, err := e.check()
	if err != nil {
		return Recorded{}, err
	}
	// Read committed, so that each statement after the lock sees the
	// entries committed by the appends that held it before.
	tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return Recorded{}, fmt.Errorf("audit: append %s: %w", e.Action, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, appendLock); err != nil {
		return Recorded{}, fmt.Errorf("audit: append %s: lock: %w", e.Action, err)
	}

	if e.IdempotencyKey != "" {
		first, err := scanEntry(tx.QueryRow(ctx, columns+` WHERE idempotency_key = $1`, e.IdempotencyKey))
		switch {
		case err == nil:
			if first.requestID != e.RequestID || first.subjectRef != e.SubjectRef ||
				first.actor != e.Actor || first.action != e.Action {
				return Recorded{}, fmt.Errorf("audit: append %s: %w", e.Action, ErrKeyConflict)
			}
			return first.recorded()
		case !errors.Is(err, pgx.ErrNoRows):
			return Recorded{}, fmt.Errorf("audit: append %s: look up idempotency key: %w", e.Action, err)
		}
	}

	// The previous hash, the detail as jsonb will print it (so that the hash
	// is over exactly what Verify will read back) and the database clock.
	var (
		prevHash []byte
		stored   string
		now      time.Time
	)
	err = tx.QueryRow(ctx, `SELECT (SELECT hash FROM lethe.audit_log ORDER BY seq DESC LIMIT 1),
		$1::text::jsonb::text, clock_timestamp()`, string(detail)).Scan(&prevHash, &stored, &now)
	if err != nil {
		return Recorded{}, fmt.Errorf("audit: append %s: read chain head: %w", e.Action, err)
	}
	if prevHash == nil {
		prevHash = make([]byte, HashSize)
	}
	at := e.At
	if at.IsZero() {
		at = now
	}
	at = at.Truncate(time.Microsecond).UTC()

	r := storedEntry{
		at: at, requestID: e.RequestID, subjectRef: e.SubjectRef, actor: e.Actor, action: e.Action,
		detail: stored, idempotencyKey: e.IdempotencyKey, prevHash: prevHash,
	}
	canonical, err := canonicalJSON([]byte(stored))
	if err != nil {
		return Recorded{}, fmt.Errorf("audit: append %s: %w", e.Action, err)
	}
	r.hash = r.computeHash(canonical)
	err = tx.QueryRow(ctx, `INSERT INTO lethe.audit_log
		(at, request_id, subject_ref, actor, action, detail, idempotency_key, prev_hash, hash)
		VALUES ($1, nullif($2, ''), nullif($3, ''), $4, $5, $6::text::jsonb, nullif($7, ''), $8, $9)
		RETURNING seq`,
		r.at, r.requestID, r.subjectRef, r.actor, r.action, r.detail, r.idempotencyKey, r.prevHash, r.hash,
	).Scan(&r.seq)
	if err != nil {
		return Recorded{}, fmt.Errorf("audit: append %s: %w", e.Action, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return Recorded{}, fmt.Errorf("audit: append %s: commit: %w", e.Action, err)
	}
	return r.recorded()
}

// Verify recomputes the whole chain in seq order, reading the trail as a
// stream, and reports the first entry that breaks it. A broken chain is not
// an error: the error is for failing to read the trail.
func Verify(ctx context.Context, db *pgxpool.Pool) (Report, error) {
	rows, err := db.Query(ctx, columns+` ORDER BY seq`)
	if err != nil {
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	defer rows.Close()
	var rep Report
	for rows.Next() {
		r, err := scanEntry(rows)
		if err != nil {
			return Report{}, fmt.Errorf("audit: verify: %w", err)
		}
		rep.Entries++
		if rep.Intact() {
			reason, err := r.check(rep.LastSeq, rep.LastHash)
			if err != nil {
				return Report{}, fmt.Errorf("audit: verify seq %d: %w", r.seq, err)
			}
			if reason != "" {
				rep.FirstBroken, rep.Reason = r.seq, reason
			}
		}
		rep.LastSeq, rep.LastHash = r.seq, r.hash
	}
	if err := rows.Err(); err != nil {
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	return rep, nil
}

// ForRequest returns the trail of one request, oldest first.
func ForRequest(ctx context.Context, db *pgxpool.Pool, requestID string) ([]Recorded, error) {
	if err := checkToken("request id", requestID, true); err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, columns+` WHERE request_id = $1 ORDER BY seq`, requestID)
	if err != nil {
		return nil, fmt.Errorf("audit: trail of %s: %w", requestID, err)
	}
	defer rows.Close()
	var out []Recorded
	for rows.Next() {
		r, err := scanEntry(rows)
		if err == nil {
			var rec Recorded
			if rec, err = r.recorded(); err == nil {
				out = append(out, rec)
				continue
			}
		}
		return nil, fmt.Errorf("audit: trail of %s: %w", requestID, err)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: trail of %s: %w", requestID, err)
	}
	return out, nil
}

// storedEntry is a row of lethe.audit_log, detail as PostgreSQL prints it.
type storedEntry struct {
	seq                                  int64
	at                                   time.Time
	requestID, subjectRef, actor, action string
	detail                               string
	idempotencyKey                       string
	prevHash, hash                       []byte
}

func scanEntry(row pgx.Row) (storedEntry, error) {
	var r storedEntry
	err := row.Scan(&r.seq, &r.at, &r.requestID, &r.subjectRef, &r.actor, &r.action,
		&r.detail, &r.idempotencyKey, &r.prevHash, &r.hash)
	r.at = r.at.UTC()
	return r, err
}

// computeHash chains the entry's contents, detail in canonical JSON, to its prevHash.
func (r storedEntry) computeHash(canonicalDetail []byte) []byte {
	h := sha256.New()
	h.Write(r.prevHash)
	var n [4]byte
	for _, f := range [][]byte{
		[]byte(r.at.UTC().Format(time.RFC3339Nano)),
		[]byte(r.requestID), []byte(r.subjectRef), []byte(r.actor), []byte(r.action),
		canonicalDetail,
	} {
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		h.Write(n[:])
		h.Write(f)
	}
	return h.Sum(nil)
}

// check says how r breaks the chain after the entry prevSeq with prevHash
// (0 and nil: r is the first), or "" if it does not.
func (r storedEntry) check(prevSeq int64, prevHash []byte) (string, error) {
	if prevHash == nil {
		if !bytes.Equal(r.prevHash, make([]byte, HashSize)) {
			return "prev_hash of the first entry is not zero: entries before it were deleted", nil
		}
	} else if !bytes.Equal(r.prevHash, prevHash) {
		return fmt.Sprintf("prev_hash is not the hash of the entry before it (seq %d): "+
			"an entry between them was deleted, or one was inserted or rewritten", prevSeq), nil
	}
	canonical, err := canonicalJSON([]byte(r.detail))
	if err != nil {
		return "", err
	}
	if !bytes.Equal(r.computeHash(canonical), r.hash) {
		return "hash does not match the entry's contents: the entry was altered", nil
	}
	return "", nil
}

// recorded decodes r for callers.
func (r storedEntry) recorded() (Recorded, error) {
	dec := json.NewDecoder(strings.NewReader(r.detail))
	dec.UseNumber()
	var detail map[string]any
	if err := dec.Decode(&detail); err != nil {
		return Recorded{}, fmt.Errorf("decode detail of seq %d: %w", r.seq, err)
	}
	return Recorded{
		Entry: Entry{
			RequestID: r.requestID, SubjectRef: r.subjectRef, Actor: r.actor, Action: r.action,
			At: r.at, Detail: detail, IdempotencyKey: r.idempotencyKey,
		},
		Seq: r.seq, PrevHash: r.prevHash, Hash: r.hash,
	}, nil
}

// check refuses an entry the trail must not hold and returns its Detail as JSON.
func (e Entry) check() ([]byte, error) {
	for _, f := range []struct {
		name, value string
		required    bool
	}{
		{"request id", e.RequestID, false},
		{"subject reference", e.SubjectRef, false},
		{"actor", e.Actor, true},
		{"action", e.Action, true},
		{"idempotency key", e.IdempotencyKey, false},
	} {
		if err := checkToken(f.name, f.value, f.required); err != nil {
			return nil, err
		}
	}
	if e.Detail == nil {
		return []byte("{}"), nil
	}
	b, err := json.Marshal(e.Detail)
	if err != nil {
		return nil, fmt.Errorf("audit: %w: detail is not JSON: %w", ErrRefused, err)
	}
	if len(b) > MaxDetailBytes {
		return nil, fmt.Errorf("audit: %w: detail is larger than %d bytes", ErrRefused, MaxDetailBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("audit: %w: detail is not JSON: %w", ErrRefused, err)
	}
	if err := checkDetail("detail", v); err != nil {
		return nil, err
	}
	return b, nil
}

// checkToken accepts identifiers made of the characters request ids, subject
// references, key ids and action names are made of: no spaces (names, free
// text) and no "@" (email addresses). The value is never echoed.
func checkToken(name, v string, required bool) error {
	if v == "" {
		if required {
			return fmt.Errorf("audit: %w: %s missing", ErrRefused, name)
		}
		return nil
	}
	if !isToken(v) {
		return fmt.Errorf("audit: %w: %s is not an identifier (letters, digits and _-.:=+/ only, at most %d)",
			ErrRefused, name, MaxTokenLen)
	}
	return nil
}

func isToken(v string) bool {
	if len(v) > MaxTokenLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_', c == '-', c == '.', c == ':', c == '=', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// emailLike matches what looks like an email address, also URL-encoded.
var emailLike = regexp.MustCompile(`(?i)[^\s@]+(@|%40)[^\s@]+\.\p{L}{2,}`)

// checkDetail refuses, anywhere in v (decoded JSON), a key or string that
// looks like an email address and a string longer than MaxStringLen. The
// error names where, by the keys leading there that are identifiers.
func checkDetail(path string, v any) error {
	switch v := v.(type) {
	case string:
		if utf8.RuneCountInString(v) > MaxStringLen {
			return fmt.Errorf("audit: %w: %s is a string longer than %d characters", ErrRefused, path, MaxStringLen)
		}
		if emailLike.MatchString(v) {
			return fmt.Errorf("audit: %w: %s looks like an email address", ErrRefused, path)
		}
	case []any:
		for i, x := range v {
			if err := checkDetail(path+"["+strconv.Itoa(i)+"]", x); err != nil {
				return err
			}
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if utf8.RuneCountInString(k) > MaxStringLen || emailLike.MatchString(k) {
				return fmt.Errorf("audit: %w: a key in %s looks like an email address or is too long", ErrRefused, path)
			}
			name := k
			if !isToken(k) {
				name = "…"
			}
			if err := checkDetail(path+"."+name, v[k]); err != nil {
				return err
			}
		}
	}
	return nil
}

// canonicalJSON re-encodes a JSON document with object keys sorted bytewise,
// no insignificant whitespace, numbers as written, and strings escaped by
// fixed rules (see the package doc), so that its hash does not depend on how
// the document was laid out or on the Go version.
func canonicalJSON(doc []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("canonical detail: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("canonical detail: data after the JSON value")
	}
	var buf bytes.Buffer
	writeCanonical(&buf, v)
	return buf.Bytes(), nil
}

func writeCanonical(buf *bytes.Buffer, v any) {
	switch v := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		buf.WriteString(strconv.FormatBool(v))
	case json.Number:
		buf.WriteString(v.String())
	case string:
		writeString(buf, v)
	case []any:
		buf.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeCanonical(buf, x)
		}
		buf.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeString(buf, k)
			buf.WriteByte(':')
			writeCanonical(buf, v[k])
		}
		buf.WriteByte('}')
	}
}

// writeString writes s as a JSON string, escaping only '"', '\' and the
// control characters (as \u00xx); everything else is written as UTF-8.
func writeString(buf *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	buf.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"', c == '\\':
			buf.WriteByte('\\')
			buf.WriteByte(c)
		case c < 0x20:
			buf.WriteString(`\u00`)
			buf.WriteByte(hex[c>>4])
			buf.WriteByte(hex[c&0xf])
		default:
			buf.WriteByte(c)
		}
	}
	buf.WriteByte('"')
}
