//! The segment ledger and the part files. Every committed segment is appended to the current part
//! (`part-0001.ts`, or `part-0001.mp4` with its init segment first for fMP4) and recorded as one
//! JSON line in `ledger.jsonl`. Bytes reach the part before their ledger line and both are
//! written on every commit, so after a kill the ledger never claims bytes the part does not have,
//! and a part is a playable prefix at any instant. Both reach the disk at least every
//! `fsync_interval` ([`crate::group_sync`]); a crash of the machine loses at most that interval's
//! writes (the kernel may write a ledger page before its part's inside one sync).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::HlsError;

// The ledger line is a plain record in `core::job_files` so readers (the dashboard) need not
// depend on this crate; the names stay available here.
pub use streambot_core::job_files::{LedgerEntry, SegmentState};

/// One line of `ledger.jsonl` with what older readers do not need: why a segment is missing, the
/// end of a skipped range, why a part started. These keys are optional in the file, so a line
/// written before they existed reads back the same, and [`read_ledger`] (entries only) keeps
/// reading every line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerRecord {
    #[serde(flatten)]
    pub entry: LedgerEntry,
    /// For a gap: why the segment was lost ("not media: the body is an HLS playlist",
    /// "decryption failed", "12 segments skipped", ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a gap that stands for a whole range of media sequences (a jump wider than what is
    /// listed one by one): the last media sequence of the range; `entry.media_sequence` is the
    /// first. The range holds `last - first + 1` segments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_last_media_sequence: Option<u64>,
    /// On the first segment of a part: why the part was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_start_reason: Option<PartStartReason>,
    /// On the segment that was the newest listed (the live edge) when a recording that started
    /// from the window's start (`StartFrom::WindowStart`) began: what comes before it was
    /// already published then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_edge_at_start: Option<bool>,
    /// Where the bytes (or, for a gap, the last attempt) came from when not the original
    /// primary media playlist: `backup-1`, `backup-2`, ... (redundant streams of the master, in
    /// playlist order). Absent for the primary, so ledgers without backups read as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl LedgerRecord {
    pub fn new(entry: LedgerEntry) -> LedgerRecord {
        LedgerRecord {
            entry,
            reason: None,
            range_last_media_sequence: None,
            part_start_reason: None,
            live_edge_at_start: None,
            source: None,
        }
    }

    /// How many media sequences this line stands for (1, or the length of a skipped range).
    pub fn segment_count(&self) -> u64 {
        match self.range_last_media_sequence {
            Some(last) => last
                .saturating_sub(self.entry.media_sequence)
                .saturating_add(1),
            None => 1,
        }
    }

    /// The last media sequence this line accounts for.
    pub fn last_media_sequence(&self) -> u64 {
        self.range_last_media_sequence
            .unwrap_or(self.entry.media_sequence)
            .max(self.entry.media_sequence)
    }
}

/// Why a part was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartStartReason {
    First,
    Discontinuity,
    InitChanged,
    Resume,
    Restart,
    SizeLimit,
    DurationLimit,
}

/// The container a part is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartContainer {
    MpegTs,
    FragmentedMp4,
    /// Raw elementary streams (ADTS AAC and the like), kept with the extension they came with.
    Raw,
}

impl PartContainer {
    pub fn extension(self) -> &'static str {
        match self {
            PartContainer::MpegTs => "ts",
            PartContainer::FragmentedMp4 => "mp4",
            PartContainer::Raw => "bin",
        }
    }
}

/// A part file as it stands on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartSummary {
    pub number: u32,
    pub path: PathBuf,
    pub reason: PartStartReason,
    pub bytes: u64,
    pub segments: u64,
    pub media_seconds: f64,
}

/// File name of part `number` of a track.
pub fn part_file_name(track_prefix: &str, number: u32, container: PartContainer) -> String {
    format!("{track_prefix}-{number:04}.{}", container.extension())
}

