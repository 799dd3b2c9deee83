package processors_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
)

func TestSendGridErasesAHundredPeopleInOneSearchOneDeleteAndWaitsForTheJob(t *testing.T) {
	f := processorfake.NewSendGrid(t)
	f.SetDeletionLag(2)
	var subjects []processors.Subject
	ids := map[int]string{}
	for i := range 100 {
		e := fmt.Sprintf("Person%d@Example.org", i)
		s := processors.Subject{RequestID: fmt.Sprint("r", i), Email: e}
		switch i % 4 {
		case 0: // a contact found by email
			ids[i] = f.AddContact(processorfake.SendGridContact{Email: e})
		case 1: // a contact the application knows the id of
			ids[i] = f.AddContact(processorfake.SendGridContact{Email: e})
			s = processors.Subject{RequestID: s.RequestID, IDs: map[string]string{processors.IDSendGridContact: ids[i]}}
		}
		subjects = append(subjects, s)
	}
	c := newSendGrid(t, f)
	ctx := context.Background()
	job, err := c.StartErasures(ctx, subjects)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.CallsTo(http.MethodPost, "/v3/marketing/contacts/search/emails")); n != 1 {
		t.Fatalf("%d searches, want one for the batch", n)
	}
	// What was found is the job's before anything is deleted.
	if n := len(f.CallsTo(http.MethodDelete, "/v3/marketing/contacts")); n != 0 {
		t.Fatalf("%d deletions before the contacts found were kept", n)
	}
	p, err := c.ErasuresProgress(ctx, job, subjects)
	if err != nil || p.Done || p.Job.Step == job.Step {
		t.Fatalf("after the search: %+v %v, want the deletion's job", p, err)
	}
	job = p.Job
	if n := len(f.CallsTo(http.MethodDelete, "/v3/marketing/contacts")); n != 1 {
		t.Fatalf("%d deletions, want one for the batch", n)
	}
	// The job runs: its contacts can still be read.
	running := 0
	for range 5 {
		if p, err = c.ErasuresProgress(ctx, job, subjects); err != nil {
			t.Fatal(err)
		}
		if p.Done {
			break
		}
		running++
		if p.Job.ID != job.ID || p.Finished >= p.Total {
			t.Fatalf("running: %+v", p)
		}
	}
	if !p.Done || running == 0 {
		t.Fatalf("done %v after %d checks that saw it running: want some, then done", p.Done, running)
	}
	for i, o := range p.Outcomes {
		if id, had := ids[i]; had {
			if o.Outcome.Status != processors.StatusDone || len(o.Outcome.Refs) != 1 || o.Outcome.Refs[0].ID != id {
				t.Errorf("person %d: %+v, want done naming contact %s", i, o, id)
			}
			if _, still := f.Contact(id); still {
				t.Errorf("person %d: contact still there", i)
			}
			// Confirm, later, from the outcome alone.
			if got, err := c.Confirm(ctx, o.Outcome); err != nil || got.Status != processors.StatusAlreadyGone {
				t.Errorf("person %d: confirm %+v %v", i, got, err)
			}
		} else if o.Outcome.Status != processors.StatusAlreadyGone {
			t.Errorf("person %d had no contact: %+v", i, o)
		}
		if strings.Contains(fmt.Sprint(o), "@") {
			t.Errorf("person %d: the outcome holds an address", i)
		}
	}
	// A person with neither an id nor an address is refused alone.
	f.AddContact(processorfake.SendGridContact{Email: "z@example.org"})
	mixed := []processors.Subject{{RequestID: "x"}, {RequestID: "y", Email: "Z@example.org"}}
	if job, err = c.StartErasures(ctx, mixed); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if p, err = c.ErasuresProgress(ctx, job, mixed); err != nil || p.Done {
			break
		}
		job = p.Job
	}
	if !p.Done || p.Outcomes[0].Err == "" || p.Outcomes[1].Outcome.Status != processors.StatusDone {
		t.Fatalf("mixed: %+v %v", p, err)
	}
	// Over the limit, said before anything is sent.
	if _, err := c.StartErasures(ctx, make([]processors.Subject, 101)); err == nil {
		t.Fatal("101 people in a batch were accepted")
	}
}

