//! Finalize: turn the recorded parts into files people can play and share.
//!
//! In process first (issue 18): an MPEG-TS part of H.264 and/or AAC (and an MPEG-TS audio
//! rendition) with no extra tracks is remuxed to mp4/m4a by [`streambot_mp4remux`] (one read of
//! the part, one write, the index into room reserved from the ledger's duration; no process); whatever it refuses (HEVC, MP3, a changed SPS, a timestamp
//! jump, an index over its cap, ...) goes the ffmpeg way below, and the checks after are the same.
//!
//! One ffmpeg pass per part (issue 18): what the part holds is read in process from its own bytes
//! (the TS program map, the fMP4 init segment: [`known_streams`]), not probed; it is remuxed
//! (`-c copy`, timestamps from zero) to mp4 with the index written first into space reserved up
//! front (`-moov_size`, sized from the ledger's duration; a reservation ffmpeg reports too small is
//! retried larger, then with `+faststart`), or to mkv/ts, or m4a for audio only; the separately
//! fetched audio rendition is muxed in; a quality preset re-encodes only when the recorded variant
//! does not already match it. The finished mp4 is checked by reading its index in process
//! ([`read_mp4_index`]: index before media, the streams present, duration within one segment of
//! the ledger), then a thumbnail is taken from its first keyframe. The intermediate part is
//! removed only after the check passes; when anything fails, the part stays and the error says
//! why.
//!
//! One file per recording (issue 17 item 2): consecutive MPEG-TS parts whose streams match
//! (codecs from [`known_streams`], picture size probed) — a pause, an encoder restart, a reconnect
//! in between — are joined with the concat demuxer (timestamps made continuous) and finalized as
//! one part ([`FinishedFile::joined_part_numbers`] says which); a split for the size or duration
//! limit, or a change of codec or picture size, starts a new file. fMP4 parts are joined the same
//! way when their init segments describe the same media ([`crate::fmp4_join`]: the fragments
//! concatenated after one init, decode times made continuous). When the join or its check fails,
//! each part is finalized on its own.
//!
//! Every finished file is then decoded (`ffmpeg -v error -f null -`; the first, a middle and the
//! last 10 s of a file longer than a minute): one that prints errors is delivered but reported
//! as damaged with the error count ([`FinishedFile::damaged`], [`FinalizeReport::all_ok`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use streambot_core::{OutputFormat, Quality};
use streambot_ffmpeg::argv::{estimated_index_bytes, reserved_index_shortfall};
use streambot_ffmpeg::{
    AudioOnlyOptions, DecodeCheck, FfmpegError, FfmpegRunner, FinishedOutput, MediaInput,
    OutputContainer, OutputExpectations, RemuxOptions, StreamInfo, TranscodeOptions,
    TranscodePreset, check_output, known_streams, known_streams_with_packets, read_mp4_index,
    stream_info_from_index,
};
use streambot_hls::ledger::{PartStartReason, PartSummary};
use streambot_mp4remux::{Brand, InputRole, Limits, RemuxError, RemuxInput};

use crate::RecordingReport;

/// How finished files are made.
#[derive(Debug, Clone)]
pub struct FinalizeSettings {
    pub format: OutputFormat,
    pub quality: Quality,
    /// Keep the intermediate TS/fMP4 parts after a successful finalize.
    pub keep_intermediate_parts: bool,
    /// How far a finished file's duration may be from the ledger's (about one segment).
    pub duration_tolerance: Duration,
    /// Parts with the same streams are joined into one file up to this many bytes of parts (the
    /// destination's size limit); `None`: the limit the recording split parts at, if any.
    pub maximum_joined_bytes: Option<u64>,
    /// Decode every finished file (sampled when long) and report errors as damage (issue 17).
    pub check_decoding: bool,
    /// Remux MPEG-TS parts of H.264/AAC to mp4/m4a in process before trying ffmpeg (issue 18).
    pub native_remux: bool,
    /// Make a thumbnail (one short ffmpeg run on the first keyframe) for a natively remuxed file.
    /// Telegram's `sendVideo` makes its own from an mp4 when none is given, so a worker delivering
    /// there can turn this off (see BENCHMARKS.md, issue 18).
    pub thumbnails_for_native_remux: bool,
}

impl FinalizeSettings {
    pub fn new(format: OutputFormat, quality: Quality) -> Self {
        FinalizeSettings {
            format,
            quality,
            keep_intermediate_parts: false,
            duration_tolerance: Duration::from_secs(3),
            maximum_joined_bytes: None,
            check_decoding: true,
            native_remux: true,
            thumbnails_for_native_remux: true,
        }
    }
}

/// The re-encoding a quality asks for; `None` keeps the stream as it is (copy).
///
/// `high` caps at 1080p, `medium` at 720p, `low` at 480p; `best`, `worst`, `720p`-style and
/// `audio` never re-encode video (the variant choice already did the work).
pub fn transcode_preset_for(quality: Quality) -> Option<TranscodePreset> {
    match quality {
        Quality::High => Some(TranscodePreset::new(1080, 21, 160)),
        Quality::Medium => Some(TranscodePreset::new(720, 23, 128)),
        Quality::Low => Some(TranscodePreset::new(480, 26, 96)),
        Quality::Best | Quality::Worst | Quality::Height(_) | Quality::Audio => None,
    }
}

