//! Talking to Telegram robustly. Every request goes through the outbound queue (`outbound`: the
//! limits, the order, coalescing); a 429 pauses every send for `retry_after` and the request goes
//! again; "message is not modified" is success; 403 (the user blocked the bot) marks the chat and it is not messaged again;
//! network trouble is retried a little and then given up: nothing here can stop a recording.

use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use teloxide::ApiError;
use teloxide::RequestError;
use teloxide::prelude::*;
use teloxide::types::{CallbackQueryId, InlineKeyboardMarkup, InputFile, MessageId, ParseMode};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::outbound::{
    Decision, Dispatch, OfferOutcome, OutboundKind, OutboundLimits, OutboundScheduler,
};

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
    #[error("Telegram asked to wait {retry_after:?} before sending again")]
    RateLimited { retry_after: Duration },
    #[error("too many messages are waiting for this chat")]
    QueueFull,
    #[error("the bot is stopping")]
    Stopping,
}

impl TelegramSendError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            TelegramSendError::Unreachable(_) | TelegramSendError::RateLimited { .. }
        )
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

/// The connection: one attempt per request as far as 429 goes (the outbound queue waits and
/// resends), the other rules applied here.
#[derive(Clone)]
struct TelegramConnection {
    bot: Bot,
    blocked_chats: Arc<Mutex<HashSet<i64>>>,
    /// Groups that became supergroups: old id → new id (Telegram's `migrate_to_chat_id`).
    migrated_chats: crate::migrated_chats::MigratedChats,
}

/// What the bot sends Telegram: every request goes through the outbound queue
/// ([`crate::outbound`]), one task decides what goes next and the requests run beside it.
#[derive(Clone)]
pub struct TelegramApi {
    connection: TelegramConnection,
    outbound: Arc<OutboundShared>,
}

struct OutboundShared {
    scheduler: Mutex<OutboundScheduler<OutboundRequest>>,
    wake: Notify,
    closed: AtomicBool,
}

impl OutboundShared {
    fn with_scheduler<T>(
        &self,
        action: impl FnOnce(&mut OutboundScheduler<OutboundRequest>) -> T,
    ) -> T {
        let mut scheduler = match self.scheduler.lock() {
            Ok(scheduler) => scheduler,
            Err(poisoned) => poisoned.into_inner(),
        };
        action(&mut scheduler)
    }
}

/// A request waiting in the outbound queue, with where its answer goes.
enum OutboundRequest {
    Text {
        text: String,
        keyboard: Option<InlineKeyboardMarkup>,
        answer: oneshot::Sender<Result<MessageId, TelegramSendError>>,
    },
    Edit {
        message_id: MessageId,
        text: String,
        keyboard: Option<InlineKeyboardMarkup>,
        answer: Option<oneshot::Sender<Result<(), TelegramSendError>>>,
    },
    CallbackAnswer {
        callback_id: String,
        text: Option<String>,
    },
    File {
        file: QueuedFile,
        answer: oneshot::Sender<Result<(), TelegramSendError>>,
    },
    /// Is `user_id` an administrator (or the creator) of `chat_id`?
    ChatAdministrator {
        chat_id: i64,
        user_id: i64,
        answer: oneshot::Sender<Result<bool, TelegramSendError>>,
    },
}

/// What a request gave back.
enum Sent {
    Message(MessageId),
    Done,
    Administrator(bool),
}

