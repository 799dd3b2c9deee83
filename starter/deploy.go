package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/lethe-privacy/lethe/internal/temporalclient"
)

// deployCommand rolls workers out: a new build's workers start beside the
// old ones (LETHE_WORKER_BUILD_ID), `promote` moves every workflow to them,
// and `status` says when the old build has drained and can stop.
func deployCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "deploy", Short: "Roll out a new worker build beside the old one, then drain the old one"}
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "The worker deployment's current build and each build's drainage",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cfg, err := dialTemporal(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			d, err := temporalclient.DescribeDeployment(cmd.Context(), c, cfg.WorkerDeployment)
			if err != nil {
				return err
			}
			printDeployment(cmd.OutOrStdout(), d)
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "promote <build-id>",
		Short: "Make a build the current one: new workflows, and running ones at their next step, run on its workers",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cfg, err := dialTemporal(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			return promote(cmd, c, cfg.WorkerDeployment, args[0])
		},
	})
	return cmd
}

func promote(cmd *cobra.Command, c client.Client, deployment, buildID string) error {
	if err := temporalclient.Promote(cmd.Context(), c, deployment, buildID); err != nil {
		return fmt.Errorf("%w (are workers with LETHE_WORKER_BUILD_ID=%s running and polling?)", err, buildID)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s is the current build of %s; stop the old build's workers once `starter deploy status` says drained\n", buildID, deployment)
	return nil
}

func printDeployment(out io.Writer, d temporalclient.Deployment) {
	current := d.Current
	if current == "" {
		current = "(none: unversioned workers take new work)"
	}
	fmt.Fprintf(out, "deployment %s, current build %s\n", d.Name, current)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BUILD\tSINCE\tWORKFLOWS")
	for _, v := range d.Versions {
		state := map[string]string{"": "current or not yet known", "draining": "still running some: keep its workers", "drained": "none left: its workers can stop"}[v.Drainage]
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.BuildID, v.Created.UTC().Format(time.RFC3339), state)
	}
	_ = tw.Flush()
}
