//! Sending a finished job's parts to its owner, as a durable step of the job (after storage, in
//! `Uploading`): each part is marked `Sending` in the job record, sent through the
//! [`PartSender`] (the bot's implementation; the worker does not know Telegram), and its outcome
//! (`Sent` with the message and file ids, or `Failed`) recorded before the next part starts. Then
//! one summary, flagged in the record. Every write is fenced by the lease, which is renewed
//! throughout. A worker that resumes the job after a crash sends only the parts not recorded
//! `Sent` (a part left `Sending` goes again: the at-least-once window is the time between
//! Telegram's answer and the store write).

use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use streambot_core::delivery::{
    FailureAfterDelivery, JobDelivery, PartDeliveryState, PartSendError, PartSender, SendFuture,
    send_retry_delay,
};
use streambot_core::job::Job;
use streambot_core::job_files::{
    DELIVERED_PARTS_FILE_NAME, DeliveredPart, DeliveredParts, FINALIZED_FILE_NAME, FinalizedRecord,
};
use streambot_store::JobsError;
use streambot_store::backend::{JobBackend, Lease};
use tokio_util::sync::CancellationToken;

/// The bot's sender, as the worker holds it.
#[derive(Clone)]
pub struct PartSenderHandle(pub Arc<dyn PartSender>);

impl std::fmt::Debug for PartSenderHandle {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("PartSender")
    }
}

/// The finished parts of a job: where storage put them (`stored.json`), or, without storage,
/// what finalize wrote (`finalized.json`).
pub fn finished_parts(directory: &Path) -> Vec<DeliveredPart> {
    if let Some(delivered) = std::fs::read(directory.join(DELIVERED_PARTS_FILE_NAME))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<DeliveredParts>(&bytes).ok())
    {
        return delivered.parts;
    }
    let Ok(bytes) = std::fs::read(directory.join(FINALIZED_FILE_NAME)) else {
        return Vec::new();
    };
    let Ok(report) = serde_json::from_slice::<FinalizedRecord>(&bytes) else {
        return Vec::new();
    };
    let part_count = report.files.len() as u32;
    report
        .files
        .iter()
        .enumerate()
        .map(|(index, file)| DeliveredPart::from_finalized_file(file, index as u32 + 1, part_count))
        .collect()
}

/// How sending ended.
#[derive(Debug, PartialEq, Eq)]
pub enum SendingOutcome {
    /// Every part is sent or failed, and the summary went out.
    Done(JobDelivery),
    /// Shutdown: the job goes back to its queue; the next worker sends the rest.
    Interrupted,
}

/// The delivery record the job starts (or resumes) with.
pub fn initial_delivery(
    job: &Job,
    parts: &[DeliveredPart],
    failure_after: Option<FailureAfterDelivery>,
) -> JobDelivery {
    match &job.delivery {
        Some(existing) => existing.clone(),
        None => JobDelivery::pending(parts.iter().map(|part| part.part_number), failure_after),
    }
}

/// Writes the delivery record (fenced by the lease). A store that is briefly unreachable (Redis
/// restarting, SQLite busy) is waited for with the send backoff (1, 2, 4, 8 s: 15 s in all), since giving
/// up here leaves the job to the next worker, which sends again every part not recorded `Sent`.
/// `shutdown` cuts the waiting short only before a send (`None` after Telegram answered: that
/// answer must reach the store, or the user gets the file twice).
async fn record<B: JobBackend>(
    backend: &B,
    lease: &Lease,
    job: &mut Job,
    delivery: &JobDelivery,
    shutdown: Option<&CancellationToken>,
) -> Result<(), JobsError> {
    let written = retry_store_write(job.id, "the delivery", shutdown, || {
        backend.record_delivery(lease, delivery.clone())
    })
    .await?;
    job.delivery = written.delivery;
    Ok(())
}

/// A store write tried again while the store is unreachable (`is_retryable`: Redis restarting,
/// SQLite busy), with the send backoff (1, 2, 4, 8 s); `shutdown`, when given, ends the waiting.
/// The one retry of the worker's writes that must not be lost (the finish's state changes, the
/// delivery record).
pub(crate) async fn retry_store_write<T, F>(
    job_id: streambot_core::JobId,
    what: &str,
    shutdown: Option<&CancellationToken>,
    mut write: impl FnMut() -> F,
) -> Result<T, JobsError>
where
    F: std::future::Future<Output = Result<T, JobsError>>,
{
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        match write().await {
            Ok(written) => return Ok(written),
            Err(error) if error.is_retryable() => {
                let Some(wait) = send_retry_delay(attempt, None) else {
                    return Err(error);
                };
                tracing::warn!(%job_id, %error, ?wait, what, "could not write to the store; trying again");
                match shutdown {
                    Some(shutdown) => tokio::select! {
                        _ = shutdown.cancelled() => return Err(error),
                        _ = tokio::time::sleep(wait) => {}
                    },
                    None => tokio::time::sleep(wait).await,
                }
            }
            Err(error) => return Err(error),
        }
    }
}

