-- Every create, push and requeue takes the next enqueue_sequence as MAX(enqueue_sequence) + 1:
-- without this index that is a scan of the whole table (100,000 jobs: 100,000 rows per submit);
-- with it, one step down the index.
CREATE INDEX IF NOT EXISTS jobs_by_enqueue_sequence ON jobs (enqueue_sequence);
