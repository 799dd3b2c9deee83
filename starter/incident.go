package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/lethe-privacy/lethe/internal/api"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// cliActor is who the audit trail says declared an incident from the CLI,
// as a restore-reconcile started from it.
const cliActor = "cli"

// incidentFlag is the flag of one of the API's JSON fields, so that a
// refusal of the shared checks (api.InputError) names the flags to fix.
func incidentFlag(field string) string {
	switch field {
	case "data_categories":
		return "--data-category"
	case "params":
		return "--param"
	case "aware_at", "what_happened", "consequences", "measures", "what_you_can_do", "contact", "records",
		"notification_required", "no_notification_reason", "public_notice", "selector", "object_key":
		return "--" + strings.ReplaceAll(field, "_", "-")
	}
	return ""
}

// incidentCommand declares a breach and follows it from the command line,
// with the checks and the workflow of POST /v1/incidents.
func incidentCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "incident",
		Short: "Declare a personal-data breach and follow its notification (as /v1/incidents)",
		Long: "Declare a personal-data breach, follow it, add people found later and close it: the\n" +
			"BreachNotification workflow of POST /v1/incidents, with the same checks and the same\n" +
			"refusals. The commands talk to Temporal as the worker's configuration says\n" +
			"(LETHE_TEMPORAL_*, LETHE_PAYLOAD_KEYS) and check selectors against LETHE_DATA_MAP.",
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(incidentDeclareCommand(), incidentStatusCommand(), incidentAddPeopleCommand(), incidentCloseCommand())
	return cmd
}

// affectedFlags are the flags of a source of affected people (the API's
// "affected" object, or the body of POST /v1/incidents/{id}/people).
type affectedFlags struct {
	selector, objectKey string
	params              []string
}

func (a *affectedFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&a.selector, "selector", "", "the data map's selector that finds the affected people (affected.selector)")
	cmd.Flags().StringArrayVar(&a.params, "param", nil, "a parameter of the selector, name=value; repeat for each (affected.params)")
	cmd.Flags().StringVar(&a.objectKey, "object-key", "", "or: an object of the export bucket with their user ids, one a line (affected.object_key)")
}

// body reads the flags into the API's body; only the form of --param is
// checked here, the rest by api.Affected.
func (a *affectedFlags) body() (api.AffectedBody, error) {
	b := api.AffectedBody{Selector: a.selector, ObjectKey: a.objectKey}
	for _, p := range a.params {
		name, value, ok := strings.Cut(p, "=")
		if !ok || name == "" {
			return b, errors.New("--param: want name=value, e.g. --param from=2026-01-01T00:00:00Z")
		}
		if b.Params == nil {
			b.Params = map[string]string{}
		}
		if _, dup := b.Params[name]; dup {
			return b, fmt.Errorf("--param: %s given twice", quotePlain(name))
		}
		b.Params[name] = value
	}
	return b, nil
}

