-- What the metrics endpoint counts at every scrape (internal/metrics): the
-- operator tasks opened (audit.OpenTasks), the live keys of legal holds
-- (person.LiveHolds) and the erased people whose backups have not rotated
-- out yet (ledger.PendingBackups). Partial indexes over just those rows keep
-- a scrape as cheap with millions of audit entries, keys and ledger rows as
-- with none.
CREATE INDEX audit_log_tasks_opened ON lethe.audit_log (at) WHERE action = 'processor.task_opened';
CREATE INDEX subject_keys_live_holds ON lethe.subject_keys (subject_ref) WHERE destroyed_at IS NULL AND subject_ref LIKE 'hold:%';
CREATE INDEX erasure_ledger_backups_pending ON lethe.erasure_ledger (erased_at) WHERE backups_clear_at IS NULL;

---- create above / drop below ----
DROP INDEX lethe.erasure_ledger_backups_pending;
DROP INDEX lethe.subject_keys_live_holds;
DROP INDEX lethe.audit_log_tasks_opened;
