package workflows_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/lethe-privacy/lethe/workflows"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// afterFake answers what AfterErasure asks, noting when: each processor's
// check, each backup listing (a location whose last older backup rotates
// out 35 days after the erasure), each erasure of held rows (a hold ending
// in ten years, its last row three months later), keys destroyed, the
// ledger, audits and mails.
type afterFake struct {
	env       *testsuite.TestWorkflowEnvironment
	mu        sync.Mutex
	erasedAt  time.Time
	confirmed map[string][]time.Time // processor -> check times
	listings  int
	clear     []contract.MarkBackupsClearInput
	heldAt    []time.Time
	shredded  []string
	audits    []string
	mails     []string
}

var (
	holdEnds     = time.Date(2037, 3, 1, 12, 0, 0, 0, time.UTC)
	lastHoldEnds = holdEnds.AddDate(0, 3, 0)
)

func newAfterFake(t *testing.T, env *testsuite.TestWorkflowEnvironment, erasedAt time.Time) *afterFake {
	f := &afterFake{env: env, erasedAt: erasedAt, confirmed: map[string][]time.Time{}}
	fake(env, atProcessor.ConfirmProcessorErasure, func(_ context.Context, in contract.ConfirmErasureInput) (contract.ProcessorCall, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.confirmed[in.Processor] = append(f.confirmed[in.Processor], env.Now())
		if in.Processor == "mailchimp" {
			return contract.ProcessorCall{Processor: in.Processor, Status: contract.ProcessorCallStillPresent, HTTPStatus: 200}, nil
		}
		return contract.ProcessorCall{Processor: in.Processor, Status: contract.ProcessorCallGone, HTTPStatus: 404}, nil
	})
	fake(env, ledger.CountBackupsBefore, func(_ context.Context, in contract.CountBackupsInput) (contract.CountBackupsResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.listings++
		if env.Now().Before(erasedAt.Add(35 * aDay)) {
			return contract.CountBackupsResult{Count: 3, Oldest: erasedAt.Add(-2 * aDay)}, nil
		}
		return contract.CountBackupsResult{}, nil
	})
	fake(env, ledger.MarkBackupsClear, func(_ context.Context, in contract.MarkBackupsClearInput) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.clear = append(f.clear, in)
		return nil
	})
	fake(env, eraser.EraseHeldRows, func(_ context.Context, in contract.EraseHeldInput) (contract.EraseHeldResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		now := env.Now()
		if now.Before(holdEnds) {
			t.Errorf("held rows erased at %s, before their hold ends (%s)", now, holdEnds)
		}
		f.heldAt = append(f.heldAt, now)
		if now.Before(lastHoldEnds) {
			return contract.EraseHeldResult{Deleted: 1, Next: lastHoldEnds}, nil
		}
		return contract.EraseHeldResult{Deleted: 2}, nil
	})
	fake(env, lc.ShredSubject, func(_ context.Context, ref string) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.shredded = append(f.shredded, ref)
		return nil
	})
	fake(env, lc.AppendAudit, func(_ context.Context, in contract.AuditInput) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.audits = append(f.audits, in.Action)
		return nil
	})
	fake(env, lc.SendRequestMail, func(_ context.Context, in contract.SendMailInput) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if !in.ToPrivacyTeam {
			t.Errorf("mail %s to the person, want the privacy team", in.Key)
		}
		f.mails = append(f.mails, in.Key)
		return nil
	})
	return f
}

// afterInput is what a request's erasure leaves: stripe and mailchimp
// checked 30 days after (30 minutes apart: together), crm after 60; one
// backup location of 35 days; one table's rows held for ten years.
func afterInput(erasedAt time.Time) contract.AfterErasureInput {
	check := func(p string, after time.Duration) contract.ProcessorFollowUpInput {
		return contract.ProcessorFollowUpInput{RequestID: "req_a", SubjectRef: "sr_a", Processor: p, Jurisdiction: "gdpr", After: after, DueAt: erasedAt.Add(after),
			Erasure: contract.ProcessorCall{Processor: p, Status: contract.ProcessorCallDone, Refs: []contract.ProcessorRef{{Kind: "customer", ID: "cus_1"}}}}
	}
	return contract.AfterErasureInput{
		RequestID: "req_a", SubjectRef: "sr_a",
		FollowUps: []contract.ProcessorFollowUpInput{check("stripe", 30*aDay), check("crm", 60*aDay), check("mailchimp", 30*aDay+30*time.Minute)},
		Backups: &contract.BackupWatchInput{RequestID: "req_a", ErasedAt: erasedAt, Promise: 40 * aDay, FirstCheckLater: true,
			Locations: []contract.BackupLocation{{Name: "nightly", Bucket: "backups", Prefix: "pg/", Rotation: 35 * aDay}}},
		Holds: []contract.HeldRows{{Table: "shop.invoices", Until: holdEnds, HoldRef: "hold:shop.invoices:sr_a", Sealed: []byte("sealed")}},
	}
}

