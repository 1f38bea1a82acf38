//! Retention: parts older than `FILE_RETENTION_HOURS` are deleted (local copies always, remote
//! copies when so configured); a job in progress is never touched. `select_expired` is the pure
//! choice; `retention_sweep` and `Storage::retention_sweep` do the deleting, log each deletion
//! and return it so the caller can record it on the job.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use streambot_core::JobId;

use crate::local::{
    job_directories_of_user, part_files_in, read_remote_copies, remove_directory_if_empty,
    run_blocking, user_ids_under,
};
use crate::metadata::RemoteLocation;
use crate::store::Storage;

/// Which copy of a part a candidate or a deletion is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredCopy {
    Local { path: PathBuf },
    Remote { location: RemoteLocation },
}

/// A copy of a part that retention may delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionCandidate {
    pub owner_user_id: i64,
    pub job_id: JobId,
    pub file_name: String,
    pub size_bytes: u64,
    /// The local file's modification time, or when the remote copy was uploaded.
    pub stored_at: SystemTime,
    pub copy: StoredCopy,
}

/// A copy that was deleted, for the log and the job's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub owner_user_id: i64,
    pub job_id: JobId,
    pub file_name: String,
    pub size_bytes: u64,
    pub age: Duration,
    pub copy: StoredCopy,
}

/// The candidates older than `retention` at `now` whose job is not in progress. A time in the
/// future (a clock that moved) counts as age zero.
pub fn select_expired<'candidates>(
    candidates: &'candidates [RetentionCandidate],
    retention: Duration,
    now: SystemTime,
    in_progress_job_ids: &HashSet<JobId>,
) -> Vec<&'candidates RetentionCandidate> {
    candidates
        .iter()
        .filter(|candidate| !in_progress_job_ids.contains(&candidate.job_id))
        .filter(|candidate| age_at(candidate.stored_at, now) > retention)
        .collect()
}

fn age_at(stored_at: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(stored_at).unwrap_or(Duration::ZERO)
}

/// Every local part file under `root` and every recorded remote copy.
pub fn scan_candidates(root: &Path) -> Vec<RetentionCandidate> {
    let mut candidates = Vec::new();
    let user_ids = user_ids_under(root).unwrap_or_else(|error| {
        tracing::warn!(error = %error, "retention could not list the storage root");
        Vec::new()
    });
    for user_id in user_ids {
        let job_directories = job_directories_of_user(root, user_id).unwrap_or_default();
        for (job_id, job_directory) in job_directories {
            for (file_name, size_bytes, modified) in
                part_files_in(&job_directory).unwrap_or_default()
            {
                candidates.push(RetentionCandidate {
                    owner_user_id: user_id,
                    job_id,
                    copy: StoredCopy::Local {
                        path: job_directory.join(&file_name),
                    },
                    file_name,
                    size_bytes,
                    stored_at: modified,
                });
            }
            for record in read_remote_copies(&job_directory).unwrap_or_default() {
                candidates.push(RetentionCandidate {
                    owner_user_id: user_id,
                    job_id,
                    file_name: record.file_name,
                    size_bytes: record.size_bytes,
                    stored_at: SystemTime::from(record.uploaded_at),
                    copy: StoredCopy::Remote {
                        location: record.location,
                    },
                });
            }
        }
    }
    candidates
}

/// Deletes the local part files under `root` older than `retention` (never those of a job in
/// progress) and the job directories that end up empty. Remote copies are left alone (see
/// `Storage::retention_sweep`). Returns what was deleted; failures are logged and skipped.
pub fn retention_sweep(
    root: &Path,
    retention: Duration,
    now: SystemTime,
    in_progress_job_ids: &HashSet<JobId>,
) -> Vec<Deletion> {
    let candidates: Vec<RetentionCandidate> = scan_candidates(root)
        .into_iter()
        .filter(|candidate| matches!(candidate.copy, StoredCopy::Local { .. }))
        .collect();
    let mut deletions = Vec::new();
    let mut touched_job_directories = Vec::new();
    for candidate in select_expired(&candidates, retention, now, in_progress_job_ids) {
        let StoredCopy::Local { path } = &candidate.copy else {
            continue;
        };
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => {
                tracing::warn!(path = %path.display(), error = %error, "retention could not delete a part");
                continue;
            }
        }
        let deletion = deletion_of(candidate, now);
        log_deletion(&deletion);
        if let Some(job_directory) = path.parent() {
            touched_job_directories.push(job_directory.to_path_buf());
        }
        deletions.push(deletion);
    }
    touched_job_directories.dedup();
    for job_directory in touched_job_directories {
        if let Err(error) = remove_directory_if_empty(&job_directory) {
            tracing::warn!(error = %error, "retention could not remove an empty job directory");
        }
    }
    deletions
}

