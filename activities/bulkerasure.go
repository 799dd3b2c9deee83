package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/lethe-privacy/lethe/internal/appdb"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/ledger"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// BulkErasure erases pages of people (the inactivity sweep's, a restore-
// reconcile's) with everything an erasure does for one person: the erasure
// ledger first, the application database in one transaction per page in
// foreign-key order, every S3 location, the verification pass, a receipt
// per person, and the legal holds released when they end. The processors
// are asked by the workflow on each processor's rate-limited queue: one
// call per person (ProcessorErasure.EraseAtProcessor), or batch jobs where
// the processor has a batch API (StartProcessorBatch).
type BulkErasure struct {
	Erasure   *Erasure
	Lifecycle *Lifecycle
	Ledger    *Ledger
}

// bulkAccount is what a page seals of each person to erase: enough to find
// them in the application.
type bulkAccount struct {
	UserID string `json:"user_id"`
	Email  string `json:"email,omitempty"`
}

// sealBulkSubject seals one person for a bulk erasure under the batch's key.
func sealBulkSubject(ctx context.Context, keys *person.Keyring, batch, ref, userID, email string) (contract.BulkSubject, error) {
	b, err := json.Marshal(bulkAccount{UserID: userID, Email: email})
	if err != nil {
		return contract.BulkSubject{}, err
	}
	sealed, err := keys.Seal(ctx, contract.BulkKeyRef(batch), b)
	if err != nil {
		return contract.BulkSubject{}, classifyDB(fmt.Errorf("seal a person for the bulk erasure: %w", err))
	}
	return contract.BulkSubject{Ref: ref, Sealed: sealed}, nil
}

// PrepareBulkErasure reads, before anything is erased, what every person of
// the page is known by (their identifiers, their ids at processors) and
// seals it under the batch's key: the processors and the verification
// need it after the rows are gone. It changes nothing.
func (b *BulkErasure) PrepareBulkErasure(ctx context.Context, in contract.BulkErasureInput) (contract.BulkPlan, error) {
	e := b.Erasure
	keyRef := contract.BulkKeyRef(in.Batch)
	var plan contract.BulkPlan
	var err error
	if plan.Processors, plan.Backups, plan.BackupPromise, err = e.beyondTheDatabase(); err != nil {
		return plan, err
	}
	plan.MapDigest = e.Map.Digest()
	for i, p := range plan.Processors {
		// A processor with a batch API erases the page in jobs, not a call a person.
		if be, ok := e.Processors.BatchEraser(p.Name); ok {
			plan.Processors[i].BatchSize = be.BatchSize()
		}
	}
	for i, s := range in.Subjects {
		raw, err := e.Keys.Open(ctx, keyRef, s.Sealed)
		if errors.Is(err, person.ErrKeyDestroyed) {
			return plan, temporal.NewNonRetryableApplicationError("the batch's key is destroyed: the page was finished before", "BatchFinished", nil)
		}
		if err != nil {
			return plan, classifyDB(fmt.Errorf("open a person of the batch: %w", err))
		}
		var acc bulkAccount
		if err := json.Unmarshal(raw, &acc); err != nil || acc.UserID == "" {
			return plan, temporal.NewNonRetryableApplicationError("a person of the batch is unreadable", "BadBatch", nil)
		}
		ids, err := e.processorIDs(ctx, acc.UserID)
		if err != nil {
			return plan, err
		}
		idents, err := appdb.Identifiers(ctx, e.App, e.Map, acc.UserID)
		if err != nil {
			return plan, classifyDB(err)
		}
		if acc.Email == "" { // a reconcile knows the account only: its address as the application has it
			acc.Email = appEmail(e.Map, idents)
		}
		withEmail(idents, e.Map, acc.Email)
		sealed, err := person.Seal(ctx, e.Keys, keyRef, person.Identity{Email: acc.Email, UserID: acc.UserID, IDs: ids, Identifiers: idents})
		if err != nil {
			return plan, classifyDB(fmt.Errorf("seal the identity: %w", err))
		}
		plan.People = append(plan.People, contract.BulkPerson{Ref: s.Ref, RequestID: contract.BulkRequestID(in.Batch, s.Ref), Identity: sealed})
		if i%50 == 0 {
			activity.RecordHeartbeat(ctx, i)
		}
	}
	return plan, nil
}

