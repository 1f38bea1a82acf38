//! The local store under `LOCAL_STORAGE_PATH`: always on, and the source the remote backends upload
//! from. Layout in `layout`; per-user disk quota; deletion by the owner or an admin.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use streambot_core::JobId;

use crate::error::StorageError;
use crate::layout;
use crate::metadata::{FileAccess, PartMetadata, RemoteCopyRecord, Requester, StoredFile};

#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
    user_quota_bytes: Option<u64>,
    /// Held from the quota check to the end of the move, so two puts cannot both fit the quota.
    put_lock: tokio::sync::Mutex<()>,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>, user_quota_bytes: Option<u64>) -> Self {
        LocalStore {
            root: root.into(),
            user_quota_bytes,
            put_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn user_quota_bytes(&self) -> Option<u64> {
        self.user_quota_bytes
    }

    pub fn job_directory(&self, user_id: i64, job_id: JobId) -> PathBuf {
        layout::job_directory(&self.root, user_id, job_id)
    }

    /// Bytes of the user's files on this machine.
    pub async fn bytes_used_by_user(&self, user_id: i64) -> Result<u64, StorageError> {
        let user_directory = layout::user_directory(&self.root, user_id);
        run_blocking(move || directory_size_bytes(&user_directory, 3)).await
    }

    /// Moves a finished part into `user_<id>/<job_id>/part-NNNN.<ext>` after checking the quota.
    /// A part already at its place is left where it is.
    pub async fn put_part(
        &self,
        source_path: &Path,
        metadata: &PartMetadata,
    ) -> Result<StoredFile, StorageError> {
        let _guard = self.put_lock.lock().await;
        let source_size = tokio::fs::metadata(source_path)
            .await
            .map_err(|error| StorageError::io("could not read", source_path, error))?
            .len();
        let job_directory = self.job_directory(metadata.user_id, metadata.job_id);
        let file_name = layout::part_file_name(
            metadata.part_number,
            source_path
                .extension()
                .and_then(|extension| extension.to_str()),
        );
        let target_path = job_directory.join(&file_name);
        let already_in_place = same_file(source_path, &target_path).await;
        if !already_in_place {
            if let Some(quota_bytes) = self.user_quota_bytes {
                let used_bytes = self.bytes_used_by_user(metadata.user_id).await?;
                if used_bytes.saturating_add(source_size) > quota_bytes {
                    return Err(StorageError::QuotaExceeded {
                        user_id: metadata.user_id,
                        used_bytes,
                        needed_bytes: source_size,
                        quota_bytes,
                    });
                }
            }
            tokio::fs::create_dir_all(&job_directory)
                .await
                .map_err(|error| StorageError::io("could not create", &job_directory, error))?;
            move_file(source_path, &target_path).await?;
        }
        tracing::info!(
            user_id = metadata.user_id,
            job_id = %metadata.job_id,
            part = metadata.part_number,
            size_bytes = source_size,
            path = %target_path.display(),
            "part stored locally"
        );
        let modified_at = modified_time(&target_path).await;
        Ok(StoredFile {
            owner_user_id: metadata.user_id,
            job_id: metadata.job_id,
            file_name,
            size_bytes: source_size,
            modified_at,
            local_path: Some(target_path),
            remote: None,
        })
    }

    /// The user's parts, local and remote, oldest job first (job ids sort by creation only by
    /// chance, so by modification time, then name).
    pub async fn list_user_files(&self, user_id: i64) -> Result<Vec<StoredFile>, StorageError> {
        let root = self.root.clone();
        run_blocking(move || list_user_files_blocking(&root, user_id)).await
    }

    pub async fn access(&self, file: &StoredFile) -> Result<FileAccess, StorageError> {
        let path = self.local_path_of(file)?;
        match tokio::fs::metadata(&path).await {
            Ok(_) => Ok(FileAccess::LocalPath(path)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Err(StorageError::NotFound {
                    what: format!("{} of job {}", file.file_name, file.job_id),
                })
            }
            Err(error) => Err(StorageError::io("could not read", path, error)),
        }
    }

    /// Deletes the local copy of one part. Only its owner or an admin may.
    pub async fn delete_local_copy(
        &self,
        file: &StoredFile,
        requester: Requester,
    ) -> Result<bool, StorageError> {
        check_permission(file.owner_user_id, requester)?;
        let path = self.local_path_of(file)?;
        let removed = remove_file_if_present(&path).await?;
        if removed {
            tracing::info!(
                owner_user_id = file.owner_user_id,
                requester_user_id = requester.user_id,
                job_id = %file.job_id,
                path = %path.display(),
                "local copy deleted"
            );
        }
        self.remove_job_directory_if_empty(file.owner_user_id, file.job_id)
            .await?;
        Ok(removed)
    }

    /// Removes a part's local copy after its upload was confirmed (no permission check: the
    /// storage itself asks).
    pub(crate) async fn remove_uploaded_local_copy(
        &self,
        file: &StoredFile,
    ) -> Result<(), StorageError> {
        let path = self.local_path_of(file)?;
        remove_file_if_present(&path).await?;
        Ok(())
    }

    /// Appends a confirmed remote copy to the job's `remote.jsonl`.
    pub async fn record_remote_copy(
        &self,
        user_id: i64,
        job_id: JobId,
        record: &RemoteCopyRecord,
    ) -> Result<(), StorageError> {
        use tokio::io::AsyncWriteExt;
        let job_directory = self.job_directory(user_id, job_id);
        tokio::fs::create_dir_all(&job_directory)
            .await
            .map_err(|error| StorageError::io("could not create", &job_directory, error))?;
        let manifest_path = job_directory.join(layout::REMOTE_COPIES_FILE_NAME);
        let mut line = serde_json::to_string(record).map_err(|error| StorageError::Io {
            action: "could not encode a line of",
            path: manifest_path.clone(),
            source: std::io::Error::other(error),
        })?;
        line.push('\n');
        let mut manifest = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&manifest_path)
            .await
            .map_err(|error| StorageError::io("could not open", &manifest_path, error))?;
        manifest
            .write_all(line.as_bytes())
            .await
            .map_err(|error| StorageError::io("could not write", &manifest_path, error))?;
        manifest
            .sync_data()
            .await
            .map_err(|error| StorageError::io("could not sync", &manifest_path, error))?;
        Ok(())
    }

    /// Rewrites the job's `remote.jsonl` without the records `forget` matches.
    pub async fn forget_remote_copies(
        &self,
        user_id: i64,
        job_id: JobId,
        forget: impl Fn(&RemoteCopyRecord) -> bool + Send + 'static,
    ) -> Result<(), StorageError> {
        let job_directory = self.job_directory(user_id, job_id);
        run_blocking(move || {
            let records = read_remote_copies(&job_directory)?;
            let kept: Vec<RemoteCopyRecord> = records
                .into_iter()
                .filter(|record| !forget(record))
                .collect();
            write_remote_copies(&job_directory, &kept)
        })
        .await?;
        self.remove_job_directory_if_empty(user_id, job_id).await
    }

    pub async fn remove_job_directory_if_empty(
        &self,
        user_id: i64,
        job_id: JobId,
    ) -> Result<(), StorageError> {
        let job_directory = self.job_directory(user_id, job_id);
        run_blocking(move || remove_directory_if_empty(&job_directory)).await
    }

    fn local_path_of(&self, file: &StoredFile) -> Result<PathBuf, StorageError> {
        // The name is checked against the names we write, so a listing entry that was tampered
        // with cannot point outside the job directory.
        if layout::parse_part_file_name(&file.file_name).is_none() {
            return Err(StorageError::NotFound {
                what: format!("a part named {:?}", file.file_name),
            });
        }
        Ok(self
            .job_directory(file.owner_user_id, file.job_id)
            .join(&file.file_name))
    }
}

