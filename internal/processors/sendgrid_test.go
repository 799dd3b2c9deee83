package processors_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
)

func TestSendGridEraseIsAsyncThenAlreadyGone(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewSendGrid(t)
	id := f.AddContact(processorfake.SendGridContact{Email: email, FirstName: "Ann"})
	keep := f.AddContact(processorfake.SendGridContact{Email: "other@example.org"})
	c := newSendGrid(t, f)

	out, err := c.Erase(ctx, subject("req-1"))
	mustOutcome(t, out, err, processors.StatusPending)
	if out.HTTPStatus != http.StatusAccepted || out.JobID == "" || out.JobID != f.Jobs()[0] {
		t.Fatalf("outcome %+v, jobs %v", out, f.Jobs())
	}
	del := f.CallsTo(http.MethodDelete, "/v3/marketing/contacts")
	if len(del) != 1 || del[0].Query.Get("ids") != id {
		t.Fatalf("delete calls %+v", del)
	}
	if _, ok := f.Contact(id); ok {
		t.Fatal("contact still there")
	}
	if _, ok := f.Contact(keep); !ok {
		t.Fatal("other contact deleted")
	}

	out, err = c.Erase(ctx, subject("req-1"))
	mustOutcome(t, out, err, processors.StatusAlreadyGone)
	if out.HTTPStatus != http.StatusNotFound {
		t.Fatalf("http status %d", out.HTTPStatus)
	}
}

func TestSendGridExportAndUpdate(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewSendGrid(t)
	id := f.AddContact(processorfake.SendGridContact{Email: email, FirstName: "Anne", City: "Bonn"})
	c := newSendGrid(t, f)

	var col collector
	out, err := c.Export(ctx, subject("r"), &col)
	mustOutcome(t, out, err, processors.StatusDone)
	if len(col.records) != 1 || col.records[0].ID != id || !strings.Contains(string(col.records[0].Data), "Bonn") {
		t.Fatalf("records %+v", col.records)
	}

	out, err = c.Update(ctx, subject("r"), map[string]string{"first_name": "Ann", "city": "Berlin", "custom.e1_T": "x"})
	mustOutcome(t, out, err, processors.StatusPending)
	got, _ := f.Contact(id)
	if got.FirstName != "Ann" || got.City != "Berlin" || got.CustomFields["e1_T"] != "x" {
		t.Fatalf("contact %+v", got)
	}

	out, err = c.Update(ctx, subject("r"), map[string]string{"email": "new@example.net"})
	mustError(t, out, err, processors.KindNeedsOperator, 0)

	// Rectifying someone SendGrid does not know never creates a contact.
	out, err = c.Update(ctx, processors.Subject{RequestID: "r", Email: "nobody@example.org"}, map[string]string{"first_name": "N"})
	mustOutcome(t, out, err, processors.StatusNotFound)
	if _, ok := f.ContactByEmail("nobody@example.org"); ok {
		t.Fatal("update created a contact")
	}
}

func TestSendGridConsentUsesSuppressionGroups(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewSendGrid(t)
	f.AddGroup(42)
	c := newSendGrid(t, f)

	out, err := c.SetSubscribed(ctx, subject("r"), "marketing", false)
	mustOutcome(t, out, err, processors.StatusDone)
	if !f.Suppressed(42, email) || out.HTTPStatus != http.StatusCreated {
		t.Fatalf("not suppressed (outcome %+v)", out)
	}
	out, err = c.SetSubscribed(ctx, subject("r"), "marketing", true)
	mustOutcome(t, out, err, processors.StatusDone)
	if f.Suppressed(42, email) {
		t.Fatal("still suppressed")
	}
	out, err = c.SetSubscribed(ctx, subject("r"), "all_email", false)
	mustOutcome(t, out, err, processors.StatusDone)
	if !f.GloballySuppressed(email) {
		t.Fatal("not globally suppressed")
	}
	out, err = c.SetSubscribed(ctx, subject("r"), "all_email", true)
	mustOutcome(t, out, err, processors.StatusDone)
	if f.GloballySuppressed(email) {
		t.Fatal("still globally suppressed")
	}
	out, err = c.SetSubscribed(ctx, subject("r"), "sale_of_data", false)
	mustOutcome(t, out, err, processors.StatusNotApplicable)
}

func TestSendGridInvalidEmailNeedsOperator(t *testing.T) {
	f := processorfake.NewSendGrid(t)
	out, err := newSendGrid(t, f).Erase(context.Background(), processors.Subject{RequestID: "r", Email: "not-an-email"})
	e := mustError(t, out, err, processors.KindNeedsOperator, http.StatusBadRequest)
	if strings.Contains(e.Error(), "not-an-email") {
		t.Fatalf("error quotes the value: %v", e)
	}
}
