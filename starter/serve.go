package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"

	"github.com/lethe-privacy/lethe/internal/api"
	"github.com/lethe-privacy/lethe/internal/apikeys"
	"github.com/lethe-privacy/lethe/internal/codec"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/drp"
	"github.com/lethe-privacy/lethe/internal/metrics"
	"github.com/lethe-privacy/lethe/internal/policy"
	"github.com/lethe-privacy/lethe/internal/portal"
	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/temporalclient"
	"github.com/lethe-privacy/lethe/internal/wiring"
)

func serveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Serve the HTTP API against a Temporal cluster (production shape)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.FromEnv()
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg)
		},
	}
}

func serve(ctx context.Context, cfg config.Config) error {
	log := wiring.Logger(cfg)
	db, err := store.Open(ctx, cfg.DatabaseURL, true)
	if err != nil {
		return err
	}
	defer db.Close()
	opts, err := wiring.TemporalOptions(cfg, log)
	if err != nil {
		return err
	}
	// Prometheus metrics on their own listener (LETHE_API_METRICS_ADDR),
	// never on the public API port.
	pm, err := metrics.Start(cfg.APIMetricsAddr, "LETHE_API_METRICS_ADDR", log)
	if err != nil {
		return err
	}
	defer func() {
		if err := pm.Close(); err != nil {
			log.Warn("metrics endpoint shutdown", "error", err)
		}
	}()
	opts.MetricsHandler = pm.TemporalHandler()
	tc, err := temporalclient.Dial(ctx, opts)
	if err != nil {
		return err
	}
	defer tc.Close()
	m, err := loadDataMap(cfg)
	if err != nil {
		return err
	}
	srv, err := newAPIServer(cfg, tc, db, m, log)
	if err != nil {
		return err
	}
	observed, err := apiMetrics(pm, cfg, db, m, log)
	if err != nil {
		return err
	}
	if cfg.CodecToken != "" {
		codecHandler, err := codecServer(cfg, codec.HandlerOptions{Token: cfg.CodecToken, AllowedOrigins: cfg.CodecOrigins, Namespace: cfg.TemporalNamespace})
		if err != nil {
			return err
		}
		srv.Extra = func(mux *http.ServeMux) { mux.Handle("/codec/", http.StripPrefix("/codec", codecHandler)) }
	}
	ln, err := net.Listen("tcp", cfg.APIListen)
	if err != nil {
		return fmt.Errorf("LETHE_API_LISTEN %s: %w", cfg.APIListen, err)
	}
	log.Info("API listening", "addr", ln.Addr().String())
	go srv.RunDRPCallbacks(ctx) // returns at once when DRP is off
	return serveHTTP(ctx, ln, observed.Middleware(srv.Handler()), log)
}

// apiMetrics registers the API's series with pm: its HTTP traffic (the
// middleware returned), and the gauges read from Lethe's database at every
// scrape, knowing the data map's processors and backup promise when m is
// given. With metrics off it records nothing.
func apiMetrics(pm *metrics.Process, cfg config.Config, db *pgxpool.Pool, m *datamap.Map, log *slog.Logger) (*metrics.API, error) {
	a, err := pm.API()
	if err != nil {
		return nil, err
	}
	o := metrics.DatabaseOptions{DB: db, DueSoon: cfg.MetricsDueSoon, Log: log}
	if m != nil {
		for _, p := range m.Processors {
			o.Processors = append(o.Processors, p.Name)
		}
		if m.Backups != nil && len(m.Backups.Locations) > 0 {
			if o.BackupPromise, err = domain.ParsePeriod(m.Backups.Promise); err != nil {
				return nil, fmt.Errorf("LETHE_DATA_MAP: backups: promise: %w", err)
			}
		}
	}
	if err := pm.Register(metrics.NewDatabase(o)); err != nil {
		return nil, err
	}
	return a, nil
}

