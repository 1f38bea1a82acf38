-- What the bot keeps about a person beside their jobs (language, time zone, VIP): the JSON of
-- streambot_core::UserPreferences, one row per user, shared by every bot process.
CREATE TABLE IF NOT EXISTS user_preferences (
    user_id INTEGER PRIMARY KEY NOT NULL,
    preferences_json TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
