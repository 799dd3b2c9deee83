package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/temporalclient"
	"github.com/lethe-privacy/lethe/internal/wiring"
	"github.com/lethe-privacy/lethe/worker/registry"
)

func schedulesCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "schedules", Short: "Lethe's Temporal Schedules"}
	cmd.AddCommand(&cobra.Command{
		Use:   "apply",
		Short: "Create or update every schedule from the configuration (the worker also does this at start)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cfg, err := dialTemporal(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			if err := registry.ApplySchedules(cmd.Context(), c, cfg); err != nil {
				return err
			}
			specs, _ := registry.Schedules(cfg)
			for _, s := range specs {
				fmt.Fprintf(cmd.OutOrStdout(), "schedule %s: every %s runs %s\n", s.ID, s.Every, s.Workflow)
			}
			return nil
		},
	})
	return cmd
}

// dialTemporal reads the configuration from the environment and connects to
// Temporal as it says: what every command that starts or changes workflows needs.
func dialTemporal(ctx context.Context) (client.Client, config.Config, error) {
	cfg, err := config.FromEnv()
	if err != nil {
		return nil, cfg, err
	}
	c, err := dialTemporalWith(ctx, cfg)
	return c, cfg, err
}

// dialTemporalWith connects to Temporal as cfg says, for a command that
// needed the configuration before (to check its input first).
func dialTemporalWith(ctx context.Context, cfg config.Config) (client.Client, error) {
	opts, err := wiring.TemporalOptions(cfg, wiring.Logger(cfg))
	if err != nil {
		return nil, err
	}
	return temporalclient.Dial(ctx, opts)
}
