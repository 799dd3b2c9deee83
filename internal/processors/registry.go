package processors

import (
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config declares one connector, as an entry of a data map's `processors:`
// list:
//
//	processors:
//	  - name: stripe
//	    kind: stripe
//	    credential_env: LETHE_STRIPE_KEY
//	    options: {export: "charges,invoices"}
//	  - name: newsletter
//	    kind: mailchimp
//	    credential_env: LETHE_MAILCHIMP_KEY
//	    options: {list_id: "a1b2c3", purposes: "marketing"}
//	  - name: paypal
//	    kind: manual
//	    options: {preset: paypal}
//
// Kinds, their options (all strings; lists are comma-separated) and
// credentials:
//
//	stripe     api_version, export (charges,invoices), page_size    credential: secret key
//	mailchimp  list_id (required, list), purposes, resubscribe_status   credential: API key
//	sendgrid   groups ("marketing=123,news=456"), global_purposes, on_behalf_of   credential: API key
//	webhook    base_url required; signature (lethe-v1|stripe|github-sha256|
//	           standard-webhooks), signature_header
//	           credential: HMAC secret (≥16 bytes; standard-webhooks: whsec_<Base64 of 24-64 bytes>)
//	opendsr    base_url required; regulation, export_type, email_format,
//	           callback_urls, legacy (true/false), auth (basic|bearer|none),
//	           processor_domain and discovery_url (callback signatures,
//	           see NewOpenDSRCallbacks), ca_file (a PEM CA bundle, else
//	           the variable LETHE_OPENDSR_CA_FILE)
//	           credential: "user:secret" for basic, token for bearer
//	helpscout  conversations (true/false: export the conversation list)
//	           credential: "app_id:app_secret" (OAuth client credentials)
//	manual     preset (paypal|paddle|gravatar|replicate), instructions   no credential, no base_url
type Config struct {
	Name          string            `yaml:"name" json:"name"`
	Kind          string            `yaml:"kind" json:"kind"`
	BaseURL       string            `yaml:"base_url,omitempty" json:"base_url,omitempty"`
	CredentialEnv string            `yaml:"credential_env,omitempty" json:"credential_env,omitempty"`
	Options       map[string]string `yaml:"options,omitempty" json:"options,omitempty"`
	// FollowUp is the processor's own retention window (a period such as
	// "30d", "1mo" or "20bd"): that long after an erasure, Lethe checks or
	// asks again. Empty means DefaultFollowUp.
	FollowUp string `yaml:"follow_up,omitempty" json:"follow_up,omitempty"`
	// IDs names, per key of Subject.IDs (IDStripeCustomer,
	// IDSendGridContact), the column of the data map's identity table that
	// holds the person's id at this processor: the connector then acts on
	// that id instead of looking the person up by email.
	IDs map[string]string `yaml:"ids,omitempty" json:"ids,omitempty"`
	// RateLimit is how many calls a second Lethe makes to this processor,
	// across every worker: its calls run on a task queue of their own whose
	// rate the Temporal server enforces. 0 means the kind's default, taken
	// from the service's published limits (DefaultRateLimit).
	RateLimit float64 `yaml:"rate_limit,omitempty" json:"rate_limit,omitempty"`
}

// CallsPerSecond is c.RateLimit, or the default of c's kind.
func (c Config) CallsPerSecond() float64 {
	if c.RateLimit > 0 {
		return c.RateLimit
	}
	return DefaultRateLimit(c.Kind)
}

// DefaultRateLimit is the calls a second Lethe makes to a processor of the
// kind when the data map sets no rate_limit, from each service's published
// limits (../shared/reference/processors.md), kept under them:
//
//	stripe     20/s   sandbox and per-endpoint default 25 req/s (live 100 ops/s)
//	mailchimp  5/s    10 simultaneous connections per user, no rate published
//	sendgrid   5/s    per-endpoint limits, not published as numbers
//	helpscout  3/s    per-minute account limit (plan-dependent), writes count twice
//	opendsr    5/s    none published: a polite default
//	webhook    5/s    your own endpoint: set rate_limit to what it takes
//	manual     1/s    no API: the call only opens an operator task
func DefaultRateLimit(kind string) float64 {
	switch kind {
	case "stripe":
		return 20
	case "helpscout":
		return 3
	case "manual":
		return 1
	default:
		return 5
	}
}

// DefaultFollowUp is the follow-up period of a processor that sets none.
const DefaultFollowUp = "30d"

// FollowUpPeriod is c.FollowUp, or DefaultFollowUp when it is empty.
func (c Config) FollowUpPeriod() string {
	if strings.TrimSpace(c.FollowUp) == "" {
		return DefaultFollowUp
	}
	return strings.TrimSpace(c.FollowUp)
}

// BuildOptions carries what connectors take from their surroundings.
type BuildOptions struct {
	// LookupEnv reads credentials; os.LookupEnv in production. Required
	// unless no connector needs a credential.
	LookupEnv func(string) (string, bool)
	// HTTPClient is shared by the connectors; nil gives each its own
	// client with a 60 s timeout.
	HTTPClient *http.Client
	// Now defaults to time.Now.
	Now func() time.Time
	// OpenDSRRoots are the CAs trusted to issue OpenDSR processors'
	// signing certificates (NewOpenDSRCallbacks); nil means the system pool.
	OpenDSRRoots *x509.CertPool
}

type credNeed int

const (
	credNone credNeed = iota
	credOptional
	credRequired
)

// kindSpec describes one connector kind for validation and building.
type kindSpec struct {
	options  []string
	required []string
	cred     credNeed
	baseURL  credNeed // credNone: must be empty; credOptional; credRequired
	build    func(c Config, cred string, o BuildOptions) (Connector, error)
}

func kindSpecs() map[string]kindSpec {
	return map[string]kindSpec{
		"stripe": {
			options: []string{"api_version", "export", "page_size"},
			cred:    credRequired, baseURL: credOptional,
			build: func(c Config, cred string, o BuildOptions) (Connector, error) {
				size := 0
				if v := c.Options["page_size"]; v != "" {
					n, err := strconv.Atoi(v)
					if err != nil {
						return nil, fmt.Errorf("option page_size %q is not a number", v)
					}
					size = n
				}
				return NewStripe(StripeConfig{Name: c.Name, BaseURL: c.BaseURL, APIKey: cred,
					APIVersion: c.Options["api_version"], ExportLists: splitList(c.Options["export"]),
					PageSize: size, HTTPClient: o.HTTPClient})
			},
		},
		"mailchimp": {
			options:  []string{"list_id", "purposes", "resubscribe_status"},
			required: []string{"list_id"},
			cred:     credRequired, baseURL: credOptional,
			build: func(c Config, cred string, o BuildOptions) (Connector, error) {
				return NewMailchimp(MailchimpConfig{Name: c.Name, BaseURL: c.BaseURL, APIKey: cred,
					ListIDs: splitList(c.Options["list_id"]), Purposes: splitList(c.Options["purposes"]),
					ResubscribeStatus: c.Options["resubscribe_status"], HTTPClient: o.HTTPClient})
			},
		},
		"sendgrid": {
			options: []string{"groups", "global_purposes", "on_behalf_of"},
			cred:    credRequired, baseURL: credOptional,
			build: func(c Config, cred string, o BuildOptions) (Connector, error) {
				groups := map[string]int{}
				for _, kv := range splitList(c.Options["groups"]) {
					p, id, ok := strings.Cut(kv, "=")
					n, err := strconv.Atoi(strings.TrimSpace(id))
					if !ok || err != nil || strings.TrimSpace(p) == "" {
						return nil, fmt.Errorf("option groups: %q is not purpose=group_id", kv)
					}
					groups[strings.TrimSpace(p)] = n
				}
				return NewSendGrid(SendGridConfig{Name: c.Name, BaseURL: c.BaseURL, APIKey: cred,
					OnBehalfOf: c.Options["on_behalf_of"], GroupIDs: groups,
					GlobalPurposes: splitList(c.Options["global_purposes"]), HTTPClient: o.HTTPClient})
			},
		},
		"webhook": {
			options: []string{"signature", "signature_header"},
			cred:    credRequired, baseURL: credRequired,
			build: func(c Config, cred string, o BuildOptions) (Connector, error) {
				scheme, header := strings.TrimSpace(c.Options["signature"]), strings.TrimSpace(c.Options["signature_header"])
				if _, err := checkWebhookSignature(scheme, header, []byte(cred)); err != nil {
					return nil, err
				}
				return NewWebhook(WebhookConfig{Name: c.Name, URL: c.BaseURL, Secret: []byte(cred),
					Signature: scheme, SignatureHeader: header, HTTPClient: o.HTTPClient, Now: o.Now})
			},
		},
		"helpscout": {
			options: []string{"conversations"},
			cred:    credRequired, baseURL: credOptional,
			build: func(c Config, cred string, o BuildOptions) (Connector, error) {
				id, secret, ok := strings.Cut(cred, ":")
				if !ok || strings.TrimSpace(id) == "" || strings.TrimSpace(secret) == "" {
					return nil, fmt.Errorf("credential_env %s must hold the app id and secret as app_id:app_secret", c.CredentialEnv)
				}
				cfg := HelpScoutConfig{Name: c.Name, BaseURL: c.BaseURL, ClientID: strings.TrimSpace(id),
					ClientSecret: strings.TrimSpace(secret), HTTPClient: o.HTTPClient, Now: o.Now}
				if v := c.Options["conversations"]; v != "" {
					b, err := strconv.ParseBool(v)
					if err != nil {
						return nil, fmt.Errorf("option conversations %q is not true or false", v)
					}
					cfg.SkipConversations = !b
				}
				return NewHelpScout(cfg)
			},
		},
		"opendsr": {
			options: []string{"regulation", "export_type", "email_format", "callback_urls", "legacy", "auth",
				"processor_domain", "discovery_url", "ca_file"},
			cred: credOptional, baseURL: credRequired,
			build: func(c Config, cred string, o BuildOptions) (Connector, error) {
				cfg := OpenDSRConfig{Name: c.Name, BaseURL: c.BaseURL, Regulation: c.Options["regulation"],
					ExportType: c.Options["export_type"], EmailFormat: c.Options["email_format"],
					StatusCallbackURLs: splitList(c.Options["callback_urls"]), HTTPClient: o.HTTPClient, Now: o.Now}
				roots, bundle, err := openDSRTrust(c, o)
				if err != nil {
					return nil, err
				}
				if bundle {
					if cfg.HTTPClient, err = clientTrusting(o.HTTPClient, roots); err != nil {
						return nil, fmt.Errorf("option ca_file: %w", err)
					}
				}
				if v := c.Options["legacy"]; v != "" {
					b, err := strconv.ParseBool(v)
					if err != nil {
						return nil, fmt.Errorf("option legacy %q is not true or false", v)
					}
					cfg.Legacy = b
				}
				auth := c.Options["auth"]
				if auth == "" {
					auth = "none"
					if cred != "" {
						auth = "basic"
					}
				}
				switch auth {
				case "basic":
					user, pass, ok := strings.Cut(cred, ":")
					if !ok || user == "" {
						return nil, fmt.Errorf("auth basic needs the credential as user:secret")
					}
					cfg.Username, cfg.Password = user, pass
				case "bearer":
					if cred == "" {
						return nil, fmt.Errorf("auth bearer needs a credential")
					}
					cfg.BearerToken = cred
				case "none":
					if cred != "" {
						return nil, fmt.Errorf("auth none but a credential is set")
					}
				default:
					return nil, fmt.Errorf("option auth %q is not basic, bearer or none", auth)
				}
				return NewOpenDSR(cfg)
			},
		},
		"manual": {
			options: []string{"preset", "instructions"},
			cred:    credNone, baseURL: credNone,
			build: func(c Config, _ string, _ BuildOptions) (Connector, error) {
				cfg := ManualConfig{Name: c.Name}
				if p := c.Options["preset"]; p != "" {
					steps, ok := ManualPreset(p)
					if !ok {
						return nil, fmt.Errorf("option preset %q is not one of %s", p, strings.Join(ManualPresets(), ", "))
					}
					cfg.Steps = steps
				}
				if text := strings.TrimSpace(c.Options["instructions"]); text != "" {
					if cfg.Steps == nil {
						cfg.Steps = map[Action][]string{}
					}
					for _, a := range []Action{ActionErase, ActionExport, ActionUpdate, ActionConsent} {
						cfg.Steps[a] = append(cfg.Steps[a], text)
					}
				}
				return NewManual(cfg)
			},
		},
	}
}

// splitList splits a comma-separated option, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ValidName tells whether s is a processor name as a data map may give it:
// 1 to 64 characters of a-z, 0-9, '-', '_' and '.'.
func ValidName(s string) bool {
	return s != "" && len(s) <= 64 && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	})
}

