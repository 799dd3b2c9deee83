package devstack

import (
	"errors"
	"fmt"
	"net"
	neturl "net/url"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/server/common/config"
	serverlog "go.temporal.io/server/common/log"
	"go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql"
	"go.temporal.io/server/tools/common/schema"
	toolsql "go.temporal.io/server/tools/sql"
)

// Postgres is where the embedded server keeps its state on PostgreSQL: the
// persistence the production compose file gives Temporal, through the
// server's pgx plugin (postgres12_pgx). The main and the visibility stores
// are separate databases, created when missing; their schemas are set up
// and upgraded from the schema files inside the server module at every
// start.
type Postgres struct {
	Addr               string // host:port; default 127.0.0.1:5432
	User               string // default postgres
	Password           string
	Database           string // the main store; default temporal
	VisibilityDatabase string // default <Database>_visibility; must differ from Database
	// AdminDatabase is the database connected to while creating the two
	// above; default postgres.
	AdminDatabase string
	// Shards is the number of history shards, default 4. It is fixed when
	// the main database is first used: a later start must give the same.
	Shards int
	// MaxConns bounds each service's pool per store (four services, two
	// stores: up to 8 × MaxConns connections); default 10.
	MaxConns int
	// ConnectAttributes are passed to the driver as connection parameters
	// (e.g. sslmode, or synchronous_commit=off for a throwaway server).
	ConnectAttributes map[string]string
}

// DefaultPostgresURL is where ParsePostgresURL's callers point by default:
// the local PostgreSQL of the tests and the dev stack.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/lethe_temporal?sslmode=disable"

// ParsePostgresURL reads a postgres:// URL (user, password, host:port,
// database; query parameters become connection attributes) into the
// Postgres options; shards ≤ 0 means the default.
func ParsePostgresURL(raw string, shards int) (Postgres, error) {
	u, err := neturl.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return Postgres{}, errors.New("want a postgres://user[:password]@host[:port]/database URL")
	}
	p := Postgres{Addr: u.Host, User: u.User.Username(), Database: strings.TrimPrefix(u.Path, "/"), Shards: shards}
	if _, _, err := net.SplitHostPort(p.Addr); err != nil {
		p.Addr = net.JoinHostPort(u.Hostname(), "5432")
	}
	p.Password, _ = u.User.Password()
	if q := u.Query(); len(q) > 0 {
		p.ConnectAttributes = map[string]string{}
		for k := range q {
			p.ConnectAttributes[k] = q.Get(k)
		}
	}
	return p, nil
}

func (p Postgres) withDefaults() (Postgres, error) {
	if p.Addr == "" {
		p.Addr = "127.0.0.1:5432"
	}
	if p.User == "" {
		p.User = "postgres"
	}
	if p.Database == "" {
		p.Database = "temporal"
	}
	if p.VisibilityDatabase == "" {
		p.VisibilityDatabase = p.Database + "_visibility"
	}
	if p.AdminDatabase == "" {
		p.AdminDatabase = "postgres"
	}
	if p.Shards == 0 {
		p.Shards = 4
	}
	if p.MaxConns == 0 {
		p.MaxConns = 10
	}
	switch {
	case p.Shards < 1 || p.Shards > 16384:
		return p, fmt.Errorf("temporal on postgres: %d history shards: want 1 to 16384", p.Shards)
	case p.MaxConns < 1:
		return p, fmt.Errorf("temporal on postgres: MaxConns %d: want at least 1", p.MaxConns)
	case p.VisibilityDatabase == p.Database:
		// On one database the visibility schema is skipped (its version
		// table is the main store's) and visibility stays empty.
		return p, fmt.Errorf("temporal on postgres: the visibility database must differ from the main one (%q)", p.Database)
	}
	if _, _, err := net.SplitHostPort(p.Addr); err != nil {
		return p, fmt.Errorf("temporal on postgres: address %q: want host:port", p.Addr)
	}
	return p, nil
}

// sqlConfig is the server's store configuration for database db.
func (p Postgres) sqlConfig(db string) *config.SQL {
	attrs := make(map[string]string, len(p.ConnectAttributes))
	for k, v := range p.ConnectAttributes {
		attrs[k] = v
	}
	return &config.SQL{
		PluginName:        postgresql.PluginNamePGX,
		DatabaseName:      db,
		ConnectAddr:       p.Addr,
		ConnectProtocol:   "tcp",
		User:              p.User,
		Password:          p.Password,
		MaxConns:          p.MaxConns,
		MaxIdleConns:      p.MaxConns,
		MaxConnLifetime:   time.Hour,
		ConnectAttributes: attrs,
	}
}

// postgresStore creates the two databases when missing and brings their
// schemas to the versions this server build ships.
func postgresStore(p Postgres, logger serverlog.Logger) (persistence, error) {
	p, err := p.withDefaults()
	if err != nil {
		return persistence{}, err
	}
	for _, s := range []struct{ db, schema string }{
		{p.Database, "postgresql/v12/temporal"},
		{p.VisibilityDatabase, "postgresql/v12/visibility"},
	} {
		if err := createDatabase(p, s.db, logger); err != nil {
			return persistence{}, err
		}
		if err := setupSchema(p.sqlConfig(s.db), s.schema, logger); err != nil {
			return persistence{}, err
		}
	}
	return persistence{main: p.sqlConfig(p.Database), visibility: p.sqlConfig(p.VisibilityDatabase), shards: int32(p.Shards)}, nil
}

// createDatabase creates db on the server unless it exists.
func createDatabase(p Postgres, db string, logger serverlog.Logger) error {
	conn, err := toolsql.NewConnection(p.sqlConfig(p.AdminDatabase), logger)
	if err != nil {
		return fmt.Errorf("temporal on postgres: connect to %s as %s (database %s): %w", p.Addr, p.User, p.AdminDatabase, err)
	}
	defer conn.Close()
	if err := conn.CreateDatabase(db); err != nil {
		return fmt.Errorf("temporal on postgres: create database %s: %w", db, err)
	}
	return nil
}

// setupSchema creates the schema version tables, then applies every
// versioned change of the named schema the database lacks (all of them on
// a new database); both steps are no-ops on a database that is up to date.
func setupSchema(cfg *config.SQL, name string, logger serverlog.Logger) error {
	conn, err := toolsql.NewConnection(cfg, logger)
	if err != nil {
		return fmt.Errorf("temporal on postgres: connect to database %s: %w", cfg.DatabaseName, err)
	}
	defer conn.Close()
	if err := schema.NewSetupSchemaTask(conn, &schema.SetupConfig{InitialVersion: "0.0"}, logger).Run(); err != nil {
		return fmt.Errorf("temporal on postgres: schema version tables in %s: %w", cfg.DatabaseName, err)
	}
	if err := schema.NewUpdateSchemaTask(conn, &schema.UpdateConfig{DBName: cfg.DatabaseName, SchemaName: name}, logger).Run(); err != nil {
		return fmt.Errorf("temporal on postgres: schema %s in %s: %w", name, cfg.DatabaseName, err)
	}
	return nil
}

// String describes the store without its password, for logs.
func (p Postgres) String() string {
	p, _ = p.withDefaults()
	return fmt.Sprintf("postgres %s@%s/%s (+%s), %s shards", p.User, p.Addr, p.Database, p.VisibilityDatabase, strconv.Itoa(p.Shards))
}
