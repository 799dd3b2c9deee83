package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/testenv"
)

// A system that fails for good does not end the request: it waits as
// needs_attention, the privacy team gets a task at once and the deadline's
// reminder later, and once the system is fixed an operator's retry
// completes the erasure without asking a processor a second time.
func TestAFailedErasureWaitsForTheTeamAndARetryFinishesItWithoutRedoingTheRest(t *testing.T) {
	// The company's own deadline of a day, with a reminder ten seconds in.
	w := newErasureWorldWith(t, map[string]string{"LETHE_DUE_COMPANY": "1d", "LETHE_OPERATOR_REMINDERS": "23h59m50s"})
	ctx := context.Background()
	team := w.Config.PrivacyTeamEmail
	// A table of the data map goes missing (a migration renamed it): the
	// application database fails for good; S3 and the processors do not.
	if _, err := w.App.Exec(ctx, `ALTER TABLE demo.reviews RENAME TO reviews_renamed`); err != nil {
		t.Fatal(err)
	}
	id := w.submitErasure(t, `,"jurisdiction":"default"`)
	w.resolveTask(t, id, "paypal", `{"action":"done","evidence":"ticket PP-77"}`)
	waiting := w.waitStatus(t, id, domain.StatusNeedsAttention)
	attention, _ := waiting["attention"].(map[string]any)
	if attention == nil || attention["why"] != "ErasureIncomplete" || !strings.Contains(fmt.Sprint(attention["failed"]), "postgres") {
		t.Fatalf("the request does not say what failed: %v", waiting)
	}
	teamMail := func(what string, match func(subject, text string) bool) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, what, func() bool {
			for _, m := range w.SendGrid.To(team) {
				if strings.Contains(m.Text, id) && match(m.Subject, m.Text) {
					return true
				}
			}
			return false
		})
	}
	teamMail("the team's task", func(subject, text string) bool {
		return strings.Contains(subject, "needs a person") && strings.Contains(text, "/v1/requests/"+id+"/retry")
	})
	teamMail("the deadline's reminder", func(subject, _ string) bool { return strings.Contains(subject, "is due on") })
	for _, m := range w.SendGrid.To(team) {
		if strings.Contains(strings.ToLower(m.Text), strings.ToLower(w.person.Email)) {
			t.Errorf("a team mail names the person: %s", m.Subject)
		}
	}
	if code, _ := w.call(t, "POST", "/v1/requests/"+id+"/retry", w.Backend, `{}`); code != http.StatusForbidden {
		t.Fatalf("a backend key retrying: %d", code)
	}

	// Fixed; retried: the request completes.
	if _, err := w.App.Exec(ctx, `ALTER TABLE demo.reviews_renamed RENAME TO reviews`); err != nil {
		t.Fatal(err)
	}
	if code, out := w.call(t, "POST", "/v1/requests/"+id+"/retry", w.Operator, `{}`); code != http.StatusOK {
		t.Fatalf("retry: %d %v", code, out)
	}
	done := w.waitStatus(t, id, domain.StatusCompleted)
	if code, _ := w.call(t, "POST", "/v1/requests/"+id+"/retry", w.Operator, `{}`); code != http.StatusConflict {
		t.Fatalf("retrying a completed request: %d, want 409", code)
	}
	if n := w.count(t, "SELECT count(*) FROM demo.reviews WHERE account_id = $1", w.person.ID); n != 0 {
		t.Errorf("%d reviews still linked to the person after the retry", n)
	}
	// What completed in the first attempt was not redone.
	if calls := w.stripe.CallsTo("DELETE", "/v1/customers/"+w.customer); len(calls) != 1 {
		t.Errorf("stripe: %d DELETE calls, want the first attempt's only", len(calls))
	}
	if calls := w.mailchimp.CallsTo("POST", "/3.0/lists/news/members/"); len(calls) != 1 {
		t.Errorf("mailchimp: %d delete calls, want 1", len(calls))
	}
	if n := len(w.crm.Deliveries()); n != 1 {
		t.Errorf("crm: %d deliveries, want 1", n)
	}
	if n := w.count(t, "SELECT count(*) FROM lethe.audit_log WHERE action = 'processor.task_opened'"); n != 1 {
		t.Errorf("%d operator tasks opened: paypal's was asked again", n)
	}
	outcome := fmt.Sprint(done["outcome"])
	for _, want := range []string{"stripe: erasure confirmed", "paypal: erased by our privacy team", "Anonymized"} {
		if !strings.Contains(outcome, want) {
			t.Errorf("receipt %s lacks %q", outcome, want)
		}
	}
	var actions []string
	rows, err := w.Lethe.Query(ctx, "SELECT action FROM lethe.audit_log WHERE request_id = $1 ORDER BY seq", id)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var a string
		_ = rows.Scan(&a)
		actions = append(actions, a)
	}
	rows.Close()
	if got := strings.Join(actions, " "); !strings.Contains(got, "request.needs_attention") || !strings.Contains(got, "request.retried") {
		t.Errorf("audit trail %v", actions)
	}
	keepHistory(t, w.Stack, id, "request-needs-attention-retried-in-request")
}
