package mail

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Outbox is a Sender for development: instead of sending, it writes each
// message as a readable text file into a directory. File names start with the
// UTC time of writing, so they sort oldest first; ListOutbox and ReadOutbox
// read them back (the "starter outbox" command).
//
// A message whose IdempotencyKey was written before is not written again,
// also across processes sharing the directory. Files and the directory are
// private to the user (they hold personal data).
//
// A file looks like:
//
//	To: Ada Lovelace <ada@example.com>
//	Subject: Your code
//	Template: verification_code
//	Request: req-42
//	Idempotency-Key: verify/req-42
//	Date: 2025-01-02T03:04:05.123456789Z
//	Text-Length: 17
//
//	Your code is 4821
//
// followed, when the message has HTML, by a line "--- HTML ---" and the HTML,
// and one final newline.
type Outbox struct {
	dir string
	now func() time.Time

	mu   sync.Mutex
	last time.Time // keeps names strictly increasing within this process
}

var (
	_ Sender     = (*Outbox)(nil)
	_ BulkSender = (*Outbox)(nil)
)

const (
	outboxExt    = ".txt"
	outboxKeyDir = ".keys"
	// outboxTimeLayout is fixed-width so names sort by time.
	outboxTimeLayout = "20060102T150405.000000000Z"
	htmlSeparator    = "\n--- HTML ---\n"
)

// NewOutbox returns an Outbox writing into dir, creating it if needed.
func NewOutbox(dir string) (*Outbox, error) {
	if dir == "" {
		return nil, errors.New("mail: outbox: no directory")
	}
	if err := os.MkdirAll(filepath.Join(dir, outboxKeyDir), 0o700); err != nil {
		return nil, fmt.Errorf("mail: outbox: %w", err)
	}
	return &Outbox{dir: dir, now: time.Now}, nil
}

// Dir is the directory the outbox writes into.
func (o *Outbox) Dir() string { return o.dir }

// Send writes m to a new file, unless a message with the same
// IdempotencyKey was written before.
func (o *Outbox) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mail: outbox: %w", err)
	}
	if err := m.Validate(); err != nil {
		return err
	}
	_, err := o.write(m)
	return err
}

// SendBulk writes one file per recipient with their substitutions applied.
// With an IdempotencyKey, each recipient's copy is idempotent on its own, so
// repeating a partly written bulk writes only the missing copies.
func (o *Outbox) SendBulk(ctx context.Context, b Bulk) (BulkResult, error) {
	if err := b.Validate(); err != nil {
		return BulkResult{}, err
	}
	for _, r := range b.Recipients {
		if err := ctx.Err(); err != nil {
			return BulkResult{}, fmt.Errorf("mail: outbox: %w", err)
		}
		sub := substitute(r.substitutions())
		m := Message{
			To: r.Email, ToName: r.Name,
			Subject: sub(b.Subject), Text: sub(b.Text), HTML: sub(b.HTML),
			Template: b.Template, RequestID: b.RequestID,
		}
		if b.IdempotencyKey != "" {
			m.IdempotencyKey = b.IdempotencyKey + "/" + strings.ToLower(strings.TrimSpace(r.Email))
		}
		if _, err := o.write(m); err != nil {
			return BulkResult{}, err
		}
	}
	return BulkResult{Accepted: len(b.Recipients)}, nil
}

// write stores m and returns its path ("" when the key was written before).
func (o *Outbox) write(m Message) (string, error) {
	suffix := randomHex(8)
	if m.IdempotencyKey != "" {
		sum := sha256.Sum256([]byte(m.IdempotencyKey))
		suffix = hex.EncodeToString(sum[:8])
		// Claim the key atomically; the claim outlives the message file, so
		// deleting messages does not make them send again.
		claim := filepath.Join(o.dir, outboxKeyDir, suffix)
		f, err := os.OpenFile(claim, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("mail: outbox: claim key: %w", err)
		}
		f.Close()
		path, err := o.writeFile(m, suffix)
		if err != nil {
			os.Remove(claim) // let a retry write it
			return "", err
		}
		return path, nil
	}
	return o.writeFile(m, suffix)
}

