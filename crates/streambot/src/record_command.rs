//! `streambot record URL`: one recording in the foreground with a progress bar (or JSON events),
//! by the recorder's engine choice (`--engine auto|native|ffmpeg`, `EngineChoice`): the same
//! path, flags and finalize for HLS and for links the ffmpeg engine records.
//! Ctrl-C stops gracefully (the segment in flight is finished); a second Ctrl-C stops at once.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;
use streambot_hls::url_safety::redact_url_text;

use indicatif::{ProgressBar, ProgressStyle};
use streambot_core::quantity_text::{format_bitrate, format_clock_duration, format_size};
use streambot_core::{RecordingEndReason, RecordingOptions, RecordingProgress};
use streambot_hls::{DesiredState, FetchLimits, HlsHttpClient, TrackEvent};
use streambot_recorder::finalize::FinalizeSettings;
use streambot_recorder::interruptible_finalize::{FinalizeEnd, finalize_recording_interruptible};
use streambot_recorder::{
    EngineChoice, RecorderEvent, RecordingOutcome, RecordingReport, RecordingSettings,
    network_policy, record,
};
use tokio::sync::{mpsc, watch};

use crate::RecordArguments;

fn default_output_directory() -> std::path::PathBuf {
    let stamp = chrono_like_stamp();
    std::path::PathBuf::from("recordings").join(format!("rec-{stamp}"))
}

fn chrono_like_stamp() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|duration| duration.as_secs())
        .unwrap_or(0);
    format!("{seconds}")
}

