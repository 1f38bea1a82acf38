//! Groups that became supergroups: Telegram answers a request to the old id with
//! `migrate_to_chat_id`; the new id is remembered here so the next requests go there at once.
//! One type for every sender of the bot (the outbound queue's connection, the part sender).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Old chat id → the supergroup's id. Cheap to clone (shared).
#[derive(Clone, Default)]
pub(crate) struct MigratedChats {
    new_chat_by_old_chat: Arc<Mutex<HashMap<i64, i64>>>,
}

impl MigratedChats {
    /// The chat messages for `chat_id` go to now (itself, or the supergroup it became).
    pub(crate) fn current_chat(&self, chat_id: i64) -> i64 {
        self.new_chat_by_old_chat
            .lock()
            .ok()
            .and_then(|migrated| migrated.get(&chat_id).copied())
            .unwrap_or(chat_id)
    }

    /// Remembers that `old_chat_id` is now `new_chat_id` (logged once per answer saying so).
    pub(crate) fn note_migration(&self, old_chat_id: i64, new_chat_id: i64) {
        tracing::info!(
            old_chat_id,
            new_chat_id,
            "a group became a supergroup; its messages go to the new chat"
        );
        if let Ok(mut migrated) = self.new_chat_by_old_chat.lock() {
            migrated.insert(old_chat_id, new_chat_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_migrated_group_is_followed_and_others_are_left_alone() {
        let chats = MigratedChats::default();
        assert_eq!(chats.current_chat(-100), -100);
        chats.clone().note_migration(-100, -1_000_000_100);
        assert_eq!(chats.current_chat(-100), -1_000_000_100);
        assert_eq!(chats.current_chat(-200), -200);
    }
}
