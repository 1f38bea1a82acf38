//! Talking to Telegram robustly. A 429 waits `retry_after` and tries again; "message is not
//! modified" is success; 403 (the user blocked the bot) marks the chat and it is not messaged again;
//! network trouble is retried a little and then given up: nothing here can stop a recording.

use std::collections::HashSet;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use teloxide::ApiError;
use teloxide::RequestError;
use teloxide::prelude::*;
use teloxide::types::{CallbackQueryId, InlineKeyboardMarkup, InputFile, MessageId, ParseMode};

/// How many times one request is tried.
const MAXIMUM_ATTEMPTS: u32 = 5;
/// The longest `retry_after` honoured in place; longer ones give up on this message.
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(120);

/// Why a message or file could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum TelegramSendError {
    #[error("the user blocked the bot")]
    ChatBlocked,
    #[error("the file is larger than Telegram accepts")]
    FileTooLarge,
    #[error("Telegram refused the request: {0}")]
    Refused(String),
    #[error("Telegram could not be reached: {0}")]
    Unreachable(String),
}

impl TelegramSendError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, TelegramSendError::Unreachable(_))
    }
}

/// `text` with every occurrence of `secret` (the bot token, which reqwest errors carry inside the
/// request URL) replaced, so it can be logged or shown.
pub fn redact_secret(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_string();
    }
    let mut redacted = text.replace(secret, "<TELEGRAM_BOT_TOKEN>");
    // The numeric bot id alone is not secret; the part after the colon is.
    if let Some((_, key)) = secret.split_once(':')
        && key.len() >= 8
    {
        redacted = redacted.replace(key, "<redacted>");
    }
    redacted
}

/// A finished file to send.
#[derive(Debug, Clone)]
pub struct OutgoingFile<'a> {
    pub path: &'a Path,
    /// The name the user sees (`<host>-<date>-<time>-part1.mp4`).
    pub file_name: String,
    pub kind: OutgoingFileKind,
    pub caption: String,
    pub thumbnail: Option<&'a Path>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_seconds: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutgoingFileKind {
    Video,
    Audio,
    Document,
}

#[derive(Clone)]
pub struct TelegramApi {
    bot: Bot,
    blocked_chats: Arc<Mutex<HashSet<i64>>>,
}