func (o *Outbox) writeFile(m Message, suffix string) (string, error) {
	at := o.stamp()
	name := at.Format(outboxTimeLayout) + "-" + suffix + outboxExt
	path := filepath.Join(o.dir, name)

	var b strings.Builder
	to := oneLine(m.To)
	if m.ToName != "" {
		to = oneLine(m.ToName) + " <" + to + ">"
	}
	header := func(k, v string) {
		if v != "" {
			b.WriteString(k + ": " + oneLine(v) + "\n")
		}
	}
	header("To", to)
	header("Subject", m.Subject)
	header("Template", m.Template)
	header("Request", m.RequestID)
	header("Idempotency-Key", m.IdempotencyKey)
	header("Date", at.Format(time.RFC3339Nano))
	header("Text-Length", strconv.Itoa(len(m.Text)))
	b.WriteString("\n")
	b.WriteString(m.Text)
	if m.HTML != "" {
		b.WriteString(htmlSeparator)
		b.WriteString(m.HTML)
	}
	b.WriteString("\n") // ends the file; ReadOutbox removes it

	// Write a hidden temporary file and rename it, so readers never see a
	// half-written message.
	tmp, err := os.CreateTemp(o.dir, ".tmp-*")
	if err != nil {
		return "", fmt.Errorf("mail: outbox: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.WriteString(b.String()); err != nil {
		tmp.Close()
		return "", fmt.Errorf("mail: outbox: write: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("mail: outbox: write: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("mail: outbox: %w", err)
	}
	return path, nil
}

// stamp returns the current UTC time, strictly after the previous stamp.
func (o *Outbox) stamp() time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	t := o.now().UTC().Round(0)
	if !t.After(o.last) {
		t = o.last.Add(time.Nanosecond)
	}
	o.last = t
	return t
}

// OutboxEntry is one message file in an outbox directory.
type OutboxEntry struct {
	// Path is the file's path, for ReadOutbox.
	Path string
	// Time is when it was written, from its name.
	Time time.Time
}

// ListOutbox lists the messages in dir, oldest first (newest last). A
// missing directory is an empty outbox.
func ListOutbox(dir string) ([]OutboxEntry, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mail: outbox: %w", err)
	}
	var out []OutboxEntry
	for _, de := range des {
		name := de.Name()
		if !de.Type().IsRegular() || !strings.HasSuffix(name, outboxExt) || strings.HasPrefix(name, ".") {
			continue
		}
		stamp, _, ok := strings.Cut(name, "-")
		if !ok {
			continue
		}
		t, err := time.Parse(outboxTimeLayout, stamp)
		if err != nil {
			continue
		}
		out = append(out, OutboxEntry{Path: filepath.Join(dir, name), Time: t})
	}
	// ReadDir sorts by name, which is by time; sort anyway to not depend on it.
	slices.SortStableFunc(out, func(a, b OutboxEntry) int { return a.Time.Compare(b.Time) })
	return out, nil
}

// OutboxMessage is a message read back from an outbox file.
type OutboxMessage struct {
	Message
	// Date is when the outbox wrote it.
	Date time.Time
}

// ReadOutbox parses a file written by Outbox.
func ReadOutbox(path string) (OutboxMessage, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return OutboxMessage{}, fmt.Errorf("mail: outbox: %w", err)
	}
	head, body, ok := strings.Cut(string(data), "\n\n")
	if !ok {
		return OutboxMessage{}, fmt.Errorf("mail: outbox: %s: no blank line after the headers", filepath.Base(path))
	}
	var om OutboxMessage
	textLen := -1
	sc := bufio.NewScanner(strings.NewReader(head))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			return OutboxMessage{}, fmt.Errorf("mail: outbox: %s: malformed header line", filepath.Base(path))
		}
		switch k {
		case "To":
			if name, addr, ok := strings.Cut(v, " <"); ok && strings.HasSuffix(addr, ">") {
				om.ToName, om.To = name, strings.TrimSuffix(addr, ">")
			} else {
				om.To = v
			}
		case "Subject":
			om.Subject = v
		case "Template":
			om.Template = v
		case "Request":
			om.RequestID = v
		case "Idempotency-Key":
			om.IdempotencyKey = v
		case "Date":
			if om.Date, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return OutboxMessage{}, fmt.Errorf("mail: outbox: %s: bad Date header", filepath.Base(path))
			}
		case "Text-Length":
			if textLen, err = strconv.Atoi(v); err != nil || textLen < 0 {
				return OutboxMessage{}, fmt.Errorf("mail: outbox: %s: bad Text-Length header", filepath.Base(path))
			}
		}
	}
	body, ok = strings.CutSuffix(body, "\n")
	if !ok || textLen < 0 || textLen > len(body) {
		return OutboxMessage{}, fmt.Errorf("mail: outbox: %s: bad Text-Length header", filepath.Base(path))
	}
	om.Text = body[:textLen]
	if rest := body[textLen:]; rest != "" {
		if om.HTML, ok = strings.CutPrefix(rest, htmlSeparator); !ok {
			return OutboxMessage{}, fmt.Errorf("mail: outbox: %s: unexpected text after the body", filepath.Base(path))
		}
	}
	return om, nil
}

// oneLine keeps header values on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// substitute replaces each tag with its value, longest tags first, as
// SendGrid applies substitutions.
func substitute(subs map[string]string) func(string) string {
	tags := make([]string, 0, len(subs))
	for k := range subs {
		if k != "" {
			tags = append(tags, k)
		}
	}
	if len(tags) == 0 {
		return func(s string) string { return s }
	}
	slices.SortFunc(tags, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	pairs := make([]string, 0, 2*len(tags))
	for _, k := range tags {
		pairs = append(pairs, k, subs[k])
	}
	return strings.NewReplacer(pairs...).Replace
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
