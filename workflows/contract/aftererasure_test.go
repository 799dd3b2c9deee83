package contract_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/workflows/contract"
)

// What outlives a page of 200 people erased at 12 processors, each with
// two held tables, is cut into inputs the server accepts: every follow-up
// and hold in exactly one, in order, the backups watch in the first.
func TestWhatOutlivesABigPageIsSplitIntoInputsTheServerAccepts(t *testing.T) {
	now := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	in := contract.AfterErasureInput{RequestID: "bulk_p1", Backups: &contract.BackupWatchInput{RequestID: "bulk_p1", ErasedAt: now}}
	for p := range contract.BulkPageSize {
		ref := fmt.Sprintf("sr_%032d", p)
		for k := range 12 {
			in.FollowUps = append(in.FollowUps, contract.ProcessorFollowUpInput{RequestID: "bulk_p1:" + ref, SubjectRef: ref, Processor: fmt.Sprintf("processor-%d", k),
				After: 720 * time.Hour, DueAt: now, Erasure: contract.ProcessorCall{Processor: fmt.Sprintf("processor-%d", k), Status: contract.ProcessorCallDone, HTTPStatus: 200,
					JobID: "job_0123456789", Refs: []contract.ProcessorRef{{Kind: "customer", ID: "cus_0123456789abcdef"}}}})
		}
		for _, table := range []string{"shop.orders", "shop.order_lines"} {
			in.HeldInBulk = append(in.HeldInBulk, contract.BulkHold{Ref: ref, RequestID: "bulk_p1:" + ref,
				Held: contract.HeldRows{Table: table, Until: now, HoldRef: "hold:" + table + ":" + ref, Sealed: make([]byte, 120)}})
		}
	}
	if whole, _ := json.Marshal(in); len(whole) < 1<<20 {
		t.Fatalf("the whole input is %d bytes: the test wants one past 1 MiB", len(whole))
	}
	parts := in.Split(contract.AfterErasureItemsMax)
	if len(parts) != 2 {
		t.Fatalf("%d parts, want 2 for %d items", len(parts), len(in.FollowUps)+len(in.HeldInBulk))
	}
	var followUps []contract.ProcessorFollowUpInput
	var held []contract.BulkHold
	for i, p := range parts {
		if n := len(p.FollowUps) + len(p.HeldInBulk); n > contract.AfterErasureItemsMax || n == 0 {
			t.Errorf("part %d has %d items", i, n)
		}
		if b, _ := json.Marshal(p); len(b) > 900<<10 {
			t.Errorf("part %d is %d bytes, want under 900 kB", i, len(b))
		}
		if (p.Backups != nil) != (i == 0) || p.RequestID != "bulk_p1" {
			t.Errorf("part %d: backups %v, request %q", i, p.Backups, p.RequestID)
		}
		followUps, held = append(followUps, p.FollowUps...), append(held, p.HeldInBulk...)
	}
	if !slices.EqualFunc(followUps, in.FollowUps, func(a, b contract.ProcessorFollowUpInput) bool {
		return a.RequestID == b.RequestID && a.Processor == b.Processor
	}) ||
		!slices.EqualFunc(held, in.HeldInBulk, func(a, b contract.BulkHold) bool { return a.Held.HoldRef == b.Held.HoldRef }) {
		t.Fatal("the parts do not hold every follow-up and hold once, in order")
	}
	// Appending to a part does not write into the next.
	parts[0].FollowUps = append(parts[0].FollowUps, contract.ProcessorFollowUpInput{Processor: "extra"})
	if len(parts[1].FollowUps) > 0 && parts[1].FollowUps[0].Processor == "extra" {
		t.Fatal("the parts share their backing arrays")
	}
	// A page that fits is one input, as it was.
	small := contract.AfterErasureInput{RequestID: "bulk_p2", FollowUps: in.FollowUps[:800], HeldInBulk: in.HeldInBulk[:400], Backups: in.Backups}
	if got := small.Split(contract.AfterErasureItemsMax); len(got) != 1 || len(got[0].FollowUps) != 800 || len(got[0].HeldInBulk) != 400 || got[0].Backups == nil {
		t.Fatalf("a page that fits: %d parts", len(got))
	}
	if got := contract.AfterErasurePartWorkflowID("bulk_p1", 1); got != "bulk_p1-after-2" || contract.AfterErasurePartWorkflowID("bulk_p1", 0) != contract.AfterErasureWorkflowID("bulk_p1") {
		t.Fatalf("part ids: %s", got)
	}
}
