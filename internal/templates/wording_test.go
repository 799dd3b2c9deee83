package templates

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

var tagRe = regexp.MustCompile(`<[^>]+>`)

// plain is an HTML body without its tags, white space collapsed.
func plain(html string) string { return flat(tagRe.ReplaceAllString(html, "")) }

// A task's mail states the request's due date and the task's deadline
// apart, never the task's deadline as the request's due date.
func TestTaskMailsStateBothDates(t *testing.T) {
	r := newRenderer(t, "")
	due := time.Date(2027, 2, 28, 0, 0, 0, 0, time.UTC)
	task := time.Date(2027, 2, 7, 0, 0, 0, 0, time.UTC)
	for name, want := range map[string]string{
		OperatorReminder:   "The request is due on 28 February 2027; this task's deadline is 7 February 2027.",
		OperatorEscalation: "The request is due on 28 February 2027; this task's deadline is 7 February 2027 and it is still open.",
	} {
		d := data(name, "gdpr")
		d.DueDate, d.TaskDeadline = due, task
		m, err := r.Render(name, d)
		if err != nil {
			t.Fatal(err)
		}
		for what, body := range map[string]string{"text": flat(m.Text), "HTML": plain(m.HTML)} {
			if !strings.Contains(body, want) {
				t.Errorf("%s %s lacks %q:\n%s", name, what, want, body)
			}
			if strings.Contains(body, "is due on 7 February") || strings.Contains(body, "was due on 7 February") {
				t.Errorf("%s %s gives the task's deadline as the request's due date:\n%s", name, what, body)
			}
		}
		if !strings.Contains(m.Subject, "7 February 2027") || !strings.Contains(strings.ToLower(m.Subject), "task") {
			t.Errorf("%s subject %q: want the task and its deadline", name, m.Subject)
		}

		// A task of no request (an account's erasure): only its deadline.
		d.DueDate = time.Time{}
		if m, err = r.Render(name, d); err != nil {
			t.Fatal(err)
		}
		if body := flat(m.Text); !strings.Contains(body, "This task's deadline is 7 February 2027") || strings.Contains(body, "request is due") {
			t.Errorf("%s without a request due date:\n%s", name, body)
		}

		// Without a task, the request's own reminder as before.
		d = data(name, "gdpr")
		d.DueDate = due
		if m, err = r.Render(name, d); err != nil {
			t.Fatal(err)
		}
		if body := flat(m.Text); strings.Contains(body, "task") || !strings.Contains(body, "due on 28 February 2027") {
			t.Errorf("%s without a task:\n%s", name, body)
		}
	}
}

// A request the company's backend vouched for needs no code: its receipt
// does not promise one; any other receipt does.
func TestReceiptOfAVerifiedRequestPromisesNoCode(t *testing.T) {
	r := newRenderer(t, "")
	for _, verified := range []bool{true, false} {
		d := data(Receipt, "gdpr")
		d.Verified = verified
		m, err := r.Render(Receipt, d)
		if err != nil {
			t.Fatal(err)
		}
		for what, body := range map[string]string{"text": flat(m.Text), "HTML": plain(m.HTML)} {
			if got := strings.Contains(strings.ToLower(body), "code"); got == verified {
				t.Errorf("verified %v: %s mentions a code: %v\n%s", verified, what, got, body)
			}
			if !strings.Contains(body, "We will respond by 3 January 2027.") {
				t.Errorf("verified %v: %s lacks the due date:\n%s", verified, what, body)
			}
		}
	}
}
