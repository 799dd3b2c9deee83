package codec_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/lethe-privacy/lethe/internal/codec"
	"github.com/lethe-privacy/lethe/internal/config"
)

const email = "alice.example@example.com"

type request struct {
	Email string
	Name  string
}

func newKey(t *testing.T, id string) config.Key {
	t.Helper()
	m := make([]byte, 32)
	if _, err := rand.Read(m); err != nil {
		t.Fatal(err)
	}
	return config.Key{ID: id, Material: m}
}

func newCodec(t *testing.T, keys ...config.Key) *codec.Codec {
	t.Helper()
	c, err := codec.NewCodec(keys)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// marshalAll is every byte Temporal would store for these payloads.
func marshalAll(t *testing.T, ps []*commonpb.Payload) []byte {
	t.Helper()
	var all []byte
	for _, p := range ps {
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func TestDataConverterRoundTrip(t *testing.T) {
	dc, err := codec.NewDataConverter([]config.Key{newKey(t, "k1")})
	if err != nil {
		t.Fatal(err)
	}
	in := request{Email: email, Name: "Alice Example"}
	ps, err := dc.ToPayloads(in, "second argument")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps.Payloads {
		if got := string(p.Metadata[converter.MetadataEncoding]); got != codec.MetadataEncodingEncrypted {
			t.Fatalf("encoding = %q, want %q", got, codec.MetadataEncodingEncrypted)
		}
		if got := string(p.Metadata[codec.MetadataKeyID]); got != "k1" {
			t.Fatalf("key id = %q, want k1", got)
		}
		if len(p.Metadata) != 2 {
			t.Fatalf("metadata has %d entries, want only encoding and key id", len(p.Metadata))
		}
	}
	stored := marshalAll(t, ps.Payloads)
	for _, secret := range []string{email, "Alice Example", "second argument", "json/plain"} {
		if bytes.Contains(stored, []byte(secret)) {
			t.Fatalf("encoded payloads contain %q in plaintext", secret)
		}
	}

	var out request
	var second string
	if err := dc.FromPayloads(ps, &out, &second); err != nil {
		t.Fatal(err)
	}
	if out != in || second != "second argument" {
		t.Fatalf("round trip: got %+v, %q", out, second)
	}
}

func TestNoncesDiffer(t *testing.T) {
	c := newCodec(t, newKey(t, "k1"))
	p := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"same"`)}
	a, err := c.Encode([]*commonpb.Payload{p})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Encode([]*commonpb.Payload{p})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a[0].Data, b[0].Data) {
		t.Fatal("the same payload encrypted twice gives the same bytes: nonce reused")
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKeyV := newKey(t, "old"), newKey(t, "new")
	before := newCodec(t, oldKey)
	after := newCodec(t, newKeyV, oldKey)
	orig := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"` + email + `"`)}

	sealedOld, err := before.Encode([]*commonpb.Payload{orig})
	if err != nil {
		t.Fatal(err)
	}
	got, err := after.Decode(sealedOld)
	if err != nil {
		t.Fatalf("old payload with rotated keyring: %v", err)
	}
	if !bytes.Equal(got[0].Data, orig.Data) || string(got[0].Metadata["encoding"]) != "json/plain" {
		t.Fatalf("old payload decoded to %v", got[0])
	}

	sealedNew, err := after.Encode([]*commonpb.Payload{orig})
	if err != nil {
		t.Fatal(err)
	}
	if id := string(sealedNew[0].Metadata[codec.MetadataKeyID]); id != "new" || after.ActiveKeyID() != "new" {
		t.Fatalf("new payload uses key %q, want new", id)
	}

	// Once the old key is retired, its payloads name it in the error.
	retired := newCodec(t, newKeyV)
	_, err = retired.Decode(sealedOld)
	if !errors.Is(err, codec.ErrUnknownKey) || !strings.Contains(err.Error(), `"old"`) {
		t.Fatalf("retired key: err = %v, want ErrUnknownKey naming old", err)
	}
	if _, err := before.Decode(sealedNew); !errors.Is(err, codec.ErrUnknownKey) {
		t.Fatalf("keyring without the new key: err = %v", err)
	}
}

func TestTamperDetection(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	c := newCodec(t, k1, k2)
	orig := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"` + email + `"`)}
	sealed, err := c.Encode([]*commonpb.Payload{orig})
	if err != nil {
		t.Fatal(err)
	}
	clone := func() *commonpb.Payload {
		p := &commonpb.Payload{Metadata: map[string][]byte{}, Data: bytes.Clone(sealed[0].Data)}
		for k, v := range sealed[0].Metadata {
			p.Metadata[k] = bytes.Clone(v)
		}
		return p
	}
	cases := map[string]func(*commonpb.Payload){
		"flipped ciphertext bit": func(p *commonpb.Payload) { p.Data[len(p.Data)/2] ^= 1 },
		"flipped nonce bit":      func(p *commonpb.Payload) { p.Data[0] ^= 1 },
		"truncated":              func(p *commonpb.Payload) { p.Data = p.Data[:10] },
		"relabelled key":         func(p *commonpb.Payload) { p.Metadata[codec.MetadataKeyID] = []byte("k2") },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			p := clone()
			mutate(p)
			_, err := c.Decode([]*commonpb.Payload{p})
			if !errors.Is(err, codec.ErrDecrypt) {
				t.Fatalf("err = %v, want ErrDecrypt", err)
			}
			if strings.Contains(err.Error(), email) {
				t.Fatalf("error carries plaintext: %v", err)
			}
		})
	}
	p := clone()
	delete(p.Metadata, codec.MetadataKeyID)
	if _, err := c.Decode([]*commonpb.Payload{p}); !errors.Is(err, codec.ErrUnknownKey) {
		t.Fatalf("no key id: err = %v", err)
	}
}

func TestPlainPayloadPassesThrough(t *testing.T) {
	c := newCodec(t, newKey(t, "k1"))
	plain := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`42`)}
	out, err := c.Decode([]*commonpb.Payload{plain})
	if err != nil {
		t.Fatal(err)
	}
	if out[0] != plain {
		t.Fatal("a payload that is not encrypted should come back unchanged")
	}
}

func TestNewCodecRejectsBadKeys(t *testing.T) {
	secret := bytes.Repeat([]byte{0xAB}, 16)
	cases := map[string][]config.Key{
		"none":      nil,
		"short":     {{ID: "k1", Material: secret}},
		"no id":     {{ID: "", Material: make([]byte, 32)}},
		"duplicate": {{ID: "k1", Material: make([]byte, 32)}, {ID: "k1", Material: make([]byte, 32)}},
	}
	for name, keys := range cases {
		if _, err := codec.NewCodec(keys); err == nil {
			t.Errorf("%s: want an error", name)
		} else if strings.Contains(err.Error(), "q6urq6urq6urq6urq6urqw") || strings.Contains(err.Error(), string(secret)) {
			t.Errorf("%s: error carries key material: %v", name, err)
		}
	}
}

func TestFailureConverterHidesMessage(t *testing.T) {
	var opts client.Options
	if err := codec.ConfigureClient(&opts, []config.Key{newKey(t, "k1")}); err != nil {
		t.Fatal(err)
	}
	if opts.DataConverter == nil || opts.FailureConverter == nil {
		t.Fatal("ConfigureClient left a converter unset")
	}
	fc := opts.FailureConverter
	cause := temporal.NewApplicationError("no account for "+email, "NotFound", request{Email: email})
	f := fc.ErrorToFailure(cause)
	if strings.Contains(f.GetMessage(), email) || strings.Contains(f.GetStackTrace(), email) {
		t.Fatalf("failure message in clear: %q", f.GetMessage())
	}
	raw, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(email)) {
		t.Fatal("serialised failure contains the email in plaintext")
	}

	back := fc.FailureToError(f)
	if !strings.Contains(back.Error(), email) {
		t.Fatalf("decoded error lost its message: %v", back)
	}
	var appErr *temporal.ApplicationError
	if !errors.As(back, &appErr) {
		t.Fatalf("decoded error is %T", back)
	}
	var details request
	if err := appErr.Details(&details); err != nil || details.Email != email {
		t.Fatalf("details = %+v, %v", details, err)
	}
}

func TestGenerateKeyParses(t *testing.T) {
	a, err := codec.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := codec.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == b.ID || bytes.Equal(a.Material, b.Material) {
		t.Fatal("two generated keys are alike")
	}
	keys, err := config.ParseKeys(codec.FormatKey(a) + "," + codec.FormatKey(b))
	if err != nil {
		t.Fatal(err)
	}
	if keys[0].ID != a.ID || !bytes.Equal(keys[0].Material, a.Material) || len(keys) != 2 {
		t.Fatalf("parsed %v", keys)
	}
	if _, err := codec.NewCodec(keys); err != nil {
		t.Fatal(err)
	}
}
