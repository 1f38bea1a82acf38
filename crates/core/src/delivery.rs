//! Delivery as a durable step of a job: after storage, the worker that holds the files sends each
//! part to the owner's chat and records the outcome in the job record (`Job::delivery`) before it
//! goes on to the next part, then sends one summary. A worker that resumes a job after a crash
//! sends only the parts not recorded `Sent`.
//!
//! The worker does not know Telegram: it calls a [`PartSender`] (the bot crate implements it).
//! Everything here is plain data and pure decisions; the IO is around it.
//!
//! At-least-once window: a part is marked `Sending` before its upload starts and `Sent` right after
//! Telegram's answer. A crash between that answer and the store write (milliseconds) sends the
//! part again on resume; a crash during the upload itself does not duplicate it (Telegram has not
//! made the message yet).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::FailureKind;
use crate::job::Job;
use crate::job_files::DeliveredPart;

/// Where one part is in its delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PartDeliveryState {
    Pending,
    /// An upload started at `started_at`; a worker that finds this after a crash sends it again.
    Sending {
        started_at: DateTime<Utc>,
    },
    Sent {
        message_id: i64,
        #[serde(default)]
        file_id: Option<String>,
    },
    /// Given up: permanently (blocked, too large, no file) or after `attempts` transient errors.
    Failed {
        reason: String,
        attempts: u32,
        /// A transient cause: "Send again" may succeed.
        #[serde(default)]
        retryable: bool,
    },
}

/// One part's delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartDelivery {
    pub part_number: u32,
    pub state: PartDeliveryState,
}

/// How the job ends once delivery is done, when it is not `Completed` (the quota was reached, the
/// recording failed after something was recorded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureAfterDelivery {
    pub message: String,
    pub failure: FailureKind,
}

/// A job's delivery, kept in the job record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDelivery {
    pub parts: Vec<PartDelivery>,
    /// The summary went out, or could not for good (sent once, after the last part).
    #[serde(default)]
    pub summary_sent: bool,
    /// `None`: the job completes after delivery; else it fails with this.
    #[serde(default)]
    pub failure_after: Option<FailureAfterDelivery>,
    /// The owner pressed "Send again": failed parts are pending again and a worker picks it up.
    #[serde(default)]
    pub redelivery_requested: bool,
}

/// The chat message that shows a job's status, kept in the job record so a restarted bot keeps
/// editing the same message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusMessageRef {
    pub chat_id: i64,
    pub message_id: i64,
    /// The job's `finished_at` when the message was last edited to show the job finished: the
    /// final edit is made once per finish (a "Send again" finishes the job a second time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_edit_for: Option<DateTime<Utc>>,
}

impl StatusMessageRef {
    pub fn new(chat_id: i64, message_id: i64) -> Self {
        StatusMessageRef {
            chat_id,
            message_id,
            final_edit_for: None,
        }
    }

    /// Whether the message still has to show the job finished (`finished_at` of a finished job).
    pub fn needs_final_edit(&self, finished_at: Option<DateTime<Utc>>) -> bool {
        finished_at.is_some() && self.final_edit_for != finished_at
    }
}

/// A finished recording's files were deleted (retention, the disk guard): kept in the job record,
/// so "Send again" can say so instead of sending nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingDeletion {
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// What a "Send again" request found (the store's `request_redelivery`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedeliveryOutcome {
    /// The failed parts are pending again and the job is back in its queue.
    Requested,
    /// A request is already waiting or being served: nothing more is done.
    AlreadyPending,
    /// No failed part (or no delivery at all): nothing to send again.
    NothingToSendAgain,
    /// The files were deleted (retention, the disk guard).
    FilesDeleted,
    /// The job is still running: its parts have not been sent yet.
    NotFinished,
}

/// Where a job's delivery is, as the status message tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliverySummary {
    Sending,
    AllSent,
    SomeFailed,
}

impl JobDelivery {
    /// Every part pending.
    pub fn pending(
        part_numbers: impl IntoIterator<Item = u32>,
        failure_after: Option<FailureAfterDelivery>,
    ) -> Self {
        JobDelivery {
            parts: part_numbers
                .into_iter()
                .map(|part_number| PartDelivery {
                    part_number,
                    state: PartDeliveryState::Pending,
                })
                .collect(),
            summary_sent: false,
            failure_after,
            redelivery_requested: false,
        }
    }

    /// The next part to send: the first one not `Sent` or `Failed` (a `Sending` one was
    /// interrupted and goes again).
    pub fn next_part_to_send(&self) -> Option<u32> {
        self.parts
            .iter()
            .find(|part| {
                matches!(
                    part.state,
                    PartDeliveryState::Pending | PartDeliveryState::Sending { .. }
                )
            })
            .map(|part| part.part_number)
    }