pub async fn run_record_command(arguments: RecordArguments) -> ExitCode {
    let engine = EngineChoice::from_name(&arguments.engine).unwrap_or_default();
    if arguments.maximum_part_megabytes.is_some() && engine.uses_ffmpeg_engine(&arguments.url) {
        eprintln!(
            "streambot record: --max-part-size is not supported for this link: the ffmpeg engine \
             records it and cuts parts by time only (use --max-part-duration, or --engine native \
             for an HLS link)"
        );
        return ExitCode::from(2);
    }
    let policy = network_policy(arguments.allow_private_networks);
    let client = match HlsHttpClient::new(policy, FetchLimits::default()) {
        Ok(client) => client,
        Err(error) => {
            eprintln!("streambot record: {error}");
            return ExitCode::from(2);
        }
    };
    let output_directory = arguments
        .output_directory
        .clone()
        .unwrap_or_else(default_output_directory);
    let options = RecordingOptions {
        maximum_duration: arguments.maximum_duration,
        quality: arguments.quality,
        format: arguments.format,
        stall_timeout: arguments.stall_timeout,
        subtitles: arguments.subtitles.clone(),
        audio_language: arguments.audio_language.clone(),
        all_audio: arguments.all_audio,
        wait_for_live: arguments.wait_for_live.unwrap_or_default(),
        from_start: arguments.from_start,
    };
    let mut settings = RecordingSettings::new(output_directory.clone());
    settings.engine = engine;
    settings.parallel_downloads = usize::from(arguments.parallel_downloads);
    settings.maximum_part_bytes = arguments
        .maximum_part_megabytes
        .map(|megabytes| megabytes * 1024 * 1024);
    settings.maximum_part_seconds = arguments
        .maximum_part_duration
        .map(|duration| duration.as_secs_f64());
    settings.ffmpeg_binaries =
        crate::ffmpeg_settings::ffmpeg_binaries(crate::settings::environment());

    let (control_sender, control) = watch::channel(DesiredState::Record);
    let (events_sender, mut events) = mpsc::unbounded_channel::<RecorderEvent>();
    let json = arguments.json;
    if !json && engine.uses_ffmpeg_engine(&arguments.url) {
        eprintln!(
            "recording {} with the ffmpeg engine into {}",
            redact_url_text(&arguments.url),
            output_directory.display()
        );
    }
    let bar = if json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar.set_message("resolving the stream…");
        bar
    };

    // Ctrl-C once: graceful stop. Twice: stop now. SIGTERM: graceful stop.
    let signal_control = control_sender.clone();
    let signal_bar = bar.clone();
    let signals = tokio::spawn(async move {
        let mut interrupts = 0;
        let mut terminate = TerminateSignal::new();
        loop {
            let terminated = terminate.recv();
            tokio::select! {
                result = tokio::signal::ctrl_c() => {
                    if result.is_err() {
                        return;
                    }
                    interrupts += 1;
                }
                _ = terminated => {
                    interrupts = interrupts.max(1);
                }
            }
            if interrupts == 1 {
                say(
                    &signal_bar,
                    "stopping: finishing the segments in flight (Ctrl-C again to stop now)",
                );
                let _ = signal_control.send(DesiredState::Stop);
            } else {
                say(&signal_bar, "stopping now");
                let _ = signal_control.send(DesiredState::StopNow);
                return;
            }
        }
    });

    let url = arguments.url.clone();
    let recording = tokio::spawn(async move {
        record(client, &url, options, settings, control, events_sender).await
    });

    let mut latest = RecordingProgress::default();
    while let Some(event) = events.recv().await {
        if json {
            if let Ok(line) = serde_json::to_string(&event) {
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "{line}");
            }
            continue;
        }
        match &event {
            RecorderEvent::Resolved { source } => {
                say(
                    &bar,
                    format!(
                        "recording {}",
                        redact_url_text(&source.main_media_playlist_url)
                    ),
                );
                if let Some(audio) = &source.audio_media_playlist_url {
                    say(&bar, format!("audio rendition {}", redact_url_text(audio)));
                }
                // The --subs/--audio-lang/--all-audio outcome (written before this event).
                let plan = streambot_recorder::tracks::read_track_plan(&output_directory);
                for track in &plan.extra_tracks {
                    let language = track.language.as_deref().unwrap_or("-");
                    say(
                        &bar,
                        format!(
                            "{:?} track {language}: {}",
                            track.kind, track.media_playlist_url
                        ),
                    );
                }
                for note in &plan.notes {
                    say(&bar, format!("note: {note}"));
                }
            }
            RecorderEvent::WaitingForLive {
                next_check_at,
                reason,
                ..
            } => {
                let next_check_in = next_check_at
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default();
                say(
                    &bar,
                    format!(
                        "waiting for the stream to start ({reason}); next check in {} s",
                        next_check_in.as_secs()
                    ),
                );
            }
            RecorderEvent::Track { event } => match event {
                TrackEvent::SegmentCommitted {
                    track, progress, ..
                } if track == "main" => {
                    latest = progress.clone();
                    bar.set_message(progress_line(&latest));
                }
                TrackEvent::GapDetected {
                    track,
                    entry,
                    progress,
                } => {
                    if track == "main" {
                        latest = progress.clone();
                    }
                    say(
                        &bar,
                        format!(
                            "gap: {track} segment {} could not be fetched before it left the playlist",
                            entry.media_sequence
                        ),
                    );
                    bar.set_message(progress_line(&latest));
                }
                TrackEvent::PartStarted { track, part } => {
                    say(
                        &bar,
                        format!("{track}: part {} → {}", part.number, part.path.display()),
                    );
                }
                TrackEvent::PlaylistTrouble {
                    error,
                    consecutive_failures,
                    ..
                } if *consecutive_failures == 1 || consecutive_failures % 10 == 0 => {
                    say(
                        &bar,
                        format!("playlist reload failing ({consecutive_failures}×): {error}"),
                    );
                }
                _ => {}
            },
        }
    }
    let report = match recording.await {
        Ok(report) => report,
        Err(join_error) => {
            bar.finish_and_clear();
            eprintln!("streambot record: the recording task failed: {join_error}");
            return ExitCode::from(1);
        }
    };
    signals.abort();
    bar.finish_and_clear();
    let status = print_summary(&report, json);
    if arguments.no_finalize
        || report
            .main
            .as_ref()
            .is_none_or(|main| main.parts.is_empty())
    {
        return status;
    }
    let finalize_status = finalize_and_report(&report, &arguments, json).await;
    if finalize_status != ExitCode::SUCCESS {
        return finalize_status;
    }
    status
}