func validEnvName(s string) bool {
	return s != "" && !(s[0] >= '0' && s[0] <= '9') && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_')
	})
}

// Build checks one Config and builds its connector. Errors name the
// connector and the offending setting, never a credential value.
func Build(cfg Config, opts BuildOptions) (Connector, error) {
	c, err := build(cfg, opts)
	if err != nil {
		label := cfg.Name
		if label == "" {
			label = "(no name)"
		}
		return nil, fmt.Errorf("processor %q: %w", label, err)
	}
	return c, nil
}

func build(cfg Config, opts BuildOptions) (Connector, error) {
	if !ValidName(cfg.Name) {
		return nil, fmt.Errorf("name must be 1-64 characters of a-z, 0-9, '-', '_', '.'")
	}
	if cfg.RateLimit < 0 || cfg.RateLimit > 10000 {
		return nil, fmt.Errorf("rate_limit %g is not a number of calls a second between 0 (the kind's default) and 10000", cfg.RateLimit)
	}
	specs := kindSpecs()
	spec, ok := specs[cfg.Kind]
	if !ok {
		return nil, fmt.Errorf("kind %q is not one of %s", cfg.Kind, strings.Join(slices.Sorted(maps.Keys(specs)), ", "))
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Options)) {
		if !slices.Contains(spec.options, k) {
			known := "none"
			if len(spec.options) > 0 {
				known = strings.Join(spec.options, ", ")
			}
			return nil, fmt.Errorf("option %q is not known for kind %s (known: %s)", k, cfg.Kind, known)
		}
	}
	for _, k := range spec.required {
		if strings.TrimSpace(cfg.Options[k]) == "" {
			return nil, fmt.Errorf("kind %s needs option %s", cfg.Kind, k)
		}
	}
	switch {
	case spec.baseURL == credNone && cfg.BaseURL != "":
		return nil, fmt.Errorf("kind %s takes no base_url", cfg.Kind)
	case spec.baseURL == credRequired && cfg.BaseURL == "":
		return nil, fmt.Errorf("kind %s needs base_url", cfg.Kind)
	case cfg.BaseURL != "":
		if err := validBaseURL(cfg.BaseURL); err != nil {
			return nil, err
		}
	}
	cred := ""
	switch {
	case spec.cred == credNone && cfg.CredentialEnv != "":
		return nil, fmt.Errorf("kind %s takes no credential_env", cfg.Kind)
	case spec.cred == credRequired && cfg.CredentialEnv == "":
		return nil, fmt.Errorf("kind %s needs credential_env (the name of the variable holding its secret)", cfg.Kind)
	case cfg.CredentialEnv != "":
		if !validEnvName(cfg.CredentialEnv) {
			return nil, fmt.Errorf("credential_env %q is not an environment variable name (A-Z, 0-9, _)", cfg.CredentialEnv)
		}
		if opts.LookupEnv == nil {
			return nil, errors.New("no environment lookup given to read credential_env")
		}
		v, ok := opts.LookupEnv(cfg.CredentialEnv)
		if !ok {
			return nil, fmt.Errorf("credential_env %s is not set", cfg.CredentialEnv)
		}
		if strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("credential_env %s is empty", cfg.CredentialEnv)
		}
		cred = strings.TrimSpace(v)
	}
	conn, err := spec.build(cfg, cred, opts)
	if err != nil {
		return nil, err
	}
	if h, ok := conn.(httpConnector); ok {
		// A 401 or 403 names the variable to check.
		c := h.http()
		c.credentialEnv = cfg.CredentialEnv
		if c.credential == "" {
			c.credential = credentialWords[cfg.Kind]
		}
	}
	return conn, nil
}

