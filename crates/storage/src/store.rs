//! The `Store` trait the bot and the worker use, and `Storage`: the local store plus the
//! configured backend. A part is always stored locally first; a remote backend uploads from
//! there, with retries, and the local copy is removed (when so configured) only after the upload
//! is confirmed and recorded.

use std::future::Future;
use std::path::Path;

use streambot_core::JobId;

use crate::error::StorageError;
use crate::gdrive::GoogleDriveStore;
use crate::local::LocalStore;
use crate::metadata::{
    FileAccess, PartMetadata, RemoteCopyRecord, RemoteLocation, Requester, StoredFile,
};
use crate::retry::{RetryPolicy, run_with_retries};
use crate::telegram::TelegramChannelStore;

/// What every storage offers.
pub trait Store {
    /// The backend's name for messages: `local disk`, `Google Drive`, `Telegram`.
    fn backend_name(&self) -> &'static str;

    /// The largest part the backend takes; the recorder splits parts to this.
    fn size_limit_bytes(&self) -> u64;

    /// Stores a finished part (the file is moved into local storage first).
    fn put_part(
        &self,
        part_path: &Path,
        metadata: &PartMetadata,
    ) -> impl Future<Output = Result<StoredFile, StorageError>> + Send;

    fn list_user_files(
        &self,
        user_id: i64,
    ) -> impl Future<Output = Result<Vec<StoredFile>, StorageError>> + Send;

    /// A link, a Telegram file id, or the local file.
    fn access(
        &self,
        file: &StoredFile,
    ) -> impl Future<Output = Result<FileAccess, StorageError>> + Send;

    /// Deletes every copy of the part; only its owner or an admin may.
    fn delete(
        &self,
        file: &StoredFile,
        requester: Requester,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
}

/// On disk there is no limit but the quota.
const LOCAL_SIZE_LIMIT_BYTES: u64 = u64::MAX;

impl Store for LocalStore {
    fn backend_name(&self) -> &'static str {
        "local disk"
    }

    fn size_limit_bytes(&self) -> u64 {
        LOCAL_SIZE_LIMIT_BYTES
    }

    async fn put_part(
        &self,
        part_path: &Path,
        metadata: &PartMetadata,
    ) -> Result<StoredFile, StorageError> {
        LocalStore::put_part(self, part_path, metadata).await
    }

    async fn list_user_files(&self, user_id: i64) -> Result<Vec<StoredFile>, StorageError> {
        LocalStore::list_user_files(self, user_id).await
    }

    async fn access(&self, file: &StoredFile) -> Result<FileAccess, StorageError> {
        LocalStore::access(self, file).await
    }

    async fn delete(&self, file: &StoredFile, requester: Requester) -> Result<(), StorageError> {
        let removed = self.delete_local_copy(file, requester).await?;
        if removed {
            Ok(())
        } else {
            Err(StorageError::NotFound {
                what: format!("{} of job {}", file.file_name, file.job_id),
            })
        }
    }
}

/// Where parts go after the local disk, per `STORAGE_BACKEND`.
#[derive(Debug)]
pub enum StorageBackend {
    Local,
    GoogleDrive(Box<GoogleDriveStore>),
    TelegramChannel(TelegramChannelStore),
}

impl StorageBackend {
    pub fn backend_name(&self) -> &'static str {
        match self {
            StorageBackend::Local => "local disk",
            StorageBackend::GoogleDrive(_) => crate::gdrive::auth::BACKEND_NAME,
            StorageBackend::TelegramChannel(_) => crate::telegram::BACKEND_NAME,
        }
    }

    pub fn size_limit_bytes(&self) -> u64 {
        match self {
            StorageBackend::Local => LOCAL_SIZE_LIMIT_BYTES,
            StorageBackend::GoogleDrive(drive) => drive.size_limit_bytes(),
            StorageBackend::TelegramChannel(channel) => channel.size_limit_bytes(),
        }
    }

    /// One upload attempt (None for the local backend, which has nothing to upload).
    async fn upload_once(
        &self,
        local_path: &Path,
        file_name: &str,
        metadata: &PartMetadata,
    ) -> Result<Option<RemoteLocation>, StorageError> {
        match self {
            StorageBackend::Local => Ok(None),
            StorageBackend::GoogleDrive(drive) => drive
                .upload_part(local_path, file_name, metadata)
                .await
                .map(Some),
            StorageBackend::TelegramChannel(channel) => channel
                .upload_part(local_path, file_name, metadata)
                .await
                .map(Some),
        }
    }

    /// Deletes a remote copy; one that is already gone counts as deleted.
    pub async fn delete_remote(&self, location: &RemoteLocation) -> Result<(), StorageError> {
        match (self, location) {
            (StorageBackend::GoogleDrive(drive), RemoteLocation::GoogleDrive { file_id, .. }) => {
                drive.delete_file(file_id).await
            }
            (
                StorageBackend::TelegramChannel(channel),
                RemoteLocation::TelegramChannel {
                    chat_id,
                    message_id,
                    ..
                },
            ) => channel.delete_message(chat_id, *message_id).await,
            // A copy made by a backend no longer configured: nothing here can delete it.
            _ => Err(StorageError::NotFound {
                what: format!(
                    "a {} client for the remote copy {location:?}",
                    self.backend_name()
                ),
            }),
        }
    }
}