func incidentDeclareCommand() *cobra.Command {
	var (
		in       api.IncidentBody
		awareAt  string
		notify   bool
		affected affectedFlags
	)
	cmd := &cobra.Command{
		Use:   "declare --aware-at TIME --what-happened TEXT --data-category TEXT… --measures TEXT --contact TEXT (--selector NAME [--param name=value…] | --object-key KEY)",
		Short: "Declare a breach: find the affected people, report to the authority, mail each of them once",
		Long: "Declare a breach (as POST /v1/incidents; each flag is the JSON field of the same name).\n" +
			"It prints the incident's id and its deadlines: every affected person notified by\n" +
			"--aware-at + LETHE_BREACH_NOTIFY_WITHIN, the authority report by + LETHE_BREACH_REPORT_WITHIN.\n" +
			"The texts are the company's, the same for every person: name nobody in them.",
		Example: "  starter incident declare --aware-at 2026-11-22T08:00:00Z \\\n" +
			"    --what-happened \"A backup of the support database was readable without a password for three hours.\" \\\n" +
			"    --data-category \"email address\" --data-category \"support ticket text\" \\\n" +
			"    --measures \"We closed the access and rotated every credential.\" --contact privacy@example.com \\\n" +
			"    --selector accounts_created_between --param from=2026-01-01T00:00:00Z --param to=2026-11-01T00:00:00Z",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if awareAt != "" {
				t, err := time.Parse(time.RFC3339, awareAt)
				if err != nil {
					return errors.New("--aware-at: want a time with its zone (RFC 3339), e.g. 2026-11-22T08:00:00Z or 2026-11-22T09:00:00+01:00")
				}
				in.AwareAt = t
			}
			if cmd.Flags().Changed("notification-required") {
				in.NotificationRequired = &notify
			}
			var err error
			if in.Affected, err = affected.body(); err != nil {
				return err
			}
			cfg, m, err := incidentConfig()
			if err != nil {
				return err
			}
			// Checked before Temporal is dialled: a refusal starts nothing.
			inc, err := noticePolicy(cfg).NewIncident(in, m, cliActor, time.Now())
			if err != nil {
				return flagError(err)
			}
			c, err := dialTemporalWith(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer c.Close()
			d, err := api.StartIncident(cmd.Context(), c, cfg.TemporalTaskQueue, inc)
			if err != nil {
				return err
			}
			printDeclared(cmd.OutOrStdout(), d, inc.NotificationRequired, time.Now())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&awareAt, "aware-at", "", "when the team became aware of the breach, RFC 3339 (aware_at; required): the deadlines run from here")
	f.StringVar(&in.WhatHappened, "what-happened", "", "what happened, in plain words (what_happened; required)")
	f.StringArrayVar(&in.DataCategories, "data-category", nil, "a category of the data involved, e.g. \"email address\"; repeat for each (data_categories; required)")
	f.StringVar(&in.Consequences, "consequences", "", "the likely consequences (consequences)")
	f.StringVar(&in.Measures, "measures", "", "what was done and is being done about it (measures; required)")
	f.StringVar(&in.WhatYouCanDo, "what-you-can-do", "", "what people can do to protect themselves (what_you_can_do)")
	f.StringVar(&in.Contact, "contact", "", "where people get more information, e.g. privacy@example.com (contact; required)")
	f.IntVar(&in.Records, "records", 0, "approximate number of records involved, 0 if unknown (records)")
	f.BoolVar(&notify, "notification-required", true, "false: nobody is told; needs --no-notification-reason (notification_required)")
	f.StringVar(&in.NoNotificationReason, "no-notification-reason", "", "why people are not told; the breach is recorded with it (no_notification_reason)")
	f.BoolVar(&in.PublicNotice, "public-notice", false, "publish a public notice as well: telling each person would be disproportionate (public_notice)")
	affected.register(cmd)
	return cmd
}

func printDeclared(out io.Writer, d api.Declared, notify bool, now time.Time) {
	fmt.Fprintf(out, "incident %s declared\n", d.ID)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	if notify {
		fmt.Fprintf(tw, "notify by\t%s\tevery affected person mailed\n", when(d.NotifyBy, now))
	} else {
		fmt.Fprintf(tw, "notify by\t-\tno notification: recorded with its reason\n")
	}
	fmt.Fprintf(tw, "report by\t%s\tthe authority report\n", when(d.ReportBy, now))
	_ = tw.Flush()
	fmt.Fprintf(out, "follow it: starter incident status %s\n", d.ID)
}

// when is t in UTC with how far it is from now, to the minute.
func when(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := t.Sub(now).Round(time.Minute)
	rel := strings.TrimSuffix(d.Abs().String(), "0s") // 46h5m
	if d%time.Hour == 0 {
		rel = strings.TrimSuffix(rel, "0m") // 46h
	}
	switch {
	case d == 0:
		rel = "now"
	case d < 0:
		rel += " ago"
	default:
		rel = "in " + rel
	}
	return fmt.Sprintf("%s (%s)", t.UTC().Format(time.RFC3339), rel)
}

func incidentStatusCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Show an incident: status, deadlines, notices found, sent and pending, reports, escalations",
		Long:  "Show an incident as GET /v1/incidents/{id} does; --json prints that answer's JSON.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			c, err := dialForIncident(cmd, id)
			if err != nil {
				return err
			}
			defer c.Close()
			v, err := incidentView(cmd.Context(), c, id)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			printIncident(cmd.OutOrStdout(), v, time.Now())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the incident as JSON (the API's answer)")
	return cmd
}

func printIncident(out io.Writer, v contract.IncidentView, now time.Time) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "incident\t%s\n", v.ID)
	fmt.Fprintf(tw, "status\t%s\n", v.Status)
	fmt.Fprintf(tw, "aware at\t%s\n", when(v.AwareAt, now))
	if v.Status == contract.IncidentRecorded {
		fmt.Fprintf(tw, "notify by\t-\t(no notification: recorded with its reason)\n")
	} else {
		fmt.Fprintf(tw, "notify by\t%s\n", when(v.NotifyBy, now))
	}
	fmt.Fprintf(tw, "report by\t%s\n", when(v.ReportBy, now))
	fmt.Fprintf(tw, "notified at\t%s\n", when(v.NotifiedAt, now))
	n := v.Counts
	fmt.Fprintf(tw, "people\t%d found, %d sent, %d without email, %d failed, %d pending\n", n.Found, n.Sent, n.NoEmail, n.Failed, n.Pending)
	if len(v.Reports) == 0 {
		fmt.Fprintf(tw, "reports\tnone yet\n")
	}
	for i, r := range v.Reports {
		fmt.Fprintf(tw, "report, phase %d\t%s\n", i+1, r)
	}
	if v.PublicURL != "" {
		fmt.Fprintf(tw, "public notice\t%s\n", v.PublicURL)
	}
	if len(v.Escalations) == 0 {
		fmt.Fprintf(tw, "escalations\tnone\n")
	}
	for _, at := range v.Escalations {
		fmt.Fprintf(tw, "escalated\t%s\n", when(at, now))
	}
	_ = tw.Flush()
}

