package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/lethe-privacy/lethe/internal/appdb"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/ledger"
	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// Erasure erases a person's data from the systems of the data map: the
// application database, S3, and (through ProcessorErasure) the processors.
type Erasure struct {
	App        *pgxpool.Pool // the application database
	Lethe      *pgxpool.Pool // Lethe's own database: what each step did (store.RecordErasureStep)
	Objects    *s3.Client
	Map        *datamap.Map
	Keys       *person.Keyring
	Subjects   *person.Hasher       // keys the pseudonym of anonymized columns
	Processors *processors.Registry // nil when the data map names none
	Log        *slog.Logger
}

// person opens the erasure's identity (sealed by PlanErasure, the user id
// resolved and the identifiers read) and returns whom the statements on
// the application database look for, and the identity.
func (e *Erasure) person(ctx context.Context, ref string, sealed []byte) (appdb.Person, person.Identity, error) {
	id, err := openIdentity(ctx, e.Keys, ref, sealed)
	if err != nil {
		return appdb.Person{}, id, err
	}
	userID, err := resolveUserID(ctx, e.App, e.Map, id)
	if err != nil {
		return appdb.Person{}, id, err
	}
	if userID == "" {
		return appdb.Person{}, id, temporal.NewNonRetryableApplicationError("the application does not know this person", "UnknownSubject", nil)
	}
	p := appdb.Person{UserID: userID, Identifiers: id.Identifiers}
	if p.Identifiers == nil { // sealed before identifiers were read at plan time
		if p.Identifiers, err = appdb.Identifiers(ctx, e.App, e.Map, userID); err != nil {
			return appdb.Person{}, id, classifyDB(err)
		}
	}
	withEmail(p.Identifiers, e.Map, id.Email)
	return p, id, nil
}

// withEmail adds email to the identity email column's values in ids.
func withEmail(ids map[string][]string, m *datamap.Map, email string) {
	if m.Identity == nil || email == "" {
		return
	}
	col := m.Identity.Email
	for _, v := range ids[col] {
		if strings.EqualFold(v, email) {
			return
		}
	}
	ids[col] = append(ids[col], email)
}

// userID opens the erasure's identity (sealed by PlanErasure, the user id
// resolved) and returns the person's user id.
func (e *Erasure) userID(ctx context.Context, ref string, sealed []byte) (string, error) {
	id, err := openIdentity(ctx, e.Keys, ref, sealed)
	if err != nil {
		return "", err
	}
	userID, err := resolveUserID(ctx, e.App, e.Map, id)
	if err != nil {
		return "", err
	}
	if userID == "" {
		return "", temporal.NewNonRetryableApplicationError("the application does not know this person", "UnknownSubject", nil)
	}
	return userID, nil
}

// pseudonym is the person's keyed pseudonym, written into columns the data
// map anonymizes with "hash": rows of one person stay linkable to each
// other, never to the person without Lethe's key.
func (e *Erasure) pseudonym(userID string) string { return e.Subjects.Value("pseudonym", userID) }

// PlanErasure resolves the person once and lists what the data map says to
// erase. The identity it returns carries the user id, so later steps find
// the person even after the account row is anonymized.
func (e *Erasure) PlanErasure(ctx context.Context, in contract.ErasureInput) (contract.ErasurePlan, error) {
	plan, _, err := e.plan(ctx, in)
	return plan, err
}

// PlanAndRecordErasure is PlanErasure and then the ledger's entry
// (Ledger.RecordErasure) in one activity, as an erasure run inside its
// request calls them: the ledger still has the person before anything is
// erased. Running it again plans again and keeps the first ledger entry.
func (e *Erasure) PlanAndRecordErasure(ctx context.Context, in contract.ErasureInput) (contract.ErasurePlan, error) {
	plan, userID, err := e.plan(ctx, in)
	if err != nil || !plan.Found {
		return plan, err
	}
	if err := recordInLedger(ctx, e.Lethe, e.Subjects, e.Map, e.Log, in.RequestID, userID); err != nil {
		return contract.ErasurePlan{}, err
	}
	return plan, nil
}

