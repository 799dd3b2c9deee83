package codec

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"go.temporal.io/sdk/converter"
)

// DefaultMaxBodyBytes bounds a codec server request body when
// [HandlerOptions.MaxBodyBytes] is zero. Temporal refuses payloads above
// 2 MiB by default; a request may carry several.
const DefaultMaxBodyBytes int64 = 4 << 20

// minTokenLen is the shortest operator token accepted.
const minTokenLen = 16

// corsAllowHeaders are the request headers the Temporal Web UI sends to a
// codec server: Content-Type and X-Namespace always; Authorization and
// Authorization-Extras (the OIDC ID token) when it passes the access token.
// A browser refuses the call if any of them is missing from the preflight
// answer.
const corsAllowHeaders = "Content-Type, X-Namespace, Authorization, Authorization-Extras"

// HandlerOptions configure [NewHTTPHandler].
type HandlerOptions struct {
	// Token is the operator credential; every encode or decode request must
	// carry the header "Authorization: Bearer <Token>". At least 16
	// characters; generate one with e.g. `openssl rand -base64 32`.
	// Required unless AllowUnauthenticated is set.
	Token string
	// AllowUnauthenticated serves requests without a credential. It exists
	// for a development listener bound to loopback only (the Temporal dev
	// server's UI sends no credential); never set it on a shared listener,
	// since the handler decrypts personal data for whoever asks.
	AllowUnauthenticated bool
	// AllowedOrigins are the browser origins allowed to call the handler
	// cross-origin, i.e. where the Temporal Web UI is served from, such as
	// "http://localhost:8233". Requests from any other origin are refused.
	// "*" is not accepted: the UI may send credentials, and browsers
	// ignore a wildcard for credentialed requests.
	AllowedOrigins []string
	// Namespace, when set, refuses requests whose X-Namespace header names
	// a different Temporal namespace.
	Namespace string
	// MaxBodyBytes bounds request bodies; zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

// NewHTTPHandler serves c over the Temporal codec server protocol: POST of a
// JSON Payloads message to a path ending in /encode or /decode (so it may be
// mounted under any prefix, e.g. /lethe/decode), answered by the SDK's
// [converter.NewPayloadCodecHTTPHandler]. Around it, this handler answers
// CORS preflights for opts.AllowedOrigins, checks the operator credential in
// constant time (401 otherwise), and limits the body size (413).
//
// What the clients send:
//
//   - Temporal CLI: `temporal workflow show --codec-endpoint https://host/lethe
//     --codec-auth "Bearer <token>"` sends the --codec-auth value verbatim as
//     the Authorization header.
//   - Temporal Web UI (codec.endpoint / TEMPORAL_CODEC_ENDPOINT, or the
//     per-browser codec setting): it always sends Content-Type and
//     X-Namespace. With codec.passAccessToken (TEMPORAL_CODEC_PASS_ACCESS_TOKEN)
//     it sends "Authorization: Bearer <the signed-in user's OIDC access
//     token>" and "Authorization-Extras: <ID token>", and only when the
//     endpoint is https://. It cannot be given a fixed token. With
//     codec.includeCredentials (TEMPORAL_CODEC_INCLUDE_CREDENTIALS) it calls
//     with credentials "include" (cookies), which is why the handler answers
//     Access-Control-Allow-Credentials: true and echoes the exact origin.
//     So for the UI, either put the handler behind a proxy that
//     authenticates the user and sets "Authorization: Bearer <Token>", or,
//     for local development only, serve it on loopback with
//     AllowUnauthenticated.
//
// Responses are marked Cache-Control: no-store, as decoded payloads hold
// personal data. Nothing is logged.
func NewHTTPHandler(c converter.PayloadCodec, opts HandlerOptions) (http.Handler, error) {
	if c == nil {
		return nil, errors.New("codec server: no codec")
	}
	h := &codecServer{
		next:      converter.NewPayloadCodecHTTPHandler(c),
		origins:   map[string]bool{},
		namespace: opts.Namespace,
		maxBody:   opts.MaxBodyBytes,
		noAuth:    opts.AllowUnauthenticated,
	}
	switch {
	case opts.Token != "" && opts.AllowUnauthenticated:
		return nil, errors.New("codec server: set either an operator token or AllowUnauthenticated, not both")
	case opts.Token == "" && !opts.AllowUnauthenticated:
		return nil, errors.New("codec server: an operator token is required")
	case opts.Token != "" && len(opts.Token) < minTokenLen:
		return nil, fmt.Errorf("codec server: operator token too short, want at least %d characters", minTokenLen)
	case opts.Token != "":
		sum := sha256.Sum256([]byte(opts.Token))
		h.tokenSum = sum[:]
	}
	if h.maxBody == 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	if h.maxBody < 0 {
		return nil, errors.New("codec server: MaxBodyBytes must not be negative")
	}
	for _, o := range opts.AllowedOrigins {
		norm, err := normalizeOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("codec server: allowed origin %q: %w", o, err)
		}
		h.origins[norm] = true
	}
	return h, nil
}

type codecServer struct {
	next      http.Handler
	origins   map[string]bool
	tokenSum  []byte // SHA-256 of the operator token; nil when unauthenticated
	noAuth    bool
	namespace string
	maxBody   int64
}

func (h *codecServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Add("Vary", "Origin")

	if origin := r.Header.Get("Origin"); origin != "" {
		if !h.origins[strings.ToLower(origin)] {
			httpError(w, http.StatusForbidden)
			return
		}
		hdr.Set("Access-Control-Allow-Origin", origin)
		hdr.Set("Access-Control-Allow-Credentials", "true")
		if r.Method == http.MethodOptions {
			// Preflight: carries no credential by design, so it is
			// answered before the credential check.
			hdr.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
			hdr.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			hdr.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	if r.Method == http.MethodOptions {
		hdr.Set("Allow", "POST, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
		return
	}

	if !h.authorized(r) {
		hdr.Set("WWW-Authenticate", `Bearer realm="lethe-codec"`)
		httpError(w, http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodPost {
		hdr.Set("Allow", "POST, OPTIONS")
		httpError(w, http.StatusMethodNotAllowed)
		return
	}
	if !strings.HasSuffix(r.URL.Path, "/encode") && !strings.HasSuffix(r.URL.Path, "/decode") {
		httpError(w, http.StatusNotFound)
		return
	}
	if ns := r.Header.Get("X-Namespace"); h.namespace != "" && ns != "" && ns != h.namespace {
		httpError(w, http.StatusForbidden)
		return
	}

	if r.ContentLength > h.maxBody {
		httpError(w, http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			httpError(w, http.StatusRequestEntityTooLarge)
			return
		}
		httpError(w, http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	h.next.ServeHTTP(w, r)
}

// authorized compares the bearer token with the operator token in constant
// time. Both are hashed first so that neither their content nor their
// length shows in the timing.
func (h *codecServer) authorized(r *http.Request) bool {
	if h.noAuth {
		return true
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(sum[:], h.tokenSum) == 1
}

// normalizeOrigin reduces a configured origin to the form browsers send in
// the Origin header: lower-case scheme://host[:port], no path.
func normalizeOrigin(o string) (string, error) {
	if o == "*" {
		return "", errors.New(`"*" is not allowed; list the Web UI's origin`)
	}
	u, err := url.Parse(strings.TrimSpace(o))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("want http(s)://host[:port]")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", errors.New("an origin has no path, query or user")
	}
	if p := u.Port(); p != "" {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return "", errors.New("bad port")
		}
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

func httpError(w http.ResponseWriter, code int) {
	http.Error(w, http.StatusText(code), code)
}
