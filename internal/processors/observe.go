package processors

import (
	"context"
	"time"
)

// Observer hears of every call a connector of an observed Registry makes
// (Registry.Observed): the processor's name, the action (erase, confirm,
// export, update, consent), the outcome and how long it took. The outcome
// is the Outcome's Status, or for a failure error_retryable,
// error_needs_operator or error: never anything about the person.
type Observer interface {
	ProcessorCall(processor, action, outcome string, took time.Duration)
}

// Observed is the registry with every connector it hands out reporting its
// calls to o; r itself is unchanged. A nil o gives r.
func (r *Registry) Observed(o Observer) *Registry {
	if o == nil {
		return r
	}
	return &Registry{names: r.names, byName: r.byName, observer: o}
}

// watch reports one call to the registry's observer.
type watch struct {
	processor string
	o         Observer
}

func (w watch) call(action Action, began time.Time, out Outcome, err error) {
	w.o.ProcessorCall(w.processor, string(action), callOutcome(out, err), time.Since(began))
}

// callOutcome is a call's outcome as an Observer hears it.
func callOutcome(out Outcome, err error) string {
	if err != nil {
		if e, ok := AsError(err); ok {
			switch e.Kind {
			case KindRetryable:
				return "error_retryable"
			case KindNeedsOperator:
				return "error_needs_operator"
			}
		}
		return "error"
	}
	switch out.Status {
	case StatusDone, StatusAlreadyGone, StatusNotFound, StatusPending, StatusNeedsOperator, StatusNotApplicable, StatusStillPresent:
		return string(out.Status)
	}
	return "other"
}

type observedEraser struct {
	Eraser
	w watch
}

func (o observedEraser) Erase(ctx context.Context, s Subject) (Outcome, error) {
	began := time.Now()
	out, err := o.Eraser.Erase(ctx, s)
	o.w.call(ActionErase, began, out, err)
	return out, err
}

// observedBatchEraser reports each call of a batch erasure as an erase:
// pending_async while the job runs, done once it is.
type observedBatchEraser struct {
	BatchEraser
	w watch
}

func (o observedBatchEraser) StartErasures(ctx context.Context, subjects []Subject) (BatchJob, error) {
	began := time.Now()
	job, err := o.BatchEraser.StartErasures(ctx, subjects)
	o.w.call(ActionErase, began, Outcome{Status: StatusPending}, err)
	return job, err
}

func (o observedBatchEraser) ErasuresProgress(ctx context.Context, job BatchJob, subjects []Subject) (BatchProgress, error) {
	began := time.Now()
	p, err := o.BatchEraser.ErasuresProgress(ctx, job, subjects)
	status := StatusPending
	if p.Done {
		status = StatusDone
	}
	o.w.call(ActionErase, began, Outcome{Status: status}, err)
	return p, err
}

type observedExporter struct {
	Exporter
	w watch
}

func (o observedExporter) Export(ctx context.Context, s Subject, ew ExportWriter) (Outcome, error) {
	began := time.Now()
	out, err := o.Exporter.Export(ctx, s, ew)
	o.w.call(ActionExport, began, out, err)
	return out, err
}

type observedRectifier struct {
	Rectifier
	w watch
}

func (o observedRectifier) Update(ctx context.Context, s Subject, fields map[string]string) (Outcome, error) {
	began := time.Now()
	out, err := o.Rectifier.Update(ctx, s, fields)
	o.w.call(ActionUpdate, began, out, err)
	return out, err
}

type observedConsentSetter struct {
	ConsentSetter
	w watch
}

func (o observedConsentSetter) SetSubscribed(ctx context.Context, s Subject, purpose string, subscribed bool) (Outcome, error) {
	began := time.Now()
	out, err := o.ConsentSetter.SetSubscribed(ctx, s, purpose, subscribed)
	o.w.call(ActionConsent, began, out, err)
	return out, err
}

type observedConfirmer struct {
	Confirmer
	w watch
}

func (o observedConfirmer) Confirm(ctx context.Context, prev Outcome) (Outcome, error) {
	began := time.Now()
	out, err := o.Confirmer.Confirm(ctx, prev)
	o.w.call(ActionConfirm, began, out, err)
	return out, err
}