// recordInLedger writes the person into the erasure ledger, under the
// keyed hash of their user id and the data map's digest; the first entry
// stays.
func recordInLedger(ctx context.Context, lethe *pgxpool.Pool, subjects *person.Hasher, m *datamap.Map, log *slog.Logger, requestID, userID string) error {
	if err := ledger.Record(ctx, lethe, string(subjects.UserID(userID)), requestID, m.Digest(), time.Now().UTC()); err != nil {
		return classifyDB(err)
	}
	log.InfoContext(ctx, "erasure recorded in the ledger", "request_id", requestID)
	return nil
}

// plan is PlanErasure, with the user id it resolved ("" when the person
// is not found).
func (e *Erasure) plan(ctx context.Context, in contract.ErasureInput) (contract.ErasurePlan, string, error) {
	id, err := openIdentity(ctx, e.Keys, in.SubjectRef, in.Identity)
	if err != nil {
		return contract.ErasurePlan{}, "", err
	}
	userID, err := resolveUserID(ctx, e.App, e.Map, id)
	if err != nil || userID == "" {
		return contract.ErasurePlan{}, "", err
	}
	ids, err := e.processorIDs(ctx, userID)
	if err != nil {
		return contract.ErasurePlan{}, "", err
	}
	// Every identifier of the person, read before anything is erased: tables
	// keyed by them are matched, and verification searches for them.
	idents, err := appdb.Identifiers(ctx, e.App, e.Map, userID)
	if err != nil {
		return contract.ErasurePlan{}, "", classifyDB(err)
	}
	withEmail(idents, e.Map, id.Email)
	person, err := person.Seal(ctx, e.Keys, in.SubjectRef, person.Identity{Email: id.Email, UserID: userID, IDs: ids, Identifiers: idents})
	if err != nil {
		return contract.ErasurePlan{}, "", fmt.Errorf("seal the identity: %w", err)
	}
	plan := contract.ErasurePlan{Found: true, Identity: person, MapDigest: e.Map.Digest()}
	for _, l := range e.Map.S3 {
		plan.Locations = append(plan.Locations, l.Bucket+"/"+l.Prefix)
	}
	if plan.Processors, plan.Backups, plan.BackupPromise, err = e.beyondTheDatabase(); err != nil {
		return contract.ErasurePlan{}, "", err
	}
	return plan, userID, nil
}

// beyondTheDatabase is what the data map erases outside the application
// database and S3: the processors that can be asked, and the backups that
// rotate out.
func (e *Erasure) beyondTheDatabase() (procs []contract.PlannedProcessor, backups []contract.BackupLocation, promise time.Duration, err error) {
	// The map's periods (30d, 1mo) as durations from now; Parse checked them.
	now := time.Now()
	duration := func(what, period string) (time.Duration, error) {
		p, err := domain.ParsePeriod(period)
		if err != nil {
			return 0, temporal.NewNonRetryableApplicationError(what+": "+err.Error(), "BadDataMap", nil)
		}
		return p.After(now).Sub(now), nil
	}
	for _, p := range e.Map.Processors {
		if e.Processors == nil {
			break
		}
		if _, ok := e.Processors.Eraser(p.Name); !ok {
			continue
		}
		followUp, err := duration("processor "+p.Name+": follow_up", p.FollowUpPeriod())
		if err != nil {
			return nil, nil, 0, err
		}
		procs = append(procs, contract.PlannedProcessor{Name: p.Name, FollowUp: followUp})
	}
	if b := e.Map.Backups; b != nil {
		if promise, err = duration("backups: promise", b.Promise); err != nil {
			return nil, nil, 0, err
		}
		for _, l := range b.Locations {
			rotation, err := duration("backups "+l.Name+": rotation", l.Rotation)
			if err != nil {
				return nil, nil, 0, err
			}
			backups = append(backups, contract.BackupLocation{Name: l.Name, Bucket: l.Bucket, Prefix: l.Prefix, Rotation: rotation})
		}
	}
	return procs, backups, promise, nil
}

