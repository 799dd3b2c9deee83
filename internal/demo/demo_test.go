package demo_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe/internal/appdb"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
)

// The demo map holds what the erasure tests need: a chain reached via a
// parent, an anonymized table, a hold counted from a date, and backups;
// it validates against the demo schema, and the seed fills every table.
func TestDataMapFitsTheSchemaAndTheSeed(t *testing.T) {
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	if err := demo.CreateSchema(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if err := demo.CreateSchema(ctx, pool); err != nil {
		t.Fatalf("the schema is not safe to create twice: %v", err)
	}
	m, err := demo.DataMap()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(ctx, pool); err != nil {
		t.Fatalf("the demo map does not fit the demo schema: %v", err)
	}
	comments, _ := m.Table("demo.project_comments")
	reviews, _ := m.Table("demo.reviews")
	purchases, _ := m.Table("demo.purchases")
	switch {
	case comments.Via == nil || len(comments.Path()) != 2:
		t.Errorf("demo.project_comments is not reached via projects: %+v", comments)
	case reviews.Action != datamap.ActionAnonymize || len(reviews.Anonymize) != 3:
		t.Errorf("demo.reviews is not anonymized: %+v", reviews)
	case purchases.Hold == nil || purchases.Hold.Since != "purchased_at":
		t.Errorf("demo.purchases hold %+v", purchases.Hold)
	case m.Backups == nil || len(m.Backups.Locations) != 1 || m.Backups.Locations[0].Bucket != "lethe-backups":
		t.Errorf("backups %+v", m.Backups)
	}
	if len(m.Tables) < 6 {
		t.Errorf("%d tables: the erasure tests want at least 6", len(m.Tables))
	}

	if err := demo.Seed(ctx, pool, nil, demo.SeedOptions{Accounts: 2, SkipObjectUpload: true}); err != nil {
		t.Fatal(err)
	}
	person := demo.Accounts(1)[0]
	left, err := appdb.Remaining(ctx, pool, m, appdb.Person{UserID: person.ID}, "unused", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]int{}
	for _, l := range left {
		found[l.Table] = l.Rows
	}
	for _, tb := range m.Tables {
		if tb.Action != datamap.ActionRetain && found[tb.Name] == 0 {
			t.Errorf("%s: the seed gives the person no rows", tb.Name)
		}
	}
	if found["demo.project_comments"] != 4 || found["demo.reviews"] != 1 {
		t.Errorf("seeded comments and reviews: %v", found)
	}

	// Erasing in EraseOrder's order goes through the demo's foreign keys.
	order, err := appdb.EraseOrder(ctx, pool, m)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(order))
	for i, tb := range order {
		names[i] = tb.Name
	}
	if c, p := slices.Index(names, "demo.project_comments"), slices.Index(names, "demo.projects"); c < 0 || c > p {
		t.Errorf("order %v: comments must go before projects", names)
	}
	if f, p := slices.Index(names, "demo.project_files"), slices.Index(names, "demo.projects"); f > p {
		t.Errorf("order %v: files must go before projects", names)
	}
}

// deploy/datamap.yaml, which docker-compose.yml mounts, is the demo map
// without processors: DataMapWithoutProcessors.
func TestDeployDataMapIsTheDemoMapWithoutProcessors(t *testing.T) {
	deployed, err := datamap.Load(filepath.Join("..", "..", "deploy", "datamap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := demo.DataMapWithoutProcessors()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := yaml.Marshal(deployed)
	wantText, _ := yaml.Marshal(want)
	if string(got) != string(wantText) {
		t.Errorf("deploy/datamap.yaml drifted from the demo map without processors: regenerate it from internal/demo/datamap.yaml\n--- deploy\n%s\n--- demo without processors\n%s", got, wantText)
	}
}
