package audit

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The entries an erasure at a processor appends around an operator task
// (workflows/processorerasure.go): TaskOpened under the idempotency key
// "<request>:<processor>:task-<n>:opened", with the request, the processor
// and the task's deadline (RFC 3339) as detail "request_id", "processor"
// and "due_at", and TaskResolved under the same key ending in ":resolved"
// once an operator resolved it.
const (
	TaskOpened   = "processor.task_opened"
	TaskResolved = "processor.task_resolved"
)

// Querier is what OpenTasks needs of Lethe's database: a pool, a
// connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// OpenTask is an operator task not resolved yet.
type OpenTask struct {
	RequestID string
	Processor string    // the data map's processor name
	OpenedAt  time.Time // when the task opened
	DueAt     time.Time // its deadline (zero when the entry has none)
}

// OpenTasks lists the operator tasks the trail shows opened and not
// resolved, oldest first. A task whose workflow was terminated by hand
// stays open here, as it does for the privacy team: resolve it or close
// the request.
func OpenTasks(ctx context.Context, db Querier) ([]OpenTask, error) {
	// The literal action (not a parameter) lets the planner use the
	// partial index audit_log_tasks_opened; the resolution is found by
	// its idempotency key, which is unique and indexed.
	rows, err := db.Query(ctx, `SELECT o.at, coalesce(o.request_id, o.detail->>'request_id', ''), coalesce(o.detail->>'processor', ''),
			o.idempotency_key, coalesce(o.detail->>'due_at', '')
		FROM lethe.audit_log o
		WHERE o.action = 'processor.task_opened' AND o.idempotency_key LIKE '%:opened'
		  AND NOT EXISTS (SELECT 1 FROM lethe.audit_log r
		                   WHERE r.idempotency_key = left(o.idempotency_key, -length(':opened')) || ':resolved')
		ORDER BY o.at`)
	if err != nil {
		return nil, fmt.Errorf("audit: open tasks: %w", err)
	}
	var out []OpenTask
	var (
		t        OpenTask
		key, due string
	)
	_, err = pgx.ForEachRow(rows, []any{&t.OpenedAt, &t.RequestID, &t.Processor, &key, &due}, func() error {
		task := OpenTask{RequestID: t.RequestID, OpenedAt: t.OpenedAt, Processor: t.Processor}
		if task.Processor == "" {
			task.Processor = taskProcessor(t.RequestID, key)
		}
		if d, err := time.Parse(time.RFC3339, due); err == nil {
			task.DueAt = d
		}
		out = append(out, task)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit: open tasks: %w", err)
	}
	return out, nil
}

// taskProcessor reads the processor's name out of a task's key
// "<request>:<processor>:task-<n>:opened"; "" when the key is not one.
func taskProcessor(requestID, key string) string {
	rest, ok := strings.CutPrefix(key, requestID+":")
	if !ok {
		return ""
	}
	rest = strings.TrimSuffix(rest, ":opened")
	i := strings.LastIndex(rest, ":task-")
	if i <= 0 {
		return ""
	}
	return rest[:i]
}