// processorIDs reads the person's ids at processors (the data map's
// processors' ids: columns of the identity table), before the erasure
// erases them; a NULL id is left out.
func (e *Erasure) processorIDs(ctx context.Context, userID string) (map[string]string, error) {
	ids, err := appdb.ProcessorIDs(ctx, e.App, e.Map, userID)
	if err != nil {
		return nil, classifyDB(err)
	}
	return ids, nil
}

// EraseTables erases the person's rows in one transaction, in foreign-key
// order (children first): deletes, anonymizes, or keeps under a legal hold
// as the data map says, then anonymizes or deletes the account row. Running
// it again changes nothing more and succeeds.
func (e *Erasure) EraseTables(ctx context.Context, in contract.EraseTablesInput) (contract.EraseTablesResult, error) {
	person, _, err := e.person(ctx, in.SubjectRef, in.Identity)
	if err != nil {
		return contract.EraseTablesResult{}, err
	}
	var done []contract.TableOutcome
	res, err := e.eraseRows(ctx, person, in.SubjectRef, func(res []appdb.TableResult) error {
		// Recorded before the transaction commits: a retry after the commit
		// finds nothing left, and the receipt says what this run erased.
		if done = tableOutcomes(res); done == nil {
			return nil
		}
		return e.recordStep(ctx, in.RequestID, "tables", done)
	})
	if err != nil {
		return contract.EraseTablesResult{}, err
	}
	out := contract.EraseTablesResult{Tables: done}
	if done == nil { // nothing changed this time: an earlier attempt committed
		if out.Tables, err = e.recordedTables(ctx, in.RequestID, res); err != nil {
			return contract.EraseTablesResult{}, err
		}
	}
	for _, t := range res {
		if t.Action != appdb.Retained || t.Rows == 0 {
			continue
		}
		// The hold outlives the request, and the person's key with it: the
		// user id is sealed with a key of the hold's own, destroyed when
		// the held rows go. Its own to this erasure: a person erased again
		// later (they came back) gets holds of their own, which the end
		// of this one does not shred.
		holdRef := holdRefOf(t.Table, in.RequestID)
		if activity.IsActivity(ctx) { // the erasure's run: stable across retries, never reused
			holdRef = holdRefOf(t.Table, activity.GetInfo(ctx).WorkflowExecution.RunID)
		}
		sealed, err := e.Keys.Seal(ctx, holdRef, sealedHold(person))
		if err != nil {
			return contract.EraseTablesResult{}, fmt.Errorf("seal the hold of %s: %w", t.Table, err)
		}
		out.Held = append(out.Held, contract.HeldRows{Table: t.Table, Until: t.Until, HoldRef: holdRef, Sealed: sealed})
	}
	e.Log.InfoContext(ctx, "erased rows", "request_id", in.RequestID, "tables", len(out.Tables), "held", len(out.Held))
	return out, nil
}

// tableOutcomes is what an erasure did per table, for the receipt; nil when
// it deleted and anonymized nothing.
func tableOutcomes(res []appdb.TableResult) []contract.TableOutcome {
	changed := 0
	out := make([]contract.TableOutcome, 0, len(res))
	for _, t := range res {
		if t.Action != appdb.Retained {
			changed += t.Rows
		}
		out = append(out, contract.TableOutcome{Table: t.Table, Action: t.Action, Rows: t.Rows, Reason: t.Reason, Until: t.Until})
	}
	if changed == 0 {
		return nil
	}
	return out
}

