package processors

import (
	"context"
	"fmt"
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
// the reference: PayPal, Paddle). Every call returns StatusNeedsOperator
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

// ManualPreset returns the documented manual steps for "paypal" or
// "paddle".
func ManualPreset(preset string) (map[Action][]string, bool) {
	switch preset {
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
	keys := sortedKeys(fields)
	out.Note = fmt.Sprintf("fields to correct: %v (values in the request record)", keys)
	return out, nil
}

// SetSubscribed implements ConsentSetter.
func (m *Manual) SetSubscribed(_ context.Context, _ Subject, purpose string, subscribed bool) (Outcome, error) {
	out := m.outcome(ActionConsent)
	out.Note = fmt.Sprintf("purpose %s: subscribed=%t", purpose, subscribed)
	return out, nil
}
