// Command worker runs Lethe's workflows and activities against a Temporal
// cluster: the production shape. Scale out by running more of them.
//
//	go run ./worker
//
// Configuration comes from the environment (README.md, "Configuration").
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/metrics"
	"github.com/lethe-privacy/lethe/internal/temporalclient"
	"github.com/lethe-privacy/lethe/internal/wiring"
	"github.com/lethe-privacy/lethe/worker/registry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "lethe worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	log := wiring.Logger(cfg)
	lethe, app, err := wiring.Databases(ctx, cfg)
	if err != nil {
		return err
	}
	defer lethe.Close()
	defer app.Close()
	objects, err := wiring.Objects(ctx, cfg)
	if err != nil {
		return err
	}
	dataMap, err := wiring.DataMap(ctx, cfg, app, log)
	if err != nil {
		return err
	}
	tc, err := wiring.TemporalOptions(cfg, log)
	if err != nil {
		return err
	}
	// Prometheus metrics on their own listener (LETHE_METRICS_ADDR): the
	// SDK's, through the client, and what the activities do.
	pm, err := metrics.Start(cfg.MetricsAddr, "LETHE_METRICS_ADDR", log)
	if err != nil {
		return err
	}
	defer func() {
		if err := pm.Close(); err != nil {
			log.Warn("metrics endpoint shutdown", "error", err)
		}
	}()
	tc.MetricsHandler = pm.TemporalHandler()
	recorder, err := pm.Worker()
	if err != nil {
		return err
	}
	c, err := temporalclient.Dial(ctx, tc)
	if err != nil {
		return err
	}
	defer c.Close()

	deps, err := registry.NewDeps(ctx, cfg, lethe, app, objects, dataMap, log)
	if err != nil {
		return err
	}
	deps = deps.WithMetrics(recorder)
	w := registry.NewWorker(c, cfg.TemporalTaskQueue, registry.DeployedWorkerOptions(cfg), deps)
	if err := registry.ApplySchedules(ctx, c, cfg); err != nil {
		return err
	}
	ran := make(chan error, 1)
	go func() { ran <- w.Run(interrupt(ctx)) }()
	log.Info("worker started", "task_queue", cfg.TemporalTaskQueue, "namespace", cfg.TemporalNamespace, "build_id", cfg.WorkerBuildID)
	if cfg.WorkerBuildID != "" {
		// The first version of a deployment becomes its current version by
		// itself; later ones wait for `starter deploy promote`.
		promoted, err := temporalclient.PromoteFirstVersion(ctx, c, cfg.WorkerDeployment, cfg.WorkerBuildID)
		if err != nil {
			log.Warn("worker deployment: could not make the first version current; run `starter deploy promote`", "error", err)
		}
		if promoted {
			log.Info("worker deployment: first version, made current", "deployment", cfg.WorkerDeployment, "build_id", cfg.WorkerBuildID)
		}
	}
	if err := <-ran; err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	return nil
}

// interrupt turns a context's end into the channel worker.Run waits on.
func interrupt(ctx context.Context) <-chan interface{} {
	ch := make(chan interface{})
	go func() { <-ctx.Done(); close(ch) }()
	return ch
}
