package activities

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/lethe-privacy/lethe/internal/accounts"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/subjectkeys"
	"github.com/lethe-privacy/lethe/workflows"
)

// Erasure erases a person's data from the systems of the data map.
type Erasure struct {
	App     *pgxpool.Pool // the application database
	Objects *s3.Client
	Map     *datamap.Map
	Keys    *subjectkeys.Keyring
	Log     *slog.Logger
}

// userID opens the request's identity and finds the person's user id.
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

// EraseTables deletes the person's rows from every table of the data map in
// one transaction, in the order the map lists them (children first), then
// anonymizes or deletes the account row as the map says. Running it again
// deletes nothing more and succeeds.
func (e *Erasure) EraseTables(ctx context.Context, in workflows.EraseTablesInput) (workflows.EraseTablesResult, error) {
	userID, err := e.userID(ctx, in.SubjectRef, in.Identity)
	if err != nil {
		return workflows.EraseTablesResult{}, err
	}
	deleted, err := e.eraseRows(ctx, userID, in.SubjectRef)
	if err != nil {
		return workflows.EraseTablesResult{}, err
	}
	kept, err := e.keptRows(ctx, userID)
	if err != nil {
		return workflows.EraseTablesResult{}, err
	}
	e.Log.InfoContext(ctx, "erased rows", "request_id", in.RequestID, "tables", len(deleted))
	return workflows.EraseTablesResult{Deleted: deleted, Kept: kept}, nil
}

// keptRows says what an erasure keeps under legal holds, for its outcome.
func (e *Erasure) keptRows(ctx context.Context, userID string) ([]string, error) {
	var kept []string
	for _, t := range e.Map.Tables {
		if t.Action != datamap.ActionRetain {
			continue
		}
		var n int
		sql := fmt.Sprintf("SELECT count(*) FROM %s WHERE %s = $1", t.Identifier().Sanitize(), pgx.Identifier{t.Key}.Sanitize())
		if err := e.App.QueryRow(ctx, sql, userID).Scan(&n); err != nil {
			return nil, classifyDB(fmt.Errorf("count %s: %w", t.Name, err))
		}
		if n > 0 {
			kept = append(kept, fmt.Sprintf("Kept %d rows in %s: %s (for %s)", n, t.Name, t.Hold.Reason, t.Hold.Period))
		}
	}
	return kept, nil
}

// eraseRows is EraseTables for a known user id.
func (e *Erasure) eraseRows(ctx context.Context, userID, subjectRef string) (map[string]int, error) {
	deleted := map[string]int{}
	err := pgx.BeginFunc(ctx, e.App, func(tx pgx.Tx) error {
		for _, t := range e.Map.Tables {
			if t.Action == datamap.ActionRetain {
				continue // kept under its legal hold: see keptRows
			}
			sql := fmt.Sprintf("DELETE FROM %s WHERE %s = $1", t.Identifier().Sanitize(), pgx.Identifier{t.Key}.Sanitize())
			tag, err := tx.Exec(ctx, sql, userID)
			if err != nil {
				return fmt.Errorf("erase %s: %w", t.Name, err)
			}
			deleted[t.Name] = int(tag.RowsAffected())
		}
		if a := e.Map.Accounts; a != nil {
			n, err := accounts.EraseRow(ctx, tx, e.Map, userID, "erased+"+strings.TrimPrefix(subjectRef, "sr_")+"@invalid")
			if err != nil {
				return err
			}
			deleted[a.Table] = n
		}
		return nil
	})
	if err != nil {
		return nil, classifyDB(err)
	}
	return deleted, nil
}

// eraseAccount erases one account's rows and objects (the inactivity sweep's erasure).
func (e *Erasure) eraseAccount(ctx context.Context, userID, subjectRef string) (int, error) {
	rows, err := e.eraseRows(ctx, userID, subjectRef)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range rows {
		n += c
	}
	hb := objectsHeartbeat{Deleted: map[string]int{}}
	if err := e.deleteObjects(ctx, userID, &hb, func() { activity.RecordHeartbeat(ctx) }); err != nil {
		return n, err
	}
	for _, c := range hb.Deleted {
		n += c
	}
	return n, nil
}

// objectsHeartbeat is where EraseObjects got to: a retry resumes there.
type objectsHeartbeat struct {
	Location int
	LastKey  string
	Deleted  map[string]int
}

// deleteObjects deletes the user's objects under every S3 location of the
// data map from where hb says the last attempt stopped, keeping hb up to
// date and calling onBatch after each batch and each location.
func (e *Erasure) deleteObjects(ctx context.Context, userID string, hb *objectsHeartbeat, onBatch func()) error {
	for i := hb.Location; i < len(e.Map.S3); i++ {
		loc := e.Map.S3[i]
		prefix, err := loc.PrefixFor(userID)
		if err != nil {
			return temporal.NewNonRetryableApplicationError(err.Error(), "BadIdentifier", nil)
		}
		name := loc.Bucket + "/" + loc.Prefix
		startAfter := ""
		if i == hb.Location {
			startAfter = hb.LastKey
		}
		base := hb.Deleted[name]
		_, err = objectstore.DeletePrefix(ctx, e.Objects, loc.Bucket, prefix, startAfter, func(last string, n int) {
			hb.Location, hb.LastKey, hb.Deleted[name] = i, last, base+n
			onBatch()
		})
		if err != nil {
			return fmt.Errorf("erase objects in %s: %w", loc.Bucket, err)
		}
		if _, ok := hb.Deleted[name]; !ok {
			hb.Deleted[name] = 0
		}
		hb.Location, hb.LastKey = i+1, ""
		onBatch()
	}
	return nil
}

// EraseObjects deletes the person's objects under every S3 location of the
// data map, in batches of 1000, heartbeating the last key deleted so that a
// retried attempt resumes where the last one stopped.
func (e *Erasure) EraseObjects(ctx context.Context, in workflows.EraseObjectsInput) (workflows.EraseObjectsResult, error) {
	userID, err := e.userID(ctx, in.SubjectRef, in.Identity)
	if err != nil {
		return workflows.EraseObjectsResult{}, err
	}
	hb := objectsHeartbeat{Deleted: map[string]int{}}
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &hb)
		if hb.Deleted == nil {
			hb.Deleted = map[string]int{}
		}
	}
	if err := e.deleteObjects(ctx, userID, &hb, func() { activity.RecordHeartbeat(ctx, hb) }); err != nil {
		return workflows.EraseObjectsResult{}, err
	}
	e.Log.InfoContext(ctx, "erased objects", "request_id", in.RequestID, "locations", len(hb.Deleted))
	return workflows.EraseObjectsResult{Deleted: hb.Deleted}, nil
}
