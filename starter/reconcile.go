package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/lethe-privacy/lethe/internal/api"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

func reconcileCommand() *cobra.Command {
	var pageSize int
	var noWait bool
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "After a restore of the application database: erase again everyone in the erasure ledger",
		Long: "Starts the RestoreReconcile workflow on Temporal: it walks every account of the application\n" +
			"database, looks each one up in the erasure ledger and erases again every person a restore\n" +
			"brought back. Run it after every restore, before the application takes traffic.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cfg, err := dialTemporal(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			return runReconcile(cmd.Context(), c, cfg.TemporalTaskQueue, pageSize, !noWait, cmd.OutOrStdout())
		},
	}
	cmd.Flags().IntVar(&pageSize, "page-size", contract.ReconcilePageSize, "accounts per page")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "start the workflow and print its id without waiting for the end")
	return cmd
}

// runReconcile starts a restore-reconcile and, when wait is set, waits for
// it (across continue-as-new) and prints its counts.
func runReconcile(ctx context.Context, c client.Client, taskQueue string, pageSize int, wait bool, out io.Writer) error {
	if pageSize < 1 || pageSize > 10_000 {
		return fmt.Errorf("--page-size: between 1 and 10000")
	}
	run, err := api.StartReconcile(ctx, c, taskQueue, "cli", pageSize)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "restore-reconcile %s started (Temporal UI: workflow %s, query %q)\n", run.GetID(), run.GetID(), contract.QueryProgress)
	if !wait {
		return nil
	}
	var t contract.ReconcileTotals
	if err := run.Get(ctx, &t); err != nil {
		return fmt.Errorf("restore-reconcile %s: %w", run.GetID(), err)
	}
	fmt.Fprintf(out, "scanned %d accounts in %d pages: %d in the erasure ledger, %d found back and erased again (%d rows and objects)\n",
		t.Scanned, t.Pages, t.Matched, t.Erased, t.Items)
	return nil
}
