//! Plain data about stored parts: what the recorder hands over, what a listing shows, where a copy
//! lives. No IO here.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use streambot_core::JobId;

/// One finished part of a recording, as the recorder hands it to storage.
#[derive(Debug, Clone, PartialEq)]
pub struct PartMetadata {
    pub job_id: JobId,
    pub user_id: i64,
    /// 1-based.
    pub part_number: u32,
    pub part_count: u32,
    pub duration_seconds: f64,
    pub size_bytes: u64,
    pub thumbnail: Option<PathBuf>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

impl PartMetadata {
    /// The caption posted with the part: job, user, part i/n, duration.
    pub fn caption(&self) -> String {
        format!(
            "Recording {job} for user {user}\nPart {part}/{count} · {duration}",
            job = self.job_id,
            user = self.user_id,
            part = self.part_number,
            count = self.part_count.max(self.part_number),
            duration = streambot_core::quantity_text::format_clock_duration(self.duration_seconds),
        )
    }
}

/// Who asks for a deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requester {
    pub user_id: i64,
    pub is_admin: bool,
}

impl Requester {
    pub fn may_manage_files_of(&self, owner_user_id: i64) -> bool {
        self.is_admin || self.user_id == owner_user_id
    }
}

/// Where a remote copy of a part lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case")]
pub enum RemoteLocation {
    GoogleDrive {
        file_id: String,
        web_view_link: Option<String>,
    },
    TelegramChannel {
        chat_id: String,
        message_id: i64,
        file_id: Option<String>,
        link: Option<String>,
    },
}

impl RemoteLocation {
    /// A link a user can open, when the backend gives one.
    pub fn link(&self) -> Option<&str> {
        match self {
            RemoteLocation::GoogleDrive { web_view_link, .. } => web_view_link.as_deref(),
            RemoteLocation::TelegramChannel { link, .. } => link.as_deref(),
        }
    }
}

/// One line of a job directory's `remote.jsonl`: a confirmed upload of one part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteCopyRecord {
    pub file_name: String,
    pub part_number: u32,
    pub size_bytes: u64,
    pub uploaded_at: DateTime<Utc>,
    pub location: RemoteLocation,
}

/// A stored part as a listing shows it: the local file (when still there) and the remote copy
/// (when there is one).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFile {
    pub owner_user_id: i64,
    pub job_id: JobId,
    pub file_name: String,
    pub size_bytes: u64,
    pub modified_at: Option<DateTime<Utc>>,
    pub local_path: Option<PathBuf>,
    pub remote: Option<RemoteCopyRecord>,
}

/// How a user gets at a stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileAccess {
    /// A link to open (Google Drive `webViewLink`, a `t.me/c/...` message link).
    Link(String),
    /// A Telegram `file_id` the bot can send again without uploading.
    TelegramFileId(String),
    /// The file on this machine, for the bot to upload itself.
    LocalPath(PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captions_name_job_user_part_and_duration() {
        let metadata = PartMetadata {
            job_id: JobId::from_u32(0xA3F2_B1C9),
            user_id: 42,
            part_number: 2,
            part_count: 3,
            duration_seconds: 3723.4,
            size_bytes: 10,
            thumbnail: None,
            width: Some(1280),
            height: Some(720),
        };
        assert_eq!(
            metadata.caption(),
            "Recording A3F2B1C9 for user 42\nPart 2/3 · 1:02:03"
        );
    }

    #[test]
    fn only_owners_and_admins_manage_files() {
        let owner = Requester {
            user_id: 7,
            is_admin: false,
        };
        let stranger = Requester {
            user_id: 8,
            is_admin: false,
        };
        let admin = Requester {
            user_id: 9,
            is_admin: true,
        };
        assert!(owner.may_manage_files_of(7));
        assert!(!stranger.may_manage_files_of(7));
        assert!(admin.may_manage_files_of(7));
    }
}