impl OutboundRequest {
    /// Hands the outcome to whoever waits for it (or logs it when nobody does).
    fn answer(self, chat_id: Option<i64>, outcome: Result<Sent, TelegramSendError>) {
        match self {
            OutboundRequest::Text { answer, .. } => {
                let _ = answer.send(outcome.map(|sent| match sent {
                    Sent::Message(message_id) => message_id,
                    Sent::Done | Sent::Administrator(_) => MessageId(0),
                }));
            }
            OutboundRequest::ChatAdministrator { answer, .. } => {
                let _ = answer.send(outcome.map(|sent| matches!(sent, Sent::Administrator(true))));
            }
            OutboundRequest::Edit {
                answer: Some(answer),
                ..
            }
            | OutboundRequest::File { answer, .. } => {
                let _ = answer.send(outcome.map(|_| ()));
            }
            OutboundRequest::Edit { answer: None, .. } => {
                if let Err(error) = outcome {
                    tracing::debug!(?chat_id, %error, "status edit failed");
                }
            }
            OutboundRequest::CallbackAnswer { .. } => {
                if let Err(error) = outcome {
                    tracing::warn!(%error, "could not answer a button press");
                }
            }
        }
    }
}

/// An [`OutgoingFile`] that owns its paths, to wait in the queue.
struct QueuedFile {
    path: PathBuf,
    file_name: String,
    kind: OutgoingFileKind,
    caption: String,
    thumbnail: Option<PathBuf>,
    width: Option<u32>,
    height: Option<u32>,
    duration_seconds: Option<u32>,
}

impl QueuedFile {
    fn from_outgoing(file: &OutgoingFile<'_>) -> Self {
        QueuedFile {
            path: file.path.to_path_buf(),
            file_name: file.file_name.clone(),
            kind: file.kind,
            caption: file.caption.clone(),
            thumbnail: file.thumbnail.map(Path::to_path_buf),
            width: file.width,
            height: file.height,
            duration_seconds: file.duration_seconds,
        }
    }

    fn as_outgoing(&self) -> OutgoingFile<'_> {
        OutgoingFile {
            path: &self.path,
            file_name: self.file_name.clone(),
            kind: self.kind,
            caption: self.caption.clone(),
            thumbnail: self.thumbnail.as_deref(),
            width: self.width,
            height: self.height,
            duration_seconds: self.duration_seconds,
        }
    }
}

