//! What a job leaves in its working directory (`recordings_directory/<JOB ID>`): the path, the file
//! names, and the records the worker, the bot and the dashboard read back. Pure path building and
//! plain serde types: the recorder (`hls::ledger`, `recorder::finalize`) and the worker write these
//! files; the bot and the dashboard parse the text they read without depending on them.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::JobId;

/// `finalized.json`: the finished files and the parts that could not be finalized.
pub const FINALIZED_FILE_NAME: &str = "finalized.json";
/// `recording.json`: the recorder's report of the recording.
pub const RECORDING_FILE_NAME: &str = "recording.json";
/// `finalize-pending`: the recording ended and its finalize has not finished; a worker that claims
/// the job finalizes the parts `recording.json` lists instead of recording again.
pub const FINALIZE_PENDING_FILE_NAME: &str = "finalize-pending";
/// `stored.json`: where each finished part went (local storage, Drive, a channel).
pub const DELIVERED_PARTS_FILE_NAME: &str = "stored.json";
/// `tracks.json`: the extra audio and subtitle tracks of a recording, for finalize.
pub const TRACKS_FILE_NAME: &str = "tracks.json";
/// `remote.jsonl` (in local storage's copy of a job): confirmed remote copies, one JSON line each.
pub const REMOTE_COPIES_FILE_NAME: &str = "remote.jsonl";
/// A track's ledger is `<track>-ledger.jsonl` (`main-ledger.jsonl`, `audio-ledger.jsonl`).
pub const LEDGER_FILE_SUFFIX: &str = "-ledger.jsonl";

/// The working directory of a job.
pub fn job_directory(recordings_directory: &Path, job_id: JobId) -> PathBuf {
    recordings_directory.join(job_id.as_str())
}

/// The file name of a track's ledger.
pub fn ledger_file_name(track: &str) -> String {
    format!("{track}{LEDGER_FILE_SUFFIX}")
}

/// What became of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentState {
    /// Written to the part.
    Ok,
    /// Could not be had before it left the playlist window: lost.
    Gap,
    /// Published while the recording was paused: absent by the user's choice.
    Pause,
}

/// One line of `ledger.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Which track: "main" or "audio".
    pub track: String,
    /// Part number, from 1. Gaps and pauses carry the part that was current.
    pub part: u32,
    /// Increments when the origin's sequence numbering restarts.
    pub epoch: u32,
    pub discontinuity_sequence: u64,
    pub media_sequence: u64,
    pub duration_seconds: f64,
    /// Bytes written to the part (after decryption); 0 for gaps and pauses.
    pub bytes: u64,
    /// Offset of the segment's first byte in the part.
    pub offset_in_part: u64,
    pub state: SegmentState,
    pub wall_time: DateTime<Utc>,
    /// Failed attempts before success (or before giving up, for a gap).
    pub failed_attempts: u32,
    pub uri: String,
}

/// `finalized.json` as its readers see it: the recorder writes `recorder::finalize::FinalizeReport`
/// (a superset of these keys; the rest are ignored here).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct FinalizedRecord {
    pub files: Vec<FinalizedFile>,
    pub failures: Vec<FinalizedFailure>,
}

/// A finished, checked file, as read from `finalized.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FinalizedFile {
    pub part_number: u32,
    pub path: PathBuf,
    pub size_bytes: u64,
    pub duration_seconds: f64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub has_audio: bool,
    pub thumbnail: Option<PathBuf>,
    pub transcoded: bool,
    /// The finished file did not decode cleanly (absent in older reports: not known to be).
    #[serde(default)]
    pub damaged: bool,
    /// What the decode check found, when it ran.
    #[serde(default)]
    pub decode_check: Option<FinalizedDecodeCheck>,
    /// The recorded parts joined into this file (a pause, an encoder restart); empty when it is
    /// one part's.
    #[serde(default)]
    pub joined_part_numbers: Vec<u32>,
}

/// The decode check of a finished file, as read from `finalized.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FinalizedDecodeCheck {
    #[serde(default)]
    pub error_count: usize,
}

/// A part that could not be finalized, as read from `finalized.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FinalizedFailure {
    pub part_number: u32,
    pub message: String,
}