fn output_container(format: OutputFormat, audio_only: bool) -> OutputContainer {
    if audio_only {
        return OutputContainer::M4a;
    }
    match format {
        OutputFormat::Mp4 => OutputContainer::Mp4,
        OutputFormat::Mkv => OutputContainer::Mkv,
        OutputFormat::Ts => OutputContainer::Ts,
    }
}

/// A finished, checked file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinishedFile {
    pub part_number: u32,
    pub path: PathBuf,
    pub size_bytes: u64,
    pub duration_seconds: f64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub has_audio: bool,
    pub thumbnail: Option<PathBuf>,
    pub transcoded: bool,
    /// The parts joined into this file, in order, when there were more than one (same codecs and
    /// picture size: a pause, an encoder restart or a reconnect in between).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub joined_part_numbers: Vec<u32>,
    /// How the file decoded (`None`: not checked).
    #[serde(default)]
    pub decode_check: Option<DecodeCheck>,
    /// The file did not decode cleanly: delivered, but not ok (say so to the user).
    #[serde(default)]
    pub damaged: bool,
    /// Remuxed by `streambot_mp4remux` in process (not by ffmpeg).
    #[serde(default)]
    pub remuxed_in_process: bool,
}

impl FinishedFile {
    /// The file as `finalized.json`'s readers see it (`core::job_files`).
    pub fn finalized_file(&self) -> streambot_core::job_files::FinalizedFile {
        streambot_core::job_files::FinalizedFile {
            part_number: self.part_number,
            path: self.path.clone(),
            size_bytes: self.size_bytes,
            duration_seconds: self.duration_seconds,
            width: self.width,
            height: self.height,
            has_audio: self.has_audio,
            thumbnail: self.thumbnail.clone(),
            transcoded: self.transcoded,
            damaged: self.damaged,
            decode_check: self.decode_check.as_ref().map(|check| {
                streambot_core::job_files::FinalizedDecodeCheck {
                    error_count: check.error_count,
                }
            }),
            joined_part_numbers: self.joined_part_numbers.clone(),
        }
    }
}

/// A part that could not be finalized; its intermediate file is kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinalizeFailure {
    pub part_number: u32,
    pub kept_part: PathBuf,
    pub message: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct FinalizeReport {
    pub files: Vec<FinishedFile>,
    pub failures: Vec<FinalizeFailure>,
}

impl FinalizeReport {
    /// Finished files that did not decode cleanly (delivered, but not ok).
    pub fn damaged_files(&self) -> impl Iterator<Item = &FinishedFile> {
        self.files.iter().filter(|file| file.damaged)
    }

    /// Every part became a file that decodes cleanly.
    pub fn all_ok(&self) -> bool {
        self.failures.is_empty() && self.damaged_files().next().is_none()
    }
}

/// Which audio part goes with main part `index` of `main_count`.
pub(crate) fn audio_part_for(
    main_index: usize,
    main_count: usize,
    audio_parts: &[PartSummary],
) -> Option<&PartSummary> {
    if audio_parts.len() == main_count {
        audio_parts.get(main_index)
    } else if audio_parts.len() == 1 {
        audio_parts.first()
    } else {
        None
    }
}

/// Finalizes every main part of a recording, in order.
pub async fn finalize_recording(
    runner: &FfmpegRunner,
    report: &RecordingReport,
    settings: &FinalizeSettings,
) -> FinalizeReport {
    let mut finalize_report = FinalizeReport::default();
    let Some(main) = &report.main else {
        return finalize_report;
    };
    let audio_only = report
        .source
        .as_ref()
        .is_some_and(|source| source.audio_only)
        || settings.quality == Quality::Audio;
    let audio_parts: &[PartSummary] = report
        .audio
        .as_ref()
        .map_or(&[], |audio| audio.parts.as_slice());
    let main_count = main.parts.len();
    // fMP4 parts whose decode times go back (an unannounced encoder restart) are made continuous.
    for part in main.parts.iter().chain(audio_parts) {
        if let Ok(input) = identify(&part.path).await {
            crate::fmp4_join::make_part_continuous(&input).await;
        }
    }
    // Parts that can be one file (no separate audio rendition to keep in step with).
    let mut joined_parts: Vec<bool> = vec![false; main_count];
    let has_extra_tracks = !crate::tracks::read_track_plan(&report.output_directory)
        .extra_tracks
        .is_empty();
    if audio_parts.is_empty() && main_count > 1 && !audio_only && !has_extra_tracks {
        let maximum_bytes = settings.maximum_joined_bytes.or(main.maximum_part_bytes);
        let groups = joinable_groups(runner, &main.parts, maximum_bytes).await;
        for group in groups.iter().filter(|group| group.len() > 1) {
            let members: Vec<&PartSummary> = group
                .iter()
                .filter_map(|&index| main.parts.get(index))
                .collect();
            match finalize_joined(runner, &members, settings).await {
                Ok(file) => {
                    for &index in group {
                        if let Some(joined) = joined_parts.get_mut(index) {
                            *joined = true;
                        }
                    }
                    finalize_report.files.push(file);
                }
                Err(error) => {
                    tracing::warn!(%error, "joining the parts failed; each is finalized on its own");
                }
            }
        }
    }
    for (index, part) in main.parts.iter().enumerate() {
        if joined_parts.get(index).copied().unwrap_or(false) {
            continue;
        }
        let audio_part = if audio_only {
            None
        } else {
            audio_part_for(index, main_count, audio_parts)
        };
        let extras = if audio_only {
            crate::tracks::PartExtras::default()
        } else {
            let directory = report.output_directory.clone();
            tokio::task::spawn_blocking(move || {
                crate::tracks::part_extras(&directory, index, main_count)
            })
            .await
            .unwrap_or_default()
        };
        match finalize_part(runner, part, audio_part, audio_only, settings, &extras).await {
            Ok(file) => {
                if !settings.keep_intermediate_parts {
                    let _ = std::fs::remove_file(&part.path);
                    if let Some(audio) = audio_part
                        && (audio_parts.len() == main_count || index + 1 == main_count)
                    {
                        let _ = std::fs::remove_file(&audio.path);
                    }
                }
                finalize_report.files.push(file);
            }
            Err(error) => {
                tracing::warn!(part = %part.path.display(), %error, "finalize failed; the part is kept");
                finalize_report.failures.push(FinalizeFailure {
                    part_number: part.number,
                    kept_part: part.path.clone(),
                    message: error.user_message(),
                    detail: error.to_string(),
                });
            }
        }
    }
    finalize_report.files.sort_by_key(|file| file.part_number);
    if has_extra_tracks && finalize_report.failures.is_empty() && !settings.keep_intermediate_parts
    {
        for path in crate::tracks::extra_track_part_files(&report.output_directory) {
            let _ = std::fs::remove_file(path);
        }
    }
    finalize_report
}

