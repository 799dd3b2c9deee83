// Package codec keeps personal data out of Temporal in plaintext.
//
// Every payload Lethe hands to Temporal (workflow and activity inputs and
// results, signals, queries, memos, heartbeat details) passes through [Codec],
// which encrypts it with AES-256-GCM before it leaves the process. Error
// messages and stack traces are moved into an encrypted payload as well by the
// failure converter that [NewFailureConverter] builds, so a failed activity
// whose error names a person shows only "Encoded failure" in the history.
//
// Keys come from LETHE_PAYLOAD_KEYS (see [config.ParseKeys]): the first key
// encrypts, every listed key decrypts. To rotate, put a new key first and keep
// the old ones listed until no workflow history that uses them is retained
// (`starter keys add-payload`, `starter keys retire`).
// With random 96-bit nonces a key should encrypt no more than about 2³²
// payloads; rotate well before that.
//
// [NewHTTPHandler] serves the same codec to the Temporal Web UI and CLI so
// operators can read histories without the keys ever reaching the Temporal
// service.
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/lethe-privacy/lethe/internal/config"
)

const (
	// MetadataEncodingEncrypted is the "encoding" metadata value of an
	// encrypted payload.
	MetadataEncodingEncrypted = "binary/encrypted"
	// MetadataKeyID names the metadata entry that holds the id of the key a
	// payload is encrypted with.
	MetadataKeyID = "encryption-key-id"

	// keySize is the AES-256 key length in bytes.
	keySize = 32
	// aadPrefix domain-separates payload ciphertexts from anything else
	// Lethe encrypts; the key id follows it so that a ciphertext cannot be
	// relabelled with another key's id.
	aadPrefix = "lethe/temporal-payload/v1\x00"
)

var (
	// ErrUnknownKey means a payload names a key id that is not configured.
	ErrUnknownKey = errors.New("unknown payload key")
	// ErrDecrypt means an encrypted payload failed authentication: it was
	// altered, truncated, or encrypted under different key material.
	ErrDecrypt = errors.New("payload does not decrypt")
)

// Codec is a [converter.PayloadCodec] that encrypts whole payloads with
// AES-256-GCM under a keyring. It is safe for concurrent use.
type Codec struct {
	activeID string
	aeads    map[string]cipher.AEAD
}

var _ converter.PayloadCodec = (*Codec)(nil)

// NewCodec builds a codec from keys; keys[0] encrypts, all of them decrypt.
// Errors name key ids and positions only, never key material.
func NewCodec(keys []config.Key) (*Codec, error) {
	if len(keys) == 0 {
		return nil, errors.New("codec: no payload keys configured")
	}
	c := &Codec{activeID: keys[0].ID, aeads: make(map[string]cipher.AEAD, len(keys))}
	for i, k := range keys {
		if k.ID == "" {
			return nil, fmt.Errorf("codec: payload key %d has no id", i+1)
		}
		if _, dup := c.aeads[k.ID]; dup {
			return nil, fmt.Errorf("codec: payload key id %q appears twice", k.ID)
		}
		if len(k.Material) != keySize {
			return nil, fmt.Errorf("codec: payload key %q: want %d bytes", k.ID, keySize)
		}
		block, err := aes.NewCipher(k.Material)
		if err != nil {
			return nil, fmt.Errorf("codec: payload key %q: %w", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("codec: payload key %q: %w", k.ID, err)
		}
		c.aeads[k.ID] = aead
	}
	return c, nil
}

// ActiveKeyID is the id of the key new payloads are encrypted with.
func (c *Codec) ActiveKeyID() string { return c.activeID }

// Encode implements [converter.PayloadCodec]. Each payload, metadata and data
// together, is serialised and encrypted with the active key under a fresh
// random nonce; the result carries only the encoding and the key id in clear.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	aead := c.aeads[c.activeID]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := p.Marshal()
		if err != nil {
			return payloads, fmt.Errorf("codec: serialise payload %d: %w", i, err)
		}
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return payloads, fmt.Errorf("codec: read nonce: %w", err)
		}
		data := aead.Seal(nonce, nonce, plain, aad(c.activeID))
		clear(plain)
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(MetadataEncodingEncrypted),
				MetadataKeyID:              []byte(c.activeID),
			},
			Data: data,
		}
	}
	return out, nil
}

// Decode implements [converter.PayloadCodec]. Payloads that are not encrypted
// pass through unchanged; encrypted ones are decrypted with the key they
// name. Errors name the key id only.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != MetadataEncodingEncrypted {
			out[i] = p
			continue
		}
		keyID, ok := p.GetMetadata()[MetadataKeyID]
		if !ok {
			return payloads, fmt.Errorf("codec: encrypted payload %d names no key: %w", i, ErrUnknownKey)
		}
		id := string(keyID)
		aead, ok := c.aeads[id]
		if !ok {
			return payloads, fmt.Errorf("codec: payload key %q: %w", id, ErrUnknownKey)
		}
		data := p.GetData()
		if len(data) < aead.NonceSize()+aead.Overhead() {
			return payloads, fmt.Errorf("codec: payload key %q: truncated: %w", id, ErrDecrypt)
		}
		nonce, sealed := data[:aead.NonceSize()], data[aead.NonceSize():]
		plain, err := aead.Open(nil, nonce, sealed, aad(id))
		if err != nil {
			return payloads, fmt.Errorf("codec: payload key %q: %w", id, ErrDecrypt)
		}
		orig := &commonpb.Payload{}
		if err := orig.Unmarshal(plain); err != nil {
			// Authenticated but not a payload: written by something else
			// that shares the key. The parser's message is not passed on.
			return payloads, fmt.Errorf("codec: payload key %q: decrypted bytes are not a payload: %w", id, ErrDecrypt)
		}
		out[i] = orig
	}
	return out, nil
}

func aad(keyID string) []byte {
	return append([]byte(aadPrefix), keyID...)
}