// RecordProcessorResult keeps how the erasure at a processor ended, for a
// retry of the request (EarlierProcessorResult).
func (e *Erasure) RecordProcessorResult(ctx context.Context, in contract.ProcessorResultRecord) error {
	return classifyDB(e.recordStep(ctx, in.RequestID, "processor:"+in.Result.Processor, in.Result))
}

// EarlierProcessorResult is how an earlier attempt of the request's erasure
// ended at the processor, if it recorded it.
func (e *Erasure) EarlierProcessorResult(ctx context.Context, in contract.EarlierProcessorInput) (contract.EarlierProcessorResult, error) {
	var out contract.EarlierProcessorResult
	found, err := e.records().ErasureStep(ctx, in.RequestID, "processor:"+in.Processor, &out.Result)
	if err != nil {
		return out, classifyDB(err)
	}
	out.Found = found
	return out, nil
}

// recordStep keeps what a step of a request's erasure did.
func (e *Erasure) recordStep(ctx context.Context, requestID, step string, result any) error {
	return e.records().RecordErasureStep(ctx, requestID, step, result)
}

// recordedTables is what an earlier attempt of this request's EraseTables
// recorded, or, when none did (the person had no rows), this run's result.
func (e *Erasure) recordedTables(ctx context.Context, requestID string, res []appdb.TableResult) ([]contract.TableOutcome, error) {
	var out []contract.TableOutcome
	ok, err := e.records().ErasureStep(ctx, requestID, "tables", &out)
	if err != nil {
		return nil, classifyDB(err)
	}
	if !ok {
		for _, t := range res {
			out = append(out, contract.TableOutcome{Table: t.Table, Action: t.Action, Rows: t.Rows, Reason: t.Reason, Until: t.Until})
		}
	}
	return out, nil
}

// eraseRows erases a known user's rows in one transaction; beforeCommit,
// when set, runs inside it with the result, and its error rolls it back.
func (e *Erasure) eraseRows(ctx context.Context, person appdb.Person, subjectRef string, beforeCommit func([]appdb.TableResult) error) ([]appdb.TableResult, error) {
	order, err := appdb.EraseOrder(ctx, e.App, e.Map)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), "BadDataMap", nil)
	}
	var res []appdb.TableResult
	err = pgx.BeginFunc(ctx, e.App, func(tx pgx.Tx) error {
		var err error
		if res, err = e.erasePerson(ctx, tx, order, person, time.Now()); err != nil {
			return err
		}
		if beforeCommit != nil {
			return beforeCommit(res)
		}
		return nil
	})
	if err != nil {
		return nil, classifyDB(err)
	}
	return res, nil
}

// erasePerson erases one person's rows inside tx, tables in order, then
// their account row.
func (e *Erasure) erasePerson(ctx context.Context, tx pgx.Tx, order []datamap.Table, person appdb.Person, now time.Time) ([]appdb.TableResult, error) {
	userID := person.UserID
	res, err := appdb.Erase(ctx, tx, e.Map, order, person, e.pseudonym(userID), now)
	if err != nil {
		return nil, err
	}
	if a := e.Map.Accounts; a != nil {
		// The placeholder names the account, not the request: two
		// accounts of one address (erased, signed up again, erased
		// again) must not collide on a unique email column.
		n, err := appdb.EraseAccountRow(ctx, tx, e.Map, userID, "erased+"+strings.TrimPrefix(string(e.Subjects.UserID(userID)), "sr_")+"@invalid")
		if err != nil {
			return nil, err
		}
		action := appdb.Anonymized
		if a.EraseAction == "delete" {
			action = appdb.Deleted
		}
		res = append(res, appdb.TableResult{Table: a.Table, Action: action, Rows: n})
	}
	return res, nil
}

