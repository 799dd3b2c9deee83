package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/lethe-privacy/lethe/internal/api"
	"github.com/lethe-privacy/lethe/internal/config"
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
	subjects, err := wiring.Subjects(cfg)
	if err != nil {
		return err
	}
	opts, err := wiring.TemporalOptions(cfg, log)
	if err != nil {
		return err
	}
	tc, err := temporalclient.Dial(ctx, opts)
	if err != nil {
		return err
	}
	defer tc.Close()
	srv := &api.Server{Temporal: tc, DB: db, Subjects: subjects, TaskQueue: cfg.TemporalTaskQueue, MaxBody: cfg.MaxBodyBytes, Log: log}
	ln, err := net.Listen("tcp", cfg.APIListen)
	if err != nil {
		return fmt.Errorf("LETHE_API_LISTEN %s: %w", cfg.APIListen, err)
	}
	log.Info("API listening", "addr", ln.Addr().String())
	return serveHTTP(ctx, ln, srv.Handler(), log)
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