/// Reads a ledger back; lines that are cut short by a crash are skipped. A skipped range is one
/// entry (its first media sequence); see [`read_ledger_records`] for the range and the reasons.
pub fn read_ledger(path: &Path) -> Result<Vec<LedgerEntry>, HlsError> {
    Ok(read_ledger_records(path)?
        .into_iter()
        .map(|record| record.entry)
        .collect())
}

/// Reads a ledger back with every line's reason, range and part start reason.
pub fn read_ledger_records(path: &Path) -> Result<Vec<LedgerRecord>, HlsError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(HlsError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut entries = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|source| HlsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if let Ok(record) = serde_json::from_str::<LedgerRecord>(&line) {
            entries.push(record);
        }
    }
    Ok(entries)
}

/// Writes one track's parts and its ledger lines.
pub struct PartWriter {
    directory: PathBuf,
    track_prefix: String,
    ledger_path: PathBuf,
    ledger_file: File,
    current_part: Option<OpenPart>,
    finished_parts: Vec<PartSummary>,
    next_part_number: u32,
    fsync_interval: Duration,
    last_fsync: Instant,
    /// The periodic fsync in flight on the group-sync thread (`crate::group_sync`).
    periodic_sync: PeriodicSync,
}

/// The periodic fsync runs off the async thread, grouped with every other writer's of the
/// process ([`crate::group_sync`]: one `syncfs` per filesystem for all that are due): on a slow or
/// busy disk one fdatasync can take tens of milliseconds, and a worker runs hundreds of
/// recordings on one async thread. At most one is in flight per writer (a due one while the last
/// still runs waits for the next commit); its failure is returned by the next write. Part closes
/// and the end of a recording still sync in place, in order (part, then ledger).
#[derive(Default)]
struct PeriodicSync {
    in_flight: Arc<AtomicBool>,
    failure: Arc<Mutex<Option<crate::group_sync::SyncFailure>>>,
}

impl PeriodicSync {
    fn take_failure(&self) -> Result<(), HlsError> {
        let failure = self
            .failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match failure {
            Some((path, source)) => Err(HlsError::Io { path, source }),
            None => Ok(()),
        }
    }
}

struct OpenPart {
    file: File,
    summary: PartSummary,
    init_identity: Option<String>,
    container: PartContainer,
}