pub(crate) fn check_permission(
    owner_user_id: i64,
    requester: Requester,
) -> Result<(), StorageError> {
    if requester.may_manage_files_of(owner_user_id) {
        Ok(())
    } else {
        Err(StorageError::Forbidden {
            requester_user_id: requester.user_id,
            owner_user_id,
        })
    }
}

pub(crate) async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|join_error| StorageError::Io {
            action: "a disk task ended abnormally in",
            path: PathBuf::new(),
            source: std::io::Error::other(join_error.to_string()),
        })?
}

async fn same_file(first: &Path, second: &Path) -> bool {
    match (
        tokio::fs::canonicalize(first).await,
        tokio::fs::canonicalize(second).await,
    ) {
        (Ok(first), Ok(second)) => first == second,
        _ => false,
    }
}

/// The size of a local file, for an upload.
pub(crate) async fn local_file_size(local_path: &Path) -> Result<u64, StorageError> {
    tokio::fs::metadata(local_path)
        .await
        .map(|metadata| metadata.len())
        .map_err(|error| StorageError::io("could not read", local_path, error))
}

/// Rename, or copy then remove across filesystems. The target is written under a temporary name
/// first so a listing never shows half a file.
async fn move_file(source_path: &Path, target_path: &Path) -> Result<(), StorageError> {
    if tokio::fs::rename(source_path, target_path).await.is_ok() {
        return Ok(());
    }
    let temporary_path = target_path.with_extension("partial");
    tokio::fs::copy(source_path, &temporary_path)
        .await
        .map_err(|error| StorageError::io("could not copy into", &temporary_path, error))?;
    let file = tokio::fs::File::open(&temporary_path)
        .await
        .map_err(|error| StorageError::io("could not open", &temporary_path, error))?;
    file.sync_all()
        .await
        .map_err(|error| StorageError::io("could not sync", &temporary_path, error))?;
    tokio::fs::rename(&temporary_path, target_path)
        .await
        .map_err(|error| StorageError::io("could not rename", &temporary_path, error))?;
    tokio::fs::remove_file(source_path)
        .await
        .map_err(|error| StorageError::io("could not remove", source_path, error))?;
    Ok(())
}

