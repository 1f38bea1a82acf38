//! Clip while recording (issue 16 item 6): a playable file of the last N minutes of a job
//! directory that may still be recording.
//!
//! The segments are picked by the ledger ([`plan_clip`], pure): walking back from the newest
//! recorded segment until their durations cover N, across parts of the same container when the
//! newest part is shorter than that. The bytes the ledger vouches for (bytes reach a part before
//! their ledger line, so they are on disk) are copied out of each part into a slice file beside
//! the output (an fMP4 part's init section first); the live part is only read, never written,
//! renamed or locked. The slices are joined (concat demuxer) when there are several and remuxed
//! (`-c copy`, input format named, as finalize does) into the output with the separately recorded
//! audio rendition's matching tail, if any. A clip longer than what exists is everything there is,
//! with a note.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use streambot_ffmpeg::{
    ConcatOptions, FfmpegError, FfmpegRunner, MediaInput, OutputContainer, RemuxOptions,
    known_streams,
};
use streambot_hls::ledger::{LedgerRecord, SegmentState, read_ledger_records};

/// The track prefixes of a job directory: the main track and the audio rendition.
const MAIN_TRACK: &str = "main";
const AUDIO_TRACK: &str = "audio";

/// Why a clip could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error("{} holds no recording ledger ({track}-ledger.jsonl)", directory.display())]
    NoLedger { directory: PathBuf, track: String },
    #[error("the ledger {} cannot be read: {detail}", ledger.display())]
    UnreadableLedger { ledger: PathBuf, detail: String },
    #[error("nothing has been recorded yet in {}", directory.display())]
    NothingRecorded { directory: PathBuf },
    #[error("part {part} is missing from {}", directory.display())]
    PartMissing { directory: PathBuf, part: u32 },
    #[error(
        "part {} is shorter ({on_disk} bytes) than its ledger says ({needed} bytes): truncated",
        part.display()
    )]
    PartTruncated {
        part: PathBuf,
        on_disk: u64,
        needed: u64,
    },
    #[error("the clip length must be more than zero")]
    EmptyLength,
    /// An output inside the recording's (or another recording's) directory whose name does not
    /// start with `clip`: it could be a part, a ledger or a summary of a recording.
    #[error("{} would be written among the recording's own files", output.display())]
    OutputAmongRecordingFiles { output: PathBuf },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Ffmpeg(#[from] FfmpegError),
}

impl ClipError {
    /// True when trying again later may succeed (nothing recorded yet, a passing ffmpeg failure).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClipError::NothingRecorded { .. } => true,
            ClipError::Ffmpeg(error) => error.is_retryable(),
            ClipError::Io { .. } => true,
            ClipError::NoLedger { .. }
            | ClipError::UnreadableLedger { .. }
            | ClipError::PartMissing { .. }
            | ClipError::PartTruncated { .. }
            | ClipError::EmptyLength
            | ClipError::OutputAmongRecordingFiles { .. } => false,
        }
    }

    pub fn user_message(&self) -> String {
        match self {
            ClipError::NoLedger { .. } | ClipError::UnreadableLedger { .. } => {
                "That is not a recording directory (no readable ledger).".to_string()
            }
            ClipError::NothingRecorded { .. } => {
                "Nothing has been recorded yet; try again in a moment.".to_string()
            }
            ClipError::PartMissing { .. } | ClipError::PartTruncated { .. } => {
                "The recording's files are incomplete on disk; no clip can be made from them."
                    .to_string()
            }
            ClipError::EmptyLength => "A clip must be longer than zero.".to_string(),
            ClipError::OutputAmongRecordingFiles { .. } => {
                "A clip inside a recording's directory must have a name starting with \"clip\"."
                    .to_string()
            }
            ClipError::Io { .. } => "The clip could not be written.".to_string(),
            ClipError::Ffmpeg(error) => error.user_message(),
        }
    }
}

/// The bytes of one part that go into a clip.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartSlice {
    pub part: u32,
    /// Bytes at the start of the part copied first (an fMP4 part's init section); 0 for MPEG-TS.
    pub header_bytes: u64,
    /// First byte of the first segment taken.
    pub start_offset: u64,
    /// One past the last byte of the last segment taken (what the ledger vouches for).
    pub end_offset: u64,
    pub segments: u64,
    pub seconds: f64,
}

