package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/testenv"
	"github.com/lethe-privacy/lethe/internal/testenv/shopapp"
)

// shopWorld is Lethe put on the bookshop, an application nobody wrote for
// it, with the map yaml its team wrote.
type shopWorld struct {
	*e2e
	person, other shopapp.Customer
}

func newShopWorld(t *testing.T, yaml []byte) *shopWorld {
	return newShopWorldWith(t, yaml, nil)
}

// newShopWorldWith lets a test change the shop's database before Lethe starts on it.
func newShopWorldWith(t *testing.T, yaml []byte, change func(*testenv.Stack, []shopapp.Customer)) *shopWorld {
	t.Helper()
	st := testenv.New(t)
	cs, err := shopapp.Seed(context.Background(), st.App, st.S3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(st, cs)
	}
	m, err := datamap.Parse(yaml)
	if err != nil {
		t.Fatal(err)
	}
	return &shopWorld{e2e: startE2E(t, st, m, nil), person: cs[0], other: cs[1]}
}

func (w *shopWorld) erase(t *testing.T) string {
	t.Helper()
	code, body := w.call(t, "POST", "/v1/requests", w.Backend,
		fmt.Sprintf(`{"type":"erasure","subject":{"user_id":%q,"email":%q},"jurisdiction":"gdpr","verified":true}`, w.person.UserID(), w.person.Email))
	if code != http.StatusAccepted {
		t.Fatalf("submit: %d %v", code, body)
	}
	return body["id"].(string)
}

// versions counts every version and delete marker under prefix.
func (w *shopWorld) versions(t *testing.T, prefix string) int {
	t.Helper()
	out, err := w.S3.ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: aws.String(shopapp.Bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Versions) + len(out.DeleteMarkers)
}

func TestErasureOnASecondApplicationLeavesOnlyTheHold(t *testing.T) {
	w := newShopWorld(t, shopapp.DataMapYAML())
	prefix := func(c shopapp.Customer) string { return fmt.Sprintf("avatars/%d/", c.ID) }
	if n := w.versions(t, prefix(w.person)); n != 4 {
		t.Fatalf("seed: %d versions and markers of the person's avatars, want 4", n)
	}
	id := w.erase(t)
	w.waitStatus(t, id, "completed")

	p, o := w.person.ID, w.other.ID
	for _, c := range []struct {
		what       string
		sql        string
		arg        any
		want, peer int
	}{
		{"addresses", `SELECT count(*) FROM shop.addresses WHERE customer_id = $1`, nil, 0, 1},
		{"sign-ins", `SELECT count(*) FROM shop.login_events WHERE customer_id = $1`, nil, 0, 2},
		{"wishlists", `SELECT count(*) FROM shop.wishlists WHERE customer_id = $1`, nil, 0, 1},
		{"wishlist items", `SELECT count(*) FROM shop.wishlist_items i JOIN shop.wishlists l ON l.id = i.wishlist_id WHERE l.customer_id = $1`, nil, 0, 1},
		{"reviews pointing at them", `SELECT count(*) FROM shop.book_reviews WHERE customer_id = $1`, nil, 0, 1},
		{"orders (the recent one is held for tax, the old one's hold had ended)", `SELECT count(*) FROM shop.orders WHERE customer_id = $1`, nil, 1, 2},
		{"order lines of the held order", `SELECT count(*) FROM shop.order_lines l JOIN shop.orders o USING (order_no) WHERE o.customer_id = $1`, nil, 1, 2},
	} {
		if got := w.count(t, c.sql, p); got != c.want {
			t.Errorf("%s of the person: %d, want %d", c.what, got, c.want)
		}
		if got := w.count(t, c.sql, o); got != c.peer {
			t.Errorf("%s of the other customer: %d, want %d", c.what, got, c.peer)
		}
	}
	// The email-keyed table, whatever the case the address was typed in.
	if n := w.count(t, `SELECT count(*) FROM shop.newsletter_signups WHERE lower(address) = lower($1)`, w.person.Email); n != 0 {
		t.Errorf("the newsletter still holds the person's address")
	}
	if n := w.count(t, `SELECT count(*) FROM shop.newsletter_signups WHERE address = $1`, w.other.Signup); n != 1 {
		t.Errorf("the other customer's sign-up is gone")
	}
	// The customer row stays for the held orders; nothing in it names the person.
	if n := w.count(t, `SELECT count(*) FROM shop.customers WHERE id = $1 AND (email = $2 OR full_name = $3 OR phone IS NOT NULL OR helpdesk_ref IS NOT NULL)`, p, w.person.Email, w.person.Name); n != 0 {
		t.Errorf("the customer row still names the person")
	}
	// Found independently of the map: the person's email and name nowhere in the schema.
	if n := w.count(t, `SELECT count(*) FROM (
		SELECT email AS v FROM shop.customers UNION ALL SELECT address FROM shop.newsletter_signups
		UNION ALL SELECT note FROM shop.wishlist_items UNION ALL SELECT reviewer_name FROM shop.book_reviews) x
		WHERE lower(v) LIKE '%' || lower($1) || '%' OR v = $2`, w.person.Email, w.person.Name); n != 0 {
		t.Errorf("%d values still hold the person's email or name", n)
	}
	// The versioned bucket: every version and delete marker of the person went.
	if n := w.versions(t, prefix(w.person)); n != 0 {
		t.Errorf("%d versions or delete markers of the person's avatars remain", n)
	}
	if n := w.versions(t, prefix(w.other)); n != 4 {
		t.Errorf("the other customer's avatars: %d versions and markers, want 4", n)
	}
	// The receipt tells the operator what was kept and why.
	_, req := w.call(t, "GET", "/v1/requests/"+id, w.Operator, "")
	outcome := fmt.Sprint(req["outcome"])
	for _, want := range []string{"shop.newsletter_signups", "shop.orders", "tax law keeps order records", shopapp.Bucket} {
		if !strings.Contains(outcome, want) {
			t.Errorf("the operator's receipt lacks %q: %s", want, outcome)
		}
	}
}

