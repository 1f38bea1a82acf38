//! Updates teloxide cannot read (a chat type, an update kind or a field newer than teloxide 0.17):
//! teloxide hands them on as `UpdateKind::Error(raw JSON)` and its dispatcher logs each one
//! whole at ERROR, so a user's text (and a link's password in it) reached the log (issue 11).
//! [`ReadableUpdatesOnly`] wraps the update listener and takes them out before the dispatcher
//! sees them: one line with the update's id and kind (never its content), and a private
//! message gets a sentence saying it could not be read.

use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::Value;
use teloxide::stop::StopToken;
use teloxide::types::{AllowedUpdate, Update, UpdateKind};
use teloxide::update_listeners::{AsUpdateStream, UpdateListener};

/// What may be said about an update that could not be read: nothing of its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableUpdate {
    pub update_id: Option<i64>,
    /// The update's kind as Telegram names it (`message`, `guest_message`), or `unknown`.
    pub kind: String,
    /// A message in a private chat: (chat id, the sender's language code), to answer.
    pub private_sender: Option<(i64, Option<String>)>,
}

/// The longest kind name kept (Telegram's are short words).
const MAXIMUM_KIND_CHARACTERS: usize = 40;

/// Reads the update's id, kind and, for a private message, who to answer from the raw JSON.
pub fn describe_unreadable(raw: &Value) -> UnreadableUpdate {
    let update_id = raw.get("update_id").and_then(Value::as_i64);
    let kind_and_body = raw
        .as_object()
        .and_then(|fields| fields.iter().find(|(name, _)| name.as_str() != "update_id"));
    let kind = kind_and_body
        .map(|(name, _)| name.as_str())
        .filter(|name| {
            !name.is_empty()
                && name.len() <= MAXIMUM_KIND_CHARACTERS
                && name
                    .chars()
                    .all(|character| character.is_ascii_lowercase() || character == '_')
        })
        .unwrap_or("unknown")
        .to_string();
    let private_sender = kind_and_body
        .filter(|(name, _)| name.as_str() == "message")
        .and_then(|(_, body)| {
            let chat = body.get("chat")?;
            if chat.get("type").and_then(Value::as_str) != Some("private") {
                return None;
            }
            let chat_id = chat
                .get("id")
                .and_then(Value::as_i64)
                .filter(|id| *id > 0)?;
            let from = body.get("from");
            // A private chat's id is the user's id; anything else is not a person's chat.
            let from_id = from.and_then(|from| from.get("id")).and_then(Value::as_i64);
            if from_id != Some(chat_id) {
                return None;
            }
            let language = from
                .and_then(|from| from.get("language_code"))
                .and_then(Value::as_str)
                .filter(|code| code.len() <= 16)
                .map(str::to_string);
            Some((chat_id, language))
        });
    UnreadableUpdate {
        update_id,
        kind,
        private_sender,
    }
}

/// Called once per unreadable update (it must not block: spawn to answer).
pub type UnreadableHandler = Arc<dyn Fn(UnreadableUpdate) + Send + Sync>;

/// An update listener without the updates teloxide could not read.
pub struct ReadableUpdatesOnly<L> {
    inner: L,
    on_unreadable: UnreadableHandler,
}

impl<L> ReadableUpdatesOnly<L> {
    pub fn new(inner: L, on_unreadable: UnreadableHandler) -> Self {
        ReadableUpdatesOnly {
            inner,
            on_unreadable,
        }
    }
}

impl<'a, L> AsUpdateStream<'a> for ReadableUpdatesOnly<L>
where
    L: UpdateListener,
    L::Err: Send + 'static,
{
    type StreamErr = L::Err;
    type Stream = BoxStream<'a, Result<Update, L::Err>>;

    fn as_stream(&'a mut self) -> Self::Stream {
        let on_unreadable = Arc::clone(&self.on_unreadable);
        self.inner
            .as_stream()
            .filter_map(move |item| {
                let kept = match item {
                    Ok(Update {
                        kind: UpdateKind::Error(raw),
                        id,
                    }) => {
                        let mut unreadable = describe_unreadable(&raw);
                        unreadable.update_id = unreadable.update_id.or(Some(i64::from(id.0)));
                        tracing::warn!(
                            update_id = unreadable.update_id,
                            kind = %unreadable.kind,
                            "an update from Telegram could not be read and was skipped (its content is not logged)"
                        );
                        on_unreadable(unreadable);
                        None
                    }
                    other => Some(other),
                };
                std::future::ready(kept)
            })
            .boxed()
    }
}

impl<L> UpdateListener for ReadableUpdatesOnly<L>
where
    L: UpdateListener,
    L::Err: Send + 'static,
{
    type Err = L::Err;

    fn stop_token(&mut self) -> StopToken {
        self.inner.stop_token()
    }

    fn hint_allowed_updates(&mut self, hint: &mut dyn Iterator<Item = AllowedUpdate>) {
        self.inner.hint_allowed_updates(hint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_id_the_kind_and_a_private_sender_are_taken() {
        let private = describe_unreadable(&json!({
            "update_id": 7,
            "message": {
                "message_id": 1,
                "from": {"id": 42, "is_bot": false, "first_name": "A", "language_code": "ru"},
                "chat": {"id": 42, "type": "private"},
                "date": 1,
                "text": "https://user:secret@host/x",
                "entities": [{"type": "a_kind_from_the_future", "offset": 0, "length": 1}],
            },
        }));
        assert_eq!(
            private,
            UnreadableUpdate {
                update_id: Some(7),
                kind: "message".to_string(),
                private_sender: Some((42, Some("ru".to_string()))),
            }
        );
        // Not a private chat, or an unknown kind: nobody to answer.
        let group = describe_unreadable(&json!({
            "update_id": 8,
            "message": {"from": {"id": 42}, "chat": {"id": -100, "type": "monoforum"}},
        }));
        assert_eq!(group.private_sender, None);
        let newer = describe_unreadable(&json!({
            "update_id": 9,
            "guest_message": {"from": {"id": 42}, "chat": {"id": 42, "type": "private"}},
        }));
        assert_eq!(newer.kind, "guest_message");
        assert_eq!(newer.private_sender, None);
        // A kind that is not a plain name is not repeated.
        let odd = describe_unreadable(&json!({"update_id": 10, "Weird Kind\n": {}}));
        assert_eq!(odd.kind, "unknown");
        assert_eq!(describe_unreadable(&json!([1, 2])).kind, "unknown");
        // A chat id that is not the sender's is not answered.
        let mismatched = describe_unreadable(&json!({
            "message": {"from": {"id": 43}, "chat": {"id": 42, "type": "private"}},
        }));
        assert_eq!(mismatched.private_sender, None);
    }
}
