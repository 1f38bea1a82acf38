//! Who owns what a message asks for. Telegram sends some messages from shared placeholder
//! accounts: anonymous group admins (`GroupAnonymousBot`, 1087968824), posts sent as a channel
//! (`Channel_Bot`, 136817688) and automatic forwards from a linked channel (`Telegram`, 777000).
//! Their `from.id` is the same for everyone, so it is never an owner: the sending chat
//! (`sender_chat`) owns the job, or the message is refused with a short explanation.

/// `from.id` of anonymous group administrators.
pub const ANONYMOUS_ADMIN_USER_ID: i64 = 1_087_968_824;
/// `from.id` of messages sent on behalf of a channel.
pub const CHANNEL_BOT_USER_ID: i64 = 136_817_688;
/// `from.id` of service messages and automatic forwards ("Telegram").
pub const TELEGRAM_SERVICE_USER_ID: i64 = 777_000;

/// The placeholder senders: shared ids that identify no one.
pub const PLACEHOLDER_SENDER_IDS: [i64; 3] = [
    ANONYMOUS_ADMIN_USER_ID,
    CHANNEL_BOT_USER_ID,
    TELEGRAM_SERVICE_USER_ID,
];

/// Who a message comes from, as far as the bot can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// A person: owner identity is their user id.
    User { user_id: i64 },
    /// A chat speaking as itself (a channel post, an anonymous admin): owner identity is the chat
    /// id (negative, so it never collides with a user id).
    Chat { chat_id: i64 },
    /// No one the bot can tell apart: refused with an explanation.
    Unidentifiable,
    /// Nothing to answer (a message without sender in a chat that does not post as itself).
    Nobody,
}

impl Sender {
    /// The id jobs and limits are kept under.
    pub fn owner_id(self) -> Option<i64> {
        match self {
            Sender::User { user_id } => Some(user_id),
            Sender::Chat { chat_id } => Some(chat_id),
            Sender::Unidentifiable | Sender::Nobody => None,
        }
    }
}

/// Decides the sender from the raw fields of a message: `from.id`, `sender_chat.id`, and whether it
/// is an automatic forward from a linked channel.
pub fn sender_of(
    from_user_id: Option<i64>,
    sender_chat_id: Option<i64>,
    is_automatic_forward: bool,
) -> Sender {
    if is_automatic_forward || from_user_id == Some(TELEGRAM_SERVICE_USER_ID) {
        // A channel's post copied into its discussion group: nobody asked for anything.
        return Sender::Unidentifiable;
    }
    if let Some(chat_id) = sender_chat_id {
        return Sender::Chat { chat_id };
    }
    match from_user_id {
        Some(user_id) if PLACEHOLDER_SENDER_IDS.contains(&user_id) => Sender::Unidentifiable,
        Some(user_id) => Sender::User { user_id },
        None => Sender::Nobody,
    }
}

/// Is this id one of the shared placeholders (never an owner, never an admin)?
pub fn is_placeholder_sender(user_id: i64) -> bool {
    PLACEHOLDER_SENDER_IDS.contains(&user_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_never_own_anything() {
        assert_eq!(
            sender_of(Some(42), None, false),
            Sender::User { user_id: 42 }
        );
        // Anonymous admin in a supergroup: the group owns it.
        assert_eq!(
            sender_of(Some(ANONYMOUS_ADMIN_USER_ID), Some(-100123), false),
            Sender::Chat { chat_id: -100123 }
        );
        // Posting as a channel in a group.
        assert_eq!(
            sender_of(Some(CHANNEL_BOT_USER_ID), Some(-100777), false),
            Sender::Chat { chat_id: -100777 }
        );
        // A channel post (no from).
        assert_eq!(
            sender_of(None, Some(-100555), false),
            Sender::Chat { chat_id: -100555 }
        );
        // Placeholders without a chat, and automatic forwards: refused.
        assert_eq!(
            sender_of(Some(ANONYMOUS_ADMIN_USER_ID), None, false),
            Sender::Unidentifiable
        );
        assert_eq!(
            sender_of(Some(TELEGRAM_SERVICE_USER_ID), Some(-100555), true),
            Sender::Unidentifiable
        );
        assert_eq!(sender_of(None, None, false), Sender::Nobody);
        for id in PLACEHOLDER_SENDER_IDS {
            assert!(sender_of(Some(id), None, false).owner_id().is_none());
        }
    }
}
