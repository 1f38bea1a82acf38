//! The bot's side of delivery: the worker that holds a finished job's files calls this
//! [`PartSender`] for each part (and once for the summary) and records each outcome in the job.
//! Each part goes under a readable name (`<host>-<yyyy-mm-dd>-<hhmm>-part1.mp4`) with a caption
//! naming the stream, the date, the duration, part i/n and gaps, as `sendVideo` (or `sendAudio`),
//! falling back to `sendDocument`; a part stored as a link (Google Drive) is sent as a message.
//!
//! One attempt per call: the worker retries what is retryable (network, 5xx, 429 with
//! `retry_after`) under its lease; a blocked chat, a file too large or a missing file is
//! permanent. Uploads use a client with the long `request_timeout`. No error text carries the
//! token.

use std::path::Path;
use std::time::Duration;

use streambot_core::delivery::{
    AdminNotice, AdminNotifier, ClipProblem, DeliverySummary, PartDeliveryState, PartSendError,
    PartSender, SendFuture, SentPart,
};
use streambot_core::job::Job;
use streambot_core::job_files::DeliveredPart;
use streambot_store::JobBackend;
use teloxide::ApiError;
use teloxide::RequestError;
use teloxide::prelude::*;
use teloxide::types::{InputFile, Message, ParseMode};

use crate::catalogue::Language;
use crate::messages::{DeliveryProgress, Words, part_file_name};
use crate::runtime::{BotError, BotSettings};
use crate::telegram_api::{OutgoingFileKind, redact_secret};

/// Sends finished parts to their owners through the Bot API.
pub struct TelegramPartSender<B: JobBackend> {
    bot: Bot,
    backend: B,
    upload_limit_bytes: u64,
    /// `FILE_RETENTION_HOURS`: the summary says when the files go.
    file_retention: Option<Duration>,
    /// `TELEGRAM_ADMIN_IDS`: who hears from the disk guard.
    admin_user_ids: Vec<i64>,
    /// Groups that became supergroups: old id → new id (Telegram's `migrate_to_chat_id`).
    migrated_chats: crate::migrated_chats::MigratedChats,
}

/// What the status message says about a job's delivery, from the job record.
pub fn delivery_progress(job: &Job) -> DeliveryProgress {
    match &job.delivery {
        None if job.state.is_terminal() => DeliveryProgress::Sent,
        None => DeliveryProgress::NotYet,
        Some(delivery) => match delivery.summary() {
            DeliverySummary::Sending => DeliveryProgress::Sending,
            DeliverySummary::AllSent => DeliveryProgress::Sent,
            DeliverySummary::SomeFailed if any_retryable_failure(job) => DeliveryProgress::Failed,
            DeliverySummary::SomeFailed => DeliveryProgress::Sent,
        },
    }
}

fn any_retryable_failure(job: &Job) -> bool {
    job.delivery.as_ref().is_some_and(|delivery| {
        delivery.parts.iter().any(|part| {
            matches!(
                part.state,
                PartDeliveryState::Failed {
                    retryable: true,
                    ..
                }
            )
        })
    })
}

fn kind_of(path: &Path) -> OutgoingFileKind {
    match path.extension().and_then(|extension| extension.to_str()) {
        Some("mp4") => OutgoingFileKind::Video,
        Some("m4a") | Some("mp3") | Some("aac") => OutgoingFileKind::Audio,
        _ => OutgoingFileKind::Document,
    }
}