func TestAMisKeyedMapEndsTheErasureFailedNamingTheTable(t *testing.T) {
	// The mistake the checks can see (a column named like an email address,
	// keyed as if it held the user id) stops the worker before any erasure.
	st := testenv.New(t)
	if _, err := shopapp.Seed(context.Background(), st.App, nil, 1); err != nil {
		t.Fatal(err)
	}
	m, err := datamap.Parse(shopapp.MisKeyedDataMapYAML())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(context.Background(), st.App); err == nil || !strings.Contains(err.Error(), "shop.newsletter_signups") || !strings.Contains(err.Error(), "by: email") {
		t.Fatalf("the mis-keyed newsletter passed validation: %v", err)
	}

	// The one they cannot: a waitlist whose neutral "contact" column holds
	// email addresses, mapped as if it held the user id. Validation has no
	// way to tell; the erasure's proof must.
	yaml := strings.Replace(string(shopapp.DataMapYAML()), "tables:\n", "tables:\n  - {name: shop.waitlist, key: contact, action: delete}\n", 1)
	if !strings.Contains(yaml, "shop.waitlist") {
		t.Fatal("the shop's map has no tables: line to add the waitlist to")
	}
	w := newShopWorldWith(t, []byte(yaml), func(st *testenv.Stack, cs []shopapp.Customer) {
		ctx := context.Background()
		if _, err := st.App.Exec(ctx, `CREATE TABLE shop.waitlist (contact text NOT NULL, isbn text NOT NULL, PRIMARY KEY (contact, isbn))`); err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if _, err := st.App.Exec(ctx, `INSERT INTO shop.waitlist (contact, isbn) VALUES ($1, '9780141439518')`, c.Email); err != nil {
				t.Fatal(err)
			}
		}
	})
	id := w.erase(t)
	var status string
	testenv.Eventually(t, 60*time.Second, "the erasure to end", func() bool {
		_, req := w.call(t, "GET", "/v1/requests/"+id, w.Operator, "")
		status, _ = req["status"].(string)
		return status == domain.StatusNeedsAttention || status == "failed" || status == "completed"
	})
	if status != domain.StatusNeedsAttention {
		t.Fatalf("a mis-keyed table ended %q: the person would be told their email is gone while the waitlist holds it", status)
	}
	// The privacy team is told at once, with what failed and no personal data.
	testenv.Eventually(t, 10*time.Second, "the privacy team's task", func() bool {
		for _, m := range w.SendGrid.To(w.Config.PrivacyTeamEmail) {
			if strings.Contains(m.Subject, "needs a person") && strings.Contains(m.Text, id) && strings.Contains(m.Text, "ErasureIncomplete") {
				if strings.Contains(strings.ToLower(m.Text), strings.ToLower(w.person.Email)) {
					t.Error("the team's task carries the person's email")
				}
				return true
			}
		}
		return false
	})
	// The request ran the erasure itself (lean-request): the failure
	// is what the request says needs attention.
	keepHistory(t, w.Stack, id, "request-needs-attention-proof-failed-in-request")
	_, req := w.call(t, "GET", "/v1/requests/"+id, w.Operator, "")
	attention, _ := req["attention"].(map[string]any)
	msg, _ := attention["failed"].(string)
	if !strings.Contains(msg, "shop.waitlist") || !strings.Contains(msg, "contact") || !strings.Contains(msg, "email address") {
		t.Errorf("the failure does not name the table and column: %s", msg)
	}
	if strings.Contains(strings.ToLower(msg), strings.ToLower(w.person.Email)) {
		t.Error("the failure carries the person's email")
	}
	// The address is still there: the failure is the truth.
	if n := w.count(t, `SELECT count(*) FROM shop.waitlist WHERE contact = $1`, w.person.Email); n != 1 {
		t.Errorf("waitlist rows of the person: %d, want the one the map missed", n)
	}
	// Everything else went: the proof failed the erasure, not the erasure itself.
	if n := w.count(t, `SELECT count(*) FROM shop.newsletter_signups WHERE lower(address) = lower($1)`, w.person.Email); n != 0 {
		t.Errorf("the newsletter still holds the person's address")
	}
	// No completion mail told the person otherwise.
	testenv.Eventually(t, 10*time.Second, "the receipt mail", func() bool { return len(w.SendGrid.To(w.person.Email)) > 0 })
	for _, m := range w.SendGrid.To(w.person.Email) {
		if s := strings.ToLower(m.Subject); strings.Contains(s, "erased") || strings.Contains(s, "complete") {
			t.Errorf("the person was mailed %q after a failed erasure", m.Subject)
		}
	}
}
