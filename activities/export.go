package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/lethe-privacy/lethe/internal/appdb"
	"github.com/lethe-privacy/lethe/internal/export"
	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// Exports builds access and portability bundles (P3) and delivers them.
type Exports struct {
	Lifecycle  *Lifecycle
	Objects    *s3.Client
	Bucket     string // the export bucket
	Processors *processors.Registry
	HTTP       *http.Client // for pushing a bundle to a third party
}

func bundlePrefix(requestID string) string { return "exports/" + requestID + "/" }

// BundleKey is where a request's bundle is kept.
func BundleKey(requestID string) string { return bundlePrefix(requestID) + "bundle.zip" }

// ExportSources names the processors that can export the person's data.
func (x *Exports) ExportSources(ctx context.Context) ([]string, error) {
	var names []string
	if x.Processors == nil {
		return names, nil
	}
	for _, name := range x.Processors.Names() {
		if _, ok := x.Processors.Exporter(name); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// PresignLink gives a download link to a bundle, valid until ExpiresAt.
func (x *Exports) PresignLink(ctx context.Context, in contract.LinkInput) (contract.LinkResult, error) {
	valid := time.Until(in.ExpiresAt)
	if valid <= 0 {
		return contract.LinkResult{}, temporal.NewNonRetryableApplicationError("the bundle has expired", "Expired", nil)
	}
	req, err := s3.NewPresignClient(x.Objects).PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(x.Bucket), Key: aws.String(in.Key)},
		s3.WithPresignExpires(valid))
	if err != nil {
		return contract.LinkResult{}, fmt.Errorf("presign: %w", err)
	}
	return contract.LinkResult{URL: req.URL, ExpiresAt: in.ExpiresAt}, nil
}

// DeleteBundle deletes a request's bundle and everything fetched for it.
func (x *Exports) DeleteBundle(ctx context.Context, in contract.ExpiryInput) (int, error) {
	res, err := objectstore.DeletePrefix(ctx, x.Objects, x.Bucket, bundlePrefix(in.RequestID), objectstore.Marker{}, nil)
	if err != nil {
		return 0, err
	}
	_ = x.audit(ctx, in.RequestID, "export.deleted", res.Deleted)
	return res.Deleted, nil
}

// PushBundle sends a bundle to the third party the person named (GDPR Art.
// 20(2)): HTTPS only (plain HTTP only to a loopback address, for tests).
func (x *Exports) PushBundle(ctx context.Context, in contract.PushInput) error {
	u, err := url.Parse(in.URL)
	if err != nil || u.Host == "" {
		return temporal.NewNonRetryableApplicationError("the recipient's address is not a URL", "BadInput", nil)
	}
	if u.Scheme != "https" {
		ip := net.ParseIP(u.Hostname())
		if u.Scheme != "http" || ip == nil || !ip.IsLoopback() {
			return temporal.NewNonRetryableApplicationError("the recipient's address must be https", "BadInput", nil)
		}
	}
	obj, err := x.Objects.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(x.Bucket), Key: aws.String(in.Key)})
	if err != nil {
		return fmt.Errorf("read the bundle: %w", err)
	}
	defer obj.Body.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), obj.Body)
	if err != nil {
		return temporal.NewNonRetryableApplicationError("the recipient's address is not usable", "BadInput", nil)
	}
	req.ContentLength = aws.ToInt64(obj.ContentLength)
	req.Header.Set("Content-Type", "application/zip")
	client := x.HTTP
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Minute}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("send the bundle: %w", redactURL(err))
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return fmt.Errorf("the recipient answered %d", resp.StatusCode)
	case resp.StatusCode >= 300:
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("the recipient refused the bundle (%d)", resp.StatusCode), "Refused", nil)
	}
	return x.audit(ctx, in.RequestID, "export.pushed", 1)
}

func (x *Exports) audit(ctx context.Context, requestID, action string, n int) error {
	return x.Lifecycle.AppendAudit(ctx, contract.AuditInput{Actor: "system", Action: action,
		Detail: map[string]string{"request": requestID, "count": fmt.Sprint(n)}, Key: requestID + ":" + action})
}

// redactURL keeps the recipient's address out of the error (it can name the person).
func redactURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

