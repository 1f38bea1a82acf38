//! One recording end to end: resolve the link (master → variant and audio rendition), record the
//! main track and, when the variant has a separate audio rendition, the audio track beside it;
//! report progress; leave parts, ledgers and a `recording.json` summary in the output directory.
//!
//! The recorder knows nothing of Telegram, job stores or queues: it is given a directory, a
//! control channel and an event channel.

pub mod clip;
pub mod ffmpeg_engine;
pub mod finalize;
pub mod fmp4_join;
pub mod interruptible_finalize;
pub mod live_wait;
pub mod progressive;
pub mod resolve;
pub mod tracks;
pub mod webvtt;

pub use resolve::{is_not_live_yet, link_for_messages, resolve_source};

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use streambot_core::{RecordingEndReason, RecordingOptions, RecordingProgress};
use streambot_hls::ledger::PartSummary;
use streambot_hls::url_safety::parse_and_check_url;
use streambot_hls::variant_selection::VariantChoice;
use streambot_hls::{
    DesiredState, HlsError, HlsHttpClient, NetworkPolicy, StartFrom, TrackEnd, TrackEvent,
    TrackOutcome, TrackRecorderConfig, record_track,
};
use tokio::sync::{mpsc, watch};

/// The one error enum of the recorder boundary.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error(transparent)]
    Hls(#[from] HlsError),
    #[error("the master playlist {url} lists no variant streams")]
    NoVariants { url: String },
    /// A link for the ffmpeg engine whose body is not media (a DASH manifest, a web page, ...).
    #[error("{url} is not a stream: it looks like {}", looks_like.describe())]
    NotAStream {
        url: String,
        looks_like: streambot_ffmpeg::NotMedia,
    },
    /// A master playlist none of whose candidate variants could be used (each error in the order
    /// tried). `link` is the user's link, without secrets.
    #[error(
        "none of the streams listed by {link} could be recorded: {}",
        describe_variant_errors(errors)
    )]
    NoUsableVariant { link: String, errors: Vec<HlsError> },
    /// The link did not go live within the time it was watched for.
    #[error("{link} did not start within {waited_seconds} s: {last_reason}")]
    NotLive {
        link: String,
        waited_seconds: u64,
        last_reason: String,
        failure: streambot_core::FailureKind,
    },
}

fn describe_variant_errors(errors: &[HlsError]) -> String {
    errors
        .iter()
        .map(resolve::variant_failure_reason)
        .collect::<Vec<_>>()
        .join("; ")
}

impl RecorderError {
    pub fn is_retryable(&self) -> bool {
        match self {
            RecorderError::Hls(error) => error.is_retryable(),
            RecorderError::NoUsableVariant { errors, .. } => {
                errors.iter().any(HlsError::is_retryable)
            }
            RecorderError::NoVariants { .. }
            | RecorderError::NotAStream { .. }
            | RecorderError::NotLive { .. } => false,
        }
    }

    pub fn failure_kind(&self) -> streambot_core::FailureKind {
        match self {
            RecorderError::Hls(error) => error.failure_kind(),
            RecorderError::NoVariants { .. } => streambot_core::FailureKind::NotAPlaylist,
            RecorderError::NotAStream {
                looks_like: streambot_ffmpeg::NotMedia::WebPage,
                ..
            } => streambot_core::FailureKind::WebPage,
            RecorderError::NotAStream { .. } => streambot_core::FailureKind::NotMedia,
            RecorderError::NoUsableVariant { errors, .. } => {
                resolve::no_usable_variant_failure(errors)
            }
            RecorderError::NotLive { failure, .. } => *failure,
        }
    }

    pub fn user_message(&self) -> String {
        match self {
            RecorderError::Hls(error) => error.user_message(),
            RecorderError::NoVariants { .. } => {
                "That playlist lists no streams to record.".to_string()
            }
            RecorderError::NotAStream {
                looks_like: streambot_ffmpeg::NotMedia::XmlDocument,
                ..
            } => "That link is a DASH manifest or another XML document; only HLS playlists and \
                  direct media streams can be recorded."
                .to_string(),
            RecorderError::NotAStream { .. } => {
                "That link does not lead to a stream or a media file.".to_string()
            }
            RecorderError::NoUsableVariant { link, errors } => format!(
                "None of the {} streams listed by {link} could be recorded ({}).",
                errors.len(),
                describe_variant_errors(errors)
            ),
            RecorderError::NotLive {
                link,
                waited_seconds,
                last_reason,
                ..
            } => format!(
                "{link} did not start within {}: {last_reason}",
                streambot_core::format_duration_with_units(
                    Duration::from_secs(*waited_seconds),
                    streambot_core::duration_text::ENGLISH_DURATION_UNITS
                )
            ),
        }
    }
}