/// Which segments a clip takes, oldest part first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClipPlan {
    pub slices: Vec<PartSlice>,
    pub seconds: f64,
    /// Less was recorded than asked for: the plan is everything there is.
    pub everything_recorded: bool,
}

/// Picks the newest recorded segments whose ledger durations add up to at least `last_seconds`
/// (pure). Only consecutive segments of one part make a slice; an older part is taken only when
/// `same_container(older, newer)` says the two can be joined. `None` when nothing was recorded.
pub fn plan_clip(
    records: &[LedgerRecord],
    last_seconds: f64,
    same_container: impl Fn(u32, u32) -> bool,
) -> Option<ClipPlan> {
    let recorded: Vec<&LedgerRecord> = records
        .iter()
        .filter(|record| record.entry.state == SegmentState::Ok && record.entry.bytes > 0)
        .collect();
    recorded.last()?;
    let mut slices: Vec<PartSlice> = Vec::new();
    let mut seconds = 0.0;
    let mut reached = false;
    for record in recorded.iter().rev() {
        let entry = &record.entry;
        let starts_new_slice = slices.last().is_none_or(|slice| slice.part != entry.part);
        if starts_new_slice {
            // A part other than the newest joins only when its container matches the next one.
            if let Some(newer) = slices.last()
                && !same_container(entry.part, newer.part)
            {
                break;
            }
            slices.push(PartSlice {
                part: entry.part,
                header_bytes: 0,
                start_offset: entry.offset_in_part,
                end_offset: entry.offset_in_part.saturating_add(entry.bytes),
                segments: 0,
                seconds: 0.0,
            });
        }
        let Some(slice) = slices.last_mut() else {
            break;
        };
        // The ledger of a part is in byte order; a line that is not (a hostile or damaged
        // ledger) ends the slice rather than copying bytes twice.
        if !starts_new_slice
            && entry.offset_in_part.saturating_add(entry.bytes) > slice.start_offset
        {
            break;
        }
        slice.start_offset = entry.offset_in_part;
        slice.segments += 1;
        let duration = if entry.duration_seconds.is_finite() {
            entry.duration_seconds.max(0.0)
        } else {
            0.0
        };
        slice.seconds += duration;
        seconds += duration;
        if seconds >= last_seconds {
            reached = true;
            break;
        }
    }
    // The init section of a part is what precedes its first segment.
    for slice in &mut slices {
        if let Some(first) = recorded
            .iter()
            .find(|record| record.entry.part == slice.part)
        {
            slice.header_bytes = first.entry.offset_in_part.min(slice.start_offset);
        }
    }
    slices.reverse();
    Some(ClipPlan {
        slices,
        seconds,
        everything_recorded: !reached,
    })
}

/// A clip made by [`clip_last`].
#[derive(Debug, Clone, Serialize)]
pub struct ClippedFile {
    pub path: PathBuf,
    pub size_bytes: u64,
    /// The clip's duration as its file says (the ledger's when the file does not say).
    pub duration_seconds: f64,
    pub requested_seconds: f64,
    /// The segments' durations by the ledger.
    pub ledger_seconds: f64,
    pub segments: u64,
    pub parts: Vec<u32>,
    pub has_audio: bool,
    /// What the user should know (less recorded than asked for, audio left out, ...).
    pub notes: Vec<String>,
}

/// The part file of `track` number `part` in `directory` (`main-0007.ts`, `main-0007.mp4`, ...).
fn part_path(directory: &Path, track: &str, part: u32) -> Option<PathBuf> {
    let stem = format!("{track}-{part:04}.");
    std::fs::read_dir(directory)
        .ok()?
        .flatten()
        .map(|item| item.path())
        .find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(&stem) && !name.ends_with(".tmp"))
        })
}

