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
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	"go.temporal.io/sdk/worker"

	"github.com/lethe-privacy/lethe/internal/apikeys"
	"github.com/lethe-privacy/lethe/internal/codec"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/devstack"
	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/s3local"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/temporalclient"
	"github.com/lethe-privacy/lethe/internal/wiring"
	"github.com/lethe-privacy/lethe/worker/registry"
	"github.com/lethe-privacy/lethe/workflows"
)

// devOptions are the dev stack's own settings (flags, with environment defaults).
type devOptions struct {
	Dir          string // state: Temporal's SQLite file, S3 objects, outbox, dev secrets
	TemporalPort int
	UIPort       int
	S3Addr       string
	SeedAccounts int
	Out          io.Writer
}

func devCommand() *cobra.Command {
	o := devOptions{}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole product on this machine: Temporal, its UI, S3, worker and API",
		Long: `Runs in one process: a real Temporal server (state in .lethe/temporal.db), the
Temporal Web UI on :8233, an S3-protocol server (objects in .lethe/s3.db), the
worker and the HTTP API on :8080, against the PostgreSQL server of
LETHE_DATABASE_URL (default: the local one). A demo application database is
created and seeded so every workflow can be tried at once. Ctrl-C stops it all;
the next start finds every workflow and object where it was.

The data map (where a person's data lives) is the demo's, over the demo
database lethe_demo beside Lethe's. To try your own application instead, set
LETHE_APP_DATABASE_URL to its database and LETHE_DATA_MAP to the path of its
data map (YAML, see README.md "The data map"): the map is checked against that
database at start, and an unknown table or column stops it with its name.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.FromEnv()
			if err != nil {
				return err
			}
			o.Out = cmd.OutOrStdout()
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
	cmd.Flags().IntVar(&o.SeedAccounts, "seed-accounts", 20, "demo accounts to seed")
	return cmd
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
	s3       *s3local.Server
	apiURL   string
	// API keys the dev stack made for the person trying it (kept in .lethe/apikeys.json).
	backendKey, operatorKey string
	stops                   []func()
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

	// PostgreSQL: Lethe's database and the demo application's.
	lethe, err := store.Open(ctx, cfg.DatabaseURL, true)
	if err != nil {
		return nil, err
	}
	st.stops = append(st.stops, lethe.Close)
	if cfg.AppDatabaseURL == "" {
		cfg.AppDatabaseURL, err = siblingDatabase(cfg.DatabaseURL, "lethe_demo")
		if err != nil {
			return nil, err
		}
	}
	if err := store.EnsureDatabase(ctx, cfg.AppDatabaseURL); err != nil {
		return nil, err
	}
	app, err := store.Connect(ctx, cfg.AppDatabaseURL)
	if err != nil {
		return nil, err
	}
	st.stops = append(st.stops, app.Close)
	st.app, st.lethe = app, lethe
	if err := demo.CreateSchema(ctx, app); err != nil {
		return nil, err
	}

	// S3, on a file so objects survive a restart.
	st.s3, err = s3local.StartFile(o.S3Addr, filepath.Join(o.Dir, "s3.db"))
	if err != nil {
		return nil, fmt.Errorf("%w (another `starter dev` running? choose another with --s3-addr)", err)
	}
	st.stops = append(st.stops, func() { _ = st.s3.Close() })
	cfg.S3Endpoint, cfg.S3UsePathStyle, cfg.S3Region = st.s3.URL, true, s3local.Region
	cfg.S3AccessKeyID, cfg.S3SecretAccessKey = s3local.AccessKeyID, s3local.SecretAccessKey
	objects, err := wiring.Objects(ctx, cfg)
	if err != nil {
		return nil, err
	}
	for _, b := range []string{cfg.S3ExportBucket, demo.Bucket, demo.BackupBucket} {
		if err := objectstore.EnsureBucket(ctx, objects, b); err != nil {
			return nil, err
		}
	}
	if err := demo.Seed(ctx, app, objects, demo.SeedOptions{Accounts: o.SeedAccounts}); err != nil {
		return nil, err
	}
	dataMap, err := devDataMap(ctx, cfg, app, log)
	if err != nil {
		return nil, err
	}

	// Temporal, on a SQLite file so workflows survive a restart.
	st.temporal, err = devstack.StartTemporal(devstack.TemporalOptions{
		DatabaseFile:     filepath.Join(o.Dir, "temporal.db"),
		FrontendPort:     o.TemporalPort,
		Namespace:        cfg.TemporalNamespace,
		SearchAttributes: workflows.SearchAttributes(),
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
	tc, err := temporalclient.Dial(ctx, topts)
	if err != nil {
		return nil, err
	}
	st.stops = append(st.stops, tc.Close)
	if err := temporalclient.EnsureSearchAttributes(ctx, tc, cfg.TemporalNamespace, workflows.SearchAttributes()); err != nil {
		return nil, err
	}

	// The worker: the very registration the production worker uses.
	deps, err := registry.NewDeps(ctx, cfg, lethe, app, objects, dataMap, log)
	if err != nil {
		return nil, err
	}
	w := worker.New(tc, cfg.TemporalTaskQueue, registry.WorkerOptions())
	registry.Register(w, deps)
	if err := registry.ApplySchedules(ctx, tc, cfg); err != nil {
		return nil, err
	}
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	st.stops = append(st.stops, w.Stop)

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
	srv, err := newAPIServer(cfg, tc, lethe, dataMap, log)
	if err != nil {
		return nil, err
	}
	srv.Extra = func(mux *http.ServeMux) { mux.Handle("/codec/", http.StripPrefix("/codec", codecHandler)) }
	if st.backendKey, st.operatorKey, err = devAPIKeys(ctx, filepath.Join(o.Dir, "apikeys.json"), lethe); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.APIListen)
	if err != nil {
		return nil, fmt.Errorf("API on %s (LETHE_API_LISTEN): %w", cfg.APIListen, err)
	}
	apiCtx, stopAPI := context.WithCancel(context.Background())
	apiDone := make(chan struct{})
	go func() { _ = serveHTTP(apiCtx, ln, srv.Handler(), log); close(apiDone) }()
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

func (st *devStack) printWelcome(w io.Writer) {
	first := demo.Accounts(1)[0]
	fmt.Fprintf(w, `
Lethe dev stack is up.
  API          %[1]s   (health: %[1]s/healthz)
  Temporal UI  %[2]s
  Temporal     %[3]s   (namespace %[4]s)
  S3           %[5]s   (buckets %[6]s, %[7]s)
  Outbox       go run ./starter outbox

API keys (dev): backend  %[9]s
                operator %[10]s

Erase the demo account %[8]s (its projects, files, tickets, ID documents…) as the
company's backend, which vouches for the person's identity:

  curl -s -X POST %[1]s/v1/requests -H 'Authorization: Bearer %[9]s' \
    -H 'Content-Type: application/json' \
    -d '{"type":"erasure","subject":{"user_id":"%[8]s","email":"%[11]s"},"jurisdiction":"gdpr","verified":true}'

then follow it with:
  curl -s %[1]s/v1/requests/<id> -H 'Authorization: Bearer %[9]s'
or in the UI's workflow list. A person asking for themselves submits without a key,
gets a code by mail (go run ./starter outbox) and posts it to /v1/requests/<id>/verify.
Ctrl-C stops everything; state is kept in .lethe/.
`, st.apiURL, st.ui.URL, st.temporal.Address, st.cfg.TemporalNamespace, st.s3.URL, demo.Bucket, st.cfg.S3ExportBucket,
		first.ID, st.backendKey, st.operatorKey, first.Email)
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

// devDataMap is LETHE_DATA_MAP when set, else the demo application's map.
func devDataMap(ctx context.Context, cfg config.Config, app *pgxpool.Pool, log *slog.Logger) (*datamap.Map, error) {
	if cfg.DataMap != "" {
		return wiring.DataMap(ctx, cfg, app, log)
	}
	m, err := demo.DataMapWithoutProcessors() // no Stripe or Mailchimp account in dev
	if err != nil {
		return nil, err
	}
	if err := m.Validate(ctx, app); err != nil {
		return nil, err
	}
	return m, wiring.Coverage(ctx, cfg, app, m, log)
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
