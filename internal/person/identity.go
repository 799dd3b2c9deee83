package person

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

// Sealer seals and opens data with a person's key: a [*Keyring], or a
// stand-in in tests.
type Sealer interface {
	Seal(ctx context.Context, subjectRef string, plaintext []byte) ([]byte, error)
	Open(ctx context.Context, subjectRef string, sealed []byte) ([]byte, error)
}

// Seal encrypts id with the data key of subjectRef.
func Seal(ctx context.Context, k Sealer, subjectRef string, id Identity) ([]byte, error) {
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
func Open(ctx context.Context, k Sealer, subjectRef string, sealed []byte) (Identity, error) {
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
