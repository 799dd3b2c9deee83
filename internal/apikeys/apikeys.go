// Package apikeys issues, checks and revokes the API keys that authenticate
// callers of Lethe's HTTP API.
//
// A key is handed out once, as a token of the form
//
//	lethe_<id>_<secret>
//
// where <id> is "key_" followed by 16 random base32 characters (80 bits) and
// <secret> is 32 bytes from crypto/rand, base32-encoded (lower case, no
// padding: 52 characters). The id is not secret: it names the key in
// listings and in lethe.api_keys. Only the SHA-256 of the secret is stored;
// the token cannot be recovered from the database and is never shown again.
//
// [Authenticate] checks a token against the database on every call, so a
// revocation takes effect immediately. An [Authenticator] caches keys it has
// verified for a short time (10 s by default) to spare the database; with it,
// a key revoked in any process stops working within that time.
//
// Nothing this package returns or logs contains a token or a secret. Every
// credential failure is the same [ErrUnauthenticated], without saying which
// part of the token was wrong.
package apikeys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Roles a key can have. A key has exactly one.
const (
	// RoleBackend is for the company's own backend: it may submit requests
	// whose requester it has already verified, and report account events.
	RoleBackend = "backend"
	// RoleOperator is for the people who run privacy requests: approve,
	// deny, extend, cancel, and report incidents.
	RoleOperator = "operator"
)

// MaxNameLen is the longest key name, in characters.
const MaxNameLen = 100

const (
	tokenPrefix = "lethe_"
	idPrefix    = "key_"
	idBytes     = 10 // 16 base32 characters
	secretBytes = 32 // 52 base32 characters
	// maxTokenLen bounds what Authenticate looks at, well above a real token.
	maxTokenLen = 128
	// touchEvery is how often last_used_at is written at most; the SQL in
	// touch says the same.
	touchEvery = time.Minute
)

var (
	// ErrUnauthenticated is the one error for every token that does not
	// authenticate: malformed, unknown id, wrong secret or revoked key.
	ErrUnauthenticated = errors.New("apikeys: unauthenticated")
	// ErrNotFound means no key has the given id.
	ErrNotFound = errors.New("apikeys: no such key")
	// ErrInvalidRole means the role is neither RoleBackend nor RoleOperator.
	ErrInvalidRole = errors.New(`apikeys: role must be "backend" or "operator"`)
	// ErrInvalidName means the name is empty, longer than MaxNameLen
	// characters, not UTF-8 or contains control characters.
	ErrInvalidName = fmt.Errorf("apikeys: name must be 1 to %d printable characters", MaxNameLen)
)

// encoding is base32 in lower case without padding.
var encoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// decode decodes s, which must be the canonical encoding of n bytes: unused
// trailing bits must be zero, so that one token has exactly one spelling.
func decode(s string, n int) ([]byte, bool) {
	if len(s) != encoding.EncodedLen(n) {
		return nil, false
	}
	b, err := encoding.DecodeString(s)
	if err != nil || len(b) != n || encoding.EncodeToString(b) != s {
		return nil, false
	}
	return b, true
}

// DB is what the functions here need from a database: *pgxpool.Pool,
// *pgx.Conn and pgx.Tx all satisfy it.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Key describes an API key. It never holds the secret or its hash.
type Key struct {
	ID         string
	Name       string
	Role       string
	CreatedAt  time.Time
	RevokedAt  *time.Time // nil while the key is valid
	LastUsedAt *time.Time // nil until first use; updated at most once a minute
}

// Revoked reports whether the key has been revoked.
func (k Key) Revoked() bool { return k.RevokedAt != nil }

// ValidRole reports whether role is one of the roles a key can have.
func ValidRole(role string) bool {
	return role == RoleBackend || role == RoleOperator
}