/// How long the queue keeps sending after shutdown, for the last messages.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl TelegramApi {
    /// Starts the outbound queue's task (in `tasks`); it stops after `shutdown`, once the queue
    /// is empty or `SHUTDOWN_GRACE` has passed.
    pub fn start(
        bot: Bot,
        limits: OutboundLimits,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> Self {
        let api = TelegramApi {
            connection: TelegramConnection {
                bot,
                blocked_chats: Arc::new(Mutex::new(HashSet::new())),
                migrated_chats: Default::default(),
            },
            outbound: Arc::new(OutboundShared {
                scheduler: Mutex::new(OutboundScheduler::new(limits)),
                wake: Notify::new(),
                closed: AtomicBool::new(false),
            }),
        };
        tasks.spawn(run_outbound_queue(
            api.connection.clone(),
            Arc::clone(&api.outbound),
            shutdown,
        ));
        api
    }

    pub fn bot(&self) -> &Bot {
        &self.connection.bot
    }

    pub fn is_blocked(&self, chat_id: i64) -> bool {
        self.connection.is_blocked(chat_id)
    }

    /// Something arrived from this chat (a message, a press): the user unblocked the bot, or
    /// the group added it back, so it may be written to again.
    pub fn chat_is_reachable(&self, chat_id: i64) {
        if let Ok(mut blocked) = self.connection.blocked_chats.lock()
            && blocked.remove(&chat_id)
        {
            tracing::info!(chat_id, "a chat that had blocked the bot writes again");
        }
    }

    /// Requests waiting in the outbound queue.
    pub fn pending_requests(&self) -> usize {
        self.outbound
            .with_scheduler(|scheduler| scheduler.pending())
    }

    /// Puts a request in line; false when it was not taken (the queue is stopped or full).
    fn offer(&self, chat_id: Option<i64>, kind: OutboundKind, request: OutboundRequest) -> bool {
        if self.outbound.closed.load(Ordering::Acquire) {
            return false;
        }
        let outcome = self
            .outbound
            .with_scheduler(|scheduler| scheduler.offer(chat_id, kind, request));
        match outcome {
            OfferOutcome::Queued { dropped } => {
                if dropped.is_some() {
                    tracing::debug!(
                        ?chat_id,
                        "the chat's queue is full: its oldest status edit was dropped"
                    );
                }
                self.outbound.wake.notify_one();
                true
            }
            OfferOutcome::Coalesced { .. } => true,
            OfferOutcome::Refused(_) => {
                tracing::warn!(
                    ?chat_id,
                    ?kind,
                    "the chat's outbound queue is full of replies: this one is not sent"
                );
                false
            }
        }
    }

    /// Sends a MarkdownV2 message (a reply to a person); returns its id.
    pub async fn send_text(
        &self,
        chat_id: i64,
        text: &str,
        keyboard: Option<InlineKeyboardMarkup>,
    ) -> Result<MessageId, TelegramSendError> {
        if self.is_blocked(chat_id) {
            return Err(TelegramSendError::ChatBlocked);
        }
        let (answer, answered) = oneshot::channel();
        let request = OutboundRequest::Text {
            text: text.to_string(),
            keyboard,
            answer,
        };
        if !self.offer(Some(chat_id), OutboundKind::Reply, request) {
            return Err(TelegramSendError::QueueFull);
        }
        answered.await.unwrap_or(Err(TelegramSendError::Stopping))
    }

    /// Edits a message in answer to a person (a pressed button); "not modified" counts as done.
    pub async fn edit_text(
        &self,
        chat_id: i64,
        message_id: MessageId,
        text: &str,
        keyboard: Option<InlineKeyboardMarkup>,
    ) -> Result<(), TelegramSendError> {
        if self.is_blocked(chat_id) {
            return Err(TelegramSendError::ChatBlocked);
        }
        let (answer, answered) = oneshot::channel();
        let request = OutboundRequest::Edit {
            message_id,
            text: text.to_string(),
            keyboard,
            answer: Some(answer),
        };
        let kind = OutboundKind::ReplyEdit {
            message_id: message_id.0,
        };
        if !self.offer(Some(chat_id), kind, request) {
            return Err(TelegramSendError::QueueFull);
        }
        answered.await.unwrap_or(Err(TelegramSendError::Stopping))
    }

    /// Offers a status refresh of a message: sent when the limits allow, after replies, and
    /// replaced by a newer one offered before it goes. Nobody waits for it.
    pub fn offer_status_edit(
        &self,
        chat_id: i64,
        message_id: MessageId,
        text: &str,
        keyboard: Option<InlineKeyboardMarkup>,
    ) {
        if self.is_blocked(chat_id) {
            return;
        }
        let request = OutboundRequest::Edit {
            message_id,
            text: text.to_string(),
            keyboard,
            answer: None,
        };
        let kind = OutboundKind::StatusEdit {
            message_id: message_id.0,
        };
        if !self.offer(Some(chat_id), kind, request) {
            tracing::debug!(chat_id, "a status edit was not queued");
        }
    }

    /// Removes a message's buttons, keeping its text (editing without a keyboard drops it).
    pub fn remove_keyboard(&self, chat_id: i64, message_id: MessageId, text: &str) {
        self.offer_status_edit(chat_id, message_id, text, None);
    }

    /// Always answers a button press, so the user's spinner stops (first in line).
    pub async fn answer_callback(&self, callback_id: &str, text: Option<String>) {
        let request = OutboundRequest::CallbackAnswer {
            callback_id: callback_id.to_string(),
            text,
        };
        if !self.offer(None, OutboundKind::CallbackAnswer, request) {
            tracing::warn!("could not answer a button press: the outbound queue is full");
        }
    }

    /// Whether `user_id` is an administrator or the creator of `chat_id` (`getChatMember`),
    /// for a button pressed on a job a chat owns. An error (the bot is not in that chat) is an
    /// error: the caller refuses.
    pub async fn is_chat_administrator(
        &self,
        chat_id: i64,
        user_id: i64,
    ) -> Result<bool, TelegramSendError> {
        let (answer, answered) = oneshot::channel();
        let request = OutboundRequest::ChatAdministrator {
            chat_id,
            user_id,
            answer,
        };
        if !self.offer(None, OutboundKind::Lookup, request) {
            return Err(TelegramSendError::QueueFull);
        }
        answered.await.unwrap_or(Err(TelegramSendError::Stopping))
    }

    /// Sends a finished file: `sendVideo` (or `sendAudio`), falling back to `sendDocument`.
    pub async fn send_file(
        &self,
        chat_id: i64,
        file: &OutgoingFile<'_>,
    ) -> Result<(), TelegramSendError> {
        if self.is_blocked(chat_id) {
            return Err(TelegramSendError::ChatBlocked);
        }
        let (answer, answered) = oneshot::channel();
        let request = OutboundRequest::File {
            file: QueuedFile::from_outgoing(file),
            answer,
        };
        if !self.offer(Some(chat_id), OutboundKind::Upload, request) {
            return Err(TelegramSendError::QueueFull);
        }
        answered.await.unwrap_or(Err(TelegramSendError::Stopping))
    }
}