func newAfterEnv(erasedAt time.Time) *testsuite.TestWorkflowEnvironment {
	env := newBackupEnv()
	env.SetStartTime(erasedAt)
	env.SetWorkflowRunTimeout(20 * 365 * aDay)
	return env
}

func TestOneWorkflowKeepsEveryPromiseThatOutlivesAnErasure(t *testing.T) {
	erasedAt := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	env := newAfterEnv(erasedAt)
	f := newAfterFake(t, env, erasedAt)
	var children []string
	env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, _ converter.EncodedValues) {
		children = append(children, info.WorkflowType.Name)
	})
	// Half-way through the hold, every part is where it should be.
	var midway contract.AfterErasureProgress
	env.RegisterDelayedCallback(func() {
		res, err := env.QueryWorkflow(contract.QueryProgress)
		if err == nil {
			err = res.Get(&midway)
		}
		if err != nil {
			t.Errorf("query: %v", err)
		}
	}, 5*365*aDay)
	env.ExecuteWorkflow(workflows.AfterErasure, afterInput(erasedAt))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res contract.AfterErasureProgress
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if len(children) != 0 {
		t.Fatalf("children %v: want everything in the one workflow", children)
	}

	// The processors: stripe and mailchimp together when the later one is
	// due, crm after 60 days; mailchimp still holds the data: the team is told.
	stripeAt, mailchimpAt, crmAt := f.confirmed["stripe"], f.confirmed["mailchimp"], f.confirmed["crm"]
	if len(stripeAt) != 1 || len(mailchimpAt) != 1 || len(crmAt) != 1 || !stripeAt[0].Equal(erasedAt.Add(30*aDay+30*time.Minute)) ||
		!mailchimpAt[0].Equal(stripeAt[0]) || !crmAt[0].Equal(erasedAt.Add(60*aDay)) {
		t.Fatalf("checks %v", f.confirmed)
	}
	// The backups: a check a day from the day after the erasure, until day 35.
	if f.listings != 35 || len(f.clear) != 1 || !f.clear[0].ClearAt.Equal(erasedAt.Add(35*aDay)) || f.clear[0].RequestID != "req_a" {
		t.Fatalf("%d listings, clear %+v", f.listings, f.clear)
	}
	// The hold: its rows when it ends, the last three months later, then its key.
	if !sameTimes(f.heldAt, holdEnds, lastHoldEnds) || !slices.Equal(f.shredded, []string{"hold:shop.invoices:sr_a"}) {
		t.Fatalf("held rows erased at %v, keys destroyed %v", f.heldAt, f.shredded)
	}
	for _, action := range []string{"processor.erasure_held", "processor.data_still_present", "erasure.backups_clear", "erasure.hold_ended"} {
		if !slices.Contains(f.audits, action) {
			t.Errorf("audit trail %v: no %s", f.audits, action)
		}
	}
	if !slices.Equal(f.mails, []string{"req_a:mailchimp:followup"}) {
		t.Errorf("mails %v: want only mailchimp's data still present", f.mails)
	}

	if midway.Backups == nil || midway.Backups.Status != contract.BackupsClear || len(midway.FollowUps) != 3 ||
		midway.FollowUps[1].Status != contract.ProcessorCallGone || len(midway.Holds) != 1 || !midway.Holds[0].Until.Equal(holdEnds) ||
		!midway.Holds[0].EndedAt.IsZero() {
		t.Fatalf("half-way: %+v", midway)
	}
	if res.Holds[0].Deleted != 3 || !res.Holds[0].EndedAt.Equal(lastHoldEnds) || !res.Holds[0].Until.IsZero() ||
		res.FollowUps[2].Status != contract.ProcessorCallStillPresent {
		t.Fatalf("at the end: %+v", res)
	}
}

