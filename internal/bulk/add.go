package bulk

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/lethe-privacy/lethe/internal/appdb"
)

// ChunkSize is how many user ids are held in memory and written in one
// transaction while adding targets.
const ChunkSize = 10_000

// MaxUserIDLength is the longest user id accepted, in characters.
const MaxUserIDLength = 128

// AddFromQuery adds to campaign the user ids that selector returns when run
// with args on the application database app. selector is a query the company
// wrote (configuration, never user input) whose first column is the user id;
// it runs in a read-only transaction as appdb.SelectorUserIDs says, and
// null ids are skipped. Rows are streamed and written to lethe in chunks
// of ChunkSize, each chunk in its own transaction, so on error the chunks
// before it stay added; running it again adds nobody twice. added counts the
// people who were not targets of campaign before.
func AddFromQuery(ctx context.Context, lethe *pgxpool.Pool, app appdb.TxStarter, campaign string, sql string, args []any) (added int, err error) {
	if campaign == "" {
		return 0, ErrNoCampaign
	}
	sql = strings.TrimRight(strings.TrimSpace(sql), "; \t\r\n")
	if sql == "" {
		return 0, errors.New("bulk: empty selector query")
	}
	a := newAdder(lethe, campaign)
	var stop error // each's own error, returned as it is
	err = appdb.SelectorUserIDs(ctx, app, sql, args, func(row int, id string) error {
		if msg := checkUserID(id); msg != "" {
			stop = fmt.Errorf("bulk: selector row %d: %s", row, msg)
			return stop
		}
		if err := a.add(ctx, id); err != nil {
			stop = err
			return err
		}
		return nil
	})
	switch {
	case err != nil && err == stop:
		return a.added, err
	case err != nil:
		return a.added, fmt.Errorf("bulk: %w", err)
	}
	return a.finish(ctx)
}

// AddFromLines adds to campaign the user ids in r, one a line (an S3 object's
// body, say). Blanks around an id are trimmed and empty lines skipped. An id
// longer than MaxUserIDLength characters, with a control character or not
// valid UTF-8 is refused with an error naming its line number; the chunks
// before it stay added. Like AddFromQuery it holds at most ChunkSize ids in
// memory and adds nobody twice.
func AddFromLines(ctx context.Context, lethe *pgxpool.Pool, campaign string, r io.Reader) (int, error) {
	if campaign == "" {
		return 0, ErrNoCampaign
	}
	// A line longer than the buffer cannot hold a valid id; the scanner
	// stops on it with bufio.ErrTooLong.
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	a := newAdder(lethe, campaign)
	line := 0
	for sc.Scan() {
		line++
		id := strings.TrimSpace(sc.Text())
		if id == "" {
			continue
		}
		if msg := checkUserID(id); msg != "" {
			return a.added, fmt.Errorf("bulk: line %d: %s", line, msg)
		}
		if err := a.add(ctx, id); err != nil {
			return a.added, err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return a.added, fmt.Errorf("bulk: line %d: user id longer than %d characters", line+1, MaxUserIDLength)
		}
		return a.added, fmt.Errorf("bulk: read user ids after line %d: %w", line, err)
	}
	return a.finish(ctx)
}

// checkUserID says what is wrong with id, without quoting it; "" when nothing.
func checkUserID(id string) string {
	if !utf8.ValidString(id) {
		return "user id is not valid UTF-8"
	}
	if utf8.RuneCountInString(id) > MaxUserIDLength {
		return fmt.Sprintf("user id longer than %d characters", MaxUserIDLength)
	}
	if strings.ContainsFunc(id, unicode.IsControl) {
		return "user id contains a control character"
	}
	return ""
}

// analyzeAfter is how many targets an add must bring for the table's
// statistics to be refreshed (autovacuum may be off or late, and the plans
// that pick batches depend on them).
const analyzeAfter = BatchSize

// finish writes what is left and refreshes the statistics after a large add.
func (a *adder) finish(ctx context.Context) (int, error) {
	if err := a.flush(ctx); err != nil {
		return a.added, err
	}
	if a.added >= analyzeAfter {
		// Only the plans' quality depends on it; a failure changes nothing
		// that was added.
		_, _ = a.lethe.Exec(ctx, `ANALYZE lethe.notice_targets`)
	}
	return a.added, nil
}

// adder collects user ids and writes them ChunkSize at a time.
type adder struct {
	lethe    *pgxpool.Pool
	campaign string
	chunk    []string
	added    int
}

func newAdder(lethe *pgxpool.Pool, campaign string) *adder {
	return &adder{lethe: lethe, campaign: campaign, chunk: make([]string, 0, ChunkSize)}
}

func (a *adder) add(ctx context.Context, id string) error {
	a.chunk = append(a.chunk, id)
	if len(a.chunk) < ChunkSize {
		return nil
	}
	return a.flush(ctx)
}

// flush writes the chunk in one transaction: COPY into a temporary table,
// then one INSERT … ON CONFLICT DO NOTHING, which skips people already added
// (by this chunk, an earlier one or an earlier run). seq follows the input
// order.
func (a *adder) flush(ctx context.Context) error {
	if len(a.chunk) == 0 {
		return nil
	}
	var added int64
	err := pgx.BeginFunc(ctx, a.lethe, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMPORARY TABLE notice_targets_in (ord int NOT NULL, user_id text NOT NULL) ON COMMIT DROP`); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"notice_targets_in"}, []string{"ord", "user_id"},
			pgx.CopyFromSlice(len(a.chunk), func(i int) ([]any, error) {
				return []any{int32(i), a.chunk[i]}, nil
			})); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
			INSERT INTO lethe.notice_targets (campaign, user_id)
			SELECT $1, user_id FROM notice_targets_in ORDER BY ord
			ON CONFLICT (campaign, user_id) DO NOTHING`, a.campaign)
		if err != nil {
			return err
		}
		added = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return fmt.Errorf("bulk: add targets: %w", err)
	}
	a.added += int(added)
	clear(a.chunk)
	a.chunk = a.chunk[:0]
	return nil
}
