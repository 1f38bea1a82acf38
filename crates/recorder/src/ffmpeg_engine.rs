//! The ffmpeg engine inside a recording: for links that are not HLS (a live MPEG-TS or FLV over
//! HTTP, an mp4 file), ffmpeg reads the link itself and writes `part-NNNN.ts` segment files. The
//! same control applies (pause = SIGSTOP, stop = `q` → SIGTERM → SIGKILL), progress is reported,
//! and the report lists the segment files as parts so finalize treats them like the native
//! engine's parts. There is no ledger: ffmpeg cannot say what it missed.

use std::path::Path;
use std::time::{Duration, Instant};

use streambot_core::{RecordingEndReason, RecordingOptions, RecordingProgress};
use streambot_ffmpeg::run::engine_segment_files;
use streambot_ffmpeg::{EngineOptions, EngineRecording, FfmpegBinaries, FfmpegRunner};
use streambot_hls::ledger::{PartStartReason, PartSummary};
use streambot_hls::url_safety::{check_url_and_resolved_addresses, parse_and_check_url};
use streambot_hls::{DesiredState, HlsError, HlsHttpClient, TrackEvent};
use tokio::sync::{mpsc, watch};

use crate::{
    RecorderEvent, RecordingOutcome, RecordingReport, RecordingSettings, ResolvedSource,
    TrackReport, write_report,
};

const PROGRESSIVE_MEDIA_EXTENSIONS: [&str; 9] = [
    ".ts", ".mp4", ".flv", ".mkv", ".webm", ".mp3", ".aac", ".m4a", ".mov",
];

/// True for links whose path ends like a single media file or stream, not a playlist.
pub fn looks_like_progressive_media(url_text: &str) -> bool {
    let Ok(url) = url::Url::parse(url_text.trim()) else {
        return false;
    };
    let path = url.path().to_ascii_lowercase();
    PROGRESSIVE_MEDIA_EXTENSIONS
        .iter()
        .any(|extension| path.ends_with(extension))
}

fn failed(
    settings: &RecordingSettings,
    message: String,
    retryable: bool,
    failure: streambot_core::FailureKind,
) -> RecordingReport {
    let report = RecordingReport {
        outcome: RecordingOutcome::Failed {
            message,
            retryable,
            failure,
        },
        source: None,
        main: None,
        audio: None,
        output_directory: settings.output_directory.clone(),
    };
    write_report(&settings.output_directory, &report);
    report
}

fn next_segment_number(directory: &Path) -> u32 {
    engine_segment_files(directory)
        .unwrap_or_default()
        .iter()
        .filter_map(|path| {
            path.file_stem()
                .and_then(|stem| stem.to_str())
                .and_then(|stem| stem.strip_prefix("part-"))
                .and_then(|number| number.parse::<u32>().ok())
        })
        .max()
        .map_or(1, |highest| highest + 1)
}

