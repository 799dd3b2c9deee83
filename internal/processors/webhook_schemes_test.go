package processors_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
)

// The verifiers below are written from each scheme's public description,
// not from the connector's signer: a connector that signs the wrong bytes
// or formats the header wrongly fails them.

func hmacHex(key []byte, msg string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

func recentUnix(t *testing.T, ts string) {
	t.Helper()
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(n, 0)).Abs() > time.Minute {
		t.Fatalf("timestamp %q is not a recent Unix time", ts)
	}
}

func verifyLetheV1(t *testing.T, secret []byte, sigHeader string, h http.Header, body []byte) {
	ts := h.Get("X-Lethe-Timestamp")
	recentUnix(t, ts)
	if got, want := h.Get(sigHeader), "v1="+hmacHex(secret, ts+"."+string(body)); got != want {
		t.Fatalf("%s = %q, want %q", sigHeader, got, want)
	}
}

func verifyStripe(t *testing.T, secret []byte, sigHeader string, h http.Header, body []byte) {
	// Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
	fields := map[string]string{}
	for _, kv := range strings.Split(h.Get(sigHeader), ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("%s element %q is not k=v", sigHeader, kv)
		}
		fields[k] = v
	}
	recentUnix(t, fields["t"])
	if want := hmacHex(secret, fields["t"]+"."+string(body)); fields["v1"] != want {
		t.Fatalf("v1 = %q, want %q", fields["v1"], want)
	}
	if h.Get("X-Lethe-Signature") != "" {
		t.Fatal("a stripe-signed request also carries X-Lethe-Signature")
	}
}

func verifyGitHub(t *testing.T, secret []byte, sigHeader string, h http.Header, body []byte) {
	// X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>
	if got, want := h.Get(sigHeader), "sha256="+hmacHex(secret, string(body)); got != want {
		t.Fatalf("%s = %q, want %q", sigHeader, got, want)
	}
}

func verifyStandard(t *testing.T, secret []byte, sigHeader string, h http.Header, body []byte) {
	// webhook-signature: v1,<base64 HMAC-SHA256(base64decode(secret minus
	// "whsec_"), "<webhook-id>.<webhook-timestamp>.<body>")>
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(string(secret), "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	recentUnix(t, ts)
	if id == "" || id != h.Get("Idempotency-Key") {
		t.Fatalf("webhook-id %q, want the Idempotency-Key %q", id, h.Get("Idempotency-Key"))
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	if got, want := h.Get(sigHeader), "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)); got != want {
		t.Fatalf("%s = %q, want %q", sigHeader, got, want)
	}
}

func TestWebhookSignatureSchemes(t *testing.T) {
	standardSecret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	for _, tc := range []struct {
		scheme, header, wantHeader, secret string
		verify                             func(*testing.T, []byte, string, http.Header, []byte)
	}{
		{"", "", "X-Lethe-Signature", "lethe-secret-0123456789", verifyLetheV1},
		{"lethe-v1", "X-Acme-Signature", "X-Acme-Signature", "lethe-secret-0123456789", verifyLetheV1},
		{"stripe", "", "Stripe-Signature", "whsec_stripe_style_secret_01", verifyStripe},
		{"github-sha256", "", "X-Hub-Signature-256", "github-style-secret-0123", verifyGitHub},
		{"github-sha256", "X-Signature-256", "X-Signature-256", "github-style-secret-0123", verifyGitHub},
		{"standard-webhooks", "", "Webhook-Signature", standardSecret, verifyStandard},
	} {
		t.Run(tc.scheme+"/"+tc.wantHeader, func(t *testing.T) {
			ctx := context.Background()
			f := processorfake.NewWebhook(t)
			fakeScheme := tc.scheme
			f.SetScheme(fakeScheme, []byte(tc.secret), tc.header)
			f.AddSubject(processorfake.WebhookSubject{UserID: userID, Email: email})

			reg, err := processors.NewRegistry([]processors.Config{{Name: "crm", Kind: "webhook", BaseURL: f.URL(),
				CredentialEnv: "LETHE_CRM_SECRET",
				Options:       map[string]string{"signature": tc.scheme, "signature_header": tc.header}}},
				processors.BuildOptions{LookupEnv: envMap(map[string]string{"LETHE_CRM_SECRET": tc.secret})})
			if err != nil {
				t.Fatal(err)
			}
			c, _ := reg.Eraser("crm")
			out, err := c.Erase(ctx, subject("req-sig"))
			mustOutcome(t, out, err, processors.StatusDone) // the fake verified the signature
			if _, ok := f.Subject(userID); ok {
				t.Fatal("subject not erased")
			}
			calls := f.Calls()
			if len(calls) != 1 || calls[0].Status != http.StatusOK {
				t.Fatalf("calls %+v", calls)
			}
			tc.verify(t, []byte(tc.secret), tc.wantHeader, calls[0].Header, calls[0].Body)

			// The same receiver refuses a request signed with another secret.
			other := tc.secret + "x"
			if tc.scheme == "standard-webhooks" {
				other = "whsec_" + base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
			}
			reg, err = processors.NewRegistry([]processors.Config{{Name: "crm", Kind: "webhook", BaseURL: f.URL(),
				CredentialEnv: "LETHE_CRM_SECRET",
				Options:       map[string]string{"signature": tc.scheme, "signature_header": tc.header}}},
				processors.BuildOptions{LookupEnv: envMap(map[string]string{"LETHE_CRM_SECRET": other})})
			if err != nil {
				t.Fatal(err)
			}
			c, _ = reg.Eraser("crm")
			out, err = c.Erase(ctx, subject("req-sig-2"))
			mustError(t, out, err, processors.KindNeedsOperator, http.StatusUnauthorized)
		})
	}
}

func TestWebhookSchemeMismatchIsRefused(t *testing.T) {
	f := processorfake.NewWebhook(t)
	f.SetScheme(processorfake.SchemeGitHubSHA256, f.Secret, "")
	f.AddSubject(processorfake.WebhookSubject{UserID: userID})
	out, err := newWebhook(t, f).Erase(context.Background(), subject("r")) // lethe-v1
	mustError(t, out, err, processors.KindNeedsOperator, http.StatusUnauthorized)
	if _, ok := f.Subject(userID); !ok {
		t.Fatal("an unverified request erased the subject")
	}
}

func TestWebhookSignatureOptionsAreChecked(t *testing.T) {
	env := envMap(map[string]string{"K": "a-long-enough-secret-123", "SW": "whsec_" + base64.StdEncoding.EncodeToString([]byte("short"))})
	cfg := func(name string, opts map[string]string, credEnv string) processors.Config {
		return processors.Config{Name: name, Kind: "webhook", BaseURL: "https://hooks.example/lethe",
			CredentialEnv: credEnv, Options: opts}
	}
	_, err := processors.NewRegistry([]processors.Config{
		cfg("a", map[string]string{"signature": "hmac-md5"}, "K"),
		cfg("b", map[string]string{"signature": "stripe", "signature_header": "Bad Header:"}, "K"),
		cfg("c", map[string]string{"signature": "standard-webhooks"}, "SW"),
		cfg("d", map[string]string{"signature": "standard-webhooks"}, "K"),
		cfg("e", map[string]string{"signature": "lethe-v1", "signature_header": "X-Lethe-Timestamp"}, "K"),
		cfg("f", map[string]string{"signatur": "stripe"}, "K"),
	}, processors.BuildOptions{LookupEnv: env})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		`processor "a": option signature "hmac-md5" is not one of lethe-v1, stripe, github-sha256, standard-webhooks`,
		`processor "b": option signature_header "Bad Header:" is not an HTTP header name`,
		`processor "c": signature standard-webhooks needs a secret of 24 to 64 bytes (Base64-decoded), not 5`,
		`processor "d": signature standard-webhooks needs the secret as whsec_<Base64>`,
		`processor "e": option signature_header "X-Lethe-Timestamp" is the timestamp or id header`,
		`processor "f": option "signatur" is not known for kind webhook (known: signature, signature_header)`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "a-long-enough-secret") {
		t.Fatalf("error shows the secret:\n%s", msg)
	}
}

