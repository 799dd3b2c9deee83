//go:build !nodev

package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/lethe-privacy/lethe/internal/apikeys"
	"github.com/lethe-privacy/lethe/internal/codec"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/devstack"
	"github.com/lethe-privacy/lethe/internal/metrics"
	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/s3local"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/temporalclient"
	"github.com/lethe-privacy/lethe/internal/wiring"
	"github.com/lethe-privacy/lethe/worker/registry"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// devOptions are the dev stack's own settings (flags, with environment defaults).
type devOptions struct {
	Dir          string // state: Temporal's SQLite file, S3 objects, outbox, dev secrets
	TemporalPort int
	UIPort       int
	S3Addr       string
	SeedAccounts int  // demo accounts to seed; 0 seeds none
	Sandboxes    bool // the demo's processors run against local sandboxes (else the demo has none)
	// SandboxRateLimit, when above zero, is every sandboxed processor's
	// rate_limit instead of its kind's default (benchmarks of the engine).
	SandboxRateLimit float64
	// TemporalPostgres, when set, puts Temporal on PostgreSQL instead of
	// Dir's SQLite file (LETHE_DEV_TEMPORAL_DB=postgres).
	TemporalPostgres *devstack.Postgres
	// NoWorker starts everything but the worker, whose processes run
	// apart (benchmarks measure a worker process on its own).
	NoWorker bool
	Out      io.Writer
}