fn read_track_ledger(directory: &Path, track: &str) -> Result<Vec<LedgerRecord>, ClipError> {
    let ledger = directory.join(streambot_core::job_files::ledger_file_name(track));
    if !ledger.is_file() {
        return Err(ClipError::NoLedger {
            directory: directory.to_path_buf(),
            track: track.to_string(),
        });
    }
    read_ledger_records(&ledger).map_err(|error| ClipError::UnreadableLedger {
        ledger,
        detail: error.to_string(),
    })
}

/// A slice file made from a part: its header bytes and the planned range, copied.
fn write_slice(part: &Path, slice: &PartSlice, destination: &Path) -> Result<(), ClipError> {
    let io_error = |context: String| move |source| ClipError::Io { context, source };
    let mut source =
        std::fs::File::open(part).map_err(io_error(format!("opening {}", part.display())))?;
    let on_disk = source
        .metadata()
        .map_err(io_error(format!("reading {}", part.display())))?
        .len();
    if on_disk < slice.end_offset {
        return Err(ClipError::PartTruncated {
            part: part.to_path_buf(),
            on_disk,
            needed: slice.end_offset,
        });
    }
    let mut output = std::fs::File::create(destination)
        .map_err(io_error(format!("creating {}", destination.display())))?;
    let mut copy_range = |start: u64, length: u64| -> Result<(), ClipError> {
        source
            .seek(SeekFrom::Start(start))
            .map_err(io_error(format!("reading {}", part.display())))?;
        let copied = std::io::copy(&mut (&mut source).take(length), &mut output)
            .map_err(io_error(format!("copying {}", part.display())))?;
        if copied < length {
            return Err(ClipError::PartTruncated {
                part: part.to_path_buf(),
                on_disk: start.saturating_add(copied),
                needed: start.saturating_add(length),
            });
        }
        Ok(())
    };
    copy_range(0, slice.header_bytes)?;
    copy_range(
        slice.start_offset,
        slice.end_offset.saturating_sub(slice.start_offset),
    )?;
    output
        .flush()
        .map_err(io_error(format!("writing {}", destination.display())))
}

/// The extension of a part's file (its container), `ts` when unknown.
fn part_extension(path: &Path) -> String {
    path.extension()
        .and_then(|extension| extension.to_str())
        .unwrap_or("ts")
        .to_ascii_lowercase()
}

/// Copies the planned slices of `track` into files beside `output`; returns them in order.
fn write_slices(
    directory: &Path,
    track: &str,
    plan: &ClipPlan,
    output: &Path,
    made: &mut Vec<PathBuf>,
) -> Result<Vec<PathBuf>, ClipError> {
    let output_directory = output.parent().unwrap_or_else(|| Path::new("."));
    let stem = output
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("clip");
    let mut slices = Vec::with_capacity(plan.slices.len());
    for slice in &plan.slices {
        let part = part_path(directory, track, slice.part).ok_or(ClipError::PartMissing {
            directory: directory.to_path_buf(),
            part: slice.part,
        })?;
        let destination = output_directory.join(format!(
            ".{stem}.{track}-{:04}.slice.{}",
            slice.part,
            part_extension(&part)
        ));
        made.push(destination.clone());
        write_slice(&part, slice, &destination)?;
        slices.push(destination);
    }
    Ok(slices)
}

async fn identify(path: &Path) -> Result<MediaInput, ClipError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || MediaInput::identify(&path))
        .await
        .map_err(|error| ClipError::Io {
            context: "identifying the clip's media".to_string(),
            source: std::io::Error::other(error.to_string()),
        })?
        .map_err(ClipError::from)
}

/// One input from the slices of a track: the slice itself, or the slices joined (concat).
async fn joined_input(
    runner: &FfmpegRunner,
    slices: &[PathBuf],
    output: &Path,
    track: &str,
    made: &mut Vec<PathBuf>,
) -> Result<MediaInput, ClipError> {
    match slices {
        [only] => identify(only).await,
        _ => {
            let output_directory = output.parent().unwrap_or_else(|| Path::new("."));
            let stem = output
                .file_stem()
                .and_then(|stem| stem.to_str())
                .unwrap_or("clip");
            let joined = output_directory.join(format!(".{stem}.{track}.joined.ts"));
            made.push(joined.clone());
            runner
                .concat(
                    slices,
                    &joined,
                    &ConcatOptions::new(OutputContainer::Ts),
                    None,
                )
                .await?;
            identify(&joined).await
        }
    }
}