/// What must match for two parts to be one file: container, codecs, picture size, audio; for
/// fMP4 parts also the init's sample descriptions ([`crate::fmp4_join::Fmp4Identity`]).
#[derive(Debug, Clone, PartialEq)]
pub struct JoinKey {
    pub format: streambot_ffmpeg::InputFormat,
    pub video: Option<(String, u32, u32)>,
    pub audio_codec: Option<String>,
    pub fragmented_mp4: Option<crate::fmp4_join::Fmp4Identity>,
}

/// Consecutive runs of parts (indices) that can be joined (pure): same [`JoinKey`], no split for
/// a configured limit in between ([`PartStartReason::SizeLimit`], `DurationLimit`), at most
/// `maximum_bytes` in all. A part whose streams are unknown (`None`) is on its own.
pub fn group_joinable_parts(
    parts: &[PartSummary],
    keys: &[Option<JoinKey>],
    maximum_bytes: Option<u64>,
) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_bytes = 0u64;
    for (index, part) in parts.iter().enumerate() {
        let key = keys.get(index).and_then(Option::as_ref);
        let joins_previous = index > 0
            && key.is_some()
            && key == keys.get(index - 1).and_then(Option::as_ref)
            && !matches!(
                part.reason,
                PartStartReason::SizeLimit | PartStartReason::DurationLimit
            )
            && maximum_bytes
                .is_none_or(|maximum| group_bytes.saturating_add(part.bytes) <= maximum);
        match groups.last_mut() {
            Some(group) if joins_previous => {
                group.push(index);
                group_bytes = group_bytes.saturating_add(part.bytes);
            }
            _ => {
                groups.push(vec![index]);
                group_bytes = part.bytes;
            }
        }
    }
    groups
}

/// A part's [`JoinKey`]: codecs from its own bytes ([`known_streams`]); the picture size, which a
/// TS program map does not carry, probed.
async fn join_key(runner: &FfmpegRunner, part: &PartSummary) -> Option<JoinKey> {
    let input = identify(&part.path).await.ok()?;
    let mut info = streams_of(runner, &input).await.ok()?;
    if info.video.as_ref().is_some_and(|video| video.height == 0) {
        info = runner.probe(&part.path).await.ok()?;
    }
    let fragmented_mp4 = crate::fmp4_join::identity_of_part(&input).await;
    Some(JoinKey {
        format: input.format,
        video: info
            .video
            .map(|video| (video.codec, video.width, video.height)),
        audio_codec: info.audio.map(|audio| audio.codec),
        fragmented_mp4,
    })
}

async fn joinable_groups(
    runner: &FfmpegRunner,
    parts: &[PartSummary],
    maximum_bytes: Option<u64>,
) -> Vec<Vec<usize>> {
    let mut keys = Vec::with_capacity(parts.len());
    for part in parts {
        // MPEG-TS parts, and fMP4 parts whose init segments were read.
        let key = join_key(runner, part).await.filter(|key| {
            key.format == streambot_ffmpeg::InputFormat::MpegTs || key.fragmented_mp4.is_some()
        });
        keys.push(key);
    }
    group_joinable_parts(parts, &keys, maximum_bytes)
}

/// File name of the intermediate that joins parts from `first_number` on (`ts` or `mp4`).
fn joined_part_file_name(first_number: u32, extension: &str) -> String {
    format!("joined-{first_number:04}.{extension}")
}