// A run that grows long continues as new while every part waits, and the
// next run takes up each part where it stood: nothing checked, erased or
// recorded twice.
func TestAfterErasureContinuesAsNewWhereEveryPartStood(t *testing.T) {
	erasedAt := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	env := newAfterEnv(erasedAt)
	f := newAfterFake(t, env, erasedAt)
	// On day 45 the history is long: the follow-ups of day 30 are done,
	// the backups clear, crm (day 60) and the hold still wait.
	env.RegisterDelayedCallback(func() { env.SetCurrentHistoryLength(5000) }, 45*aDay)
	env.ExecuteWorkflow(workflows.AfterErasure, afterInput(erasedAt))
	err := env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	if can.WorkflowType.Name != contract.WorkflowAfterErasure {
		t.Fatalf("continues as %s", can.WorkflowType.Name)
	}
	var next contract.AfterErasureInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.State == nil || next.State.Backups == nil || next.State.Backups.ClearAt.IsZero() || next.State.FollowUps[0].CheckedAt.IsZero() ||
		!next.State.FollowUps[1].CheckedAt.IsZero() || len(next.State.Holds) != 1 || !next.State.Holds[0].Held.Until.Equal(holdEnds) {
		t.Fatalf("state carried: %+v", next.State)
	}
	if len(f.confirmed["stripe"]) != 1 || len(f.confirmed["crm"]) != 0 || len(f.clear) != 1 {
		t.Fatalf("before continuing: checks %v, clear %d", f.confirmed, len(f.clear))
	}

	// The next run, from where the first stood.
	env2 := newAfterEnv(erasedAt.Add(45 * aDay))
	f2 := newAfterFake(t, env2, erasedAt)
	env2.ExecuteWorkflow(workflows.AfterErasure, next)
	if err := env2.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(f2.confirmed["stripe"]) != 0 || len(f2.confirmed["mailchimp"]) != 0 || len(f2.confirmed["crm"]) != 1 ||
		!f2.confirmed["crm"][0].Equal(erasedAt.Add(60*aDay)) {
		t.Fatalf("checks after continuing: %v", f2.confirmed)
	}
	if f2.listings != 0 || len(f2.clear) != 0 || slices.Contains(f2.audits, "erasure.backups_clear") {
		t.Fatalf("the backups were checked again after they were clear: %d listings, %v", f2.listings, f2.audits)
	}
	if !sameTimes(f2.heldAt, holdEnds, lastHoldEnds) || len(f2.shredded) != 1 {
		t.Fatalf("held rows erased at %v, keys %v", f2.heldAt, f2.shredded)
	}
}

// A part that fails for good (its activity refuses) fails the workflow,
// naming it, rather than leaving it waiting forever.
func TestAfterErasureFailsWhenAPartFailsForGood(t *testing.T) {
	erasedAt := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	env := newAfterEnv(erasedAt)
	fake(env, ledger.CountBackupsBefore, func(context.Context, contract.CountBackupsInput) (contract.CountBackupsResult, error) {
		return contract.CountBackupsResult{}, temporal.NewNonRetryableApplicationError("no such bucket", "BadInput", nil)
	})
	newAfterFake(t, env, erasedAt)
	env.ExecuteWorkflow(workflows.AfterErasure, afterInput(erasedAt))
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "list backup location nightly") {
		t.Fatalf("want the backups part's failure, got %v", err)
	}
}

