package appdb

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/lethe-privacy/lethe/internal/datamap"
)

// EraseOrder is the map's tables in an order safe for erasure: every
// table before the tables it refers to (children before parents), by the
// via chains the map declares and by the live foreign keys between tables
// of the map (read from pg_constraint). Tables with no order between them
// keep the map's order. A cycle is an error naming its tables, and so is
// a live foreign key with ON DELETE CASCADE from a retained table to a
// table whose rows are deleted: deleting them would delete the held rows.
func EraseOrder(ctx context.Context, db Querier, m *datamap.Map) ([]datamap.Table, error) {
	index := map[string]int{}
	names := make([]string, len(m.Tables))
	for i, t := range m.Tables {
		index[t.Name] = i
		names[i] = t.Name
	}
	// parents[i] lists the tables table i refers to: they come after it.
	parents := make([][]int, len(m.Tables))
	refer := func(child, parent int) {
		if child != parent && !slices.Contains(parents[child], parent) {
			parents[child] = append(parents[child], parent)
		}
	}
	for i, t := range m.Tables {
		if t.Via != nil {
			if p, ok := index[t.Via.Parent]; ok {
				refer(i, p)
			}
		}
	}
	rows, err := db.Query(ctx, `SELECT cn.nspname || '.' || cc.relname, pn.nspname || '.' || pc.relname, k.confdeltype = 'c'
		FROM pg_constraint k
		JOIN pg_class cc ON cc.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
		JOIN pg_class pc ON pc.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
		WHERE k.contype = 'f' AND cn.nspname || '.' || cc.relname = ANY($1) AND pn.nspname || '.' || pc.relname = ANY($1)
		ORDER BY 1, 2`, names)
	if err != nil {
		return nil, dbError("read the foreign keys between", "the map's tables", err)
	}
	defer rows.Close()
	var errs []string
	for rows.Next() {
		var child, parent string
		var cascade bool
		if err := rows.Scan(&child, &parent, &cascade); err != nil {
			return nil, dbError("read the foreign keys between", "the map's tables", err)
		}
		c, p := index[child], index[parent]
		refer(c, p)
		if cascade && m.Tables[c].Action == datamap.ActionRetain && m.Tables[p].Action == datamap.ActionDelete && c != p {
			errs = append(errs, fmt.Sprintf("%s (retained) refers to %s (deleted) with ON DELETE CASCADE: erasure would delete the held rows", child, parent))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("read the foreign keys between", "the map's tables", err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("appdb: erase order: %s", strings.Join(errs, "; "))
	}

	// Kahn's algorithm: a table is ready once every table referring to it
	// is placed; of the ready ones, the first in map order goes next.
	children := make([]int, len(m.Tables)) // how many unplaced tables refer to each
	for _, ps := range parents {
		for _, p := range ps {
			children[p]++
		}
	}
	placed := make([]bool, len(m.Tables))
	order := make([]datamap.Table, 0, len(m.Tables))
	for len(order) < len(m.Tables) {
		next := -1
		for i := range m.Tables {
			if !placed[i] && children[i] == 0 {
				next = i
				break
			}
		}
		if next < 0 {
			var cycle []string
			for i, t := range m.Tables {
				if onCycle(i, parents, placed) {
					cycle = append(cycle, t.Name)
				}
			}
			return nil, fmt.Errorf("appdb: erase order: these tables refer to each other in a cycle (via or foreign keys), so no order erases children first: %s", strings.Join(cycle, ", "))
		}
		placed[next] = true
		order = append(order, m.Tables[next])
		for _, p := range parents[next] {
			children[p]--
		}
	}
	return order, nil
}

// onCycle tells whether table i, not yet placed, lies on a cycle of
// references among the unplaced tables (rather than only being referred
// to from one).
func onCycle(i int, parents [][]int, placed []bool) bool {
	seen := make([]bool, len(parents))
	stack := []int{i}
	for len(stack) > 0 {
		cur := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, p := range parents[cur] {
			if p == i {
				return true
			}
			if !placed[p] && !seen[p] {
				seen[p] = true
				stack = append(stack, p)
			}
		}
	}
	return false
}