/// Join `parts` (in order, same streams) with the concat demuxer into one MPEG-TS intermediate
/// (fMP4 parts: [`crate::fmp4_join`] into one fMP4) with timestamps made continuous, finalize that
/// as one part, and only when the finished file passed its checks remove the joined intermediate
/// and (unless kept) the parts.
async fn finalize_joined(
    runner: &FfmpegRunner,
    parts: &[&PartSummary],
    settings: &FinalizeSettings,
) -> Result<FinishedFile, FfmpegError> {
    let Some(first) = parts.first() else {
        return Err(FfmpegError::InvalidInput {
            input: String::new(),
            detail: "no parts to join".to_owned(),
            stderr_tail: String::new(),
        });
    };
    let directory = first.path.parent().unwrap_or_else(|| Path::new("."));
    let inputs: Vec<PathBuf> = parts.iter().map(|part| part.path.clone()).collect();
    let fragmented = identify(&first.path).await?.format == streambot_ffmpeg::InputFormat::Mp4;
    let joined_path = directory.join(joined_part_file_name(
        first.number,
        if fragmented { "mp4" } else { "ts" },
    ));
    let joining = if fragmented {
        crate::fmp4_join::join_parts(&inputs, &joined_path).await
    } else {
        let mut options = streambot_ffmpeg::ConcatOptions::new(OutputContainer::Ts);
        // The concat demuxer takes its streams from the first part.
        let first_input = identify(&first.path).await?;
        options.main_streams_left_out = tokio::task::spawn_blocking(move || {
            streambot_ffmpeg::declared_streams_without_packets(&first_input)
                .iter()
                .map(|stream| stream.pid)
                .collect()
        })
        .await
        .unwrap_or_default();
        runner
            .concat(&inputs, &joined_path, &options, None)
            .await
            .map(|_| ())
    };
    if let Err(error) = joining {
        let _ = std::fs::remove_file(&joined_path);
        return Err(error);
    }
    let joined = PartSummary {
        number: first.number,
        path: joined_path.clone(),
        reason: first.reason,
        bytes: parts.iter().map(|part| part.bytes).sum(),
        segments: parts.iter().map(|part| part.segments).sum(),
        media_seconds: parts.iter().map(|part| part.media_seconds).sum(),
    };
    let finished = finalize_part(
        runner,
        &joined,
        None,
        false,
        settings,
        &crate::tracks::PartExtras::default(),
    )
    .await;
    let _ = std::fs::remove_file(&joined_path);
    let mut file = finished?;
    if !settings.keep_intermediate_parts {
        for part in parts {
            let _ = std::fs::remove_file(&part.path);
        }
    }
    file.joined_part_numbers = parts.iter().map(|part| part.number).collect();
    tracing::info!(
        parts = ?file.joined_part_numbers,
        file = %file.path.display(),
        "parts with the same streams joined into one file"
    );
    Ok(file)
}

/// File name of the finished file of part `number`.
pub fn finished_file_name(number: u32, container: OutputContainer) -> String {
    format!("recording-{number:04}.{}", container.extension())
}

/// Tell a part's format from its name and first bytes (off the async threads).
async fn identify(path: &Path) -> Result<MediaInput, FfmpegError> {
    let path = path.to_path_buf();
    match tokio::task::spawn_blocking(move || MediaInput::identify(&path)).await {
        Ok(result) => result,
        Err(error) => Err(FfmpegError::InvalidInput {
            input: String::new(),
            detail: format!("identifying the part failed: {error}"),
            stderr_tail: String::new(),
        }),
    }
}

/// What a part holds: read from its own bytes, or, when they do not say, probed.
async fn streams_of(runner: &FfmpegRunner, input: &MediaInput) -> Result<StreamInfo, FfmpegError> {
    let reading = input.clone();
    let known = tokio::task::spawn_blocking(move || known_streams(&reading))
        .await
        .ok()
        .flatten();
    match known {
        Some(info) => Ok(info),
        None => runner.probe(&input.path).await,
    }
}

/// [`streams_of`] for the main part, without the streams its program map declares that carry
/// no packet (an audio rendition that is off, or a hostile map: ffmpeg cannot write them and the
/// whole part would be lost), and those streams' ids for [`RemuxOptions::main_streams_left_out`].
async fn streams_with_packets_of(
    runner: &FfmpegRunner,
    input: &MediaInput,
) -> Result<(StreamInfo, streambot_ffmpeg::PartStreams), FfmpegError> {
    let reading = input.clone();
    let mut streams = tokio::task::spawn_blocking(move || known_streams_with_packets(&reading))
        .await
        .unwrap_or_default();
    if !streams.left_out.is_empty() {
        tracing::warn!(part = %input.path.display(), streams = ?streams.left_out, "streams the program map declares carry no packet; left out");
    }
    match streams.known.take() {
        Some(info) => Ok((info, streams)),
        None => Ok((runner.probe(&input.path).await?, streams)),
    }
}