// appEmail is the person's address among their identifiers, unless it is
// an erased account's placeholder: "" when there is none.
func appEmail(m *datamap.Map, idents map[string][]string) string {
	col := ""
	switch {
	case m.Identity != nil:
		col = m.Identity.Email
	case m.Accounts != nil:
		col = m.Accounts.Email
	}
	for _, v := range idents[col] {
		if v != "" && !strings.HasSuffix(v, appdb.ErasedEmailSuffix) {
			return v
		}
	}
	return ""
}

// bulkObjects is what a page's S3 pass recorded of one person.
type bulkObjects struct {
	Entries []contract.ReceiptEntry `json:"entries"`
	Objects int                     `json:"objects"`
}

// EraseBulkPage erases the page's people: into the erasure ledger first;
// then their rows in one transaction, in foreign-key order, kept under a
// legal hold where the data map says (each hold sealed with a key of its
// own); then their objects in every S3 location, every version included;
// then every table and location is read again, with the search for their
// identifiers that does not trust the map. What each step did is recorded
// as it happens, so a retried page (a worker died) redoes nothing and
// still reports what went. A person with data left is reported, not
// failed: the others' erasure goes on.
func (b *BulkErasure) EraseBulkPage(ctx context.Context, in contract.BulkPageInput) (contract.BulkPageResult, error) {
	e := b.Erasure
	keyRef := contract.BulkKeyRef(in.Batch)
	type one struct {
		p  appdb.Person
		id person.Identity
	}
	people := make([]one, len(in.People))
	for i, bp := range in.People {
		id, err := openIdentity(ctx, e.Keys, keyRef, bp.Identity)
		if err != nil {
			return contract.BulkPageResult{}, err
		}
		p := appdb.Person{UserID: id.UserID, Identifiers: id.Identifiers}
		withEmail(p.Identifiers, e.Map, id.Email)
		people[i] = one{p: p, id: id}
	}
	now := in.RunAt
	if now.IsZero() {
		now = time.Now()
	}
	// The ledger first: no restore brings anyone of the page back, even
	// if the worker dies in the middle.
	if in.Why != contract.BulkReconcile {
		for i, bp := range in.People {
			// The page names the erasure: the backups watch marks the
			// page's people clear by it.
			if err := ledger.Record(ctx, e.Lethe, bp.Ref, in.Batch, e.Map.Digest(), now); err != nil {
				return contract.BulkPageResult{}, classifyDB(err)
			}
			if i%50 == 0 {
				activity.RecordHeartbeat(ctx, "ledger", i)
			}
		}
	}

	// The database: one transaction for the page.
	order, err := appdb.EraseOrder(ctx, e.App, e.Map)
	if err != nil {
		return contract.BulkPageResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "BadDataMap", nil)
	}
	results := make([][]appdb.TableResult, len(people))
	refused := make([]string, len(people)) // why the database refused a person's erasure
	err = pgx.BeginFunc(ctx, e.App, func(tx pgx.Tx) error {
		for i, o := range people {
			refused[i] = ""
			// Each person in a savepoint of their own: one the database
			// refuses (a constraint, a value) fails alone, not the page.
			err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
				res, err := e.erasePerson(ctx, sp, order, o.p, time.Now())
				if err != nil {
					return err
				}
				results[i] = res
				// Recorded before the commit: a retry after it finds nothing
				// left, and the receipt says what this run erased.
				if done := tableOutcomes(res); done != nil {
					return e.recordStep(ctx, in.People[i].RequestID, "tables", done)
				}
				return nil
			})
			var app *temporal.ApplicationError
			if err != nil && errors.As(classifyDB(err), &app) && app.NonRetryable() && ctx.Err() == nil {
				refused[i] = "the application database refused the erasure (" + app.Type() + "): erase this person on their own to see why"
				results[i] = nil
			} else if err != nil {
				return err
			}
			if i%20 == 0 {
				activity.RecordHeartbeat(ctx, "tables", i)
			}
		}
		return nil
	})
	if err != nil {
		return contract.BulkPageResult{}, classifyDB(err)
	}
	out := contract.BulkPageResult{People: make([]contract.BulkOutcome, len(people))}
	for i, o := range people {
		bp := in.People[i]
		if refused[i] != "" {
			out.People[i] = contract.BulkOutcome{Ref: bp.Ref, Leftovers: []string{refused[i]}}
			continue
		}
		res := results[i]
		outcome := contract.BulkOutcome{Ref: bp.Ref}
		for _, t := range res {
			if t.Action != appdb.Retained {
				outcome.Items += t.Rows
				continue
			}
			if t.Rows == 0 || in.Why == contract.BulkReconcile {
				// A reconcile's held rows are still the first erasure's,
				// whose ReleaseHold finds them (restored or not) at its end.
				continue
			}
			holdRef := holdRefOf(t.Table, bp.RequestID)
			sealed, err := e.Keys.Seal(ctx, holdRef, sealedHold(o.p))
			if err != nil {
				return out, classifyDB(fmt.Errorf("seal the hold of %s: %w", t.Table, err))
			}
			outcome.Held = append(outcome.Held, contract.HeldRows{Table: t.Table, Until: t.Until, HoldRef: holdRef, Sealed: sealed})
		}
		if tableOutcomes(res) == nil { // an earlier attempt committed: count what it recorded
			var recorded []contract.TableOutcome
			if _, err := e.records().ErasureStep(ctx, bp.RequestID, "tables", &recorded); err != nil {
				return out, classifyDB(err)
			}
			for _, t := range recorded {
				if t.Action != appdb.Retained {
					outcome.Items += t.Rows
				}
			}
		}
		out.People[i] = outcome
	}
	activity.RecordHeartbeat(ctx, "tables")

	// S3: every location, every version; recorded per person.
	for i, o := range people {
		bp := in.People[i]
		if refused[i] != "" {
			continue
		}
		var objs bulkObjects
		found, err := e.records().ErasureStep(ctx, bp.RequestID, "objects", &objs)
		if err != nil {
			return out, classifyDB(err)
		}
		if !found {
			for l := range e.Map.S3 {
				hb := objectsHeartbeat{Location: l}
				if err := e.deleteObjects(ctx, "", o.p.UserID, &hb, func() { activity.RecordHeartbeat(ctx, "objects", i) }); err != nil {
					return out, err
				}
				loc := e.Map.S3[l]
				entry := contract.ReceiptEntry{System: contract.SystemS3, Name: loc.Bucket + "/" + loc.Prefix, Action: "deleted", Count: hb.Objects}
				if hb.Versions != hb.Objects {
					entry.Confirmation = fmt.Sprintf("%d versions and delete markers", hb.Versions)
				}
				objs.Entries = append(objs.Entries, entry)
				objs.Objects += hb.Objects
			}
			if err := e.recordStep(ctx, bp.RequestID, "objects", objs); err != nil {
				return out, classifyDB(err)
			}
		}
		out.People[i].Items += objs.Objects
	}

	// Read everything again: the independent search once for the whole
	// page, then each person's tables and locations. Someone a reconcile
	// found erased and still gone is not searched again.
	var verify []int
	var sought []appdb.Sought
	for i, o := range people {
		if refused[i] != "" || in.Why == contract.BulkReconcile && out.People[i].Items == 0 {
			continue
		}
		verify = append(verify, i)
		sought = append(sought, appdb.Sought{Person: o.p, Known: knownOf(o.id)})
	}
	traces, err := appdb.TracesOfPage(ctx, e.App, e.Map, sought, func(string) { activity.RecordHeartbeat(ctx, "verify") })
	if err != nil {
		return out, classifyDB(err)
	}
	for k, i := range verify {
		left, err := e.leftoversBeside(ctx, people[i].p, traces[k])
		if err != nil {
			return out, err
		}
		out.People[i].Leftovers = left
		activity.RecordHeartbeat(ctx, "verify", i)
	}
	return out, nil
}