/// Records a non-HLS link with ffmpeg until it ends, is stopped, or fails.
pub async fn record_with_ffmpeg_engine(
    client: &HlsHttpClient,
    url_text: &str,
    options: RecordingOptions,
    settings: RecordingSettings,
    mut control: watch::Receiver<DesiredState>,
    events: mpsc::UnboundedSender<RecorderEvent>,
) -> RecordingReport {
    let policy = client.policy();
    let url = match parse_and_check_url(url_text, policy) {
        Ok(url) => url,
        Err(error) => {
            let failure = HlsError::from(error.clone()).failure_kind();
            return failed(&settings, error.to_string(), false, failure);
        }
    };
    if let Err(error) = check_url_and_resolved_addresses(&url, policy).await {
        let failure = HlsError::from(error.clone()).failure_kind();
        return failed(&settings, error.to_string(), false, failure);
    }
    if let Err(error) = std::fs::create_dir_all(&settings.output_directory) {
        return failed(
            &settings,
            format!(
                "could not create {}: {error}",
                settings.output_directory.display()
            ),
            false,
            streambot_core::FailureKind::Internal,
        );
    }
    let source = ResolvedSource {
        requested_url: url.to_string(),
        main_media_playlist_url: url.to_string(),
        audio_media_playlist_url: None,
        choice: None,
        audio_only: options.quality == streambot_core::Quality::Audio,
    };
    let _ = events.send(RecorderEvent::Resolved {
        source: source.clone(),
    });
    let binaries = FfmpegBinaries::from_environment();
    let engine_options = EngineOptions {
        max_duration: options.maximum_duration,
        segment_seconds: settings
            .maximum_part_seconds
            .map_or(600, |seconds| seconds.clamp(1.0, 86_400.0) as u32),
        first_segment_number: next_segment_number(&settings.output_directory),
        ..EngineOptions::default()
    };
    let mut recording = match EngineRecording::start(
        &binaries,
        url.as_str(),
        &settings.output_directory,
        &engine_options,
    )
    .await
    {
        Ok(recording) => recording,
        Err(error) => {
            return failed(
                &settings,
                error.user_message(),
                error.is_retryable(),
                streambot_core::FailureKind::Internal,
            );
        }
    };
    tracing::info!(%url, "recording with the ffmpeg engine (not an HLS link)");
    let started = Instant::now();
    let mut progress_updates = recording.progress();
    let mut stop_requested = false;
    let ended = loop {
        if recording.has_exited() {
            break recording.wait(Duration::from_secs(5)).await;
        }
        tokio::select! {
            changed = control.changed() => {
                let desired = if changed.is_ok() { *control.borrow_and_update() } else { DesiredState::Stop };
                match desired {
                    DesiredState::Pause => {
                        if let Err(error) = recording.pause() {
                            tracing::warn!(%error, "could not pause ffmpeg");
                        }
                    }
                    DesiredState::Record => {
                        if let Err(error) = recording.resume() {
                            tracing::warn!(%error, "could not resume ffmpeg");
                        }
                    }
                    DesiredState::Stop | DesiredState::StopNow => {
                        stop_requested = true;
                        let grace = if desired == DesiredState::StopNow {
                            Duration::from_millis(200)
                        } else {
                            settings.stop_grace.min(Duration::from_secs(10))
                        };
                        break recording.stop(grace).await;
                    }
                }
            }
            changed = progress_updates.changed() => {
                if changed.is_ok() {
                    let latest = progress_updates.borrow_and_update().clone();
                    let progress = RecordingProgress {
                        elapsed: started.elapsed(),
                        media_seconds: latest.out_time.as_secs_f64(),
                        bytes_written: latest.total_size_bytes.unwrap_or(0),
                        segments_written: 0,
                        gap_segments: 0,
                        gap_seconds: 0.0,
                        current_part: 1,
                    };
                    let _ = events.send(RecorderEvent::Track {
                        event: TrackEvent::Progress { track: "main".to_string(), progress },
                    });
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    };
    // The segment files are the parts, whatever the way it ended.
    let runner = FfmpegRunner::new(binaries);
    let mut parts = Vec::new();
    let mut progress = RecordingProgress {
        elapsed: started.elapsed(),
        current_part: 1,
        ..RecordingProgress::default()
    };
    for (index, path) in engine_segment_files(&settings.output_directory)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let bytes = std::fs::metadata(&path).map_or(0, |metadata| metadata.len());
        let media_seconds = runner
            .probe(&path)
            .await
            .ok()
            .and_then(|info| info.duration)
            .map_or(0.0, |duration| duration.as_secs_f64());
        let number = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .and_then(|stem| stem.strip_prefix("part-"))
            .and_then(|number| number.parse::<u32>().ok())
            .unwrap_or(index as u32 + 1);
        progress.bytes_written += bytes;
        progress.media_seconds += media_seconds;
        progress.segments_written += 1;
        progress.current_part = number;
        parts.push(PartSummary {
            number,
            path,
            reason: if index == 0 {
                PartStartReason::First
            } else {
                PartStartReason::DurationLimit
            },
            bytes,
            segments: 1,
            media_seconds,
        });
    }
    let (outcome, ended_text, error) = match &ended {
        Ok(_) if stop_requested => (
            RecordingOutcome::Finished {
                reason: RecordingEndReason::Stopped,
            },
            RecordingEndReason::Stopped.describe(),
            None,
        ),
        Ok(_) => {
            let reason = if options.maximum_duration.is_some() {
                RecordingEndReason::DurationReached
            } else {
                RecordingEndReason::StreamEnded
            };
            (
                RecordingOutcome::Finished {
                    reason: reason.clone(),
                },
                reason.describe(),
                None,
            )
        }
        Err(error) if !parts.is_empty() && !error.is_retryable() => (
            // ffmpeg gave up after recording something: keep and deliver it, say why.
            RecordingOutcome::Finished {
                reason: RecordingEndReason::StreamEnded,
            },
            "the stream ended".to_string(),
            Some(error.user_message()),
        ),
        Err(error) => (
            RecordingOutcome::Failed {
                message: error.user_message(),
                retryable: error.is_retryable(),
                failure: streambot_core::FailureKind::Internal,
            },
            "failed".to_string(),
            Some(error.user_message()),
        ),
    };
    let report = RecordingReport {
        outcome,
        source: Some(source),
        main: Some(TrackReport {
            track_name: "main".to_string(),
            ended: ended_text,
            error,
            parts,
            progress,
            ledger_path: settings.output_directory.join("(no ledger: ffmpeg engine)"),
            first_media_sequence: None,
            last_media_sequence: None,
        }),
        audio: None,
        output_directory: settings.output_directory.clone(),
    };
    write_report(&settings.output_directory, &report);
    report
}