// eraseAccount erases one account's rows and objects (the inactivity
// sweep's and restore-reconcile's erasure). It returns the rows and
// objects it removed.
func (e *Erasure) eraseAccount(ctx context.Context, userID, subjectRef string) (int, error) {
	idents, err := appdb.Identifiers(ctx, e.App, e.Map, userID)
	if err != nil {
		return 0, classifyDB(err)
	}
	res, err := e.eraseRows(ctx, appdb.Person{UserID: userID, Identifiers: idents}, subjectRef, nil)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range res {
		if t.Action != appdb.Retained {
			n += t.Rows
		}
	}
	for i := range e.Map.S3 {
		hb := objectsHeartbeat{Location: i}
		if err := e.deleteObjects(ctx, "", userID, &hb, func() { activity.RecordHeartbeat(ctx) }); err != nil {
			return n, err
		}
		n += hb.Objects
	}
	return n, nil
}

// objectsHeartbeat is where EraseObjects got to: a retry resumes there.
type objectsHeartbeat struct {
	Location int
	Marker   objectstore.Marker
	Objects  int
	Versions int
}

// objectsRecord is what the deletions in one S3 location of a request's
// erasure counted after each batch (lethe.erasure_steps, objectsStep): a
// retry whose last heartbeats were lost, or a run again after a completion
// Temporal never heard of, lists only what is left, and still reports what
// went. It holds counts only: a key names the person (the heartbeat's
// marker, in Temporal's encrypted payloads, says where to resume).
type objectsRecord struct {
	Activity string // the activity (its run and id) whose attempts these are
	Objects  int
	Versions int
}

// objectsStep names a location's record by its bucket and prefix as the
// data map writes them ({user_id} unfilled), not by its place in the map,
// which a deploy may change.
func objectsStep(loc datamap.Location) string { return "objects:" + loc.Bucket + "/" + loc.Prefix }

// deleteObjects deletes the user's objects under one S3 location of the
// data map, every version and delete marker included, from where hb says
// the last attempt stopped, keeping hb and the record up to date after
// each batch; its counts go on from this activity's record when that got
// further than hb (what went since is no longer listed). When it deletes
// nothing, what an earlier attempt of the request recorded is its count,
// as for the tables. With no requestID nothing is recorded: the caller
// records what went its own way.
func (e *Erasure) deleteObjects(ctx context.Context, requestID, userID string, hb *objectsHeartbeat, onBatch func()) error {
	if hb.Location < 0 || hb.Location >= len(e.Map.S3) {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("no S3 location %d in the data map", hb.Location), "BadDataMap", nil)
	}
	loc := e.Map.S3[hb.Location]
	prefix, err := loc.PrefixFor(userID)
	if err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), "BadIdentifier", nil)
	}
	this := ""
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		this = info.WorkflowExecution.RunID + "/" + info.ActivityID
	}
	step := objectsStep(loc)
	var rec objectsRecord
	recorded := false
	if requestID != "" {
		if recorded, err = e.records().ErasureStep(ctx, requestID, step, &rec); err != nil {
			return classifyDB(err)
		}
	}
	if recorded && rec.Activity == this && rec.Versions > hb.Versions {
		hb.Objects, hb.Versions = rec.Objects, rec.Versions
	}
	objects, versions := hb.Objects, hb.Versions
	res, err := objectstore.DeletePrefix(ctx, e.Objects, loc.Bucket, prefix, hb.Marker, func(m objectstore.Marker, so objectstore.DeletePrefixResult) error {
		hb.Marker, hb.Objects, hb.Versions = m, objects+so.Keys, versions+so.Deleted
		if requestID != "" {
			if err := e.recordStep(ctx, requestID, step, objectsRecord{Activity: this, Objects: hb.Objects, Versions: hb.Versions}); err != nil {
				return classifyDB(err)
			}
		}
		onBatch()
		return nil
	})
	var classified *temporal.ApplicationError
	if errors.As(err, &classified) {
		return err // the record's failure, classified once: wrapped, it would lose whether to retry
	}
	if err != nil {
		return fmt.Errorf("erase objects in %s: %w", loc.Bucket, err)
	}
	hb.Objects, hb.Versions = objects+res.Keys, versions+res.Deleted
	if hb.Versions == 0 && recorded {
		hb.Objects, hb.Versions = rec.Objects, rec.Versions // nothing left this time: an earlier attempt erased them
	}
	return nil
}

