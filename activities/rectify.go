package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/lethe-privacy/lethe/internal/appdb"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// Changes applies rectifications and consent changes (P12, P13) in the
// application database and at the processors that hold the data.
type Changes struct {
	Lifecycle  *Lifecycle
	Processors *processors.Registry // nil when the data map names none
}

// open reads the request's sealed identity and the person's user id.
func (c *Changes) open(ctx context.Context, in contract.ChangeInput) (person.Identity, string, error) {
	id, err := c.Lifecycle.openIdentity(ctx, in.SubjectRef, in.Identity)
	if err != nil {
		return id, "", err
	}
	userID, err := resolveUserID(ctx, c.Lifecycle.App, c.Lifecycle.Map, id)
	if err != nil {
		return id, "", err
	}
	if userID == "" {
		return id, "", temporal.NewNonRetryableApplicationError("the application does not know this person", "UnknownSubject", nil)
	}
	return id, userID, nil
}

// ApplyCorrections writes the corrected values in one transaction and names
// the processors that must follow. The old values are neither read nor kept.
func (c *Changes) ApplyCorrections(ctx context.Context, in contract.ChangeInput) (contract.ChangeResult, error) {
	id, userID, err := c.open(ctx, in)
	if err != nil {
		return contract.ChangeResult{}, err
	}
	changes, err := appdb.Rectify(ctx, c.Lifecycle.App, c.Lifecycle.Map, userID, id.Corrections)
	var refused *appdb.CorrectionRefused
	if errors.As(err, &refused) {
		return contract.ChangeResult{}, temporal.NewNonRetryableApplicationError("corrections refused", "Refused", nil)
	}
	if err != nil {
		return contract.ChangeResult{}, classifyDB(err)
	}
	var res contract.ChangeResult
	for _, ch := range changes {
		res.Lines = append(res.Lines, fmt.Sprintf("Corrected %s in %s", ch.Field, ch.Table))
	}
	for name := range appdb.CorrectedProcessorFields(c.Lifecycle.Map, id.Corrections) {
		res.Processors = append(res.Processors, name)
	}
	slices.Sort(res.Processors)
	return res, nil
}

// UpdateProcessor sends the corrections to one processor.
func (c *Changes) UpdateProcessor(ctx context.Context, in contract.ChangeInput) (string, error) {
	id, userID, err := c.open(ctx, in)
	if err != nil {
		return "", err
	}
	fields := appdb.CorrectedProcessorFields(c.Lifecycle.Map, id.Corrections)[in.Processor]
	var conn processors.Rectifier
	ok := false
	if c.Processors != nil {
		conn, ok = c.Processors.Rectifier(in.Processor)
	}
	if !ok {
		return "", temporal.NewNonRetryableApplicationError("processor "+in.Processor+" cannot update", contract.RefusedNeedsOperator, nil)
	}
	out, err := conn.Update(ctx, processors.Subject{RequestID: in.RequestID, Email: id.Email, UserID: userID}, fields)
	if err != nil {
		return "", classifyProcessor(err)
	}
	return fmt.Sprintf("%s: %d field(s) corrected (%s)", in.Processor, len(fields), out.Status), nil
}

// RecordConsent records the consent change, with its time and source, in the
// application database, and names the processors that must follow.
func (c *Changes) RecordConsent(ctx context.Context, in contract.ChangeInput) (contract.ChangeResult, error) {
	id, userID, err := c.open(ctx, in)
	if err != nil {
		return contract.ChangeResult{}, err
	}
	if id.Consent == nil {
		return contract.ChangeResult{}, temporal.NewNonRetryableApplicationError("no consent change in the request", "BadInput", nil)
	}
	purpose, ok := c.Lifecycle.Map.Purpose(id.Consent.Purpose)
	if !ok {
		return contract.ChangeResult{}, temporal.NewNonRetryableApplicationError("unknown purpose", "BadInput", nil)
	}
	if err := appdb.RecordConsent(ctx, c.Lifecycle.App, c.Lifecycle.Map, userID, purpose.Name, id.Consent.Granted, id.Consent.Source, time.Now().UTC()); err != nil {
		return contract.ChangeResult{}, classifyDB(err)
	}
	verb := "withdrawn"
	if id.Consent.Granted {
		verb = "given"
	}
	return contract.ChangeResult{Lines: []string{fmt.Sprintf("Consent to %s %s (recorded)", purpose.Name, verb)}, Processors: purpose.Processors}, nil
}

// SetProcessorConsent unsubscribes or resubscribes the person at one processor.
func (c *Changes) SetProcessorConsent(ctx context.Context, in contract.ChangeInput) (string, error) {
	id, userID, err := c.open(ctx, in)
	if err != nil {
		return "", err
	}
	var conn processors.ConsentSetter
	ok := false
	if c.Processors != nil {
		conn, ok = c.Processors.ConsentSetter(in.Processor)
	}
	if !ok || id.Consent == nil {
		return "", temporal.NewNonRetryableApplicationError("processor "+in.Processor+" cannot change consent", contract.RefusedNeedsOperator, nil)
	}
	out, err := conn.SetSubscribed(ctx, processors.Subject{RequestID: in.RequestID, Email: id.Email, UserID: userID}, id.Consent.Purpose, id.Consent.Granted)
	if err != nil {
		return "", classifyProcessor(err)
	}
	return fmt.Sprintf("%s: consent to %s applied (%s)", in.Processor, id.Consent.Purpose, out.Status), nil
}

// classifyProcessor turns a connector's error into Temporal's terms: retry
// (after the processor's Retry-After) or hand to the privacy team.
func classifyProcessor(err error) error {
	var pe *processors.Error
	if !errors.As(err, &pe) {
		return err
	}
	if pe.Kind == processors.KindNeedsOperator {
		return temporal.NewNonRetryableApplicationError(pe.Error(), contract.RefusedNeedsOperator, nil)
	}
	if pe.RetryAfter > 0 {
		return temporal.NewApplicationErrorWithOptions(pe.Error(), "ProcessorRetry", temporal.ApplicationErrorOptions{NextRetryDelay: pe.RetryAfter})
	}
	return err
}
