package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/mail"
)

func outboxCommand() *cobra.Command {
	var last int
	cmd := &cobra.Command{
		Use:   "outbox",
		Short: "Print the mail the dev stack wrote to its outbox instead of sending it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.FromEnv()
			if err != nil {
				return err
			}
			entries, err := mail.ListOutbox(cfg.OutboxDir)
			if err != nil {
				return fmt.Errorf("outbox %s (LETHE_OUTBOX_DIR): %w", cfg.OutboxDir, err)
			}
			if len(entries) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "the outbox is empty")
				return nil
			}
			if last > 0 && len(entries) > last {
				entries = entries[len(entries)-last:]
			}
			for _, e := range entries {
				b, err := os.ReadFile(e.Path)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "──── %s\n%s\n", e.Path, b)
			}
			return nil
		},
	}
	cmd.Flags().IntVarP(&last, "last", "n", 0, "print only the newest N messages")
	return cmd
}
