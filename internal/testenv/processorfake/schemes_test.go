package processorfake_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
)

func hmacSum(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// TestWebhookFakeKnownAnswers checks the fake's verifiers against the
// examples the schemes publish: a fake that checked the wrong bytes would
// refuse them (401); a verified body that is no Lethe request gets 400.
func TestWebhookFakeKnownAnswers(t *testing.T) {
	for _, tc := range []struct {
		name, scheme, secret, body string
		header                     map[string]string
	}{
		{
			// GitHub's "Validating webhook deliveries" example.
			name: "github", scheme: processorfake.SchemeGitHubSHA256, secret: "It's a Secret to Everybody",
			body:   "Hello, World!",
			header: map[string]string{"X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"},
		},
		{
			// The Standard Webhooks / Svix example.
			name: "standard-webhooks", scheme: processorfake.SchemeStandardWebhooks,
			secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", body: `{"test": 2432232314}`,
			header: map[string]string{"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
				"webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := processorfake.NewWebhook(t)
			f.SetScheme(tc.scheme, []byte(tc.secret), "")
			f.Tolerance = 100 * 365 * 24 * time.Hour // the example's timestamp is old
			send := func(h map[string]string) int {
				st, _, _ := do(t, "POST", f.URL(), strings.NewReader(tc.body), func(r *http.Request) {
					for k, v := range h {
						r.Header.Set(k, v)
					}
				})
				return st
			}
			if st := send(tc.header); st != http.StatusBadRequest {
				t.Fatalf("published example: %d, want 400 (verified, not a Lethe request)", st)
			}
			bad := map[string]string{}
			for k, v := range tc.header {
				bad[k] = v
				if strings.Contains(strings.ToLower(k), "signature") {
					bad[k] = v[:len(v)-4] + "AAA="
				}
			}
			if st := send(bad); st != http.StatusUnauthorized {
				t.Fatalf("altered signature: %d", st)
			}
		})
	}
}

func TestWebhookFakeChecksEveryScheme(t *testing.T) {
	body := []byte(`{"action":"erase","request_id":"r1","subject":{"user_id":"u1"}}`)
	now := time.Now().Unix()
	ts := strconv.FormatInt(now, 10)
	old := strconv.FormatInt(now-3600, 10)
	stdKey := []byte("0123456789abcdef0123456789abcdef")
	stdSecret := "whsec_" + base64.StdEncoding.EncodeToString(stdKey)
	sign := map[string]func(secret []byte, ts string) map[string]string{
		processorfake.SchemeLetheV1: func(s []byte, ts string) map[string]string {
			return map[string]string{"X-Lethe-Timestamp": ts, "X-Lethe-Signature": "v1=" + hex.EncodeToString(hmacSum(s, ts+"."+string(body)))}
		},
		processorfake.SchemeStripe: func(s []byte, ts string) map[string]string {
			return map[string]string{"Stripe-Signature": "t=" + ts + ",v1=" + hex.EncodeToString(hmacSum(s, ts+"."+string(body)))}
		},
		processorfake.SchemeGitHubSHA256: func(s []byte, _ string) map[string]string {
			return map[string]string{"X-Hub-Signature-256": "sha256=" + hex.EncodeToString(hmacSum(s, string(body)))}
		},
		processorfake.SchemeStandardWebhooks: func(s []byte, ts string) map[string]string {
			key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(string(s), "whsec_"))
			return map[string]string{"webhook-id": "msg_1", "webhook-timestamp": ts,
				"webhook-signature": "v1,bm90LXRoaXMtb25l v1," + base64.StdEncoding.EncodeToString(hmacSum(key, "msg_1."+ts+"."+string(body)))}
		},
	}
	for scheme, signer := range sign {
		t.Run(scheme, func(t *testing.T) {
			secret := []byte("webhook-secret-0123456789")
			if scheme == processorfake.SchemeStandardWebhooks {
				secret = []byte(stdSecret)
			}
			f := processorfake.NewWebhook(t)
			f.SetScheme(scheme, secret, "")
			f.AddSubject(processorfake.WebhookSubject{UserID: "u1"})
			send := func(h map[string]string) int {
				st, _, _ := do(t, "POST", f.URL(), bytes.NewReader(body), func(r *http.Request) {
					for k, v := range h {
						r.Header.Set(k, v)
					}
				})
				return st
			}
			wrong := []byte("another-secret-0123456789")
			if scheme == processorfake.SchemeStandardWebhooks {
				wrong = []byte("whsec_" + base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210")))
			}
			if st := send(signer(wrong, ts)); st != http.StatusUnauthorized {
				t.Fatalf("wrong secret: %d", st)
			}
			if scheme != processorfake.SchemeGitHubSHA256 { // GitHub's scheme signs no time
				if st := send(signer(secret, old)); st != http.StatusUnauthorized {
					t.Fatalf("stale timestamp: %d", st)
				}
			}
			if st := send(signer(secret, ts)); st != http.StatusOK {
				t.Fatalf("good signature: %d", st)
			}
			if d := f.Deliveries(); len(d) != 1 || d[0].Action != "erase" {
				t.Fatalf("deliveries %+v", d)
			}
		})
	}

	// A renamed signature header is read where configured.
	f := processorfake.NewWebhook(t)
	secret := []byte("webhook-secret-0123456789")
	f.SetScheme(processorfake.SchemeGitHubSHA256, secret, "X-Signature")
	f.AddSubject(processorfake.WebhookSubject{UserID: "u1"})
	sig := "sha256=" + hex.EncodeToString(hmacSum(secret, string(body)))
	if st, _, _ := do(t, "POST", f.URL(), bytes.NewReader(body), func(r *http.Request) {
		r.Header.Set("X-Hub-Signature-256", sig)
	}); st != http.StatusUnauthorized {
		t.Fatalf("signature in the default header: %d", st)
	}
	if st, _, _ := do(t, "POST", f.URL(), bytes.NewReader(body), func(r *http.Request) {
		r.Header.Set("X-Signature", sig)
	}); st != http.StatusOK {
		t.Fatalf("signature in the configured header: %d", st)
	}
}
