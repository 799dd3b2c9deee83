// Package devstack runs the infrastructure of `starter dev` in one process: a
// real Temporal server that keeps its state in a SQLite file, the Temporal Web
// UI, and sandboxes standing in for the demo's processors (the S3 server is
// internal/s3local). Everything lives under one directory (.lethe/ by
// default), so a restart keeps every workflow and object.
//
// Only the dev stack (and tests) import the Temporal server and the processor
// fakes: the worker and the production API binary never link them.
package devstack

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	serverlog "go.temporal.io/server/common/log"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
)

// TemporalOptions configure the embedded Temporal server.
type TemporalOptions struct {
	DatabaseFile     string    // SQLite file; created with its schema when missing
	Postgres         *Postgres // set: persist to PostgreSQL instead of DatabaseFile
	IP               string    // default 127.0.0.1
	FrontendPort     int       // default 7233
	Namespace        string    // default "default"
	SearchAttributes map[string]enumspb.IndexedValueType
	LogFile          string // the server's own log; default next to the SQLite file (required with Postgres)
}

// TemporalServer is a running embedded Temporal server.
type TemporalServer struct {
	Address string
	server  temporal.Server
}

// persistence is where the server keeps its state: its stores and the
// number of history shards.
type persistence struct {
	main, visibility *config.SQL
	shards           int32
}

// StartTemporal starts a Temporal server (frontend, history, matching and
// worker services) on loopback ports, persisting to a SQLite file, or to
// PostgreSQL when o.Postgres is set.
func StartTemporal(o TemporalOptions) (*TemporalServer, error) {
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	if o.FrontendPort == 0 {
		o.FrontendPort = 7233
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.LogFile == "" {
		if o.Postgres != nil {
			return nil, errors.New("temporal: LogFile is required with PostgreSQL persistence")
		}
		o.LogFile = o.DatabaseFile + ".log"
	}
	frontend := net.JoinHostPort(o.IP, strconv.Itoa(o.FrontendPort))
	if err := portFree(frontend); err != nil {
		return nil, fmt.Errorf("temporal frontend: %w", err)
	}
	ports, err := freePorts(o.IP, 4)
	if err != nil {
		return nil, err
	}
	logger := serverlog.NewZapLogger(serverlog.BuildZapLogger(serverlog.Config{Level: "warn", OutputFile: o.LogFile, Format: "json"}))
	var store persistence
	if o.Postgres != nil {
		store, err = postgresStore(*o.Postgres, logger)
	} else {
		store, err = sqliteStore(o)
	}
	if err != nil {
		return nil, err
	}
	ns, err := sqliteschema.NewNamespaceConfig(clusterName, o.Namespace, false, o.SearchAttributes)
	if err != nil {
		return nil, fmt.Errorf("temporal namespace: %w", err)
	}
	// The schema package of SQLite writes the namespace through the generic
	// SQL persistence, so it serves every SQL plugin.
	if err := sqliteschema.CreateNamespaces(store.main, ns); err != nil {
		return nil, fmt.Errorf("temporal namespace: %w", err)
	}
	cfg := serverConfig(o, ports, store)
	host := func(port int) static.Hosts { return static.SingleLocalHost(net.JoinHostPort(o.IP, strconv.Itoa(port))) }
	srv, err := temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(map[primitives.ServiceName]static.Hosts{
			primitives.FrontendService: host(o.FrontendPort),
			primitives.HistoryService:  host(ports[1]),
			primitives.MatchingService: host(ports[2]),
			primitives.WorkerService:   host(ports[3]),
		}),
		temporal.WithLogger(logger),
		temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
			dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
			// One partition per task queue: the server splits a queue's
			// rate limit across its partitions, and a processor's queue
			// fell short of its rate with the default 4
			// (deploy/temporal-dynamicconfig.yaml, the same for compose).
			dynamicconfig.MatchingNumTaskqueueReadPartitions.Key():  1,
			dynamicconfig.MatchingNumTaskqueueWritePartitions.Key(): 1,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("temporal server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("temporal server: %w", err)
	}
	return &TemporalServer{Address: frontend, server: srv}, nil
}

// clusterName is the one cluster of the embedded server.
const clusterName = "active"

// clusterID identifies the cluster in its persistence; the server wants a UUID.
const clusterID = "6c657468-652d-4465-b676-000000000001"

// serverConfig is the server's configuration on either store: one cluster,
// the four services on loopback ports (ports[0] is the frontend's HTTP
// port, then history, matching and worker), no archival.
func serverConfig(o TemporalOptions, ports []int, store persistence) *config.Config {
	frontend := net.JoinHostPort(o.IP, strconv.Itoa(o.FrontendPort))
	httpAddr := net.JoinHostPort(o.IP, strconv.Itoa(ports[0]))
	cfg := &config.Config{}
	cfg.Global.Membership.MaxJoinDuration = 30e9
	cfg.Global.Membership.BroadcastAddress = o.IP
	cfg.Persistence.DefaultStore = "main"
	cfg.Persistence.VisibilityStore = "visibility"
	cfg.Persistence.NumHistoryShards = store.shards
	cfg.Persistence.DataStores = map[string]config.DataStore{"main": {SQL: store.main}, "visibility": {SQL: store.visibility}}
	if store.visibility == store.main { // SQLite: one file, one store
		cfg.Persistence.VisibilityStore = "main"
		delete(cfg.Persistence.DataStores, "visibility")
	}
	cfg.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{clusterName: {
			Enabled: true, InitialFailoverVersion: 1, RPCAddress: frontend, HTTPAddress: httpAddr, ClusterID: clusterID,
		}},
	}
	cfg.DCRedirectionPolicy.Policy = "noop"
	service := func(port, httpPort int) config.Service {
		var s config.Service
		s.RPC.GRPCPort, s.RPC.BindOnIP, s.RPC.HTTPPort = port, o.IP, httpPort
		return s
	}
	cfg.Services = map[string]config.Service{
		"frontend": service(o.FrontendPort, ports[0]),
		"history":  service(ports[1], 0),
		"matching": service(ports[2], 0),
		"worker":   service(ports[3], 0),
	}
	cfg.Archival.History.State = "disabled"
	cfg.Archival.Visibility.State = "disabled"
	cfg.NamespaceDefaults.Archival.History.State = "disabled"
	cfg.NamespaceDefaults.Archival.Visibility.State = "disabled"
	cfg.PublicClient.HostPort = frontend
	return cfg
}

