// Package policy turns the configuration into what each request is promised:
// its deadline, extension, verification rules and the limits on repeats.
package policy

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/domain"
)

// Limit caps how many requests of one type a person may make in a period.
type Limit struct {
	Type, Jurisdiction string // Jurisdiction "*" applies to all
	Max                int
	Per                domain.Period
}

// Book holds the policies of every jurisdiction.
type Book struct {
	due, extend   map[string]domain.Period
	companyDue    domain.Period
	expeditedDue  domain.Period
	receipt       map[string]domain.Period
	base          domain.Policy
	approvalTypes []string
	manualTypes   []string
	limits        []Limit
}

// FromConfig reads the policies; every error names its variable.
func FromConfig(c config.Config) (*Book, error) {
	var errs []error
	period := func(name, v string) domain.Period {
		p, err := domain.ParsePeriod(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		return p
	}
	b := &Book{
		due: map[string]domain.Period{
			domain.GDPR: period("LETHE_DUE_GDPR", c.DueGDPR), domain.CCPA: period("LETHE_DUE_CCPA", c.DueCCPA), domain.Company: period("LETHE_DUE_COMPANY", c.DueCompany),
		},
		extend: map[string]domain.Period{
			domain.GDPR: period("LETHE_EXTENSION_GDPR", c.ExtendGDPR), domain.CCPA: period("LETHE_EXTENSION_CCPA", c.ExtendCCPA), domain.Company: period("LETHE_EXTENSION_COMPANY", c.ExtendCompany),
		},
		receipt: map[string]domain.Period{domain.CCPA: period("LETHE_RECEIPT_CCPA", c.ReceiptCCPA)},
		base: domain.Policy{
			CodeTTL: c.CodeTTL, MaxCodeAttempts: c.CodeMaxAttempts, ResendInterval: c.CodeResendInterval, MaxCodes: c.CodeMaxSends,
			VerifyWithin: c.VerifyWithin, VerifyReminderAfter: c.VerifyReminderAfter, OperatorReminders: c.OperatorReminders,
			DeactivationGrace: c.DeactivationGrace, DeactivationReminder: c.DeactivationReminder, LinkValidFor: c.ExportLinkValidFor,
		},
	}
	b.companyDue = b.due[domain.Company]
	b.expeditedDue = period("LETHE_DUE_EXPEDITED", c.DueExpedited)
	for _, t := range c.ApprovalTypes {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if !slices.Contains(domain.RequestTypes(), t) {
			errs = append(errs, fmt.Errorf("LETHE_APPROVAL_TYPES: %q is not a request type", t))
		}
		b.approvalTypes = append(b.approvalTypes, t)
	}
	for _, t := range c.ManualTypes {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if !slices.Contains(domain.RequestTypes(), t) {
			errs = append(errs, fmt.Errorf("LETHE_MANUAL_TYPES: %q is not a request type", t))
		}
		b.manualTypes = append(b.manualTypes, t)
	}
	limits, err := ParseLimits(c.RequestLimits)
	if err != nil {
		errs = append(errs, fmt.Errorf("LETHE_REQUEST_LIMITS: %w", err))
	}
	b.limits = limits
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return b, nil
}

// For is the policy of one request. The due date is the legal one, or the
// company's own promise when that is stricter.
func (b *Book) For(jurisdiction, requestType string) domain.Policy {
	p := b.base
	p.Due = b.due[jurisdiction]
	p.CompanyDue = b.companyDue
	p.MaxExtension = b.extend[jurisdiction]
	p.ConfirmWithin = b.receipt[jurisdiction]
	p.RequireApproval = slices.Contains(b.approvalTypes, requestType)
	p.FulfilByHand = slices.Contains(b.manualTypes, requestType)
	return p
}

// ExpeditedErasure is the policy of an operator's expedited erasure of a
// child's data (P15): its own short deadline, no extension, no approval
// step and never fulfilled by hand.
func (b *Book) ExpeditedErasure() domain.Policy {
	p := b.base
	p.Due, p.CompanyDue = b.expeditedDue, b.expeditedDue
	return p
}

// Limits are the limits that apply to a type under a jurisdiction.
func (b *Book) Limits(requestType, jurisdiction string) []Limit {
	var out []Limit
	for _, l := range b.limits {
		if l.Type == requestType && (l.Jurisdiction == "*" || l.Jurisdiction == jurisdiction) {
			out = append(out, l)
		}
	}
	return out
}

// ParseLimits reads "access@ccpa=2/12mo,erasure@*=1/1mo".
func ParseLimits(s string) ([]Limit, error) {
	var out []Limit
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		what, rule, ok1 := strings.Cut(part, "=")
		typ, jur, ok2 := strings.Cut(what, "@")
		n, per, ok3 := strings.Cut(rule, "/")
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("%q: want type@jurisdiction=N/period, e.g. access@ccpa=2/12mo", part)
		}
		if !slices.Contains(domain.RequestTypes(), typ) {
			return nil, fmt.Errorf("%q: unknown request type %q", part, typ)
		}
		if jur != "*" && !slices.Contains(domain.Jurisdictions(), jur) {
			return nil, fmt.Errorf("%q: unknown jurisdiction %q", part, jur)
		}
		max, err := strconv.Atoi(n)
		if err != nil || max < 1 {
			return nil, fmt.Errorf("%q: want a count of at least 1", part)
		}
		p, err := domain.ParsePeriod(per)
		if err != nil || p.IsZero() {
			return nil, fmt.Errorf("%q: want a period such as 12mo", part)
		}
		out = append(out, Limit{Type: typ, Jurisdiction: jur, Max: max, Per: p})
	}
	return out, nil
}