async fn remove_file_if_present(path: &Path) -> Result<bool, StorageError> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(StorageError::io("could not delete", path, error)),
    }
}

async fn modified_time(path: &Path) -> Option<DateTime<Utc>> {
    let metadata = tokio::fs::metadata(path).await.ok()?;
    metadata.modified().ok().map(DateTime::<Utc>::from)
}

/// Total size of regular files under `directory`, `max_depth` levels down at most. A missing
/// directory is empty.
pub(crate) fn directory_size_bytes(directory: &Path, max_depth: u32) -> Result<u64, StorageError> {
    streambot_core::local_files::directory_size_bytes(directory, max_depth)
        .map_err(|error| StorageError::io("could not list", error.path, error.source))
}

/// The job directories of one user: (job id, path). Entries not named like a job id are skipped.
pub(crate) fn job_directories_of_user(
    root: &Path,
    user_id: i64,
) -> Result<Vec<(JobId, PathBuf)>, StorageError> {
    let user_directory = layout::user_directory(root, user_id);
    let entries = match std::fs::read_dir(&user_directory) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(StorageError::io("could not list", &user_directory, error)),
    };
    let mut job_directories = Vec::new();
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Ok(job_id) = name.parse::<JobId>() else {
            continue;
        };
        if job_id.as_str() != name || !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            continue;
        }
        job_directories.push((job_id, entry.path()));
    }
    job_directories.sort();
    Ok(job_directories)
}

/// The user ids that have a directory under `root`.
pub(crate) fn user_ids_under(root: &Path) -> Result<Vec<i64>, StorageError> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(StorageError::io("could not list", root, error)),
    };
    let mut user_ids: Vec<i64> = entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .filter_map(|entry| {
            entry
                .file_name()
                .to_str()
                .and_then(layout::parse_user_directory_name)
        })
        .collect();
    user_ids.sort_unstable();
    Ok(user_ids)
}

