//! What the store keeps about a person, beside their jobs.

use serde::{Deserialize, Serialize};

/// A user's saved preferences; `Default` for someone who never set any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UserPreferences {
    /// `/language`: a language code of the bot's catalogue (`en`, `ru`); from Telegram's
    /// `language_code` when `None`.
    #[serde(default)]
    pub language: Option<String>,
    /// `/timezone`: an IANA zone name (`Europe/Berlin`); the operator's default when `None`.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Granted by an admin: more concurrent jobs.
    #[serde(default)]
    pub vip: bool,
}
