//! Finalize: turn the recorded parts into files people can play and share.
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

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use streambot_core::{OutputFormat, Quality};
use streambot_ffmpeg::argv::{estimated_index_bytes, reserved_index_shortfall};
use streambot_ffmpeg::{
    AudioOnlyOptions, FfmpegError, FfmpegRunner, FinishedOutput, MediaInput, OutputContainer,
    OutputExpectations, RemuxOptions, StreamInfo, TranscodeOptions, TranscodePreset, check_output,
    known_streams, read_mp4_index, stream_info_from_index,
};
use streambot_hls::ledger::PartSummary;

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
}

impl FinalizeSettings {
    pub fn new(format: OutputFormat, quality: Quality) -> Self {
        FinalizeSettings {
            format,
            quality,
            keep_intermediate_parts: false,
            duration_tolerance: Duration::from_secs(3),
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

/// Which audio part goes with main part `index` of `main_count`.
fn audio_part_for(
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
    for (index, part) in main.parts.iter().enumerate() {
        let audio_part = if audio_only {
            None
        } else {
            audio_part_for(index, main_count, audio_parts)
        };
        match finalize_part(runner, part, audio_part, audio_only, settings).await {
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
    finalize_report
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

async fn finalize_part(
    runner: &FfmpegRunner,
    part: &PartSummary,
    audio_part: Option<&PartSummary>,
    audio_only: bool,
    settings: &FinalizeSettings,
) -> Result<FinishedFile, FfmpegError> {
    let directory = part.path.parent().unwrap_or_else(|| Path::new("."));
    let container = output_container(settings.format, audio_only);
    let output = directory.join(finished_file_name(part.number, container));
    let main_input = identify(&part.path).await?;
    let mut source_info = streams_of(runner, &main_input).await?;
    let audio_input = match audio_part {
        Some(audio) => Some(identify(&audio.path).await?),
        None => None,
    };
    let audio_info = match &audio_input {
        Some(audio) => Some(streams_of(runner, audio).await?),
        None => None,
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
    if audio_only {
        let options = AudioOnlyOptions {
            source_audio_is_aac: source_info.audio_is_aac(),
            source_audio_is_adts: source_info.audio_is_adts_aac(),
            ..AudioOnlyOptions::default()
        };
        runner
            .audio_only(&part.path, &output, &options, None)
            .await?;
    } else if let Some(preset) = preset {
        let mut options = TranscodeOptions::new(container, preset);
        options.audio_input = audio_input;
        runner
            .transcode(&part.path, &output, &options, None)
            .await?;
    } else {
        let mut options = RemuxOptions::new(container);
        options.audio_input = audio_input;
        options.audio_is_adts_aac = audio_is_adts;
        if source_info.has_video() {
            let thumbnail = output.with_extension("jpg");
            // Never mistake an earlier attempt's picture for this pass's.
            let _ = std::fs::remove_file(&thumbnail);
            options.thumbnail = Some(thumbnail);
        }
        if container.supports_faststart() {
            remux_in_one_pass(
                runner,
                part,
                &output,
                &options,
                source_info.has_video(),
                expect_audio,
            )
            .await?;
        } else {
            runner.remux(&part.path, &output, &options, None).await?;
        }
    }
    let finished_info = match finished_streams(runner, &output, container).await {
        Ok(info) => info,
        Err(error) => {
            let _ = std::fs::remove_file(&output);
            return Err(error);
        }
    };
    let expectations = OutputExpectations {
        require_video: !audio_only && source_info.has_video(),
        require_audio: expect_audio,
        expected_duration: Some(Duration::from_secs_f64(part.media_seconds.max(0.0))),
        duration_tolerance: settings.duration_tolerance,
    };
    if let Err(error) = check_output(&output, &finished_info, &expectations) {
        let _ = std::fs::remove_file(&output);
        return Err(error);
    }
    let thumbnail_path = output.with_extension("jpg");
    let thumbnail = if !finished_info.has_video() {
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