/// The storage the rest of streambot talks to.
#[derive(Debug)]
pub struct Storage {
    pub local: LocalStore,
    pub backend: StorageBackend,
    /// Keep the local file after a confirmed upload.
    pub keep_local_copy: bool,
    pub retry_policy: RetryPolicy,
}

impl Storage {
    pub fn new(local: LocalStore, backend: StorageBackend, keep_local_copy: bool) -> Self {
        Storage {
            local,
            backend,
            keep_local_copy,
            retry_policy: RetryPolicy::default(),
        }
    }

    /// Uploads a part that is already in local storage (a retry after `UploadFailed`, or a part
    /// left behind by a crash). Does nothing for the local backend.
    pub async fn upload_stored_part(
        &self,
        stored: StoredFile,
        metadata: &PartMetadata,
    ) -> Result<StoredFile, StorageError> {
        let Some(local_path) = stored.local_path.clone() else {
            return Ok(stored);
        };
        if matches!(self.backend, StorageBackend::Local) {
            return Ok(stored);
        }
        let backend_name = self.backend.backend_name();
        let limit_bytes = self.backend.size_limit_bytes();
        if stored.size_bytes > limit_bytes {
            return Err(StorageError::UploadFailed {
                backend: backend_name,
                attempts: 0,
                local_path: local_path.clone(),
                last_error: Box::new(StorageError::TooLarge {
                    backend: backend_name,
                    path: local_path,
                    size_bytes: stored.size_bytes,
                    limit_bytes,
                }),
            });
        }
        let file_name = stored.file_name.clone();
        let location = run_with_retries(&self.retry_policy, backend_name, &local_path, |_| {
            self.backend.upload_once(&local_path, &file_name, metadata)
        })
        .await?;
        let Some(location) = location else {
            return Ok(stored);
        };
        let record = RemoteCopyRecord {
            file_name: stored.file_name.clone(),
            part_number: metadata.part_number,
            size_bytes: stored.size_bytes,
            uploaded_at: chrono::Utc::now(),
            location,
        };
        // Recorded before the local copy goes, so the part is never unaccounted for.
        self.local
            .record_remote_copy(stored.owner_user_id, stored.job_id, &record)
            .await?;
        tracing::info!(
            backend = backend_name,
            user_id = stored.owner_user_id,
            job_id = %stored.job_id,
            part = metadata.part_number,
            link = record.location.link().unwrap_or(""),
            "part uploaded"
        );
        let mut uploaded = stored;
        if !self.keep_local_copy {
            self.local.remove_uploaded_local_copy(&uploaded).await?;
            uploaded.local_path = None;
        }
        uploaded.remote = Some(record);
        Ok(uploaded)
    }

    /// Every remote copy of one job recorded in its `remote.jsonl`.
    pub async fn remote_copies_of_job(
        &self,
        user_id: i64,
        job_id: JobId,
    ) -> Result<Vec<RemoteCopyRecord>, StorageError> {
        let job_directory = self.local.job_directory(user_id, job_id);
        crate::local::run_blocking(move || crate::local::read_remote_copies(&job_directory)).await
    }
}

impl Store for Storage {
    fn backend_name(&self) -> &'static str {
        self.backend.backend_name()
    }

    fn size_limit_bytes(&self) -> u64 {
        self.backend.size_limit_bytes()
    }

    async fn put_part(
        &self,
        part_path: &Path,
        metadata: &PartMetadata,
    ) -> Result<StoredFile, StorageError> {
        let stored = self.local.put_part(part_path, metadata).await?;
        self.upload_stored_part(stored, metadata).await
    }

    async fn list_user_files(&self, user_id: i64) -> Result<Vec<StoredFile>, StorageError> {
        self.local.list_user_files(user_id).await
    }

    async fn access(&self, file: &StoredFile) -> Result<FileAccess, StorageError> {
        if let Some(record) = &file.remote {
            match &record.location {
                RemoteLocation::GoogleDrive {
                    web_view_link: Some(link),
                    ..
                } => return Ok(FileAccess::Link(link.clone())),
                RemoteLocation::TelegramChannel {
                    file_id: Some(file_id),
                    ..
                } => return Ok(FileAccess::TelegramFileId(file_id.clone())),
                RemoteLocation::TelegramChannel {
                    link: Some(link), ..
                } => return Ok(FileAccess::Link(link.clone())),
                _ => {}
            }
        }
        self.local.access(file).await
    }

    async fn delete(&self, file: &StoredFile, requester: Requester) -> Result<(), StorageError> {
        crate::local::check_permission(file.owner_user_id, requester)?;
        if let Some(record) = &file.remote {
            self.backend.delete_remote(&record.location).await?;
            let file_name = record.file_name.clone();
            self.local
                .forget_remote_copies(file.owner_user_id, file.job_id, move |candidate| {
                    candidate.file_name == file_name
                })
                .await?;
            tracing::info!(
                owner_user_id = file.owner_user_id,
                requester_user_id = requester.user_id,
                job_id = %file.job_id,
                file_name = %file.file_name,
                "remote copy deleted"
            );
        }
        self.local.delete_local_copy(file, requester).await?;
        Ok(())
    }
}