// EraseObjects deletes the person's objects under one S3 location of the
// data map, in batches of 1000, every version and delete marker of a
// versioned bucket included, heartbeating the last entry deleted so that a
// retried attempt resumes where the last one stopped.
func (e *Erasure) EraseObjects(ctx context.Context, in contract.EraseObjectsInput) (contract.EraseObjectsResult, error) {
	userID, err := e.userID(ctx, in.SubjectRef, in.Identity)
	if err != nil {
		return contract.EraseObjectsResult{}, err
	}
	hb := objectsHeartbeat{Location: in.Location}
	if activity.HasHeartbeatDetails(ctx) {
		var last objectsHeartbeat
		if activity.GetHeartbeatDetails(ctx, &last) == nil && last.Location == in.Location {
			hb = last
		}
	}
	if err := e.deleteObjects(ctx, in.RequestID, userID, &hb, func() { activity.RecordHeartbeat(ctx, hb) }); err != nil {
		return contract.EraseObjectsResult{}, err
	}
	loc := e.Map.S3[in.Location]
	e.Log.InfoContext(ctx, "erased objects", "request_id", in.RequestID, "bucket", loc.Bucket, "objects", hb.Objects)
	res := contract.EraseObjectsResult{Location: loc.Bucket + "/" + loc.Prefix, Objects: hb.Objects}
	if hb.Versions != hb.Objects { // a versioned bucket: older versions and delete markers went too
		res.Versions = hb.Versions
	}
	return res, nil
}

// ownSystemsHeartbeat is how far an EraseOwnSystems attempt got: a retry
// goes on from there, and its result still says what the first attempts
// erased.
type ownSystemsHeartbeat struct {
	Tables  *contract.EraseTablesResult   // the database is done
	Objects []contract.EraseObjectsResult // the locations done, in the map's order
	Current *objectsHeartbeat             // the location under way
}

// EraseOwnSystems erases the person from the company's own systems of the
// data map and reads them again, in one activity: the application
// database (EraseTables), every S3 location in turn (EraseObjects), then
// the verification (VerifyErasure), which lists what remains outside legal
// holds. It heartbeats after each table, location and batch, so a retried
// attempt goes on where the last one stopped; running it again after it
// completed erases nothing more and reports what the first run erased
// (the tables' outcome is recorded, the objects are counted again as gone).
func (e *Erasure) EraseOwnSystems(ctx context.Context, in contract.EraseOwnSystemsInput) (contract.EraseOwnSystemsResult, error) {
	inActivity := activity.IsActivity(ctx)
	var hb ownSystemsHeartbeat
	if inActivity && activity.HasHeartbeatDetails(ctx) {
		if err := activity.GetHeartbeatDetails(ctx, &hb); err != nil {
			hb = ownSystemsHeartbeat{}
		}
	}
	beat := func() {
		if inActivity {
			activity.RecordHeartbeat(ctx, hb)
		}
	}
	if hb.Tables == nil {
		tables, err := e.EraseTables(ctx, contract.EraseTablesInput(in))
		if err != nil {
			return contract.EraseOwnSystemsResult{}, ownSystemFailed(0, hb, err)
		}
		hb.Tables = &tables
		beat()
	}
	person, id, err := e.person(ctx, in.SubjectRef, in.Identity)
	if err != nil {
		return contract.EraseOwnSystemsResult{}, err
	}
	for loc := len(hb.Objects); loc < len(e.Map.S3); loc++ {
		cur := objectsHeartbeat{Location: loc}
		if hb.Current != nil && hb.Current.Location == loc {
			cur = *hb.Current
		}
		hb.Current = &cur
		if err := e.deleteObjects(ctx, in.RequestID, person.UserID, &cur, beat); err != nil {
			return contract.EraseOwnSystemsResult{}, ownSystemFailed(1+loc, hb, err)
		}
		l := e.Map.S3[loc]
		res := contract.EraseObjectsResult{Location: l.Bucket + "/" + l.Prefix, Objects: cur.Objects}
		if cur.Versions != cur.Objects {
			res.Versions = cur.Versions
		}
		hb.Objects, hb.Current = append(hb.Objects, res), nil
		beat()
	}
	e.Log.InfoContext(ctx, "erased objects", "request_id", in.RequestID, "locations", len(hb.Objects))
	left, err := e.leftovers(ctx, person, id, func(string) { beat() })
	if err != nil {
		return contract.EraseOwnSystemsResult{}, err
	}
	return contract.EraseOwnSystemsResult{Tables: *hb.Tables, Objects: hb.Objects, Leftovers: left}, nil
}