/// One send with the transient-error retries; `None` when shutdown cut it short.
async fn send_with_retries<'a, T>(
    shutdown: &CancellationToken,
    job_id: streambot_core::JobId,
    what: &str,
    send: impl Fn() -> SendFuture<'a, Result<T, PartSendError>>,
) -> Option<(Result<T, PartSendError>, u32)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = tokio::select! {
            _ = shutdown.cancelled() => return None,
            result = send() => result,
        };
        match result {
            Err(error) if error.retryable => match send_retry_delay(attempt, error.retry_after) {
                Some(delay) => {
                    tracing::info!(%job_id, what, attempt, %error, ?delay, "sending failed; trying again");
                    tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
                None => return Some((Err(error), attempt)),
            },
            other => return Some((other, attempt)),
        }
    }
}

/// Sends every part not yet sent, then the summary, recording each outcome (fenced) before the
/// next step. A lost lease ends it with the error (another worker owns the job).
pub async fn send_parts<B: JobBackend>(
    backend: &B,
    lease: &Lease,
    sender: &dyn PartSender,
    job: &Job,
    parts: &[DeliveredPart],
    mut delivery: JobDelivery,
    shutdown: &CancellationToken,
) -> Result<SendingOutcome, JobsError> {
    let mut job = job.clone();
    // A "Send again" stays pending until the delivery is done: a tap meanwhile is told it is on
    // its way (the store answers `AlreadyPending` while the flag is set).
    record(backend, lease, &mut job, &delivery, Some(shutdown)).await?;
    while let Some(part_number) = delivery.next_part_to_send() {
        if shutdown.is_cancelled() {
            return Ok(SendingOutcome::Interrupted);
        }
        let Some(part) = parts.iter().find(|part| part.part_number == part_number) else {
            delivery.set_part_state(
                part_number,
                PartDeliveryState::Failed {
                    reason: "the finished file is gone".to_string(),
                    attempts: 0,
                    retryable: false,
                },
            );
            record(backend, lease, &mut job, &delivery, Some(shutdown)).await?;
            continue;
        };
        delivery.set_part_state(
            part_number,
            PartDeliveryState::Sending {
                started_at: Utc::now(),
            },
        );
        record(backend, lease, &mut job, &delivery, Some(shutdown)).await?;
        let Some((result, attempts)) =
            send_with_retries(shutdown, job.id, "part", || sender.send_part(&job, part)).await
        else {
            return Ok(SendingOutcome::Interrupted);
        };
        let state = match result {
            Ok(sent) => {
                tracing::info!(job_id = %job.id, part = part_number, message_id = sent.message_id, "part sent");
                PartDeliveryState::Sent {
                    message_id: sent.message_id,
                    file_id: sent.file_id,
                }
            }
            Err(error) => {
                tracing::warn!(job_id = %job.id, part = part_number, attempts, %error, "part not sent");
                PartDeliveryState::Failed {
                    reason: error.reason,
                    attempts,
                    retryable: error.retryable,
                }
            }
        };
        delivery.set_part_state(part_number, state);
        record(backend, lease, &mut job, &delivery, None).await?;
    }
    if !delivery.summary_sent {
        let Some((result, _)) = send_with_retries(shutdown, job.id, "summary", || {
            sender.send_summary(&job, parts)
        })
        .await
        else {
            return Ok(SendingOutcome::Interrupted);
        };
        if let Err(error) = result {
            tracing::warn!(job_id = %job.id, %error, "the summary was not sent");
        }
        delivery.summary_sent = true;
        delivery.redelivery_requested = false;
        record(backend, lease, &mut job, &delivery, None).await?;
    } else if delivery.redelivery_requested {
        delivery.redelivery_requested = false;
        record(backend, lease, &mut job, &delivery, Some(shutdown)).await?;
    }
    Ok(SendingOutcome::Done(delivery))
}