/// The part files of one job directory: (file name, part number, size, modified).
pub(crate) fn part_files_in(
    job_directory: &Path,
) -> Result<Vec<(String, u64, std::time::SystemTime)>, StorageError> {
    let entries = match std::fs::read_dir(job_directory) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(StorageError::io("could not list", job_directory, error)),
    };
    let mut part_files = Vec::new();
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if layout::parse_part_file_name(&name).is_none() {
            continue;
        }
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if !metadata.is_file() {
            continue;
        }
        let modified = metadata.modified().unwrap_or(std::time::UNIX_EPOCH);
        part_files.push((name, metadata.len(), modified));
    }
    part_files.sort();
    Ok(part_files)
}

pub(crate) fn read_remote_copies(
    job_directory: &Path,
) -> Result<Vec<RemoteCopyRecord>, StorageError> {
    let manifest_path = job_directory.join(layout::REMOTE_COPIES_FILE_NAME);
    let text = match std::fs::read_to_string(&manifest_path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(StorageError::io("could not read", &manifest_path, error)),
    };
    let mut records = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        match serde_json::from_str::<RemoteCopyRecord>(line) {
            Ok(record) => records.push(record),
            // A torn last line after a crash: the upload it described was not confirmed to us.
            Err(error) => tracing::warn!(
                path = %manifest_path.display(),
                error = %error,
                "skipping an unreadable line of remote.jsonl"
            ),
        }
    }
    Ok(records)
}

fn write_remote_copies(
    job_directory: &Path,
    records: &[RemoteCopyRecord],
) -> Result<(), StorageError> {
    let manifest_path = job_directory.join(layout::REMOTE_COPIES_FILE_NAME);
    if records.is_empty() {
        return match std::fs::remove_file(&manifest_path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(StorageError::io("could not delete", &manifest_path, error)),
        };
    }
    let mut text = String::new();
    for record in records {
        let line = serde_json::to_string(record).map_err(|error| StorageError::Io {
            action: "could not encode a line of",
            path: manifest_path.clone(),
            source: std::io::Error::other(error),
        })?;
        text.push_str(&line);
        text.push('\n');
    }
    streambot_core::local_files::write_file_atomically(&manifest_path, text.as_bytes())
        .map_err(|error| StorageError::io("could not write", error.path, error.source))
}

pub(crate) fn remove_directory_if_empty(directory: &Path) -> Result<(), StorageError> {
    match std::fs::remove_dir(directory) {
        Ok(()) => Ok(()),
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty
            ) =>
        {
            Ok(())
        }
        Err(error) => Err(StorageError::io("could not remove", directory, error)),
    }
}

fn list_user_files_blocking(root: &Path, user_id: i64) -> Result<Vec<StoredFile>, StorageError> {
    let mut files = Vec::new();
    for (job_id, job_directory) in job_directories_of_user(root, user_id)? {
        let mut remote_copies = read_remote_copies(&job_directory)?;
        for (file_name, size_bytes, modified) in part_files_in(&job_directory)? {
            let remote_position = remote_copies
                .iter()
                .position(|record| record.file_name == file_name);
            let remote = remote_position.map(|position| remote_copies.remove(position));
            files.push(StoredFile {
                owner_user_id: user_id,
                job_id,
                local_path: Some(job_directory.join(&file_name)),
                file_name,
                size_bytes,
                modified_at: Some(DateTime::<Utc>::from(modified)),
                remote,
            });
        }
        // Parts whose local copy is gone but whose remote copy is recorded.
        for record in remote_copies {
            files.push(StoredFile {
                owner_user_id: user_id,
                job_id,
                file_name: record.file_name.clone(),
                size_bytes: record.size_bytes,
                modified_at: Some(record.uploaded_at),
                local_path: None,
                remote: Some(record),
            });
        }
    }
    files.sort_by(|first, second| {
        (first.modified_at, first.job_id, &first.file_name).cmp(&(
            second.modified_at,
            second.job_id,
            &second.file_name,
        ))
    });
    Ok(files)
}
