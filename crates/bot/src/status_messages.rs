//! One status message per job, always current: sent when the job is created ("Checking the
//! link…"), edited as the job goes (at most every `status_edit_interval` for progress, at once
//! for state changes), replaced by `/status` (the old one loses its buttons), and edited once
//! more when the job is finished, with the delivery's outcome.
//!
//! The store says which message shows a job (`Job::status_message`, written when one is sent or
//! adopted), so a restarted bot, or another bot process, keeps editing the same message. Events
//! only wake the updater; a scan of the store every `STATUS_SCAN_INTERVAL` (the live jobs, at
//! most `MAXIMUM_LIVE_JOBS_SCANNED`, and the jobs that stopped being live since the last scan)
//! catches what a lost or lagged event missed. A finished job's final edit is made once per
//! finish: it is awaited, then recorded in the store (`StatusMessageRef::final_edit_for`); a
//! crash between the two repeats an edit of the same text, which the user does not see.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streambot_core::JobId;
use streambot_core::delivery::StatusMessageRef;
use streambot_core::job::{Job, JobEvent, JobState};
use streambot_store::JobBackend;
use teloxide::types::MessageId;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::keyboards::job_keyboard;
use crate::messages::{StatusView, Words};
use crate::runtime::BotContext;
use crate::telegram_api::TelegramSendError;

/// Tries at the first status message of a job the status updater found.
const FIRST_STATUS_MESSAGE_ATTEMPTS: u32 = 3;
/// How often the store is scanned for what events did not say.
const STATUS_SCAN_INTERVAL: Duration = Duration::from_secs(3);
/// Live jobs looked at in one scan (the store lists them newest first).
const MAXIMUM_LIVE_JOBS_SCANNED: usize = 5_000;
/// Finished jobs looked at in the first scan after start (the newest): those that finished
/// while the bot was away get their final edit.
const RECENTLY_FINISHED_JOBS_SCANNED: usize = 200;

/// This process's last edit of a job's status message.
#[derive(Debug, Clone)]
pub(crate) struct StatusMessage {
    pub chat_id: i64,
    pub message_id: MessageId,
    /// `None`: not edited by this process (known from the store).
    pub last_edit: Option<Instant>,
    pub last_text: String,
}

impl StatusMessage {
    fn is(&self, reference: &StatusMessageRef) -> bool {
        self.chat_id == reference.chat_id && i64::from(self.message_id.0) == reference.message_id
    }
}

fn message_id_of(reference: &StatusMessageRef) -> Option<MessageId> {
    i32::try_from(reference.message_id).ok().map(MessageId)
}

impl<B: JobBackend> BotContext<B> {
    fn status_view(&self, job: &Job) -> StatusView {
        StatusView {
            delivery: crate::part_sender::delivery_progress(job),
            default_cap: self.settings.default_maximum_duration,
        }
    }

    fn cached_status_message(&self, job_id: JobId) -> Option<StatusMessage> {
        self.status_messages
            .lock()
            .ok()
            .and_then(|status_messages| status_messages.get(&job_id).cloned())
    }

    fn remember_status_message(&self, job_id: JobId, entry: StatusMessage) {
        if let Ok(mut status_messages) = self.status_messages.lock() {
            status_messages.insert(job_id, entry);
        }
    }

    /// The job's status message: the one in the job record, with this process's last edit of
    /// it; else the one this process sent (its record may not have been read back yet).
    fn status_entry(&self, job: &Job) -> Option<StatusMessage> {
        let cached = self.cached_status_message(job.id);
        let Some(stored) = job.status_message else {
            return cached;
        };
        match cached {
            Some(cached) if cached.is(&stored) => Some(cached),
            _ => Some(StatusMessage {
                chat_id: stored.chat_id,
                message_id: message_id_of(&stored)?,
                last_edit: None,
                last_text: String::new(),
            }),
        }
    }