func incidentAddPeopleCommand() *cobra.Command {
	var affected affectedFlags
	cmd := &cobra.Command{
		Use:   "add-people ID (--selector NAME [--param name=value…] | --object-key KEY)",
		Short: "Add people found later to an open incident: each is told once, nobody twice",
		Long:  "Add people found later (as POST /v1/incidents/{id}/people), until the incident is closed.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if err := api.CheckIncidentID(id); err != nil {
				return flagError(err)
			}
			body, err := affected.body()
			if err != nil {
				return err
			}
			cfg, m, err := incidentConfig()
			if err != nil {
				return err
			}
			src, err := api.Affected(m, body)
			if err != nil {
				return flagError(err)
			}
			c, err := dialTemporalWith(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := incidentUpdate(cmd.Context(), c, id, contract.UpdateAddPeople, src); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "incident %s: the people of %s are being found and told, nobody twice\nfollow it: starter incident status %s\n",
				id, sourceName(src), id)
			return nil
		},
	}
	affected.register(cmd)
	return cmd
}

func sourceName(src contract.AffectedSource) string {
	if src.Selector != "" {
		return "selector " + src.Selector
	}
	return "object " + src.ObjectKey
}

func incidentCloseCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "close ID",
		Short: "Close an incident: it takes no more people and ends once its notices are sent",
		Long:  "Close an incident (as POST /v1/incidents/{id}/close); else it closes by itself LETHE_INCIDENT_KEEP_OPEN after its notices.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			c, err := dialForIncident(cmd, id)
			if err != nil {
				return err
			}
			defer c.Close()
			v, err := incidentUpdate(cmd.Context(), c, id, contract.UpdateCloseIncident, nil)
			if err != nil {
				return err
			}
			if v.Status == contract.IncidentNotifying {
				fmt.Fprintf(cmd.OutOrStdout(), "incident %s closed to more people; it ends once its %d pending notices are sent\n", id, v.Counts.Pending)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "incident %s closed: %d people found, %d notices sent\n", id, v.Counts.Found, v.Counts.Sent)
			return nil
		},
	}
}

// incidentConfig reads the configuration and the data map the selectors
// are checked against, as the API does (no database needed).
func incidentConfig() (config.Config, *datamap.Map, error) {
	cfg, err := config.FromEnv()
	if err != nil {
		return cfg, nil, err
	}
	m, err := loadDataMap(cfg)
	return cfg, m, err
}

