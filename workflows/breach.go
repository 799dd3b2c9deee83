package workflows

import (
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe/activities"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/workflows/contract"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// notices finds the people a notice concerns and mails them (a nil
// pointer: see activities.go).
var notices *activities.Notices

// batchesPerRange bounds each sending child's history: 100 batches of 1000.
const batchesPerRange = 100

// BreachNotification keeps "we will alert our customers via email no later
// than 48 hours of becoming aware of the event, and report to the data
// protection authority": it finds the affected people, writes the authority
// report, mails each person once (1000 per SendGrid call, in child workflows
// of 100 calls so every history stays short), tells the privacy team at the
// configured points while notices remain, publishes a public notice when
// individual notice is impossible, and takes people found later until closed.
func BreachNotification(ctx workflow.Context, in contract.Incident) (contract.IncidentView, error) {
	v := contract.IncidentView{ID: in.ID, Status: contract.IncidentNotifying, AwareAt: in.AwareAt,
		NotifyBy: in.AwareAt.Add(in.NotifyWithin), ReportBy: in.AwareAt.Add(in.ReportWithin)}
	var pending []contract.AffectedSource
	closed := false
	if err := workflow.SetQueryHandler(ctx, contract.QueryProgress, func() (contract.IncidentView, error) { return v, nil }); err != nil {
		return v, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateAddPeople,
		func(ctx workflow.Context, src contract.AffectedSource) (contract.IncidentView, error) {
			pending = append(pending, src)
			return v, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, src contract.AffectedSource) error {
			if v.Status == contract.IncidentClosed || v.Status == contract.IncidentRecorded || closed {
				return temporal.NewApplicationError("the incident is "+v.Status, contract.RefusedState)
			}
			if (src.Selector == "") == (src.ObjectKey == "") {
				return temporal.NewApplicationError("give a selector or an object key", contract.RefusedInput)
			}
			return nil
		}}); err != nil {
		return v, err
	}
	if err := workflow.SetUpdateHandler(ctx, contract.UpdateCloseIncident, func(ctx workflow.Context) (contract.IncidentView, error) {
		closed = true
		return v, nil
	}); err != nil {
		return v, err
	}
	ctx = withActivityDefaults(ctx)
	audit := func(action string, detail map[string]string) error {
		return record(ctx, contract.AuditInput{Actor: in.DeclaredBy, Action: action, Detail: detail,
			Key: onceKey("incident:"+in.ID, action, len(v.Reports))})
	}
	report := func() error {
		var key string
		if err := workflow.ExecuteActivity(ctx, notices.WriteAuthorityReport, contract.ReportInput{Incident: in, Phase: len(v.Reports) + 1, Counts: v.Counts}).Get(ctx, &key); err != nil {
			return fmt.Errorf("authority report: %w", err)
		}
		v.Reports = append(v.Reports, key)
		return nil
	}
	if err := audit("incident.declared", map[string]string{"notification_required": fmt.Sprint(in.NotificationRequired)}); err != nil {
		return v, err
	}
	if !in.NotificationRequired {
		v.Status = contract.IncidentRecorded
		if err := report(); err != nil {
			return v, err
		}
		return v, audit("incident.recorded_without_notification", map[string]string{"reason": in.NoNotificationReason})
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, contract.StatusKey.ValueSet(contract.IncidentNotifying), contract.DueAtKey.ValueSet(v.NotifyBy))

	var msg contract.NoticeMessage
	if err := workflow.ExecuteActivity(ctx, notices.RenderBreachNotice, in).Get(ctx, &msg); err != nil {
		return v, fmt.Errorf("render notice: %w", err)
	}
	refresh := func() error {
		if err := workflow.ExecuteActivity(ctx, notices.NoticeCounts, in.ID).Get(ctx, &v.Counts); err != nil {
			return err
		}
		// Progress an operator can search and sort on in the UI.
		return workflow.UpsertTypedSearchAttributes(ctx, contract.NoticesFoundKey.ValueSet(int64(v.Counts.Found)), contract.NoticesSentKey.ValueSet(int64(v.Counts.Sent)))
	}
	// The privacy team hears of it while notices remain at the configured points.
	workflow.Go(ctx, func(ctx workflow.Context) {
		ctx = withActivityDefaults(ctx)
		for _, frac := range in.EscalateAt {
			at := in.AwareAt.Add(time.Duration(frac * float64(in.NotifyWithin)))
			if wait := at.Sub(workflow.Now(ctx)); wait > 0 {
				if workflow.Sleep(ctx, wait) != nil {
					return
				}
			}
			if !v.NotifiedAt.IsZero() {
				return
			}
			var counts contract.NoticeCounts
			if err := workflow.ExecuteActivity(ctx, notices.NoticeCounts, in.ID).Get(ctx, &counts); err != nil || counts.Pending == 0 && counts.Found > 0 {
				continue
			}
			v.Escalations = append(v.Escalations, workflow.Now(ctx))
			if err := tell(ctx, contract.SendMailInput{RequestID: in.ID, Template: contract.MailIncidentEscalation, ToPrivacyTeam: true,
				Key: onceKey(in.ID, "escalation", len(v.Escalations)), Data: contract.MailData{RequestType: "breach notification", Jurisdiction: domain.GDPR, DueDate: v.NotifyBy, Lines: []string{
					fmt.Sprintf("%d of %d notices not sent yet", counts.Pending, counts.Found)}}}); err != nil {
				return
			}
		}
	})

	sources := []contract.AffectedSource{in.Affected}
	batch := 1
	for {
		for _, src := range sources {
			if err := workflow.ExecuteActivity(ctx, notices.CollectAffected, contract.CollectInput{Campaign: in.ID, Source: src}).Get(ctx, nil); err != nil {
				return v, fmt.Errorf("find affected people: %w", err)
			}
		}
		sources = nil
		if err := refresh(); err != nil {
			return v, err
		}
		if len(v.Reports) == 0 { // phase 1: what is known, long before 72 hours
			if err := report(); err != nil {
				return v, err
			}
		}
		for v.Counts.Pending > 0 {
			child := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: fmt.Sprintf("%s-notices-%d", in.ID, batch)})
			var done int
			if err := workflow.ExecuteChildWorkflow(child, contract.WorkflowSendNotices, contract.SendNoticesInput{Campaign: in.ID, Message: msg, Batches: batchesPerRange, First: batch}).Get(ctx, &done); err != nil {
				return v, fmt.Errorf("send notices: %w", err)
			}
			batch += done
			if err := refresh(); err != nil {
				return v, err
			}
			_ = workflow.UpsertTypedSearchAttributes(ctx, contract.StatusKey.ValueSet(contract.IncidentNotifying))
		}
		if v.NotifiedAt.IsZero() {
			v.NotifiedAt = workflow.Now(ctx)
		}
		v.Status = contract.IncidentNotified
		_ = workflow.UpsertTypedSearchAttributes(ctx, contract.StatusKey.ValueSet(contract.IncidentNotified))
		if (in.PublicNotice || v.Counts.NoEmail > 0) && v.PublicURL == "" {
			if err := workflow.ExecuteActivity(ctx, notices.WritePublicNotice, contract.ReportInput{Incident: in, Counts: v.Counts}).Get(ctx, &v.PublicURL); err != nil {
				return v, fmt.Errorf("public notice: %w", err)
			}
		}
		if err := report(); err != nil { // a later phase, with the counts
			return v, err
		}
		// People found later are told too, until the incident is closed.
		timer, stop := workflow.WithCancel(ctx)
		keepOpen := workflow.NewTimer(timer, in.KeepOpen)
		expired := false
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(keepOpen, func(workflow.Future) { expired = true })
		sel.AddFuture(awaitFuture(timer, func() bool { return len(pending) > 0 || closed }), func(workflow.Future) {})
		sel.Select(ctx)
		stop()
		if len(pending) == 0 || expired || closed {
			v.Status = contract.IncidentClosed
			return v, audit("incident.closed", map[string]string{"sent": fmt.Sprint(v.Counts.Sent), "found": fmt.Sprint(v.Counts.Found)})
		}
		sources, pending = pending, nil
		v.Status = contract.IncidentNotifying
	}
}

