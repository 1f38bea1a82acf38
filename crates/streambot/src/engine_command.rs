//! `streambot record --engine ffmpeg URL` (and `auto` for links that are clearly not HLS): ffmpeg
//! reads the link itself and writes MPEG-TS segments; at the end they are joined into one finished
//! file. Ctrl-C stops gracefully (`q`, then SIGTERM, then SIGKILL).

use std::process::ExitCode;
use std::time::Duration;

use streambot_core::OutputFormat;
use streambot_ffmpeg::{
    ConcatOptions, EngineOptions, EngineRecording, FfmpegBinaries, FfmpegRunner, OutputContainer,
};
use streambot_hls::NetworkPolicy;
use streambot_hls::url_safety::{check_url_and_resolved_addresses, parse_and_check_url};

use crate::RecordArguments;
use crate::record_command::{default_output_directory_for_cli, format_bytes, format_seconds};

pub async fn run_engine_record_command(arguments: RecordArguments) -> ExitCode {
    let policy = NetworkPolicy {
        allow_private_networks: arguments.allow_private_networks,
    };
    let url = match parse_and_check_url(&arguments.url, policy) {
        Ok(url) => url,
        Err(error) => {
            eprintln!("streambot record: {error}");
            return ExitCode::from(1);
        }
    };
    if let Err(error) = check_url_and_resolved_addresses(&url, policy).await {
        eprintln!("streambot record: {error}");
        return ExitCode::from(1);
    }
    let output_directory = arguments
        .output_directory
        .clone()
        .unwrap_or_else(default_output_directory_for_cli);
    let binaries = FfmpegBinaries::from_environment();
    let options = EngineOptions {
        max_duration: arguments.maximum_duration,
        segment_seconds: arguments.maximum_part_duration.map_or(600, |duration| {
            duration.as_secs().clamp(1, u64::from(u32::MAX)) as u32
        }),
        ..EngineOptions::default()
    };
    let mut recording =
        match EngineRecording::start(&binaries, url.as_str(), &output_directory, &options).await {
            Ok(recording) => recording,
            Err(error) => {
                eprintln!("streambot record: {}", error.user_message());
                return ExitCode::from(1);
            }
        };
    if !arguments.json {
        eprintln!(
            "recording {} with the ffmpeg engine into {}",
            url,
            output_directory.display()
        );
    }
    let longest_wait = arguments
        .maximum_duration
        .map_or(Duration::from_secs(7 * 24 * 3600), |duration| {
            duration + Duration::from_secs(120)
        });
    let ended = tokio::select! {
        result = recording.wait(longest_wait) => result,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("stopping: asking ffmpeg to finish (q, then SIGTERM)");
            recording.stop(Duration::from_secs(5)).await
        }
    };
    let outcome = match ended {
        Ok(outcome) => outcome,
        Err(error) => {
            eprintln!("streambot record: {}", error.user_message());
            let kept =
                streambot_ffmpeg::run::engine_segment_files(&output_directory).unwrap_or_default();
            if !kept.is_empty() {
                eprintln!(
                    "what was recorded is kept: {} segment files in {}",
                    kept.len(),
                    output_directory.display()
                );
            }
            return ExitCode::from(1);
        }
    };
    if outcome.segment_files.is_empty() {
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
    let runner = FfmpegRunner::new(binaries);
    let output = output_directory.join(format!("recording-0001.{}", container.extension()));
    let mut concat_options = ConcatOptions::new(container);
    concat_options.audio_is_adts_aac = match runner.probe(&outcome.segment_files[0]).await {
        Ok(info) => info.audio_is_adts_aac(),
        Err(_) => true,
    };
    match runner
        .concat(&outcome.segment_files, &output, &concat_options, None)
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
                format_bytes(finished.size_bytes),
                format_seconds(duration)
            );
            if !arguments.keep_parts {
                for segment in &outcome.segment_files {
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