    /// Writes which message shows the job (the store is what a restarted bot reads).
    async fn store_status_message(&self, job_id: JobId, reference: StatusMessageRef) {
        if let Err(error) = self
            .backend
            .set_status_message(job_id, Some(reference))
            .await
        {
            tracing::warn!(%job_id, %error, "could not record the status message");
        }
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
                let previous = self.status_entry(job);
                self.remember_status_message(
                    job.id,
                    StatusMessage {
                        chat_id,
                        message_id,
                        last_edit: Some(Instant::now()),
                        last_text: text.clone(),
                    },
                );
                // A finished job's new message already shows it finished.
                let reference = StatusMessageRef {
                    final_edit_for: job.finished_at.filter(|_| job.state.is_terminal()),
                    ..StatusMessageRef::new(chat_id, i64::from(message_id.0))
                };
                self.store_status_message(job.id, reference).await;
                if let Some(previous) = previous
                    && (previous.chat_id, previous.message_id) != (chat_id, message_id)
                {
                    let previous_text = if previous.last_text.is_empty() {
                        &text
                    } else {
                        &previous.last_text
                    };
                    self.api
                        .remove_keyboard(previous.chat_id, previous.message_id, previous_text);
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
    /// A finished job's message gets its final edit (once per finish).
    pub async fn refresh_status_message(&self, job: &Job, force: bool) {
        let Some(existing) = self.status_entry(job) else {
            if !self.api.is_blocked(job.owner.chat_id) {
                self.send_status_message(job, job.owner.chat_id).await;
            }
            return;
        };
        if job.state.is_terminal() {
            self.show_finished(job.id).await;
            return;
        }
        let edited_recently = existing
            .last_edit
            .is_some_and(|last_edit| last_edit.elapsed() < self.settings.status_edit_interval);
        if !force && edited_recently {
            return;
        }
        let words: Words = if force {
            self.words_for(job.owner.user_id).await
        } else {
            self.words_for_progress_edit(job.owner.user_id).await
        };
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
        self.remember_status_message(
            job.id,
            StatusMessage {
                last_edit: Some(Instant::now()),
                last_text: text,
                ..existing
            },
        );
    }

    /// Claims the job's status message for one task of this process; false when one has it.
    fn claim_status_work(&self, job_id: JobId) -> bool {
        self.status_messages_being_sent
            .lock()
            .map(|mut being_sent| being_sent.insert(job_id))
            .unwrap_or(false)
    }

    fn release_status_work(&self, job_id: JobId) {
        if let Ok(mut being_sent) = self.status_messages_being_sent.lock() {
            being_sent.remove(&job_id);
        }
    }

    /// The final edit of a finished job's status message, unless the store says it was made for
    /// this finish: awaited, then recorded. One at a time per job; the job is read again first,
    /// so a scan's older copy does not repeat it.
    async fn show_finished(&self, job_id: JobId) {
        if !self.claim_status_work(job_id) {
            return;
        }
        self.show_finished_claimed(job_id).await;
        self.release_status_work(job_id);
    }

    async fn show_finished_claimed(&self, job_id: JobId) {
        let job = match self.backend.get_job(job_id).await {
            Ok(Some(job)) if job.state.is_terminal() => job,
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(%job_id, %error, "could not read a finished job");
                return;
            }
        };
        let Some(existing) = self.status_entry(&job) else {
            return;
        };
        let stored = job
            .status_message
            .filter(|stored| existing.is(stored))
            .unwrap_or(StatusMessageRef::new(
                existing.chat_id,
                i64::from(existing.message_id.0),
            ));
        if !stored.needs_final_edit(job.finished_at) {
            return;
        }
        let words = self.words_for(job.owner.user_id).await;
        let view = self.status_view(&job);
        let text = words.job_status(&job, &view);
        let keyboard = job_keyboard(&words, job.id, job.state, view.delivery);
        match self
            .api
            .edit_text(existing.chat_id, existing.message_id, &text, keyboard)
            .await
        {
            Ok(()) => {}
            Err(
                error @ (TelegramSendError::Unreachable(_)
                | TelegramSendError::RateLimited { .. }
                | TelegramSendError::QueueFull
                | TelegramSendError::Stopping),
            ) => {
                tracing::info!(%job_id, %error, "the final status edit waits for the next scan");
                return;
            }
            Err(error) => {
                // Deleted message, blocked chat: not tried again.
                tracing::info!(%job_id, %error, "the final status edit was refused");
            }
        }
        self.store_status_message(
            job.id,
            StatusMessageRef {
                final_edit_for: job.finished_at,
                ..stored
            },
        )
        .await;
        // Nothing more to edit: the record says which message it is, if a button brings it back.
        if let Ok(mut status_messages) = self.status_messages.lock() {
            status_messages.remove(&job.id);
        }
    }

    /// The final edit in a task of its own (the updater does not wait in the outbound queue).
    fn show_finished_in_background(self: &Arc<Self>, job_id: JobId) {
        let context = Arc::clone(self);
        self.tasks
            .spawn(async move { context.show_finished(job_id).await });
    }

    /// Sends the first status message of a job the bot has none for, in a task (the updater
    /// does not wait in the outbound queue); once per job at a time.
    fn send_first_status_message_in_background(self: &Arc<Self>, job: Job) {
        if self.api.is_blocked(job.owner.chat_id) || !self.claim_status_work(job.id) {
            return;
        }
        let context = Arc::clone(self);
        self.tasks.spawn(async move {
            // The job as it is now: the event may have waited in line.
            let job = match context.backend.get_job(job.id).await {
                Ok(Some(current)) => current,
                _ => job,
            };
            if context.status_entry(&job).is_none() {
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
                        tokio::time::sleep(Duration::from_secs(u64::from(attempt) * 2)).await;
                    }
                }
            }
            context.release_status_work(job.id);
            // A state change while the message waited in the queue was not shown.
            if let Ok(Some(current)) = context.backend.get_job(job.id).await
                && current.state != job.state
            {
                context.refresh_status_message(&current, true).await;
            }
        });
    }

    /// Whether this message is the job's current status message.
    pub fn is_status_message(&self, job: &Job, chat_id: i64, message_id: MessageId) -> bool {
        self.status_entry(job)
            .is_some_and(|entry| entry.chat_id == chat_id && entry.message_id == message_id)
    }

    /// The job's current status message, if any.
    pub(crate) fn current_status_message(&self, job: &Job) -> Option<StatusMessage> {
        self.status_entry(job)
    }

    /// Takes over a message (a button was pressed on it) as the job's status message.
    pub async fn adopt_status_message(
        &self,
        job_id: JobId,
        chat_id: i64,
        message_id: MessageId,
        text: &str,
    ) {
        self.remember_status_message(
            job_id,
            StatusMessage {
                chat_id,
                message_id,
                last_edit: Some(Instant::now()),
                last_text: text.to_string(),
            },
        );
        self.store_status_message(
            job_id,
            StatusMessageRef::new(chat_id, i64::from(message_id.0)),
        )
        .await;
    }
}