    pub fn part(&self, part_number: u32) -> Option<&PartDelivery> {
        self.parts
            .iter()
            .find(|part| part.part_number == part_number)
    }

    /// Sets one part's state (a part not listed is added).
    pub fn set_part_state(&mut self, part_number: u32, state: PartDeliveryState) {
        match self
            .parts
            .iter_mut()
            .find(|part| part.part_number == part_number)
        {
            Some(part) => part.state = state,
            None => self.parts.push(PartDelivery { part_number, state }),
        }
    }

    /// Every part is `Sent` or `Failed`.
    pub fn all_parts_settled(&self) -> bool {
        self.next_part_to_send().is_none()
    }

    pub fn sent_count(&self) -> usize {
        self.parts
            .iter()
            .filter(|part| matches!(part.state, PartDeliveryState::Sent { .. }))
            .count()
    }

    pub fn failed_parts(&self) -> impl Iterator<Item = (&PartDelivery, &str)> {
        self.parts.iter().filter_map(|part| match &part.state {
            PartDeliveryState::Failed { reason, .. } => Some((part, reason.as_str())),
            _ => None,
        })
    }

    /// "Send again": failed parts go back to pending (sent ones are never sent twice), the
    /// summary goes out again after them. False when there is nothing to send again.
    pub fn request_redelivery(&mut self) -> bool {
        let mut any = false;
        for part in &mut self.parts {
            if matches!(part.state, PartDeliveryState::Failed { .. }) {
                part.state = PartDeliveryState::Pending;
                any = true;
            }
        }
        if any {
            self.summary_sent = false;
            self.redelivery_requested = true;
        }
        any
    }

    /// Where the delivery is: sending until every part is settled and the summary went out.
    pub fn summary(&self) -> DeliverySummary {
        if !self.all_parts_settled() || !self.summary_sent {
            DeliverySummary::Sending
        } else if self.failed_parts().next().is_some() {
            DeliverySummary::SomeFailed
        } else {
            DeliverySummary::AllSent
        }
    }
}

/// What Telegram answered for a sent part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentPart {
    pub message_id: i64,
    pub file_id: Option<String>,
}

/// Why a part (or the summary) was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct PartSendError {
    /// Network trouble, 5xx, 429: try again later. Else permanent (blocked, too large, no file).
    pub retryable: bool,
    /// What Telegram asked us to wait (429).
    pub retry_after: Option<Duration>,
    /// Said in the log and kept in the record; never holds a secret.
    pub reason: String,
}

impl PartSendError {
    pub fn permanent(reason: impl Into<String>) -> Self {
        PartSendError {
            retryable: false,
            retry_after: None,
            reason: reason.into(),
        }
    }

    pub fn transient(reason: impl Into<String>, retry_after: Option<Duration>) -> Self {
        PartSendError {
            retryable: true,
            retry_after,
            reason: reason.into(),
        }
    }
}

/// A future a [`PartSender`] returns.
pub type SendFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a clip (`/clip`) was not made; the requester is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClipProblem {
    /// A clip of this job is being made already (one at a time per job).
    Busy,
    /// Nothing is recorded yet.
    NothingYet,
    Failed {
        reason: String,
    },
}

/// Sends a finished part to the job's owner (one attempt: the worker retries).
pub trait PartSender: Send + Sync {
    /// A clip of a live job (`/clip`), to `chat_id`, with a caption naming the last `last`.
    /// The default sends it as the job's part.
    fn send_clip<'a>(
        &'a self,
        job: &'a Job,
        clip: &'a DeliveredPart,
        chat_id: i64,
        last: Duration,
    ) -> SendFuture<'a, Result<SentPart, PartSendError>> {
        let _ = (chat_id, last);
        self.send_part(job, clip)
    }

    /// Tells `chat_id` why its clip was not made. The default says nothing.
    fn send_clip_problem<'a>(
        &'a self,
        job: &'a Job,
        chat_id: i64,
        problem: &'a ClipProblem,
    ) -> SendFuture<'a, Result<(), PartSendError>> {
        let _ = (job, chat_id, problem);
        Box::pin(async { Ok(()) })
    }

    fn send_part<'a>(
        &'a self,
        job: &'a Job,
        part: &'a DeliveredPart,
    ) -> SendFuture<'a, Result<SentPart, PartSendError>>;

    /// The summary after the last part; `job.delivery` says what was sent and what failed.
    fn send_summary<'a>(
        &'a self,
        job: &'a Job,
        parts: &'a [DeliveredPart],
    ) -> SendFuture<'a, Result<(), PartSendError>>;
}

