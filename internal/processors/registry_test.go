package processors_test

import (
	"context"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
)

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestRegistryFromYAMLAgainstFakes(t *testing.T) {
	ctx := context.Background()
	st := processorfake.NewStripe(t)
	st.AddCustomer(processorfake.StripeCustomer{Email: email})
	mc := processorfake.NewMailchimp(t)
	mc.AddMember("news", processorfake.MailchimpMember{Email: email})
	sg := processorfake.NewSendGrid(t)
	sg.AddContact(processorfake.SendGridContact{Email: email})
	wh := processorfake.NewWebhook(t)
	wh.AddSubject(processorfake.WebhookSubject{Email: email})
	od := processorfake.NewOpenDSR(t, processorfake.OpenDSROptions{})
	hs := processorfake.NewHelpScout(t)
	hs.AddCustomer(processorfake.HelpScoutCustomer{Emails: []string{email}})

	doc := `
processors:
  - name: stripe
    kind: stripe
    base_url: ` + st.URL() + `
    credential_env: LETHE_STRIPE_KEY
    options: {export: "charges,invoices", page_size: 50}
  - name: newsletter
    kind: mailchimp
    base_url: ` + mc.URL() + `
    credential_env: LETHE_MAILCHIMP_KEY
    options: {list_id: news, purposes: "marketing, product_news"}
  - name: sendgrid
    kind: sendgrid
    base_url: ` + sg.URL() + `
    credential_env: LETHE_SENDGRID_KEY
    options: {groups: "marketing=42"}
  - name: crm
    kind: webhook
    base_url: ` + wh.URL() + `
    credential_env: LETHE_CRM_SECRET
  - name: analytics
    kind: opendsr
    base_url: ` + od.URL() + `
    credential_env: LETHE_ANALYTICS_KEY
    options: {regulation: gdpr, legacy: false}
  - name: support
    kind: helpscout
    base_url: ` + hs.URL() + `
    credential_env: LETHE_HELPSCOUT_APP
    options: {conversations: "true"}
  - name: paypal
    kind: manual
    options: {preset: paypal}
`
	var dm struct {
		Processors []processors.Config `yaml:"processors"`
	}
	if err := yaml.Unmarshal([]byte(doc), &dm); err != nil {
		t.Fatal(err)
	}
	reg, err := processors.NewRegistry(dm.Processors, processors.BuildOptions{LookupEnv: envMap(map[string]string{
		"LETHE_STRIPE_KEY":    st.APIKey,
		"LETHE_MAILCHIMP_KEY": mc.APIKey,
		"LETHE_SENDGRID_KEY":  sg.APIKey,
		"LETHE_CRM_SECRET":    string(wh.Secret),
		"LETHE_ANALYTICS_KEY": od.Username() + ":" + od.Password(),
		"LETHE_HELPSCOUT_APP": hs.Credential(),
	})})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(reg.Names(), ","); got != "stripe,newsletter,sendgrid,crm,analytics,support,paypal" {
		t.Fatalf("names %s", got)
	}
	if _, ok := reg.ConsentSetter("stripe"); ok {
		t.Fatal("stripe claims consent support")
	}
	if _, ok := reg.Rectifier("analytics"); ok {
		t.Fatal("opendsr claims rectification")
	}
	if _, ok := reg.Get("nope"); ok {
		t.Fatal("unknown name found")
	}
	want := map[string]processors.Status{
		"stripe": processors.StatusDone, "newsletter": processors.StatusDone, "sendgrid": processors.StatusPending,
		"crm": processors.StatusDone, "analytics": processors.StatusPending, "support": processors.StatusPending,
		"paypal": processors.StatusNeedsOperator,
	}
	for _, name := range reg.Names() {
		e, ok := reg.Eraser(name)
		if !ok {
			t.Fatalf("%s cannot erase", name)
		}
		out, err := e.Erase(ctx, subject("req-reg"))
		mustOutcome(t, out, err, want[name])
		if out.Processor != name {
			t.Fatalf("outcome names %q, want %q", out.Processor, name)
		}
	}
}

