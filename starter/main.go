// Command starter is what starts work in Lethe:
//
//	go run ./starter dev      the whole product on one machine (embedded Temporal, UI, S3)
//	go run ./starter serve    the HTTP API against a Temporal cluster (production)
//	go run ./starter migrate  apply Lethe's database migrations
//	go run ./starter outbox   read the mail the dev stack wrote instead of sending
//	go run ./starter reconcile  after a restore of the application database, erase the erased again
//	go run ./starter datamap  check a data map against the application database, or draft one (no Temporal)
//	go run ./starter keys     rotate master and payload keys: add, rewrap, status, retire (no Temporal)
//	go run ./starter deploy   status|promote <build-id>: roll a new worker build out and drain the old one
//	go run ./starter incident declare|status|add-people|close  a personal-data breach, as /v1/incidents
//	go run ./starter drp agent add|list|revoke, drp key   Data Rights Protocol agents and Lethe's signing key
//
// Configuration comes from the environment (README.md, "Configuration").
// Build the production binary with `-tags nodev` to leave the dev stack (and
// the Temporal server it embeds) out.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := &cobra.Command{
		Use:           "starter",
		Short:         "Start Lethe's work: the API, the dev stack, migrations",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(devCommand(), serveCommand(), migrateCommand(), outboxCommand(), apikeyCommand(), auditCommand(), schedulesCommand(), reconcileCommand(), datamapCommand(), keysCommand(), incidentCommand(), deployCommand(), drpCommand())
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "lethe:", err)
		os.Exit(1)
	}
}
