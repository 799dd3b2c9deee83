package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/codec"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/wiring"
)

// keysActor is who the audit trail says rotated keys: an operator at the
// command line.
const keysActor = "cli"

// keyKind is one of the two key lists a rotation works on.
type keyKind struct {
	name   string // "master" or "payload"
	env    string // the variable that holds the list
	prefix string // of generated ids
	list   func(config.Config) string
}

func masterKind() keyKind {
	return keyKind{name: "master", env: "LETHE_MASTER_KEYS", prefix: person.MasterKeyPrefix,
		list: func(c config.Config) string { return c.MasterKeys }}
}

func payloadKind() keyKind {
	return keyKind{name: "payload", env: "LETHE_PAYLOAD_KEYS", prefix: codec.PayloadKeyPrefix,
		list: func(c config.Config) string { return c.PayloadKeys }}
}

// keys reads the kind's list from cfg (config.FromEnv has checked it
// parses); an empty variable is an empty list.
func (k keyKind) keys(cfg config.Config) ([]config.Key, error) {
	raw := strings.TrimSpace(k.list(cfg))
	if raw == "" {
		return nil, nil
	}
	keys, err := config.ParseKeys(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k.env, err)
	}
	return keys, nil
}

// keysCommand groups the key rotation commands.
func keysCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Rotate the master keys (per-person keys) and payload keys (Temporal payloads)",
		Long: "Rotate the keys Lethe seals data with (README.md, \"Rotating keys\").\n\n" +
			"Master keys (LETHE_MASTER_KEYS) wrap each person's data key in Lethe's database;\n" +
			"payload keys (LETHE_PAYLOAD_KEYS) encrypt every Temporal payload. In both lists the\n" +
			"first key is the active one (it seals what is new) and every key listed opens.\n\n" +
			"A master key rotation: add-master, set the printed value on every process, rewrap,\n" +
			"status, retire the old key. A payload key rotation: add-payload, set the printed value,\n" +
			"and retire the old key only once no Temporal history needs it.",
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(keysAddCommand(masterKind()), keysAddCommand(payloadKind()),
		keysRewrapCommand(), keysStatusCommand(), keysRetireCommand())
	return cmd
}

