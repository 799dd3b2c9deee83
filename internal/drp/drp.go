// Package drp is the covered-business side of Consumer Reports' Data
// Rights Protocol (DRP) 1.0: its signed messages (libsodium "combined
// mode" Ed25519, base64 encoded), the claims an authorized agent sends,
// the checks section 3.07 orders, and the mapping between DRP's rights
// and statuses and Lethe's request types and lifecycle. It holds no
// state: agents, tokens and replay records are in internal/store, the
// routes in internal/api.
package drp

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Version is the protocol version Lethe speaks.
const Version = "1.0"

// AgentIDRe is an agent or business id as the DRP service directory
// writes them ([A-Z_]+ in the directory's schema; digits and dashes are
// accepted too, as test networks use them).
var AgentIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Error is DRP's error body (section 3.06): code repeats the HTTP status.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Fatal   bool   `json:"fatal,omitempty"`
}

// Refusal is a refused message: its HTTP status and DRP error body.
type Refusal struct {
	Status  int
	Message string
	Fatal   bool
}

func (r *Refusal) Error() string { return fmt.Sprintf("drp %d: %s", r.Status, r.Message) }

// Body is the DRP error body of the refusal.
func (r *Refusal) Body() Error {
	return Error{Code: fmt.Sprint(r.Status), Message: r.Message, Fatal: r.Fatal}
}

func refuse(status int, fatal bool, format string, args ...any) *Refusal {
	return &Refusal{Status: status, Message: fmt.Sprintf(format, args...), Fatal: fatal}
}

// Sign makes a signed message: the Ed25519 signature prepended to msg
// (libsodium's crypto_sign), base64 encoded.
func Sign(key ed25519.PrivateKey, msg []byte) string {
	sig := ed25519.Sign(key, msg)
	return base64.StdEncoding.EncodeToString(append(sig, msg...))
}

// Open decodes a signed message and verifies it with key; it returns the
// signed JSON. A message that does not decode or verify is a 403.
func Open(key ed25519.PublicKey, signed []byte) ([]byte, error) {
	raw, err := decodeBase64(strings.TrimSpace(string(signed)))
	if err != nil {
		return nil, refuse(403, false, "the body is not a base64 encoded signed message")
	}
	if len(raw) < ed25519.SignatureSize {
		return nil, refuse(403, false, "the signed message is too short")
	}
	if len(key) != ed25519.PublicKeySize || !ed25519.Verify(key, raw[ed25519.SignatureSize:], raw[:ed25519.SignatureSize]) {
		return nil, refuse(403, false, "the signature does not verify with the agent's key")
	}
	return raw[ed25519.SignatureSize:], nil
}

// Digest identifies a signed message for the replay record: the SHA-256
// of its decoded bytes (signature and JSON).
func Digest(signed []byte) []byte {
	raw, err := decodeBase64(strings.TrimSpace(string(signed)))
	if err != nil {
		raw = signed
	}
	d := sha256.Sum256(raw)
	return d[:]
}

func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// ParseVerifyKey reads an agent's verify key as the directory publishes it
// (base64 of the 32-byte Ed25519 public key).
func ParseVerifyKey(s string) (ed25519.PublicKey, error) {
	b, err := decodeBase64(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("verify key: want the base64 of a 32-byte Ed25519 public key")
	}
	return ed25519.PublicKey(b), nil
}

// ParseSigningKey reads Lethe's own signing key: the base64 of a 32-byte
// seed or a 64-byte libsodium secret key.
func ParseSigningKey(s string) (ed25519.PrivateKey, error) {
	b, err := decodeBase64(strings.TrimSpace(s))
	switch {
	case err != nil:
	case len(b) == ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(b), nil
	case len(b) == ed25519.PrivateKeySize:
		return ed25519.NewKeyFromSeed(b[:ed25519.SeedSize]), nil
	}
	return nil, errors.New("LETHE_DRP_SIGNING_KEY: want the base64 of a 32-byte Ed25519 seed (or a 64-byte libsodium secret key)")
}

// EncodeKey is a public key as the directory writes it.
func EncodeKey(k ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(k) }

// NewToken is a fresh pairwise bearer token (256 bits from the CSPRNG) and
// the hash Lethe keeps of it.
func NewToken() (token string, hash []byte, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	token = "drp_" + base64.RawURLEncoding.EncodeToString(b)
	return token, TokenHash(token), nil
}