// credentialWords names each kind's credential in the message of a 401 or
// 403, where the connector does not itself.
var credentialWords = map[string]string{"stripe": "secret key", "mailchimp": "API key", "sendgrid": "API key"}

// httpConnector is a connector calling its processor over HTTP.
type httpConnector interface{ http() *httpClient }

func (s *Stripe) http() *httpClient    { return s.c }
func (m *Mailchimp) http() *httpClient { return m.c }
func (s *SendGrid) http() *httpClient  { return s.c }
func (h *Webhook) http() *httpClient   { return h.c }
func (o *OpenDSR) http() *httpClient   { return o.c }
func (h *HelpScout) http() *httpClient { return h.c }

// Registry holds the connectors of a data map by name.
type Registry struct {
	names  []string
	byName map[string]Connector
	// observer hears of every call of the connectors handed out (Observed).
	observer Observer
}

// NewRegistry builds every connector, reporting all configuration errors
// at once.
func NewRegistry(cfgs []Config, opts BuildOptions) (*Registry, error) {
	r := &Registry{byName: map[string]Connector{}}
	var errs []error
	for i, cfg := range cfgs {
		if _, dup := r.byName[cfg.Name]; dup {
			errs = append(errs, fmt.Errorf("processors[%d]: name %q is used twice", i, cfg.Name))
			continue
		}
		c, err := Build(cfg, opts)
		if err != nil {
			errs = append(errs, fmt.Errorf("processors[%d]: %w", i, err))
			continue
		}
		r.names = append(r.names, cfg.Name)
		r.byName[cfg.Name] = c
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// Names lists the connectors in declaration order.
func (r *Registry) Names() []string { return slices.Clone(r.names) }

// Get returns the connector called name.
func (r *Registry) Get(name string) (Connector, bool) {
	c, ok := r.byName[name]
	return c, ok
}

// Eraser returns the named connector if it can erase.
func (r *Registry) Eraser(name string) (Eraser, bool) {
	c, ok := capability[Eraser](r, name)
	if ok && r.observer != nil {
		return observedEraser{c, r.watch(name)}, true
	}
	return c, ok
}

// BatchEraser returns the named connector if it erases in batches.
func (r *Registry) BatchEraser(name string) (BatchEraser, bool) {
	c, ok := capability[BatchEraser](r, name)
	if ok && r.observer != nil {
		return observedBatchEraser{c, r.watch(name)}, true
	}
	return c, ok
}

// Exporter returns the named connector if it can export.
func (r *Registry) Exporter(name string) (Exporter, bool) {
	c, ok := capability[Exporter](r, name)
	if ok && r.observer != nil {
		return observedExporter{c, r.watch(name)}, true
	}
	return c, ok
}

// Rectifier returns the named connector if it can rectify.
func (r *Registry) Rectifier(name string) (Rectifier, bool) {
	c, ok := capability[Rectifier](r, name)
	if ok && r.observer != nil {
		return observedRectifier{c, r.watch(name)}, true
	}
	return c, ok
}

// ConsentSetter returns the named connector if it can change consent.
func (r *Registry) ConsentSetter(name string) (ConsentSetter, bool) {
	c, ok := capability[ConsentSetter](r, name)
	if ok && r.observer != nil {
		return observedConsentSetter{c, r.watch(name)}, true
	}
	return c, ok
}

// Confirmer returns the named connector if it can re-check an erasure.
func (r *Registry) Confirmer(name string) (Confirmer, bool) {
	c, ok := capability[Confirmer](r, name)
	if ok && r.observer != nil {
		return observedConfirmer{c, r.watch(name)}, true
	}
	return c, ok
}

func (r *Registry) watch(name string) watch { return watch{processor: name, o: r.observer} }

func capability[T any](r *Registry, name string) (T, bool) {
	c, ok := r.byName[name].(T)
	return c, ok
}