/// Where the recording's bytes come from, after the master playlist was read.
/// Read back (a finalize resumed after a restart) without the variant choice, which finalize does
/// not use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResolvedSource {
    pub requested_url: String,
    pub main_media_playlist_url: String,
    pub audio_media_playlist_url: Option<String>,
    #[serde(skip_deserializing)]
    pub choice: Option<VariantChoice>,
    pub audio_only: bool,
    /// Backups of the main media playlist: the chosen variant listed again on another host or
    /// path with the same BANDWIDTH, RESOLUTION and CODECS (RFC 8216 redundant streams), in
    /// playlist order, absolute. The main track asks them for what the primary cannot deliver.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backup_media_playlist_urls: Vec<String>,
}

/// Settings for one recording beyond what the user chose.
#[derive(Debug, Clone)]
pub struct RecordingSettings {
    pub output_directory: PathBuf,
    pub parallel_downloads: usize,
    pub live_edge_segments: usize,
    pub maximum_part_bytes: Option<u64>,
    pub maximum_part_seconds: Option<f64>,
    pub fsync_interval: Duration,
    pub stop_grace: Duration,
    /// Largest file the ffmpeg engine downloads before remuxing (an mp4 with its index at the
    /// end); default [`progressive::MAXIMUM_PROGRESSIVE_DOWNLOAD_BYTES`].
    pub maximum_download_bytes: u64,
    /// The ffmpeg the ffmpeg engine runs (from the operator's settings; default: `ffmpeg` on PATH).
    pub ffmpeg_binaries: streambot_ffmpeg::FfmpegBinaries,
    /// Parts one recording may make (all runs in its directory counted, main or audio track): when
    /// a track starts part number `maximum_parts`, the recording stops at once with
    /// [`RecordingEndReason::PartLimitReached`]; segments already downloaded are still committed.
    /// Default [`DEFAULT_MAXIMUM_PARTS`].
    pub maximum_parts: u32,
    /// The first wait between two checks of a link that is not live yet
    /// ([`RecordingOptions::wait_for_live`]); it doubles up to `live_check_maximum_interval`.
    pub live_check_first_interval: Duration,
    pub live_check_maximum_interval: Duration,
    /// Which engine records the link (default [`EngineChoice::Auto`]).
    pub engine: EngineChoice,
}

/// The engine that records a link: the native HLS engine, or ffmpeg reading the bytes streambot
/// fetches (`.ts`, `.flv`, `.mp4`, ... links that are not playlists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineChoice {
    /// ffmpeg for links that are clearly a single media stream (not a playlist), else native.
    #[default]
    Auto,
    Native,
    Ffmpeg,
}

impl EngineChoice {
    /// `auto`, `native` or `ffmpeg` (the CLI's `--engine`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "auto" => Some(EngineChoice::Auto),
            "native" => Some(EngineChoice::Native),
            "ffmpeg" => Some(EngineChoice::Ffmpeg),
            _ => None,
        }
    }

    /// The one engine choice: true when `url_text` is recorded by the ffmpeg engine.
    pub fn uses_ffmpeg_engine(self, url_text: &str) -> bool {
        match self {
            EngineChoice::Native => false,
            EngineChoice::Ffmpeg => true,
            EngineChoice::Auto => {
                !streambot_ffmpeg::is_probably_hls(url_text)
                    && ffmpeg_engine::looks_like_progressive_media(url_text)
            }
        }
    }
}

/// Default of [`RecordingSettings::maximum_parts`].
pub const DEFAULT_MAXIMUM_PARTS: u32 = 200;