// TokenHash is what Lethe stores of a bearer token.
func TokenHash(token string) []byte {
	h := sha256.Sum256([]byte("lethe-drp-token:" + token))
	return h[:]
}

// Envelope is the claims every signed request carries (section 2.01, group 1).
type Envelope struct {
	AgentID    string `json:"agent-id"`
	BusinessID string `json:"business-id"`
	IssuedAt   string `json:"issued-at"`
	ExpiresAt  string `json:"expires-at"`
	Version    string `json:"drp.version"`
}

// Window is how Lethe checks a message's time claims.
type Window struct {
	// Skew is how far ahead of Lethe's clock issued-at may be.
	Skew time.Duration
	// MaxLife is the longest expires-at minus issued-at Lethe accepts.
	MaxLife time.Duration
}

// Check validates the envelope in section 3.07's order, after the
// signature: the agent (the one the key or token belongs to), the
// business, then issued-at and expires-at. It returns when the message
// expires, for the replay record.
func (e Envelope) Check(agentID, businessID string, now time.Time, w Window) (time.Time, error) {
	if e.AgentID != agentID {
		return time.Time{}, refuse(403, false, "agent-id is not the agent the request is authenticated as")
	}
	if e.BusinessID != businessID {
		return time.Time{}, refuse(403, false, "business-id is not this covered business")
	}
	if e.Version != "" && e.Version != Version {
		return time.Time{}, refuse(400, true, "drp.version: this covered business speaks DRP %s", Version)
	}
	issued, err := parseTime(e.IssuedAt)
	if err != nil {
		return time.Time{}, refuse(400, true, "issued-at: want an ISO 8601 timestamp")
	}
	expires, err := parseTime(e.ExpiresAt)
	if err != nil {
		return time.Time{}, refuse(400, true, "expires-at: want an ISO 8601 timestamp")
	}
	switch {
	case issued.After(now.Add(w.Skew)):
		return time.Time{}, refuse(403, true, "issued-at is in the future: check the agent's clock")
	case !now.Before(expires):
		return time.Time{}, refuse(403, true, "the request expired (expires-at has passed)")
	case !expires.After(issued):
		return time.Time{}, refuse(400, true, "expires-at must be after issued-at")
	case expires.Sub(issued) > w.MaxLife:
		return time.Time{}, refuse(400, true, "expires-at is more than %s after issued-at", w.MaxLife)
	}
	return expires, nil
}

func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05.999999999Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("not ISO 8601")
}

// Setup is the signed body of POST /v1/agent/{agent-id} (section 2.05).
type Setup struct {
	Envelope
}

// SetupAnswer answers a pairwise setup.
type SetupAnswer struct {
	AgentID string `json:"agent-id"`
	Token   string `json:"token"`
}

// Address is an OpenID Connect address claim.
type Address struct {
	Formatted     string `json:"formatted,omitempty"`
	StreetAddress string `json:"street_address,omitempty"`
	Locality      string `json:"locality,omitempty"`
	Region        string `json:"region,omitempty"`
	PostalCode    string `json:"postal_code,omitempty"`
	Country       string `json:"country,omitempty"`
}

// Exercise is the signed body of POST /v1/data-rights-request (section
// 2.01) with the identity claims of section 3.04.
type Exercise struct {
	Envelope
	AgentRequestID string   `json:"agent-request-id,omitempty"`
	Exercise       string   `json:"exercise"`
	Regime         string   `json:"regime,omitempty"`
	Relationships  []string `json:"relationships,omitempty"`
	StatusCallback string   `json:"status_callback,omitempty"`

	Name                string   `json:"name,omitempty"`
	Email               string   `json:"email,omitempty"`
	EmailVerified       bool     `json:"email_verified,omitempty"`
	PhoneNumber         string   `json:"phone_number,omitempty"`
	PhoneNumberVerified bool     `json:"phone_number_verified,omitempty"`
	Address             *Address `json:"address,omitempty"`
	AddressVerified     bool     `json:"address_verified,omitempty"`
	PowerOfAttorney     string   `json:"power_of_attorney,omitempty"`
}