impl PartWriter {
    /// Opens the ledger in `directory` (creating both) and continues the part numbering after any
    /// part already recorded there, so a resumed recording never overwrites what it has.
    pub fn open(
        directory: &Path,
        track_prefix: &str,
        fsync_interval: Duration,
    ) -> Result<Self, HlsError> {
        std::fs::create_dir_all(directory).map_err(|source| HlsError::Io {
            path: directory.to_path_buf(),
            source,
        })?;
        let ledger_path = directory.join(streambot_core::job_files::ledger_file_name(track_prefix));
        let existing = read_ledger(&ledger_path)?;
        let mut highest_part = existing.iter().map(|entry| entry.part).max().unwrap_or(0);
        // A part file may exist without ledger lines (crash after the first bytes).
        if let Ok(listing) = std::fs::read_dir(directory) {
            for item in listing.flatten() {
                let name = item.file_name().to_string_lossy().into_owned();
                if let Some(rest) = name.strip_prefix(&format!("{track_prefix}-"))
                    && let Some(number_text) = rest.split('.').next()
                    && let Ok(number) = number_text.parse::<u32>()
                {
                    highest_part = highest_part.max(number);
                }
            }
        }
        let ledger_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&ledger_path)
            .map_err(|source| HlsError::Io {
                path: ledger_path.clone(),
                source,
            })?;
        Ok(PartWriter {
            directory: directory.to_path_buf(),
            track_prefix: track_prefix.to_string(),
            ledger_path,
            ledger_file,
            current_part: None,
            finished_parts: Vec::new(),
            next_part_number: highest_part + 1,
            fsync_interval,
            last_fsync: Instant::now(),
            periodic_sync: PeriodicSync::default(),
        })
    }

    pub fn ledger_path(&self) -> &Path {
        &self.ledger_path
    }

    /// True when no part was ever written in this directory before this writer.
    pub fn is_fresh(&self) -> bool {
        self.next_part_number == 1 && self.current_part.is_none()
    }

    pub fn current_part_number(&self) -> u32 {
        self.current_part
            .as_ref()
            .map_or(self.next_part_number.saturating_sub(1), |part| {
                part.summary.number
            })
    }

    pub fn current_part_summary(&self) -> Option<&PartSummary> {
        self.current_part.as_ref().map(|part| &part.summary)
    }

    pub fn current_init_identity(&self) -> Option<&str> {
        self.current_part
            .as_ref()
            .and_then(|part| part.init_identity.as_deref())
    }

    pub fn has_open_part(&self) -> bool {
        self.current_part.is_some()
    }

    /// Closes the current part (fsync) and opens the next, writing `init_segment` first.
    pub fn start_part(
        &mut self,
        reason: PartStartReason,
        container: PartContainer,
        init_segment: Option<(&str, &[u8])>,
    ) -> Result<&PartSummary, HlsError> {
        self.close_part()?;
        let number = self.next_part_number;
        self.next_part_number += 1;
        let path = self
            .directory
            .join(part_file_name(&self.track_prefix, number, container));
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(|source| HlsError::Io {
                path: path.clone(),
                source,
            })?;
        let mut bytes = 0;
        let mut init_identity = None;
        if let Some((identity, init_bytes)) = init_segment {
            file.write_all(init_bytes).map_err(|source| HlsError::Io {
                path: path.clone(),
                source,
            })?;
            bytes = init_bytes.len() as u64;
            init_identity = Some(identity.to_string());
        }
        self.current_part = Some(OpenPart {
            file,
            summary: PartSummary {
                number,
                path,
                reason,
                bytes,
                segments: 0,
                media_seconds: 0.0,
            },
            init_identity,
            container,
        });
        match &self.current_part {
            Some(part) => Ok(&part.summary),
            None => unreachable_part(&self.directory),
        }
    }

    pub fn current_container(&self) -> Option<PartContainer> {
        self.current_part.as_ref().map(|part| part.container)
    }

    /// Appends a segment's bytes to the current part and its line to the ledger.
    pub fn append_segment(
        &mut self,
        entry: LedgerEntry,
        segment_bytes: &[u8],
    ) -> Result<LedgerEntry, HlsError> {
        self.append_segment_record_bytes(LedgerRecord::new(entry), segment_bytes)
    }

    /// [`PartWriter::append_segment`] for a body read from `segment` (`length` bytes: a segment
    /// spilled to a file is copied into the part, never read whole into memory).
    pub fn append_segment_from(
        &mut self,
        entry: LedgerEntry,
        segment: &mut dyn std::io::Read,
        length: u64,
    ) -> Result<LedgerEntry, HlsError> {
        self.append_segment_record(LedgerRecord::new(entry), segment, length)
    }

    /// [`PartWriter::append_segment_from`] with the optional fields of `record` (its entry's part,
    /// offset, bytes and state are set here).
    pub fn append_segment_record(
        &mut self,
        record: LedgerRecord,
        segment: &mut dyn std::io::Read,
        length: u64,
    ) -> Result<LedgerEntry, HlsError> {
        let Some(part) = self.current_part.as_mut() else {
            return unreachable_part(&self.directory);
        };
        let copied = std::io::copy(&mut std::io::Read::take(segment, length), &mut part.file)
            .map_err(|source| HlsError::Io {
                path: part.summary.path.clone(),
                source,
            })?;
        if copied != length {
            return Err(HlsError::Io {
                path: part.summary.path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the segment body gave {copied} of {length} bytes"),
                ),
            });
        }
        self.record_appended_segment(record, length)
    }

    /// [`PartWriter::append_segment_record`] for a body in memory: one `write` for the whole
    /// body (a reader goes through an 8 KiB buffer: a copy and ten system calls per 80 kB).
    pub fn append_segment_record_bytes(
        &mut self,
        record: LedgerRecord,
        segment_bytes: &[u8],
    ) -> Result<LedgerEntry, HlsError> {
        let Some(part) = self.current_part.as_mut() else {
            return unreachable_part(&self.directory);
        };
        part.file
            .write_all(segment_bytes)
            .map_err(|source| HlsError::Io {
                path: part.summary.path.clone(),
                source,
            })?;
        self.record_appended_segment(record, segment_bytes.len() as u64)
    }

    /// The ledger line (and the part's summary) for `segment_bytes_length` bytes just appended
    /// to the current part.
    fn record_appended_segment(
        &mut self,
        mut record: LedgerRecord,
        segment_bytes_length: u64,
    ) -> Result<LedgerEntry, HlsError> {
        let entry = &mut record.entry;
        let Some(part) = self.current_part.as_mut() else {
            return unreachable_part(&self.directory);
        };
        entry.part = part.summary.number;
        entry.offset_in_part = part.summary.bytes;
        entry.bytes = segment_bytes_length;
        entry.state = SegmentState::Ok;

        if part.summary.segments == 0 {
            record.part_start_reason = Some(part.summary.reason);
        }
        part.summary.bytes += segment_bytes_length;
        part.summary.segments += 1;
        part.summary.media_seconds += record.entry.duration_seconds;
        self.write_ledger_line(&record)?;
        let entry = record.entry;
        self.maybe_fsync()?;
        Ok(entry)
    }

    /// Records a gap or a pause (no bytes).
    pub fn record_missing(&mut self, entry: LedgerEntry) -> Result<LedgerEntry, HlsError> {
        self.record_missing_with(LedgerRecord::new(entry))
            .map(|record| record.entry)
    }

    /// Records a gap or a pause (no bytes) with its reason or range.
    pub fn record_missing_with(
        &mut self,
        mut record: LedgerRecord,
    ) -> Result<LedgerRecord, HlsError> {
        record.entry.part = self.current_part_number().max(1);
        record.entry.bytes = 0;
        record.entry.offset_in_part = self
            .current_part
            .as_ref()
            .map_or(0, |part| part.summary.bytes);
        record.part_start_reason = None;
        self.write_ledger_line(&record)?;
        Ok(record)
    }

    fn write_ledger_line(&mut self, record: &LedgerRecord) -> Result<(), HlsError> {
        let mut line = serde_json::to_vec(record).map_err(|error| HlsError::Io {
            path: self.ledger_path.clone(),
            source: std::io::Error::other(error),
        })?;
        line.push(b'\n');
        self.ledger_file
            .write_all(&line)
            .map_err(|source| HlsError::Io {
                path: self.ledger_path.clone(),
                source,
            })
    }

    fn maybe_fsync(&mut self) -> Result<(), HlsError> {
        self.periodic_sync.take_failure()?;
        if self.last_fsync.elapsed() < self.fsync_interval {
            return Ok(());
        }
        // Outside a runtime (a synchronous caller) the writer syncs in place, as at a part's close.
        if tokio::runtime::Handle::try_current().is_err() {
            return self.sync_all();
        }
        if self.periodic_sync.in_flight.load(Ordering::Acquire) {
            return Ok(());
        }
        // Duplicated descriptors of the same open files: an fsync of one flushes the file.
        let mut files = Vec::with_capacity(2);
        if let Some(part) = self.current_part.as_ref() {
            files.push((
                part.summary.path.clone(),
                clone_file(&part.file, &part.summary.path)?,
            ));
        }
        files.push((
            self.ledger_path.clone(),
            clone_file(&self.ledger_file, &self.ledger_path)?,
        ));
        self.periodic_sync.in_flight.store(true, Ordering::Release);
        self.last_fsync = Instant::now();
        crate::group_sync::request_sync(crate::group_sync::SyncRequest {
            files,
            in_flight: Arc::clone(&self.periodic_sync.in_flight),
            failure: Arc::clone(&self.periodic_sync.failure),
        });
        Ok(())
    }

    /// Flushes the part and the ledger to disk.
    pub fn sync_all(&mut self) -> Result<(), HlsError> {
        self.periodic_sync.take_failure()?;
        if let Some(part) = self.current_part.as_mut() {
            part.file.sync_data().map_err(|source| HlsError::Io {
                path: part.summary.path.clone(),
                source,
            })?;
        }
        self.ledger_file
            .sync_data()
            .map_err(|source| HlsError::Io {
                path: self.ledger_path.clone(),
                source,
            })?;
        self.last_fsync = Instant::now();
        Ok(())
    }

    /// Closes the current part; an empty part (no segment) is removed.
    pub fn close_part(&mut self) -> Result<(), HlsError> {
        self.sync_all()?;
        if let Some(part) = self.current_part.take() {
            drop(part.file);
            if part.summary.segments == 0 {
                let _ = std::fs::remove_file(&part.summary.path);
            } else {
                self.finished_parts.push(part.summary);
            }
        }
        Ok(())
    }

    /// Closes everything and returns the parts written by this writer.
    pub fn finish(mut self) -> Result<Vec<PartSummary>, HlsError> {
        self.close_part()?;
        Ok(self.finished_parts)
    }

    pub fn finished_parts(&self) -> &[PartSummary] {
        &self.finished_parts
    }
}

