-- Scheduled and recurring recordings: the JSON of streambot_core::Schedule, with the columns the
-- scheduler and the bot look up by. `next_start_at_ms` (the next occurrence minus the lead) is
-- NULL once the schedule is cancelled or has no occurrence left.
CREATE TABLE IF NOT EXISTS schedules (
    id TEXT PRIMARY KEY NOT NULL,
    owner_user_id INTEGER NOT NULL,
    next_start_at_ms INTEGER,
    version INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    record_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS schedules_by_next_start ON schedules (next_start_at_ms)
    WHERE next_start_at_ms IS NOT NULL;
CREATE INDEX IF NOT EXISTS schedules_by_owner ON schedules (owner_user_id, created_at_ms);
