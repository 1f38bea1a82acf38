//! The streambot binary: command line, settings, logging, and the wiring of roles.

mod bot_role;
mod clip_command;
mod config_command;
mod dashboard_role;
mod ffmpeg_settings;
mod jobs_command;
mod logging;
mod probe_command;
mod record_command;
mod roles;
mod schedule_command;
mod schedule_settings;
mod settings;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use streambot_core::{OutputFormat, Quality};

#[derive(Debug, Parser)]
#[command(
    name = "streambot",
    version,
    about = "Records HLS (M3U8) live streams without losing segments; a Telegram bot and its workers."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the bot, a worker and the scheduler in one process (embedded store).
    Run,
    /// Run the Telegram bot alone (workers elsewhere, sharing Redis and the recordings volume).
    Bot,
    /// Record one stream in the foreground, without Telegram.
    Record(RecordArguments),
    /// Show what a link offers: variants, renditions, live or VOD, and each quality's pick.
    Probe(probe_command::ProbeArguments),
    /// Make a playable file of the last minutes of a recording directory, even while it records.
    Clip(clip_command::ClipArguments),
    /// Add, list, show, stop, pause and resume jobs (REDIS_URL, else the store under DATA_DIR).
    Jobs(jobs_command::JobsArguments),
    /// Run a worker: claims jobs from the queues and records them, until SIGTERM.
    Worker(roles::WorkerArguments),
    /// Run the scheduler: retention, disk guard, lease reaper (one acts at a time).
    Scheduler,
    /// Serve the admin dashboard alone: API, /metrics, web page (DASHBOARD_SECRET, DASHBOARD_BIND).
    Dashboard,
    /// Check the configuration (`config check`): validate it and print it with secrets masked.
    Config(config_command::ConfigArguments),
}

#[derive(Debug, clap::Args)]
pub struct RecordArguments {
    /// The HLS link: a master or media playlist (http or https).
    pub url: String,
    /// Stop after this long, e.g. 2h, 90m, 1h30m, 45s. Records until the stream ends otherwise.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration_argument)]
    pub maximum_duration: Option<Duration>,
    /// Which variant to record: best, high, medium, low, worst, audio, or a height like 720p.
    #[arg(long, default_value = "best", value_parser = parse_quality_argument)]
    pub quality: Quality,
    /// Container of the finished file (mp4, mkv, ts). Parts are written as TS/fMP4 until finalize.
    #[arg(long, default_value = "mp4", value_parser = parse_format_argument)]
    pub format: OutputFormat,
    /// Directory for the parts and the ledger. Default: ./recordings/rec-<date>-<time>.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output_directory: Option<PathBuf>,
    /// End the recording when no new segment appears for this long.
    #[arg(long, default_value = "2m", value_parser = parse_duration_argument)]
    pub stall_timeout: Duration,
    /// Wait up to this long (e.g. 6h) for a link that is not live yet, checking every 15 s to
    /// 60 s; a stream that goes away mid-way and comes back within it goes on as a new part.
    /// Default: fail at once.
    #[arg(long = "wait", value_name = "DURATION", value_parser = parse_duration_argument)]
    pub wait_for_live: Option<Duration>,
    /// Start a new part when the current one would grow past this many megabytes.
    #[arg(long = "max-part-size", value_name = "MB")]
    pub maximum_part_megabytes: Option<u64>,
    /// Start a new part when the current one would grow past this duration (e.g. 30m).
    #[arg(long = "max-part-duration", value_parser = parse_duration_argument)]
    pub maximum_part_duration: Option<Duration>,
    /// Segments downloaded at once.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub parallel_downloads: u8,
    /// Allow links to loopback, private and link-local addresses (refused by default).
    #[arg(long, env = "ALLOW_PRIVATE_NETWORKS", default_value_t = false)]
    pub allow_private_networks: bool,
    /// Print machine-readable events, one JSON object a line, instead of a progress bar.
    #[arg(long)]
    pub json: bool,
    /// Which recorder: `native` (HLS, loses nothing on short outages), `ffmpeg` (ffmpeg reads the
    /// link itself; for non-HLS links), or `auto` (native unless the link is clearly not HLS).
    #[arg(long, default_value = "auto", value_parser = ["auto", "native", "ffmpeg"])]
    pub engine: String,
    /// Keep the recorded TS/fMP4 parts as they are: no remux to the finished format.
    #[arg(long)]
    pub no_finalize: bool,
    /// Keep the intermediate TS/fMP4 parts after finalizing.
    #[arg(long)]
    pub keep_parts: bool,
    /// Subtitles to record beside the video: none, all, or a language such as en or de-DE.
    #[arg(long = "subs", default_value = "none", value_parser = parse_subtitles_argument)]
    pub subtitles: streambot_core::SubtitleChoice,
    /// Preferred audio language (de matches de-DE); the stream's default when it has none.
    #[arg(long = "audio-lang", value_name = "LANGUAGE", value_parser = parse_language_argument)]
    pub audio_language: Option<String>,
    /// Record every audio rendition, each as its own track with its language.
    #[arg(long)]
    pub all_audio: bool,
    /// Start from the oldest segment the playlist still offers (EVENT playlists, DVR windows),
    /// then continue live, instead of a few segments back from the live edge.
    #[arg(long)]
    pub from_start: bool,
}