impl TelegramApi {
    pub fn new(bot: Bot) -> Self {
        TelegramApi {
            bot,
            blocked_chats: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    pub fn bot(&self) -> &Bot {
        &self.bot
    }

    pub fn is_blocked(&self, chat_id: i64) -> bool {
        self.blocked_chats
            .lock()
            .map(|blocked| blocked.contains(&chat_id))
            .unwrap_or(false)
    }

    /// An error's text with the token taken out.
    fn describe(&self, error: &RequestError) -> String {
        redact_secret(&error.to_string(), self.bot.token())
    }

    fn mark_blocked(&self, chat_id: i64) {
        tracing::info!(
            chat_id,
            "the user blocked the bot; not messaging this chat again"
        );
        if let Ok(mut blocked) = self.blocked_chats.lock() {
            blocked.insert(chat_id);
        }
    }

    /// Runs one request with the rules above.
    async fn run<T, F, Fut>(&self, chat_id: i64, mut request: F) -> Result<T, TelegramSendError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RequestError>>,
    {
        if self.is_blocked(chat_id) {
            return Err(TelegramSendError::ChatBlocked);
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match request().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            match &error {
                RequestError::RetryAfter(seconds) => {
                    let wait = seconds.duration();
                    if wait > LONGEST_RETRY_AFTER || attempt >= MAXIMUM_ATTEMPTS {
                        return Err(TelegramSendError::Refused(self.describe(&error)));
                    }
                    tracing::info!(
                        chat_id,
                        wait_seconds = wait.as_secs(),
                        "Telegram asked to slow down"
                    );
                    tokio::time::sleep(wait).await;
                }
                RequestError::Api(
                    ApiError::BotBlocked
                    | ApiError::UserDeactivated
                    | ApiError::BotKicked
                    | ApiError::BotKickedFromSupergroup
                    | ApiError::ChatNotFound,
                ) => {
                    self.mark_blocked(chat_id);
                    return Err(TelegramSendError::ChatBlocked);
                }
                RequestError::Api(ApiError::RequestEntityTooLarge) => {
                    return Err(TelegramSendError::FileTooLarge);
                }
                RequestError::Network(_) | RequestError::Io(_) => {
                    if attempt >= MAXIMUM_ATTEMPTS {
                        return Err(TelegramSendError::Unreachable(self.describe(&error)));
                    }
                    tokio::time::sleep(Duration::from_millis(500) * attempt).await;
                }
                RequestError::InvalidJson { raw, .. }
                    if raw.contains("Too Large") || raw.contains("413") =>
                {
                    return Err(TelegramSendError::FileTooLarge);
                }
                _ => {
                    if error.to_string().contains("Internal Server Error")
                        && attempt < MAXIMUM_ATTEMPTS
                    {
                        tokio::time::sleep(Duration::from_millis(500) * attempt).await;
                        continue;
                    }
                    return Err(TelegramSendError::Refused(self.describe(&error)));
                }
            }
        }
    }

    /// Sends a MarkdownV2 message; returns its id.
    pub async fn send_text(
        &self,
        chat_id: i64,
        text: &str,
        keyboard: Option<InlineKeyboardMarkup>,
    ) -> Result<MessageId, TelegramSendError> {
        self.run(chat_id, || {
            let mut request = self
                .bot
                .send_message(ChatId(chat_id), text.to_string())
                .parse_mode(ParseMode::MarkdownV2);
            if let Some(keyboard) = &keyboard {
                request = request.reply_markup(keyboard.clone());
            }
            async move { request.await.map(|message| message.id) }
        })
        .await
    }

    /// Edits a message; "not modified" counts as done.
    pub async fn edit_text(
        &self,
        chat_id: i64,
        message_id: MessageId,
        text: &str,
        keyboard: Option<InlineKeyboardMarkup>,
    ) -> Result<(), TelegramSendError> {
        self.run(chat_id, || {
            let mut request = self
                .bot
                .edit_message_text(ChatId(chat_id), message_id, text.to_string())
                .parse_mode(ParseMode::MarkdownV2);
            if let Some(keyboard) = &keyboard {
                request = request.reply_markup(keyboard.clone());
            }
            async move {
                match request.await {
                    Ok(_) => Ok(()),
                    Err(RequestError::Api(ApiError::MessageNotModified)) => Ok(()),
                    Err(error) => Err(error),
                }
            }
        })
        .await
    }

    /// Removes a message's buttons, keeping its text (editing without a keyboard drops it).
    pub async fn remove_keyboard(&self, chat_id: i64, message_id: MessageId, text: &str) {
        if let Err(error) = self.edit_text(chat_id, message_id, text, None).await {
            tracing::debug!(chat_id, %error, "could not remove a keyboard");
        }
    }

    /// Always answers a button press, so the user's spinner stops.
    pub async fn answer_callback(&self, callback_id: &str, text: Option<String>) {
        let result = self
            .run(0, || {
                let mut request = self
                    .bot
                    .answer_callback_query(CallbackQueryId(callback_id.to_string()));
                if let Some(text) = &text {
                    request = request.text(text.clone());
                }
                async move { request.await.map(|_| ()) }
            })
            .await;
        if let Err(error) = result {
            tracing::warn!(%error, "could not answer a button press");
        }
    }

    /// Sends a finished file: `sendVideo` (or `sendAudio`), falling back to `sendDocument`.
    pub async fn send_file(
        &self,
        chat_id: i64,
        file: &OutgoingFile<'_>,
    ) -> Result<(), TelegramSendError> {
        let first = match file.kind {
            OutgoingFileKind::Video => self.send_as_video(chat_id, file).await,
            OutgoingFileKind::Audio => self.send_as_audio(chat_id, file).await,
            OutgoingFileKind::Document => self.send_as_document(chat_id, file).await,
        };
        match first {
            Err(TelegramSendError::Refused(reason)) if file.kind != OutgoingFileKind::Document => {
                tracing::info!(%reason, "sending as video/audio was refused; sending as a document");
                self.send_as_document(chat_id, file).await
            }
            other => other,
        }
    }

    async fn send_as_video(
        &self,
        chat_id: i64,
        file: &OutgoingFile<'_>,
    ) -> Result<(), TelegramSendError> {
        self.run(chat_id, || {
            let mut request = self
                .bot
                .send_video(
                    ChatId(chat_id),
                    InputFile::file(file.path).file_name(file.file_name.clone()),
                )
                .caption(file.caption.clone())
                .supports_streaming(true);
            if let Some(thumbnail) = file.thumbnail {
                request = request.thumbnail(InputFile::file(thumbnail));
            }
            if let Some(width) = file.width {
                request = request.width(width);
            }
            if let Some(height) = file.height {
                request = request.height(height);
            }
            if let Some(duration) = file.duration_seconds {
                request = request.duration(duration);
            }
            async move { request.await.map(|_| ()) }
        })
        .await
    }

    async fn send_as_audio(
        &self,
        chat_id: i64,
        file: &OutgoingFile<'_>,
    ) -> Result<(), TelegramSendError> {
        self.run(chat_id, || {
            let mut request = self
                .bot
                .send_audio(
                    ChatId(chat_id),
                    InputFile::file(file.path).file_name(file.file_name.clone()),
                )
                .caption(file.caption.clone());
            if let Some(duration) = file.duration_seconds {
                request = request.duration(duration);
            }
            async move { request.await.map(|_| ()) }
        })
        .await
    }

    async fn send_as_document(
        &self,
        chat_id: i64,
        file: &OutgoingFile<'_>,
    ) -> Result<(), TelegramSendError> {
        self.run(chat_id, || {
            let mut request = self
                .bot
                .send_document(
                    ChatId(chat_id),
                    InputFile::file(file.path).file_name(file.file_name.clone()),
                )
                .caption(file.caption.clone());
            if let Some(thumbnail) = file.thumbnail {
                request = request.thumbnail(InputFile::file(thumbnail));
            }
            async move { request.await.map(|_| ()) }
        })
        .await
    }
}
