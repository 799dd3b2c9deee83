package contract

// RecordErasureInput writes the person into the erasure ledger before any
// of their data is erased, so that no restore can bring them back. Identity
// is sealed with the person's key and carries their user id; the ledger
// keeps only its keyed hash.
type RecordErasureInput struct {
	RequestID  string
	SubjectRef string
	Identity   []byte
}
