package drp_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/drp"
)

func newKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func status(err error) int {
	var r *drp.Refusal
	if errors.As(err, &r) {
		return r.Status
	}
	return 0
}

// A signed message is libsodium's combined mode: 64 signature bytes, then
// the message, base64 encoded.
func TestSignedMessagesAreCombinedModeAndOnlyTheRightKeyOpensThem(t *testing.T) {
	pub, priv := newKey(t)
	other, _ := newKey(t)
	msg := []byte(`{"agent-id":"AA"}`)
	signed := drp.Sign(priv, msg)
	raw, err := base64.StdEncoding.DecodeString(signed)
	if err != nil || len(raw) != ed25519.SignatureSize+len(msg) || string(raw[64:]) != string(msg) || !ed25519.Verify(pub, msg, raw[:64]) {
		t.Fatalf("not combined mode: %q", raw)
	}
	got, err := drp.Open(pub, []byte(signed+"\n"))
	if err != nil || string(got) != string(msg) {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := drp.Open(other, []byte(signed)); status(err) != 403 {
		t.Errorf("another key: %v", err)
	}
	raw[70] ^= 1 // a changed message
	if _, err := drp.Open(pub, []byte(base64.StdEncoding.EncodeToString(raw))); status(err) != 403 {
		t.Errorf("tampered: %v", err)
	}
	for _, bad := range []string{"", "not base64!", base64.StdEncoding.EncodeToString([]byte("short"))} {
		if _, err := drp.Open(pub, []byte(bad)); status(err) != 403 {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if string(drp.Digest([]byte(signed))) != string(drp.Digest([]byte(signed+"\n"))) {
		t.Error("the same message has two digests")
	}
}

func TestEnvelopeChecksAgentBusinessAndTimeWindow(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	w := drp.Window{Skew: time.Minute, MaxLife: 15 * time.Minute}
	env := func(agent, business string, issued, expires time.Time) drp.Envelope {
		return drp.Envelope{AgentID: agent, BusinessID: business, IssuedAt: issued.Format(time.RFC3339), ExpiresAt: expires.Format(time.RFC3339), Version: "1.0"}
	}
	ok := env("AA", "CB", now.Add(-time.Minute), now.Add(5*time.Minute))
	if exp, err := ok.Check("AA", "CB", now, w); err != nil || !exp.Equal(now.Add(5*time.Minute)) {
		t.Fatalf("good envelope: %v %v", exp, err)
	}
	cases := map[string]struct {
		e      drp.Envelope
		status int
	}{
		"another agent":       {env("BB", "CB", now, now.Add(time.Minute)), 403},
		"another business":    {env("AA", "XX", now, now.Add(time.Minute)), 403},
		"issued in future":    {env("AA", "CB", now.Add(2*time.Minute), now.Add(5*time.Minute)), 403},
		"expired":             {env("AA", "CB", now.Add(-10*time.Minute), now.Add(-time.Second)), 403},
		"window too long":     {env("AA", "CB", now, now.Add(time.Hour)), 400},
		"expires before":      {env("AA", "CB", now, now.Add(-time.Second)), 403},
		"unparseable time":    {drp.Envelope{AgentID: "AA", BusinessID: "CB", IssuedAt: "yesterday", ExpiresAt: "x"}, 400},
		"another DRP version": {drp.Envelope{AgentID: "AA", BusinessID: "CB", Version: "0.9"}, 400},
	}
	for name, c := range cases {
		if _, err := c.e.Check("AA", "CB", now, w); status(err) != c.status {
			t.Errorf("%s: want %d, got %v", name, c.status, err)
		}
	}
	// Python's isoformat() without a zone, and fractions, are ISO 8601 too.
	py := drp.Envelope{AgentID: "AA", BusinessID: "CB", IssuedAt: "2026-12-02T11:59:00.123456", ExpiresAt: "2026-12-02T12:05:00+00:00"}
	if _, err := py.Check("AA", "CB", now, w); err != nil {
		t.Errorf("isoformat: %v", err)
	}
}

func TestRightsMapOntoRequestTypesAndTheRestAreRefused(t *testing.T) {
	for right, want := range map[string]string{drp.RightDeletion: domain.TypeErasure, drp.RightAccess: domain.TypeAccess, drp.RightSaleOptOut: domain.TypeConsent} {
		a, err := drp.ActionFor(right)
		if err != nil || a.Type != want || a.Consent {
			t.Errorf("%s: %+v %v", right, a, err)
		}
	}
	for _, right := range []string{drp.RightSaleOptIn, drp.RightAccessCategories, drp.RightAccessSpecific, "", "erase-everything"} {
		var r *drp.Refusal
		if _, err := drp.ActionFor(right); !errors.As(err, &r) || r.Status != 400 || !r.Fatal {
			t.Errorf("%q: %v", right, err)
		}
	}
	if j, err := drp.JurisdictionFor("ccpa"); err != nil || j != domain.CCPA {
		t.Errorf("ccpa: %s %v", j, err)
	}
	if j, err := drp.JurisdictionFor(""); err != nil || j != domain.Company {
		t.Errorf("voluntary: %s %v", j, err)
	}
	if _, err := drp.JurisdictionFor("gdpr"); status(err) != 400 {
		t.Errorf("gdpr: %v", err)
	}
}

func TestEveryLetheStatusHasADRPStatus(t *testing.T) {
	want := map[string]string{
		domain.StatusReceived: "in_progress/", domain.StatusAwaitingVerification: "in_progress/need_user_verification",
		domain.StatusVerified: "in_progress/", domain.StatusAwaitingApproval: "in_progress/", domain.StatusInProgress: "in_progress/",
		domain.StatusNeedsAttention: "in_progress/", domain.StatusCompleted: "fulfilled/", domain.StatusDenied: "denied/other",
		domain.StatusExpired: "denied/insuf_verification", domain.StatusCancelled: "denied/other", domain.StatusFailed: "denied/other",
		domain.StatusAbandoned: "denied/other",
	}
	for _, s := range domain.RequestStatuses() {
		st, reason := drp.StatusFor(s, false)
		if got := st + "/" + reason; got != want[s] {
			t.Errorf("%s: %s, want %s", s, got, want[s])
		}
		if drp.Final(st) != domain.Closed(s) {
			t.Errorf("%s: final %v in DRP, closed %v in Lethe", s, drp.Final(st), domain.Closed(s))
		}
	}
	if st, _ := drp.StatusFor(domain.StatusCancelled, true); st != drp.StatusRevoked {
		t.Errorf("revoked by the agent: %s", st)
	}
}

func TestCallbacksAreSignedOverTheirBodyAndTime(t *testing.T) {
	pub, priv := newKey(t)
	body := []byte(`{"request_id":"req_x","status":"fulfilled"}`)
	now := time.Now()
	sig, at := drp.SignCallback(priv, body, now)
	if !drp.VerifyCallback(pub, body, sig, at, now.Add(time.Minute), 5*time.Minute) {
		t.Fatal("own signature does not verify")
	}
	if drp.VerifyCallback(pub, append(body, ' '), sig, at, now, 5*time.Minute) {
		t.Error("a changed body verifies")
	}
	if drp.VerifyCallback(pub, body, sig, fmt.Sprint(now.Unix()+1), now, 5*time.Minute) {
		t.Error("a changed signing time verifies")
	}
	if drp.VerifyCallback(pub, body, sig, at, now.Add(10*time.Minute), 5*time.Minute) {
		t.Error("an old callback played again verifies")
	}
}

func TestKeysAndTokens(t *testing.T) {
	pub, priv := newKey(t)
	if k, err := drp.ParseVerifyKey(drp.EncodeKey(pub)); err != nil || !k.Equal(pub) {
		t.Errorf("verify key: %v", err)
	}
	if _, err := drp.ParseVerifyKey("AAAA"); err == nil {
		t.Error("a short key parsed")
	}
	for _, enc := range []string{base64.StdEncoding.EncodeToString(priv.Seed()), base64.StdEncoding.EncodeToString(priv)} {
		if k, err := drp.ParseSigningKey(enc); err != nil || !k.Equal(priv) {
			t.Errorf("signing key: %v", err)
		}
	}
	a, ha, err := drp.NewToken()
	b, _, _ := drp.NewToken()
	if err != nil || a == b || len(a) < 40 || fmt.Sprint(ha) != fmt.Sprint(drp.TokenHash(a)) {
		t.Errorf("tokens: %q %q %v", a, b, err)
	}
}

// Whatever arrives as a body, opening and reading it refuses or succeeds,
// never panics, and a refusal is DRP's error with a 4xx.
func FuzzOpenAndCheck(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	f.Add([]byte(drp.Sign(priv, []byte(`{"agent-id":"AA","business-id":"CB","issued-at":"2026-12-02T12:00:00Z","expires-at":"2026-12-02T12:05:00Z","exercise":"deletion","email":"a@example.com"}`))))
	f.Add([]byte(drp.Sign(priv, []byte(`{"agent-id":7}`))))
	f.Add([]byte("bm90IHNpZ25lZA=="))
	f.Add([]byte{})
	now := time.Date(2026, 12, 2, 12, 1, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		msg, err := drp.Open(pub, body)
		if err != nil {
			if s := status(err); s < 400 || s > 499 {
				t.Fatalf("refusal %v is not a 4xx", err)
			}
			return
		}
		x, err := drp.ParseExercise(msg)
		if err != nil {
			return
		}
		if _, err := x.Check("AA", "CB", now, drp.Window{Skew: time.Minute, MaxLife: 15 * time.Minute}); err != nil && status(err) == 0 {
			t.Fatalf("check: %v", err)
		}
		_, _ = drp.ActionFor(x.Exercise)
	})
}
