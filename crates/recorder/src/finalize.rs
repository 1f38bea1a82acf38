//! Finalize: turn the recorded parts into files people can play and share.
//!
//! Each main part is remuxed with ffmpeg (`-c copy`, `+faststart`, timestamps from zero) to mp4,
//! mkv or ts, or m4a for audio only; the separately fetched audio rendition is muxed in; a quality
//! preset re-encodes only when the recorded variant does not already match it. The result is
//! probed (streams present, duration within one segment of the ledger) and a thumbnail taken. The
//! intermediate part is removed only after the check passes; when anything fails, the part stays
//! and the error says why.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use streambot_core::{OutputFormat, Quality};
use streambot_ffmpeg::{
    AudioOnlyOptions, FfmpegError, FfmpegRunner, MediaInput, OutputContainer, OutputExpectations,
    RemuxOptions, StreamInfo, TranscodeOptions, TranscodePreset, check_output,
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
    let source_info = runner.probe(&part.path).await?;
    let audio_info = match audio_part {
        Some(audio) => Some(runner.probe(&audio.path).await?),
        None => None,
    };
    let audio_is_adts = match &audio_info {
        Some(info) => info.audio_is_adts_aac(),
        None => source_info.audio_is_adts_aac(),
    };
    let preset = transcode_preset_for(settings.quality).filter(|preset| {
        source_info.has_video() && !audio_only && !preset.is_satisfied_by(&source_info)
    });
    let transcoded = preset.is_some();
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
        options.audio_input = audio_part
            .map(|audio| MediaInput::identify(&audio.path))
            .transpose()?;
        runner
            .transcode(&part.path, &output, &options, None)
            .await?;
    } else {
        let mut options = RemuxOptions::new(container);
        options.audio_input = audio_part
            .map(|audio| MediaInput::identify(&audio.path))
            .transpose()?;
        options.audio_is_adts_aac = audio_is_adts;
        runner.remux(&part.path, &output, &options, None).await?;
    }
    let finished_info = runner.probe(&output).await;
    let finished_info = match finished_info {
        Ok(info) => info,
        Err(error) => {
            let _ = std::fs::remove_file(&output);
            return Err(error);
        }
    };
    let expectations = OutputExpectations {
        require_video: !audio_only && source_info.has_video(),
        require_audio: audio_only
            || source_info.has_audio()
            || audio_info.as_ref().is_some_and(StreamInfo::has_audio),
        expected_duration: Some(Duration::from_secs_f64(part.media_seconds.max(0.0))),
        duration_tolerance: settings.duration_tolerance,
    };
    if let Err(error) = check_output(&output, &finished_info, &expectations) {
        let _ = std::fs::remove_file(&output);
        return Err(error);
    }
    let thumbnail = if finished_info.has_video() {
        let thumbnail_path = output.with_extension("jpg");
        match runner.thumbnail(&output, &thumbnail_path).await {
            Ok(thumbnail) => Some(thumbnail.path),
            Err(error) => {
                tracing::warn!(%error, "thumbnail failed; the file is fine without it");
                None
            }
        }
    } else {
        None
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
