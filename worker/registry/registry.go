// Package registry registers every Lethe workflow and activity on a worker.
// `go run ./worker` and the dev stack (`starter dev`) both call it, so what
// runs in dev is what runs in production.
package registry

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/lethe-privacy/lethe/activities"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/mail"
	"github.com/lethe-privacy/lethe/internal/metrics"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/schedules"
	"github.com/lethe-privacy/lethe/internal/templates"
	"github.com/lethe-privacy/lethe/internal/wiring"
	"github.com/lethe-privacy/lethe/workflows"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// Deps are the real parts the activities work with.
type Deps struct {
	Config     config.Config
	Lethe      *pgxpool.Pool // Lethe's own database
	App        *pgxpool.Pool // the application database of the data map
	Objects    *s3.Client
	Map        *datamap.Map
	Keys       *person.Keyring
	Subjects   *person.Hasher
	Mail       mail.Sender
	BulkMail   mail.BulkSender
	Templates  *templates.Renderer
	Processors *processors.Registry // the data map's processors; nil when it names none
	Log        *slog.Logger
	// Metrics records what the activities do (WithMetrics); nil records nothing.
	Metrics *metrics.Worker
}

// WithMetrics is d with every activity recording into m: the processors'
// calls (processors.Registry.Observed), the mail really sent
// (mail.Once.Observed) and the notices sent. A nil m gives d.
func (d Deps) WithMetrics(m *metrics.Worker) Deps {
	if m == nil {
		return d
	}
	d.Metrics = m
	if d.Processors != nil {
		d.Processors = d.Processors.Observed(m)
	}
	if once, ok := d.Mail.(*mail.Once); ok {
		d.Mail = once.Observed(m)
	}
	return d
}

// NewDeps builds the parts not given from the configuration: keys, mail, templates.
func NewDeps(ctx context.Context, c config.Config, lethe, app *pgxpool.Pool, objects *s3.Client, m *datamap.Map, log *slog.Logger) (Deps, error) {
	d := Deps{Config: c, Lethe: lethe, App: app, Objects: objects, Map: m, Log: log}
	var err error
	if d.Keys, err = wiring.Keyring(c, lethe); err != nil {
		return d, err
	}
	if d.Subjects, err = wiring.Subjects(c); err != nil {
		return d, err
	}
	if d.Mail, err = wiring.Mailer(c, lethe); err != nil {
		return d, err
	}
	if d.Templates, err = wiring.Templates(c); err != nil {
		return d, err
	}
	if d.BulkMail, err = wiring.BulkMailer(c); err != nil {
		return d, err
	}
	if a := accountsOf(m); a != nil && a.LastActive == "" {
		closed := "closed accounts are erased by closed_at"
		if a.ClosedAt == "" {
			closed = "nor closed ones (no closed_at either)"
		}
		log.Info("inactivity sweep: the data map's accounts have no last_active column, so inactive accounts are not swept; " + closed)
	}
	if m != nil && len(m.Processors) > 0 {
		if d.Processors, err = processors.NewRegistry(m.Processors, processors.BuildOptions{LookupEnv: os.LookupEnv}); err != nil {
			return d, fmt.Errorf("data map processors: %w", err)
		}
	}
	return d, nil
}

// noticeObserver keeps a nil *metrics.Worker out of the interface.
func noticeObserver(m *metrics.Worker) activities.NoticeObserver {
	if m == nil {
		return nil
	}
	return m
}

func accountsOf(m *datamap.Map) *datamap.Accounts {
	if m == nil {
		return nil
	}
	return m.Accounts
}

// WorkerOptions are the options of every Lethe worker: on stop (a deploy, a
// Ctrl-C) running activities get time to finish instead of being cut off.
func WorkerOptions() worker.Options {
	return worker.Options{
		WorkerStopTimeout: 30 * time.Second,
		// An erasure fans out to a child workflow per processor: with the
		// SDK's two workflow-task pollers, tasks waited ~50 ms for one.
		MaxConcurrentWorkflowTaskPollers: 8,
		MaxConcurrentActivityTaskPollers: 8,
	}
}

// DeployedWorkerOptions are WorkerOptions for the build c names: with
// LETHE_WORKER_BUILD_ID set, the worker is that version of the worker
// deployment LETHE_WORKER_DEPLOYMENT. Every Lethe workflow auto-upgrades:
// at its next step it moves to the deployment's current version, because
// workflows that sleep for years cannot stay pinned to the worker that
// started them; what makes the move safe is that every change to workflow
// code replays (README, "Changing a workflow").
func DeployedWorkerOptions(c config.Config) worker.Options {
	o := WorkerOptions()
	if c.WorkerBuildID != "" {
		o.DeploymentOptions = worker.DeploymentOptions{
			UseVersioning:             true,
			Version:                   worker.WorkerDeploymentVersion{DeploymentName: c.WorkerDeployment, BuildID: c.WorkerBuildID},
			DefaultVersioningBehavior: workflow.VersioningBehaviorAutoUpgrade,
		}
	}
	return o
}

