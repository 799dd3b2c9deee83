package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lethe-privacy/lethe/internal/audit"
)

// auditCommand groups the commands about Lethe's audit trail.
func auditCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Inspect Lethe's tamper-evident audit trail",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(auditVerifyCommand())
	return cmd
}

// auditVerifyCommand recomputes the audit trail's hash chain. It exits 0 when
// the chain is intact and 1 when an entry was altered, deleted or inserted.
func auditVerifyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Recompute the audit trail's hash chain and report the first broken link",
		Long: "Recompute the audit trail's hash chain and report the first broken link.\n\n" +
			"The chain shows entries that were altered, deleted or inserted, but not entries cut off\n" +
			"its end: compare the last entry printed here with one you noted before.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := openLetheDB(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			rep, err := audit.Verify(cmd.Context(), db)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !rep.Intact() {
				fmt.Fprintf(out, "audit trail broken at seq %d: %s\n", rep.FirstBroken, rep.Reason)
				return errors.New("audit trail verification failed")
			}
			fmt.Fprintf(out, "audit trail intact: %d entries\n", rep.Entries)
			if rep.Entries > 0 {
				fmt.Fprintf(out, "last entry: seq %d, hash %x\n", rep.LastSeq, rep.LastHash)
			}
			return nil
		},
	}
}