/// What the scan remembers between passes.
#[derive(Default)]
struct StatusScan {
    /// The live jobs of the last pass: one that is not live any more finished meanwhile.
    live_last_time: HashSet<JobId>,
    /// The first pass after start looks at the newest finished jobs too.
    looked_at_recently_finished: bool,
}

/// One look at the store: every live job's status message brought up to date (a live job with
/// none gets one), and the jobs that finished since the last look (or, the first time, the
/// newest finished ones) get their final edit. Bounded: at most `MAXIMUM_LIVE_JOBS_SCANNED`
/// live jobs, their texts offered to the outbound queue (which keeps one pending edit per
/// message), and `RECENTLY_FINISHED_JOBS_SCANNED` finished ones once.
async fn scan_status_messages<B: JobBackend>(context: &Arc<BotContext<B>>, scan: &mut StatusScan) {
    let live_filter = streambot_store::JobFilter {
        states: JobState::ALL
            .into_iter()
            .filter(|state| !state.is_terminal())
            .collect(),
        owner_user_id: None,
        limit: Some(MAXIMUM_LIVE_JOBS_SCANNED),
    };
    let live_jobs = match context.backend.list_jobs(live_filter).await {
        Ok(jobs) => jobs,
        Err(error) => {
            tracing::warn!(%error, "could not list the live jobs for their status messages");
            return;
        }
    };
    if live_jobs.len() >= MAXIMUM_LIVE_JOBS_SCANNED {
        tracing::warn!(
            limit = MAXIMUM_LIVE_JOBS_SCANNED,
            "more live jobs than one status scan looks at; the oldest wait for their events"
        );
    }
    let live_now: HashSet<JobId> = live_jobs.iter().map(|job| job.id).collect();
    for job in live_jobs {
        if context.status_entry(&job).is_some() {
            context.refresh_status_message(&job, false).await;
        } else {
            context.send_first_status_message_in_background(job);
        }
    }
    for finished in scan.live_last_time.difference(&live_now) {
        context.show_finished_in_background(*finished);
    }
    scan.live_last_time = live_now;
    if !scan.looked_at_recently_finished {
        let finished_filter = streambot_store::JobFilter {
            states: JobState::ALL
                .into_iter()
                .filter(|state| state.is_terminal())
                .collect(),
            owner_user_id: None,
            limit: Some(RECENTLY_FINISHED_JOBS_SCANNED),
        };
        match context.backend.list_jobs(finished_filter).await {
            Ok(jobs) => {
                scan.looked_at_recently_finished = true;
                for job in jobs {
                    if job
                        .status_message
                        .is_some_and(|stored| stored.needs_final_edit(job.finished_at))
                    {
                        context.show_finished_in_background(job.id);
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not list the finished jobs for their status messages")
            }
        }
    }
}

/// Follows job events and scans the store: status messages (the worker that holds the files
/// sends the files).
pub(crate) async fn run_status_updater<B: JobBackend>(
    context: Arc<BotContext<B>>,
    shutdown: CancellationToken,
) {
    let mut events = context.backend.subscribe_events();
    let mut scan = StatusScan::default();
    let mut scan_ticker = tokio::time::interval(STATUS_SCAN_INTERVAL);
    scan_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = scan_ticker.tick() => {
                scan_status_messages(&context, &mut scan).await;
                continue;
            }
            event = events.recv() => event,
        };
        let event = match event {
            Ok(event) => event,
            Err(RecvError::Lagged(skipped)) => {
                tracing::debug!(skipped, "status updater lagged; the store scan catches up");
                scan_ticker.reset_immediately();
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let (job_id, force) = match &event {
            JobEvent::StateChanged { job_id, .. } => (*job_id, true),
            JobEvent::Progress { job_id, .. } => (*job_id, false),
            JobEvent::DesiredStateChanged { job_id, .. } => (*job_id, true),
            JobEvent::DeliveryChanged { job_id, .. } => (*job_id, true),
            _ => continue,
        };
        let job = match context.backend.get_job(job_id).await {
            Ok(Some(job)) => job,
            _ => continue,
        };
        // Only jobs with a status message get edits from progress ticks; state changes of any
        // job reach its owner.
        let known = context.status_entry(&job).is_some();
        if job.state.is_terminal() {
            if known {
                context.show_finished_in_background(job.id);
            }
        } else if known {
            context.refresh_status_message(&job, force).await;
        } else if force {
            context.send_first_status_message_in_background(job);
        }
    }
}