// Stop stops the server; the SQLite file keeps its state.
func (t *TemporalServer) Stop() { _ = t.server.Stop() }

func sqliteStore(o TemporalOptions) (persistence, error) {
	if o.DatabaseFile == "" {
		return persistence{}, errors.New("temporal: DatabaseFile is required with SQLite persistence")
	}
	if err := os.MkdirAll(filepath.Dir(o.DatabaseFile), 0o700); err != nil {
		return persistence{}, fmt.Errorf("temporal database directory: %w", err)
	}
	cfg := &config.SQL{
		PluginName:   sqliteplugin.PluginName,
		DatabaseName: o.DatabaseFile,
		// Write-ahead logging, synced at checkpoints: each workflow task is
		// a write, and a full fsync per write made the dev stack wait on the
		// disk. A crash of the process loses nothing; a power cut may lose
		// the last moments, which a dev stack can afford.
		ConnectAttributes: map[string]string{"mode": "rwc", "journal_mode": "wal", "synchronous": "normal"},
		MaxConns:          4,
		MaxIdleConns:      4,
	}
	if _, err := os.Stat(o.DatabaseFile); errors.Is(err, os.ErrNotExist) {
		if err := sqliteschema.SetupSchema(cfg); err != nil {
			return persistence{}, fmt.Errorf("temporal database schema: %w", err)
		}
	}
	// One file holds both stores, on one shard.
	return persistence{main: cfg, visibility: cfg, shards: 1}, nil
}

// portFree fails with a clear message when another process holds addr.
func portFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s is taken (is another `starter dev` or Temporal running?): %w", addr, err)
	}
	return ln.Close()
}

func freePorts(ip string, n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