func TestRefusedCredentialNamesWhatToCheck(t *testing.T) {
	ctx := context.Background()
	wh := processorfake.NewWebhook(t)
	wh.AddSubject(processorfake.WebhookSubject{UserID: userID})
	st := processorfake.NewStripe(t)
	st.AddCustomer(processorfake.StripeCustomer{Email: email})
	reg, err := processors.NewRegistry([]processors.Config{
		{Name: "crm", Kind: "webhook", BaseURL: wh.URL(), CredentialEnv: "LETHE_CRM_SECRET",
			Options: map[string]string{"signature": "stripe"}},
		{Name: "stripe", Kind: "stripe", BaseURL: st.URL(), CredentialEnv: "LETHE_STRIPE_KEY"},
	}, processors.BuildOptions{LookupEnv: envMap(map[string]string{
		"LETHE_CRM_SECRET": string(wh.Secret), "LETHE_STRIPE_KEY": st.APIKey})})
	if err != nil {
		t.Fatal(err)
	}

	// The receiver expects lethe-v1: a 401, which names the secret's
	// variable and the scheme in use.
	crm, _ := reg.Eraser("crm")
	out, err := crm.Erase(ctx, subject("r"))
	e := mustError(t, out, err, processors.KindNeedsOperator, http.StatusUnauthorized)
	for _, want := range []string{"HTTP 401", "the processor refused our signature or credential",
		"the HMAC secret in LETHE_CRM_SECRET", "option signature, now stripe, header Stripe-Signature"} {
		if !strings.Contains(e.Error(), want) {
			t.Errorf("missing %q in %q", want, e.Error())
		}
	}

	// A 403 says the same; another status does not.
	str, _ := reg.Eraser("stripe")
	st.FailNext(1, http.StatusForbidden)
	out, err = str.Erase(ctx, subject("r"))
	e = mustError(t, out, err, processors.KindNeedsOperator, http.StatusForbidden)
	if msg := e.Error(); !strings.Contains(msg, "refused our signature or credential: check the secret key in LETHE_STRIPE_KEY") ||
		strings.Contains(msg, "signature scheme") {
		t.Fatalf("403 message %q", msg)
	}
	st.FailNext(1, http.StatusBadRequest)
	out, err = str.Erase(ctx, subject("r"))
	e = mustError(t, out, err, processors.KindNeedsOperator, http.StatusBadRequest)
	if strings.Contains(e.Error(), "refused") {
		t.Fatalf("a 400 blames the credential: %q", e.Error())
	}

	// Built outside a registry the connector still says what to look at.
	c, err := processors.NewStripe(processors.StripeConfig{BaseURL: st.URL(), APIKey: "sk_test_wrong"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Erase(ctx, subject("r"))
	if !strings.Contains(err.Error(), "refused our signature or credential: check the credential in the variable named by the processor's credential_env") {
		t.Fatalf("message %q", err)
	}
}
