-- Listing jobs newest first (the dashboard, /list, the admin view) walks this index and stops at
-- the page size instead of sorting the whole table.
CREATE INDEX IF NOT EXISTS jobs_by_creation ON jobs (created_at_ms DESC, id);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, created_at_ms DESC);