/// Removes its files when dropped (the WebVTT files made for one remux).
struct RemoveOnDrop(Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Adds the extra audio tracks and the subtitle tracks to a remux of `part`: the subtitle
/// segments are merged onto the part's timeline ([`crate::webvtt::merge_segments`], from the
/// part's first timestamp) into WebVTT files beside it; returns those files.
async fn add_extra_tracks(
    runner: &FfmpegRunner,
    part: &PartSummary,
    extras: &crate::tracks::PartExtras,
    options: &mut RemuxOptions,
) -> Result<Vec<PathBuf>, FfmpegError> {
    options.first_audio_track = extras.first_audio.clone();
    for (audio_part, label) in &extras.audio {
        let input = identify(&audio_part.path).await?;
        let reading = input.clone();
        // Its first audio stream may be one that carries no packet.
        let streams = tokio::task::spawn_blocking(move || known_streams_with_packets(&reading))
            .await
            .unwrap_or_default();
        options
            .extra_audio_inputs
            .push(streambot_ffmpeg::AudioTrackInput {
                input,
                label: label.clone(),
                stream_id: streams.first_audio_id,
            });
    }
    let mut files = Vec::new();
    if extras.subtitles.is_empty() {
        return Ok(files);
    }
    let video_start = match runner.probe_start_seconds(&part.path).await {
        Ok(Some(start)) => start,
        Ok(None) | Err(_) => {
            tracing::warn!(part = %part.path.display(), "the part's start time is unknown: subtitles timed from zero");
            0.0
        }
    };
    let directory = part.path.parent().unwrap_or_else(|| Path::new("."));
    for (index, (bodies, label)) in extras.subtitles.iter().enumerate() {
        let mut merged =
            crate::webvtt::merge_segments(bodies.iter().map(Vec::as_slice), video_start);
        // Cues of this part only (a later part has its own).
        let part_end = part.media_seconds.max(0.0) + 1.0;
        merged.cues.retain(|cue| cue.start_seconds <= part_end);
        if merged.cues.is_empty() {
            continue;
        }
        let path = directory.join(format!("subtitles{}-for-{:04}.vtt", index + 1, part.number));
        if let Err(source) = std::fs::write(&path, merged.to_webvtt()) {
            tracing::warn!(%source, "writing the subtitle file failed: left out");
            continue;
        }
        files.push(path.clone());
        options
            .subtitle_inputs
            .push(streambot_ffmpeg::SubtitleInput {
                path,
                label: label.clone(),
            });
    }
    Ok(files)
}

/// A JPEG with a picture size in it (the remux's own thumbnail output may have found no frame).
fn is_valid_thumbnail(path: &Path) -> bool {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| streambot_ffmpeg::probe::jpeg_dimensions(&bytes))
        .is_some_and(|(width, height)| width > 0 && height > 0)
}

/// Reservation attempts before the two-pass `+faststart` is used instead.
const INDEX_RESERVATION_ATTEMPTS: usize = 2;

/// Remux to mp4/m4a with the index reserved up front (one pass); a reservation ffmpeg reports too
/// small is retried with what it said it needed (and a margin), then with `+faststart`.
async fn remux_in_one_pass(
    runner: &FfmpegRunner,
    part: &PartSummary,
    output: &Path,
    options: &RemuxOptions,
    has_video: bool,
    has_audio: bool,
) -> Result<FinishedOutput, FfmpegError> {
    let mut reserved = estimated_index_bytes(part.media_seconds, has_video, has_audio);
    let mut options = options.clone();
    for _ in 0..INDEX_RESERVATION_ATTEMPTS {
        let attempt = RemuxOptions {
            reserved_index_bytes: Some(reserved),
            ..options.clone()
        };
        let finished = match runner.remux(&part.path, output, &attempt, None).await {
            Ok(finished) => finished,
            // The thumbnail is not worth failing for: once more without it.
            Err(error) if options.thumbnail.is_some() => {
                tracing::info!(%error, "the remux with a thumbnail failed; again without it");
                options.thumbnail = None;
                runner
                    .remux(
                        &part.path,
                        output,
                        &RemuxOptions {
                            reserved_index_bytes: Some(reserved),
                            ..options.clone()
                        },
                        None,
                    )
                    .await?
            }
            Err(error) => return Err(error),
        };
        match reserved_index_shortfall(&finished.stderr_tail) {
            None => return Ok(finished),
            Some(shortfall) => {
                tracing::info!(
                    part = %part.path.display(),
                    reserved,
                    shortfall,
                    "the reserved mp4 index was too small; remuxing again with more room"
                );
                let _ = std::fs::remove_file(output);
                reserved = reserved.saturating_add(shortfall.saturating_mul(2)) + 64 * 1024;
            }
        }
    }
    let faststart = RemuxOptions {
        reserved_index_bytes: None,
        faststart: true,
        ..options.clone()
    };
    runner.remux(&part.path, output, &faststart, None).await
}

/// The finished file's streams and duration: from its index in process for mp4/m4a (which must
/// come before the media), by ffprobe for mkv/ts.
async fn finished_streams(
    runner: &FfmpegRunner,
    output: &Path,
    container: OutputContainer,
) -> Result<StreamInfo, FfmpegError> {
    if !container.supports_faststart() {
        return runner.probe(output).await;
    }
    let path = output.to_path_buf();
    let index = tokio::task::spawn_blocking(move || read_mp4_index(&path))
        .await
        .map_err(|error| FfmpegError::InvalidInput {
            input: output.to_string_lossy().into_owned(),
            detail: format!("reading the index failed: {error}"),
            stderr_tail: String::new(),
        })?
        .map_err(|error| FfmpegError::InvalidInput {
            input: output.to_string_lossy().into_owned(),
            detail: format!("the finished file's index is unreadable: {error}"),
            stderr_tail: String::new(),
        })?;
    if !index.moov_before_mdat {
        return Err(FfmpegError::InvalidInput {
            input: output.to_string_lossy().into_owned(),
            detail: "the finished file's index is not before its media".to_owned(),
            stderr_tail: String::new(),
        });
    }
    let mut info = stream_info_from_index(&index);
    info.size_bytes = std::fs::metadata(output)
        .ok()
        .map(|metadata| metadata.len());
    Ok(info)
}

/// The ffmpeg remux of one part (mp4/m4a: one pass with the index reserved).
async fn remux_with_ffmpeg(
    runner: &FfmpegRunner,
    part: &PartSummary,
    output: &Path,
    options: &RemuxOptions,
    container: OutputContainer,
    has_video: bool,
    expect_audio: bool,
) -> Result<(), FfmpegError> {
    if container.supports_faststart() {
        remux_in_one_pass(runner, part, output, options, has_video, expect_audio).await?;
    } else {
        runner.remux(&part.path, output, options, None).await?;
    }
    Ok(())
}

