package activities

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

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
// one transaction, in the order the map lists them (children first). Running
// it again deletes nothing more and succeeds.
func (e *Erasure) EraseTables(ctx context.Context, in workflows.EraseTablesInput) (workflows.EraseTablesResult, error) {
	userID, err := e.userID(ctx, in.SubjectRef, in.Identity)
	if err != nil {
		return workflows.EraseTablesResult{}, err
	}
	res := workflows.EraseTablesResult{Deleted: map[string]int{}}
	err = pgx.BeginFunc(ctx, e.App, func(tx pgx.Tx) error {
		for _, t := range e.Map.Tables {
			sql := fmt.Sprintf("DELETE FROM %s WHERE %s = $1", t.Identifier().Sanitize(), pgx.Identifier{t.Key}.Sanitize())
			tag, err := tx.Exec(ctx, sql, userID)
			if err != nil {
				return fmt.Errorf("erase %s: %w", t.Name, err)
			}
			res.Deleted[t.Name] = int(tag.RowsAffected())
		}
		return nil
	})
	if err != nil {
		return workflows.EraseTablesResult{}, classifyDB(err)
	}
	e.Log.InfoContext(ctx, "erased rows", "request_id", in.RequestID, "tables", len(res.Deleted))
	return res, nil
}

// objectsHeartbeat is where EraseObjects got to: a retry resumes there.
type objectsHeartbeat struct {
	Location int
	LastKey  string
	Deleted  map[string]int
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
	for i := hb.Location; i < len(e.Map.S3); i++ {
		loc := e.Map.S3[i]
		prefix, err := loc.PrefixFor(userID)
		if err != nil {
			return workflows.EraseObjectsResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "BadIdentifier", nil)
		}
		name := loc.Bucket + "/" + loc.Prefix
		startAfter := ""
		if i == hb.Location {
			startAfter = hb.LastKey
		}
		base := hb.Deleted[name]
		_, err = objectstore.DeletePrefix(ctx, e.Objects, loc.Bucket, prefix, startAfter, func(last string, n int) {
			hb.Location, hb.LastKey, hb.Deleted[name] = i, last, base+n
			activity.RecordHeartbeat(ctx, hb)
		})
		if err != nil {
			return workflows.EraseObjectsResult{}, fmt.Errorf("erase objects in %s: %w", loc.Bucket, err)
		}
		if _, ok := hb.Deleted[name]; !ok {
			hb.Deleted[name] = 0
		}
		hb.Location, hb.LastKey = i+1, ""
		activity.RecordHeartbeat(ctx, hb)
	}
	e.Log.InfoContext(ctx, "erased objects", "request_id", in.RequestID, "locations", len(hb.Deleted))
	return workflows.EraseObjectsResult{Deleted: hb.Deleted}, nil
}