/// True when parts `older` and `newer` of `track` are files of the same container.
fn same_part_container(directory: &Path, track: &str, older: u32, newer: u32) -> bool {
    let extension = |part| part_path(directory, track, part).map(|path| part_extension(&path));
    match (extension(older), extension(newer)) {
        // Only MPEG-TS parts are joined (each fMP4 part has its own init section).
        (Some(older), Some(newer)) => older == newer && older == "ts",
        _ => false,
    }
}

/// The output container for a clip file's extension (mp4 unless `.mkv` or `.ts`).
fn container_for(output: &Path) -> OutputContainer {
    match part_extension(output).as_str() {
        "mkv" => OutputContainer::Mkv,
        "ts" => OutputContainer::Ts,
        _ => OutputContainer::Mp4,
    }
}

/// True when `directory` holds a recording (a track's ledger or `recording.json`): this one or
/// another job's.
fn is_recording_directory(directory: &Path) -> bool {
    directory
        .join(streambot_core::job_files::RECORDING_FILE_NAME)
        .exists()
        || std::fs::read_dir(directory).is_ok_and(|entries| {
            entries.flatten().any(|entry| {
                entry.file_name().to_str().is_some_and(|name| {
                    name.ends_with(streambot_core::job_files::LEDGER_FILE_SUFFIX)
                })
            })
        })
}

/// False when `output` is in the recording's directory, or in any other recording's directory
/// (another job's), under a name that is not a clip's (it could replace a live part, a ledger or
/// a summary).
fn output_is_safe(directory: &Path, output: &Path) -> bool {
    let output_directory = match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let same_directory = match (
        std::fs::canonicalize(directory),
        std::fs::canonicalize(output_directory),
    ) {
        (Ok(directory), Ok(output_directory)) => directory == output_directory,
        _ => false,
    };
    let among_recording_files = same_directory || is_recording_directory(output_directory);
    !among_recording_files
        || output
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("clip") && !name.ends_with(".jsonl"))
}

/// Makes `output` from the last `last` of the recording in `directory` (which may still be
/// recording). See the module documentation.
pub async fn clip_last(
    runner: &FfmpegRunner,
    directory: &Path,
    last: Duration,
    output: &Path,
) -> Result<ClippedFile, ClipError> {
    if last.is_zero() {
        return Err(ClipError::EmptyLength);
    }
    if !output_is_safe(directory, output) {
        return Err(ClipError::OutputAmongRecordingFiles {
            output: output.to_path_buf(),
        });
    }
    let requested_seconds = last.as_secs_f64();
    let records = read_track_ledger(directory, MAIN_TRACK)?;
    let plan = plan_clip(&records, requested_seconds, |older, newer| {
        same_part_container(directory, MAIN_TRACK, older, newer)
    })
    .ok_or_else(|| ClipError::NothingRecorded {
        directory: directory.to_path_buf(),
    })?;
    let mut notes = Vec::new();
    if plan.everything_recorded {
        notes.push(format!(
            "only {:.0} s recorded so far (asked for {:.0} s): the clip is all of it",
            plan.seconds, requested_seconds
        ));
    } else if plan.slices.len() == 1
        && records.iter().any(|record| {
            record.entry.state == SegmentState::Ok && record.entry.part < plan.slices[0].part
        })
        && plan.seconds + 0.001 < requested_seconds
    {
        notes.push("the clip starts where the stream changed format".to_string());
    }
    if !crate::tracks::read_track_plan(directory)
        .extra_tracks
        .is_empty()
    {
        notes.push(
            "the clip has the first audio track only: other languages and subtitles are in the \
             finished recording"
                .to_string(),
        );
    }
    let mut made: Vec<PathBuf> = Vec::new();
    let result = make_clip(runner, directory, &plan, output, &mut notes, &mut made).await;
    for path in made {
        let _ = std::fs::remove_file(path);
    }
    let (has_audio, duration) = match result {
        Ok(made) => made,
        Err(error) => {
            let _ = std::fs::remove_file(output);
            return Err(error);
        }
    };
    let size_bytes = std::fs::metadata(output)
        .map(|metadata| metadata.len())
        .unwrap_or(0);
    Ok(ClippedFile {
        path: output.to_path_buf(),
        size_bytes,
        duration_seconds: duration.map_or(plan.seconds, |duration| duration.as_secs_f64()),
        requested_seconds,
        ledger_seconds: plan.seconds,
        segments: plan.slices.iter().map(|slice| slice.segments).sum(),
        parts: plan.slices.iter().map(|slice| slice.part).collect(),
        has_audio,
        notes,
    })
}

