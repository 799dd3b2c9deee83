package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/temporalclient"
	"github.com/lethe-privacy/lethe/internal/testenv"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
	"github.com/lethe-privacy/lethe/internal/wiring"
)

// keysRun runs `starter keys args…` as an operator would, with the
// environment as the test set it; stdout goes to progress too when set.
func keysRun(ctx context.Context, progress io.Writer, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	cmd := keysCommand()
	if progress != nil {
		cmd.SetOut(io.MultiWriter(&out, progress))
	} else {
		cmd.SetOut(&out)
	}
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err = cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// keysOK is keysRun that must succeed; it returns stdout.
func keysOK(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := keysRun(context.Background(), nil, args...)
	if err != nil {
		t.Fatalf("keys %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// keysRefused is keysRun that must fail with a message holding every want.
func keysRefused(t *testing.T, wants []string, args ...string) string {
	t.Helper()
	out, _, err := keysRun(context.Background(), nil, args...)
	if err == nil {
		t.Fatalf("keys %s succeeded (stdout %q); want it refused", strings.Join(args, " "), out)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("keys %s: %q does not say %q", strings.Join(args, " "), err, w)
		}
	}
	return err.Error()
}

// cancelOnPage stops a rewrap, as Ctrl-C would, once it reports its first page.
type cancelOnPage struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	cancel context.CancelFunc
}

func (c *cancelOnPage) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	if strings.Contains(c.buf.String(), "page 1:") {
		c.cancel()
	}
	return len(p), nil
}

func mustKey(t *testing.T, prefix string) config.Key {
	t.Helper()
	k, err := config.GenerateKey(prefix)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func parseKeys(t *testing.T, value string) []config.Key {
	t.Helper()
	keys, err := config.ParseKeys(strings.TrimSpace(value))
	if err != nil {
		t.Fatalf("printed key list does not parse: %v", err)
	}
	return keys
}

// restartWithKeys stops the worker and the API and starts them again with
// other key lists, as a deploy of the new values would.
func restartWithKeys(t *testing.T, e *e2e, env map[string]string, payloadKeys, masterKeys string) *e2e {
	t.Helper()
	e.Worker.Stop()
	e.API.Close()
	st := *e.Stack
	st.Config.PayloadKeys, st.Config.MasterKeys = payloadKeys, masterKeys
	topts, err := wiring.TemporalOptions(st.Config, st.Log)
	if err != nil {
		t.Fatal(err)
	}
	copts, err := temporalclient.ClientOptions(topts)
	if err != nil {
		t.Fatal(err)
	}
	copts.HostPort, copts.Namespace = "", "" // the test server fills in its own
	st.Temporal = st.Server.NewClientWithOptions(copts)
	t.Cleanup(st.Temporal.Close)
	m, err := demo.DataMap()
	if err != nil {
		t.Fatal(err)
	}
	m.Processors = nil
	return startE2E(t, &st, m, env)
}

// historyText is a workflow's stored history as Temporal keeps it (no
// codec): payload metadata, such as the id of the key that encrypted each
// payload, is readable in it.
func historyText(t *testing.T, st *testenv.Stack, workflowID string) string {
	t.Helper()
	it := st.Raw.GetWorkflowHistory(context.Background(), workflowID, "", false, 0)
	var all strings.Builder
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		all.WriteString(ev.String())
	}
	return all.String()
}

// historyTextFrom is historyText from the first event that names from on
// (an activity's type: what the workflow did from then on).
func historyTextFrom(t *testing.T, st *testenv.Stack, workflowID, from string) string {
	t.Helper()
	h := historyText(t, st, workflowID)
	i := strings.Index(h, from)
	if i < 0 {
		t.Fatalf("no %s in the history of %s", from, workflowID)
	}
	return h[i:]
}

// A rotation of both keys, as an operator runs it, while a request sealed
// under the old keys waits for an operator's approval: the request is read
// and erased after the rotation, and its identity shredded; the old master
// key can go once the (interrupted, then resumed) rewrap is done, and not
// before.
func TestKeysRotationKeepsOldRequestsReadableThenShredsThem(t *testing.T) {
	env := map[string]string{"LETHE_APPROVAL_TYPES": "erasure"}
	e := newE2E(t, 3, env)
	ctx := context.Background()
	target, other := demo.Accounts(2)[0], demo.Accounts(2)[1]

	// Before the rotation: a request sealed under the old keys, waiting.
	id := e.submitOK(t, "an erasure to approve", fmt.Sprintf(`{"type":"erasure","subject":{"user_id":%q,"email":%q},"jurisdiction":"gdpr","verified":true}`, target.ID, target.Email))
	e.waitStatus(t, id, domain.StatusAwaitingApproval)
	ref := e.refOf(t, id)
	// and more people with keys, so that the rewrap takes several pages.
	for i := 0; i < 24; i++ {
		if _, err := person.Seal(ctx, e.Deps.Keys, fmt.Sprintf("sr_rotation%04d", i), person.Identity{Email: fmt.Sprintf("p%d@example.com", i)}); err != nil {
			t.Fatal(err)
		}
	}
	oldPayload := parseKeys(t, e.Config.PayloadKeys)[0]
	oldMaster := parseKeys(t, e.Config.MasterKeys)[0]
	counts, err := person.CountKeys(ctx, e.Lethe)
	if err != nil {
		t.Fatal(err)
	}
	live := counts.Wrapped[oldMaster.ID]
	if live < 25 || counts.Live() != live {
		t.Fatalf("before the rotation: %+v; want at least 25 keys, all under %s", counts, oldMaster.ID)
	}
	t.Setenv("LETHE_DATABASE_URL", e.Config.DatabaseURL)
	t.Setenv("LETHE_PAYLOAD_KEYS", e.Config.PayloadKeys)
	t.Setenv("LETHE_MASTER_KEYS", e.Config.MasterKeys)

	// 1. New keys, first in their lists; the old ones stay, to open.
	masters := parseKeys(t, keysOK(t, "add-master"))
	payloads := parseKeys(t, keysOK(t, "add-payload"))
	for _, l := range []struct {
		keys   []config.Key
		old    config.Key
		prefix string
	}{{masters, oldMaster, "m"}, {payloads, oldPayload, "p"}} {
		if len(l.keys) != 2 || l.keys[1].ID != l.old.ID || !bytes.Equal(l.keys[1].Material, l.old.Material) ||
			!strings.HasPrefix(l.keys[0].ID, l.prefix) || l.keys[0].ID == l.old.ID || bytes.Equal(l.keys[0].Material, l.old.Material) {
			t.Fatalf("new list %v: want a new %s… key first, then the old one as it was", keyIDs(l.keys), l.prefix)
		}
	}
	newMaster, newPayload := masters[0], payloads[0]
	t.Setenv("LETHE_MASTER_KEYS", config.FormatKeys(masters))
	t.Setenv("LETHE_PAYLOAD_KEYS", config.FormatKeys(payloads))
	e = restartWithKeys(t, e, env, config.FormatKeys(payloads), config.FormatKeys(masters))

	// The old master key cannot go yet: everything is still wrapped under it.
	keysRefused(t, []string{fmt.Sprintf("%d per-person keys are still wrapped under master key %s", live, oldMaster.ID), "starter keys rewrap"},
		"retire", oldMaster.ID)
	status := keysOK(t, "status")
	if !regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(oldMaster.ID) + `\s+` + fmt.Sprint(live) + `\s+run .starter keys rewrap`).MatchString(status) {
		t.Errorf("status before the rewrap does not show %d keys under %s:\n%s", live, oldMaster.ID, status)
	}

	// 2. The rewrap is stopped after its first page (Ctrl-C), then run again.
	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	_, _, err = keysRun(stop, &cancelOnPage{cancel: cancel}, "rewrap", "--page-size", "10")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("rewrap stopped after 10 per-person keys in 1 pages, all committed; %d still to re-wrap", live-10)) ||
		!strings.Contains(err.Error(), "run `starter keys rewrap` again") {
		t.Fatalf("interrupted rewrap: %v", err)
	}
	if c, err := person.CountKeys(ctx, e.Lethe); err != nil || c.Wrapped[newMaster.ID] != 10 || c.Wrapped[oldMaster.ID] != live-10 {
		t.Fatalf("after the interrupted rewrap: %+v, %v; want 10 under %s and %d under %s", c, err, newMaster.ID, live-10, oldMaster.ID)
	}
	keysRefused(t, []string{fmt.Sprintf("%d per-person keys are still wrapped", live-10)}, "retire", oldMaster.ID)
	out := keysOK(t, "rewrap", "--page-size", "10")
	pages := (live - 10 + 9) / 10
	if !strings.Contains(out, fmt.Sprintf("re-wrapped %d per-person keys in %d pages", live-10, pages)) || !strings.Contains(out, "every live per-person key is wrapped under "+newMaster.ID) {
		t.Fatalf("resumed rewrap said:\n%s", out)
	}
	if !strings.Contains(out, fmt.Sprintf("page %d: %d of %d re-wrapped", pages, live-10, live-10)) {
		t.Errorf("resumed rewrap showed no progress per page:\n%s", out)
	}
	if out := keysOK(t, "rewrap"); !strings.Contains(out, "re-wrapped 0 per-person keys in 0 pages") {
		t.Errorf("a third rewrap found work:\n%s", out)
	}

	// One audit entry per run, counts and key ids only: together, every key once.
	rows, err := e.Lethe.Query(ctx, `SELECT (detail->>'rewrapped')::int, (detail->>'complete')::bool, subject_ref IS NULL AND request_id IS NULL, detail::text
		FROM lethe.audit_log WHERE action = 'keys.rewrapped' AND actor = 'cli' ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var runs []string
	total := 0
	for rows.Next() {
		var (
			n              int
			complete, anon bool
			detail         string
		)
		if err := rows.Scan(&n, &complete, &anon, &detail); err != nil {
			t.Fatal(err)
		}
		total += n
		runs = append(runs, fmt.Sprintf("%d/%v", n, complete))
		if !anon || strings.Contains(detail, "sr_") || strings.Contains(detail, "@") {
			t.Errorf("audit entry of a rewrap names someone: %s", detail)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"10/false", fmt.Sprintf("%d/true", live-10), "0/true"}; strings.Join(runs, " ") != strings.Join(want, " ") || total != live {
		t.Errorf("audited rewraps %v, want %v (every key once)", runs, want)
	}

	// 3. Now the old master key can go; the old payload key cannot, without --force.
	retired := parseKeys(t, keysOK(t, "retire", oldMaster.ID))
	if len(retired) != 1 || retired[0].ID != newMaster.ID || !bytes.Equal(retired[0].Material, newMaster.Material) {
		t.Fatalf("after retiring %s: %v, want only %s", oldMaster.ID, keyIDs(retired), newMaster.ID)
	}
	keysRefused(t, []string{"retiring payload key " + oldPayload.ID, "workflows still running", "--force"}, "retire", oldPayload.ID)
	t.Setenv("LETHE_MASTER_KEYS", config.FormatKeys(retired))
	e = restartWithKeys(t, e, env, config.FormatKeys(payloads), config.FormatKeys(retired))
	if status := keysOK(t, "status"); strings.Contains(status, oldMaster.ID) || !strings.Contains(status, newMaster.ID+" (active") || !strings.Contains(status, oldPayload.ID+" (opens only)") {
		t.Errorf("status after the rotation:\n%s", status)
	}

	// 4. The request from before: its payloads are under the old payload
	// key, its person's key under the new master key alone; it opens.
	if h := historyText(t, e.Stack, id); !strings.Contains(h, oldPayload.ID) {
		t.Fatal("the request's history has no payload under the old payload key: the test proves nothing")
	}
	if got, err := person.Open(ctx, e.Deps.Keys, ref, sealedIdentityOf(t, e, id)); err != nil || got.Email != target.Email || got.UserID != target.ID {
		t.Fatalf("the identity sealed before the rotation, after it: %v", err)
	}
	// An operator approves: the erasure runs on the rotated keys, and shreds.
	if code, body := e.call(t, "POST", "/v1/requests/"+id+"/approve", e.Operator, `{"reason":"approved after the key rotation"}`); code != http.StatusOK {
		t.Fatalf("approve: %d %v", code, body)
	}
	e.waitDone(t, id)
	if n := e.count(t, "SELECT count(*) FROM demo.projects WHERE account_id = $1", target.ID); n != 0 {
		t.Errorf("%d projects of the erased person left", n)
	}
	if n := e.count(t, "SELECT count(*) FROM demo.projects WHERE account_id = $1", other.ID); n == 0 {
		t.Error("another person's projects were erased too")
	}
	e.assertShredded(t, id)
	if h := historyTextFrom(t, e.Stack, id, "PlanAndRecordErasure"); !strings.Contains(h, newPayload.ID) || strings.Contains(h, oldPayload.ID) {
		t.Error("the erasure, started after the rotation, is not encrypted with the new payload key alone")
	}
	if c, err := person.CountKeys(ctx, e.Lethe); err != nil || c.Wrapped[oldMaster.ID] != 0 || c.Destroyed == 0 {
		t.Errorf("keys after the erasure: %+v, %v; want none under %s and the person's destroyed", c, err, oldMaster.ID)
	}
	if rep, err := audit.Verify(ctx, e.Lethe); err != nil || !rep.Intact() {
		t.Errorf("audit trail after the rotation: %+v, %v", rep, err)
	}
	e.assertNoPersonalDataLogged(t, target.Email, target.ID)
}

// Every mistake an operator can make gets a message that says what to fix,
// and never echoes key material.
func TestKeysCommandsExplainBadInput(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	t.Setenv("LETHE_DATABASE_URL", url)
	db, err := store.Open(ctx, url, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	m1, p1 := mustKey(t, "m"), mustKey(t, "p")
	t.Setenv("LETHE_MASTER_KEYS", config.FormatKeys([]config.Key{m1}))
	t.Setenv("LETHE_PAYLOAD_KEYS", "")

	// A first payload key on an empty list.
	if keys := parseKeys(t, keysOK(t, "add-payload")); len(keys) != 1 || !strings.HasPrefix(keys[0].ID, "p") {
		t.Errorf("add-payload on an empty list: %v", keyIDs(keys))
	}
	if status := keysOK(t, "status"); !strings.Contains(status, "Payload keys (LETHE_PAYLOAD_KEYS): none configured") || !strings.Contains(status, m1.ID+" (active") {
		t.Errorf("status:\n%s", status)
	}
	t.Setenv("LETHE_PAYLOAD_KEYS", config.FormatKeys([]config.Key{p1}))

	material := config.FormatKeys([]config.Key{m1})
	msg := keysRefused(t, []string{"not the key itself"}, "retire", material)
	if strings.Contains(msg, material[strings.Index(material, ":")+1:]) {
		t.Errorf("the refusal echoes key material: %s", msg)
	}
	keysRefused(t, []string{"name the one key to retire"}, "retire")
	keysRefused(t, []string{`no master or payload key has id "m0"`, m1.ID, p1.ID}, "retire", "m0")
	keysRefused(t, []string{m1.ID + " is the only master key", "keys add-master"}, "retire", m1.ID)
	keysRefused(t, []string{p1.ID + " is the only payload key"}, "retire", p1.ID, "--force")
	keysRefused(t, []string{"--kind: want master or payload"}, "retire", m1.ID, "--kind", "both")
	keysRefused(t, []string{"--page-size: want 1 to 10000"}, "rewrap", "--page-size", "0")

	// Two keys each: the active one stays; --force is for payload keys.
	m2, p2 := mustKey(t, "m"), mustKey(t, "p")
	t.Setenv("LETHE_MASTER_KEYS", config.FormatKeys([]config.Key{m2, m1}))
	t.Setenv("LETHE_PAYLOAD_KEYS", config.FormatKeys([]config.Key{p2, p1}))
	keysRefused(t, []string{m2.ID + " is the active master key", "keys add-master"}, "retire", m2.ID)
	keysRefused(t, []string{"--force is for payload keys only"}, "retire", m1.ID, "--force")
	if keys := parseKeys(t, keysOK(t, "retire", p1.ID, "--force")); len(keys) != 1 || keys[0].ID != p2.ID {
		t.Errorf("retire %s --force left %v", p1.ID, keyIDs(keys))
	}
	// One id in both lists: say which.
	same := config.Key{ID: m1.ID, Material: p1.Material}
	t.Setenv("LETHE_PAYLOAD_KEYS", config.FormatKeys([]config.Key{p2, same}))
	keysRefused(t, []string{"master key and of a payload key", "--kind"}, "retire", m1.ID)
	if keys := parseKeys(t, keysOK(t, "retire", m1.ID, "--kind", "master")); len(keys) != 1 || keys[0].ID != m2.ID {
		t.Errorf("retire --kind master left %v", keyIDs(keys))
	}

	// A per-person key under a master key no longer listed: rewrap refuses
	// before it starts, and status says what to do.
	t.Setenv("LETHE_MASTER_KEYS", config.FormatKeys([]config.Key{m1}))
	kr, err := person.NewKeyring(db, []config.Key{m1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Seal(ctx, "sr_lost000000000000000000000000", []byte("x")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LETHE_MASTER_KEYS", config.FormatKeys([]config.Key{m2}))
	keysRefused(t, []string{"1 per-person keys are wrapped under master key " + m1.ID, "does not list", "add " + m1.ID + " back"}, "rewrap")
	if status := keysOK(t, "status"); !strings.Contains(status, "NOT CONFIGURED") {
		t.Errorf("status with a key under a missing master key:\n%s", status)
	}

	// A malformed list names its variable; nothing panics.
	t.Setenv("LETHE_MASTER_KEYS", "m1:short")
	for _, args := range [][]string{{"add-master"}, {"status"}, {"rewrap"}, {"retire", "m1"}} {
		keysRefused(t, []string{"LETHE_MASTER_KEYS"}, args...)
	}
	t.Setenv("LETHE_MASTER_KEYS", "")
	keysRefused(t, []string{"LETHE_MASTER_KEYS: required"}, "rewrap")
	// Every retire that passed was audited, with ids only.
	var retires int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM lethe.audit_log WHERE action = 'keys.retired' AND actor = 'cli'`).Scan(&retires); err != nil || retires != 2 {
		t.Errorf("%d keys.retired entries, %v; want 2", retires, err)
	}
}