// flagError is a refusal of the shared checks in the API's words, followed
// by what to fix on the command line.
func flagError(err error) error {
	var in *api.InputError
	if !errors.As(err, &in) {
		return err
	}
	if len(in.Fields) == 1 && in.Fields[0] == "id" {
		return fmt.Errorf("%w: an incident's id is inc_ and 16 letters and digits, as `incident declare` printed it", err)
	}
	var flags []string
	for _, f := range in.Fields {
		if name := incidentFlag(f); name != "" {
			flags = append(flags, name)
		}
	}
	if len(flags) == 0 {
		return err
	}
	return fmt.Errorf("%w (fix: %s)", err, strings.Join(flags, ", "))
}

// incidentWorkflow checks that id is a BreachNotification workflow: an
// unknown id, or a policy notice's, is said so; ended is whether it ended.
func incidentWorkflow(ctx context.Context, c client.Client, id string) (ended bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return false, fmt.Errorf("no incident has id %s", id)
	case err != nil:
		return false, fmt.Errorf("look up incident %s: %w", id, err)
	}
	info := d.GetWorkflowExecutionInfo()
	if name := info.GetType().GetName(); name != contract.WorkflowBreach {
		return false, fmt.Errorf("%s is not an incident (a %s workflow)", id, name)
	}
	return info.GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}

// incidentView is the incident's state, running or ended.
func incidentView(ctx context.Context, c client.Client, id string) (contract.IncidentView, error) {
	var v contract.IncidentView
	if _, err := incidentWorkflow(ctx, c, id); err != nil {
		return v, err
	}
	resp, err := c.QueryWorkflow(ctx, id, "", contract.QueryProgress)
	if err != nil {
		return v, fmt.Errorf("read incident %s: %w", id, err)
	}
	if err := resp.Get(&v); err != nil {
		return v, fmt.Errorf("read incident %s: %w", id, err)
	}
	return v, nil
}

// incidentUpdate sends an update to a running incident and answers its
// view; the workflow's refusals come in its own words.
func incidentUpdate(ctx context.Context, c client.Client, id, name string, arg any) (contract.IncidentView, error) {
	var v contract.IncidentView
	ended, err := incidentWorkflow(ctx, c, id)
	if err != nil {
		return v, err
	}
	if !ended {
		uctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		opts := client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: name, WaitForStage: client.WorkflowUpdateStageCompleted}
		if arg != nil {
			opts.Args = []any{arg}
		}
		h, err := c.UpdateWorkflow(uctx, opts)
		if err == nil {
			err = h.Get(uctx, &v)
		}
		var app *temporal.ApplicationError
		var nf *serviceerror.NotFound
		switch {
		case err == nil:
			return v, nil
		case errors.As(err, &app) && (app.Type() == contract.RefusedState || app.Type() == contract.RefusedInput):
			return v, fmt.Errorf("incident %s: %s", id, app.Message())
		case !errors.As(err, &nf): // NotFound: it ended since
			return v, fmt.Errorf("%s incident %s: %w", strings.ReplaceAll(name, "_", " "), id, err)
		}
	}
	if name == contract.UpdateCloseIncident {
		return v, fmt.Errorf("incident %s has already ended: nothing to close", id)
	}
	return v, fmt.Errorf("incident %s has ended and takes no more people: declare a new incident for them", id)
}

// quotePlain repeats a parameter's name in an error only when it cannot
// carry personal data (a plain lower-case name), as the API does.
func quotePlain(s string) string {
	plain := s != "" && len(s) <= 40 && strings.IndexFunc(s, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_'
	}) < 0
	if !plain {
		return "a parameter"
	}
	return fmt.Sprintf("%q", s)
}

// dialForIncident checks an incident id as the API does, then connects to
// Temporal: a malformed id is refused before anything is dialled.
func dialForIncident(cmd *cobra.Command, id string) (client.Client, error) {
	if err := api.CheckIncidentID(id); err != nil {
		return nil, flagError(err)
	}
	c, _, err := dialTemporal(cmd.Context())
	return c, err
}