func keysAddCommand(kind keyKind) *cobra.Command {
	return &cobra.Command{
		Use:   "add-" + kind.name,
		Short: fmt.Sprintf("Generate a new %s key and print the new %s, the new key first", kind.name, kind.env),
		Long: fmt.Sprintf("Generate a new random %s key and print the value to set %s to: the new key\n"+
			"first (the active one), then every key listed now (kept, to open what they sealed).\n"+
			"The value goes alone to stdout, so that it can be piped into a secret manager; it holds\n"+
			"key material. Nothing is changed until the value is set on every process.", kind.name, kind.env),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.FromEnv()
			if err != nil {
				return err
			}
			return runKeysAdd(cfg, kind, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
}

// runKeysAdd prints the kind's list with a new key first.
func runKeysAdd(cfg config.Config, kind keyKind, out, errOut io.Writer) error {
	current, err := kind.keys(cfg)
	if err != nil {
		return err
	}
	var k config.Key
	for attempt := 0; ; attempt++ {
		if k, err = config.GenerateKey(kind.prefix); err != nil {
			return err
		}
		if !slices.ContainsFunc(current, func(c config.Key) bool { return c.ID == k.ID }) {
			break
		}
		if attempt == 3 {
			return fmt.Errorf("could not make a %s key id that %s does not list yet", kind.name, kind.env)
		}
	}
	value := config.FormatKeys(append([]config.Key{k}, current...))
	if _, err := config.ParseKeys(value); err != nil { // what we print, the configuration reads
		return fmt.Errorf("the new %s: %w", kind.env, err)
	}
	fmt.Fprintln(out, value)
	old := "none"
	if len(current) > 0 {
		old = keyIDs(current)
	}
	fmt.Fprintf(errOut, "New %s key %s, first in the value printed on stdout (keys kept after it: %s).\n", kind.name, k.ID, old)
	fmt.Fprintf(errOut, "Set %s to it on every Lethe process (worker, API, these commands) and restart them.\n", kind.env)
	if kind.name == "master" {
		fmt.Fprintf(errOut, "Then: `starter keys rewrap` moves every per-person key to %s; `starter keys status` shows what is left\n"+
			"under each key; `starter keys retire ID` drops an old key once nothing is wrapped under it.\n", k.ID)
	} else {
		fmt.Fprintf(errOut, "New payloads are then encrypted with %s; the keys after it still decrypt histories written before.\n"+
			"Retire an old key only once no Temporal history needs it (see `starter keys retire --help`).\n", k.ID)
	}
	return nil
}

func keysRewrapCommand() *cobra.Command {
	var pageSize int
	cmd := &cobra.Command{
		Use:   "rewrap",
		Short: "Re-wrap every per-person key under the active (first) master key, page by page",
		Long: "Re-wrap every per-person key that is wrapped under another master key than the active one\n" +
			"(the first in LETHE_MASTER_KEYS), page by page, each page in one transaction.\n\n" +
			"Stopped (Ctrl-C, a failure), it keeps every page it committed; run it again and it\n" +
			"continues with the keys still under an old master key, never wrapping a key twice.\n" +
			"Each run adds one entry to the audit trail (keys.rewrapped: counts and key ids only).\n" +
			"Set the new LETHE_MASTER_KEYS on every process first: a process still on the old value\n" +
			"keeps wrapping new keys under the old key (run rewrap again after restarting it).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if pageSize < 1 || pageSize > 10_000 {
				return fmt.Errorf("--page-size: want 1 to 10000, got %d", pageSize)
			}
			cfg, db, err := keysDB(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			return runKeysRewrap(cmd.Context(), cfg, db, pageSize, cmd.OutOrStdout())
		},
	}
	cmd.Flags().IntVar(&pageSize, "page-size", 500, "per-person keys per page (one transaction each)")
	return cmd
}

// runKeysRewrap re-wraps every per-person key under the active master key,
// shows progress, and audits the run (also a stopped one).
func runKeysRewrap(ctx context.Context, cfg config.Config, db *pgxpool.Pool, pageSize int, out io.Writer) error {
	masters, err := masterKind().keys(cfg)
	if err != nil {
		return err
	}
	kr, err := wiring.Keyring(cfg, db)
	if err != nil {
		return err
	}
	active := kr.ActiveMasterKey()
	before, err := person.CountKeys(ctx, db)
	if err != nil {
		return err
	}
	if missing := unconfigured(before, masters); len(missing) > 0 {
		n := 0
		for _, id := range missing {
			n += before.Wrapped[id]
		}
		return fmt.Errorf("%d per-person keys are wrapped under master key %s, which LETHE_MASTER_KEYS does not list, "+
			"so they cannot be opened nor re-wrapped: add %s back after the active key %s (its material), then run rewrap again",
			n, strings.Join(missing, ", "), strings.Join(missing, ", "), active)
	}
	todo := before.Live() - before.Wrapped[active]
	fmt.Fprintf(out, "re-wrapping %d per-person keys under master key %s (active), %d per page\n", todo, active, pageSize)
	p, runErr := kr.Rewrap(ctx, person.RewrapOptions{PageSize: pageSize, Progress: func(p person.RewrapProgress) {
		fmt.Fprintf(out, "page %d: %d of %d re-wrapped\n", p.Pages, p.Rewrapped, todo)
	}})

	// Count and audit what this run did, also when it was stopped: the
	// pages it committed stay done.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	after, err := person.CountKeys(actx, db)
	if err != nil {
		return errors.Join(runErr, err)
	}
	remaining := after.Live() - after.Wrapped[active]
	_, auditErr := audit.Append(actx, db, audit.Entry{Actor: keysActor, Action: "keys.rewrapped", Detail: map[string]any{
		"master_key_id": active, "rewrapped": p.Rewrapped, "pages": p.Pages, "page_size": pageSize,
		"complete": runErr == nil && remaining == 0, "remaining": remaining,
		"before": before.Wrapped, "after": after.Wrapped,
	}})
	if auditErr != nil {
		auditErr = fmt.Errorf("the audit entry of this rewrap was not written: %w", auditErr)
	}
	if runErr != nil {
		return errors.Join(fmt.Errorf("rewrap stopped after %d per-person keys in %d pages, all committed; %d still to re-wrap: "+
			"run `starter keys rewrap` again to continue: %w", p.Rewrapped, p.Pages, remaining, runErr), auditErr)
	}
	if auditErr != nil {
		return auditErr
	}
	fmt.Fprintf(out, "re-wrapped %d per-person keys in %d pages\n", p.Rewrapped, p.Pages)
	if remaining > 0 {
		// Made meanwhile by a process still on the old LETHE_MASTER_KEYS.
		fmt.Fprintf(out, "%d per-person keys are under another master key again, made meanwhile by a process that still has the old "+
			"LETHE_MASTER_KEYS: restart every process with %s first, then run rewrap again\n", remaining, active)
		return nil
	}
	fmt.Fprintf(out, "every live per-person key is wrapped under %s; `starter keys retire ID` drops an old master key\n", active)
	return nil
}

func keysStatusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "How many per-person keys each master key wraps; which payload keys are configured",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, db, err := keysDB(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			return runKeysStatus(cmd.Context(), cfg, db, cmd.OutOrStdout())
		},
	}
}

