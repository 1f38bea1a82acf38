-- Jobs: the record is the JSON of streambot_core::Job; the other columns index it and hold the
-- in-process queue (queue_name is NULL unless the job waits in a queue).
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY NOT NULL,
    owner_user_id INTEGER NOT NULL,
    state TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    finished_at_ms INTEGER,
    lease_expires_at_ms INTEGER,
    queue_name TEXT,
    available_at_ms INTEGER,
    enqueue_sequence INTEGER,
    record_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs (owner_user_id, created_at_ms);
CREATE INDEX IF NOT EXISTS jobs_by_queue ON jobs (queue_name, available_at_ms, enqueue_sequence);
CREATE INDEX IF NOT EXISTS jobs_by_lease ON jobs (lease_expires_at_ms);

CREATE TABLE IF NOT EXISTS dead_letters (
    job_id TEXT PRIMARY KEY NOT NULL,
    failed_at_ms INTEGER NOT NULL,
    reason TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS locks (
    name TEXT PRIMARY KEY NOT NULL,
    holder TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
