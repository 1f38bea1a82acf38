//! Where finished recordings go: the local disk (always, under `LOCAL_STORAGE_PATH/user_<id>/<job_id>/`),
//! then Google Drive or a Telegram channel per `STORAGE_BACKEND`; per-user quotas; retention.
//! See ARCHITECTURE.md for what this crate must not know.

pub mod error;
pub mod gdrive;
pub mod layout;
pub mod local;
pub mod metadata;
pub mod retention;
pub mod retry;
pub mod settings;
pub mod store;
pub mod telegram;

pub use error::{StorageError, redact_secrets_in_text};
pub use gdrive::{GoogleDriveConfig, GoogleDriveCredentials, GoogleDriveStore, ServiceAccountKey};
pub use local::LocalStore;
pub use metadata::{
    FileAccess, PartMetadata, RemoteCopyRecord, RemoteLocation, Requester, StoredFile,
};
pub use retention::{Deletion, RetentionCandidate, StoredCopy, retention_sweep, select_expired};
pub use retry::RetryPolicy;
pub use settings::{BackendKind, SettingError, StorageSettings};
pub use store::{Storage, StorageBackend, Store};
pub use telegram::{TelegramChannelConfig, TelegramChannelStore};
