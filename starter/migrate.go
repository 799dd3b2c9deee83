package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spf13/cobra"

	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/store"
)

func migrateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Create Lethe's database if missing and apply its migrations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := openLetheDB(cmd.Context())
			if err != nil {
				return err
			}
			db.Close()
			fmt.Fprintln(cmd.OutOrStdout(), "migrations applied")
			return nil
		},
	}
}

// openLetheDB reads the configuration and opens Lethe's own database,
// creating and migrating it when needed: what every maintenance command needs.
func openLetheDB(ctx context.Context) (*pgxpool.Pool, error) {
	cfg, err := config.FromEnv()
	if err != nil {
		return nil, err
	}
	return store.Open(ctx, cfg.DatabaseURL, true)
}