// afterErasure keeps the books of the page's source for one person whose
// erasure completed everywhere: the sweep's inactivity notice and its
// audit entry (the keys the sweep always used, so nobody is recorded
// twice), the reconcile's count in the ledger and its "erasure.reapplied"
// entry. Someone whose erasure did not complete is not marked: the next
// sweep finds them due again.
func (b *BulkErasure) afterErasure(ctx context.Context, in contract.BulkReceiptsInput, o contract.BulkReceipt) error {
	switch in.Why {
	case contract.BulkReconcile:
		if o.Items == 0 {
			return nil // erased and still gone
		}
		return b.Ledger.recordReapplied(ctx, contract.ReconcilePageInput{RunRef: in.RunRef, RunAt: in.SweptAt}, o.Ref, o.Items)
	case contract.BulkInactive:
		if err := b.Lifecycle.records().MarkInactiveErased(ctx, o.Ref, in.SweptAt); err != nil {
			return classifyDB(err)
		}
	}
	return b.Lifecycle.AppendAudit(ctx, contract.AuditInput{SubjectRef: o.Ref, Actor: "system", Action: "account.erased_" + in.Why,
		Detail: map[string]string{"items": fmt.Sprint(o.Items), "batch": in.Batch}, Key: sweptKey(o.Ref, in.Why)})
}