// ownSystemFailed says, of a failure for good in own system system (see
// contract.OwnSystemsFailure), which it was and what went before it, so
// that the erasure's progress names the one that failed. The error keeps
// its message and type; a failure that is retried needs no detail (the
// heartbeat resumes it).
func ownSystemFailed(system int, hb ownSystemsHeartbeat, err error) error {
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || !app.NonRetryable() {
		return err
	}
	return temporal.NewApplicationErrorWithOptions(app.Message(), app.Type(), temporal.ApplicationErrorOptions{
		NonRetryable: true, Cause: app.Unwrap(),
		Details: []any{contract.OwnSystemsFailure{Failed: system, Tables: hb.Tables, Objects: hb.Objects}},
	})
}

// VerifyErasure reads every table and S3 location of the data map again
// and lists what of the person remains outside legal holds. Beside
// re-reading with the map's own selectors, it searches the application
// database for every identifier of the person whatever the map says
// (appdb.Traces): a table the map keys wrongly cannot pass for erased.
func (e *Erasure) VerifyErasure(ctx context.Context, in contract.VerifyErasureInput) (contract.VerifyErasureResult, error) {
	person, id, err := e.person(ctx, in.SubjectRef, in.Identity)
	if err != nil {
		return contract.VerifyErasureResult{}, err
	}
	searched := 0
	left, err := e.leftovers(ctx, person, id, func(string) { searched++; activity.RecordHeartbeat(ctx, searched) })
	return contract.VerifyErasureResult{Leftovers: left}, err
}

// leftovers is what of the person remains outside legal holds, read again
// in every table and S3 location (VerifyErasure); searched is called after
// each table the independent search reads.
func (e *Erasure) leftovers(ctx context.Context, person appdb.Person, id person.Identity, searched func(string)) ([]string, error) {
	known := knownOf(id)
	known.Searched = searched
	traces, err := appdb.Traces(ctx, e.App, e.Map, person, known)
	if err != nil {
		return nil, classifyDB(err)
	}
	return e.leftoversBeside(ctx, person, traces)
}

// knownOf is what the independent search looks for beside the person's
// identifiers in the application database: the request's email address and
// the person's ids at processors.
func knownOf(id person.Identity) appdb.Known {
	return appdb.Known{Emails: []string{id.Email}, ProcessorIDs: id.IDs}
}

