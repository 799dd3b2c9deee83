package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/drp"
	"github.com/lethe-privacy/lethe/internal/store"
)

// drpCommand manages the Data Rights Protocol: the authorized agents
// Lethe takes requests from, and Lethe's own signing key.
func drpCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drp",
		Short: "Data Rights Protocol: register authorized agents, make Lethe's signing key",
		Args:  cobra.NoArgs,
	}
	agent := &cobra.Command{
		Use:   "agent",
		Short: "Register, list and revoke DRP authorized agents",
		Args:  cobra.NoArgs,
	}
	agent.AddCommand(drpAgentAddCommand(), drpAgentListCommand(), drpAgentRevokeCommand())
	cmd.AddCommand(agent, drpKeyCommand())
	return cmd
}

// drpAgentSpec is what `drp agent add` registers, checked.
type drpAgentSpec struct {
	ID, Name, VerifyKey, CallbackURL string
	TrustVerifiedEmail               bool
}

// agent checks the spec and makes the store's record of it.
func (s drpAgentSpec) agent() (store.DRPAgent, error) {
	if !drp.AgentIDRe.MatchString(s.ID) {
		return store.DRPAgent{}, errors.New("--id: want the agent's id in the DRP directory (letters, digits, _ and -)")
	}
	key, err := drp.ParseVerifyKey(s.VerifyKey)
	if err != nil {
		return store.DRPAgent{}, fmt.Errorf("--verify-key: %w", err)
	}
	if s.CallbackURL != "" {
		u, err := url.Parse(s.CallbackURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return store.DRPAgent{}, errors.New("--callback-url: want an https:// address (the origin the agent's status_callback must be at)")
		}
	}
	return store.DRPAgent{ID: s.ID, Name: s.Name, VerifyKey: key, CallbackURL: s.CallbackURL, TrustVerifiedEmail: s.TrustVerifiedEmail}, nil
}

func drpAgentAddCommand() *cobra.Command {
	var spec drpAgentSpec
	cmd := &cobra.Command{
		Use:   "add --id ID --verify-key BASE64 [--callback-url URL] [--trust-verified-email]",
		Short: "Register an agent with its Ed25519 verify key (again: replace its key and settings)",
		Long: "Register an authorized agent from its DRP directory entry: its id and verify_key.\n" +
			"--callback-url is where its status callbacks go; a request's status_callback must be at the same origin.\n" +
			"--trust-verified-email: the privacy team relies on this agent's identity assurance, so a request\n" +
			"whose email_verified claim is true needs no code from the person (otherwise Lethe mails one).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := spec.agent()
			if err != nil {
				return err
			}
			db, err := apikeyDB(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			if err := store.New(db).PutDRPAgent(cmd.Context(), a); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "registered DRP agent %s; it gets its bearer token from POST /v1/agent/%s\n", a.ID, a.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&spec.ID, "id", "", "the agent's id in the DRP directory (required)")
	cmd.Flags().StringVar(&spec.Name, "name", "", "a label for the agent")
	cmd.Flags().StringVar(&spec.VerifyKey, "verify-key", "", "the agent's verify_key: base64 Ed25519 public key (required)")
	cmd.Flags().StringVar(&spec.CallbackURL, "callback-url", "", "where status callbacks go (the origin of every status_callback)")
	cmd.Flags().BoolVar(&spec.TrustVerifiedEmail, "trust-verified-email", false, "count the agent's email_verified claim as verified (no code mailed)")
	return cmd
}

func drpAgentListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List DRP agents, revoked ones included (never their tokens)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := apikeyDB(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			agents, err := store.New(db).DRPAgents(cmd.Context())
			if err != nil {
				return err
			}
			if len(agents) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no DRP agents; register one with `drp agent add --id ID --verify-key KEY`")
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tVERIFY KEY\tCALLBACK\tTRUSTS EMAIL_VERIFIED\tTOKEN ISSUED\tREVOKED")
			for _, a := range agents {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\t%s\n", a.ID, a.Name, base64.StdEncoding.EncodeToString(a.VerifyKey), a.CallbackURL,
					a.TrustVerifiedEmail, apikeyTime(a.TokenIssuedAt, "never"), apikeyTime(a.RevokedAt, "-"))
			}
			return tw.Flush()
		},
	}
}

func drpAgentRevokeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an agent: its token and key are refused at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := apikeyDB(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			err = store.New(db).RevokeDRPAgent(cmd.Context(), args[0])
			if errors.Is(err, store.ErrNoAgent) {
				return fmt.Errorf("no registered DRP agent has this id (see `drp agent list`)")
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked DRP agent %s\n", args[0])
			return nil
		},
	}
}

// drpKeyCommand makes Lethe's signing key, or prints the verify key of the
// one configured: what agents check status callbacks with.
func drpKeyCommand() *cobra.Command {
	var generate bool
	cmd := &cobra.Command{
		Use:   "key [--generate]",
		Short: "Print the verify key of LETHE_DRP_SIGNING_KEY, or --generate a new signing key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if generate {
				seed := make([]byte, ed25519.SeedSize)
				if _, err := rand.Read(seed); err != nil {
					return err
				}
				pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
				fmt.Fprintln(cmd.ErrOrStderr(), "Put the signing key (stdout) in LETHE_DRP_SIGNING_KEY through your secret manager; give agents the verify key:")
				fmt.Fprintln(cmd.ErrOrStderr(), "verify_key:", drp.EncodeKey(pub))
				fmt.Fprintln(cmd.OutOrStdout(), base64.StdEncoding.EncodeToString(seed))
				return nil
			}
			cfg, err := config.FromEnv()
			if err != nil {
				return err
			}
			key, err := drp.ParseSigningKey(cfg.DRPSigningKey)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), drp.EncodeKey(key.Public().(ed25519.PublicKey)))
			return nil
		},
	}
	cmd.Flags().BoolVar(&generate, "generate", false, "make a new signing key")
	return cmd
}
