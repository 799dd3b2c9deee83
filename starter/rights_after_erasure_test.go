package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/person"
)

// Erasure ends what Lethe and the application kept about a person, not the
// person's rights: whoever comes back (signs up again with the same email,
// or is known by the same user id) can ask again at once, while what the
// old key sealed stays shredded.

// submitOK submits a request with a backend key and returns its id; the
// answer must be 202.
func (e *e2e) submitOK(t *testing.T, what, body string) string {
	t.Helper()
	code, out := e.call(t, "POST", "/v1/requests", e.Backend, body)
	if code != http.StatusAccepted {
		t.Fatalf("%s: %d %v", what, code, out)
	}
	return out["id"].(string)
}

// refOf is the subject reference a request was filed under.
func (e *e2e) refOf(t *testing.T, id string) string {
	t.Helper()
	var ref string
	if err := e.Lethe.QueryRow(context.Background(), "SELECT subject_ref FROM lethe.requests WHERE id = $1", id).Scan(&ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

// assertShredded checks that the identity the request's history carries
// no longer opens, because its key was destroyed.
func (e *e2e) assertShredded(t *testing.T, id string) {
	t.Helper()
	_, err := person.Open(context.Background(), e.Deps.Keys, e.refOf(t, id), sealedIdentityOf(t, e, id))
	if !errors.Is(err, person.ErrKeyDestroyed) {
		t.Errorf("the identity of %s: want it shredded, got %v", id, err)
	}
}

// keyGenerations is the subject's key rows in order: true for a live key.
func (e *e2e) keyGenerations(t *testing.T, ref string) []bool {
	t.Helper()
	rows, err := e.Lethe.Query(context.Background(), `SELECT destroyed_at IS NULL FROM lethe.subject_keys WHERE subject_ref = $1 ORDER BY generation`, ref)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []bool
	for rows.Next() {
		var live bool
		if err := rows.Scan(&live); err != nil {
			t.Fatal(err)
		}
		out = append(out, live)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitDone waits for a request to complete, and says where it stood when
// it does not.
func (e *e2e) waitDone(t *testing.T, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, view := e.call(t, "GET", "/v1/requests/"+id, e.Operator, "")
		if view["status"] == domain.StatusCompleted {
			return view
		}
		if domain.Closed(fmt.Sprint(view["status"])) || time.Now().After(deadline) {
			_, progress := e.call(t, "GET", "/v1/requests/"+id+"/erasure", e.Operator, "")
			var result any
			why := e.Temporal.GetWorkflow(context.Background(), id, "").Get(context.Background(), &result)
			t.Fatalf("request %s did not complete: %v\nerasure: %v\nwhy: %v", id, view, progress, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// assertHoldsOwnTheirKeys checks that each erasure that kept purchases
// under the legal hold sealed them with a live key of its own: two erasures
// under one subject reference never share one, so the end of the first hold
// (which destroys its key) cannot leave the second's rows for ever.
func (e *e2e) assertHoldsOwnTheirKeys(t *testing.T, erasures int) {
	t.Helper()
	var holds, live int
	if err := e.Lethe.QueryRow(context.Background(), `SELECT count(DISTINCT subject_ref), count(*) FILTER (WHERE destroyed_at IS NULL)
		FROM lethe.subject_keys WHERE subject_ref LIKE 'hold:demo.purchases:%'`).Scan(&holds, &live); err != nil {
		t.Fatal(err)
	}
	if holds != erasures || live != erasures {
		t.Errorf("hold keys of the purchases: %d, %d live; want one live key for each of %d erasures", holds, live, erasures)
	}
}

func (e *e2e) assertNoPersonalDataLogged(t *testing.T, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(e.LogOutput.String(), s) {
			t.Errorf("logs contain %q", s)
		}
	}
}

func TestSomeoneErasedByEmailSignsUpAgainAndAsksAgain(t *testing.T) {
	e := newE2E(t, 2, nil)
	ctx := context.Background()
	account := demo.Accounts(2)[0]
	byEmail := func(typ string) string {
		return fmt.Sprintf(`{"type":%q,"subject":{"email":%q},"jurisdiction":"gdpr","verified":true}`, typ, account.Email)
	}

	first := e.submitOK(t, "the first erasure", byEmail("erasure"))
	e.waitDone(t, first)
	ref := e.refOf(t, first)

	// The person signs up again with the same address, and at once (the
	// API sealed with the old key seconds ago) asks for their data.
	const comeback = "u-comeback-1"
	if _, err := e.App.Exec(ctx, `INSERT INTO demo.accounts (id, email) VALUES ($1, $2)`, comeback, account.Email); err != nil {
		t.Fatal(err)
	}
	// and buys something: tax law will keep that too.
	if _, err := e.App.Exec(ctx, `INSERT INTO demo.purchases (account_id, amount_cents, currency, purchased_at) VALUES ($1, 900, 'EUR', now())`, comeback); err != nil {
		t.Fatal(err)
	}
	access := e.submitOK(t, "access after the erasure", byEmail("access"))
	if e.refOf(t, access) != ref {
		t.Fatal("the new request is filed under another subject reference: the test proves nothing")
	}
	done := e.waitDone(t, access)
	if done["outcome"] == nil {
		t.Errorf("the access request completed without an outcome: %v", done)
	}
	// A new key for the new request; the first request's identity stays shredded.
	if got := e.keyGenerations(t, ref); !slices.Equal(got, []bool{false, true}) {
		t.Fatalf("key generations of the person = %v, want [destroyed live]", got)
	}
	e.assertShredded(t, first)
	if id, err := person.Open(ctx, e.Deps.Keys, ref, sealedIdentityOf(t, e, access)); err != nil || id.Email != account.Email {
		t.Fatalf("the new request's identity: %v", err)
	}

	// And erased a second time: the new account goes, and so does the new key.
	second := e.submitOK(t, "the second erasure", byEmail("erasure"))
	e.waitDone(t, second)
	if n := e.count(t, "SELECT count(*) FROM demo.accounts WHERE email = $1", account.Email); n != 0 {
		t.Errorf("%d account rows still carry the address after the second erasure", n)
	}
	if got := e.keyGenerations(t, ref); !slices.Equal(got, []bool{false, false}) {
		t.Fatalf("key generations after the second erasure = %v, want both destroyed", got)
	}
	for _, id := range []string{first, access, second} {
		e.assertShredded(t, id)
	}
	e.assertHoldsOwnTheirKeys(t, 2)
	e.assertNoPersonalDataLogged(t, account.Email, account.ID, comeback)
}

func TestSomeoneErasedByUserIDAsksAgain(t *testing.T) {
	e := newE2E(t, 2, nil)
	ctx := context.Background()
	account := demo.Accounts(2)[0]
	byUserID := func(typ string) string {
		return fmt.Sprintf(`{"type":%q,"subject":{"user_id":%q},"jurisdiction":"gdpr","verified":true}`, typ, account.ID)
	}

	first := e.submitOK(t, "the first erasure", byUserID("erasure"))
	e.waitDone(t, first)
	ref := e.refOf(t, first)

	// At once, the same user id asks for its data, then to be erased again.
	access := e.submitOK(t, "access after the erasure", byUserID("access"))
	e.waitDone(t, access)
	if e.refOf(t, access) != ref {
		t.Fatal("the new request is filed under another subject reference: the test proves nothing")
	}
	if got := e.keyGenerations(t, ref); !slices.Equal(got, []bool{false, true}) {
		t.Fatalf("key generations of the person = %v, want [destroyed live]", got)
	}
	if id, err := person.Open(ctx, e.Deps.Keys, ref, sealedIdentityOf(t, e, access)); err != nil || id.UserID != account.ID {
		t.Fatalf("the new request's identity: %v", err)
	}
	e.assertShredded(t, first)

	second := e.submitOK(t, "a second erasure", byUserID("erasure"))
	done := e.waitDone(t, second)
	if !strings.Contains(fmt.Sprint(done["outcome"]), "demo.purchases") {
		t.Errorf("the second erasure's outcome does not mention the held purchases: %v", done["outcome"])
	}
	if got := e.keyGenerations(t, ref); !slices.Equal(got, []bool{false, false}) {
		t.Fatalf("key generations of the person = %v, want two, both destroyed", got)
	}
	for _, id := range []string{first, access, second} {
		e.assertShredded(t, id)
	}
	// The purchase kept for tax law is held by both erasures.
	e.assertHoldsOwnTheirKeys(t, 2)
	e.assertNoPersonalDataLogged(t, account.Email, account.ID)
}

// bodyShape is what an answer says apart from its ids, tokens and dates:
// its fields, and the values of the others.
func bodyShape(body map[string]any) string {
	varying := regexp.MustCompile(`req_[a-z2-7]+|rt_[a-z2-7]+`)
	var parts []string
	for k, v := range body {
		switch k {
		case "id", "request_token":
			parts = append(parts, k+"="+varying.ReplaceAllString(fmt.Sprint(v), "<id>"))
		case "due_at":
			at, err := time.Parse(time.RFC3339, fmt.Sprint(v))
			parts = append(parts, k+"="+fmt.Sprint(err == nil && time.Until(at) > 24*time.Hour))
		default:
			parts = append(parts, k+"="+varying.ReplaceAllString(fmt.Sprint(v), "<id>"))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

func TestAnErasedAndAnUnknownEmailGetTheSameAnswer(t *testing.T) {
	e := newE2E(t, 2, nil)
	erased := demo.Accounts(2)[0]
	stranger := "never-seen-" + fmt.Sprint(time.Now().UnixNano()) + "@example.com"

	id := e.submitOK(t, "the erasure", fmt.Sprintf(`{"type":"erasure","subject":{"email":%q},"jurisdiction":"gdpr","verified":true}`, erased.Email))
	e.waitDone(t, id)
	before := len(e.SendGrid.To(erased.Email))

	// Anyone may submit for any address without a key: the answer must
	// not tell whether that address was erased.
	submit := func(email string) (int, map[string]any) {
		return e.call(t, "POST", "/v1/requests", "", fmt.Sprintf(`{"type":"access","subject":{"email":%q},"jurisdiction":"gdpr"}`, email))
	}
	codeErased, bodyErased := submit(erased.Email)
	codeStranger, bodyStranger := submit(stranger)
	if codeErased != codeStranger || codeErased != http.StatusAccepted {
		t.Fatalf("status for an erased address %d (%v), for an unknown one %d (%v); want 202 both", codeErased, bodyErased, codeStranger, bodyStranger)
	}
	if a, b := bodyShape(bodyErased), bodyShape(bodyStranger); a != b {
		t.Fatalf("the answers differ:\n erased:  %s\n unknown: %s", a, b)
	}
	if !strings.HasPrefix(fmt.Sprint(bodyErased["request_token"]), "rt_") {
		t.Fatalf("no request token: %v", bodyErased)
	}
	// What follows is the same too: a receipt and a code, by mail, and a
	// request waiting for that code.
	for _, c := range []struct {
		email string
		had   int
		body  map[string]any
	}{{erased.Email, before, bodyErased}, {stranger, 0, bodyStranger}} {
		if _, err := e.SendGrid.WaitFor(c.email, c.had+2, 15*time.Second); err != nil {
			t.Errorf("mails after the submission: %v", err)
		}
		e.waitStatus(t, c.body["id"].(string), domain.StatusAwaitingVerification)
	}
	e.assertNoPersonalDataLogged(t, erased.Email, erased.ID, stranger)
}