/// The one task that decides what is sent when; each request runs in its own task beside it.
async fn run_outbound_queue(
    connection: TelegramConnection,
    shared: Arc<OutboundShared>,
    shutdown: CancellationToken,
) {
    let requests = TaskTracker::new();
    let mut stop_by: Option<tokio::time::Instant> = None;
    loop {
        if stop_by.is_none() && shutdown.is_cancelled() {
            stop_by = Some(tokio::time::Instant::now() + SHUTDOWN_GRACE);
        }
        if let Some(deadline) = stop_by {
            let empty = shared.with_scheduler(|scheduler| scheduler.pending() == 0);
            if empty || tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        let decision = shared.with_scheduler(|scheduler| scheduler.next(Instant::now()));
        let wait_until = match decision {
            Decision::Send(dispatch) => {
                requests.spawn(perform_request(
                    connection.clone(),
                    Arc::clone(&shared),
                    dispatch,
                ));
                continue;
            }
            Decision::WaitUntil(at) => Some(tokio::time::Instant::from_std(at)),
            Decision::Idle => None,
        };
        let wake_at = match (wait_until, stop_by) {
            (Some(at), Some(deadline)) => Some(at.min(deadline)),
            (at, deadline) => at.or(deadline),
        };
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = sleep_until_or_forever(wake_at) => {}
            _ = shutdown.cancelled(), if stop_by.is_none() => {}
        }
    }
    shared.closed.store(true, Ordering::Release);
    let left = shared.with_scheduler(|scheduler| scheduler.drain());
    if !left.is_empty() {
        tracing::info!(
            requests = left.len(),
            "the bot is stopping: requests to Telegram not sent"
        );
    }
    for request in left {
        request.answer(None, Err(TelegramSendError::Stopping));
    }
    requests.close();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, requests.wait()).await;
}