impl RecordingSettings {
    pub fn new(output_directory: PathBuf) -> Self {
        RecordingSettings {
            output_directory,
            parallel_downloads: 3,
            live_edge_segments: 3,
            maximum_part_bytes: None,
            maximum_part_seconds: None,
            fsync_interval: streambot_hls::live::DEFAULT_FSYNC_INTERVAL,
            stop_grace: Duration::from_secs(15),
            maximum_download_bytes: progressive::MAXIMUM_PROGRESSIVE_DOWNLOAD_BYTES,
            ffmpeg_binaries: streambot_ffmpeg::FfmpegBinaries::default(),
            maximum_parts: DEFAULT_MAXIMUM_PARTS,
            live_check_first_interval: live_wait::DEFAULT_LIVE_CHECK_FIRST_INTERVAL,
            live_check_maximum_interval: live_wait::DEFAULT_LIVE_CHECK_MAXIMUM_INTERVAL,
            engine: EngineChoice::Auto,
        }
    }
}

/// What the recording reports while it runs.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
// Events are a few per second at most; boxing would only add allocations.
#[allow(clippy::large_enum_variant)]
pub enum RecorderEvent {
    Resolved {
        source: ResolvedSource,
    },
    Track {
        event: TrackEvent,
    },
    /// The link is not live (yet, or again): it is checked again at `next_check_at`, and given
    /// up at `gives_up_at` ([`RecordingOptions::wait_for_live`]). `reason` is a sentence for the
    /// user (what the last check found; no URI but the user's link).
    WaitingForLive {
        next_check_at: std::time::SystemTime,
        gives_up_at: std::time::SystemTime,
        reason: String,
    },
}

/// A finished track, as written to `recording.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrackReport {
    pub track_name: String,
    pub ended: String,
    pub error: Option<String>,
    pub parts: Vec<PartSummary>,
    pub progress: RecordingProgress,
    pub ledger_path: PathBuf,
    pub first_media_sequence: Option<u64>,
    pub last_media_sequence: Option<u64>,
    /// The size limit parts were split at (the destination's): finalize joins parts only up to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_part_bytes: Option<u64>,
}

/// How the whole recording ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RecordingOutcome {
    Finished {
        reason: RecordingEndReason,
    },
    Failed {
        message: String,
        retryable: bool,
        /// The class of the failure (serialized as its code).
        #[serde(default)]
        failure: streambot_core::FailureKind,
    },
}

/// Everything a recording left behind; also written as `recording.json` (and read back from it
/// when a finalize interrupted by a shutdown is resumed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordingReport {
    pub outcome: RecordingOutcome,
    pub source: Option<ResolvedSource>,
    pub main: Option<TrackReport>,
    pub audio: Option<TrackReport>,
    pub output_directory: PathBuf,
}

impl RecordingReport {
    pub fn progress(&self) -> RecordingProgress {
        self.main
            .as_ref()
            .map(|track| track.progress.clone())
            .unwrap_or_default()
    }

    pub fn succeeded(&self) -> bool {
        matches!(self.outcome, RecordingOutcome::Finished { .. })
    }

    /// A stopped recording of `parts` (main track only) in `directory`: what finalize is given
    /// for parts made outside a recording (tests, benchmarks).
    pub fn of_main_parts(directory: &Path, parts: Vec<PartSummary>) -> RecordingReport {
        RecordingReport {
            outcome: RecordingOutcome::Finished {
                reason: RecordingEndReason::Stopped,
            },
            source: None,
            main: Some(TrackReport {
                track_name: "main".to_owned(),
                ended: "stopped".to_owned(),
                error: None,
                parts,
                progress: RecordingProgress::default(),
                ledger_path: directory.join("main-ledger.jsonl"),
                first_media_sequence: None,
                last_media_sequence: None,
                maximum_part_bytes: None,
            }),
            audio: None,
            output_directory: directory.to_path_buf(),
        }
    }
}

/// The parts of a track: every part still on disk that the ledger says holds segments (earlier
/// attempts of a resumed or retried job included), or, if the ledger cannot be read, the parts
/// this run wrote.
fn all_parts_of_track(directory: &Path, outcome: &TrackOutcome) -> Vec<PartSummary> {
    match streambot_hls::ledger::parts_recorded_in(directory, &outcome.track_name) {
        Ok(parts) if parts.len() >= outcome.parts.len() => parts,
        _ => outcome.parts.clone(),
    }
}