fn deletion_of(candidate: &RetentionCandidate, now: SystemTime) -> Deletion {
    Deletion {
        owner_user_id: candidate.owner_user_id,
        job_id: candidate.job_id,
        file_name: candidate.file_name.clone(),
        size_bytes: candidate.size_bytes,
        age: age_at(candidate.stored_at, now),
        copy: candidate.copy.clone(),
    }
}

fn log_deletion(deletion: &Deletion) {
    let copy = match &deletion.copy {
        StoredCopy::Local { path } => path.display().to_string(),
        StoredCopy::Remote { location } => format!("{location:?}"),
    };
    tracing::info!(
        owner_user_id = deletion.owner_user_id,
        job_id = %deletion.job_id,
        file_name = %deletion.file_name,
        size_bytes = deletion.size_bytes,
        age_hours = deletion.age.as_secs() / 3600,
        copy,
        "retention deleted a copy"
    );
}

impl Storage {
    /// The local sweep, then (when `delete_remote_copies`) the remote copies older than
    /// `retention`, each deleted through the backend and then forgotten from `remote.jsonl`.
    pub async fn retention_sweep(
        &self,
        retention: Duration,
        now: SystemTime,
        in_progress_job_ids: &HashSet<JobId>,
        delete_remote_copies: bool,
    ) -> Vec<Deletion> {
        let root = self.local.root().to_path_buf();
        let in_progress = in_progress_job_ids.clone();
        let mut deletions =
            run_blocking(move || Ok(retention_sweep(&root, retention, now, &in_progress)))
                .await
                .unwrap_or_default();
        if !delete_remote_copies {
            return deletions;
        }
        let root = self.local.root().to_path_buf();
        let candidates: Vec<RetentionCandidate> = run_blocking(move || Ok(scan_candidates(&root)))
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|candidate| matches!(candidate.copy, StoredCopy::Remote { .. }))
            .collect();
        for candidate in select_expired(&candidates, retention, now, in_progress_job_ids) {
            let StoredCopy::Remote { location } = &candidate.copy else {
                continue;
            };
            if let Err(error) = self.backend.delete_remote(location).await {
                tracing::warn!(
                    job_id = %candidate.job_id,
                    file_name = %candidate.file_name,
                    error = %error,
                    "retention could not delete a remote copy; it stays recorded"
                );
                continue;
            }
            let forgotten_location = location.clone();
            if let Err(error) = self
                .local
                .forget_remote_copies(candidate.owner_user_id, candidate.job_id, move |record| {
                    record.location == forgotten_location
                })
                .await
            {
                tracing::warn!(error = %error, "retention could not update remote.jsonl");
            }
            let deletion = deletion_of(candidate, now);
            log_deletion(&deletion);
            deletions.push(deletion);
        }
        deletions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(job: u32, hours_old: u64, now: SystemTime) -> RetentionCandidate {
        RetentionCandidate {
            owner_user_id: 1,
            job_id: JobId::from_u32(job),
            file_name: "part-0001.mp4".to_string(),
            size_bytes: 10,
            stored_at: now - Duration::from_secs(hours_old * 3600),
            copy: StoredCopy::Local {
                path: PathBuf::from("/x"),
            },
        }
    }

    #[test]
    fn selection_takes_old_parts_of_finished_jobs_only() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let candidates = vec![
            candidate(1, 30, now),
            candidate(2, 10, now),
            candidate(3, 30, now),
            candidate(4, 24, now),
            RetentionCandidate {
                stored_at: now + Duration::from_secs(3600),
                ..candidate(5, 0, now)
            },
        ];
        let in_progress: HashSet<JobId> = [JobId::from_u32(3)].into_iter().collect();
        let selected = select_expired(
            &candidates,
            Duration::from_secs(24 * 3600),
            now,
            &in_progress,
        );
        let selected_jobs: Vec<JobId> = selected.iter().map(|candidate| candidate.job_id).collect();
        assert_eq!(selected_jobs, vec![JobId::from_u32(1)]);
    }
}