// Register puts every workflow and activity on r under its registered name:
// workflows under their contract names, activities under their method names.
func Register(r worker.Registry, d Deps) {
	RegisterWorkflows(r)
	a := NewActivities(d)
	r.RegisterActivity(a.Lifecycle)
	r.RegisterActivity(a.Erasure)
	r.RegisterActivity(a.ProcessorErasure)
	r.RegisterActivity(a.Notices)
	r.RegisterActivity(a.Exports)
	r.RegisterActivity(a.Changes)
	r.RegisterActivity(a.AccountLife)
	r.RegisterActivity(a.Ledger)
	r.RegisterActivity(a.BulkErasure)
}

// RegisterWorkflows puts every workflow on r under its contract name: the
// name its histories were recorded under, so never renamed.
func RegisterWorkflows(r worker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(workflows.PrivacyRequest, workflow.RegisterOptions{Name: contract.WorkflowPrivacyRequest})
	r.RegisterWorkflowWithOptions(workflows.EraseSubject, workflow.RegisterOptions{Name: contract.WorkflowEraseSubject})
	r.RegisterWorkflowWithOptions(workflows.RetainLetheRecords, workflow.RegisterOptions{Name: contract.WorkflowRetainRecords})
	r.RegisterWorkflowWithOptions(workflows.AccountDeactivation, workflow.RegisterOptions{Name: contract.WorkflowDeactivation})
	r.RegisterWorkflowWithOptions(workflows.InactiveAccountSweep, workflow.RegisterOptions{Name: contract.WorkflowInactiveSweep})
	r.RegisterWorkflowWithOptions(workflows.IDDocumentDeletion, workflow.RegisterOptions{Name: contract.WorkflowIDDocuments})
	r.RegisterWorkflowWithOptions(workflows.IDDocumentSweep, workflow.RegisterOptions{Name: contract.WorkflowIDDocSweep})
	r.RegisterWorkflowWithOptions(workflows.BreachNotification, workflow.RegisterOptions{Name: contract.WorkflowBreach})
	r.RegisterWorkflowWithOptions(workflows.SendNotices, workflow.RegisterOptions{Name: contract.WorkflowSendNotices})
	r.RegisterWorkflowWithOptions(workflows.PolicyChangeNotice, workflow.RegisterOptions{Name: contract.WorkflowPolicyNotice})
	r.RegisterWorkflowWithOptions(workflows.BuildExport, workflow.RegisterOptions{Name: contract.WorkflowBuildExport})
	r.RegisterWorkflowWithOptions(workflows.KeepExport, workflow.RegisterOptions{Name: contract.WorkflowKeepExport})
	r.RegisterWorkflowWithOptions(workflows.RestoreReconcile, workflow.RegisterOptions{Name: contract.WorkflowRestoreReconcile})
	r.RegisterWorkflowWithOptions(workflows.AwaitBackupRotation, workflow.RegisterOptions{Name: contract.WorkflowAwaitBackupRotation})
	r.RegisterWorkflowWithOptions(workflows.EraseAtProcessor, workflow.RegisterOptions{Name: contract.WorkflowEraseAtProcessor})
	r.RegisterWorkflowWithOptions(workflows.ProcessorFollowUp, workflow.RegisterOptions{Name: contract.WorkflowProcessorFollowUp})
	r.RegisterWorkflowWithOptions(workflows.ProcessorFollowUps, workflow.RegisterOptions{Name: contract.WorkflowProcessorFollowUps})
	r.RegisterWorkflowWithOptions(workflows.ReleaseHold, workflow.RegisterOptions{Name: contract.WorkflowReleaseHold})
	r.RegisterWorkflowWithOptions(workflows.EraseInBulk, workflow.RegisterOptions{Name: contract.WorkflowBulkErasure})
	r.RegisterWorkflowWithOptions(workflows.ReleaseHeldInBulk, workflow.RegisterOptions{Name: contract.WorkflowReleaseHeldInBulk})
	r.RegisterWorkflowWithOptions(workflows.AfterErasure, workflow.RegisterOptions{Name: contract.WorkflowAfterErasure})
}

// Activities are the activity structs of package activities, with their
// parts. The worker registers each struct's exported methods under their
// method names, the names the workflows call them by.
type Activities struct {
	Lifecycle        *activities.Lifecycle
	Erasure          *activities.Erasure
	ProcessorErasure *activities.ProcessorErasure
	Notices          *activities.Notices
	Exports          *activities.Exports
	Changes          *activities.Changes
	AccountLife      *activities.AccountLife
	Ledger           *activities.Ledger
	BulkErasure      *activities.BulkErasure
}