// leftoversBeside is leftovers with the independent search's traces
// already found (for a bulk page, by one search of the whole page).
func (e *Erasure) leftoversBeside(ctx context.Context, person appdb.Person, traces []appdb.Trace) ([]string, error) {
	userID := person.UserID
	var out struct{ Leftovers []string }
	left, err := appdb.Remaining(ctx, e.App, e.Map, person, e.pseudonym(userID), time.Now())
	if err != nil {
		return nil, classifyDB(err)
	}
	for _, l := range left {
		out.Leftovers = append(out.Leftovers, fmt.Sprintf("%d rows in %s (%s)", l.Rows, l.Table, l.Why))
	}
	for _, t := range traces {
		out.Leftovers = append(out.Leftovers, fmt.Sprintf("the person's %s is still in %s, column %s (%d rows): check how the data map finds this table's rows (if that column is not the person's, add it to ignore with its column and a reason)", t.What, t.Table, t.Column, t.Rows))
	}
	if n, err := appdb.UnerasedAccounts(ctx, e.App, e.Map, userID); err != nil {
		return nil, classifyDB(err)
	} else if n > 0 {
		out.Leftovers = append(out.Leftovers, fmt.Sprintf("the account row in %s is not erased", e.Map.Accounts.Table))
	}
	for _, loc := range e.Map.S3 {
		prefix, err := loc.PrefixFor(userID)
		if err != nil {
			return nil, temporal.NewNonRetryableApplicationError(err.Error(), "BadIdentifier", nil)
		}
		c, err := objectstore.CountPrefix(ctx, e.Objects, loc.Bucket, prefix)
		if err != nil {
			return nil, fmt.Errorf("count objects in %s: %w", loc.Bucket, err)
		}
		if c.Total() > 0 {
			out.Leftovers = append(out.Leftovers, fmt.Sprintf("%d objects or versions in %s/%s", c.Total(), loc.Bucket, loc.Prefix))
		}
	}
	return out.Leftovers, nil
}

// EraseHeldRows erases rows kept under a legal hold whose hold has ended,
// and says when the next one ends. The user id was sealed with the hold's
// own key when the rows were kept.
func (e *Erasure) EraseHeldRows(ctx context.Context, in contract.EraseHeldInput) (contract.EraseHeldResult, error) {
	raw, err := e.Keys.Open(ctx, in.Held.HoldRef, in.Held.Sealed)
	if errors.Is(err, person.ErrKeyDestroyed) {
		return contract.EraseHeldResult{}, nil // released before: nothing left to do
	}
	if err != nil {
		return contract.EraseHeldResult{}, fmt.Errorf("open the hold of %s: %w", in.Held.Table, err)
	}
	deleted, next, err := appdb.EraseHeld(ctx, e.App, e.Map, in.Held.Table, openedHold(raw), time.Now())
	if errors.Is(err, appdb.ErrNoIdentifier) {
		return contract.EraseHeldResult{}, temporal.NewNonRetryableApplicationError(
			"the hold of "+in.Held.Table+" was kept without the identifier its rows are found by: release them by hand", "HeldRowsUnreachable", nil)
	}
	if err != nil {
		return contract.EraseHeldResult{}, classifyDB(err)
	}
	e.Log.InfoContext(ctx, "erased held rows", "request_id", in.RequestID, "table", in.Held.Table, "rows", deleted)
	return contract.EraseHeldResult{Deleted: deleted, Next: next}, nil
}

// heldPrefix marks a hold sealed with the person's identifiers as well as
// their user id; holds sealed before that carry the bare user id.
const heldPrefix = "person:"

// holdRefOf is person.HoldRef (where a local variable named person hides
// the package).
func holdRefOf(table, id string) string { return person.HoldRef(table, id) }

// sealedHold is what a hold keeps of the person until it ends: enough to
// find their held rows again, keyed by user id or by another identifier.
func sealedHold(p appdb.Person) []byte {
	b, err := json.Marshal(p)
	if err != nil { // a Person of strings always marshals
		return []byte(p.UserID)
	}
	return append([]byte(heldPrefix), b...)
}

// openedHold reads what sealedHold kept, or a bare user id.
func openedHold(raw []byte) appdb.Person {
	if b, ok := bytes.CutPrefix(raw, []byte(heldPrefix)); ok {
		var p appdb.Person
		if json.Unmarshal(b, &p) == nil && p.UserID != "" {
			return p
		}
	}
	return appdb.Person{UserID: string(raw)}
}
