package registry_test

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/worker/registry"
)

// Running workflow histories name their activities by the name the worker
// registered them under: a struct's method name. Renaming a method together
// with its calls still builds, and would strand every history that
// recorded the old name. The names are pinned here: a rename fails this
// test and needs a decision (keep the old name, or version the workflow).
// After a deliberate addition, regenerate with LETHE_UPDATE_NAMES=1.
func TestRegisteredActivityNamesAreTheOnesHistoriesRecorded(t *testing.T) {
	var names []string
	acts := reflect.ValueOf(registry.NewActivities(registry.Deps{}))
	for i := range acts.NumField() {
		for m := range acts.Field(i).Type().Methods() {
			names = append(names, m.Name)
		}
	}
	slices.Sort(names)
	got := strings.Join(names, "\n") + "\n"
	const golden = "testdata/activity-names.txt"
	if os.Getenv("LETHE_UPDATE_NAMES") == "1" {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range strings.Fields(string(want)) {
		if !slices.Contains(names, name) {
			t.Errorf("activity %s is no longer registered: histories that recorded it cannot continue (keep the method name, or version the workflows that call it)", name)
		}
	}
	for _, name := range names {
		if !strings.Contains("\n"+string(want), "\n"+name+"\n") {
			t.Errorf("activity %s is new: add it to %s (LETHE_UPDATE_NAMES=1)", name, golden)
		}
	}
}