fn parse_subtitles_argument(text: &str) -> Result<streambot_core::SubtitleChoice, String> {
    text.parse()
        .map_err(|error: streambot_core::SubtitleChoiceParseError| error.to_string())
}

fn parse_language_argument(text: &str) -> Result<String, String> {
    streambot_core::parse_language_tag(text)
        .ok_or_else(|| format!("{text:?} is not a language; use a tag like de or pt-BR"))
}

fn parse_duration_argument(text: &str) -> Result<Duration, String> {
    streambot_core::parse_duration_text(text).map_err(|error| error.to_string())
}

fn parse_quality_argument(text: &str) -> Result<Quality, String> {
    text.parse::<Quality>().map_err(|error| error.to_string())
}

fn parse_format_argument(text: &str) -> Result<OutputFormat, String> {
    text.parse::<OutputFormat>()
}

fn main() -> ExitCode {
    // Two rustls crypto providers are compiled in (ours and teloxide's): pick one for the process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    // The environment is read here, once: every role and command parses these values.
    if let Err(error) = logging::initialise_logging(settings::environment()) {
        eprintln!("streambot: {error:#}");
        return ExitCode::from(2);
    }
    let async_threads = match settings::async_threads(settings::environment()) {
        Ok(threads) => threads,
        Err(error) => {
            eprintln!("streambot: {error}");
            return ExitCode::from(2);
        }
    };
    // One thread by default: hundreds of recordings waiting on the network cost less CPU on one
    // thread than on several that wake each other (BENCHMARKS.md, issue 14).
    let mut builder = if async_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(async_threads);
        builder
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("streambot: could not start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let exit_code = runtime.block_on(async move {
        match cli.command {
            Command::Run => roles::run_all_in_one().await,
            Command::Bot => roles::run_bot_only().await,
            Command::Record(arguments) => record_command::run_record_command(arguments).await,
            Command::Probe(arguments) => probe_command::run_probe_command(arguments).await,
            Command::Clip(arguments) => clip_command::run_clip_command(arguments).await,
            Command::Jobs(arguments) => jobs_command::run_jobs_command(arguments).await,
            Command::Worker(arguments) => roles::run_worker_role(arguments).await,
            Command::Scheduler => roles::run_scheduler_role().await,
            Command::Dashboard => dashboard_role::run_dashboard_role().await,
            Command::Config(arguments) => config_command::run_config_command(arguments).await,
        }
    });
    // Work left behind by a bounded shutdown (a blocking file copy, say) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(300));
    exit_code
}