/// What the disk guard tells the admins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminNotice {
    /// Usage reached 80 % of `MAX_DISK_USAGE_GB`.
    DiskFilling { used_bytes: u64, limit_bytes: u64 },
    /// Usage reached 95 %: the oldest finished recordings were deleted (none when there was
    /// nothing finished to delete).
    DiskFreed {
        used_bytes_before: u64,
        used_bytes_after: u64,
        limit_bytes: u64,
        deleted_jobs: Vec<crate::JobId>,
    },
}

/// Tells the admins (the bot implements it: a message to each of `TELEGRAM_ADMIN_IDS`).
pub trait AdminNotifier: Send + Sync {
    fn notify_admins<'a>(
        &'a self,
        notice: &'a AdminNotice,
    ) -> SendFuture<'a, Result<(), PartSendError>>;
}

/// How many times a transient error is tried before the part is recorded failed.
pub const MAXIMUM_SEND_ATTEMPTS: u32 = 5;
/// The longest wait between two attempts (a longer `retry_after` is honoured up to this).
pub const LONGEST_SEND_BACKOFF: Duration = Duration::from_secs(120);

/// The wait before attempt `attempt + 1` after `attempt` failed transiently: Telegram's
/// `retry_after` if it gave one, else 1 s doubling; `None` once the attempts are used up.
pub fn send_retry_delay(attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
    if attempt >= MAXIMUM_SEND_ATTEMPTS {
        return None;
    }
    let backoff =
        crate::backoff::ExponentialBackoff::new(Duration::from_secs(1), Duration::from_secs(64))
            .delay_after_failed_attempt(attempt);
    Some(retry_after.unwrap_or(backoff).min(LONGEST_SEND_BACKOFF))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_go_in_order_and_an_interrupted_one_goes_again() {
        let mut delivery = JobDelivery::pending([1, 2, 3], None);
        assert_eq!(delivery.next_part_to_send(), Some(1));
        delivery.set_part_state(
            1,
            PartDeliveryState::Sent {
                message_id: 10,
                file_id: None,
            },
        );
        delivery.set_part_state(
            2,
            PartDeliveryState::Sending {
                started_at: Utc::now(),
            },
        );
        assert_eq!(delivery.next_part_to_send(), Some(2));
        delivery.set_part_state(
            2,
            PartDeliveryState::Failed {
                reason: "blocked".into(),
                attempts: 1,
                retryable: false,
            },
        );
        assert_eq!(delivery.next_part_to_send(), Some(3));
        delivery.set_part_state(
            3,
            PartDeliveryState::Sent {
                message_id: 11,
                file_id: None,
            },
        );
        assert!(delivery.all_parts_settled());
        assert_eq!(delivery.sent_count(), 2);
        assert_eq!(delivery.summary(), DeliverySummary::Sending);
        delivery.summary_sent = true;
        assert_eq!(delivery.summary(), DeliverySummary::SomeFailed);
        assert!(delivery.request_redelivery());
        assert_eq!(delivery.next_part_to_send(), Some(2));
        assert!(!delivery.summary_sent);
        assert!(!JobDelivery::pending([1], None).request_redelivery());
    }

    #[test]
    fn retries_back_off_honour_retry_after_and_stop() {
        assert_eq!(send_retry_delay(1, None), Some(Duration::from_secs(1)));
        assert_eq!(send_retry_delay(3, None), Some(Duration::from_secs(4)));
        assert_eq!(
            send_retry_delay(1, Some(Duration::from_secs(7))),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            send_retry_delay(1, Some(Duration::from_secs(7200))),
            Some(LONGEST_SEND_BACKOFF)
        );
        assert_eq!(send_retry_delay(MAXIMUM_SEND_ATTEMPTS, None), None);
    }

    #[test]
    fn records_round_trip_and_old_records_parse() {
        let mut delivery = JobDelivery::pending([1, 2], None);
        delivery.set_part_state(
            1,
            PartDeliveryState::Sent {
                message_id: 5,
                file_id: Some("F".into()),
            },
        );
        let text = serde_json::to_string(&delivery).expect("serialize");
        assert_eq!(
            serde_json::from_str::<JobDelivery>(&text).expect("parse"),
            delivery
        );
        let old: JobDelivery = serde_json::from_str(
            r#"{"parts":[{"part_number":1,"state":{"state":"sent","message_id":3}}]}"#,
        )
        .expect("old record");
        assert_eq!(old.sent_count(), 1);
    }
}
