// Package store opens Lethe's PostgreSQL database, applies its migrations,
// and owns its records of requests (Store): the only package with SQL on
// lethe.requests, lethe.verification_codes, lethe.erasure_steps and
// lethe.inactivity_notices.
package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// versionTable records which migrations ran; it lives in the public schema
// because the first migration creates the lethe schema.
const versionTable = "public.lethe_schema_version"

// Open connects a pool to url, creating the database first when it is missing
// (createMissing) and applying every migration.
func Open(ctx context.Context, url string, createMissing bool) (*pgxpool.Pool, error) {
	if createMissing {
		if err := EnsureDatabase(ctx, url); err != nil {
			return nil, err
		}
	}
	pool, err := Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	if err := Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// Connect opens a pool and checks that the server answers.
func Connect(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("LETHE_DATABASE_URL does not parse: %w", redact(err))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, Unreachable(cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	return pool, nil
}

// Unreachable explains how to get a PostgreSQL server when none answers.
func Unreachable(host string, port uint16, err error) error {
	return fmt.Errorf("PostgreSQL at %s does not answer (%v). Start the local server "+
		"(e.g. `pg_ctlcluster 15 main start` or `service postgresql start`) or point "+
		"LETHE_DATABASE_URL at one, e.g. postgres://postgres@127.0.0.1:5432/lethe?sslmode=disable",
		net.JoinHostPort(host, fmt.Sprint(port)), redact(err))
}

// EnsureDatabase creates the database named in url when it does not exist yet,
// connecting to the server's maintenance database to do so.
func EnsureDatabase(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("LETHE_DATABASE_URL does not parse: %w", redact(err))
	}
	name := cfg.Database
	if name == "" {
		return errors.New("LETHE_DATABASE_URL names no database")
	}
	admin := cfg.Copy()
	admin.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return Unreachable(cfg.Host, cfg.Port, err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look for database: %w", err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // created meanwhile by another process
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	return nil
}

// Migrate applies every embedded migration not applied yet. Concurrent callers
// are serialised by tern's advisory lock.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	m, err := migrate.NewMigrator(ctx, conn.Conn(), versionTable)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	files, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return fmt.Errorf("migrate: load: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// redact keeps passwords out of connection errors.
func redact(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if i := strings.Index(msg, "password="); i >= 0 {
		return errors.New(msg[:i] + "password=…")
	}
	return err
}