func processorPartKey(requestID, name string) string {
	return bundlePrefix(requestID) + "processors/" + name + ".jsonl"
}

// FetchProcessorExport asks one processor for what it holds about the person
// and keeps it, record by record, in the export bucket until the bundle is built.
func (x *Exports) FetchProcessorExport(ctx context.Context, in contract.ProcessorExportInput) error {
	id, err := x.Lifecycle.openIdentity(ctx, in.SubjectRef, in.Identity)
	if err != nil {
		return err
	}
	userID, err := resolveUserID(ctx, x.Lifecycle.App, x.Lifecycle.Map, id)
	if err != nil {
		return err
	}
	var conn processors.Exporter
	ok := false
	if x.Processors != nil {
		conn, ok = x.Processors.Exporter(in.Processor)
	}
	if !ok {
		return temporal.NewNonRetryableApplicationError("processor "+in.Processor+" cannot export", contract.RefusedNeedsOperator, nil)
	}
	w, err := export.NewS3Writer(ctx, x.Objects, x.Bucket, processorPartKey(in.RequestID, in.Processor))
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	_, err = conn.Export(ctx, processors.Subject{RequestID: in.RequestID, Email: id.Email, UserID: userID},
		processors.ExportFunc(func(ctx context.Context, r processors.Record) error {
			activity.RecordHeartbeat(ctx)
			return enc.Encode(r)
		}))
	if err != nil {
		_ = w.Abort()
		return classifyProcessor(err)
	}
	return w.Close()
}

// BuildBundle streams every system of the data map, and the processors'
// parts fetched before, into one ZIP in the export bucket.
func (x *Exports) BuildBundle(ctx context.Context, in contract.BundleInput) (contract.ExportResult, error) {
	id, err := x.Lifecycle.openIdentity(ctx, in.SubjectRef, in.Identity)
	if err != nil {
		return contract.ExportResult{}, err
	}
	userID, err := resolveUserID(ctx, x.Lifecycle.App, x.Lifecycle.Map, id)
	if err != nil {
		return contract.ExportResult{}, err
	}
	if userID == "" {
		return contract.ExportResult{}, temporal.NewNonRetryableApplicationError("the application does not know this person", "UnknownSubject", nil)
	}
	parts := map[string]func(processors.ExportWriter) error{}
	for _, name := range in.Processors {
		name := name
		parts[name] = func(w processors.ExportWriter) error {
			obj, err := x.Objects.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(x.Bucket), Key: aws.String(processorPartKey(in.RequestID, name))})
			if err != nil {
				return err
			}
			defer obj.Body.Close()
			dec := json.NewDecoder(obj.Body)
			for dec.More() {
				var r processors.Record
				if err := dec.Decode(&r); err != nil {
					return err
				}
				if err := w.WriteRecord(ctx, r); err != nil {
					return err
				}
			}
			return nil
		}
	}
	stop := heartbeatEvery(ctx, 10*time.Second)
	defer stop()
	idents, err := appdb.Identifiers(ctx, x.Lifecycle.App, x.Lifecycle.Map, userID)
	if err != nil {
		return contract.ExportResult{}, classifyDB(err)
	}
	withEmail(idents, x.Lifecycle.Map, id.Email)
	m, err := export.ExportSubject(ctx, export.Options{DB: x.Lifecycle.App, S3: x.Objects, Map: x.Lifecycle.Map, UserID: userID, Identifiers: idents,
		Bucket: x.Bucket, Key: BundleKey(in.RequestID), Portability: in.Portability, Processors: parts, Gaps: in.Gaps, Title: x.Lifecycle.CompanyName + ": your personal data"})
	if err != nil {
		return contract.ExportResult{}, err
	}
	res := contract.ExportResult{Key: BundleKey(in.RequestID), Bytes: m.Counts.FileBytes}
	for _, s := range m.Sources {
		res.Sources = append(res.Sources, s.Name)
	}
	for _, g := range m.Gaps {
		res.Gaps = append(res.Gaps, g.Source+": "+g.Reason)
	}
	slices.Sort(res.Gaps)
	return res, nil
}

// heartbeatEvery heartbeats until stop is called: long work stays visibly alive.
func heartbeatEvery(ctx context.Context, every time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done) }
}
