//! One status message per job, always current: sent when the job is created ("Checking the
//! link…"), edited as events arrive (at most every `status_edit_interval` for progress, at once
//! for state changes), replaced by `/status` (the old one loses its buttons), and finished with the
//! delivery's outcome.

use std::sync::Arc;
use std::time::Instant;

use streambot_core::JobId;
use streambot_core::job::{Job, JobEvent};
use streambot_store::JobBackend;
use teloxide::types::MessageId;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::keyboards::job_keyboard;
use crate::messages::{StatusView, Words};
use crate::runtime::BotContext;

#[derive(Debug, Clone)]
pub(crate) struct StatusMessage {
    pub chat_id: i64,
    pub message_id: MessageId,
    pub last_edit: Instant,
    pub last_text: String,
}

impl<B: JobBackend> BotContext<B> {
    fn status_view(&self, job: &Job) -> StatusView {
        StatusView {
            delivery: crate::part_sender::delivery_progress(job),
            default_cap: self.settings.default_maximum_duration,
        }
    }

    fn status_entry(&self, job_id: JobId) -> Option<StatusMessage> {
        self.status_messages
            .lock()
            .ok()
            .and_then(|status_messages| status_messages.get(&job_id).cloned())
    }

    /// Sends a new status message for the job; the previous one (if any) loses its buttons.
    pub async fn send_status_message(&self, job: &Job, chat_id: i64) {
        let words = self.words_for(job.owner.user_id).await;
        let view = self.status_view(job);
        let text = words.job_status(job, &view);
        let keyboard = job_keyboard(&words, job.id, job.state, view.delivery);
        match self.api.send_text(chat_id, &text, keyboard).await {
            Ok(message_id) => {
                let previous = self
                    .status_messages
                    .lock()
                    .ok()
                    .and_then(|mut status_messages| {
                        status_messages.insert(
                            job.id,
                            StatusMessage {
                                chat_id,
                                message_id,
                                last_edit: Instant::now(),
                                last_text: text,
                            },
                        )
                    });
                if let Some(previous) = previous {
                    self.api
                        .remove_keyboard(previous.chat_id, previous.message_id, &previous.last_text)
                        .await;
                }
            }
            Err(error) => {
                tracing::warn!(job_id = %job.id, %error, "could not send the status message")
            }
        }
    }

    /// Edits the job's status message (or sends one); at most every `status_edit_interval` unless
    /// `force` (state changes, button presses).
    pub async fn refresh_status_message(&self, job: &Job, force: bool) {
        let Some(existing) = self.status_entry(job.id) else {
            if !self.api.is_blocked(job.owner.chat_id) {
                self.send_status_message(job, job.owner.chat_id).await;
            }
            return;
        };
        if !force && existing.last_edit.elapsed() < self.settings.status_edit_interval {
            return;
        }
        let words: Words = self.words_for(job.owner.user_id).await;
        let view = self.status_view(job);
        let text = words.job_status(job, &view);
        if text == existing.last_text && !force {
            return;
        }
        let result = self
            .api
            .edit_text(
                existing.chat_id,
                existing.message_id,
                &text,
                job_keyboard(&words, job.id, job.state, view.delivery),
            )
            .await;
        if let Err(error) = result {
            tracing::debug!(job_id = %job.id, %error, "status edit failed");
        }
        if let Ok(mut status_messages) = self.status_messages.lock()
            && let Some(entry) = status_messages.get_mut(&job.id)
        {
            entry.last_edit = Instant::now();
            entry.last_text = text;
        }
    }

    /// Whether this message is the job's current status message.
    pub fn is_status_message(&self, job_id: JobId, chat_id: i64, message_id: MessageId) -> bool {
        self.status_entry(job_id)
            .is_some_and(|entry| entry.chat_id == chat_id && entry.message_id == message_id)
    }

    /// Takes over a message (a button was pressed on it) as the job's status message.
    pub fn adopt_status_message(
        &self,
        job_id: JobId,
        chat_id: i64,
        message_id: MessageId,
        text: &str,
    ) {
        if let Ok(mut status_messages) = self.status_messages.lock() {
            status_messages.insert(
                job_id,
                StatusMessage {
                    chat_id,
                    message_id,
                    last_edit: Instant::now(),
                    last_text: text.to_string(),
                },
            );
        }
    }
}

/// Follows job events: status messages.
pub(crate) async fn run_status_updater<B: JobBackend>(
    context: Arc<BotContext<B>>,
    shutdown: CancellationToken,
) {
    let mut events = context.backend.subscribe_events();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = events.recv() => event,
        };
        let event = match event {
            Ok(event) => event,
            Err(RecvError::Lagged(skipped)) => {
                tracing::debug!(skipped, "status updater lagged; continuing");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let (job_id, force) = match &event {
            JobEvent::StateChanged { job_id, .. } => (*job_id, true),
            JobEvent::Progress { job_id, .. } => (*job_id, false),
            JobEvent::DesiredStateChanged { job_id, .. } => (*job_id, true),
            _ => continue,
        };
        let job = match context.backend.get_job(job_id).await {
            Ok(Some(job)) => job,
            _ => continue,
        };
        // Only jobs this bot knows about get edits from progress ticks; state changes of any job
        // reach its owner.
        let known = context
            .status_messages
            .lock()
            .map(|status_messages| status_messages.contains_key(&job_id))
            .unwrap_or(false);
        if !known && !force {
            continue;
        }
        // The worker that holds the files sends them (`part_sender`); the status follows.
        context.refresh_status_message(&job, force).await;
    }
}