/// Where one finished part is now (one entry of `stored.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveredPart {
    pub part_number: u32,
    pub part_count: u32,
    /// The file on this machine, when it is still here.
    pub local_path: Option<PathBuf>,
    pub size_bytes: u64,
    pub duration_seconds: f64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub has_audio: bool,
    pub thumbnail: Option<PathBuf>,
    /// A link a user can open (Google Drive, a channel message).
    pub link: Option<String>,
    /// A Telegram `file_id` the bot can send again without uploading.
    pub telegram_file_id: Option<String>,
    /// Why storing or uploading failed; the local file is kept.
    pub storage_error: Option<String>,
    /// Finalize reported the file damaged: the decode errors it counted (the caption says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged_decode_errors: Option<usize>,
    /// The recorded parts finalize joined into this file (the summary says so); empty when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub joined_part_numbers: Vec<u32>,
}

impl DeliveredPart {
    /// A finished file still where finalize left it (before, or without, storage).
    pub fn from_finalized_file(
        file: &FinalizedFile,
        part_number: u32,
        part_count: u32,
    ) -> DeliveredPart {
        DeliveredPart {
            part_number,
            part_count,
            local_path: Some(file.path.clone()),
            size_bytes: file.size_bytes,
            duration_seconds: file.duration_seconds,
            width: file.width,
            height: file.height,
            has_audio: file.has_audio,
            thumbnail: file.thumbnail.clone(),
            link: None,
            telegram_file_id: None,
            storage_error: None,
            damaged_decode_errors: file.damaged_decode_errors(),
            joined_part_numbers: file.joined_part_numbers.clone(),
        }
    }
}

impl FinalizedFile {
    /// The decode errors of a file finalize reported damaged (at least one); `None` when it is not.
    pub fn damaged_decode_errors(&self) -> Option<usize> {
        self.damaged.then(|| {
            self.decode_check
                .as_ref()
                .map_or(1, |check| check.error_count.max(1))
        })
    }
}

/// `stored.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveredParts {
    pub backend: String,
    pub parts: Vec<DeliveredPart>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_directory_is_the_job_id_under_the_recordings_directory() {
        let job_id = JobId::from_u32(7);
        assert_eq!(
            job_directory(Path::new("/recordings"), job_id),
            Path::new("/recordings").join(job_id.as_str())
        );
        assert_eq!(ledger_file_name("main"), "main-ledger.jsonl");
    }

    #[test]
    fn finalized_json_with_more_keys_than_read_parses() {
        let text = r#"{"files":[{"part_number":1,"path":"/r/x.mp4","size_bytes":5,
            "duration_seconds":2.0,"width":null,"height":null,"has_audio":true,"thumbnail":null,
            "transcoded":false,"joined_part_numbers":[1,2],"decode_check":null,"damaged":false}],
            "failures":[{"part_number":3,"kept_part":"/r/main-0003.ts","message":"m","detail":"d"}]}"#;
        let record: FinalizedRecord = serde_json::from_str(text).expect("parse");
        assert_eq!(record.files.len(), 1);
        assert_eq!(record.failures[0].message, "m");
        let part = DeliveredPart::from_finalized_file(&record.files[0], 1, 1);
        assert_eq!(part.local_path.as_deref(), Some(Path::new("/r/x.mp4")));
        assert_eq!(part.damaged_decode_errors, None);
    }

    #[test]
    fn a_damaged_file_carries_its_decode_error_count_to_delivery() {
        let text = r#"{"files":[{"part_number":1,"path":"/r/x.mp4","size_bytes":5,
            "duration_seconds":2.0,"width":null,"height":null,"has_audio":true,"thumbnail":null,
            "transcoded":false,"decode_check":{"error_count":7,"sampled":false,"first_errors":[]},
            "damaged":true}],"failures":[]}"#;
        let record: FinalizedRecord = serde_json::from_str(text).expect("parse");
        let part = DeliveredPart::from_finalized_file(&record.files[0], 1, 1);
        assert_eq!(part.damaged_decode_errors, Some(7));
        let stored = serde_json::to_string(&part).expect("serialize");
        let read_back: DeliveredPart = serde_json::from_str(&stored).expect("parse");
        assert_eq!(read_back.damaged_decode_errors, Some(7));
    }
}
