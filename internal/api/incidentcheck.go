package api

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"regexp"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// The checks of this file are the incident routes' and the `starter
// incident` commands': one rule, written once, refused with the same words
// whether it came as JSON or as flags.

var (
	incidentIDRe = regexp.MustCompile(`^(inc|pn)_[a-z2-7]{16}$`)
	objectKeyRe  = regexp.MustCompile(`^[A-Za-z0-9!_.*'()/-]{1,512}$`)
)

// InputError is input the incident routes refuse (422, or 400 for an id)
// and the CLI refuses with the same Reason, which says what to fix and
// repeats nothing of the input but names of the data map.
type InputError struct {
	// Fields are the JSON fields to fix ("aware_at", "selector", …), so
	// that the CLI can name its flags for them.
	Fields []string
	Reason string
}

func (e *InputError) Error() string { return e.Reason }

func refuse(reason string, fields ...string) *InputError {
	return &InputError{Fields: fields, Reason: reason}
}

func newID(prefix string) string {
	b := make([]byte, 10)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return prefix + "_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// CheckIncidentID refuses what cannot be an incident's (inc_…) or a policy
// notice's (pn_…) id, as the routes take it in their path.
func CheckIncidentID(id string) error {
	if !incidentIDRe.MatchString(id) {
		return refuse("id: not an incident or notice id", "id")
	}
	return nil
}

// Affected checks a source of affected people: a selector of the data map m
// (nil: there is none) with exactly its parameters, or the key of an object
// of user ids in the export bucket. A refusal is an *InputError.
func Affected(m *datamap.Map, b AffectedBody) (contract.AffectedSource, error) {
	switch {
	case (b.Selector == "") == (b.ObjectKey == ""):
		return contract.AffectedSource{}, refuse("give affected.selector (with params) or affected.object_key", "selector", "object_key")
	case b.ObjectKey != "":
		if !objectKeyRe.MatchString(b.ObjectKey) || strings.Contains(b.ObjectKey, "..") {
			return contract.AffectedSource{}, refuse("object_key: not a valid object key", "object_key")
		}
		return contract.AffectedSource{ObjectKey: b.ObjectKey}, nil
	}
	if m == nil {
		return contract.AffectedSource{}, refuse("selector: no data map is loaded (LETHE_DATA_MAP)", "selector")
	}
	sel, ok := m.Selector(b.Selector)
	if !ok {
		return contract.AffectedSource{}, refuse("selector: not a selector of the data map", "selector")
	}
	params := make([]string, len(sel.Params))
	for i, name := range sel.Params {
		v, ok := b.Params[name]
		if !ok {
			return contract.AffectedSource{}, refuse(fmt.Sprintf("params: %s is required by selector %s", name, sel.Name), "params")
		}
		params[i] = v
	}
	if len(b.Params) != len(sel.Params) && len(sel.Params) == 0 {
		return contract.AffectedSource{}, refuse("params: selector "+sel.Name+" takes none", "params")
	}
	if len(b.Params) != len(sel.Params) {
		return contract.AffectedSource{}, refuse("params: only the selector's own parameters: "+strings.Join(sel.Params, ", "), "params")
	}
	return contract.AffectedSource{Selector: sel.Name, Params: params}, nil
}

// NewIncident checks a declaration and turns it into the BreachNotification
// workflow's input: a fresh id, the deadlines of p, the affected people
// checked against the data map m (nil: none), and by, who declares it (an
// audit actor: "operator:key_…", "cli"). now is the time of the declaration:
// the team cannot have become aware after it. A refusal is an *InputError.
func (p NoticePolicy) NewIncident(in IncidentBody, m *datamap.Map, by string, now time.Time) (contract.Incident, error) {
	notify := in.NotificationRequired == nil || *in.NotificationRequired
	if in.AwareAt.IsZero() || in.AwareAt.After(now.Add(time.Minute)) {
		return contract.Incident{}, refuse("aware_at: when the team became aware, not in the future", "aware_at")
	}
	var missing []string
	for _, f := range []struct {
		name  string
		empty bool
	}{{"what_happened", in.WhatHappened == ""}, {"data_categories", len(in.DataCategories) == 0}, {"measures", in.Measures == ""}, {"contact", in.Contact == ""}} {
		if f.empty {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return contract.Incident{}, refuse("what_happened, data_categories, measures and contact are required", missing...)
	}
	if !notify && in.NoNotificationReason == "" {
		return contract.Incident{}, refuse("no_notification_reason: every breach is recorded; say why people are not told", "no_notification_reason")
	}
	var src contract.AffectedSource
	if notify {
		var err error
		if src, err = Affected(m, in.Affected); err != nil {
			return contract.Incident{}, err
		}
	}
	return contract.Incident{
		ID: newID("inc"), AwareAt: in.AwareAt.UTC(), WhatHappened: in.WhatHappened, DataCategories: in.DataCategories,
		Consequences: in.Consequences, Measures: in.Measures, WhatYouCanDo: in.WhatYouCanDo, Contact: in.Contact, Records: in.Records,
		NotificationRequired: notify, NoNotificationReason: in.NoNotificationReason, PublicNotice: in.PublicNotice, Affected: src,
		NotifyWithin: p.NotifyWithin, ReportWithin: p.ReportWithin, EscalateAt: p.EscalateAt, KeepOpen: p.KeepOpen,
		DeclaredBy: by,
	}, nil
}

// Declared is a declared incident and its deadlines.
type Declared struct {
	ID       string
	NotifyBy time.Time // every affected person mailed
	ReportBy time.Time // the authority report
}

// StartIncident starts the BreachNotification workflow of inc (from
// NewIncident), with the search attributes the Temporal UI shows.
func StartIncident(ctx context.Context, c client.Client, taskQueue string, inc contract.Incident) (Declared, error) {
	d := Declared{ID: inc.ID, NotifyBy: inc.AwareAt.Add(inc.NotifyWithin), ReportBy: inc.AwareAt.Add(inc.ReportWithin)}
	_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: inc.ID, TaskQueue: taskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(contract.RequestTypeKey.ValueSet(domain.TypeBreach), contract.StatusKey.ValueSet(contract.IncidentNotifying),
			contract.DueAtKey.ValueSet(d.NotifyBy))}, contract.WorkflowBreach, inc)
	if err != nil {
		return Declared{}, fmt.Errorf("start incident %s: %w", inc.ID, err)
	}
	return d, nil
}