// A contact search that answers for an address nobody asked about (a
// service that rewrote an address, say) fails the batch, whose people are
// then asked one by one: the person asked about would be reported gone
// while their contact stays. Keys differing only in case are the address
// asked.
func TestSendGridBatchRefusesAContactForAnAddressNotAsked(t *testing.T) {
	answer := `{"result":{"ANNA@example.org":{"contact":{"id":"c-anna","email":"anna@example.org"}},"anna+news@example.org":{"contact":{"id":"c-other","email":"anna+news@example.org"}}}}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v3/marketing/contacts/search/emails":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(answer))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := processors.NewSendGrid(processors.SendGridConfig{BaseURL: srv.URL, APIKey: "SG.test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	people := []processors.Subject{{RequestID: "r1", Email: "anna@example.org"}, {RequestID: "r2", Email: "ben@example.org"}}
	_, err = c.StartErasures(ctx, people)
	if err == nil || !strings.Contains(err.Error(), "not asked") {
		t.Fatalf("want the batch refused for the unasked address, got %v", err)
	}
	if strings.Contains(err.Error(), "@") {
		t.Errorf("the error names an address: %v", err)
	}

	// Only the address asked, in another case: Anna's contact is hers.
	answer = `{"result":{"ANNA@example.org":{"contact":{"id":"c-anna","email":"anna@example.org"}}}}`
	job, err := c.StartErasures(ctx, people)
	if err != nil {
		t.Fatal(err)
	}
	if len(job.Found[0]) != 1 || job.Found[0][0].ID != "c-anna" || len(job.Found[1]) != 0 {
		t.Fatalf("found %+v, want Anna's contact for Anna and none for Ben", job.Found)
	}
}

// SendGrid refuses a whole contact search (400) for one invalid address:
// the batch searches again in halves, so only the people with an invalid
// address are refused (each then asked alone, which gives the privacy
// team a task) and everyone else is erased in the batch.
func TestSendGridBatchRefusesOnlyThePeopleWithAnInvalidAddress(t *testing.T) {
	f := processorfake.NewSendGrid(t)
	var subjects []processors.Subject
	ids := map[int]string{}
	for i := range 100 {
		e := fmt.Sprintf("person%d@example.org", i)
		if i == 17 || i == 64 {
			e = fmt.Sprintf("person%d.example.org", i) // no @: SendGrid refuses it
		} else {
			ids[i] = f.AddContact(processorfake.SendGridContact{Email: e})
		}
		subjects = append(subjects, processors.Subject{RequestID: fmt.Sprint("r", i), Email: e})
	}
	c := newSendGrid(t, f)
	ctx := context.Background()
	job, err := c.StartErasures(ctx, subjects)
	if err != nil {
		t.Fatalf("the batch failed for two invalid addresses: %v", err)
	}
	searches := len(f.CallsTo(http.MethodPost, "/v3/marketing/contacts/search/emails"))
	if searches < 3 || searches > 32 {
		t.Errorf("%d searches, want a few halvings (at most 32)", searches)
	}
	for i := range subjects {
		bad := i == 17 || i == 64
		if bad != (job.Refused[i] != "") || !bad && (len(job.Found[i]) != 1 || job.Found[i][0].ID != ids[i]) {
			t.Fatalf("person %d: refused %q, found %v", i, job.Refused[i], job.Found[i])
		}
		if strings.Contains(job.Refused[i], "@") || strings.Contains(job.Refused[i], "example.org") {
			t.Fatalf("the refusal names the address: %q", job.Refused[i])
		}
	}
	p, err := c.ErasuresProgress(ctx, job, subjects)
	for n := 0; err == nil && !p.Done && n < 5; n++ {
		p, err = c.ErasuresProgress(ctx, p.Job, subjects)
	}
	if err != nil || !p.Done {
		t.Fatalf("the deletion: %+v %v", p, err)
	}
	for i, id := range ids {
		if _, still := f.Contact(id); still || p.Outcomes[i].Outcome.Status != processors.StatusDone {
			t.Errorf("person %d: contact still there (%v) or outcome %+v", i, still, p.Outcomes[i])
		}
	}
	if p.Outcomes[17].Err == "" || p.Outcomes[64].Err == "" {
		t.Errorf("the invalid addresses' people: %+v, %+v, want refused", p.Outcomes[17], p.Outcomes[64])
	}

	// A refusal of every address is not the addresses' fault, and more
	// invalid addresses than halving can find within its searches fail
	// the batch too (its people are then asked one by one).
	before := len(f.CallsTo(http.MethodPost, "/v3/marketing/contacts/search/emails"))
	var none, many []processors.Subject
	for i := range 8 {
		none = append(none, processors.Subject{RequestID: fmt.Sprint("n", i), Email: fmt.Sprintf("nobody%d.example.org", i)})
	}
	if _, err := c.StartErasures(ctx, none); err == nil || !strings.Contains(err.Error(), "every address") {
		t.Fatalf("every address refused: %v, want the batch failed", err)
	}
	for i := range 100 {
		e := fmt.Sprintf("many%d@example.org", i)
		if i%10 == 3 {
			e = fmt.Sprintf("many%d.example.org", i)
		}
		many = append(many, processors.Subject{RequestID: fmt.Sprint("m", i), Email: e})
	}
	mid := len(f.CallsTo(http.MethodPost, "/v3/marketing/contacts/search/emails"))
	if _, err := c.StartErasures(ctx, many); err == nil {
		t.Fatal("ten invalid addresses among a hundred: want the batch failed")
	}
	if n := len(f.CallsTo(http.MethodPost, "/v3/marketing/contacts/search/emails")) - mid; n > 32 {
		t.Errorf("%d searches for one batch, want at most 32", n)
	}
	if n := mid - before; n > 15 {
		t.Errorf("%d searches for eight refused addresses", n)
	}
}
