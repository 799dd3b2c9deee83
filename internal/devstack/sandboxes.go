package devstack

import (
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
)

// Sandboxes are local stand-ins for a data map's processors, so that the dev
// stack's erasures, exports, corrections and consent changes really reach a
// Stripe, a Mailchimp, a SendGrid and a signed webhook: the fakes of
// internal/testenv/processorfake, which answer on the services' real paths
// with their real status codes, served in-process on loopback ports. They
// keep their state in memory: Seed fills them at every start.
type Sandboxes struct {
	// By processor name; each is nil for a kind the map does not use.
	Stripe    map[string]*processorfake.Stripe
	Mailchimp map[string]*processorfake.Mailchimp
	SendGrid  map[string]*processorfake.SendGrid
	Webhook   map[string]*processorfake.Webhook

	configs []processors.Config // the map's processors, base URLs pointed at the sandboxes
	secrets map[string]string   // credential_env → the sandbox's credential
	host    *host
}

// SandboxKinds are the processor kinds a sandbox stands in for.
var SandboxKinds = []string{"stripe", "mailchimp", "sendgrid", "webhook"}

// StartSandboxes starts a sandbox for each processor of cfgs of a kind in
// SandboxKinds; the others (manual, OpenDSR, Help Scout) are left as they are.
func StartSandboxes(cfgs []processors.Config) (_ *Sandboxes, err error) {
	s := &Sandboxes{
		Stripe: map[string]*processorfake.Stripe{}, Mailchimp: map[string]*processorfake.Mailchimp{},
		SendGrid: map[string]*processorfake.SendGrid{}, Webhook: map[string]*processorfake.Webhook{},
		secrets: map[string]string{}, host: &host{},
	}
	defer func() {
		if r := recover(); r != nil { // a fake failed to start (host.Fatalf)
			s.Close()
			err = fmt.Errorf("processor sandboxes: %v", r)
		}
	}()
	for _, c := range cfgs {
		c.Options = cloneOptions(c.Options)
		var url, secret string
		switch c.Kind {
		case "stripe":
			f := processorfake.NewStripe(s.host)
			s.Stripe[c.Name], url, secret = f, f.URL(), f.APIKey
		case "mailchimp":
			f := processorfake.NewMailchimp(s.host)
			for _, list := range strings.Split(c.Options["list_id"], ",") {
				if list = strings.TrimSpace(list); list != "" {
					f.AddList(list)
				}
			}
			s.Mailchimp[c.Name], url, secret = f, f.URL(), f.APIKey
		case "sendgrid":
			f := processorfake.NewSendGrid(s.host)
			for _, g := range strings.Split(c.Options["groups"], ",") {
				_, id, _ := strings.Cut(g, "=")
				if n, err := strconv.Atoi(strings.TrimSpace(id)); err == nil {
					f.AddGroup(n)
				}
			}
			s.SendGrid[c.Name], url, secret = f, f.URL(), f.APIKey
		case "webhook":
			f := processorfake.NewWebhook(s.host)
			switch scheme := c.Options["signature"]; scheme {
			case "", processorfake.SchemeLetheV1:
			case processorfake.SchemeStandardWebhooks: // its secret is whsec_ and base64
				f.SetScheme(scheme, []byte("whsec_"+base64.StdEncoding.EncodeToString(f.Secret[:24])), c.Options["signature_header"])
			default:
				f.SetScheme(scheme, f.Secret, c.Options["signature_header"])
			}
			s.Webhook[c.Name], url, secret = f, f.URL(), string(f.Secret)
		default:
			s.configs = append(s.configs, c)
			continue
		}
		c.BaseURL = url
		if c.CredentialEnv != "" {
			s.secrets[c.CredentialEnv] = secret
		}
		s.configs = append(s.configs, c)
	}
	return s, nil
}

func cloneOptions(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Processors are the processors StartSandboxes was given, each sandboxed
// one's base_url pointing at its sandbox.
func (s *Sandboxes) Processors() []processors.Config { return s.configs }

// BaseURLs are the sandboxes' base URLs by processor name.
func (s *Sandboxes) BaseURLs() map[string]string {
	out := map[string]string{}
	for _, c := range s.configs {
		if s.Sandboxed(c.Name) {
			out[c.Name] = c.BaseURL
		}
	}
	return out
}

// Sandboxed tells whether the processor called name runs against a sandbox.
func (s *Sandboxes) Sandboxed(name string) bool {
	return s.Stripe[name] != nil || s.Mailchimp[name] != nil || s.SendGrid[name] != nil || s.Webhook[name] != nil
}

// LookupEnv reads a credential: the sandbox's for the variables the
// sandboxed processors name, else the process environment's.
func (s *Sandboxes) LookupEnv(name string) (string, bool) {
	if v, ok := s.secrets[name]; ok {
		return v, true
	}
	return os.LookupEnv(name)
}

// Person is someone the sandboxes hold, as the application knows them.
type Person struct {
	UserID, Email, Name string
	// StripeCustomerID is the person's customer id at Stripe, when the
	// application keeps it; empty gives the customer a new id.
	StripeCustomerID string
}

// Seed gives every sandbox the people: a Stripe customer each, a subscribed
// member of each Mailchimp list, a subject of each webhook. SendGrid
// sandboxes hold no contacts: SendGrid deletes contacts asynchronously and
// Lethe asks again an hour later, which would hold up every erasure of the
// dev stack for that long.
func (s *Sandboxes) Seed(people []Person) {
	for _, p := range people {
		first, _, _ := strings.Cut(p.Name, " ")
		for _, f := range s.Stripe {
			f.AddCustomer(processorfake.StripeCustomer{ID: p.StripeCustomerID, Email: p.Email, Name: p.Name})
		}
		for name, f := range s.Mailchimp {
			for _, list := range s.lists(name) {
				f.AddMember(list, processorfake.MailchimpMember{Email: p.Email, Status: "subscribed", MergeFields: map[string]string{"FNAME": first}})
			}
		}
		for _, f := range s.Webhook {
			f.AddSubject(processorfake.WebhookSubject{UserID: p.UserID, Email: p.Email})
		}
	}
}

func (s *Sandboxes) lists(processor string) []string {
	var out []string
	for _, c := range s.configs {
		if c.Name != processor {
			continue
		}
		for _, l := range strings.Split(c.Options["list_id"], ",") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
	}
	return out
}

// Close stops every sandbox.
func (s *Sandboxes) Close() { s.host.cleanup() }

// host is what the fakes take from a test (testing.TB): a place to register
// their shutdown, and a way to fail. The fakes call only Cleanup, Helper
// and Fatalf; the embedded nil TB makes any other call panic, which
// StartSandboxes turns into an error.
type host struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
}

func (h *host) Cleanup(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cleanups = append(h.cleanups, f)
}

func (h *host) Helper() {}

func (h *host) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

func (h *host) Fatal(args ...any) { panic(fmt.Sprint(args...)) }

func (h *host) Errorf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

func (h *host) Logf(string, ...any) {}

func (h *host) Name() string { return "lethe-dev-sandbox" }

func (h *host) cleanup() {
	h.mu.Lock()
	fs := h.cleanups
	h.cleanups = nil
	h.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}