/// SIGTERM, where there is one.
struct TerminateSignal {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl TerminateSignal {
    fn new() -> Self {
        TerminateSignal {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    /// The next SIGTERM (never, without one).
    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = self.signal.as_mut() {
            signal.recv().await;
            return;
        }
        std::future::pending::<()>().await
    }
}

/// Remuxes the parts to the finished format; a failure keeps the part and says where it is.
async fn finalize_and_report(
    report: &RecordingReport,
    arguments: &RecordArguments,
    json: bool,
) -> ExitCode {
    let runner = crate::ffmpeg_settings::ffmpeg_runner(crate::settings::environment());
    let mut settings = FinalizeSettings::new(arguments.format, arguments.quality);
    settings.keep_intermediate_parts = arguments.keep_parts;
    if !json {
        eprintln!("finalizing: remuxing to {}…", arguments.format);
    }
    // Ctrl-C (or SIGTERM) while finalizing: ffmpeg is stopped at once and the parts are kept.
    let interrupt = tokio_util::sync::CancellationToken::new();
    let interrupt_on_signal = tokio::spawn({
        let interrupt = interrupt.clone();
        async move {
            let mut terminate = TerminateSignal::new();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            interrupt.cancel();
        }
    });
    let ended = finalize_recording_interruptible(&runner, report, &settings, &interrupt).await;
    interrupt_on_signal.abort();
    let finalized = match ended {
        FinalizeEnd::Finished(finalized) => finalized,
        FinalizeEnd::Interrupted => {
            eprintln!(
                "streambot record: finalizing interrupted; the parts are kept in {}",
                report.output_directory.display()
            );
            return ExitCode::from(130);
        }
    };
    if json {
        if let Ok(line) =
            serde_json::to_string(&serde_json::json!({"kind": "finalized", "report": finalized}))
        {
            println!("{line}");
        }
    } else {
        for file in &finalized.files {
            eprintln!("finished: {}", finished_file_line(file));
        }
    }
    for failure in &finalized.failures {
        eprintln!(
            "streambot record: part {} could not be finalized ({}); it is kept at {}",
            failure.part_number,
            failure.message,
            failure.kept_part.display()
        );
    }
    if finalized.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(4)
    }
}

/// One finished file for the summary: path, size, duration, and whether it was re-encoded, joined
/// from several parts (issue 17 item 2) or does not decode cleanly (item 4).
fn finished_file_line(file: &streambot_recorder::finalize::FinishedFile) -> String {
    let mut notes = vec![
        format_size(file.size_bytes),
        format_clock_duration(file.duration_seconds),
    ];
    if file.transcoded {
        notes.push("re-encoded".to_owned());
    }
    if file.joined_part_numbers.len() > 1 {
        let numbers: Vec<String> = file
            .joined_part_numbers
            .iter()
            .map(u32::to_string)
            .collect();
        notes.push(format!("parts {} joined", numbers.join(", ")));
    }
    if file.damaged {
        let errors = file
            .decode_check
            .as_ref()
            .map_or(0, |check| check.error_count);
        notes.push(format!("DAMAGED: {errors} decode errors"));
    }
    format!("{} ({})", file.path.display(), notes.join(", "))
}

fn progress_line(progress: &RecordingProgress) -> String {
    format!(
        "media {} · {} · {} · {} segments · {} gaps · part {}",
        format_clock_duration(progress.media_seconds),
        format_size(progress.bytes_written),
        format_bitrate(progress.bitrate_bits_per_second()),
        progress.segments_written,
        progress.gap_segments,
        progress.current_part
    )
}

/// Prints a line above the progress bar, or on stderr when there is no bar (not a terminal, or
/// `--json`): indicatif drops lines printed through a hidden bar.
fn say(bar: &ProgressBar, line: impl AsRef<str>) {
    if bar.is_hidden() {
        eprintln!("{}", line.as_ref());
    } else {
        bar.println(line.as_ref());
    }
}

fn print_summary(report: &RecordingReport, json: bool) -> ExitCode {
    let progress = report.progress();
    if json {
        if let Ok(line) =
            serde_json::to_string(&serde_json::json!({"kind": "summary", "report": report}))
        {
            println!("{line}");
        }
    } else {
        let parts: Vec<String> = report
            .main
            .iter()
            .chain(report.audio.iter())
            .flat_map(|track| track.parts.iter())
            .map(|part| {
                format!(
                    "  {} ({}, {})",
                    part.path.display(),
                    format_size(part.bytes),
                    format_clock_duration(part.media_seconds)
                )
            })
            .collect();
        eprintln!(
            "recorded {} of media, {}, {} segments, {} gaps ({:.1} s lost) into {}",
            format_clock_duration(progress.media_seconds),
            format_size(progress.bytes_written),
            progress.segments_written,
            progress.gap_segments,
            progress.gap_seconds,
            report.output_directory.display()
        );
        for line in parts {
            eprintln!("{line}");
        }
    }
    match &report.outcome {
        RecordingOutcome::Finished { reason } => match reason {
            RecordingEndReason::Stalled { .. } => {
                eprintln!("streambot record: ended because {}", reason.describe());
                ExitCode::from(3)
            }
            _ => {
                if !json {
                    eprintln!("ended: {}", reason.describe());
                }
                ExitCode::SUCCESS
            }
        },
        RecordingOutcome::Failed { message, .. } => {
            eprintln!("streambot record: {message}");
            ExitCode::from(1)
        }
    }
}
