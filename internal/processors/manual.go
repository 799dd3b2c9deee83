package processors

import (
	"context"
	"fmt"
	"maps"
	"slices"
)

// ManualConfig configures a connector for a processor without an API.
type ManualConfig struct {
	// Name is required (e.g. "paypal").
	Name string
	// Steps are the operator's instructions per action. Actions without
	// steps get a generic instruction. They must not contain personal data:
	// they refer to "the subject" and the request record.
	Steps map[Action][]string
}

// Manual stands for a processor that has no API for privacy requests (per
// the reference: PayPal, Paddle; also Gravatar and Replicate). Every call returns StatusNeedsOperator
// with the manual steps; nothing is sent anywhere. It is not an error:
// the caller turns the outcome into an operator task with a deadline.
type Manual struct {
	name  string
	steps map[Action][]string
}

// NewManual returns a Manual connector.
func NewManual(cfg ManualConfig) (*Manual, error) {
	if cfg.Name == "" {
		return nil, fmt.Errorf("manual connector needs a name")
	}
	steps := map[Action][]string{}
	for a, s := range cfg.Steps {
		steps[a] = slices.Clone(s)
	}
	return &Manual{name: cfg.Name, steps: steps}, nil
}

// ManualPresets lists the processors ManualPreset has steps for.
func ManualPresets() []string { return []string{"paypal", "paddle", "gravatar", "replicate"} }

// ManualPreset returns the documented manual steps for "paypal", "paddle",
// "gravatar" or "replicate": processors with no API for a person's data.
func ManualPreset(preset string) (map[Action][]string, bool) {
	switch preset {
	case "gravatar":
		return map[Action][]string{
			ActionErase: {
				"Gravatar (Automattic) offers no API to erase data, and holds none the company gave it: the company only sends a hash of the subject's email address when it looks up an avatar.",
				"Check that the subject's account no longer shows an avatar (the erasure of the account stops the lookups).",
				"If the subject has their own Gravatar profile, it is theirs, under Automattic's control: tell them they can delete it in their Gravatar account.",
				"Record this (no company data at Gravatar, lookups stopped, subject told) as the evidence for this task.",
			},
			ActionExport: {
				"The company holds nothing at Gravatar to export: it only sends a hash of the email address to look up an avatar.",
				"Tell the subject that their own Gravatar profile, if any, is managed (and exported) in their Gravatar account; record this.",
			},
			ActionUpdate: {
				"A Gravatar profile belongs to the subject; nothing to correct on the company's side. Tell the subject if the request concerns their avatar, and record it.",
			},
			ActionConsent: {
				"Gravatar holds no consent for the company. If the subject objects to avatar lookups, turn them off for the account and record it.",
			},
		}, true
	case "replicate":
		return map[Action][]string{
			ActionErase: {
				"Replicate offers no API to erase a person's data; it runs the company's AI predictions (prompts, images, outputs).",
				"Predictions made through Replicate's API lose their inputs, outputs, files and logs after an hour on their own; predictions made on the Replicate website are kept until deleted.",
				"Find any prediction of the subject's made on the website (from the request record, never from this task text) and delete it in the Replicate dashboard.",
				"Record the deletions, or that only API predictions (removed after an hour) were made, as the evidence for this task.",
			},
			ActionExport: {
				"API predictions are gone from Replicate after an hour; the company's own copies of prompts and images are in the bundle from its database and storage.",
				"Export any prediction of the subject's kept on the Replicate website from the dashboard and add it to the bundle, or record that there is none.",
			},
			ActionUpdate: {
				"Replicate keeps no profile of the subject to correct; record that nothing was to change there.",
			},
			ActionConsent: {
				"To honour an opt-out of AI processing, stop sending the subject's prompts and images to Replicate in the application, and record it.",
			},
		}, true
	case "paypal":
		return map[Action][]string{
			ActionErase: {
				"PayPal offers no API to erase a payer's data; PayPal is controller of its account holders' data.",
				"Erase the merchant-side copies of the subject's PayPal data (transaction exports, notes).",
				"Tell the subject to file the erasure with PayPal themselves (Privacy Hub / Contact us); PayPal verifies identity and keeps financial records as the law requires.",
				"Record the referral (date, channel) as the evidence for this task.",
			},
			ActionExport: {
				"PayPal offers no API to export a payer's data.",
				"Export the merchant-side transactions for the subject from the PayPal business dashboard and add them to the bundle.",
				"Tell the subject that PayPal account holders download their own data under Settings > Data & Privacy.",
			},
			ActionUpdate: {
				"Account holders correct their data in their PayPal account; tell the subject so and record it.",
			},
			ActionConsent: {
				"PayPal holds no marketing consent for the company; nothing to change. Record this.",
			},
		}, true
	case "paddle":
		return map[Action][]string{
			ActionErase: {
				"Paddle (merchant of record) cannot delete customers through its API.",
				"Email sellers@paddle.com asking to delete the buyer's data, giving first name, last name and email from the request record (never from this task text).",
				"Archive the customer in Paddle (PATCH /customers/{id} with status=archived, or in the dashboard).",
				"Record Paddle's confirmation; Paddle keeps some transactional data for 5 years.",
			},
			ActionExport: {
				"Export the customer, addresses and transactions from the Paddle dashboard or API and add them to the bundle.",
			},
			ActionUpdate: {
				"Correct name and email in Paddle (PATCH /customers/{id} or the dashboard) and record it.",
			},
			ActionConsent: {
				"Change the customer's marketing consent in the Paddle dashboard and record it.",
			},
		}, true
	}
	return nil, false
}

// Name implements Connector.
func (m *Manual) Name() string { return m.name }

func (m *Manual) outcome(a Action) Outcome {
	steps := slices.Clone(m.steps[a])
	if len(steps) == 0 {
		steps = []string{fmt.Sprintf("%s has no API: carry out the %s for the subject in its dashboard or by contacting it, then record the evidence.", m.name, a)}
	}
	return Outcome{Processor: m.name, Action: a, Status: StatusNeedsOperator, Steps: steps}
}

// Erase implements Eraser.
func (m *Manual) Erase(context.Context, Subject) (Outcome, error) { return m.outcome(ActionErase), nil }

// Export implements Exporter; it writes nothing.
func (m *Manual) Export(context.Context, Subject, ExportWriter) (Outcome, error) {
	return m.outcome(ActionExport), nil
}

// Update implements Rectifier. The steps name the fields to change, not
// their values.
func (m *Manual) Update(_ context.Context, _ Subject, fields map[string]string) (Outcome, error) {
	out := m.outcome(ActionUpdate)
	keys := slices.Sorted(maps.Keys(fields))
	out.Note = fmt.Sprintf("fields to correct: %v (values in the request record)", keys)
	return out, nil
}

// SetSubscribed implements ConsentSetter.
func (m *Manual) SetSubscribed(_ context.Context, _ Subject, purpose string, subscribed bool) (Outcome, error) {
	out := m.outcome(ActionConsent)
	out.Note = fmt.Sprintf("purpose %s: subscribed=%t", purpose, subscribed)
	return out, nil
}
