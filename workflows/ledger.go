package workflows

// ActivityRecordErasure writes a person into the erasure ledger (P6). The
// erasure calls it before any of the person's rows is deleted.
const ActivityRecordErasure = "RecordErasure"

// RecordErasureInput writes the person into the erasure ledger before any
// of their data is erased, so that no restore can bring them back. Identity
// is sealed with the person's key and carries their user id; the ledger
// keeps only its keyed hash.
type RecordErasureInput struct {
	RequestID  string
	SubjectRef string
	Identity   []byte
}
