package mail

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func newOutbox(t *testing.T) *Outbox {
	t.Helper()
	o, err := NewOutbox(filepath.Join(t.TempDir(), "outbox"))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func readAll(t *testing.T, dir string) []OutboxMessage {
	t.Helper()
	entries, err := ListOutbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]OutboxMessage, len(entries))
	for i, e := range entries {
		if out[i], err = ReadOutbox(e.Path); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestOutboxRoundTrip(t *testing.T) {
	o := newOutbox(t)
	at := time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.UTC)
	o.now = func() time.Time { return at }
	m := adaMessage()
	m.Text = "Line one\n\nLine three\n--- HTML ---\nstill text\n"
	m.HTML = "<p>Hi</p>\n"
	if err := o.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	entries, err := ListOutbox(o.Dir())
	if err != nil || len(entries) != 1 {
		t.Fatalf("entries %v, %v", entries, err)
	}
	if !entries[0].Time.Equal(at) || !strings.HasPrefix(filepath.Base(entries[0].Path), "20250102T030405.123456789Z-") {
		t.Errorf("entry %+v", entries[0])
	}
	raw, err := os.ReadFile(entries[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"To: Ada Lovelace <" + adaEmail + ">\n", "Subject: Your code\n", "Template: verification_code\n",
		"Request: req-1\n", "Date: 2025-01-02T03:04:05.123456789Z\n",
	} {
		if !strings.Contains(string(raw), line) {
			t.Errorf("file lacks %q:\n%s", line, raw)
		}
	}
	got, err := ReadOutbox(entries[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	want := OutboxMessage{Message: m, Date: at}
	if got != want {
		t.Errorf("read back\n%+v\nwant\n%+v", got, want)
	}
	info, err := os.Stat(entries[0].Path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600 (it holds personal data)", info.Mode())
	}
}

func TestOutboxTextOnlyAndNoName(t *testing.T) {
	o := newOutbox(t)
	m := Message{To: "bob@example.com", Subject: "Hi\r\nBcc: evil@example.com", Text: "no newline at end"}
	if err := o.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, o.Dir())
	if len(got) != 1 {
		t.Fatalf("%d messages", len(got))
	}
	if got[0].To != "bob@example.com" || got[0].ToName != "" || got[0].Text != m.Text || got[0].HTML != "" {
		t.Errorf("got %+v", got[0])
	}
	if got[0].Subject != "Hi Bcc: evil@example.com" {
		t.Errorf("subject %q: header values must stay on one line", got[0].Subject)
	}
}

func TestOutboxOrderNewestLast(t *testing.T) {
	o := newOutbox(t)
	base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	// Out-of-order and equal clock readings still give ordered, distinct files.
	clock := []time.Time{base.Add(time.Second), base, base, base.Add(time.Hour)}
	i := 0
	o.now = func() time.Time { t := clock[i]; i++; return t }
	for n := range clock {
		m := Message{To: "a@example.com", Subject: fmt.Sprintf("msg %d", n), Text: "x"}
		if err := o.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	got := readAll(t, o.Dir())
	if len(got) != len(clock) {
		t.Fatalf("%d messages, want %d", len(got), len(clock))
	}
	for n, m := range got {
		if m.Subject != fmt.Sprintf("msg %d", n) {
			t.Errorf("position %d holds %q", n, m.Subject)
		}
		if n > 0 && !m.Date.After(got[n-1].Date) {
			t.Errorf("dates not increasing at %d", n)
		}
	}
}

func TestOutboxIdempotent(t *testing.T) {
	o := newOutbox(t)
	m := adaMessage()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if err := o.Send(context.Background(), m); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// Another Outbox on the same directory (another process) agrees.
	o2, err := NewOutbox(o.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if err := o2.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, o.Dir()); len(got) != 1 {
		t.Fatalf("same key written %d times", len(got))
	}
	other := m
	other.IdempotencyKey = "verify/req-2"
	if err := o.Send(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	noKey := m
	noKey.IdempotencyKey = ""
	for range 2 {
		if err := o.Send(context.Background(), noKey); err != nil {
			t.Fatal(err)
		}
	}
	if got := readAll(t, o.Dir()); len(got) != 4 {
		t.Fatalf("%d files, want 4 (two keys, two unkeyed)", len(got))
	}
}

func TestOutboxRejects(t *testing.T) {
	o := newOutbox(t)
	if err := o.Send(context.Background(), Message{To: "a@example.com"}); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("invalid message: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := o.Send(ctx, adaMessage()); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	if got := readAll(t, o.Dir()); len(got) != 0 {
		t.Errorf("%d files written", len(got))
	}
	if _, err := NewOutbox(""); err == nil {
		t.Error("empty directory accepted")
	}
}

func TestOutboxBulk(t *testing.T) {
	o := newOutbox(t)
	b := bulkOf(3)
	res, err := o.SendBulk(context.Background(), b)
	if err != nil || res.Accepted != 3 {
		t.Fatalf("%+v, %v", res, err)
	}
	// Repeating the same bulk writes nothing new.
	if _, err := o.SendBulk(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, o.Dir())
	if len(got) != 3 {
		t.Fatalf("%d files, want 3", len(got))
	}
	if got[1].To != "person1@example.com" || got[1].Subject != "About your account, Person 1" ||
		got[1].Text != "Dear Person 1, your reference is R0001." || got[1].HTML != "<p>Dear Person 1</p>" {
		t.Errorf("got %+v", got[1])
	}
	if _, err := o.SendBulk(context.Background(), bulkOf(MaxBulkRecipients+1)); !errors.Is(err, ErrTooManyRecipients) {
		t.Errorf("1001 recipients: %v", err)
	}
}

func TestListOutboxSkipsOtherFilesAndMissingDir(t *testing.T) {
	o := newOutbox(t)
	if err := o.Send(context.Background(), adaMessage()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"README.txt", "notes.md", ".tmp-123"} {
		if err := os.WriteFile(filepath.Join(o.Dir(), name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if entries, err := ListOutbox(o.Dir()); err != nil || len(entries) != 1 {
		t.Errorf("entries %v, %v; want only the message", entries, err)
	}
	if entries, err := ListOutbox(filepath.Join(t.TempDir(), "missing")); err != nil || len(entries) != 0 {
		t.Errorf("missing dir: %v, %v", entries, err)
	}
}

func TestReadOutboxMalformed(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"noblank":   "To: a@example.com\n",
		"badheader": "To a@example.com\n\nbody\n",
		"nolength":  "To: a@example.com\n\nbody\n",
		"toolong":   "To: a@example.com\nText-Length: 99\n\nbody\n",
		"trailing":  "To: a@example.com\nText-Length: 2\n\nbody\n",
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadOutbox(path); err == nil {
			t.Errorf("%s: parsed", name)
		} else if strings.Contains(err.Error(), "@") {
			t.Errorf("%s: error %q quotes the file's content", name, err)
		}
	}
}
