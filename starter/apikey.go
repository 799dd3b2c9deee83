package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/lethe-privacy/lethe/internal/apikeys"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/store"
)

// apikeyCommand manages the keys that authenticate callers of the HTTP API.
func apikeyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apikey",
		Short: "Create, list and revoke API keys",
		Long: "Create, list and revoke the keys that authenticate callers of the HTTP API.\n\n" +
			"Roles: backend (the company's backend: submits pre-verified requests and account events)\n" +
			"and operator (approves, denies, extends and cancels requests, reports incidents).",
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(apikeyCreateCommand(), apikeyRevokeCommand(), apikeyListCommand())
	return cmd
}

func apikeyCreateCommand() *cobra.Command {
	var name, role string
	cmd := &cobra.Command{
		Use:   "create --name NAME --role backend|operator",
		Short: "Create an API key and print its token (shown only once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case strings.TrimSpace(name) == "":
				return errors.New("--name is required: a label for the key's holder, e.g. --name \"billing backend\"")
			case !apikeys.ValidName(name):
				return fmt.Errorf("--name must be 1 to %d printable characters without leading or trailing spaces", apikeys.MaxNameLen)
			case role == "":
				return errors.New("--role is required: backend or operator")
			case !apikeys.ValidRole(role):
				return fmt.Errorf("--role %q is not a role: use backend or operator", role)
			}
			db, err := apikeyDB(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			token, key, err := apikeys.Create(cmd.Context(), db, name, role)
			if err != nil {
				return err
			}
			// The token alone goes to stdout, so that it can be piped into a
			// secret manager; everything else goes to stderr.
			errOut := cmd.ErrOrStderr()
			fmt.Fprintf(errOut, "Created API key %s (%s, role %s).\n", key.ID, key.Name, key.Role)
			fmt.Fprintln(errOut, "WARNING: this is the only time the token is shown; it cannot be shown again.")
			fmt.Fprintln(errOut, "Store it in a secret manager now. If it is lost, revoke the key and create a new one.")
			fmt.Fprintln(cmd.OutOrStdout(), token)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "label for the key's holder, e.g. \"billing backend\" (required)")
	cmd.Flags().StringVar(&role, "role", "", "backend or operator (required)")
	return cmd
}

func apikeyRevokeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API key: its token stops working within seconds (API servers cache keys for 10 s)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if strings.HasPrefix(id, "lethe_") {
				// Never echo it: it is probably a token.
				return errors.New("pass the key's id (key_…, see `apikey list`), not its token")
			}
			db, err := apikeyDB(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			err = apikeys.Revoke(cmd.Context(), db, id)
			if errors.Is(err, apikeys.ErrNotFound) {
				return fmt.Errorf("no API key has id %q (see `apikey list`)", id)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s\n", id)
			return nil
		},
	}
}

func apikeyListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List API keys, revoked ones included (never their tokens)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := apikeyDB(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			keys, err := apikeys.List(cmd.Context(), db)
			if err != nil {
				return err
			}
			if len(keys) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no API keys; create one with `apikey create --name NAME --role backend|operator`")
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED\tLAST USED\tREVOKED")
			for _, k := range keys {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n",
					k.ID, k.Name, k.Role, apikeyTime(&k.CreatedAt, ""), apikeyTime(k.LastUsedAt, "never"), apikeyTime(k.RevokedAt, "-"))
			}
			return tw.Flush()
		},
	}
}

// apikeyDB opens Lethe's database, creating and migrating it if needed.
func apikeyDB(cmd *cobra.Command) (*pgxpool.Pool, error) {
	cfg, err := config.FromEnv()
	if err != nil {
		return nil, err
	}
	return store.Open(cmd.Context(), cfg.DatabaseURL, true)
}

// apikeyTime formats t in UTC to the minute, or returns none when t is nil.
func apikeyTime(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}
