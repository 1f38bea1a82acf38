//! What a job left on disk, read for `GET /jobs/{id}`: the part files, the ledger summary (ok, gap
//! and pause counts, the gap ranges) and the finished files from `finalized.json`. Read on a
//! blocking thread; every path is built from the job id and names the directory lists.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;
use streambot_core::job_files::{
    FINALIZED_FILE_NAME, FinalizedRecord, LEDGER_FILE_SUFFIX, LedgerEntry, SegmentState,
    ledger_file_name,
};
use utoipa::ToSchema;

/// A file in the job's directory.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobFile {
    pub name: String,
    pub size_bytes: u64,
}

/// A run of consecutive lost segments.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GapRange {
    pub track: String,
    pub epoch: u32,
    pub first_media_sequence: u64,
    pub last_media_sequence: u64,
    pub segments: u64,
    pub duration_seconds: f64,
    pub first_noticed_at: DateTime<Utc>,
}

/// Counts from a track's ledger (`<track>-ledger.jsonl`).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct LedgerSummary {
    pub track: String,
    pub ok_segments: u64,
    pub gap_segments: u64,
    pub pause_segments: u64,
    pub ok_seconds: f64,
    pub gap_seconds: f64,
    pub pause_seconds: f64,
    pub bytes: u64,
    pub parts: u32,
}

/// A finalized, checked file (from `finalized.json`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FinishedFileView {
    pub part_number: u32,
    pub name: String,
    pub size_bytes: u64,
    pub duration_seconds: f64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub has_audio: bool,
    pub transcoded: bool,
}

/// A part that could not be finalized.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FinalizeFailureView {
    pub part_number: u32,
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct JobFiles {
    /// Whether the job's directory exists (a queued job has none yet).
    pub directory_exists: bool,
    /// Intermediate part files (`main-0001.ts`, `audio-0001.ts`, ...).
    pub parts: Vec<JobFile>,
    /// One summary per track ledger found.
    pub ledgers: Vec<LedgerSummary>,
    pub gaps: Vec<GapRange>,
    pub finished_files: Vec<FinishedFileView>,
    pub finalize_failures: Vec<FinalizeFailureView>,
    /// Bytes of everything in the directory.
    pub total_bytes: u64,
    /// Problems reading the directory (an unreadable ledger); the rest is still given.
    pub warnings: Vec<String>,
}

fn is_part_file_name(name: &str) -> bool {
    let Some((stem, extension)) = name.rsplit_once('.') else {
        return false;
    };
    let Some((track, number)) = stem.rsplit_once('-') else {
        return false;
    };
    ["ts", "mp4", "m4s", "aac", "m4a"].contains(&extension)
        && ["main", "audio"].contains(&track)
        && number.len() == 4
        && number.bytes().all(|byte| byte.is_ascii_digit())
}

/// Folds one track's ledger into counts and gap ranges.
pub fn summarize_ledger(track: &str, entries: &[LedgerEntry]) -> (LedgerSummary, Vec<GapRange>) {
    let mut summary = LedgerSummary {
        track: track.to_string(),
        ..LedgerSummary::default()
    };
    let mut gaps: Vec<GapRange> = Vec::new();
    for entry in entries {
        summary.parts = summary.parts.max(entry.part);
        match entry.state {
            SegmentState::Ok => {
                summary.ok_segments += 1;
                summary.ok_seconds += entry.duration_seconds;
                summary.bytes += entry.bytes;
            }
            SegmentState::Pause => {
                summary.pause_segments += 1;
                summary.pause_seconds += entry.duration_seconds;
            }
            SegmentState::Gap => {
                summary.gap_segments += 1;
                summary.gap_seconds += entry.duration_seconds;
                let extends_previous = gaps.last().is_some_and(|previous| {
                    previous.epoch == entry.epoch
                        && previous.last_media_sequence.checked_add(1) == Some(entry.media_sequence)
                });
                match gaps.last_mut() {
                    Some(previous) if extends_previous => {
                        previous.last_media_sequence = entry.media_sequence;
                        previous.segments += 1;
                        previous.duration_seconds += entry.duration_seconds;
                    }
                    _ => gaps.push(GapRange {
                        track: track.to_string(),
                        epoch: entry.epoch,
                        first_media_sequence: entry.media_sequence,
                        last_media_sequence: entry.media_sequence,
                        segments: 1,
                        duration_seconds: entry.duration_seconds,
                        first_noticed_at: entry.wall_time,
                    }),
                }
            }
        }
    }
    (summary, gaps)
}