async fn sleep_until_or_forever(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Sends one request and reports back to the scheduler: a 429 pauses every send and puts the
/// request back in line (up to `MAXIMUM_ATTEMPTS`, and `retry_after` up to
/// `LONGEST_RETRY_AFTER`).
async fn perform_request(
    connection: TelegramConnection,
    shared: Arc<OutboundShared>,
    dispatch: Dispatch<OutboundRequest>,
) {
    let Dispatch { ticket, payload } = dispatch;
    let chat_id = ticket.chat_id.unwrap_or(0);
    let outcome = match &payload {
        OutboundRequest::Text { text, keyboard, .. } => connection
            .send_text(chat_id, text, keyboard.clone())
            .await
            .map(Sent::Message),
        OutboundRequest::Edit {
            message_id,
            text,
            keyboard,
            ..
        } => connection
            .edit_text(chat_id, *message_id, text, keyboard.clone())
            .await
            .map(|()| Sent::Done),
        OutboundRequest::CallbackAnswer { callback_id, text } => connection
            .answer_callback(callback_id, text.clone())
            .await
            .map(|()| Sent::Done),
        OutboundRequest::File { file, .. } => connection
            .send_file(chat_id, &file.as_outgoing())
            .await
            .map(|()| Sent::Done),
        OutboundRequest::ChatAdministrator {
            chat_id, user_id, ..
        } => connection
            .is_chat_administrator(*chat_id, *user_id)
            .await
            .map(Sent::Administrator),
    };
    match outcome {
        Err(TelegramSendError::RateLimited { retry_after })
            if retry_after <= LONGEST_RETRY_AFTER && ticket.attempts + 1 < MAXIMUM_ATTEMPTS =>
        {
            tracing::info!(
                chat_id,
                wait_seconds = retry_after.as_secs(),
                "Telegram asked to slow down: every send waits"
            );
            shared.with_scheduler(|scheduler| {
                scheduler.too_many_requests(Instant::now(), ticket, payload, retry_after)
            });
        }
        outcome => {
            shared.with_scheduler(|scheduler| {
                scheduler.finished(ticket);
                // Given up on this request, but Telegram's wait still holds for every send.
                if let Err(TelegramSendError::RateLimited { retry_after }) = &outcome {
                    scheduler.pause(Instant::now(), (*retry_after).min(LONGEST_RETRY_AFTER));
                }
            });
            payload.answer(ticket.chat_id, outcome);
        }
    }
    shared.wake.notify_one();
}

impl TelegramConnection {
    fn is_blocked(&self, chat_id: i64) -> bool {
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

    /// The chat a group's messages go to now (itself, or the supergroup it became).
    fn current_chat(&self, chat_id: i64) -> i64 {
        self.migrated_chats.current_chat(chat_id)
    }

    fn note_migration(&self, old_chat_id: i64, new_chat_id: i64) {
        self.migrated_chats.note_migration(old_chat_id, new_chat_id);
    }

    /// Runs one request with the rules above; a 429 is returned as `RateLimited` at once. The
    /// request is given the chat to send to: a group that became a supergroup is followed
    /// (once per request; remembered for the next ones).
    async fn run<T, F, Fut>(&self, chat_id: i64, mut request: F) -> Result<T, TelegramSendError>
    where
        F: FnMut(i64) -> Fut,
        Fut: Future<Output = Result<T, RequestError>>,
    {
        if self.is_blocked(chat_id) {
            return Err(TelegramSendError::ChatBlocked);
        }
        let mut target_chat_id = self.current_chat(chat_id);
        let mut followed_migration = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match request(target_chat_id).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            match &error {
                RequestError::MigrateToChatId(new_chat_id)
                    if !followed_migration && chat_id != 0 =>
                {
                    followed_migration = true;
                    self.note_migration(chat_id, new_chat_id.0);
                    target_chat_id = new_chat_id.0;
                }
                RequestError::RetryAfter(seconds) => {
                    return Err(TelegramSendError::RateLimited {
                        retry_after: seconds.duration(),
                    });
                }
                // Chat 0 is "no chat" (a button's answer): nothing to mark.
                error if the_chat_is_gone(error) && chat_id != 0 => {
                    self.mark_blocked(chat_id);
                    return Err(TelegramSendError::ChatBlocked);
                }
                RequestError::Network(_) | RequestError::Io(_) => {
                    if attempt >= MAXIMUM_ATTEMPTS {
                        return Err(TelegramSendError::Unreachable(self.describe(&error)));
                    }
                    tokio::time::sleep(Duration::from_millis(500) * attempt).await;
                }
                error if the_file_is_too_large(error) => {
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
    async fn send_text(
        &self,
        chat_id: i64,
        text: &str,
        keyboard: Option<InlineKeyboardMarkup>,
    ) -> Result<MessageId, TelegramSendError> {
        self.run(chat_id, |chat_id| {
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
    async fn edit_text(
        &self,
        chat_id: i64,
        message_id: MessageId,
        text: &str,
        keyboard: Option<InlineKeyboardMarkup>,
    ) -> Result<(), TelegramSendError> {
        self.run(chat_id, |chat_id| {
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

    async fn answer_callback(
        &self,
        callback_id: &str,
        text: Option<String>,
    ) -> Result<(), TelegramSendError> {
        self.run(0, |_| {
            let mut request = self
                .bot
                .answer_callback_query(CallbackQueryId(callback_id.to_string()));
            if let Some(text) = &text {
                request = request.text(text.clone());
            }
            async move { request.await.map(|_| ()) }
        })
        .await
    }

    /// `getChatMember`, once. Not through `run`: an error about the chat asked about (the bot
    /// is not in it) must not mark any chat blocked.
    async fn is_chat_administrator(
        &self,
        chat_id: i64,
        user_id: i64,
    ) -> Result<bool, TelegramSendError> {
        let Ok(user_id) = u64::try_from(user_id) else {
            return Ok(false);
        };
        match self
            .bot
            .get_chat_member(ChatId(chat_id), UserId(user_id))
            .await
        {
            Ok(member) => Ok(member.is_privileged()),
            Err(RequestError::RetryAfter(seconds)) => Err(TelegramSendError::RateLimited {
                retry_after: seconds.duration(),
            }),
            Err(error @ (RequestError::Network(_) | RequestError::Io(_))) => {
                Err(TelegramSendError::Unreachable(self.describe(&error)))
            }
            Err(error) => Err(TelegramSendError::Refused(self.describe(&error))),
        }
    }

    /// Sends a finished file: `sendVideo` (or `sendAudio`), falling back to `sendDocument`.
    async fn send_file(
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
        self.run(chat_id, |chat_id| {
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
        self.run(chat_id, |chat_id| {
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
        self.run(chat_id, |chat_id| {
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

/// The bot can no longer write to the chat: blocked, kicked, the user deleted, the chat gone.
pub(crate) fn the_chat_is_gone(error: &RequestError) -> bool {
    matches!(
        error,
        RequestError::Api(
            ApiError::BotBlocked
                | ApiError::UserDeactivated
                | ApiError::BotKicked
                | ApiError::BotKickedFromSupergroup
                | ApiError::BotKickedFromChannel
                | ApiError::ChatNotFound,
        )
    )
}

/// Telegram refused the upload for its size (a 413 from the API or from a proxy in front of it).
pub(crate) fn the_file_is_too_large(error: &RequestError) -> bool {
    match error {
        RequestError::Api(ApiError::RequestEntityTooLarge) => true,
        RequestError::InvalidJson { raw, .. } => raw.contains("Too Large") || raw.contains("413"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chat the bot can no longer write to is never written to again: removed from a channel
    /// mid-recording, the status edits of its jobs used to go on failing every few seconds.
    #[test]
    fn every_way_out_of_a_chat_marks_it_gone() {
        for error in [
            ApiError::BotBlocked,
            ApiError::UserDeactivated,
            ApiError::BotKicked,
            ApiError::BotKickedFromSupergroup,
            ApiError::BotKickedFromChannel,
            ApiError::ChatNotFound,
        ] {
            assert!(
                the_chat_is_gone(&RequestError::Api(error.clone())),
                "{error:?}"
            );
        }
        assert!(!the_chat_is_gone(&RequestError::Api(
            ApiError::MessageNotModified
        )));
        assert!(!the_chat_is_gone(&RequestError::MigrateToChatId(ChatId(
            -100
        ))));
    }
}