fn track_report(outcome: &TrackOutcome, maximum_part_bytes: Option<u64>) -> TrackReport {
    let (ended, error) = match &outcome.end {
        TrackEnd::Finished(reason) => (reason.describe(), None),
        TrackEnd::Failed(error) => ("failed".to_string(), Some(error.to_string())),
    };
    TrackReport {
        track_name: outcome.track_name.clone(),
        ended,
        error,
        parts: outcome.parts.clone(),
        progress: outcome.progress.clone(),
        ledger_path: outcome.ledger_path.clone(),
        first_media_sequence: outcome.first_media_sequence,
        last_media_sequence: outcome.last_media_sequence,
        maximum_part_bytes,
    }
}

/// Records `url_text` into `settings.output_directory` until it ends, is stopped, or fails.
/// Whatever was written stays on disk and is listed in the report, whatever the way it ended.
pub async fn record(
    client: HlsHttpClient,
    url_text: &str,
    options: RecordingOptions,
    settings: RecordingSettings,
    control: watch::Receiver<DesiredState>,
    events: mpsc::UnboundedSender<RecorderEvent>,
) -> RecordingReport {
    if settings.engine.uses_ffmpeg_engine(url_text) {
        return ffmpeg_engine::record_with_ffmpeg_engine(
            &client, url_text, options, settings, control, events,
        )
        .await;
    }
    record_with_native_engine(client, url_text, options, settings, control, events).await
}

/// One run of the tracks (a recording is one run, or several when the stream went away and came
/// back within [`RecordingOptions::wait_for_live`]).
struct TrackRun {
    main: TrackOutcome,
    audio: Option<TrackOutcome>,
    /// The part number at which the part limit stopped the run.
    part_limit_reached: Option<u32>,
}

/// `base` (earlier runs) plus `run` (this run's own count).
fn progress_plus(base: &RecordingProgress, run: &RecordingProgress) -> RecordingProgress {
    RecordingProgress {
        elapsed: base.elapsed + run.elapsed,
        media_seconds: base.media_seconds + run.media_seconds,
        bytes_written: base.bytes_written + run.bytes_written,
        segments_written: base.segments_written + run.segments_written,
        gap_segments: base.gap_segments + run.gap_segments,
        gap_seconds: base.gap_seconds + run.gap_seconds,
        current_part: run.current_part.max(base.current_part),
    }
}

/// Runs the main track (and the audio rendition) once. The tracks get their own control: the
/// user's, relayed, or `StopNow` once a track starts part number `settings.maximum_parts`. Track
/// events are forwarded with the progress of earlier runs (`earlier`) added.
#[allow(clippy::too_many_arguments)]
async fn run_tracks_once(
    client: &HlsHttpClient,
    main_config: TrackRecorderConfig,
    audio_config: Option<TrackRecorderConfig>,
    extra_configs: Vec<TrackRecorderConfig>,
    maximum_parts: u32,
    control: &watch::Receiver<DesiredState>,
    events: &mpsc::UnboundedSender<RecorderEvent>,
    earlier: std::collections::HashMap<String, RecordingProgress>,
) -> TrackRun {
    let (track_control_sender, track_control) = watch::channel(*control.borrow());
    let (track_events_sender, mut track_events) = mpsc::unbounded_channel::<TrackEvent>();
    let forwarder_events = events.clone();
    let mut user_control = control.clone();
    let relay = tokio::spawn(async move {
        let mut part_limit_reached: Option<u32> = None;
        let mut user_control_open = true;
        loop {
            tokio::select! {
                event = track_events.recv() => {
                    let Some(mut event) = event else { break };
                    if let TrackEvent::PartStarted { track, part } = &event
                        && part.number >= maximum_parts
                        && part_limit_reached.is_none()
                    {
                        tracing::warn!(%track, part = part.number, maximum_parts, "the recording reached its part limit; stopping");
                        part_limit_reached = Some(part.number);
                        track_control_sender.send_replace(DesiredState::StopNow);
                    }
                    if let TrackEvent::SegmentCommitted { track, progress, .. }
                    | TrackEvent::GapDetected { track, progress, .. } = &mut event
                        && let Some(base) = earlier.get(track.as_str())
                    {
                        *progress = progress_plus(base, progress);
                    }
                    let _ = forwarder_events.send(RecorderEvent::Track { event });
                }
                changed = user_control.changed(), if user_control_open && part_limit_reached.is_none() => {
                    let desired = match changed {
                        Ok(()) => *user_control.borrow_and_update(),
                        Err(_) => {
                            // The owner is gone: a graceful stop, as the tracks would do themselves.
                            user_control_open = false;
                            DesiredState::Stop
                        }
                    };
                    track_control_sender.send_replace(desired);
                }
            }
        }
        part_limit_reached
    });
    // Tracks beside the main one (tracks.rs: another audio language, every audio, subtitles):
    // they follow the same control and are stopped once main and audio are done.
    let (extra_control, extra_tracks_stop) = tracks::follow_control(track_control.clone());
    let extra_tracks = tracks::record_extra_tracks(
        client.clone(),
        extra_configs,
        extra_control,
        track_events_sender.clone(),
    );
    let main_future = record_track(
        client.clone(),
        main_config,
        track_control.clone(),
        track_events_sender.clone(),
    );
    let main_and_audio = async {
        let outcomes = match audio_config {
            Some(audio_config) => {
                let audio_future = record_track(
                    client.clone(),
                    audio_config,
                    track_control.clone(),
                    track_events_sender.clone(),
                );
                let (main, audio) = tokio::join!(main_future, audio_future);
                (main, Some(audio))
            }
            None => (main_future.await, None),
        };
        extra_tracks_stop.stop();
        outcomes
    };
    let ((main, audio), _extra_outcomes) = tokio::join!(main_and_audio, extra_tracks);
    drop(track_events_sender);
    let part_limit_reached = relay.await.ok().flatten();
    TrackRun {
        main,
        audio,
        part_limit_reached,
    }
}

