package person

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"strings"
)

// Ref is a keyed-hash reference to a person, e.g. "sr_k5x...". It is stable for
// one identifier under one key and reveals nothing without the key.
type Ref string

// Hasher derives subject references with a secret key.
type Hasher struct{ key []byte }

// NewHasher takes a key of at least 32 bytes.
func NewHasher(key []byte) (*Hasher, error) {
	if len(key) < 32 {
		return nil, errors.New("subject hash key: want at least 32 bytes")
	}
	return &Hasher{key: append([]byte(nil), key...)}, nil
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Email references a person by email address (case and surrounding space ignored).
func (h *Hasher) Email(email string) Ref {
	return h.ref("email", strings.ToLower(strings.TrimSpace(email)))
}

// UserID references a person by the company's own user id.
func (h *Hasher) UserID(id string) Ref { return h.ref("user", strings.TrimSpace(id)) }

// Value is a keyed hash of any value, for anonymizing a column.
func (h *Hasher) Value(kind, v string) string { return string(h.ref(kind, v)) }

func (h *Hasher) ref(kind, v string) Ref {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(v))
	return Ref("sr_" + strings.ToLower(b32.EncodeToString(m.Sum(nil)[:20])))
}

// CodeHash is the keyed hash of a verification code typed for one request:
// what the workflow keeps and compares, never the code.
func (h *Hasher) CodeHash(requestID, code string) string {
	return h.Value("verification-code", requestID+":"+code)
}

// RequestToken is the secret that lets the person who submitted a request
// follow and verify it, and nothing else. It is derived, not stored.
func (h *Hasher) RequestToken(requestID string) string {
	return "rt_" + strings.TrimPrefix(h.Value("request-token", requestID), "sr_")
}
