package contract

import "time"

// WorkflowAwaitBackupRotation is the backup watch.
const WorkflowAwaitBackupRotation = "AwaitBackupRotation"

// DefaultBackupCheckEvery is how often the watch lists the backup locations.
const DefaultBackupCheckEvery = 24 * time.Hour

// BackupWatchWorkflowID names the backup watch of an erasure request.
func BackupWatchWorkflowID(requestID string) string { return requestID + "-backups" }

// BackupLocation is one place the application database's backups are
// written to, and how long it keeps each (the data map's backups section).
type BackupLocation struct {
	Name     string
	Bucket   string
	Prefix   string // "" is the whole bucket
	Rotation time.Duration
}

// BackupWatchInput starts (or continues) the wait for every backup taken
// before an erasure to rotate out. State is nil on a fresh run.
type BackupWatchInput struct {
	RequestID string
	ErasedAt  time.Time
	Locations []BackupLocation
	// Promise is how soon the privacy policy says backups forget a person;
	// 0: no promise to check the rotations against.
	Promise    time.Duration
	CheckEvery time.Duration // 0 means DefaultBackupCheckEvery
	State      *BackupWatchState
	// FirstCheckLater: the first check is one interval after the erasure,
	// not at once (false in watches started before issue 16).
	FirstCheckLater bool
}

// ReceiptEntry is what a receipt says of the backups in b for an erasure
// at erasedAt: they rotate out, and the ledger covers any restore.
func (b BackupLocation) ReceiptEntry(erasedAt time.Time) ReceiptEntry {
	return ReceiptEntry{System: SystemBackups, Name: b.Name, Action: "rotating out", Until: erasedAt.Add(b.Rotation),
		Basis: "backups cannot be edited: the erasure ledger re-applies this erasure after any restore"}
}

// BackupWatchState carries the watch across continue-as-new.
type BackupWatchState struct {
	Locations     []BackupStatus
	Checks        int
	PromiseMailed bool // the team was told a rotation outlasts the promise
	OverdueMailed bool // the team was told a rotation is overdue
	// In AfterErasure: when the next check is due, and when the watch
	// recorded the backups clear (zero until then).
	NextCheckAt time.Time `json:",omitzero"`
	ClearAt     time.Time `json:",omitzero"`
}

// BackupStatus is what the last check found in one backup location.
type BackupStatus struct {
	Name       string        `json:"name"`
	Rotation   time.Duration `json:"rotation"`
	ExpectedBy time.Time     `json:"expected_by"`         // erasure + rotation: when the last older backup should be gone
	Remaining  int           `json:"remaining"`           // backups from at or before the erasure, at the last check
	Oldest     time.Time     `json:"oldest,omitzero"`     // the oldest of them
	CheckedAt  time.Time     `json:"checked_at,omitzero"` // the last check
	ClearAt    time.Time     `json:"clear_at,omitzero"`   // the check that found none left
}

// Backup watch statuses.
const (
	BackupsWaiting = "waiting"
	BackupsOverdue = "overdue" // a location kept older backups past its rotation
	BackupsClear   = "clear"
)

// BackupWatchProgress is the watch's state (QueryProgress).
type BackupWatchProgress struct {
	RequestID string         `json:"request_id"`
	Status    string         `json:"status"`
	ErasedAt  time.Time      `json:"erased_at"`
	Promise   time.Duration  `json:"promise"`
	Locations []BackupStatus `json:"locations"`
	Checks    int            `json:"checks"`
	ClearAt   time.Time      `json:"clear_at,omitzero"`
}

// CountBackupsInput asks how many backups one location still holds from
// at or before a time.
type CountBackupsInput struct {
	Bucket string
	Prefix string
	Before time.Time // objects last modified at or before it count
}

// CountBackupsResult is the count and the oldest of those backups.
type CountBackupsResult struct {
	Count  int
	Oldest time.Time
}

// MarkBackupsClearInput records in the erasure ledger when the request's
// backups were all gone.
type MarkBackupsClearInput struct {
	RequestID string
	ClearAt   time.Time
}
