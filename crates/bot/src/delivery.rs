//! Sending a finished job's files to its owner: each part under a readable name
//! (`<host>-<yyyy-mm-dd>-<hhmm>-part1.mp4`) with a caption naming the stream, the date, the
//! duration, part i/n and gaps; then one summary. The status message says "done" only after
//! this, and a failed send says so with a "Send again" button.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use streambot_core::job::{Job, JobState};
use streambot_core::job_directory;
use streambot_core::job_files::{
    DELIVERED_PARTS_FILE_NAME, DeliveredPart, DeliveredParts, FINALIZED_FILE_NAME, FinalizedRecord,
};
use streambot_store::JobBackend;

use crate::keyboards::send_again;
use crate::messages::{DeliveryProgress, part_file_name};
use crate::runtime::BotContext;
use crate::telegram_api::{OutgoingFile, OutgoingFileKind, TelegramSendError};

/// The finished parts of a job: where the worker stored them (`stored.json`), or, before storage
/// ran, what finalize wrote (`finalized.json`).
fn finished_parts(directory: &Path) -> Vec<DeliveredPart> {
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

fn kind_of(path: &Path) -> OutgoingFileKind {
    match path.extension().and_then(|extension| extension.to_str()) {
        Some("mp4") => OutgoingFileKind::Video,
        Some("m4a") | Some("mp3") | Some("aac") => OutgoingFileKind::Audio,
        _ => OutgoingFileKind::Document,
    }
}

/// What happened to a job's files.
#[derive(Debug, Default)]
pub(crate) struct DeliveryOutcome {
    pub sent: usize,
    pub kept_on_server: Vec<String>,
    pub failed: Vec<String>,
    pub found_any: bool,
}

/// Sends every finished part.
pub(crate) async fn deliver_files<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    job: &Job,
) -> DeliveryOutcome {
    let words = context.words_for(job.owner.user_id).await;
    let directory = job_directory(&context.settings.recordings_directory, job.id);
    let parts = finished_parts(&directory);
    let limit = context.settings.upload_limit_bytes();
    let chat_id = job.owner.chat_id;
    let mut outcome = DeliveryOutcome {
        found_any: !parts.is_empty(),
        ..DeliveryOutcome::default()
    };
    for part in &parts {
        let duration_seconds = if part.duration_seconds.is_finite() {
            part.duration_seconds.clamp(0.0, 1e9)
        } else {
            0.0
        };
        let caption = words.part_caption(
            job,
            part.part_number as usize,
            part.part_count as usize,
            Duration::from_secs_f64(duration_seconds),
        );
        if let Some(link) = &part.link {
            context
                .reply(chat_id, &words.part_link(&caption, link))
                .await;
            outcome.sent += 1;
            continue;
        }
        let Some(path) = part.local_path.as_deref().filter(|path| path.exists()) else {
            outcome
                .kept_on_server
                .push(format!("part {}", part.part_number));
            continue;
        };
        let extension = path
            .extension()
            .map(|extension| extension.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = part_file_name(job, part.part_number as usize, &extension);
        if part.size_bytes > limit {
            outcome.kept_on_server.push(name);
            continue;
        }
        let outgoing = OutgoingFile {
            path,
            file_name: name.clone(),
            kind: kind_of(path),
            caption,
            thumbnail: part
                .thumbnail
                .as_deref()
                .filter(|thumbnail| thumbnail.exists()),
            width: part.width,
            height: part.height,
            duration_seconds: Some(duration_seconds.round() as u32),
        };
        match context.api.send_file(chat_id, &outgoing).await {
            Ok(()) => outcome.sent += 1,
            Err(TelegramSendError::FileTooLarge) => outcome.kept_on_server.push(name),
            Err(TelegramSendError::ChatBlocked) => return outcome,
            Err(error) => {
                tracing::warn!(job_id = %job.id, %error, "could not send a finished file");
                outcome.failed.push(name);
            }
        }
    }
    outcome
}

/// Delivers a finished (or failed) job, then says how it went and updates the status message.
pub(crate) async fn deliver_recording<B: JobBackend>(context: &Arc<BotContext<B>>, job: &Job) {
    context.set_delivery(job.id, DeliveryProgress::Sending);
    let outcome = deliver_files(context, job).await;
    let words = context.words_for(job.owner.user_id).await;
    let chat_id = job.owner.chat_id;
    let delivered = if outcome.failed.is_empty() {
        DeliveryProgress::Sent
    } else {
        DeliveryProgress::Failed
    };
    context.set_delivery(job.id, delivered);
    if job.state == JobState::Completed || outcome.found_any {
        context
            .reply(
                chat_id,
                &words.final_summary(job, outcome.sent, &outcome.kept_on_server),
            )
            .await;
    }
    for name in &outcome.failed {
        if let Err(error) = context
            .api
            .send_text(
                chat_id,
                &words.delivery_failed(name),
                Some(send_again(&words, job.id)),
            )
            .await
        {
            tracing::warn!(%error, "could not say a delivery failed");
        }
    }
    context.refresh_status_message(job, true).await;
}
