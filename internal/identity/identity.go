// Package identity seals and opens the one piece of personal data a request
// must carry: who the person is (their email and/or the company's user id).
// It is sealed with the person's own data key (internal/subjectkeys), so
// destroying that key after an erasure makes every copy unreadable: Lethe's
// database and its backups, and the Temporal histories that carried it.
package identity

import (
	"context"
	"encoding/json"
	"fmt"
)

// Identity is who a request is about.
type Identity struct {
	Email  string `json:"email,omitempty"`
	UserID string `json:"user_id,omitempty"`
	// What the request asks to change, personal too: sealed with the rest.
	Corrections map[string]string `json:"corrections,omitempty"`
	Consent     *ConsentChange    `json:"consent,omitempty"`
	// IDs are the person's ids at processors (processors.Subject.IDs), read
	// from the application before an erasure erases them.
	IDs map[string]string `json:"ids,omitempty"`
	// Identifiers are the person's values of identity-table columns, by
	// column (every email address known, for its email column; those the
	// data map's tables are keyed by), read before an erasure changes the
	// identity row: erasure matches tables keyed by them, and its
	// verification searches for them.
	Identifiers map[string][]string `json:"identifiers"` // no omitempty: empty differs from not read (nil)
}

// ConsentChange withdraws or gives consent to one purpose.
type ConsentChange struct {
	Purpose string `json:"purpose"`
	Granted bool   `json:"granted"`
	Source  string `json:"source"` // "request", "gpc" (Global Privacy Control), …
}

// Keyring seals and opens data with a person's key.
type Keyring interface {
	Seal(ctx context.Context, subjectRef string, plaintext []byte) ([]byte, error)
	Open(ctx context.Context, subjectRef string, sealed []byte) ([]byte, error)
}

// Seal encrypts id with the data key of subjectRef.
func Seal(ctx context.Context, k Keyring, subjectRef string, id Identity) ([]byte, error) {
	b, err := json.Marshal(id)
	if err != nil {
		return nil, fmt.Errorf("seal identity: %w", err)
	}
	sealed, err := k.Seal(ctx, subjectRef, b)
	if err != nil {
		return nil, fmt.Errorf("seal identity: %w", err)
	}
	return sealed, nil
}

// Open decrypts an identity sealed by Seal.
func Open(ctx context.Context, k Keyring, subjectRef string, sealed []byte) (Identity, error) {
	var id Identity
	b, err := k.Open(ctx, subjectRef, sealed)
	if err != nil {
		return id, fmt.Errorf("open identity: %w", err)
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return id, fmt.Errorf("open identity: malformed")
	}
	return id, nil
}