/// The IO of [`clip_last`]: slices, join, remux, check. Returns (has audio, duration).
async fn make_clip(
    runner: &FfmpegRunner,
    directory: &Path,
    plan: &ClipPlan,
    output: &Path,
    notes: &mut Vec<String>,
    made: &mut Vec<PathBuf>,
) -> Result<(bool, Option<Duration>), ClipError> {
    let main_slices = {
        let (directory, plan, output) =
            (directory.to_path_buf(), plan.clone(), output.to_path_buf());
        let mut made_here = Vec::new();
        let result = tokio::task::spawn_blocking(move || {
            let slices = write_slices(&directory, MAIN_TRACK, &plan, &output, &mut made_here);
            (slices, made_here)
        })
        .await
        .map_err(|error| ClipError::Io {
            context: "copying the clip's segments".to_string(),
            source: std::io::Error::other(error.to_string()),
        })?;
        made.extend(result.1);
        result.0?
    };
    let main_input = joined_input(runner, &main_slices, output, MAIN_TRACK, made).await?;
    // The audio rendition recorded beside the video, if any: its newest segments of the same
    // length (renditions are cut on the same timeline).
    let audio_input = match audio_slices(directory, plan.seconds, output, made).await {
        Ok(Some(slices)) => match joined_input(runner, &slices, output, AUDIO_TRACK, made).await {
            Ok(input) => Some(input),
            Err(error) => {
                notes.push(format!("the separate audio was left out: {error}"));
                None
            }
        },
        Ok(None) => None,
        Err(error) => {
            notes.push(format!("the separate audio was left out: {error}"));
            None
        }
    };
    let main_streams = {
        let reading = main_input.clone();
        tokio::task::spawn_blocking(move || known_streams(&reading))
            .await
            .ok()
            .flatten()
    };
    let main_streams = match main_streams {
        Some(streams) => streams,
        None => runner.probe(&main_input.path).await?,
    };
    let container = container_for(output);
    let mut options = RemuxOptions::new(container);
    options.audio_is_adts_aac = match &audio_input {
        Some(audio) => audio.format.carries_adts_aac(),
        None => main_streams.audio_is_adts_aac(),
    };
    let has_audio = audio_input.is_some() || main_streams.has_audio();
    options.audio_input = audio_input;
    runner
        .remux(&main_input.path, output, &options, None)
        .await?;
    let finished = runner.probe(output).await?;
    if !finished.has_video() && !finished.has_audio() {
        return Err(ClipError::Ffmpeg(FfmpegError::MissingStreams {
            path: output.to_path_buf(),
            missing: "video and audio".to_string(),
        }));
    }
    Ok((has_audio && finished.has_audio(), finished.duration))
}

