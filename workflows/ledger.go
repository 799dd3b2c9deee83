package workflows

// ActivityRecordErasure writes a person into the erasure ledger (P6). The
// erasure calls it before any of the person's rows is deleted.
const ActivityRecordErasure = "RecordErasure"