fn clone_file(file: &File, path: &Path) -> Result<File, HlsError> {
    file.try_clone().map_err(|source| HlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn unreachable_part<T>(directory: &Path) -> Result<T, HlsError> {
    Err(HlsError::Io {
        path: directory.to_path_buf(),
        source: std::io::Error::other("no part is open"),
    })
}

/// Every part of a track in `directory` that holds recorded segments and is still on disk, in
/// order, as the ledger describes them: what a resumed or retried recording (a new writer) did not
/// write itself but must still finalize and deliver.
pub fn parts_recorded_in(
    directory: &Path,
    track_prefix: &str,
) -> Result<Vec<PartSummary>, HlsError> {
    let ledger_path = directory.join(streambot_core::job_files::ledger_file_name(track_prefix));
    let records = read_ledger_records(&ledger_path)?;
    let mut parts: std::collections::BTreeMap<u32, PartSummary> = std::collections::BTreeMap::new();
    let mut previous_ok: Option<&LedgerEntry> = None;
    for record in records
        .iter()
        .filter(|record| record.entry.state == SegmentState::Ok)
    {
        let entry = &record.entry;
        let previous = previous_ok.replace(entry);
        let summary = parts.entry(entry.part).or_insert_with(|| PartSummary {
            number: entry.part,
            path: PathBuf::new(),
            // The reason the writer noted; for a ledger written before it did, a part that
            // starts on another epoch or discontinuity is a discontinuity split.
            reason: record.part_start_reason.unwrap_or(match previous {
                None => PartStartReason::First,
                Some(previous)
                    if previous.epoch != entry.epoch
                        || previous.discontinuity_sequence != entry.discontinuity_sequence =>
                {
                    PartStartReason::Discontinuity
                }
                Some(_) => PartStartReason::Resume,
            }),
            bytes: 0,
            segments: 0,
            media_seconds: 0.0,
        });
        summary.bytes = summary.bytes.max(entry.offset_in_part + entry.bytes);
        summary.segments += 1;
        summary.media_seconds += entry.duration_seconds;
    }
    let mut found = Vec::new();
    for (number, mut summary) in parts {
        let stem = format!("{track_prefix}-{number:04}.");
        let path = std::fs::read_dir(directory).ok().and_then(|listing| {
            listing.flatten().map(|item| item.path()).find(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with(&stem) && !name.ends_with(".tmp"))
            })
        });
        if let Some(path) = path {
            summary.path = path;
            found.push(summary);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        part: u32,
        media_sequence: u64,
        state: SegmentState,
        offset: u64,
        bytes: u64,
    ) -> LedgerEntry {
        LedgerEntry {
            track: "main".to_string(),
            part,
            epoch: 0,
            discontinuity_sequence: 0,
            media_sequence,
            duration_seconds: 1.0,
            bytes,
            offset_in_part: offset,
            state,
            wall_time: chrono::Utc::now(),
            failed_attempts: 0,
            uri: format!("seg-{media_sequence}.ts"),
        }
    }

    /// Many tracks of one process share the group commit; a track that ends while its sync is
    /// queued (its writer dropped, the request holding duplicated descriptors) costs the others
    /// nothing, and every segment of every track is in its part and its ledger.
    #[tokio::test]
    async fn many_writers_share_the_group_sync_and_one_ending_mid_sync_leaves_the_others_whole() {
        let directory = tempfile::tempdir().expect("tempdir");
        let mut writers: Vec<PartWriter> = (0..20)
            .map(|index| {
                let mut writer = PartWriter::open(
                    &directory.path().join(format!("job-{index}")),
                    "main",
                    Duration::ZERO,
                )
                .expect("writer opens");
                writer
                    .start_part(PartStartReason::First, PartContainer::MpegTs, None)
                    .expect("part starts");
                writer
            })
            .collect();
        for media_sequence in 0..30u64 {
            for writer in &mut writers {
                let record = LedgerRecord::new(entry(
                    1,
                    media_sequence,
                    SegmentState::Ok,
                    media_sequence * 188,
                    188,
                ));
                writer
                    .append_segment_record_bytes(record, &[0x47; 188])
                    .expect("segment appended");
            }
            if media_sequence == 10 {
                // Dropped with its sync queued or running.
                drop(writers.pop());
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(writers.len(), 19);
        for writer in writers {
            let ledger_path = writer.ledger_path().to_path_buf();
            let parts = writer.finish().expect("finishes without a sync failure");
            assert_eq!(parts.len(), 1);
            assert_eq!(parts[0].segments, 30);
            assert_eq!(
                std::fs::metadata(&parts[0].path).expect("part").len(),
                30 * 188
            );
            assert_eq!(read_ledger(&ledger_path).expect("ledger reads").len(), 30);
        }
    }

    #[tokio::test]
    async fn periodic_fsyncs_run_off_the_async_thread_and_their_failure_is_the_next_writes_error() {
        let directory = tempfile::tempdir().expect("tempdir");
        let mut writer =
            PartWriter::open(directory.path(), "main", Duration::ZERO).expect("writer opens");
        writer
            .start_part(PartStartReason::First, PartContainer::MpegTs, None)
            .expect("part starts");
        // Every commit is due for an fsync: at most one runs at a time, nothing is lost.
        let mut offset = 0;
        for media_sequence in 0..200 {
            let record = LedgerRecord::new(entry(1, media_sequence, SegmentState::Ok, offset, 188));
            writer
                .append_segment_record_bytes(record, &[0x47; 188])
                .expect("segment appended");
            offset += 188;
            if media_sequence % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
        let ledger_path = writer.ledger_path().to_path_buf();
        // A failed background fsync (an I/O error of the disk) is what the next write returns.
        if let Ok(mut slot) = writer.periodic_sync.failure.lock() {
            *slot = Some((
                ledger_path.clone(),
                std::io::Error::other("the disk went away"),
            ));
        }
        let record = LedgerRecord::new(entry(1, 200, SegmentState::Ok, offset, 188));
        let error = writer
            .append_segment_record_bytes(record, &[0x47; 188])
            .expect_err("the background failure is reported");
        assert!(error.to_string().contains("the disk went away"), "{error}");
        // Reported once; the writer goes on and finishes with every segment in the ledger.
        let parts = writer.finish().expect("finishes");
        assert_eq!(parts.len(), 1);
        let entries = read_ledger(&ledger_path).expect("ledger reads");
        assert_eq!(entries.len(), 201);
        assert_eq!(
            std::fs::metadata(&parts[0].path).expect("part").len(),
            201 * 188
        );
    }

    #[test]
    fn a_part_start_reason_is_read_back_and_old_ledgers_infer_discontinuities() {
        let directory = tempfile::tempdir().expect("tempdir");
        let mut old_style = entry(2, 12, SegmentState::Ok, 0, 10);
        old_style.discontinuity_sequence = 1;
        let lines: Vec<String> = [
            LedgerRecord::new(entry(1, 10, SegmentState::Ok, 0, 10)),
            LedgerRecord::new(entry(1, 11, SegmentState::Ok, 10, 10)),
            // Written before the part start reason existed: another discontinuity sequence.
            LedgerRecord::new(old_style),
            LedgerRecord {
                part_start_reason: Some(PartStartReason::InitChanged),
                ..LedgerRecord::new(entry(3, 13, SegmentState::Ok, 0, 10))
            },
            LedgerRecord {
                range_last_media_sequence: Some(1_000_000_000_000),
                reason: Some("999999999987 segments skipped".to_string()),
                ..LedgerRecord::new(entry(3, 14, SegmentState::Gap, 10, 0))
            },
        ]
        .iter()
        .map(|record| serde_json::to_string(record).expect("json"))
        .collect();
        std::fs::write(
            directory.path().join("main-ledger.jsonl"),
            lines.join("\n") + "\n",
        )
        .expect("ledger");
        for number in 1..=3 {
            std::fs::write(
                directory.path().join(format!("main-{number:04}.ts")),
                [0x47u8; 20],
            )
            .expect("part");
        }
        let parts = parts_recorded_in(directory.path(), "main").expect("parts");
        let reasons: Vec<PartStartReason> = parts.iter().map(|part| part.reason).collect();
        assert_eq!(
            reasons,
            vec![
                PartStartReason::First,
                PartStartReason::Discontinuity,
                PartStartReason::InitChanged
            ]
        );
        // Old readers see one entry per line; the range is one line.
        let entries = read_ledger(&directory.path().join("main-ledger.jsonl")).expect("read");
        assert_eq!(entries.len(), 5);
        let records =
            read_ledger_records(&directory.path().join("main-ledger.jsonl")).expect("read");
        assert_eq!(records[4].segment_count(), 1_000_000_000_000 - 14 + 1);
        assert_eq!(records[4].last_media_sequence(), 1_000_000_000_000);
    }

    #[test]
    fn parts_on_disk_come_from_the_ledger_and_the_files_that_are_still_there() {
        let temporary = tempfile::tempdir().expect("temporary directory");
        let directory = temporary.path();
        let lines: Vec<String> = [
            entry(1, 10, SegmentState::Ok, 0, 100),
            entry(1, 11, SegmentState::Ok, 100, 100),
            entry(1, 12, SegmentState::Gap, 200, 0),
            entry(2, 13, SegmentState::Ok, 0, 50),
            entry(3, 14, SegmentState::Ok, 0, 70),
        ]
        .iter()
        .map(|entry| serde_json::to_string(entry).expect("json"))
        .collect();
        std::fs::write(directory.join("main-ledger.jsonl"), lines.join("\n") + "\n")
            .expect("ledger");
        std::fs::write(directory.join("main-0001.ts"), vec![0u8; 200]).expect("part 1");
        std::fs::write(directory.join("main-0003.mp4"), vec![0u8; 70]).expect("part 3");
        let parts = parts_recorded_in(directory, "main").expect("parts");
        assert_eq!(parts.len(), 2, "part 2 is gone from disk: {parts:?}");
        assert_eq!(parts[0].number, 1);
        assert_eq!(parts[0].segments, 2);
        assert_eq!(parts[0].bytes, 200);
        assert_eq!(parts[1].number, 3);
        assert!(parts[1].path.ends_with("main-0003.mp4"));
    }
}
