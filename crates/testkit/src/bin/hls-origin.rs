//! `hls-origin`: the testkit's live HLS origin as a process, for benchmark scripts.
//!
//! ```text
//! hls-origin [--port 0] [--window 10] [--kind ts|fmp4|aes|audio] [--total N] [--initial N]
//!            [--first-sequence 1000] [--vod] [--audio-rendition] [--explicit-iv]
//!            [--fault SPEC]... [--served-log PATH]
//! ```
//!
//! Prints `READY http://127.0.0.1:PORT` on stdout once listening, then serves on 127.0.0.1 until
//! SIGTERM or ctrl-c. Fault specs are those of `Fault::parse_spec`, e.g. `--fault outage:10-22`.
//! With `--served-log PATH` the request log is written there as JSON lines at exit.

use std::io::Write;
use std::process::ExitCode;

use streambot_testkit::{Fault, HlsOrigin, OriginConfig, SegmentKind, spawn_origin_on};

const USAGE: &str = "usage: hls-origin [--port 0] [--window 10] [--kind ts|fmp4|aes|audio] \
[--total N] [--initial N] [--first-sequence N] [--vod] [--audio-rendition] [--explicit-iv] \
[--fault SPEC]... [--served-log PATH]
fault specs (seconds from start): outage:FROM-TO segment-status:FROM-TO:STATUS nth:N stall:FROM-TO \
truncate:FROM-TO slow:FROM-TO:BYTES_PER_SECOND jump:AT:SKIPPED discontinuity:MEDIA_SEQUENCE \
key-status:FROM-TO:STATUS playlist-status:FROM-TO:STATUS";

struct CommandLine {
    port: u16,
    config: OriginConfig,
    served_log_path: Option<String>,
}

fn parse_command_line(arguments: &[String]) -> Result<CommandLine, String> {
    let mut command_line = CommandLine {
        port: 0,
        config: OriginConfig::default(),
        served_log_path: None,
    };
    let mut remaining = arguments.iter();
    while let Some(flag) = remaining.next() {
        let mut value_of = |name: &str| -> Result<String, String> {
            remaining
                .next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let number_of = |name: &str, text: String| -> Result<u64, String> {
            text.parse::<u64>()
                .map_err(|_| format!("{name} wants a whole number, got {text:?}"))
        };
        match flag.as_str() {
            "--port" => {
                let text = value_of("--port")?;
                command_line.port = text
                    .parse::<u16>()
                    .map_err(|_| format!("--port wants 0..65535, got {text:?}"))?;
            }
            "--window" => {
                command_line.config.window_segments = number_of("--window", value_of("--window")?)?
            }
            "--initial" => {
                command_line.config.initial_segments =
                    Some(number_of("--initial", value_of("--initial")?)?)
            }
            "--total" => {
                command_line.config.total_segments =
                    Some(number_of("--total", value_of("--total")?)?)
            }
            "--first-sequence" => {
                command_line.config.first_media_sequence =
                    number_of("--first-sequence", value_of("--first-sequence")?)?
            }
            "--kind" => {
                let text = value_of("--kind")?;
                command_line.config.kind = SegmentKind::parse(&text)
                    .ok_or_else(|| format!("--kind wants ts, fmp4, aes or audio, got {text:?}"))?;
            }
            "--fault" => {
                let fault = Fault::parse_spec(&value_of("--fault")?)?;
                command_line.config.faults.push(fault);
            }
            "--served-log" => command_line.served_log_path = Some(value_of("--served-log")?),
            "--vod" => command_line.config.vod = true,
            "--audio-rendition" => command_line.config.audio_rendition = true,
            "--explicit-iv" => command_line.config.explicit_iv = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(command_line)
}

async fn wait_for_termination() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(terminate) => terminate,
            Err(signal_error) => {
                eprintln!("hls-origin: cannot watch SIGTERM ({signal_error}); ctrl-c only");
                let _ignored = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

fn write_served_log(path: &str, origin: &streambot_testkit::OriginHandle) -> Result<(), String> {
    let mut lines = String::new();
    for entry in origin.served_log() {
        let line = serde_json::to_string(&entry).map_err(|error| error.to_string())?;
        lines.push_str(&line);
        lines.push('\n');
    }
    std::fs::write(path, lines).map_err(|error| format!("writing {path}: {error}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    if arguments
        .iter()
        .any(|argument| argument == "--help" || argument == "-h")
    {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let command_line = match parse_command_line(&arguments) {
        Ok(command_line) => command_line,
        Err(message) => {
            eprintln!("hls-origin: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = command_line.config;
    let origin = match tokio::task::spawn_blocking(move || HlsOrigin::new(config)).await {
        Ok(Ok(origin)) => origin,
        Ok(Err(origin_error)) => {
            eprintln!("hls-origin: {origin_error}");
            return ExitCode::FAILURE;
        }
        Err(join_error) => {
            eprintln!("hls-origin: {join_error}");
            return ExitCode::FAILURE;
        }
    };
    let address = format!("127.0.0.1:{}", command_line.port);
    let handle = match spawn_origin_on(origin, &address).await {
        Ok(handle) => handle,
        Err(origin_error) => {
            eprintln!("hls-origin: cannot listen on {address}: {origin_error}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    let announced = writeln!(stdout, "READY {}", handle.base_url).and_then(|()| stdout.flush());
    if let Err(write_error) = announced {
        eprintln!("hls-origin: cannot write to stdout: {write_error}");
        return ExitCode::FAILURE;
    }
    eprintln!(
        "hls-origin: media {} master {}",
        handle.media_playlist_url(),
        handle.master_playlist_url()
    );
    wait_for_termination().await;
    handle.shutdown();
    if let Some(path) = command_line.served_log_path
        && let Err(message) = write_served_log(&path, &handle)
    {
        eprintln!("hls-origin: {message}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