func runKeysStatus(ctx context.Context, cfg config.Config, db *pgxpool.Pool, out io.Writer) error {
	masters, err := masterKind().keys(cfg)
	if err != nil {
		return err
	}
	payloads, err := payloadKind().keys(cfg)
	if err != nil {
		return err
	}
	counts, err := person.CountKeys(ctx, db)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Master keys (LETHE_MASTER_KEYS): %s\n", describeKeys(masters, "wraps new per-person keys"))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  MASTER KEY\tPER-PERSON KEYS\tNOTE")
	for i, m := range masters {
		n := counts.Wrapped[m.ID]
		var note string
		switch {
		case i == 0:
			note = "active"
		case n > 0:
			note = fmt.Sprintf("run `starter keys rewrap` to move them to %s", masters[0].ID)
		default:
			note = fmt.Sprintf("nothing wrapped under it: `starter keys retire %s` drops it", m.ID)
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", m.ID, n, note)
	}
	for _, id := range unconfigured(counts, masters) {
		fmt.Fprintf(tw, "  %s\t%d\tNOT CONFIGURED: these keys cannot be opened; add %s back to LETHE_MASTER_KEYS, after the active key\n",
			id, counts.Wrapped[id], id)
	}
	fmt.Fprintf(tw, "  (destroyed)\t%d\tshredded: no master key opens them\n", counts.Destroyed)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "Payload keys (LETHE_PAYLOAD_KEYS): %s\n", describeKeys(payloads, "encrypts new payloads"))
	if len(payloads) > 1 {
		fmt.Fprintln(out, "  Which Temporal histories still need an old payload key is not recorded in Lethe's database: see `starter keys retire --help`.")
	}
	return nil
}

