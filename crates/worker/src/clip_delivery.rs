//! Clips of live jobs (`/clip`, the Clip button): the bot publishes `JobEvent::ClipRequested`;
//! the worker that holds the job (the only one with its files) makes the clip with
//! `recorder::clip::clip_last` from the job's working directory while the recording goes on, and
//! sends it to the asking chat with the bot's `PartSender` (retrying what is retryable, as part
//! delivery does). One clip at a time per job: a second request meanwhile is answered "busy".
//! The clip file is named `clip-…` in the job's directory and removed once sent.
//!
//! A request is an event, not a record: a worker that is down when it is published never sees
//! it, and the user asks again (the bot answered at once that the clip is on its way). This
//! keeps the store free of a second queue for something that is only useful right now.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streambot_core::delivery::{ClipProblem, PartSendError, send_retry_delay};
use streambot_core::job_files::DeliveredPart;
use streambot_core::{DesiredJobState, Job, JobEvent, JobId, MAXIMUM_CLIP_DURATION};
use streambot_recorder::clip::ClipError;
use streambot_store::backend::JobBackend;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::part_delivery::PartSenderHandle;
use crate::worker::{RecordingEngine, WorkerConfig, job_directory};

/// The jobs this worker holds (their control senders, by id).
pub(crate) type HeldJobs = Arc<Mutex<HashMap<JobId, watch::Sender<DesiredJobState>>>>;

/// Answers clip requests for the jobs this worker holds until `shutdown`.
pub(crate) async fn serve_clip_requests<B: JobBackend, E: RecordingEngine>(
    backend: B,
    engine: Arc<E>,
    config: Arc<WorkerConfig>,
    held: HeldJobs,
    mut events: broadcast::Receiver<JobEvent>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) {
    let Some(sender) = config.part_sender.clone() else {
        return;
    };
    let clipping: Arc<Mutex<HashSet<JobId>>> = Arc::default();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = events.recv() => event,
        };
        let (job_id, last, chat_id) = match event {
            Ok(JobEvent::ClipRequested {
                job_id,
                last,
                chat_id,
                ..
            }) => (job_id, last, chat_id),
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let holds_it = held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains_key(&job_id);
        if !holds_it {
            continue;
        }
        let Ok(Some(job)) = backend.get_job(job_id).await else {
            continue;
        };
        let already = !clipping
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(job_id);
        if already {
            tell_problem(&sender, &job, chat_id, ClipProblem::Busy).await;
            continue;
        }
        let engine = engine.clone();
        let config = config.clone();
        let sender = sender.clone();
        let clipping = clipping.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = make_and_send_clip(engine.as_ref(), &config, &sender, &job, last, chat_id) => {}
            }
            clipping
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .remove(&job.id);
        });
    }
}

async fn tell_problem(sender: &PartSenderHandle, job: &Job, chat_id: i64, problem: ClipProblem) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match sender.0.send_clip_problem(job, chat_id, &problem).await {
            Ok(()) => return,
            Err(error) => {
                match send_retry_delay(attempt, error.retry_after).filter(|_| error.retryable) {
                    Some(delay) => tokio::time::sleep(delay).await,
                    None => {
                        tracing::warn!(job_id = %job.id, %error, "could not say why a clip was not made");
                        return;
                    }
                }
            }
        }
    }
}

async fn make_and_send_clip<E: RecordingEngine>(
    engine: &E,
    config: &WorkerConfig,
    sender: &PartSenderHandle,
    job: &Job,
    last: Duration,
    chat_id: i64,
) {
    let last = last.clamp(Duration::from_secs(1), MAXIMUM_CLIP_DURATION);
    let directory = job_directory(&config.recordings_directory, job.id);
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    let output = directory.join(format!("clip-{}s-{stamp}.mp4", last.as_secs()));
    tracing::info!(job_id = %job.id, seconds = last.as_secs(), "making a clip");
    let clip = match engine.clip(&directory, last, &output).await {
        Ok(clip) => clip,
        Err(error) => {
            tracing::warn!(job_id = %job.id, %error, "clip failed");
            let problem = match error {
                ClipError::NothingRecorded { .. } | ClipError::NoLedger { .. } => {
                    ClipProblem::NothingYet
                }
                other => ClipProblem::Failed {
                    reason: other.user_message(),
                },
            };
            remove_clip_file(&output);
            tell_problem(sender, job, chat_id, problem).await;
            return;
        }
    };
    let part = DeliveredPart {
        part_number: 1,
        part_count: 1,
        local_path: Some(clip.path.clone()),
        size_bytes: clip.size_bytes,
        duration_seconds: clip.duration_seconds,
        width: None,
        height: None,
        has_audio: clip.has_audio,
        thumbnail: None,
        link: None,
        telegram_file_id: None,
        storage_error: None,
        damaged_decode_errors: None,
        joined_part_numbers: Vec::new(),
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match sender.0.send_clip(job, &part, chat_id, last).await {
            Ok(_) => {
                tracing::info!(job_id = %job.id, bytes = clip.size_bytes, "clip sent");
                break;
            }
            Err(PartSendError {
                retryable: true,
                retry_after,
                reason,
            }) => match send_retry_delay(attempt, retry_after) {
                Some(delay) => {
                    tracing::info!(job_id = %job.id, %reason, ?delay, "sending a clip failed; trying again");
                    tokio::time::sleep(delay).await;
                }
                None => {
                    tell_problem(sender, job, chat_id, ClipProblem::Failed { reason }).await;
                    break;
                }
            },
            Err(error) => {
                tracing::warn!(job_id = %job.id, %error, "a clip could not be sent");
                tell_problem(
                    sender,
                    job,
                    chat_id,
                    ClipProblem::Failed {
                        reason: error.reason,
                    },
                )
                .await;
                break;
            }
        }
    }
    remove_clip_file(&clip.path);
}

fn remove_clip_file(path: &Path) {
    if let Err(error) = std::fs::remove_file(path)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), %error, "could not remove a sent clip");
    }
}