fn failed_report(
    settings: &RecordingSettings,
    error: &RecorderError,
    retryable: bool,
    source: Option<ResolvedSource>,
) -> RecordingReport {
    report_without_tracks(
        settings,
        RecordingOutcome::Failed {
            message: error.user_message(),
            retryable,
            failure: error.failure_kind(),
        },
        source,
    )
}

/// The report of a recording that wrote no track, written to `recording.json`.
pub(crate) fn report_without_tracks(
    settings: &RecordingSettings,
    outcome: RecordingOutcome,
    source: Option<ResolvedSource>,
) -> RecordingReport {
    let report = RecordingReport {
        outcome,
        source,
        main: None,
        audio: None,
        output_directory: settings.output_directory.clone(),
    };
    write_report(&settings.output_directory, &report);
    report
}

/// How a run's main track ended, as the recording's outcome.
fn outcome_of(end: &TrackEnd) -> RecordingOutcome {
    match end {
        TrackEnd::Finished(reason) => RecordingOutcome::Finished {
            reason: reason.clone(),
        },
        TrackEnd::Failed(error) => RecordingOutcome::Failed {
            message: error.user_message(),
            retryable: error.is_retryable(),
            failure: error.failure_kind(),
        },
    }
}

/// The stream went away (stalled, or its playlist fails the way a stream that is not live does):
/// worth waiting for when the user asked to wait.
fn stream_went_away(end: &TrackEnd) -> bool {
    match end {
        TrackEnd::Finished(RecordingEndReason::Stalled { .. }) => true,
        TrackEnd::Failed(error) => resolve::hls_error_is_not_live_yet(error),
        TrackEnd::Finished(_) => false,
    }
}

