package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/lethe-privacy/lethe/internal/datamap"
)

// datamapCommand checks a data map against the application database and
// drafts one from its schema. It needs neither Temporal nor Lethe's own
// database: only the application database (read in a read-only
// transaction, its catalog only) and the map.
func datamapCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "datamap",
		Short: "Check a data map against the application database, or draft one from its schema",
		Long: "Check a data map against the application database, or draft one from its schema.\n\n" +
			"Neither needs Temporal or Lethe's database: only the application database\n" +
			"(--app-database, else LETHE_APP_DATABASE_URL, else LETHE_DATABASE_URL) and the map\n" +
			"(--map, else LETHE_DATA_MAP). Both read the schema only, never a row.",
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(datamapCheckCommand(), datamapDiscoverCommand())
	return cmd
}

func datamapCheckCommand() *cobra.Command {
	var mapPath, dbURL string
	cmd := &cobra.Command{
		Use:   "check [--map FILE] [--app-database URL]",
		Short: "Print every problem of a data map at once: parse, live schema, coverage",
		Long: "Parse the data map, check it against the live application database and list the tables\n" +
			"it leaves out, printing every problem on its own line: first what does not parse, then what\n" +
			"does not fit the schema, then coverage (tables with a foreign key into a mapped table that\n" +
			"are neither in tables nor in ignore). Exits 1 when there is a problem.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := datamapFirstSet(mapPath, os.Getenv("LETHE_DATA_MAP"))
			if path == "" {
				return errors.New("no data map: pass --map FILE or set LETHE_DATA_MAP")
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("data map: %w", err)
			}
			return datamapAppDatabase(cmd.Context(), dbURL, func(tx pgx.Tx, database string) error {
				r, err := datamap.CheckMap(cmd.Context(), tx, b)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				for _, group := range []struct {
					name  string
					lines []string
				}{{"parse", r.Parse}, {"schema", r.Schema}, {"coverage", r.Coverage}} {
					for _, l := range group.lines {
						fmt.Fprintf(out, "%-9s %s\n", group.name+":", l)
					}
				}
				if n := r.Problems(); n > 0 {
					return fmt.Errorf("%s: %d %s (%d parse, %d schema, %d coverage): fix them and check again",
						path, n, datamapPlural(n, "problem", "problems"), len(r.Parse), len(r.Schema), len(r.Coverage))
				}
				identity := "no identity section"
				if r.Map.Identity != nil {
					identity = "identity " + r.Map.Identity.Table
				}
				fmt.Fprintf(out, "%s: no problems: %s, %d %s mapped, %d ignored; checked against database %s (%d tables)\n",
					path, identity, len(r.Map.Tables), datamapPlural(len(r.Map.Tables), "table", "tables"), len(r.Map.Ignore), database, r.Tables)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&mapPath, "map", "", "the data map file (default: LETHE_DATA_MAP)")
	cmd.Flags().StringVar(&dbURL, "app-database", "", "the application database URL (default: LETHE_APP_DATABASE_URL, else LETHE_DATABASE_URL)")
	return cmd
}

func datamapDiscoverCommand() *cobra.Command {
	var mapPath, dbURL, identity, write string
	cmd := &cobra.Command{
		Use:   "discover [--map FILE] [--app-database URL] [--identity schema.table] [--write FILE]",
		Short: "Find where a person's data lives from the live schema; draft a map, or say what a map leaves out",
		Long: "Read the live schema of the application database (names, types and keys; never a row) and\n" +
			"find the tables holding a person: those whose foreign keys lead to the identity table, directly\n" +
			"or through other tables, and those with an email column and no such key (matched by email);\n" +
			"and the columns that look personal. With a map (--map or LETHE_DATA_MAP), report every table\n" +
			"and column it does not cover. Without one, --write FILE writes a draft map to review.\n\n" +
			"The identity table is the map's, else --identity, else a guess: a table with an email column\n" +
			"whose primary key the most foreign keys reference.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := mapPath
			switch {
			case write != "" && mapPath != "":
				return errors.New("--write drafts a map for a schema that has none; with --map, discover reports what that map leaves out: pass one of them")
			case write == "" && path == "":
				path = os.Getenv("LETHE_DATA_MAP")
			}
			var m *datamap.Map
			if path != "" {
				var err error
				if m, err = datamap.Load(path); err != nil {
					return fmt.Errorf("%w\n(`datamap check` lists every problem; `datamap discover` without a map drafts one)", err)
				}
				if identity != "" && (m.Identity != nil || m.Accounts != nil) {
					return fmt.Errorf("--identity: the map %s names its identity table already", path)
				}
			}
			if write != "" {
				if _, err := os.Stat(write); err == nil {
					return fmt.Errorf("--write %s: the file exists; choose another name or remove it", write)
				}
			}
			return datamapAppDatabase(cmd.Context(), dbURL, func(tx pgx.Tx, database string) error {
				d, err := datamap.Discover(cmd.Context(), tx, datamap.DiscoverOptions{Map: m, Identity: identity})
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if err := d.WriteReport(out); err != nil {
					return err
				}
				if write == "" {
					return nil
				}
				return datamapWriteDraft(out, write, d.Draft("database "+database))
			})
		},
	}
	cmd.Flags().StringVar(&mapPath, "map", "", "the data map to compare with (default: LETHE_DATA_MAP, unless --write)")
	cmd.Flags().StringVar(&dbURL, "app-database", "", "the application database URL (default: LETHE_APP_DATABASE_URL, else LETHE_DATABASE_URL)")
	cmd.Flags().StringVar(&identity, "identity", "", "schema.table people are found in, when there is no map (default: a guess)")
	cmd.Flags().StringVar(&write, "write", "", "write a draft data map to this file (never overwritten)")
	return cmd
}

// undecided is how a draft leaves a table that looks personal but that no
// foreign key leads to a person: check refuses it until someone decides.
const undecided = `reason: ""`

// datamapWriteDraft writes a draft map to a new file, after checking it
// parses once its undecided tables are given a reason.
func datamapWriteDraft(out io.Writer, path string, draft []byte) error {
	m, err := datamap.Parse([]byte(strings.ReplaceAll(string(draft), undecided, `reason: "undecided"`)))
	if err != nil { // a bug in the draft: say so rather than write it
		return fmt.Errorf("the draft does not parse (please report it): %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("--write: %w", err)
	}
	if _, err := f.Write(draft); err != nil {
		f.Close()
		return fmt.Errorf("--write: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--write: %w", err)
	}
	fmt.Fprintf(out, "\nWrote a draft data map to %s: %d tables, %d ignored, %d lines to review (# review:). Then: starter datamap check --map %s\n",
		path, len(m.Tables), len(m.Ignore), strings.Count(string(draft), " # review:"), path)
	if n := strings.Count(string(draft), undecided); n > 0 {
		fmt.Fprintf(out, "%d tables under ignore have no reason yet: check refuses the map until each is mapped or given its reason.\n", n)
	}
	return nil
}

// datamapAppDatabase connects to the application database (the flag, else
// LETHE_APP_DATABASE_URL, else LETHE_DATABASE_URL) and runs f in a
// read-only transaction, with the database's name.
func datamapAppDatabase(ctx context.Context, flag string, f func(tx pgx.Tx, database string) error) error {
	url := datamapFirstSet(flag, os.Getenv("LETHE_APP_DATABASE_URL"), os.Getenv("LETHE_DATABASE_URL"))
	if url == "" {
		return errors.New("no application database: pass --app-database URL or set LETHE_APP_DATABASE_URL")
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, url)
	if err != nil {
		return fmt.Errorf("application database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("application database: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read only: nothing to keep
	var database string
	if err := tx.QueryRow(ctx, `SELECT current_database()`).Scan(&database); err != nil {
		return fmt.Errorf("application database: %w", err)
	}
	return f(tx, database)
}

func datamapFirstSet(values ...string) string {
	for _, v := range values {
		if strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func datamapPlural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