// RecordBulkReceipts writes each person's receipt into the audit trail
// ("erasure.receipt", once per person and batch): what each table and S3
// location did, as recorded when it happened, and what each processor
// confirmed. A person whose erasure did not complete gets
// "erasure.incomplete" instead, naming the systems.
func (b *BulkErasure) RecordBulkReceipts(ctx context.Context, in contract.BulkReceiptsInput) error {
	e := b.Erasure
	for i, p := range in.People {
		if in.Why == contract.BulkReconcile && p.Items == 0 && len(p.Failed) == 0 {
			continue // erased before and still gone: nothing done, nothing to prove
		}
		if len(p.Failed) > 0 {
			if err := b.Lifecycle.AppendAudit(ctx, contract.AuditInput{SubjectRef: p.Ref, Actor: "system", Action: "erasure.incomplete",
				Detail: map[string]string{"batch": in.Batch, "why": in.Why, "failed": fmt.Sprint(p.Failed)},
				Key:    p.RequestID + ":erasure.incomplete"}); err != nil {
				return err
			}
			continue
		}
		receipt := contract.Receipt{RequestID: p.RequestID, CompletedAt: in.RunAt, MapDigest: e.Map.Digest()}
		var tables []contract.TableOutcome
		if _, err := e.records().ErasureStep(ctx, p.RequestID, "tables", &tables); err != nil {
			return classifyDB(err)
		}
		for _, t := range tables {
			receipt.Add(contract.ReceiptEntry{System: contract.SystemPostgres, Name: t.Table, Action: t.Action, Count: t.Rows, Basis: t.Reason, Until: t.Until})
		}
		var objs bulkObjects
		if _, err := e.records().ErasureStep(ctx, p.RequestID, "objects", &objs); err != nil {
			return classifyDB(err)
		}
		for _, entry := range objs.Entries {
			receipt.Add(entry)
		}
		for _, entry := range p.Entries {
			receipt.Add(entry)
		}
		detail := receipt.AuditDetail()
		detail["batch"], detail["why"] = in.Batch, in.Why
		if err := b.Lifecycle.AppendAudit(ctx, contract.AuditInput{SubjectRef: p.Ref, Actor: "system", Action: "erasure.receipt",
			Detail: detail, Key: p.RequestID + ":erasure.receipt"}); err != nil {
			return err
		}
		if err := b.afterErasure(ctx, in, p); err != nil {
			return err
		}
		if i%50 == 0 {
			activity.RecordHeartbeat(ctx, i)
		}
	}
	return nil
}

// ReleaseDueHolds erases the held rows of every hold of the page whose
// period has ended, and says when each of the others ends next. A hold
// with nothing left is released for good: its key is destroyed and the end
// is audited ("erasure.hold_ended").
func (b *BulkErasure) ReleaseDueHolds(ctx context.Context, in contract.ReleaseDueInput) (contract.ReleaseDueResult, error) {
	out := contract.ReleaseDueResult{Next: make([]time.Time, len(in.Holds))}
	now := time.Now()
	for i, h := range in.Holds {
		if h.Held.Until.After(now) {
			out.Next[i] = h.Held.Until
			continue
		}
		res, err := b.Erasure.EraseHeldRows(ctx, contract.EraseHeldInput{RequestID: h.RequestID, Held: h.Held})
		if err != nil {
			return out, err
		}
		out.Deleted += res.Deleted
		if !res.Next.IsZero() {
			out.Next[i] = res.Next
			continue
		}
		// Audited before the key goes: a retry after the key was destroyed
		// finds nothing to delete, and its entry (rows: 0) is not the one kept.
		if err := b.Lifecycle.AppendAudit(ctx, contract.AuditInput{SubjectRef: h.Ref, Actor: "system", Action: "erasure.hold_ended",
			Detail: map[string]string{"batch": in.Batch, "table": h.Held.Table, "rows": fmt.Sprint(res.Deleted)},
			Key:    h.RequestID + ":hold_ended:" + h.Held.Table}); err != nil {
			return out, err
		}
		if err := b.Erasure.Keys.Destroy(ctx, h.Held.HoldRef); err != nil && !errors.Is(err, person.ErrKeyDestroyed) {
			return out, classifyDB(fmt.Errorf("destroy the hold's key: %w", err))
		}
		out.Released = append(out.Released, i)
		activity.RecordHeartbeat(ctx, i)
	}
	return out, nil
}
