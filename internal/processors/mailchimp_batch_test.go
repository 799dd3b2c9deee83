package processors_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
)

// follow runs a batch job to its end the way a bulk erasure does.
func follow(t *testing.T, c processors.BatchEraser, subjects []processors.Subject) processors.BatchProgress {
	t.Helper()
	ctx := context.Background()
	job, err := c.StartErasures(ctx, subjects)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		p, err := c.ErasuresProgress(ctx, job, subjects)
		if err != nil {
			t.Fatal(err)
		}
		if p.Done {
			return p
		}
		job = p.Job
	}
	t.Fatal("the batch never finished")
	return processors.BatchProgress{}
}

func TestMailchimpErasesManyPeopleInTwoBatchesWithTheEvidenceOfEach(t *testing.T) {
	f := processorfake.NewMailchimp(t)
	f.SetBatchPolls(2)
	var subjects []processors.Subject
	for i := range 30 {
		e := fmt.Sprintf("person%d@example.org", i)
		subjects = append(subjects, processors.Subject{RequestID: fmt.Sprint("r", i), Email: e})
		if i%3 != 2 { // every third is not a member of "news"
			f.AddMember("news", processorfake.MailchimpMember{Email: e})
		}
		if i%2 == 0 {
			f.AddMember("offers", processorfake.MailchimpMember{Email: e})
		}
	}
	c := newMailchimp(t, f, "news", "offers")
	if c.BatchSize() != 500 {
		t.Fatalf("batch size %d with two audiences, want 500", c.BatchSize())
	}
	p := follow(t, c, subjects)
	outside := len(f.CallsTo("", "/3.0/lists/news/members/"))
	if len(p.Outcomes) != len(subjects) {
		t.Fatalf("%d outcomes for %d people", len(p.Outcomes), len(subjects))
	}
	for i, o := range p.Outcomes {
		member := i%3 != 2 || i%2 == 0
		want := processors.StatusAlreadyGone
		if member {
			want = processors.StatusDone
		}
		if o.Err != "" || o.Outcome.Status != want {
			t.Errorf("person %d: %+v, want %s", i, o, want)
		}
		for _, l := range []string{"news", "offers"} {
			if _, ok := f.Member(l, subjects[i].Email); ok {
				t.Errorf("person %d still in %s", i, l)
			}
		}
		// The evidence names each audience's contact, which Confirm can
		// check without the email.
		var members int
		for _, r := range o.Outcome.Refs {
			if r.Kind == "member" {
				members++
			}
			if strings.Contains(r.ID, "@") || strings.Contains(r.ID, processorfake.SubscriberHash(subjects[i].Email)) {
				t.Errorf("person %d: a ref holds their email or its hash: %+v", i, r)
			}
		}
		wantMembers := 0
		if i%3 != 2 {
			wantMembers++
		}
		if i%2 == 0 {
			wantMembers++
		}
		if members != wantMembers {
			t.Errorf("person %d: %d member refs, want %d", i, members, wantMembers)
		}
		if member {
			if got, err := c.Confirm(context.Background(), o.Outcome); err != nil || got.Status != processors.StatusAlreadyGone {
				t.Errorf("person %d: confirm %+v %v", i, got, err)
			}
		}
	}
	// Two batches, and no call per person.
	if f.Batches() != 2 {
		t.Fatalf("%d batches, want 2 (lookup, erase)", f.Batches())
	}
	if outside != 0 {
		t.Fatalf("%d calls per member outside the batches", outside)
	}
	if n := len(f.Operations(http.MethodPost, "/3.0/lists/")); n != 60 {
		t.Fatalf("%d delete-permanent operations, want 60 (30 people, 2 audiences)", n)
	}
	// Nothing personal leaves in the progress a workflow would keep.
	b, _ := json.Marshal(p)
	for _, s := range subjects {
		if strings.Contains(string(b), s.Email) || strings.Contains(string(b), processorfake.SubscriberHash(s.Email)) {
			t.Fatal("the progress holds an email or its hash")
		}
	}
}

func TestMailchimpBatchRefusalsStayWithTheirPerson(t *testing.T) {
	f := processorfake.NewMailchimp(t)
	f.AddMember("news", processorfake.MailchimpMember{Email: "a@example.org"})
	c := newMailchimp(t, f, "news")
	// One person's trouble stays theirs: one without an email, one whose
	// lookup fails (no evidence could be read), one whose erasure fails.
	for _, e := range []string{"b@example.org", "c@example.org", "d@example.org"} {
		f.AddMember("news", processorfake.MailchimpMember{Email: e})
	}
	f.FailNextOperations(1, http.StatusInternalServerError, "/3.0/lists/news/members/"+processorfake.SubscriberHash("b@example.org"))
	f.FailNextOperations(1, http.StatusBadRequest, "/3.0/lists/news/members/"+processorfake.SubscriberHash("c@example.org")+"/actions/")
	mixed := []processors.Subject{{RequestID: "r0"}, {Email: "b@example.org"}, {Email: "c@example.org"}, {Email: "d@example.org"}}
	p := follow(t, c, mixed)
	for i, want := range []string{"subject has no email", "mailchimp lookup: 500", "mailchimp erase: 400", ""} {
		o := p.Outcomes[i]
		if !strings.Contains(o.Err, want) || want == "" && (o.Err != "" || o.Outcome.Status != processors.StatusDone) || want != "" && o.Outcome.Status != "" {
			t.Errorf("person %d: %+v, want refusal %q", i, o, want)
		}
	}
	if _, still := f.Member("news", "b@example.org"); !still {
		t.Error("the person whose lookup failed was erased without evidence: they go to the call per person")
	}
	if _, still := f.Member("news", "c@example.org"); !still {
		t.Error("the person whose erasure failed is gone from the fake")
	}
	// An unknown audience is the operator's to fix, as for one person.
	_, err := newMailchimp(t, f, "typo").StartErasures(context.Background(), []processors.Subject{{Email: "a@example.org"}})
	if e, ok := processors.AsError(err); !ok || e.Kind != processors.KindNeedsOperator || !strings.Contains(e.Error(), "typo") {
		t.Fatalf("unknown audience: %v", err)
	}
	// Too many people for one batch.
	many := make([]processors.Subject, c.BatchSize()+1)
	for i := range many {
		many[i].Email = fmt.Sprintf("p%d@example.org", i)
	}
	if _, err := c.StartErasures(context.Background(), many); err == nil {
		t.Fatal("a batch over the limit was accepted")
	}
	// A failing status read is retryable, and the job goes on after it.
	subjects := []processors.Subject{{RequestID: "r1", Email: "a@example.org"}, {RequestID: "r2", Email: "e@example.org"}}
	job, err := c.StartErasures(context.Background(), subjects)
	if err != nil {
		t.Fatal(err)
	}
	f.FailNext(1, http.StatusServiceUnavailable)
	_, err = c.ErasuresProgress(context.Background(), job, subjects)
	if e, ok := processors.AsError(err); !ok || e.Kind != processors.KindRetryable {
		t.Fatalf("a 503 on the status read: %v", err)
	}
	for range 5 {
		p, err := c.ErasuresProgress(context.Background(), job, subjects)
		if err != nil {
			t.Fatal(err)
		}
		if p.Done {
			if p.Outcomes[0].Outcome.Status != processors.StatusDone || p.Outcomes[1].Outcome.Status != processors.StatusAlreadyGone {
				t.Fatalf("outcomes %+v", p.Outcomes)
			}
			return
		}
		job = p.Job
	}
	t.Fatal("the batch never finished")
}
