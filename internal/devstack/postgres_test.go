package devstack

import (
	"strings"
	"testing"
)

func TestParsePostgresURLAndDefaults(t *testing.T) {
	p, err := ParsePostgresURL("postgres://alice:s3cret@db.local/temporal_x?sslmode=disable", 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err = p.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if p.Addr != "db.local:5432" || p.User != "alice" || p.Password != "s3cret" || p.Database != "temporal_x" ||
		p.VisibilityDatabase != "temporal_x_visibility" || p.AdminDatabase != "postgres" || p.Shards != 4 ||
		p.MaxConns != 10 || p.ConnectAttributes["sslmode"] != "disable" {
		t.Errorf("parsed %+v", p)
	}
	if s := p.String(); strings.Contains(s, "s3cret") {
		t.Errorf("String shows the password: %s", s)
	}
	cfg := p.sqlConfig(p.VisibilityDatabase)
	if cfg.PluginName != "postgres12_pgx" || cfg.DatabaseName != "temporal_x_visibility" || cfg.ConnectAddr != "db.local:5432" {
		t.Errorf("store config %+v", cfg)
	}
}

func TestPostgresOptionsThatCannotWork(t *testing.T) {
	for _, tc := range []struct {
		p    Postgres
		want string
	}{
		{Postgres{Database: "t", VisibilityDatabase: "t"}, "must differ"},
		{Postgres{Shards: -1}, "history shards"},
		{Postgres{Addr: "nohost"}, "want host:port"},
	} {
		if _, err := tc.p.withDefaults(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error saying %q", tc.p, err, tc.want)
		}
	}
	for _, raw := range []string{"mysql://x/y", "not a url", "postgres:///db"} {
		if _, err := ParsePostgresURL(raw, 4); err == nil {
			t.Errorf("%q parsed", raw)
		}
	}
	if _, err := StartTemporal(TemporalOptions{Postgres: &Postgres{}, FrontendPort: 1}); err == nil || !strings.Contains(err.Error(), "LogFile") {
		t.Errorf("without a log file: %v", err)
	}
}
