//! `streambot record --engine ffmpeg URL` (and `auto` for links that are clearly not HLS): the
//! recorder's ffmpeg engine (streambot fetches the link, ffmpeg reads the bytes from its stdin and
//! writes MPEG-TS segments); at the end they are joined into one finished file. Ctrl-C stops
//! gracefully (end of input, then SIGTERM, then SIGKILL).

use std::process::ExitCode;

use streambot_core::{OutputFormat, RecordingOptions};
use streambot_ffmpeg::{ConcatOptions, OutputContainer};
use streambot_hls::{DesiredState, FetchLimits, HlsHttpClient, NetworkPolicy};
use streambot_recorder::RecordingSettings;
use tokio::sync::{mpsc, watch};

use crate::RecordArguments;
use crate::record_command::default_output_directory_for_cli;
use streambot_core::quantity_text::{format_clock_duration, format_size};

pub async fn run_engine_record_command(arguments: RecordArguments) -> ExitCode {
    let policy = NetworkPolicy {
        allow_private_networks: arguments.allow_private_networks,
    };
    let client = match HlsHttpClient::new(policy, FetchLimits::default()) {
        Ok(client) => client,
        Err(error) => {
            eprintln!("streambot record: {error}");
            return ExitCode::from(1);
        }
    };
    let output_directory = arguments
        .output_directory
        .clone()
        .unwrap_or_else(default_output_directory_for_cli);
    let runner = crate::ffmpeg_settings::ffmpeg_runner(crate::settings::environment());
    let mut settings = RecordingSettings::new(output_directory.clone());
    settings.ffmpeg_binaries = runner.binaries().clone();
    settings.maximum_part_seconds = arguments
        .maximum_part_duration
        .map(|duration| duration.as_secs_f64());
    let options = RecordingOptions {
        maximum_duration: arguments.maximum_duration,
        ..RecordingOptions::default()
    };
    if !arguments.json {
        eprintln!(
            "recording {} with the ffmpeg engine into {}",
            arguments.url,
            output_directory.display()
        );
    }
    let (control_sender, control) = watch::channel(DesiredState::Record);
    let (events_sender, _events) = mpsc::unbounded_channel();
    let recording = streambot_recorder::ffmpeg_engine::record_with_ffmpeg_engine(
        &client,
        &arguments.url,
        options,
        settings,
        control,
        events_sender,
    );
    tokio::pin!(recording);
    let report = tokio::select! {
        report = &mut recording => report,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("stopping: ending ffmpeg's input (then SIGTERM)");
            control_sender.send_replace(DesiredState::Stop);
            recording.await
        }
    };
    let segment_files: Vec<_> = report
        .main
        .as_ref()
        .map(|main| main.parts.iter().map(|part| part.path.clone()).collect())
        .unwrap_or_default();
    if let streambot_recorder::RecordingOutcome::Failed { message, .. } = &report.outcome {
        eprintln!("streambot record: {message}");
        if !segment_files.is_empty() {
            eprintln!(
                "what was recorded is kept: {} segment files in {}",
                segment_files.len(),
                output_directory.display()
            );
        }
        return ExitCode::from(1);
    }
    if segment_files.is_empty() {
        eprintln!("streambot record: ffmpeg wrote nothing");
        return ExitCode::from(1);
    }
    if arguments.no_finalize {
        return ExitCode::SUCCESS;
    }
    let container = match arguments.format {
        OutputFormat::Mp4 => OutputContainer::Mp4,
        OutputFormat::Mkv => OutputContainer::Mkv,
        OutputFormat::Ts => OutputContainer::Ts,
    };
    let output = output_directory.join(format!("recording-0001.{}", container.extension()));
    let mut concat_options = ConcatOptions::new(container);
    concat_options.audio_is_adts_aac = match runner.probe(&segment_files[0]).await {
        Ok(info) => info.audio_is_adts_aac(),
        Err(_) => true,
    };
    match runner
        .concat(&segment_files, &output, &concat_options, None)
        .await
    {
        Ok(finished) => {
            let duration = runner
                .probe(&finished.path)
                .await
                .ok()
                .and_then(|info| info.duration)
                .map_or(0.0, |duration| duration.as_secs_f64());
            eprintln!(
                "finished: {} ({}, {})",
                finished.path.display(),
                format_size(finished.size_bytes),
                format_clock_duration(duration)
            );
            if !arguments.keep_parts {
                for segment in &segment_files {
                    let _ = std::fs::remove_file(segment);
                }
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!(
                "streambot record: joining the segments failed ({}); they are kept in {}",
                error.user_message(),
                output_directory.display()
            );
            ExitCode::from(4)
        }
    }
}