/// The native remuxer's inputs for an mp4 remux with these options (pure): an MPEG-TS part, and
/// an MPEG-TS audio rendition if any, with no extra audio tracks, subtitles or track labels
/// (those stay with ffmpeg). `None`: ffmpeg does it.
pub fn native_remux_inputs(main: &MediaInput, options: &RemuxOptions) -> Option<Vec<RemuxInput>> {
    use streambot_ffmpeg::InputFormat;
    if main.format != InputFormat::MpegTs
        || options.container != OutputContainer::Mp4
        || !options.timestamps_from_zero
        || !options.extra_audio_inputs.is_empty()
        || !options.subtitle_inputs.is_empty()
        || options.first_audio_track != streambot_ffmpeg::TrackLabel::default()
    {
        return None;
    }
    let mut inputs = vec![RemuxInput {
        path: main.path.clone(),
        role: InputRole::Main {
            take_audio: options.audio_input.is_none(),
        },
    }];
    if let Some(audio) = &options.audio_input {
        if audio.format != InputFormat::MpegTs {
            return None;
        }
        inputs.push(RemuxInput {
            path: audio.path.clone(),
            role: InputRole::AudioRendition,
        });
    }
    Some(inputs)
}

/// The native remuxer's input for an audio-only m4a (pure): the AAC of an MPEG-TS part.
pub fn native_audio_only_inputs(
    main: &MediaInput,
    source_info: &StreamInfo,
) -> Option<Vec<RemuxInput>> {
    (main.format == streambot_ffmpeg::InputFormat::MpegTs && source_info.audio_is_adts_aac()).then(
        || {
            vec![RemuxInput {
                path: main.path.clone(),
                role: InputRole::AudioRendition,
            }]
        },
    )
}

/// Sets the flag when dropped: a finalize dropped mid-remux stops the blocking task at its next
/// read (it removes its own output).
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Remux in process to `<output>.partial`, fsynced, renamed to `output`. `false` when the remuxer
/// declined (the reason logged) or failed: the caller runs ffmpeg, the part untouched.
async fn remux_natively(
    inputs: Vec<RemuxInput>,
    brand: Brand,
    media_seconds: f64,
    output: &Path,
) -> bool {
    let partial = streambot_ffmpeg::run::partial_path(output);
    let cancelled = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(cancelled.clone());
    let task_partial = partial.clone();
    let started = std::time::Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        // One read of the part, the index written last into room reserved for it (two passes
        // when it does not fit: the ledger's duration was far off).
        streambot_mp4remux::remux_to_mp4_in_one_pass(
            &inputs,
            &task_partial,
            brand,
            Limits::default(),
            streambot_mp4remux::estimated_index_bytes(media_seconds),
            &cancelled,
        )
    })
    .await;
    match result {
        Ok(Ok(summary)) => match std::fs::rename(&partial, output) {
            Ok(()) => {
                tracing::debug!(
                    file = %output.display(),
                    bytes = summary.bytes,
                    seconds = started.elapsed().as_secs_f64(),
                    "remuxed in process"
                );
                true
            }
            Err(error) => {
                tracing::warn!(%error, "moving the remuxed file into place failed; ffmpeg remuxes");
                let _ = std::fs::remove_file(&partial);
                false
            }
        },
        Ok(Err(RemuxError::Unsupported(refusal))) => {
            tracing::info!(reason = %refusal.reason, "not remuxed in process; ffmpeg remuxes");
            false
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "the in-process remux failed; ffmpeg remuxes");
            false
        }
        Err(error) => {
            tracing::warn!(%error, "the in-process remux stopped; ffmpeg remuxes");
            let _ = std::fs::remove_file(&partial);
            false
        }
    }
}

