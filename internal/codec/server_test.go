package codec_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"

	"github.com/lethe-privacy/lethe/internal/codec"
)

const (
	token    = "operator-token-0123456789abcdef"
	uiOrigin = "http://localhost:8233"
)

// wirePayloads is the JSON form of a Payloads message; bytes fields are
// base64 in both protojson and encoding/json.
type wirePayloads struct {
	Payloads []struct {
		Metadata map[string][]byte `json:"metadata"`
		Data     []byte            `json:"data"`
	} `json:"payloads"`
}

func toWire(t *testing.T, ps []*commonpb.Payload) []byte {
	t.Helper()
	var w wirePayloads
	w.Payloads = make([]struct {
		Metadata map[string][]byte `json:"metadata"`
		Data     []byte            `json:"data"`
	}, len(ps))
	for i, p := range ps {
		w.Payloads[i].Metadata, w.Payloads[i].Data = p.Metadata, p.Data
	}
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fromWire(t *testing.T, body []byte) []*commonpb.Payload {
	t.Helper()
	var w wirePayloads
	if err := json.Unmarshal(body, &w); err != nil {
		t.Fatalf("response is not Payloads JSON: %v: %s", err, body)
	}
	out := make([]*commonpb.Payload, len(w.Payloads))
	for i, p := range w.Payloads {
		out[i] = &commonpb.Payload{Metadata: p.Metadata, Data: p.Data}
	}
	return out
}

func newServer(t *testing.T, c *codec.Codec) http.Handler {
	t.Helper()
	h, err := codec.NewHTTPHandler(c, codec.HandlerOptions{
		Token:          token,
		AllowedOrigins: []string{uiOrigin + "/"},
		Namespace:      "default",
		MaxBodyBytes:   64 << 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func do(h http.Handler, method, path string, body []byte, headers map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestCodecServerDecodeEncode(t *testing.T) {
	c := newCodec(t, newKey(t, "k1"))
	h := newServer(t, c)
	orig := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"` + email + `"`)}
	sealed, err := c.Encode([]*commonpb.Payload{orig})
	if err != nil {
		t.Fatal(err)
	}
	auth := map[string]string{"Authorization": "Bearer " + token, "X-Namespace": "default"}

	rec := do(h, http.MethodPost, "/lethe/decode", toWire(t, sealed), auth)
	if rec.Code != http.StatusOK {
		t.Fatalf("decode: %d %s", rec.Code, rec.Body)
	}
	got := fromWire(t, rec.Body.Bytes())
	if len(got) != 1 || !bytes.Equal(got[0].Data, orig.Data) || string(got[0].Metadata["encoding"]) != "json/plain" {
		t.Fatalf("decode returned %v", got)
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatal("decoded personal data must not be cached")
	}

	rec = do(h, http.MethodPost, "/encode", toWire(t, []*commonpb.Payload{orig}), auth)
	if rec.Code != http.StatusOK {
		t.Fatalf("encode: %d %s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), email) {
		t.Fatal("encode response shows the plaintext")
	}
	enc := fromWire(t, rec.Body.Bytes())
	if string(enc[0].Metadata[codec.MetadataKeyID]) != "k1" {
		t.Fatalf("encoded payload metadata %v", enc[0].Metadata)
	}
	back, err := c.Decode(enc)
	if err != nil || !bytes.Equal(back[0].Data, orig.Data) {
		t.Fatalf("server-encoded payload does not decode: %v", err)
	}

	// A payload under an unknown key: 400 naming the key id only.
	other := newCodec(t, newKey(t, "elsewhere"))
	foreign, _ := other.Encode([]*commonpb.Payload{orig})
	rec = do(h, http.MethodPost, "/decode", toWire(t, foreign), auth)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "elsewhere") || strings.Contains(rec.Body.String(), email) {
		t.Fatalf("foreign key: %d %s", rec.Code, rec.Body)
	}
}

func TestCodecServerCredential(t *testing.T) {
	c := newCodec(t, newKey(t, "k1"))
	h := newServer(t, c)
	sealed, _ := c.Encode([]*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`1`)}})
	body := toWire(t, sealed)
	for name, hdr := range map[string]map[string]string{
		"none":         {},
		"wrong":        {"Authorization": "Bearer " + strings.ToUpper(token)},
		"prefix":       {"Authorization": "Bearer " + token[:len(token)-1]},
		"basic scheme": {"Authorization": "Basic " + token},
		"bare token":   {"Authorization": token},
	} {
		rec := do(h, http.MethodPost, "/decode", body, hdr)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, rec.Code)
		}
		if rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", name)
		}
	}
	if rec := do(h, http.MethodPost, "/decode", body, map[string]string{"Authorization": "bearer " + token}); rec.Code != http.StatusOK {
		t.Errorf("lower-case scheme: %d", rec.Code)
	}
}

func TestCodecServerCORS(t *testing.T) {
	h := newServer(t, newCodec(t, newKey(t, "k1")))

	pre := do(h, http.MethodOptions, "/decode", nil, map[string]string{
		"Origin":                         uiOrigin,
		"Access-Control-Request-Method":  "POST",
		"Access-Control-Request-Headers": "authorization,authorization-extras,content-type,x-namespace",
	})
	if pre.Code != http.StatusNoContent {
		t.Fatalf("preflight: %d", pre.Code)
	}
	if got := pre.Header().Get("Access-Control-Allow-Origin"); got != uiOrigin {
		t.Fatalf("Allow-Origin = %q", got)
	}
	if pre.Header().Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatal("preflight does not allow credentials")
	}
	allowed := strings.ToLower(pre.Header().Get("Access-Control-Allow-Headers"))
	for _, want := range []string{"content-type", "x-namespace", "authorization", "authorization-extras"} {
		if !strings.Contains(allowed, want) {
			t.Fatalf("Allow-Headers %q lacks %s", allowed, want)
		}
	}
	if !strings.Contains(pre.Header().Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatal("preflight does not allow POST")
	}

	// The real request from the UI carries the origin too.
	rec := do(h, http.MethodPost, "/decode", []byte(`{"payloads":[]}`), map[string]string{
		"Origin": uiOrigin, "Authorization": "Bearer " + token, "X-Namespace": "default",
	})
	if rec.Code != http.StatusOK || rec.Header().Get("Access-Control-Allow-Origin") != uiOrigin {
		t.Fatalf("cross-origin decode: %d, Allow-Origin %q", rec.Code, rec.Header().Get("Access-Control-Allow-Origin"))
	}

	// Any other origin is refused, preflight or not, and gets no CORS grant.
	for _, method := range []string{http.MethodOptions, http.MethodPost} {
		rec := do(h, method, "/decode", nil, map[string]string{"Origin": "https://evil.example", "Authorization": "Bearer " + token})
		if rec.Code != http.StatusForbidden || rec.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("%s from foreign origin: %d, Allow-Origin %q", method, rec.Code, rec.Header().Get("Access-Control-Allow-Origin"))
		}
	}
}

func TestCodecServerLimits(t *testing.T) {
	h := newServer(t, newCodec(t, newKey(t, "k1")))
	auth := map[string]string{"Authorization": "Bearer " + token}

	big := []byte(`{"payloads":[{"data":"` + strings.Repeat("A", 70<<10) + `"}]}`)
	if rec := do(h, http.MethodPost, "/decode", big, auth); rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d", rec.Code)
	}
	// Without a Content-Length the limit still holds while reading.
	req := httptest.NewRequest(http.MethodPost, "/decode", bytes.NewReader(big))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized streamed body: %d", rec.Code)
	}

	if rec := do(h, http.MethodGet, "/decode", nil, auth); rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", rec.Code)
	}
	if rec := do(h, http.MethodPost, "/other", []byte(`{}`), auth); rec.Code != http.StatusNotFound {
		t.Fatalf("unknown path: %d", rec.Code)
	}
	withNS := map[string]string{"Authorization": "Bearer " + token, "X-Namespace": "other"}
	if rec := do(h, http.MethodPost, "/decode", []byte(`{"payloads":[]}`), withNS); rec.Code != http.StatusForbidden {
		t.Fatalf("other namespace: %d", rec.Code)
	}
	if rec := do(h, http.MethodPost, "/decode", []byte(`not json`), auth); rec.Code != http.StatusBadRequest {
		t.Fatalf("bad JSON: %d", rec.Code)
	}
}

func TestNewHTTPHandlerOptions(t *testing.T) {
	c := newCodec(t, newKey(t, "k1"))
	bad := map[string]codec.HandlerOptions{
		"no credential":     {},
		"short token":       {Token: "short"},
		"token and no auth": {Token: token, AllowUnauthenticated: true},
		"wildcard origin":   {Token: token, AllowedOrigins: []string{"*"}},
		"origin with path":  {Token: token, AllowedOrigins: []string{"http://localhost:8233/ui"}},
		"not an origin":     {Token: token, AllowedOrigins: []string{"localhost:8233"}},
	}
	for name, opts := range bad {
		if _, err := codec.NewHTTPHandler(c, opts); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	h, err := codec.NewHTTPHandler(c, codec.HandlerOptions{AllowUnauthenticated: true})
	if err != nil {
		t.Fatal(err)
	}
	if rec := do(h, http.MethodPost, "/decode", []byte(`{"payloads":[]}`), nil); rec.Code != http.StatusOK {
		t.Fatalf("unauthenticated dev handler: %d", rec.Code)
	}
}
