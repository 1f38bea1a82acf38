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

/// Tries at the first status message of a job the status updater found.
const FIRST_STATUS_MESSAGE_ATTEMPTS: u32 = 3;

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
        let _ = self.try_send_status_message(job, chat_id).await;
    }

    /// As `send_status_message`; false when it could not be sent for a reason worth another try.
    async fn try_send_status_message(&self, job: &Job, chat_id: i64) -> bool {
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
                    self.api.remove_keyboard(
                        previous.chat_id,
                        previous.message_id,
                        &previous.last_text,
                    );
                }
            }
            Err(error) => {
                tracing::warn!(job_id = %job.id, %error, "could not send the status message");
                return !error.is_retryable();
            }
        }
        true
    }

    /// Offers an edit of the job's status message (or sends one); at most every
    /// `status_edit_interval` unless `force` (state changes, button presses). The outbound queue
    /// sends it when the limits allow, the newest text only, the message waiting longest first.
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
        self.api.offer_status_edit(
            existing.chat_id,
            existing.message_id,
            &text,
            job_keyboard(&words, job.id, job.state, view.delivery),
        );
        if let Ok(mut status_messages) = self.status_messages.lock()
            && let Some(entry) = status_messages.get_mut(&job.id)
        {
            entry.last_edit = Instant::now();
            entry.last_text = text;
        }
    }

    /// Sends the first status message of a job the bot has none for, in a task (the updater
    /// does not wait in the outbound queue); once per job at a time.
    fn send_first_status_message_in_background(self: &Arc<Self>, job: Job) {
        let claimed = self
            .status_messages_being_sent
            .lock()
            .map(|mut being_sent| being_sent.insert(job.id))
            .unwrap_or(false);
        if !claimed || self.api.is_blocked(job.owner.chat_id) {
            return;
        }
        let context = Arc::clone(self);
        self.tasks.spawn(async move {
            // The job as it is now: the event may have waited in line.
            let job = match context.backend.get_job(job.id).await {
                Ok(Some(current)) => current,
                _ => job,
            };
            if context.status_entry(job.id).is_none() {
                // Without it the job's progress is never shown: a failure worth retrying is
                // retried a few times.
                for attempt in 1..=FIRST_STATUS_MESSAGE_ATTEMPTS {
                    if context
                        .try_send_status_message(&job, job.owner.chat_id)
                        .await
                    {
                        break;
                    }
                    if attempt < FIRST_STATUS_MESSAGE_ATTEMPTS {
                        tokio::time::sleep(std::time::Duration::from_secs(u64::from(attempt) * 2))
                            .await;
                    }
                }
                // A state change while the message waited in the queue was not shown.
                if let Ok(Some(current)) = context.backend.get_job(job.id).await
                    && current.state != job.state
                {
                    context.refresh_status_message(&current, true).await;
                }
            }
            if let Ok(mut being_sent) = context.status_messages_being_sent.lock() {
                being_sent.remove(&job.id);
            }
        });
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

/// The least time between two resyncs after the updater lagged behind the events.
const MINIMUM_RESYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
/// Live jobs looked at in one resync.
const MAXIMUM_JOBS_RESYNCED: usize = 20_000;

/// Events were skipped (too many at once): every live job's status message is brought up to
/// date, and a live job this process has none for gets one (a skipped state change would have
/// sent it).
async fn resync_live_jobs<B: JobBackend>(context: &Arc<BotContext<B>>) {
    let filter = streambot_store::JobFilter {
        states: streambot_core::job::JobState::ALL
            .into_iter()
            .filter(|state| !state.is_terminal())
            .collect(),
        owner_user_id: None,
        limit: Some(MAXIMUM_JOBS_RESYNCED),
    };
    let jobs = match context.backend.list_jobs(filter).await {
        Ok(jobs) => jobs,
        Err(error) => {
            tracing::warn!(%error, "could not list the live jobs to resync their status messages");
            return;
        }
    };
    for job in jobs {
        if context.status_entry(job.id).is_some() {
            context.refresh_status_message(&job, false).await;
        } else {
            context.send_first_status_message_in_background(job);
        }
    }
}

/// Follows job events: status messages (the worker that holds the files sends them).
pub(crate) async fn run_status_updater<B: JobBackend>(
    context: Arc<BotContext<B>>,
    shutdown: CancellationToken,
) {
    let mut events = context.backend.subscribe_events();
    let mut resync_needed = false;
    let mut last_resync: Option<Instant> = None;
    loop {
        if resync_needed
            && last_resync.is_none_or(|resynced| resynced.elapsed() >= MINIMUM_RESYNC_INTERVAL)
        {
            resync_needed = false;
            last_resync = Some(Instant::now());
            resync_live_jobs(&context).await;
        }
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = events.recv() => event,
        };
        let event = match event {
            Ok(event) => event,
            Err(RecvError::Lagged(skipped)) => {
                tracing::debug!(skipped, "status updater lagged; resyncing the live jobs");
                resync_needed = true;
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
        if known {
            context.refresh_status_message(&job, force).await;
        } else {
            context.send_first_status_message_in_background(job.clone());
        }
    }
}