fn extension_of(path: &Path) -> String {
    path.extension()
        .map(|extension| extension.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn finite_seconds(seconds: f64) -> f64 {
    if seconds.is_finite() {
        seconds.clamp(0.0, 1e9)
    } else {
        0.0
    }
}

/// The name a part is sent (or kept on the server) under.
fn part_name(job: &Job, part: &DeliveredPart) -> String {
    let extension = part
        .local_path
        .as_deref()
        .map(extension_of)
        .unwrap_or_else(|| "mp4".to_string());
    part_file_name(job, part.part_number as usize, &extension)
}

/// Is an error worth another attempt, and after how long.
fn classify(error: &RequestError, token: &str) -> PartSendError {
    let reason = redact_secret(&error.to_string(), token);
    match error {
        RequestError::RetryAfter(seconds) => {
            PartSendError::transient(reason, Some(seconds.duration()))
        }
        RequestError::Network(_) | RequestError::Io(_) => PartSendError::transient(reason, None),
        error if crate::telegram_api::the_chat_is_gone(error) => {
            PartSendError::permanent("the user blocked the bot")
        }
        error if crate::telegram_api::the_file_is_too_large(error) => {
            PartSendError::permanent("the file is larger than Telegram accepts")
        }
        _ if reason.contains("Internal Server Error")
            || reason.contains("Bad Gateway")
            || reason.contains("Service Unavailable")
            || reason.contains("Gateway Timeout") =>
        {
            PartSendError::transient(reason, None)
        }
        _ => PartSendError::permanent(reason),
    }
}

fn sent_part(message: &Message) -> SentPart {
    let file_id = message
        .video()
        .map(|video| video.file.id.0.clone())
        .or_else(|| message.audio().map(|audio| audio.file.id.0.clone()))
        .or_else(|| {
            message
                .document()
                .map(|document| document.file.id.0.clone())
        });
    SentPart {
        message_id: i64::from(message.id.0),
        file_id,
    }
}

impl<B: JobBackend> TelegramPartSender<B> {
    /// A sender with the bot's token, API URL and upload timeout.
    pub fn new(settings: &BotSettings, backend: B) -> Result<Self, BotError> {
        if settings.token.trim().is_empty() || !settings.token.contains(':') {
            return Err(BotError::BadToken);
        }
        let client = teloxide::net::default_reqwest_settings()
            .timeout(settings.request_timeout)
            .build()
            .map_err(|error| {
                BotError::Client(redact_secret(&error.to_string(), &settings.token))
            })?;
        let mut bot = Bot::with_client(settings.token.clone(), client);
        if let Some(api_url) = &settings.api_url {
            bot = bot.set_api_url(api_url.clone());
        }
        let mut admin_user_ids: Vec<i64> = settings.admin_user_ids.iter().copied().collect();
        admin_user_ids.sort_unstable();
        Ok(TelegramPartSender {
            bot,
            backend,
            upload_limit_bytes: settings.upload_limit_bytes(),
            file_retention: None,
            admin_user_ids,
            migrated_chats: Default::default(),
        })
    }

    /// The summary says when retention deletes the files (`None`: kept forever, not said).
    pub fn with_file_retention(mut self, file_retention: Option<Duration>) -> Self {
        self.file_retention = file_retention;
        self
    }

    async fn words_for(&self, user_id: i64) -> Words {
        let language = self
            .backend
            .get_user_preferences(user_id)
            .await
            .ok()
            .and_then(|preferences| preferences.language)
            .as_deref()
            .and_then(Language::from_code);
        Words::new(language.unwrap_or_default())
    }

    fn error(&self, error: &RequestError) -> PartSendError {
        classify(error, self.bot.token())
    }

    /// The chat a group's files go to now (itself, or the supergroup it became).
    fn current_chat(&self, chat_id: i64) -> i64 {
        self.migrated_chats.current_chat(chat_id)
    }

    /// Runs `request` for the chat, following a group that became a supergroup (Telegram's
    /// 400 with `migrate_to_chat_id`) once, and remembering it for the next requests.
    async fn following_migration<T, F, Fut>(
        &self,
        chat_id: i64,
        mut request: F,
    ) -> Result<T, RequestError>
    where
        F: FnMut(i64) -> Fut,
        Fut: std::future::Future<Output = Result<T, RequestError>>,
    {
        match request(self.current_chat(chat_id)).await {
            Err(RequestError::MigrateToChatId(new_chat_id)) => {
                self.migrated_chats.note_migration(chat_id, new_chat_id.0);
                request(new_chat_id.0).await
            }
            other => other,
        }
    }

    async fn send_text(&self, chat_id: i64, text: &str) -> Result<Message, PartSendError> {
        self.following_migration(chat_id, |chat_id| {
            let request = self
                .bot
                .send_message(ChatId(chat_id), text.to_string())
                .parse_mode(ParseMode::MarkdownV2);
            async move { request.await }
        })
        .await
        .map_err(|error| self.error(&error))
    }

    async fn send_file(
        &self,
        chat_id: i64,
        path: &Path,
        file_name: String,
        caption: String,
        part: &DeliveredPart,
        duration_seconds: u32,
    ) -> Result<Message, RequestError> {
        let file = InputFile::file(path).file_name(file_name);
        let thumbnail = part
            .thumbnail
            .as_deref()
            .filter(|thumbnail| thumbnail.exists())
            .map(InputFile::file);
        match kind_of(path) {
            OutgoingFileKind::Video => {
                let mut request = self
                    .bot
                    .send_video(ChatId(chat_id), file)
                    .caption(caption)
                    .supports_streaming(true)
                    .duration(duration_seconds);
                if let Some(thumbnail) = thumbnail {
                    request = request.thumbnail(thumbnail);
                }
                if let Some(width) = part.width {
                    request = request.width(width);
                }
                if let Some(height) = part.height {
                    request = request.height(height);
                }
                request.await
            }
            OutgoingFileKind::Audio => {
                self.bot
                    .send_audio(ChatId(chat_id), file)
                    .caption(caption)
                    .duration(duration_seconds)
                    .await
            }
            OutgoingFileKind::Document => {
                let mut request = self
                    .bot
                    .send_document(ChatId(chat_id), file)
                    .caption(caption);
                if let Some(thumbnail) = thumbnail {
                    request = request.thumbnail(thumbnail);
                }
                request.await
            }
        }
    }

    async fn send_one_part(
        &self,
        job: &Job,
        part: &DeliveredPart,
    ) -> Result<SentPart, PartSendError> {
        let words = self.words_for(job.owner.user_id).await;
        let chat_id = job.owner.chat_id;
        let duration_seconds = finite_seconds(part.duration_seconds);
        let mut caption = words.part_caption(
            job,
            part.part_number as usize,
            part.part_count as usize,
            Duration::from_secs_f64(duration_seconds),
        );
        if let Some(error_count) = part.damaged_decode_errors {
            caption.push_str(" · ");
            caption.push_str(&words.damaged_caption_note(error_count));
        }
        if let Some(link) = &part.link {
            let message = self
                .send_text(chat_id, &words.part_link(&caption, link))
                .await?;
            return Ok(sent_part(&message));
        }
        let Some(path) = part.local_path.as_deref().filter(|path| path.exists()) else {
            return Err(PartSendError::permanent(
                "the finished file is not on this machine",
            ));
        };
        if part.size_bytes > self.upload_limit_bytes {
            return Err(PartSendError::permanent(
                "the file is larger than Telegram accepts",
            ));
        }
        let name = part_name(job, part);
        let duration = duration_seconds.round() as u32;
        match self
            .following_migration(chat_id, |chat_id| {
                self.send_file(chat_id, path, name.clone(), caption.clone(), part, duration)
            })
            .await
        {
            Ok(message) => Ok(sent_part(&message)),
            Err(error) => {
                let classified = self.error(&error);
                let refused_as_media = !classified.retryable
                    && kind_of(path) != OutgoingFileKind::Document
                    && matches!(error, RequestError::Api(ApiError::Unknown(_)));
                if !refused_as_media {
                    return Err(classified);
                }
                tracing::info!(reason = %classified.reason, "sending as video/audio was refused; sending as a document");
                self.bot
                    .send_document(
                        ChatId(self.current_chat(chat_id)),
                        InputFile::file(path).file_name(name),
                    )
                    .caption(caption)
                    .await
                    .map(|message| sent_part(&message))
                    .map_err(|error| self.error(&error))
            }
        }
    }

    async fn send_the_summary(
        &self,
        job: &Job,
        parts: &[DeliveredPart],
    ) -> Result<(), PartSendError> {
        let words = self.words_for(job.owner.user_id).await;
        let chat_id = job.owner.chat_id;
        let delivery = job.delivery.clone().unwrap_or_default();
        let name_of = |part_number: u32| {
            parts
                .iter()
                .find(|part| part.part_number == part_number)
                .map(|part| part_name(job, part))
                .unwrap_or_else(|| format!("part {part_number}"))
        };
        let mut kept_on_server = Vec::new();
        let mut to_send_again = Vec::new();
        for part in &delivery.parts {
            if let PartDeliveryState::Failed { retryable, .. } = part.state {
                if retryable {
                    to_send_again.push(name_of(part.part_number));
                } else {
                    kept_on_server.push(name_of(part.part_number));
                }
            }
        }
        let mut summary = words.final_summary(job, delivery.sent_count(), &kept_on_server);
        let joined: Vec<Vec<u32>> = parts
            .iter()
            .filter(|part| part.joined_part_numbers.len() > 1)
            .map(|part| part.joined_part_numbers.clone())
            .collect();
        if !joined.is_empty() {
            summary.push('\n');
            summary.push_str(&words.parts_joined(&joined));
        }
        if let Some(expires_at) = self
            .file_retention
            .filter(|_| delivery.sent_count() > 0 || !kept_on_server.is_empty())
            .and_then(|retention| chrono::Duration::from_std(retention).ok())
            .and_then(|retention| chrono::Utc::now().checked_add_signed(retention))
        {
            summary.push('\n');
            summary.push_str(&words.recording_expires(expires_at));
        }
        self.send_text(chat_id, &summary).await?;
        for name in &to_send_again {
            self.send_text(chat_id, &words.delivery_failed(name))
                .await?;
        }
        let damaged_and_sent: Vec<u32> = parts
            .iter()
            .filter(|part| part.damaged_decode_errors.is_some())
            .filter(|part| {
                delivery.part(part.part_number).is_some_and(|delivered| {
                    matches!(delivered.state, PartDeliveryState::Sent { .. })
                })
            })
            .map(|part| part.part_number)
            .collect();
        if !damaged_and_sent.is_empty() {
            self.send_text(chat_id, &words.files_damaged(&damaged_and_sent))
                .await?;
        }
        Ok(())
    }
}

impl<B: JobBackend> TelegramPartSender<B> {
    /// A clip of a live job (`/clip`), with its own caption, to the chat that asked.
    async fn send_one_clip(
        &self,
        job: &Job,
        clip: &DeliveredPart,
        chat_id: i64,
    ) -> Result<SentPart, PartSendError> {
        let words = self.words_for(job.owner.user_id).await;
        let Some(path) = clip.local_path.as_deref().filter(|path| path.exists()) else {
            return Err(PartSendError::permanent("the clip is not on this machine"));
        };
        if clip.size_bytes > self.upload_limit_bytes {
            return Err(PartSendError::permanent(
                "the clip is larger than Telegram accepts; ask for fewer minutes",
            ));
        }
        let duration_seconds = finite_seconds(clip.duration_seconds);
        let caption = words.clip_caption(job, Duration::from_secs_f64(duration_seconds));
        let name = format!(
            "{}-clip-{}s.{}",
            job.id,
            duration_seconds.round() as u64,
            extension_of(path)
        );
        self.send_file(
            chat_id,
            path,
            name,
            caption,
            clip,
            duration_seconds.round() as u32,
        )
        .await
        .map(|message| sent_part(&message))
        .map_err(|error| self.error(&error))
    }

    /// Each admin in their language; every admin is tried, the first error is returned.
    async fn tell_the_admins(&self, notice: &AdminNotice) -> Result<(), PartSendError> {
        let mut first_error = None;
        for admin_id in &self.admin_user_ids {
            let words = self.words_for(*admin_id).await;
            if let Err(error) = self.send_text(*admin_id, &words.disk_notice(notice)).await {
                tracing::warn!(admin_id, %error, "could not tell an admin about the disk");
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl<B: JobBackend> AdminNotifier for TelegramPartSender<B> {
    fn notify_admins<'a>(
        &'a self,
        notice: &'a AdminNotice,
    ) -> SendFuture<'a, Result<(), PartSendError>> {
        Box::pin(self.tell_the_admins(notice))
    }
}

impl<B: JobBackend> PartSender for TelegramPartSender<B> {
    fn send_clip<'a>(
        &'a self,
        job: &'a Job,
        clip: &'a DeliveredPart,
        chat_id: i64,
        _last: Duration,
    ) -> SendFuture<'a, Result<SentPart, PartSendError>> {
        Box::pin(self.send_one_clip(job, clip, chat_id))
    }

    fn send_clip_problem<'a>(
        &'a self,
        job: &'a Job,
        chat_id: i64,
        problem: &'a ClipProblem,
    ) -> SendFuture<'a, Result<(), PartSendError>> {
        Box::pin(async move {
            let words = self.words_for(job.owner.user_id).await;
            self.send_text(chat_id, &words.clip_problem(job.id, problem))
                .await
                .map(|_| ())
        })
    }

    fn send_part<'a>(
        &'a self,
        job: &'a Job,
        part: &'a DeliveredPart,
    ) -> SendFuture<'a, Result<SentPart, PartSendError>> {
        Box::pin(self.send_one_part(job, part))
    }

    fn send_summary<'a>(
        &'a self,
        job: &'a Job,
        parts: &'a [DeliveredPart],
    ) -> SendFuture<'a, Result<(), PartSendError>> {
        Box::pin(self.send_the_summary(job, parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_and_carry_no_token() {
        let token = "123456:SECRET-token-abcdefgh";
        let retry = classify(
            &RequestError::RetryAfter(teloxide::types::Seconds::from_seconds(7)),
            token,
        );
        assert!(retry.retryable);
        assert_eq!(retry.retry_after, Some(Duration::from_secs(7)));
        let blocked = classify(&RequestError::Api(ApiError::BotBlocked), token);
        assert!(!blocked.retryable);
        let too_large = classify(&RequestError::Api(ApiError::RequestEntityTooLarge), token);
        assert!(!too_large.retryable);
        let server = classify(
            &RequestError::Api(ApiError::Unknown("Internal Server Error".to_string())),
            token,
        );
        assert!(server.retryable);
        let leaked = classify(
            &RequestError::Api(ApiError::Unknown(format!("bad {token}"))),
            token,
        );
        assert!(
            !leaked.reason.contains("SECRET-token-abcdefgh"),
            "{}",
            leaked.reason
        );
    }
}