/// The audio track's slices for the newest `seconds`, when the job has a separate audio track.
async fn audio_slices(
    directory: &Path,
    seconds: f64,
    output: &Path,
    made: &mut Vec<PathBuf>,
) -> Result<Option<Vec<PathBuf>>, ClipError> {
    if !directory
        .join(streambot_core::job_files::ledger_file_name(AUDIO_TRACK))
        .is_file()
    {
        return Ok(None);
    }
    let (directory, output) = (directory.to_path_buf(), output.to_path_buf());
    let (result, made_here) = tokio::task::spawn_blocking(move || {
        let mut made_here = Vec::new();
        let result = (|| {
            let records = read_track_ledger(&directory, AUDIO_TRACK)?;
            let Some(plan) = plan_clip(&records, seconds, |older, newer| {
                same_part_container(&directory, AUDIO_TRACK, older, newer)
            }) else {
                return Ok(None);
            };
            write_slices(&directory, AUDIO_TRACK, &plan, &output, &mut made_here).map(Some)
        })();
        (result, made_here)
    })
    .await
    .map_err(|error| ClipError::Io {
        context: "copying the clip's audio".to_string(),
        source: std::io::Error::other(error.to_string()),
    })?;
    made.extend(made_here);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use streambot_hls::ledger::LedgerEntry;

    fn record(
        part: u32,
        sequence: u64,
        offset: u64,
        bytes: u64,
        state: SegmentState,
    ) -> LedgerRecord {
        LedgerRecord::new(LedgerEntry {
            track: "main".to_string(),
            part,
            epoch: 0,
            discontinuity_sequence: 0,
            media_sequence: sequence,
            duration_seconds: 2.0,
            bytes,
            offset_in_part: offset,
            state,
            wall_time: Default::default(),
            failed_attempts: 0,
            uri: String::new(),
        })
    }

    fn ledger() -> Vec<LedgerRecord> {
        vec![
            record(1, 1, 0, 100, SegmentState::Ok),
            record(1, 2, 100, 100, SegmentState::Ok),
            record(2, 3, 0, 100, SegmentState::Ok),
            record(2, 4, 100, 0, SegmentState::Gap),
            record(2, 5, 100, 100, SegmentState::Ok),
            record(2, 6, 200, 100, SegmentState::Ok),
        ]
    }

    #[test]
    fn the_newest_segments_covering_the_length_are_taken() {
        let plan = plan_clip(&ledger(), 3.0, |_, _| true).expect("plan");
        assert_eq!(plan.slices.len(), 1);
        assert_eq!(
            (
                plan.slices[0].part,
                plan.slices[0].start_offset,
                plan.slices[0].end_offset
            ),
            (2, 100, 300)
        );
        assert_eq!(plan.slices[0].segments, 2);
        assert!(!plan.everything_recorded);
    }

    #[test]
    fn older_parts_join_only_when_their_container_matches() {
        let plan = plan_clip(&ledger(), 7.0, |_, _| true).expect("plan");
        let parts: Vec<(u32, u64, u64)> = plan
            .slices
            .iter()
            .map(|slice| (slice.part, slice.start_offset, slice.end_offset))
            .collect();
        assert_eq!(parts, vec![(1, 100, 200), (2, 0, 300)]);
        let plan = plan_clip(&ledger(), 7.0, |_, _| false).expect("plan");
        assert_eq!(plan.slices.len(), 1);
        assert!(plan.everything_recorded);
    }

    #[test]
    fn longer_than_recorded_is_everything_and_nothing_is_none() {
        let plan = plan_clip(&ledger(), 600.0, |_, _| true).expect("plan");
        assert!(plan.everything_recorded);
        assert_eq!(plan.seconds, 10.0);
        assert!(plan_clip(&[], 60.0, |_, _| true).is_none());
        let gaps = vec![record(1, 1, 0, 0, SegmentState::Gap)];
        assert!(plan_clip(&gaps, 60.0, |_, _| true).is_none());
    }

    #[test]
    fn an_fmp4_part_keeps_its_init_section() {
        let records = vec![
            record(1, 1, 700, 100, SegmentState::Ok),
            record(1, 2, 800, 100, SegmentState::Ok),
            record(1, 3, 900, 100, SegmentState::Ok),
        ];
        let plan = plan_clip(&records, 2.0, |_, _| true).expect("plan");
        assert_eq!(plan.slices[0].header_bytes, 700);
        assert_eq!(plan.slices[0].start_offset, 900);
    }

    #[test]
    fn a_ledger_out_of_byte_order_does_not_copy_bytes_twice() {
        let records = vec![
            record(1, 1, 0, 100, SegmentState::Ok),
            record(1, 2, 0, 100, SegmentState::Ok),
        ];
        let plan = plan_clip(&records, 10.0, |_, _| true).expect("plan");
        assert_eq!(plan.slices[0].segments, 1);
    }
}