func TestRegistryReportsEveryConfigErrorWithoutSecrets(t *testing.T) {
	cfgs := []processors.Config{
		{Name: "a", Kind: "strpe", CredentialEnv: "K"},
		{Name: "b", Kind: "mailchimp", CredentialEnv: "K"},
		{Name: "c", Kind: "mailchimp", CredentialEnv: "K", Options: map[string]string{"list_idd": "x"}},
		{Name: "d", Kind: "stripe", CredentialEnv: "MISSING"},
		{Name: "e", Kind: "stripe"},
		{Name: "f", Kind: "webhook", CredentialEnv: "K"},
		{Name: "g", Kind: "stripe", CredentialEnv: "K", BaseURL: "ftp://x"},
		{Name: "h", Kind: "manual", CredentialEnv: "K"},
		{Name: "h", Kind: "manual"},
		{Name: "i", Kind: "manual"},
		{Name: "i", Kind: "manual"},
		{Name: "Bad Name", Kind: "manual"},
		{Name: "j", Kind: "sendgrid", CredentialEnv: "K", Options: map[string]string{"groups": "marketing"}},
		{Name: "k", Kind: "opendsr", BaseURL: "https://opendsr.example/v2", CredentialEnv: "K"},
		{Name: "l", Kind: "webhook", BaseURL: "https://hooks.example/x", CredentialEnv: "SHORT"},
		{Name: "m", Kind: "stripe", CredentialEnv: "lower-case"},
	}
	_, err := processors.NewRegistry(cfgs, processors.BuildOptions{LookupEnv: envMap(map[string]string{
		"K": "super-secret-value-123", "SHORT": "tiny"})})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		`processors[0]: processor "a": kind "strpe" is not one of`,
		`processors[1]: processor "b": kind mailchimp needs option list_id`,
		`option "list_idd" is not known for kind mailchimp (known: list_id, purposes, resubscribe_status)`,
		`credential_env MISSING is not set`,
		`kind stripe needs credential_env`,
		`kind webhook needs base_url`,
		`is not an absolute http(s) URL`,
		`kind manual takes no credential_env`,
		`processors[10]: name "i" is used twice`,
		`name must be 1-64 characters`,
		`option groups: "marketing" is not purpose=group_id`,
		`auth basic needs the credential as user:secret`,
		`secret must be at least 16 bytes`,
		`credential_env "lower-case" is not an environment variable name`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "super-secret") || strings.Contains(msg, "tiny") {
		t.Fatalf("error shows a credential:\n%s", msg)
	}
}

func TestManualPresetsNeedAnOperator(t *testing.T) {
	ctx := context.Background()
	for _, preset := range processors.ManualPresets() {
		steps, ok := processors.ManualPreset(preset)
		if !ok {
			t.Fatalf("no preset %s", preset)
		}
		m, err := processors.NewManual(processors.ManualConfig{Name: preset, Steps: steps})
		if err != nil {
			t.Fatal(err)
		}
		out, err := m.Erase(ctx, subject("r"))
		mustOutcome(t, out, err, processors.StatusNeedsOperator)
		if len(out.Steps) < 2 || out.HTTPStatus != 0 {
			t.Fatalf("%s erase outcome %+v", preset, out)
		}
		out, err = m.Update(ctx, subject("r"), map[string]string{"email": "new@example.net", "name": "Ann Example"})
		mustOutcome(t, out, err, processors.StatusNeedsOperator)
		if strings.Contains(out.Note, "new@example.net") || !strings.Contains(out.Note, "email") {
			t.Fatalf("update note %q", out.Note)
		}
		var col collector
		out, err = m.Export(ctx, subject("r"), &col)
		mustOutcome(t, out, err, processors.StatusNeedsOperator)
		out, err = m.SetSubscribed(ctx, subject("r"), "marketing", false)
		mustOutcome(t, out, err, processors.StatusNeedsOperator)
	}
	if got := strings.Join(processors.ManualPresets(), ","); got != "paypal,paddle,gravatar,replicate" {
		t.Fatalf("presets %s", got)
	}
	m, _ := processors.NewManual(processors.ManualConfig{Name: "some-saas"})
	out, err := m.Erase(ctx, subject("r"))
	mustOutcome(t, out, err, processors.StatusNeedsOperator)
	if len(out.Steps) != 1 || !strings.Contains(out.Steps[0], "some-saas") {
		t.Fatalf("generic steps %v", out.Steps)
	}
	// The presets come through the registry, and an unknown one is named.
	reg, err := processors.NewRegistry([]processors.Config{
		{Name: "gravatar", Kind: "manual", Options: map[string]string{"preset": "gravatar"}},
		{Name: "replicate", Kind: "manual", Options: map[string]string{"preset": "replicate"}},
	}, processors.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, word := range map[string]string{"gravatar": "Gravatar", "replicate": "Replicate"} {
		e, _ := reg.Eraser(name)
		out, err := e.Erase(ctx, subject("r"))
		mustOutcome(t, out, err, processors.StatusNeedsOperator)
		if len(out.Steps) < 3 || !strings.Contains(out.Steps[0], word) {
			t.Fatalf("%s steps %v", name, out.Steps)
		}
	}
	_, err = processors.NewRegistry([]processors.Config{{Name: "x", Kind: "manual", Options: map[string]string{"preset": "zendesk"}}},
		processors.BuildOptions{})
	if err == nil || !strings.Contains(err.Error(), `processor "x": option preset "zendesk" is not one of paypal, paddle, gravatar, replicate`) {
		t.Fatalf("error %v", err)
	}
}