// ValidName reports whether name is acceptable as a key name.
func ValidName(name string) bool {
	if name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxNameLen {
		return false
	}
	if strings.TrimSpace(name) != name {
		return false
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// Create makes a key with the given name (a label for people, such as
// "billing backend") and role, and returns the token to hand to the client.
// The token is not stored anywhere and cannot be shown again.
func Create(ctx context.Context, db DB, name, role string) (token string, key Key, err error) {
	if !ValidName(name) {
		return "", Key{}, ErrInvalidName
	}
	if !ValidRole(role) {
		return "", Key{}, ErrInvalidRole
	}
	idRaw := make([]byte, idBytes)
	secret := make([]byte, secretBytes)
	if _, err := rand.Read(idRaw); err != nil {
		return "", Key{}, fmt.Errorf("apikeys: create: %w", err)
	}
	if _, err := rand.Read(secret); err != nil {
		return "", Key{}, fmt.Errorf("apikeys: create: %w", err)
	}
	id := idPrefix + encoding.EncodeToString(idRaw)
	hash := sha256.Sum256(secret)
	key = Key{ID: id, Name: name, Role: role}
	err = db.QueryRow(ctx,
		`INSERT INTO lethe.api_keys (id, name, role, secret_hash) VALUES ($1, $2, $3, $4) RETURNING created_at`,
		id, name, role, hash[:]).Scan(&key.CreatedAt)
	if err != nil {
		return "", Key{}, fmt.Errorf("apikeys: create: %w", err)
	}
	return tokenPrefix + id + "_" + encoding.EncodeToString(secret), key, nil
}

// Revoke revokes the key with the given id. Revoking a revoked key succeeds
// and keeps the first revocation time. It returns ErrNotFound when no key
// has that id. Processes that use an Authenticator stop accepting the key
// within their cache time.
func Revoke(ctx context.Context, db DB, id string) error {
	tag, err := db.Exec(ctx,
		`UPDATE lethe.api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("apikeys: revoke: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// List returns every key, revoked ones included, oldest first.
func List(ctx context.Context, db DB) ([]Key, error) {
	rows, err := db.Query(ctx,
		`SELECT id, name, role, created_at, revoked_at, last_used_at FROM lethe.api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("apikeys: list: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Key, error) {
		var k Key
		err := row.Scan(&k.ID, &k.Name, &k.Role, &k.CreatedAt, &k.RevokedAt, &k.LastUsedAt)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("apikeys: list: %w", err)
	}
	return keys, nil
}

// Authenticate returns the key a token belongs to, reading it from the
// database on every call, and records the use (at most once a minute).
//
// Every malformed, unknown, wrong or revoked token gives ErrUnauthenticated.
// Any other error is a database failure, not a verdict on the token: answer
// it with a server error, not 401.
func Authenticate(ctx context.Context, db DB, token string) (Key, error) {
	id, sum, ok := parse(token)
	if !ok {
		return Key{}, ErrUnauthenticated
	}
	k, stored, err := load(ctx, db, id)
	if err != nil {
		return Key{}, err
	}
	if !verify(k, stored, sum) {
		return Key{}, ErrUnauthenticated
	}
	return touch(ctx, db, k, time.Now()), nil
}

// parse splits a token into its id and the SHA-256 of its secret. It
// accepts only the exact form Create produces.
func parse(token string) (id string, sum [sha256.Size]byte, ok bool) {
	if len(token) > maxTokenLen || !strings.HasPrefix(token, tokenPrefix) {
		return "", sum, false
	}
	rest := token[len(tokenPrefix):]
	i := strings.LastIndexByte(rest, '_')
	if i < 0 {
		return "", sum, false
	}
	id, encSecret := rest[:i], rest[i+1:]
	if !validID(id) {
		return "", sum, false
	}
	secret, ok := decode(encSecret, secretBytes)
	if !ok {
		return "", sum, false
	}
	return id, sha256.Sum256(secret), true
}

// validID reports whether id has the form Create gives ids.
func validID(id string) bool {
	raw, ok := strings.CutPrefix(id, idPrefix)
	if !ok {
		return false
	}
	_, ok = decode(raw, idBytes)
	return ok
}

// dummyHash is compared against when the id is unknown, so that an unknown
// id costs about the same as a wrong secret.
var dummyHash = make([]byte, sha256.Size)

// load reads a key and its secret hash. An unknown id is a key with an empty
// ID and the dummy hash, not an error.
func load(ctx context.Context, db DB, id string) (Key, []byte, error) {
	var k Key
	var hash []byte
	err := db.QueryRow(ctx,
		`SELECT id, name, role, secret_hash, created_at, revoked_at, last_used_at FROM lethe.api_keys WHERE id = $1`,
		id).Scan(&k.ID, &k.Name, &k.Role, &hash, &k.CreatedAt, &k.RevokedAt, &k.LastUsedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Key{}, dummyHash, nil
	}
	if err != nil {
		return Key{}, nil, fmt.Errorf("apikeys: authenticate: %w", err)
	}
	return k, hash, nil
}

// verify compares the hashes in constant time and refuses unknown and
// revoked keys.
func verify(k Key, stored []byte, sum [sha256.Size]byte) bool {
	match := subtle.ConstantTimeCompare(stored, sum[:]) == 1
	return match && k.ID != "" && !k.Revoked()
}

// touch sets last_used_at unless it was set less than a minute ago, and
// returns k as it is afterwards. The database re-checks the minute, so that
// concurrent requests and other processes do not all write. A failed write
// only leaves last_used_at older: it does not fail the authentication.
func touch(ctx context.Context, db DB, k Key, now time.Time) Key {
	if k.LastUsedAt != nil && now.Sub(*k.LastUsedAt) < touchEvery {
		return k
	}
	var used time.Time
	err := db.QueryRow(ctx,
		`UPDATE lethe.api_keys SET last_used_at = now()
		  WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
		  RETURNING last_used_at`,
		k.ID).Scan(&used)
	if err == nil {
		k.LastUsedAt = &used
	}
	return k
}