// A bulk page's AfterErasure keeps its people's holds beside its
// follow-ups: at each end, the rows of the holds that ended go, a hold
// with rows held longer waits for its next end, and nothing is released
// twice, across a continue-as-new too.
func TestAfterErasureOfABulkPageReleasesEachHoldWhenItEnds(t *testing.T) {
	erasedAt := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	hold := func(ref string, until time.Time) contract.BulkHold {
		return contract.BulkHold{Ref: ref, RequestID: "bulk_p1:" + ref, Held: contract.HeldRows{Table: "shop.orders", Until: until, HoldRef: "hold:shop.orders:" + ref}}
	}
	// Anna's hold ends first, but a later order of hers is held three months
	// more; Ben's ends a year later.
	in := contract.AfterErasureInput{RequestID: "bulk_p1",
		FollowUps: []contract.ProcessorFollowUpInput{{RequestID: "bulk_p1:sr_anna", SubjectRef: "sr_anna", Processor: "stripe", After: 30 * aDay, DueAt: erasedAt.Add(30 * aDay),
			Erasure: contract.ProcessorCall{Processor: "stripe", Status: contract.ProcessorCallDone}}},
		HeldInBulk: []contract.BulkHold{hold("sr_anna", holdEnds), hold("sr_ben", holdEnds.AddDate(1, 0, 0))}}
	type release struct {
		at   time.Time
		refs []string
	}
	run := func(env *testsuite.TestWorkflowEnvironment, releases *[]release) {
		newAfterFake(t, env, erasedAt)
		fake(env, bulk.ReleaseDueHolds, func(_ context.Context, in contract.ReleaseDueInput) (contract.ReleaseDueResult, error) {
			now := env.Now()
			out := contract.ReleaseDueResult{Next: make([]time.Time, len(in.Holds))}
			r := release{at: now}
			for i, h := range in.Holds {
				switch {
				case h.Held.Until.After(now):
					out.Next[i] = h.Held.Until
				case h.Ref == "sr_anna" && now.Before(lastHoldEnds):
					out.Deleted++
					out.Next[i] = lastHoldEnds
				default:
					out.Deleted++
					out.Released = append(out.Released, i)
					r.refs = append(r.refs, h.Ref)
				}
			}
			if in.Batch != "bulk_p1" {
				t.Errorf("released under batch %q", in.Batch)
			}
			*releases = append(*releases, r)
			return out, nil
		})
	}

	// The first run grows long on day 45: its follow-up made, both holds waiting.
	env := newAfterEnv(erasedAt)
	var first []release
	run(env, &first)
	env.RegisterDelayedCallback(func() { env.SetCurrentHistoryLength(5000) }, 45*aDay)
	env.ExecuteWorkflow(workflows.AfterErasure, in)
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	var next contract.AfterErasureInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if len(first) != 0 || next.State == nil || next.State.HeldInBulk == nil || len(next.State.HeldInBulk.Left) != 2 || next.HeldInBulk != nil ||
		next.State.FollowUps[0].CheckedAt.IsZero() {
		t.Fatalf("before continuing: releases %v, next %+v", first, next)
	}

	// The second grows long a day after Anna's first end: her later order
	// still held, Ben's hold untouched.
	env2 := newAfterEnv(erasedAt.Add(45 * aDay))
	var releases []release
	run(env2, &releases)
	env2.RegisterDelayedCallback(func() { env2.SetCurrentHistoryLength(5000) }, holdEnds.Add(aDay).Sub(erasedAt.Add(45*aDay)))
	env2.ExecuteWorkflow(workflows.AfterErasure, next)
	if err := env2.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want a second continue-as-new, got %v", err)
	}
	var third contract.AfterErasureInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &third); err != nil {
		t.Fatal(err)
	}
	if b := third.State.HeldInBulk; b == nil || len(b.Left) != 2 || b.Deleted != 1 || !b.Left[0].Held.Until.Equal(lastHoldEnds) ||
		!b.Left[1].Held.Until.Equal(holdEnds.AddDate(1, 0, 0)) {
		t.Fatalf("carried after Anna's first end: %+v", third.State.HeldInBulk)
	}

	env3 := newAfterEnv(holdEnds.Add(aDay))
	run(env3, &releases)
	env3.ExecuteWorkflow(workflows.AfterErasure, third)
	if err := env3.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res contract.AfterErasureProgress
	if err := env3.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	// Anna's first end (one order), her last (the other, and her hold),
	// then Ben's: each when it comes, never before.
	want := []release{{holdEnds, nil}, {lastHoldEnds, []string{"sr_anna"}}, {holdEnds.AddDate(1, 0, 0), []string{"sr_ben"}}}
	if !slices.EqualFunc(releases, want, func(a, b release) bool { return a.at.Equal(b.at) && slices.Equal(a.refs, b.refs) }) {
		t.Fatalf("releases %v, want %v", releases, want)
	}
	if h := res.HeldInBulk; h == nil || h.Left != 0 || h.Deleted != 3 || !h.Next.IsZero() {
		t.Fatalf("at the end: %+v", res.HeldInBulk)
	}
}

// sameTimes: got holds the instants of want, in order.
func sameTimes(got []time.Time, want ...time.Time) bool {
	return slices.EqualFunc(got, want, time.Time.Equal)
}