/// The native HLS engine: watch the link until it is live (when asked to wait), resolve the
/// playlist, record the main track and the audio rendition. A stream that goes away mid-way and
/// comes back within the wait is recorded on into the same directory, as a new part.
pub(crate) async fn record_with_native_engine(
    client: HlsHttpClient,
    url_text: &str,
    options: RecordingOptions,
    settings: RecordingSettings,
    control: watch::Receiver<DesiredState>,
    events: mpsc::UnboundedSender<RecorderEvent>,
) -> RecordingReport {
    let mut control = control;
    let mut recording_started: Option<std::time::Instant> = None;
    let mut source: Option<ResolvedSource> = None;
    let mut last_run: Option<TrackRun> = None;
    let mut earlier: std::collections::HashMap<String, RecordingProgress> =
        std::collections::HashMap::new();
    let mut first_media_sequences: std::collections::HashMap<String, u64> =
        std::collections::HashMap::new();
    // When the stream last went away, and whether the last run recorded nothing at all.
    let mut went_away_at: Option<std::time::Instant> = None;
    let mut delay_first_check = false;
    let outcome = loop {
        let remaining = match (recording_started, options.maximum_duration) {
            (Some(started), Some(maximum)) => Some(maximum.saturating_sub(started.elapsed())),
            (None, maximum) => maximum,
            (Some(_), None) => None,
        };
        if remaining.is_some_and(|remaining| remaining.is_zero()) {
            break RecordingOutcome::Finished {
                reason: RecordingEndReason::DurationReached,
            };
        }
        // The wait for a stream that went away counts from when it went away (runs that
        // recorded nothing do not start it again), and never goes past the duration asked for.
        let wait_left = went_away_at.map_or(options.wait_for_live, |at| {
            options.wait_for_live.saturating_sub(at.elapsed())
        });
        let wait = match remaining {
            Some(remaining) if recording_started.is_some() => remaining.min(wait_left),
            _ => wait_left,
        };
        if let Some(run) = &last_run
            && wait.is_zero()
        {
            tracing::info!("the stream did not come back within the wait; the recording ends");
            break outcome_of(&run.main.end);
        }
        let live = match live_wait::resolve_when_live(
            &client,
            url_text,
            &options,
            &settings,
            wait,
            delay_first_check,
            &mut control,
            &events,
        )
        .await
        {
            live_wait::LiveWait::Live(live) => live,
            live_wait::LiveWait::Stopped => {
                tracing::info!(
                    recorded_before = last_run.is_some(),
                    "stopped while waiting for the stream to start"
                );
                break RecordingOutcome::Finished {
                    reason: RecordingEndReason::Stopped,
                };
            }
            live_wait::LiveWait::Failed(error) => match &last_run {
                None => return failed_report(&settings, &error, error.is_retryable(), None),
                Some(run) => {
                    tracing::info!(%error, "the stream did not come back; the recording ends");
                    break outcome_of(&run.main.end);
                }
            },
        };
        let mut current = live.source;
        let track_plan = tracks::plan_tracks(&client, url_text, &options)
            .await
            .ok()
            .flatten();
        if let Some(plan) = &track_plan {
            tracks::apply_to_source(&mut current, plan);
            tracks::write_track_plan(&settings.output_directory, plan);
        }
        let _ = events.send(RecorderEvent::Resolved {
            source: current.clone(),
        });
        tracing::info!(
            main = %streambot_hls::url_safety::redact_url_text(&current.main_media_playlist_url),
            audio = ?current
                .audio_media_playlist_url
                .as_deref()
                .map(streambot_hls::url_safety::redact_url_text),
            "recording source resolved"
        );
        source = Some(current.clone());
        let started = *recording_started.get_or_insert_with(std::time::Instant::now);

        let track_config = |name: &str, url: &str| -> Result<TrackRecorderConfig, RecorderError> {
            let url = parse_and_check_url(url, client.policy()).map_err(HlsError::from)?;
            let mut config = TrackRecorderConfig::new(name, url, settings.output_directory.clone());
            config.stall_timeout = options.stall_timeout;
            if options.from_start {
                config.start_from = StartFrom::WindowStart;
            }
            config.maximum_duration = remaining;
            config.parallel_downloads = settings.parallel_downloads;
            config.live_edge_segments = settings.live_edge_segments;
            config.maximum_part_bytes = settings.maximum_part_bytes;
            config.maximum_part_seconds = settings.maximum_part_seconds;
            config.fsync_interval = settings.fsync_interval;
            config.stop_grace = settings.stop_grace;
            Ok(config)
        };
        let main_config = match track_config("main", &current.main_media_playlist_url) {
            Ok(mut config) => {
                // A backup that may not be reached is left out; the others stand by.
                config.backup_media_playlist_urls = current
                    .backup_media_playlist_urls
                    .iter()
                    .filter_map(|url| parse_and_check_url(url, client.policy()).ok())
                    .collect();
                config
            }
            Err(error) => {
                if last_run.is_none() {
                    return failed_report(&settings, &error, false, Some(current));
                }
                break RecordingOutcome::Failed {
                    message: error.user_message(),
                    retryable: false,
                    failure: error.failure_kind(),
                };
            }
        };
        let audio_config = current
            .audio_media_playlist_url
            .as_deref()
            .and_then(|url| track_config("audio", url).ok());
        let extra_configs = tracks::extra_track_configs(track_plan.as_ref(), track_config);
        let run = run_tracks_once(
            &client,
            main_config,
            audio_config,
            extra_configs,
            settings.maximum_parts,
            &control,
            &events,
            earlier.clone(),
        )
        .await;
        for outcome in std::iter::once(&run.main).chain(run.audio.iter()) {
            let mut total = earlier.get(&outcome.track_name).map_or_else(
                || outcome.progress.clone(),
                |base| progress_plus(base, &outcome.progress),
            );
            // Wall time from the recording's start, waits between runs included.
            total.elapsed = started.elapsed();
            earlier.insert(outcome.track_name.clone(), total);
            if let Some(first) = outcome.first_media_sequence {
                first_media_sequences
                    .entry(outcome.track_name.clone())
                    .or_insert(first);
            }
        }
        let stop_asked = matches!(
            *control.borrow(),
            DesiredState::Stop | DesiredState::StopNow
        );
        let recorded_something = run.main.progress.segments_written > 0;
        went_away_at = match went_away_at {
            Some(at) if !recorded_something => Some(at),
            _ => Some(std::time::Instant::now()),
        };
        delay_first_check = !recorded_something;
        let ended = match run.part_limit_reached {
            Some(part) => Some(RecordingOutcome::Finished {
                reason: RecordingEndReason::PartLimitReached { parts: part },
            }),
            None if stop_asked
                || options.wait_for_live.is_zero()
                || !stream_went_away(&run.main.end) =>
            {
                Some(outcome_of(&run.main.end))
            }
            None => None,
        };
        last_run = Some(run);
        if let Some(outcome) = ended {
            break outcome;
        }
        tracing::info!("the stream went away; waiting for it to come back");
    };
    let Some(run) = last_run else {
        // Nothing was recorded (stopped while waiting, or the duration was over before).
        return report_without_tracks(&settings, outcome, source);
    };
    let track_report_of = |outcome: &TrackOutcome| {
        let mut report = track_report(outcome, settings.maximum_part_bytes);
        report.parts = all_parts_of_track(&settings.output_directory, outcome);
        if let Some(total) = earlier.get(&outcome.track_name) {
            report.progress = total.clone();
        }
        if let Some(first) = first_media_sequences.get(&outcome.track_name) {
            report.first_media_sequence = Some(*first);
        }
        report
    };
    let mut main_report = track_report_of(&run.main);
    if let RecordingOutcome::Finished { reason } = &outcome {
        main_report.ended = reason.describe();
    }
    let report = RecordingReport {
        outcome,
        source,
        main: Some(main_report),
        audio: run.audio.as_ref().map(track_report_of),
        output_directory: settings.output_directory.clone(),
    };
    write_report(&settings.output_directory, &report);
    report
}

/// Writes `recording.json` next to the parts (best effort: the ledger is the record of truth).
/// Every string in it goes through the one URL redaction first: the link, the variant and
/// rendition URIs may carry `user:password@` or a `?token=` (nothing reads a URL back from it).
pub(crate) fn write_report(directory: &Path, report: &RecordingReport) {
    if std::fs::create_dir_all(directory).is_err() {
        return;
    }
    let Ok(mut value) = serde_json::to_value(report) else {
        return;
    };
    redact_strings(&mut value);
    let path = directory.join(streambot_core::job_files::RECORDING_FILE_NAME);
    if let Err(error) = streambot_core::local_files::write_json_atomically(&path, &value) {
        tracing::warn!(%error, "could not write the recording report");
    }
}

/// Every string anywhere in `value`, with passwords and secret query values removed.
fn redact_strings(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) => {
            *text = streambot_hls::url_safety::redact_url_text(text);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_strings),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(redact_strings),
        _ => {}
    }
}

/// A network policy from the usual setting.
pub fn network_policy(allow_private_networks: bool) -> NetworkPolicy {
    NetworkPolicy {
        allow_private_networks,
    }
}