// SendNotices sends up to Batches batches of a campaign's pending notices
// and reports how many batch numbers it used. It runs as a child so that a
// million notices never make one long history.
func SendNotices(ctx workflow.Context, in contract.SendNoticesInput) (int, error) {
	ctx = withActivityDefaults(ctx)
	for i := 0; i < in.Batches; i++ {
		var res contract.SendBatchResult
		if err := workflow.ExecuteActivity(ctx, notices.SendNoticeBatch, contract.SendBatchInput{Campaign: in.Campaign, Message: in.Message, Batch: in.First + i}).Get(ctx, &res); err != nil {
			return i, err
		}
		if res.Done || res.Claimed == 0 {
			return i + 1, nil
		}
	}
	return in.Batches, nil
}

// PolicyChangeNotice mails every person of the audience once about a policy
// change and its effective date, resumably, with delivery counts: the same
// engine as breach notices.
func PolicyChangeNotice(ctx workflow.Context, in contract.PolicyNotice) (contract.PolicyNoticeView, error) {
	if in.EffectiveAt.IsZero() {
		in.EffectiveAt = workflow.Now(ctx).Add(in.NoticePeriod)
	}
	v := contract.PolicyNoticeView{ID: in.ID, Status: contract.IncidentNotifying, EffectiveAt: in.EffectiveAt}
	if err := workflow.SetQueryHandler(ctx, contract.QueryProgress, func() (contract.PolicyNoticeView, error) { return v, nil }); err != nil {
		return v, err
	}
	ctx = withActivityDefaults(ctx)
	var msg contract.NoticeMessage
	if err := workflow.ExecuteActivity(ctx, notices.RenderPolicyNotice, in).Get(ctx, &msg); err != nil {
		return v, fmt.Errorf("render notice: %w", err)
	}
	if err := workflow.ExecuteActivity(ctx, notices.CollectAffected, contract.CollectInput{Campaign: in.ID, Source: in.Audience}).Get(ctx, nil); err != nil {
		return v, fmt.Errorf("find the audience: %w", err)
	}
	batch := 1
	for {
		if err := workflow.ExecuteActivity(ctx, notices.NoticeCounts, in.ID).Get(ctx, &v.Counts); err != nil {
			return v, err
		}
		if v.Counts.Pending == 0 {
			break
		}
		child := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: fmt.Sprintf("%s-notices-%d", in.ID, batch)})
		var done int
		if err := workflow.ExecuteChildWorkflow(child, contract.WorkflowSendNotices, contract.SendNoticesInput{Campaign: in.ID, Message: msg, Batches: batchesPerRange, First: batch}).Get(ctx, &done); err != nil {
			return v, fmt.Errorf("send notices: %w", err)
		}
		batch += done
	}
	v.Status = contract.IncidentNotified
	return v, record(ctx, contract.AuditInput{Actor: in.DeclaredBy, Action: "policy_notice.sent",
		Detail: map[string]string{"sent": fmt.Sprint(v.Counts.Sent), "found": fmt.Sprint(v.Counts.Found), "effective_at": in.EffectiveAt.Format(time.RFC3339)},
		Key:    onceKey("policy-notice", in.ID)})
}