func devCommand() *cobra.Command {
	o := devOptions{}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole product on this machine: Temporal, its UI, S3, worker and API",
		Long: `Runs in one process: a real Temporal server (state in .lethe/temporal.db), the
Temporal Web UI on :8233, an S3-protocol server with versioned buckets (objects
in .lethe/objects.db), the worker and the HTTP API on :8080, against the
PostgreSQL server of LETHE_DATABASE_URL (default: the local one).

Without LETHE_DATA_MAP it runs the demo: the demo database lethe_demo beside
Lethe's is created and seeded (--seed-accounts), and the demo's processors
(Stripe, Mailchimp, SendGrid, a CRM webhook) run against local sandboxes
(--sandboxes), so every workflow can be tried at once.

To try your own application instead, set LETHE_APP_DATABASE_URL to its database
and LETHE_DATA_MAP to the path of its data map (YAML, see README.md "The data
map"): the map is checked against that database at start, and an unknown table
or column stops it with its name. Nothing is created or seeded in that
database. With LETHE_S3_ENDPOINT (and the other LETHE_S3_* settings) it uses
that S3 and starts none of its own.

With LETHE_DEV_TEMPORAL_DB=postgres Temporal keeps its state on PostgreSQL, as in
production: the databases of LETHE_DEV_TEMPORAL_POSTGRES_URL (default
` + devstack.DefaultPostgresURL + `, visibility in <name>_visibility),
created when missing, with LETHE_DEV_TEMPORAL_SHARDS history shards (default 4,
fixed at the first start).

Ctrl-C stops it all; the next start finds every workflow and object where it was.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.FromEnv()
			if err != nil {
				return err
			}
			o.Out = cmd.OutOrStdout()
			if o.TemporalPostgres, err = devTemporalStore(os.Getenv); err != nil {
				return err
			}
			stack, err := startDev(cmd.Context(), cfg, o)
			if err != nil {
				return err
			}
			stack.printWelcome(o.Out)
			<-cmd.Context().Done()
			fmt.Fprintln(o.Out, "\nstopping…")
			stack.Stop()
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Dir, "dir", envOr("LETHE_DEV_DIR", ".lethe"), "directory for the dev stack's state (LETHE_DEV_DIR)")
	cmd.Flags().IntVar(&o.TemporalPort, "temporal-port", 7233, "Temporal frontend port")
	cmd.Flags().IntVar(&o.UIPort, "ui-port", 8233, "Temporal Web UI port")
	cmd.Flags().StringVar(&o.S3Addr, "s3-addr", envOr("LETHE_DEV_S3_ADDR", "127.0.0.1:8234"), "S3 server address (LETHE_DEV_S3_ADDR)")
	cmd.Flags().IntVar(&o.SeedAccounts, "seed-accounts", 20, "demo accounts to seed (0: none; never with LETHE_DATA_MAP)")
	sandboxes, sandboxesErr := strconv.ParseBool(envOr("LETHE_DEV_SANDBOXES", "true"))
	cmd.Flags().BoolVar(&o.Sandboxes, "sandboxes", sandboxes || sandboxesErr != nil, "run the demo's processors against local sandboxes; false: the demo without processors (LETHE_DEV_SANDBOXES)")
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error {
		if sandboxesErr != nil && !cmd.Flags().Changed("sandboxes") {
			return errors.New("LETHE_DEV_SANDBOXES: want true or false")
		}
		return nil
	}
	return cmd
}

// devTemporalStore reads where `starter dev` keeps Temporal's state:
// nil for the SQLite file (LETHE_DEV_TEMPORAL_DB unset or sqlite), else
// PostgreSQL (LETHE_DEV_TEMPORAL_DB=postgres, LETHE_DEV_TEMPORAL_POSTGRES_URL,
// LETHE_DEV_TEMPORAL_SHARDS).
func devTemporalStore(getenv func(string) string) (*devstack.Postgres, error) {
	switch db := getenv("LETHE_DEV_TEMPORAL_DB"); db {
	case "", "sqlite":
		return nil, nil
	case "postgres":
	default:
		return nil, fmt.Errorf("LETHE_DEV_TEMPORAL_DB: want sqlite or postgres, not %q", db)
	}
	shards := 4
	if v := getenv("LETHE_DEV_TEMPORAL_SHARDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("LETHE_DEV_TEMPORAL_SHARDS: want a positive number, not %q", v)
		}
		shards = n
	}
	url := getenv("LETHE_DEV_TEMPORAL_POSTGRES_URL")
	if url == "" {
		url = devstack.DefaultPostgresURL
	}
	p, err := devstack.ParsePostgresURL(url, shards)
	if err != nil {
		return nil, fmt.Errorf("LETHE_DEV_TEMPORAL_POSTGRES_URL: %w", err)
	}
	return &p, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// devStack is everything `starter dev` runs.
type devStack struct {
	cfg      config.Config
	app      *pgxpool.Pool
	lethe    *pgxpool.Pool
	topts    temporalclient.Options
	temporal *devstack.TemporalServer
	ui       *devstack.UI
	s3       *s3local.Server // nil with LETHE_S3_ENDPOINT
	apiURL   string
	dir      string
	dataMap  *datamap.Map
	// ownApp: LETHE_DATA_MAP names the company's own application (no demo).
	ownApp bool
	// sandboxes stand in for the demo's processors (nil without).
	sandboxes *devstack.Sandboxes
	// missingBuckets are buckets the map names that an external S3 lacks.
	missingBuckets []string
	// firstDemo is the first demo account not erased (nil: none).
	firstDemo *demo.Customer
	// API keys the dev stack made for the person trying it (kept in .lethe/apikeys.json).
	backendKey, operatorKey string
	// The worker's and the API's metrics, each on its own endpoint as in
	// production (nil: off).
	workerMetrics, apiMetrics *metrics.Process
	stops                     []func()
}

// startDev brings the stack up; on error, whatever started is stopped again.
func startDev(ctx context.Context, cfg config.Config, o devOptions) (_ *devStack, err error) {
	began := time.Now()
	st := &devStack{}
	defer func() {
		if err != nil {
			st.Stop()
		}
	}()
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("dev directory %s: %w", o.Dir, err)
	}
	if err := devSecrets(filepath.Join(o.Dir, "secrets.json"), &cfg); err != nil {
		return nil, err
	}
	if cfg.OutboxDir == ".lethe/outbox" {
		cfg.OutboxDir = filepath.Join(o.Dir, "outbox")
	}
	log := wiring.Logger(cfg)

	if o.SeedAccounts < 0 {
		return nil, errors.New("--seed-accounts: want 0 or more")
	}
	st.dir, st.ownApp = o.Dir, cfg.DataMap != ""

	// PostgreSQL: Lethe's database, and the application's (the demo's,
	// created and seeded here; or the company's own, only read).
	lethe, err := store.Open(ctx, cfg.DatabaseURL, true)
	if err != nil {
		return nil, err
	}
	st.stops = append(st.stops, lethe.Close)
	st.lethe = lethe
	if st.ownApp {
		if cfg.AppDatabaseURL == "" {
			return nil, errors.New("LETHE_APP_DATABASE_URL: required with LETHE_DATA_MAP (the application database the map covers; dev creates and seeds nothing in it)")
		}
	} else {
		if cfg.AppDatabaseURL == "" {
			if cfg.AppDatabaseURL, err = siblingDatabase(cfg.DatabaseURL, "lethe_demo"); err != nil {
				return nil, err
			}
		}
		if err := store.EnsureDatabase(ctx, cfg.AppDatabaseURL); err != nil {
			return nil, err
		}
	}
	app, err := store.Connect(ctx, cfg.AppDatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("application database (LETHE_APP_DATABASE_URL): %w", err)
	}
	st.stops = append(st.stops, app.Close)
	st.app = app
	var dataMap *datamap.Map
	if st.ownApp {
		// Checked against the live database before anything else starts.
		if dataMap, err = wiring.DataMap(ctx, cfg, app, log); err != nil {
			return nil, err
		}
	} else if err := demo.CreateSchema(ctx, app); err != nil {
		return nil, err
	}

	// S3: the one of LETHE_S3_ENDPOINT, else a server of dev's own on a
	// file, versioned buckets included, so objects survive a restart.
	if cfg.S3Endpoint == "" {
		file := filepath.Join(o.Dir, "objects.db")
		if imported, err := s3local.ImportBoltFile(filepath.Join(o.Dir, "s3.db"), file); err != nil {
			return nil, err
		} else if imported {
			log.Info("dev S3: imported the objects of an earlier dev stack", "from", filepath.Join(o.Dir, "s3.db"), "into", file)
		}
		st.s3, err = s3local.StartFile(o.S3Addr, file)
		if err != nil {
			return nil, fmt.Errorf("%w (another `starter dev` running? choose another with --s3-addr)", err)
		}
		st.stops = append(st.stops, func() { _ = st.s3.Close() })
		cfg.S3Endpoint, cfg.S3UsePathStyle, cfg.S3Region = st.s3.URL, true, s3local.Region
		cfg.S3AccessKeyID, cfg.S3SecretAccessKey = s3local.AccessKeyID, s3local.SecretAccessKey
	}
	objects, err := wiring.Objects(ctx, cfg)
	if err != nil {
		return nil, err
	}
	buckets := []string{cfg.S3ExportBucket, demo.Bucket, demo.BackupBucket}
	if st.ownApp {
		buckets = append([]string{cfg.S3ExportBucket}, mapBuckets(dataMap)...)
	}
	if st.s3 != nil { // dev's own S3: the buckets are made when missing
		for _, b := range buckets {
			if err := objectstore.EnsureBucket(ctx, objects, b); err != nil {
				return nil, err
			}
		}
	} else if st.missingBuckets, err = missingBuckets(ctx, objects, buckets); err != nil {
		return nil, err
	}
	for _, b := range st.missingBuckets {
		log.Warn("dev: a bucket is missing at LETHE_S3_ENDPOINT; dev creates buckets only in its own S3", "bucket", b)
	}

	if !st.ownApp {
		if o.SeedAccounts > 0 {
			if err := demo.Seed(ctx, app, objects, demo.SeedOptions{Accounts: o.SeedAccounts, StripeCustomers: true}); err != nil {
				return nil, err
			}
		}
		if dataMap, err = st.demoDataMap(ctx, cfg, o, log); err != nil {
			return nil, err
		}
		customers, err := demo.Customers(ctx, app)
		if err != nil {
			return nil, err
		}
		if len(customers) > 0 {
			st.firstDemo = &customers[0]
		}
	}
	st.dataMap = dataMap

	// Metrics: the worker's and the API's, each on its own endpoint as in
	// production (LETHE_METRICS_ADDR, LETHE_API_METRICS_ADDR).
	if err := st.startMetrics(cfg, log); err != nil {
		return nil, err
	}

	// Temporal, on a SQLite file so workflows survive a restart, or on
	// PostgreSQL as in production.
	st.temporal, err = devstack.StartTemporal(devstack.TemporalOptions{
		DatabaseFile:     filepath.Join(o.Dir, "temporal.db"),
		Postgres:         o.TemporalPostgres,
		LogFile:          filepath.Join(o.Dir, "temporal.db.log"),
		FrontendPort:     o.TemporalPort,
		Namespace:        cfg.TemporalNamespace,
		SearchAttributes: contract.SearchAttributes(),
	})
	if err != nil {
		return nil, err
	}
	st.stops = append(st.stops, st.temporal.Stop)
	cfg.TemporalAddress = st.temporal.Address
	topts, err := wiring.TemporalOptions(cfg, log)
	if err != nil {
		return nil, err
	}
	st.topts = topts
	// The worker's client reports the SDK's metrics to the worker's
	// endpoint, the API's client (over the same connection) to the API's.
	workerOpts, apiOpts := topts, topts
	workerOpts.MetricsHandler, apiOpts.MetricsHandler = st.workerMetrics.TemporalHandler(), st.apiMetrics.TemporalHandler()
	tc, err := temporalclient.Dial(ctx, workerOpts)
	if err != nil {
		return nil, err
	}
	st.stops = append(st.stops, tc.Close)
	apiClient, err := temporalclient.FromExisting(ctx, tc, apiOpts)
	if err != nil {
		return nil, err
	}
	st.stops = append(st.stops, apiClient.Close)
	if err := temporalclient.EnsureSearchAttributes(ctx, tc, cfg.TemporalNamespace, contract.SearchAttributes()); err != nil {
		return nil, err
	}

	// The worker: the very registration the production worker uses. The
	// sandboxed processors take the sandboxes' credentials.
	deps, err := devDeps(ctx, cfg, lethe, app, objects, dataMap, st.sandboxes, log)
	if err != nil {
		return nil, err
	}
	recorder, err := st.workerMetrics.Worker()
	if err != nil {
		return nil, err
	}
	deps = deps.WithMetrics(recorder)
	if err := registry.ApplySchedules(ctx, tc, cfg); err != nil {
		return nil, err
	}
	if !o.NoWorker {
		w := registry.NewWorker(tc, cfg.TemporalTaskQueue, registry.WorkerOptions(), deps)
		if err := w.Start(); err != nil {
			return nil, fmt.Errorf("worker: %w", err)
		}
		st.stops = append(st.stops, w.Stop)
	}

	// The API, with the codec server the UI uses to show decrypted payloads.
	// It listens on loopback and the dev UI sends no credential, so in dev it
	// takes none; production's codec route requires LETHE_CODEC_TOKEN.
	uiOrigin := fmt.Sprintf("http://localhost:%d", o.UIPort)
	codecHandler, err := codecServer(cfg, codec.HandlerOptions{
		AllowUnauthenticated: true,
		AllowedOrigins:       []string{uiOrigin, strings.Replace(uiOrigin, "localhost", "127.0.0.1", 1)},
		Namespace:            cfg.TemporalNamespace,
	})
	if err != nil {
		return nil, err
	}
	srv, err := newAPIServer(cfg, apiClient, lethe, dataMap, log)
	if err != nil {
		return nil, err
	}
	srv.Extra = func(mux *http.ServeMux) { mux.Handle("/codec/", http.StripPrefix("/codec", codecHandler)) }
	observed, err := apiMetrics(st.apiMetrics, cfg, lethe, dataMap, log)
	if err != nil {
		return nil, err
	}
	if st.backendKey, st.operatorKey, err = devAPIKeys(ctx, filepath.Join(o.Dir, "apikeys.json"), lethe); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.APIListen)
	if err != nil {
		return nil, fmt.Errorf("API on %s (LETHE_API_LISTEN): %w", cfg.APIListen, err)
	}
	apiCtx, stopAPI := context.WithCancel(context.Background())
	apiDone := make(chan struct{})
	go srv.RunDRPCallbacks(apiCtx) // returns at once when DRP is off
	go func() { _ = serveHTTP(apiCtx, ln, observed.Middleware(srv.Handler()), log); close(apiDone) }()
	st.stops = append(st.stops, func() { stopAPI(); <-apiDone })
	st.apiURL = "http://localhost:" + portOf(ln.Addr())

	// The Web UI, last: it needs the frontend and the codec endpoint.
	st.ui, err = devstack.StartUI(devstack.UIOptions{
		Port: o.UIPort, TemporalAddress: st.temporal.Address, Namespace: cfg.TemporalNamespace,
		CodecEndpoint: st.apiURL + "/codec",
	})
	if err != nil {
		return nil, err
	}
	st.stops = append(st.stops, st.ui.Stop)
	st.cfg = cfg
	log.Info("dev stack started", "seconds", time.Since(began).Seconds())
	return st, nil
}

// Stop stops everything in reverse order of starting.
func (st *devStack) Stop() {
	for i := len(st.stops) - 1; i >= 0; i-- {
		st.stops[i]()
	}
	st.stops = nil
}

// startMetrics starts the worker's and the API's metrics endpoints.
func (st *devStack) startMetrics(cfg config.Config, log *slog.Logger) error {
	if cfg.MetricsAddr != config.MetricsOff && cfg.MetricsAddr == cfg.APIMetricsAddr && !strings.HasSuffix(cfg.MetricsAddr, ":0") {
		return fmt.Errorf("LETHE_API_METRICS_ADDR %s: the same as LETHE_METRICS_ADDR; dev serves the worker's and the API's metrics apart", cfg.APIMetricsAddr)
	}
	var err error
	if st.workerMetrics, err = metrics.Start(cfg.MetricsAddr, "LETHE_METRICS_ADDR", log); err != nil {
		return err
	}
	st.stops = append(st.stops, func() { _ = st.workerMetrics.Close() })
	if st.apiMetrics, err = metrics.Start(cfg.APIMetricsAddr, "LETHE_API_METRICS_ADDR", log); err != nil {
		return err
	}
	st.stops = append(st.stops, func() { _ = st.apiMetrics.Close() })
	return nil
}

// printWelcome says what runs where, and how to try it: on the demo, or on
// the application of LETHE_DATA_MAP.
func (st *devStack) printWelcome(w io.Writer) {
	s3Line := st.cfg.S3Endpoint + "   (LETHE_S3_ENDPOINT: dev runs no S3 of its own)"
	if st.s3 != nil {
		s3Line = fmt.Sprintf("%s   (dev's own, versioned buckets; kept in %s)", st.s3.URL, filepath.Join(st.dir, "objects.db"))
	}
	fmt.Fprintf(w, `
Lethe dev stack is up.
  API          %[1]s   (health: %[1]s/healthz)
  Portal       %[1]s/privacy/   (where people ask for their rights)
  Temporal UI  %[2]s
  Temporal     %[3]s   (namespace %[4]s)
  S3           %[5]s
  Outbox       %[6]s
  Metrics      %[9]s

API keys (dev): backend  %[7]s
                operator %[8]s
`, st.apiURL, st.ui.URL, st.temporal.Address, st.cfg.TemporalNamespace, s3Line, st.outboxCommand(), st.backendKey, st.operatorKey, st.metricsLine())
	if len(st.missingBuckets) > 0 {
		fmt.Fprintf(w, "\nMissing at LETHE_S3_ENDPOINT (dev creates buckets only in its own S3): %s\n", strings.Join(st.missingBuckets, ", "))
	}
	if st.ownApp {
		st.printOwnApp(w)
	} else {
		st.printDemo(w)
	}
	fmt.Fprintf(w, "\nCtrl-C stops everything; state is kept in %s/.\n", st.dir)
}

// metricsLine says where Prometheus finds the worker's and the API's series.
func (st *devStack) metricsLine() string {
	url := func(p *metrics.Process) string {
		if u := p.URL(); u != "" {
			return u
		}
		return "off"
	}
	return fmt.Sprintf("worker %s   API %s   (Prometheus; deploy/ has a dashboard)", url(st.workerMetrics), url(st.apiMetrics))
}

func (st *devStack) outboxCommand() string {
	if st.cfg.OutboxDir == filepath.Join(".lethe", "outbox") {
		return "go run ./starter outbox"
	}
	return fmt.Sprintf("LETHE_OUTBOX_DIR=%s go run ./starter outbox", st.cfg.OutboxDir)
}

// eraseCommand is the curl that submits an erasure as the company's backend.
func (st *devStack) eraseCommand(userID, email string) string {
	subject := fmt.Sprintf(`"user_id":%q`, userID)
	if email != "" {
		subject += fmt.Sprintf(`,"email":%q`, email)
	}
	return fmt.Sprintf(`  curl -s -X POST %s/v1/requests -H 'Authorization: Bearer %s' \
    -H 'Content-Type: application/json' \
    -d '{"type":"erasure","subject":{%s},"jurisdiction":"gdpr","verified":true}'`, st.apiURL, st.backendKey, subject)
}

func (st *devStack) printDemo(w io.Writer) {
	if st.sandboxes != nil {
		fmt.Fprintln(w, "\nThe demo's processors run against local sandboxes holding the demo accounts:")
		for _, p := range st.dataMap.Processors {
			switch {
			case st.sandboxes.Sandboxed(p.Name) && p.Kind == "sendgrid":
				fmt.Fprintf(w, "  %-20s %s   (no contacts: SendGrid deletes them asynchronously, and Lethe asks again an hour later)\n", p.Name, p.BaseURL)
			case st.sandboxes.Sandboxed(p.Name):
				fmt.Fprintf(w, "  %-20s %s\n", p.Name, p.BaseURL)
			case p.Kind == "manual":
				fmt.Fprintf(w, "  %-20s no API: every erasure opens an operator task there\n", p.Name)
			}
		}
	} else {
		fmt.Fprintln(w, "\nThe demo runs without processors (--sandboxes=false).")
	}
	if st.firstDemo == nil {
		fmt.Fprintln(w, "\nNo demo account is there to erase (--seed-accounts 0): start with --seed-accounts N to seed N.")
		return
	}
	a := st.firstDemo
	fmt.Fprintf(w, `
Erase the demo account %[1]s (its projects, files, tickets, ID documents…) as the
company's backend, which vouches for the person's identity:

%[2]s

Follow it system by system, each processor with its status:
  curl -s %[3]s/v1/requests/<id>/erasure -H 'Authorization: Bearer %[4]s'
`, a.ID, st.eraseCommand(a.ID, a.Email), st.apiURL, st.operatorKey)
	if st.sandboxes != nil {
		fmt.Fprintf(w, `PayPal has no API: the erasure waits for the privacy team. Resolve its task:
  curl -s -X POST %[1]s/v1/requests/<id>/processors/%[3]s/task -H 'Authorization: Bearer %[2]s' \
    -H 'Content-Type: application/json' -d '{"action":"done","evidence":"deleted in the PayPal dashboard, ticket 4711"}'
`, st.apiURL, st.operatorKey, demo.PayPal)
	}
	fmt.Fprintf(w, `Then the request completes with its receipt (and the person's mail: %[3]s):
  curl -s %[1]s/v1/requests/<id> -H 'Authorization: Bearer %[2]s'
A person asking for themselves submits without a key, gets a code by mail
(%[3]s) and posts it to /v1/requests/<id>/verify.
`, st.apiURL, st.operatorKey, st.outboxCommand())
}

func (st *devStack) printOwnApp(w io.Writer) {
	m := st.dataMap
	fmt.Fprintf(w, "\nYour application: LETHE_DATA_MAP %s, checked against LETHE_APP_DATABASE_URL.\nNothing was created or seeded in that database. The map covers:\n", st.cfg.DataMap)
	if len(m.Tables) > 0 {
		fmt.Fprintln(w, "  tables")
		for _, t := range m.Tables {
			fmt.Fprintf(w, "    %-40s %s\n", t.Name, t.Action)
		}
	}
	if len(m.S3) > 0 {
		fmt.Fprintln(w, "  S3 locations")
		for _, l := range m.S3 {
			fmt.Fprintf(w, "    s3://%s/%s\n", l.Bucket, l.Prefix)
		}
	}
	if m.Backups != nil && len(m.Backups.Locations) > 0 {
		fmt.Fprintln(w, "  backups")
		for _, l := range m.Backups.Locations {
			fmt.Fprintf(w, "    %-20s s3://%s/%s   rotation %s\n", l.Name, l.Bucket, l.Prefix, l.Rotation)
		}
	}
	if len(m.Processors) == 0 {
		fmt.Fprintln(w, "  processors   none")
	} else {
		fmt.Fprintln(w, "  processors   (called for real, credentials from the variables their credential_env names)")
		for _, p := range m.Processors {
			where := p.BaseURL
			if where == "" && p.Kind == "manual" {
				where = "no API: each erasure opens an operator task"
			} else if where == "" {
				where = "the service's own API"
			}
			fmt.Fprintf(w, "    %-20s %-10s %s\n", p.Name, p.Kind, where)
		}
	}
	userID, email := "<user id>", ""
	if m.Identity != nil {
		userID = fmt.Sprintf("<%s.%s>", m.Identity.Table, m.Identity.Key)
		email = fmt.Sprintf("<%s.%s>", m.Identity.Table, m.Identity.Email)
	}
	fmt.Fprintf(w, `
Erase one of its people as your backend would, with a user id and email from
your database in place of the placeholders:

%[1]s

Follow it system by system (each processor, each operator task):
  curl -s %[2]s/v1/requests/<id>/erasure -H 'Authorization: Bearer %[3]s'
and read its receipt once completed:
  curl -s %[2]s/v1/requests/<id> -H 'Authorization: Bearer %[3]s'
The mail Lethe sends (receipts, codes, the privacy team's tasks): %[4]s
`, st.eraseCommand(userID, email), st.apiURL, st.operatorKey, st.outboxCommand())
}

func portOf(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}

// siblingDatabase is url with another database name.
func siblingDatabase(raw, name string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("LETHE_DATABASE_URL: not a URL")
	}
	u.Path = "/" + name
	return u.String(), nil
}

// demoDataMap is the demo application's map, checked against its database:
// with sandboxes, its processors pointed at them (started and seeded with
// the demo accounts not erased), else without processors.
func (st *devStack) demoDataMap(ctx context.Context, cfg config.Config, o devOptions, log *slog.Logger) (*datamap.Map, error) {
	m, err := demo.DataMapWithoutProcessors()
	if err != nil {
		return nil, err
	}
	if o.Sandboxes {
		full, err := demo.DataMap()
		if err != nil {
			return nil, err
		}
		if st.sandboxes, err = devstack.StartSandboxes(full.Processors); err != nil {
			return nil, err
		}
		st.stops = append(st.stops, st.sandboxes.Close)
		customers, err := demo.Customers(ctx, st.app)
		if err != nil {
			return nil, err
		}
		people := make([]devstack.Person, len(customers))
		for i, c := range customers {
			people[i] = devstack.Person{UserID: c.ID, Email: c.Email, Name: c.Name, StripeCustomerID: c.StripeCustomerID}
		}
		st.sandboxes.Seed(people)
		if m, err = demo.Sandboxed(st.sandboxes.BaseURLs()); err != nil {
			return nil, err
		}
		if o.SandboxRateLimit > 0 {
			// A benchmark of the engine: the sandboxed processors only, at
			// its rate (a manual one would open an operator task per person).
			var sandboxed []processors.Config
			for _, p := range m.Processors {
				if st.sandboxes.Sandboxed(p.Name) {
					p.RateLimit = o.SandboxRateLimit
					sandboxed = append(sandboxed, p)
				}
			}
			m.Processors = sandboxed
		}
	}
	if err := m.Validate(ctx, st.app); err != nil {
		return nil, err
	}
	return m, wiring.Coverage(ctx, cfg, st.app, m, log)
}

// devDeps are the worker's parts; the sandboxed processors' connectors
// read the sandboxes' credentials instead of the environment's.
func devDeps(ctx context.Context, cfg config.Config, lethe, app *pgxpool.Pool, objects *s3.Client, m *datamap.Map, sb *devstack.Sandboxes, log *slog.Logger) (registry.Deps, error) {
	if sb == nil {
		return registry.NewDeps(ctx, cfg, lethe, app, objects, m, log)
	}
	bare := *m
	bare.Processors = nil
	deps, err := registry.NewDeps(ctx, cfg, lethe, app, objects, &bare, log)
	if err != nil {
		return deps, err
	}
	deps.Map = m
	if deps.Processors, err = processors.NewRegistry(m.Processors, processors.BuildOptions{LookupEnv: sb.LookupEnv}); err != nil {
		return deps, fmt.Errorf("data map processors: %w", err)
	}
	return deps, nil
}

// mapBuckets are the buckets a data map names: its S3 locations, its
// backups and its ID documents, each once.
func mapBuckets(m *datamap.Map) []string {
	var out []string
	add := func(b string) {
		if b != "" && !slices.Contains(out, b) {
			out = append(out, b)
		}
	}
	for _, l := range m.S3 {
		add(l.Bucket)
	}
	if m.Backups != nil {
		for _, l := range m.Backups.Locations {
			add(l.Bucket)
		}
	}
	if m.IDDocuments != nil {
		add(m.IDDocuments.Bucket)
	}
	return out
}

// missingBuckets are the buckets an S3 of someone else's lacks; any other
// failure (the endpoint does not answer, credentials are refused) stops.
func missingBuckets(ctx context.Context, c *s3.Client, buckets []string) ([]string, error) {
	var missing []string
	for _, b := range buckets {
		_, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(b)})
		var nf *s3types.NotFound
		var nsb *s3types.NoSuchBucket
		switch {
		case err == nil:
		case errors.As(err, &nf) || errors.As(err, &nsb):
			missing = append(missing, b)
		default:
			return nil, fmt.Errorf("S3 at LETHE_S3_ENDPOINT: bucket %s: %w", b, err)
		}
	}
	return missing, nil
}

// devSecrets fills the keys production must be given (payload keys, master
// keys, subject hash key) from a file in the dev directory, generating it on
// the first start so that restarts can still decrypt what earlier runs wrote.
func devSecrets(path string, cfg *config.Config) error {
	var s struct {
		PayloadKeys    string `json:"payload_keys"`
		MasterKeys     string `json:"master_keys"`
		SubjectHashKey string `json:"subject_hash_key"`
	}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("dev secrets %s: %w (delete the file to start afresh)", path, err)
		}
	case errors.Is(err, os.ErrNotExist):
		pk, err := codec.GenerateKey()
		if err != nil {
			return err
		}
		mk, err := codec.GenerateKey()
		if err != nil {
			return err
		}
		hk, err := codec.GenerateKey()
		if err != nil {
			return err
		}
		s.PayloadKeys, s.MasterKeys = codec.FormatKey(pk), codec.FormatKey(mk)
		s.SubjectHashKey = base64.StdEncoding.EncodeToString(hk.Material)
		out, _ := json.MarshalIndent(s, "", "  ")
		if err := os.WriteFile(path, out, 0o600); err != nil {
			return fmt.Errorf("dev secrets %s: %w", path, err)
		}
	default:
		return fmt.Errorf("dev secrets %s: %w", path, err)
	}
	if cfg.PayloadKeys == "" {
		cfg.PayloadKeys = s.PayloadKeys
	}
	if cfg.MasterKeys == "" {
		cfg.MasterKeys = s.MasterKeys
	}
	if cfg.SubjectHashKey == "" {
		cfg.SubjectHashKey = s.SubjectHashKey
	}
	return nil
}

// devAPIKeys are a backend and an operator key for trying the API, made once
// and kept in path; keys that no longer authenticate are made again.
func devAPIKeys(ctx context.Context, path string, db *pgxpool.Pool) (backend, operator string, err error) {
	var saved struct{ Backend, Operator string }
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &saved)
	}
	ensure := func(token, role string) (string, error) {
		if token != "" {
			if _, err := apikeys.Authenticate(ctx, db, token); err == nil {
				return token, nil
			}
		}
		token, _, err := apikeys.Create(ctx, db, "dev "+role, role)
		return token, err
	}
	if saved.Backend, err = ensure(saved.Backend, apikeys.RoleBackend); err != nil {
		return "", "", fmt.Errorf("dev API key: %w", err)
	}
	if saved.Operator, err = ensure(saved.Operator, apikeys.RoleOperator); err != nil {
		return "", "", fmt.Errorf("dev API key: %w", err)
	}
	b, _ := json.MarshalIndent(saved, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return "", "", fmt.Errorf("dev API keys %s: %w", path, err)
	}
	return saved.Backend, saved.Operator, nil
}