// ParseExercise decodes an exercise's signed JSON. Unknown claims are
// allowed (the spec admits custom claims); what is wrong is named, never
// repeated.
func ParseExercise(msg []byte) (Exercise, error) {
	var x Exercise
	if err := json.Unmarshal(msg, &x); err != nil {
		return x, refuse(400, true, "the signed message is not a JSON object of DRP claims")
	}
	if len(x.AgentRequestID) > 200 {
		return x, refuse(400, true, "agent-request-id: at most 200 characters")
	}
	return x, nil
}

// Revoke is the signed body of DELETE /v1/data-rights-request/{id}
// (section 2.04); the envelope's claims are checked when present.
type Revoke struct {
	Envelope
	Reason string `json:"reason,omitempty"`
}

// Rights (section 3.01).
const (
	RightSaleOptOut       = "sale:opt-out"
	RightSaleOptIn        = "sale:opt-in"
	RightDeletion         = "deletion"
	RightAccess           = "access"
	RightAccessCategories = "access:categories"
	RightAccessSpecific   = "access:specific"
)

// Regimes Lethe takes: "ccpa", or none (a voluntary request).
const RegimeCCPA = "ccpa"

// Statuses and reasons (section 3.02).
const (
	StatusOpen       = "open"
	StatusInProgress = "in_progress"
	StatusFulfilled  = "fulfilled"
	StatusRevoked    = "revoked"
	StatusDenied     = "denied"
	StatusExpired    = "expired"

	ReasonNeedUserVerification = "need_user_verification"
	ReasonSuspectedFraud       = "suspected_fraud"
	ReasonInsufVerification    = "insuf_verification"
	ReasonNoMatch              = "no_match"
	ReasonClaimNotCovered      = "claim_not_covered"
	ReasonOutsideJurisdiction  = "outside_jurisdiction"
	ReasonTooManyRequests      = "too_many_requests"
	ReasonOther                = "other"
)

// Final says whether a DRP status is final.
func Final(status string) bool {
	switch status {
	case StatusFulfilled, StatusRevoked, StatusDenied, StatusExpired:
		return true
	}
	return false
}

// Status is the Exercise Status object (section 3.03): every answer about
// a request, and every status callback.
type Status struct {
	RequestID           string `json:"request_id"`
	ReceivedAt          string `json:"received_at,omitempty"`
	ExpectedBy          string `json:"expected_by,omitempty"`
	AgentRequestID      string `json:"agent_request_id,omitempty"`
	ProcessingDetails   string `json:"processing_details,omitempty"`
	Status              string `json:"status"`
	Reason              string `json:"reason,omitempty"`
	UserVerificationURL string `json:"user_verification_url,omitempty"`
}

// Timestamp writes a time as the status object's ISO 8601 timestamps.
func Timestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// CallbackSignatureHeader carries Lethe's detached Ed25519 signature
// (base64) over a status callback's signing time, a dot and its exact body;
// CallbackSignedAtHeader carries that time (Unix seconds), so that an agent
// can refuse an old callback played again.
const (
	CallbackSignatureHeader = "X-DRP-Signature"
	CallbackSignedAtHeader  = "X-DRP-Signed-At"
)

// callbackMessage is what a callback's signature covers.
func callbackMessage(signedAt string, body []byte) []byte {
	return append([]byte(signedAt+"."), body...)
}

// SignCallback signs a callback body at time at: the signature and the
// signing time, for the two headers.
func SignCallback(key ed25519.PrivateKey, body []byte, at time.Time) (sig, signedAt string) {
	signedAt = strconv.FormatInt(at.Unix(), 10)
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, callbackMessage(signedAt, body))), signedAt
}

// VerifyCallback checks a callback (what an agent does with the headers):
// the signature over its signing time and body against Lethe's verify key,
// and a signing time no older than maxAge (nor ahead of now by more).
func VerifyCallback(key ed25519.PublicKey, body []byte, sig, signedAt string, now time.Time, maxAge time.Duration) bool {
	b, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(key) != ed25519.PublicKeySize {
		return false
	}
	secs, err := strconv.ParseInt(signedAt, 10, 64)
	if err != nil {
		return false
	}
	if age := now.Sub(time.Unix(secs, 0)); age > maxAge || age < -maxAge {
		return false
	}
	return ed25519.Verify(key, callbackMessage(signedAt, body), b)
}