/// Reads a track's ledger: one entry per line; a line cut short by a crash (or not a ledger line)
/// is skipped, a missing file is an empty ledger.
fn read_ledger(path: &Path) -> std::io::Result<Vec<LedgerEntry>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str::<LedgerEntry>(line).ok())
        .collect())
}

/// Reads `directory` (the job's directory). Missing directory: an empty answer.
pub fn read_job_files(directory: &Path) -> JobFiles {
    let mut files = JobFiles::default();
    let listing = match std::fs::read_dir(directory) {
        Ok(listing) => listing,
        Err(_) => return files,
    };
    files.directory_exists = true;
    let mut ledger_tracks = Vec::new();
    // Bounded: a job directory holds parts, ledgers and finished files only.
    for entry in listing.flatten().take(100_000) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let size_bytes = entry.metadata().map(|metadata| metadata.len()).unwrap_or(0);
        files.total_bytes = files.total_bytes.saturating_add(size_bytes);
        if is_part_file_name(&name) {
            files.parts.push(JobFile { name, size_bytes });
        } else if let Some(track) = name.strip_suffix(LEDGER_FILE_SUFFIX) {
            ledger_tracks.push(track.to_string());
        }
    }
    files
        .parts
        .sort_by(|left, right| left.name.cmp(&right.name));
    ledger_tracks.sort();
    for track in ledger_tracks {
        let path = directory.join(ledger_file_name(&track));
        match read_ledger(&path) {
            Ok(entries) => {
                let (summary, gaps) = summarize_ledger(&track, &entries);
                files.ledgers.push(summary);
                files.gaps.extend(gaps);
            }
            Err(error) => files
                .warnings
                .push(format!("the {track} ledger could not be read: {error}")),
        }
    }
    match std::fs::read(directory.join(FINALIZED_FILE_NAME)) {
        Ok(bytes) => match serde_json::from_slice::<FinalizedRecord>(&bytes) {
            Ok(report) => {
                for file in report.files {
                    files.finished_files.push(FinishedFileView {
                        part_number: file.part_number,
                        name: file
                            .path
                            .file_name()
                            .map(|name| name.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        size_bytes: file.size_bytes,
                        duration_seconds: file.duration_seconds,
                        width: file.width,
                        height: file.height,
                        has_audio: file.has_audio,
                        transcoded: file.transcoded,
                    });
                }
                for failure in report.failures {
                    files.finalize_failures.push(FinalizeFailureView {
                        part_number: failure.part_number,
                        message: failure.message,
                    });
                }
            }
            Err(error) => files
                .warnings
                .push(format!("finalized.json could not be read: {error}")),
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => files
            .warnings
            .push(format!("finalized.json could not be read: {error}")),
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sequence: u64, state: SegmentState) -> LedgerEntry {
        LedgerEntry {
            track: "main".to_string(),
            part: 1,
            epoch: 0,
            discontinuity_sequence: 0,
            media_sequence: sequence,
            duration_seconds: 2.0,
            bytes: if state == SegmentState::Ok { 100 } else { 0 },
            offset_in_part: 0,
            state,
            wall_time: Utc::now(),
            failed_attempts: 0,
            uri: format!("s{sequence}.ts"),
        }
    }

    #[test]
    fn consecutive_gaps_fold_into_ranges() {
        use SegmentState::*;
        let entries = [
            entry(1, Ok),
            entry(2, Gap),
            entry(3, Gap),
            entry(4, Ok),
            entry(5, Pause),
            entry(6, Gap),
        ];
        let (summary, gaps) = summarize_ledger("main", &entries);
        assert_eq!(summary.ok_segments, 2);
        assert_eq!(summary.gap_segments, 3);
        assert_eq!(summary.pause_segments, 1);
        assert_eq!(summary.bytes, 200);
        assert_eq!(gaps.len(), 2);
        assert_eq!(
            (gaps[0].first_media_sequence, gaps[0].last_media_sequence),
            (2, 3)
        );
        assert_eq!(gaps[1].segments, 1);
    }

    #[test]
    fn part_names_are_recognised() {
        assert!(is_part_file_name("main-0001.ts"));
        assert!(is_part_file_name("audio-0012.aac"));
        assert!(!is_part_file_name("recording-0001.mp4"));
        assert!(!is_part_file_name("main-ledger.jsonl"));
        assert!(!is_part_file_name("main-1.ts"));
    }
}