func keysRetireCommand() *cobra.Command {
	var (
		force bool
		kind  string
	)
	cmd := &cobra.Command{
		Use:   "retire ID",
		Short: "Check that a key can go and print its list without it",
		Long: "Check that the key ID can be dropped and print the value to set its list to without it\n" +
			"(stdout, key material); the check is recorded in the audit trail (keys.retired).\n\n" +
			"A master key goes only when no per-person key is wrapped under it: run `starter keys rewrap`\n" +
			"first. Database backups taken before the rewrap need it to open their per-person keys;\n" +
			"without it, everything those backups hold sealed is unreadable (also what was shredded since).\n\n" +
			"A payload key: every Temporal payload encrypted with it (inputs, results, signals, queries,\n" +
			"failures) is unreadable once it is gone, so workflows still running that carry such payloads\n" +
			"fail, and closed histories still retained can no longer be decoded. Lethe cannot tell which\n" +
			"histories still hold them, so it refuses unless --force: retire a payload key only once\n" +
			"every workflow that was open while it was active has closed and the namespace's retention\n" +
			"period has passed since.\n\n" +
			"The active (first) key and a list's only key are never retired: add a new key first.",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return errors.New("name the one key to retire: starter keys retire ID (ids: `starter keys status`)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.FromEnv()
			if err != nil {
				return err
			}
			return runKeysRetire(cmd.Context(), cfg, args[0], kind, force, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "retire a payload key although Lethe cannot check that no Temporal history needs it")
	cmd.Flags().StringVar(&kind, "kind", "", "master or payload: needed only when both lists have a key with this id")
	return cmd
}

// runKeysRetire checks that the key id of its kind can go and prints the
// kind's list without it.
func runKeysRetire(ctx context.Context, cfg config.Config, id, kindName string, force bool, out, errOut io.Writer) error {
	if strings.ContainsAny(id, ":,") {
		// Never echo it: it is probably key material.
		return errors.New("pass the key's id (the part before ':'), not the key itself")
	}
	id = strings.TrimSpace(id)
	if id == "" {
		return errors.New("name the key to retire by its id (ids: `starter keys status`)")
	}
	masters, err := masterKind().keys(cfg)
	if err != nil {
		return err
	}
	payloads, err := payloadKind().keys(cfg)
	if err != nil {
		return err
	}
	inMasters, inPayloads := keyIndex(masters, id) >= 0, keyIndex(payloads, id) >= 0
	var kind keyKind
	var keys []config.Key
	switch kindName {
	case "":
		switch {
		case inMasters && inPayloads:
			return fmt.Errorf("%q is the id of a master key and of a payload key: say which with --kind master or --kind payload", id)
		case inMasters:
			kind, keys = masterKind(), masters
		case inPayloads:
			kind, keys = payloadKind(), payloads
		default:
			return fmt.Errorf("no master or payload key has id %q: master keys %s, payload keys %s", id, keyIDsOrNone(masters), keyIDsOrNone(payloads))
		}
	case "master":
		if !inMasters {
			return fmt.Errorf("LETHE_MASTER_KEYS has no key %q: it lists %s", id, keyIDsOrNone(masters))
		}
		kind, keys = masterKind(), masters
	case "payload":
		if !inPayloads {
			return fmt.Errorf("LETHE_PAYLOAD_KEYS has no key %q: it lists %s", id, keyIDsOrNone(payloads))
		}
		kind, keys = payloadKind(), payloads
	default:
		return fmt.Errorf("--kind: want master or payload, got %q", kindName)
	}
	switch {
	case len(keys) == 1:
		return fmt.Errorf("%s is the only %s key: add a new one first (`starter keys add-%s`) and set it on every process", id, kind.name, kind.name)
	case keys[0].ID == id:
		return fmt.Errorf("%s is the active %s key (first in %s): it seals what is new. Add a new one first (`starter keys add-%s`) and set it on every process",
			id, kind.name, kind.env, kind.name)
	}

	if kind.name == "master" && force {
		return errors.New("--force is for payload keys only: a master key goes only when no per-person key is wrapped under it")
	}
	if kind.name == "payload" && !force {
		return fmt.Errorf("retiring payload key %s makes every Temporal payload encrypted with it unreadable: "+
			"workflows still running that carry such payloads fail, and retained histories can no longer be decoded. "+
			"Lethe cannot tell which histories still hold them. Once every workflow that was open while %s was active has closed "+
			"and the namespace's retention period has passed since, run again with --force", id, id)
	}

	db, err := store.Open(ctx, cfg.DatabaseURL, true)
	if err != nil {
		return err
	}
	defer db.Close()
	detail := map[string]any{"kind": kind.name, "key_id": id}
	if kind.name == "master" {
		counts, err := person.CountKeys(ctx, db)
		if err != nil {
			return err
		}
		if n := counts.Wrapped[id]; n > 0 {
			return fmt.Errorf("%d per-person keys are still wrapped under master key %s: without it they could not be opened. "+
				"Run `starter keys rewrap` (with %s first in LETHE_MASTER_KEYS on every process), check `starter keys status`, then retire %s again",
				n, id, keys[0].ID, id)
		}
		detail["wrapped_under_it"] = 0
	} else {
		detail["forced"] = true
	}
	if _, err := audit.Append(ctx, db, audit.Entry{Actor: keysActor, Action: "keys.retired", Detail: detail}); err != nil {
		return fmt.Errorf("retire %s key %s: %w", kind.name, id, err)
	}
	rest := slices.DeleteFunc(slices.Clone(keys), func(k config.Key) bool { return k.ID == id })
	fmt.Fprintln(out, config.FormatKeys(rest))
	fmt.Fprintf(errOut, "%s key %s can go: set %s to the value printed on stdout on every Lethe process and restart them, "+
		"then destroy %s's material wherever it is kept.\n", capitalized(kind.name), id, kind.env, id)
	if kind.name == "master" {
		fmt.Fprintf(errOut, "Database backups taken before the rewrap hold per-person keys wrapped under %s: without %s they do not open "+
			"(also those of people erased since, who are then shredded in those backups too).\n", id, id)
	}
	return nil
}

// keysDB reads the configuration and opens Lethe's database.
func keysDB(ctx context.Context) (config.Config, *pgxpool.Pool, error) {
	cfg, err := config.FromEnv()
	if err != nil {
		return cfg, nil, err
	}
	db, err := store.Open(ctx, cfg.DatabaseURL, true)
	return cfg, db, err
}

// unconfigured are the master key ids per-person keys are wrapped under
// that keys does not list, sorted.
func unconfigured(c person.KeyCounts, keys []config.Key) []string {
	var ids []string
	for id, n := range c.Wrapped {
		if n > 0 && keyIndex(keys, id) < 0 {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

func keyIndex(keys []config.Key, id string) int {
	return slices.IndexFunc(keys, func(k config.Key) bool { return k.ID == id })
}

// keyIDs lists the keys' ids, never their material.
func keyIDs(keys []config.Key) string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	return strings.Join(ids, ", ")
}

func keyIDsOrNone(keys []config.Key) string {
	if len(keys) == 0 {
		return "none"
	}
	return keyIDs(keys)
}

// describeKeys names the keys of a list and what each does.
func describeKeys(keys []config.Key, active string) string {
	if len(keys) == 0 {
		return "none configured"
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		if i == 0 {
			parts[i] = k.ID + " (active: " + active + ")"
		} else {
			parts[i] = k.ID + " (opens only)"
		}
	}
	return strings.Join(parts, ", ")
}

func capitalized(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