// newAPIServer builds the API from the configuration, the same way for
// `serve`, `dev` and the end-to-end tests.
func newAPIServer(cfg config.Config, tc client.Client, db *pgxpool.Pool, m *datamap.Map, log *slog.Logger) (*api.Server, error) {
	subjects, err := wiring.Subjects(cfg)
	if err != nil {
		return nil, err
	}
	keys, err := wiring.Keyring(cfg, db)
	if err != nil {
		return nil, err
	}
	policies, err := policy.FromConfig(cfg)
	if err != nil {
		return nil, err
	}
	var callbacks *processors.OpenDSRCallbacks // OpenDSR processors' signed status callbacks
	if m != nil {
		// LookupEnv reads LETHE_OPENDSR_CA_FILE; no credential is needed here.
		if callbacks, err = processors.NewOpenDSRCallbacks(m.Processors, processors.BuildOptions{LookupEnv: os.LookupEnv}); err != nil {
			return nil, fmt.Errorf("data map processors: %w", err)
		}
	}
	drpConfig, err := drpConfig(cfg)
	if err != nil {
		return nil, err
	}
	srv := &api.Server{
		Temporal: tc, DB: db, Subjects: subjects, Keys: keys, Policies: policies, Map: m, Callbacks: callbacks, DRP: drpConfig,
		APIKeys:   apikeys.NewAuthenticator(db, apikeys.DefaultCacheTTL),
		TaskQueue: cfg.TemporalTaskQueue, MaxBody: cfg.MaxBodyBytes, Log: log,
		Accounts: api.AccountPolicy{DeactivationGrace: cfg.DeactivationGrace, DeactivationReminder: cfg.DeactivationReminder,
			IDDocumentDeleteAfter: cfg.IDDocumentDeleteAfter},
		Notices:    noticePolicy(cfg),
		PerIP:      ratelimit.New(cfg.RatePerIP, cfg.BurstPerIP),
		PerSubject: ratelimit.New(cfg.RatePerSubject, cfg.BurstPerSubj),
	}
	// The privacy portal calls the same code paths as the JSON API.
	p, err := portal.New(srv, portal.Options{CompanyName: cfg.CompanyName, PublicURL: cfg.PublicURL, Dir: cfg.PortalDir})
	if err != nil {
		return nil, err
	}
	srv.Portal = p
	return srv, nil
}

// drpConfig is the Data Rights Protocol's configuration; nil while
// LETHE_DRP_BUSINESS_ID is unset.
func drpConfig(cfg config.Config) (*api.DRPConfig, error) {
	if cfg.DRPBusinessID == "" {
		return nil, nil
	}
	key, err := drp.ParseSigningKey(cfg.DRPSigningKey)
	if err != nil {
		return nil, err
	}
	return &api.DRPConfig{
		BusinessID: cfg.DRPBusinessID, Key: key, SalePurpose: cfg.DRPSalePurpose, PublicURL: cfg.PublicURL,
		Window:        drp.Window{Skew: cfg.DRPClockSkew, MaxLife: cfg.DRPMaxWindow},
		CallbackEvery: cfg.DRPCallbackEvery,
	}, nil
}

// loadDataMap reads the data map of LETHE_DATA_MAP, if set (nil if not),
// without the application database: what the API and the commands that
// take API input check corrections, consent purposes and selectors against.
func loadDataMap(cfg config.Config) (*datamap.Map, error) {
	if cfg.DataMap == "" {
		return nil, nil
	}
	m, err := datamap.Load(cfg.DataMap)
	if err != nil {
		return nil, fmt.Errorf("LETHE_DATA_MAP: %w", err)
	}
	return m, nil
}

// noticePolicy is what breach and policy notices promise, from the
// configuration: for the API and the `incident` commands alike.
func noticePolicy(cfg config.Config) api.NoticePolicy {
	return api.NoticePolicy{NotifyWithin: cfg.BreachNotifyWithin, ReportWithin: cfg.BreachReportWithin, EscalateAt: cfg.BreachEscalateAt,
		KeepOpen: cfg.IncidentKeepOpen, PolicyNotice: cfg.PolicyNoticePeriod, ExportBucket: cfg.S3ExportBucket}
}

// codecServer decodes Temporal payloads for the Web UI and the CLI.
func codecServer(cfg config.Config, o codec.HandlerOptions) (http.Handler, error) {
	keys, err := wiring.PayloadKeys(cfg)
	if err != nil {
		return nil, err
	}
	c, err := codec.NewCodec(keys)
	if err != nil {
		return nil, err
	}
	return codec.NewHTTPHandler(c, o)
}

// serveHTTP serves until ctx ends, then shuts down gracefully.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(shut); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("API shutdown", "error", err)
	}
	return nil
}