async fn finalize_part(
    runner: &FfmpegRunner,
    part: &PartSummary,
    audio_part: Option<&PartSummary>,
    audio_only: bool,
    settings: &FinalizeSettings,
    extras: &crate::tracks::PartExtras,
) -> Result<FinishedFile, FfmpegError> {
    let directory = part.path.parent().unwrap_or_else(|| Path::new("."));
    let container = output_container(settings.format, audio_only);
    let output = directory.join(finished_file_name(part.number, container));
    let main_input = identify(&part.path).await?;
    let (mut source_info, part_streams) = streams_with_packets_of(runner, &main_input).await?;
    let main_streams_left_out = part_streams.left_out;
    let audio_input = match audio_part {
        Some(audio) => Some(identify(&audio.path).await?),
        None => None,
    };
    let (audio_info, audio_streams_left_out) = match &audio_input {
        Some(audio) => {
            let (info, streams) = streams_with_packets_of(runner, audio).await?;
            (Some(info), streams.left_out)
        }
        None => (None, Vec::new()),
    };
    let audio_is_adts = match &audio_info {
        Some(info) => info.audio_is_adts_aac(),
        None => source_info.audio_is_adts_aac(),
    };
    let wanted_preset = transcode_preset_for(settings.quality);
    // The picture size is not in a TS part's program map: probe only when a preset needs it.
    if wanted_preset.is_some()
        && !audio_only
        && source_info
            .video
            .as_ref()
            .is_some_and(|video| video.height == 0)
    {
        source_info = runner.probe(&part.path).await?;
    }
    let preset = wanted_preset.filter(|preset| {
        source_info.has_video() && !audio_only && !preset.is_satisfied_by(&source_info)
    });
    let transcoded = preset.is_some();
    let expect_audio = audio_only
        || source_info.has_audio()
        || audio_info.as_ref().is_some_and(StreamInfo::has_audio);
    // The in-process remux first where it applies; a file of it that fails the check is thrown
    // away and ffmpeg remuxes the part (a remuxer bug must not cost the user the recording).
    let mut native_allowed = settings.native_remux;
    let (remuxed_natively, finished_info) = loop {
        let mut remuxed_natively = false;
        if audio_only {
            let native = native_audio_only_inputs(&main_input, &source_info)
                .filter(|_| native_allowed && container == OutputContainer::M4a);
            if let Some(inputs) = native {
                remuxed_natively =
                    remux_natively(inputs, Brand::M4a, part.media_seconds, &output).await;
            }
            if !remuxed_natively {
                let options = AudioOnlyOptions {
                    source_audio_is_aac: source_info.audio_is_aac(),
                    source_audio_is_adts: source_info.audio_is_adts_aac(),
                    // `0:a:0` could be a declared stream without packets.
                    audio_stream_id: part_streams.first_audio_id,
                    ..AudioOnlyOptions::default()
                };
                runner
                    .audio_only(&part.path, &output, &options, None)
                    .await?;
            }
        } else if let Some(preset) = &preset {
            let mut options = TranscodeOptions::new(container, preset.clone());
            options.audio_input = audio_input.clone();
            options.main_streams_left_out = main_streams_left_out.clone();
            options.audio_streams_left_out = audio_streams_left_out.clone();
            runner
                .transcode(&part.path, &output, &options, None)
                .await?;
        } else {
            let mut options = RemuxOptions::new(container);
            options.audio_input = audio_input.clone();
            options.audio_is_adts_aac = audio_is_adts;
            options.main_streams_left_out = main_streams_left_out.clone();
            options.audio_streams_left_out = audio_streams_left_out.clone();
            options.thumbnail_stream_id = part_streams.first_video_id;
            let subtitle_files = add_extra_tracks(runner, part, extras, &mut options).await?;
            let _remove_subtitle_files = RemoveOnDrop(subtitle_files);
            let native = native_remux_inputs(&main_input, &options)
                .filter(|_| native_allowed && container == OutputContainer::Mp4);
            if let Some(inputs) = native {
                // Never mistake an earlier attempt's picture for this file's.
                let _ = std::fs::remove_file(output.with_extension("jpg"));
                remuxed_natively =
                    remux_natively(inputs, Brand::Mp4, part.media_seconds, &output).await;
            }
            if remuxed_natively {
                // Written, fsynced and renamed into place: checked below like ffmpeg's.
            } else {
                if source_info.has_video() {
                    let thumbnail = output.with_extension("jpg");
                    // Never mistake an earlier attempt's picture for this pass's.
                    let _ = std::fs::remove_file(&thumbnail);
                    options.thumbnail = Some(thumbnail);
                }
                remux_with_ffmpeg(
                    runner,
                    part,
                    &output,
                    &options,
                    container,
                    source_info.has_video(),
                    expect_audio,
                )
                .await?;
            }
        }
        let expectations = OutputExpectations {
            require_video: !audio_only && source_info.has_video(),
            require_audio: expect_audio,
            expected_duration: Some(Duration::from_secs_f64(part.media_seconds.max(0.0))),
            duration_tolerance: settings.duration_tolerance,
        };
        let checked = match finished_streams(runner, &output, container).await {
            Ok(info) => check_output(&output, &info, &expectations).map(|()| info),
            Err(error) => Err(error),
        };
        match checked {
            Ok(info) => break (remuxed_natively, info),
            Err(error) => {
                let _ = std::fs::remove_file(&output);
                if !remuxed_natively {
                    return Err(error);
                }
                tracing::warn!(file = %output.display(), %error, "the in-process remux made a file that fails the check; ffmpeg remuxes the part");
                native_allowed = false;
            }
        }
    };
    let decode_check = if settings.check_decoding {
        let duration_seconds = finished_info
            .duration
            .map_or(part.media_seconds, |duration| duration.as_secs_f64());
        // The in-process remuxer read every NAL unit and ADTS frame of the part (and declines
        // what it cannot follow): its files are sampled briefly; anything else thoroughly.
        let sampling = if remuxed_natively {
            streambot_ffmpeg::DecodeCheckSampling::QUICK
        } else {
            streambot_ffmpeg::DecodeCheckSampling::THOROUGH
        };
        match runner
            .decode_check(&output, duration_seconds, sampling)
            .await
        {
            Ok(check) => {
                if !check.is_clean() {
                    tracing::warn!(
                        file = %output.display(),
                        errors = check.error_count,
                        sampled = check.sampled,
                        first = ?check.first_errors.first(),
                        "the finished file does not decode cleanly: reported as damaged"
                    );
                }
                Some(check)
            }
            Err(error) => {
                tracing::warn!(%error, "the decode check could not run");
                None
            }
        }
    } else {
        None
    };
    let thumbnail_path = output.with_extension("jpg");
    let thumbnail = if !finished_info.has_video()
        || (remuxed_natively && !settings.thumbnails_for_native_remux)
    {
        None
    } else if is_valid_thumbnail(&thumbnail_path) {
        // Written by the remux pass itself.
        Some(thumbnail_path)
    } else {
        match runner.thumbnail(&output, &thumbnail_path).await {
            Ok(thumbnail) => Some(thumbnail.path),
            Err(error) => {
                tracing::warn!(%error, "thumbnail failed; the file is fine without it");
                None
            }
        }
    };
    let size_bytes = std::fs::metadata(&output)
        .map(|meta| meta.len())
        .unwrap_or(0);
    Ok(FinishedFile {
        part_number: part.number,
        path: output,
        size_bytes,
        duration_seconds: finished_info
            .duration
            .map_or(part.media_seconds, |duration| duration.as_secs_f64()),
        width: finished_info.video.as_ref().map(|video| video.width),
        height: finished_info.video.as_ref().map(|video| video.height),
        has_audio: finished_info.has_audio(),
        thumbnail,
        transcoded,
        joined_part_numbers: Vec::new(),
        damaged: decode_check.as_ref().is_some_and(|check| !check.is_clean()),
        decode_check,
        remuxed_in_process: remuxed_natively,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use streambot_hls::ledger::PartStartReason;

    fn ffmpeg_available() -> bool {
        std::process::Command::new("ffmpeg")
            .arg("-version")
            .output()
            .is_ok_and(|output| output.status.success())
    }

    #[test]
    fn the_native_remuxer_takes_ts_parts_without_extra_tracks() {
        use streambot_ffmpeg::{AudioTrackInput, InputFormat, TrackLabel};
        let main = MediaInput::new("/job/main-0001.ts", InputFormat::MpegTs);
        let mut options = RemuxOptions::new(OutputContainer::Mp4);
        let inputs = native_remux_inputs(&main, &options).expect("taken");
        assert_eq!(inputs.len(), 1);
        assert_eq!(inputs[0].role, InputRole::Main { take_audio: true });
        options.audio_input = Some(MediaInput::new("/job/audio-0001.ts", InputFormat::MpegTs));
        let inputs = native_remux_inputs(&main, &options).expect("taken");
        assert_eq!(inputs[0].role, InputRole::Main { take_audio: false });
        assert_eq!(inputs[1].role, InputRole::AudioRendition);
        // An .aac rendition, fMP4 parts, other containers, labels and extra tracks: ffmpeg.
        let mut aac = options.clone();
        aac.audio_input = Some(MediaInput::new("/job/audio-0001.aac", InputFormat::Adts));
        assert!(native_remux_inputs(&main, &aac).is_none());
        let fmp4 = MediaInput::new("/job/main-0001.mp4", InputFormat::Mp4);
        assert!(native_remux_inputs(&fmp4, &options).is_none());
        let mkv = RemuxOptions::new(OutputContainer::Mkv);
        assert!(native_remux_inputs(&main, &mkv).is_none());
        let mut labelled = options.clone();
        labelled.first_audio_track = TrackLabel {
            language: Some("de".to_owned()),
            title: None,
        };
        assert!(native_remux_inputs(&main, &labelled).is_none());
        let mut extra = options.clone();
        extra.extra_audio_inputs.push(AudioTrackInput {
            input: MediaInput::new("/job/audio2-0001.ts", InputFormat::MpegTs),
            label: TrackLabel::default(),
            stream_id: None,
        });
        assert!(native_remux_inputs(&main, &extra).is_none());
    }

    /// A reservation far too small for the part (the ledger claims 1 s of a 240 s part): ffmpeg
    /// reports it, the remux is run again with the room it asked for, and the file has its index
    /// first and the whole duration.
    #[tokio::test]
    async fn a_too_small_index_reservation_is_detected_and_retried() {
        if !ffmpeg_available() {
            eprintln!("ffmpeg not installed: skipping");
            return;
        }
        let directory = tempfile::tempdir().expect("tempdir");
        let part_path = directory.path().join("main-0001.ts");
        let made = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=96x54:rate=25"])
            .args(["-f", "lavfi", "-i", "sine", "-t", "240"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "50",
                "-c:a",
                "aac",
            ])
            .args(["-f", "mpegts"])
            .arg(&part_path)
            .status()
            .expect("ffmpeg runs");
        assert!(made.success());
        let part = PartSummary {
            number: 1,
            path: part_path.clone(),
            reason: PartStartReason::First,
            bytes: 0,
            segments: 1,
            media_seconds: 1.0,
        };
        let runner = FfmpegRunner::default();
        let output = directory.path().join("recording-0001.mp4");
        let options = RemuxOptions {
            audio_is_adts_aac: true,
            ..RemuxOptions::new(OutputContainer::Mp4)
        };
        let too_small = estimated_index_bytes(1.0, true, true);
        let finished = remux_in_one_pass(&runner, &part, &output, &options, true, true)
            .await
            .expect("remuxed");
        assert!(reserved_index_shortfall(&finished.stderr_tail).is_none());
        let index = read_mp4_index(&output).expect("index");
        assert!(index.moov_before_mdat && !index.fragmented);
        assert!(
            (index.duration.as_secs_f64() - 240.0).abs() < 1.0,
            "{:?}",
            index.duration
        );
        let info = finished_streams(&runner, &output, OutputContainer::Mp4)
            .await
            .expect("checked in process");
        assert!(info.has_video() && info.has_audio());
        // The first attempt really was too small: ffmpeg says so for that reservation.
        let direct = RemuxOptions {
            reserved_index_bytes: Some(too_small),
            ..options
        };
        let first = runner
            .remux(&part_path, &output, &direct, None)
            .await
            .expect("ffmpeg exits 0 even so");
        assert!(reserved_index_shortfall(&first.stderr_tail).is_some());
        assert!(
            finished_streams(&runner, &output, OutputContainer::Mp4)
                .await
                .is_err()
        );
    }
}