// NewActivities builds every activity struct from d.
func NewActivities(d Deps) Activities {
	lifecycle := &activities.Lifecycle{
		DB: d.Lethe, App: d.App, Map: d.Map, Keys: d.Keys, Subjects: d.Subjects, Mail: d.Mail, Templates: d.Templates,
		CompanyName: d.Config.CompanyName, PublicURL: d.Config.PublicURL, PrivacyTeam: d.Config.PrivacyTeamEmail, Log: d.Log,
	}
	erasure := &activities.Erasure{App: d.App, Lethe: d.Lethe, Objects: d.Objects, Map: d.Map, Keys: d.Keys, Subjects: d.Subjects, Processors: d.Processors, Log: d.Log}
	ledger := &activities.Ledger{Lethe: d.Lethe, App: d.App, Backups: d.Objects, Map: d.Map, Keys: d.Keys, Subjects: d.Subjects, Erasure: erasure, Log: d.Log}
	return Activities{
		Lifecycle:        lifecycle,
		Erasure:          erasure,
		ProcessorErasure: &activities.ProcessorErasure{Keys: d.Keys, Processors: d.Processors, Lethe: d.Lethe, Log: d.Log},
		Notices:          &activities.Notices{Lifecycle: lifecycle, Bulk: d.BulkMail, Objects: d.Objects, ExportBucket: d.Config.S3ExportBucket, AuthorityEmail: d.Config.AuthorityEmail, Sent: noticeObserver(d.Metrics)},
		Exports:          &activities.Exports{Lifecycle: lifecycle, Objects: d.Objects, Bucket: d.Config.S3ExportBucket, Processors: d.Processors},
		Changes:          &activities.Changes{Lifecycle: lifecycle, Processors: d.Processors},
		AccountLife:      &activities.AccountLife{Lifecycle: lifecycle, Erasure: erasure, ExportBucket: d.Config.S3ExportBucket},
		Ledger:           ledger,
		BulkErasure:      &activities.BulkErasure{Erasure: erasure, Lifecycle: lifecycle, Ledger: ledger},
	}
}

// Schedules are the Temporal Schedules the worker keeps in line with the
// configuration at every start (see internal/schedules).
func Schedules(c config.Config) ([]schedules.Spec, error) {
	keep, err := domain.ParsePeriod(c.RecordsRetention)
	if err != nil {
		return nil, fmt.Errorf("LETHE_RECORDS_RETENTION: %w", err)
	}
	policy, err := InactivityPolicy(c)
	if err != nil {
		return nil, err
	}
	return []schedules.Spec{{
		ID: "lethe-records-retention", Every: c.RecordsRetentionEvery, TaskQueue: c.TemporalTaskQueue,
		Workflow: contract.WorkflowRetainRecords, Args: []any{contract.RetentionInput{KeepFor: keep}},
		Note: "Closed requests lose their personal data after LETHE_RECORDS_RETENTION (" + keep.String() + ")",
	}, {
		ID: "lethe-inactive-accounts", Every: c.SweepEvery, TaskQueue: c.TemporalTaskQueue,
		Workflow: contract.WorkflowInactiveSweep, Args: []any{contract.SweepInput{Policy: policy, DryRun: c.InactiveDryRun}},
		Note: "Warns accounts inactive for LETHE_INACTIVE_AFTER (" + policy.InactiveAfter.String() + "), then erases them",
	}, {
		ID: "lethe-id-documents", Every: c.SweepEvery, TaskQueue: c.TemporalTaskQueue,
		Workflow: contract.WorkflowIDDocSweep, Args: []any{c.IDDocumentDeleteAfter},
		Note: "Deletes ID documents of appeal tickets closed longer than LETHE_ID_DOCUMENT_DELETE_AFTER ago",
	}}, nil
}

// InactivityPolicy is the inactivity sweep's policy from the configuration.
func InactivityPolicy(c config.Config) (contract.InactivityPolicy, error) {
	// Inactivity and keeping are calendar time: a business day says nothing
	// about when someone last signed in.
	after, err := domain.ParseCalendarPeriod(c.InactiveAfter)
	if err != nil {
		return contract.InactivityPolicy{}, fmt.Errorf("LETHE_INACTIVE_AFTER: %w", err)
	}
	if after.IsZero() {
		// Zero would put every account past the limit at once.
		return contract.InactivityPolicy{}, fmt.Errorf("LETHE_INACTIVE_AFTER: %s: give a period longer than zero (e.g. 24mo)", after)
	}
	keep, err := domain.ParseCalendarPeriod(c.ClosedAccountKeep) // 0d: never by the sweep
	if err != nil {
		return contract.InactivityPolicy{}, fmt.Errorf("LETHE_CLOSED_ACCOUNT_KEEP: %w", err)
	}
	return contract.InactivityPolicy{InactiveAfter: after, WarnBefore: c.InactiveWarnBefore, ClosedKeep: keep}, nil
}

// ApplySchedules creates or updates every schedule of Schedules.
func ApplySchedules(ctx context.Context, c client.Client, cfg config.Config) error {
	specs, err := Schedules(cfg)
	if err != nil {
		return err
	}
	return schedules.Apply(ctx, c, specs)
}
