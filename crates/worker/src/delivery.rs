//! The Uploading step: finished files go to storage (moved into
//! `LOCAL_STORAGE_PATH/user_<id>/<job_id>/part-NNNN.<ext>`, then uploaded to Google Drive or a
//! Telegram channel per `STORAGE_BACKEND`), and `stored.json` in the job's working directory says
//! where each part ended up, for the bot to send and the dashboard to list. A part whose upload
//! failed stays on local disk and its entry says so; nothing is deleted before an upload is
//! confirmed (the storage crate's rule).

use std::path::Path;

use streambot_core::job::Job;
pub use streambot_core::job_files::{DELIVERED_PARTS_FILE_NAME, DeliveredPart, DeliveredParts};
use streambot_recorder::finalize::FinalizeReport;
use streambot_storage::{PartMetadata, RemoteLocation, Storage, Store};

fn write_delivered_parts(job_directory: &Path, delivered: &DeliveredParts) {
    let path = job_directory.join(DELIVERED_PARTS_FILE_NAME);
    if let Err(error) = streambot_core::local_files::write_json_atomically(&path, delivered) {
        tracing::warn!(%error, "could not write where the parts were stored");
    }
}

/// Stores every finished file of a job and writes `stored.json`.
pub async fn store_finished_files(
    storage: &Storage,
    job: &Job,
    job_directory: &Path,
    finalized: &FinalizeReport,
) -> DeliveredParts {
    let part_count = finalized.files.len() as u32;
    let mut delivered = DeliveredParts {
        backend: storage.backend_name().to_string(),
        parts: Vec::new(),
    };
    for (index, file) in finalized.files.iter().enumerate() {
        let part_number = index as u32 + 1;
        let metadata = PartMetadata {
            job_id: job.id,
            user_id: job.owner.user_id,
            part_number,
            part_count,
            duration_seconds: file.duration_seconds,
            size_bytes: file.size_bytes,
            thumbnail: file.thumbnail.clone(),
            width: file.width,
            height: file.height,
        };
        let mut part =
            DeliveredPart::from_finalized_file(&file.finalized_file(), part_number, part_count);
        // The file may have been moved into local storage before an upload failed, or before
        // the worker was lost (the next one stores the same files again).
        let stored_path = storage.local.job_directory(job.owner.user_id, job.id).join(
            streambot_storage::layout::part_file_name(
                part_number,
                file.path
                    .extension()
                    .and_then(|extension| extension.to_str()),
            ),
        );
        let moved_before = !file.path.exists() && stored_path.exists();
        let source = if moved_before {
            &stored_path
        } else {
            &file.path
        };
        match storage.put_part(source, &metadata).await {
            Ok(stored) => {
                part.local_path = stored.local_path.clone();
                if let Some(remote) = &stored.remote {
                    part.link = remote.location.link().map(str::to_string);
                    if let RemoteLocation::TelegramChannel { file_id, .. } = &remote.location {
                        part.telegram_file_id = file_id.clone();
                    }
                }
            }
            Err(error) => {
                tracing::warn!(job_id = %job.id, part = part_number, %error, "storing a finished part failed; it stays where it is");
                if !file.path.exists() && stored_path.exists() {
                    part.local_path = Some(stored_path);
                }
                part.storage_error = Some(error.user_message());
            }
        }
        delivered.parts.push(part);
    }
    write_delivered_parts(job_directory, &delivered);
    delivered
}
