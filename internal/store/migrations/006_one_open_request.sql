-- One open request per person and type: a second submission joins the first.
CREATE UNIQUE INDEX requests_one_open_per_subject_type ON lethe.requests (subject_ref, type) WHERE closed_at IS NULL;

---- create above / drop below ----
DROP INDEX lethe.requests_one_open_per_subject_type;
