//! One recording end to end: resolve the link (master → variant and audio rendition), record the
//! main track and, when the variant has a separate audio rendition, the audio track beside it;
//! report progress; leave parts, ledgers and a `recording.json` summary in the output directory.
//!
//! The recorder knows nothing of Telegram, job stores or queues: it is given a directory, a
//! control channel and an event channel.

pub mod clip;
pub mod ffmpeg_engine;
pub mod finalize;
pub mod progressive;
pub mod tracks;
pub mod webvtt;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use streambot_core::{RecordingEndReason, RecordingOptions, RecordingProgress};
use streambot_hls::ledger::PartSummary;
use streambot_hls::playlist::{Playlist, parse_playlist};
use streambot_hls::url_safety::parse_and_check_url;
use streambot_hls::variant_selection::{VariantChoice, VariantSelectionError, choose_variant};
use streambot_hls::{
    DesiredState, HlsError, HlsHttpClient, NetworkPolicy, TrackEnd, TrackEvent, TrackOutcome,
    TrackRecorderConfig, record_track,
};
use tokio::sync::{mpsc, watch};
use url::Url;

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
}

impl RecorderError {
    pub fn is_retryable(&self) -> bool {
        match self {
            RecorderError::Hls(error) => error.is_retryable(),
            RecorderError::NoVariants { .. } | RecorderError::NotAStream { .. } => false,
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
        }
    }
}

/// Where the recording's bytes come from, after the master playlist was read.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedSource {
    pub requested_url: String,
    pub main_media_playlist_url: String,
    pub audio_media_playlist_url: Option<String>,
    pub choice: Option<VariantChoice>,
    pub audio_only: bool,
}

/// Reads the link once and decides what to record.
pub async fn resolve_source(
    client: &HlsHttpClient,
    url_text: &str,
    options: &RecordingOptions,
) -> Result<ResolvedSource, RecorderError> {
    let url = parse_and_check_url(url_text, client.policy()).map_err(HlsError::from)?;
    let (final_url, text) = client.fetch_playlist(&url).await?;
    let playlist = parse_playlist(&text).map_err(|error| HlsError::Playlist {
        url: url.to_string(),
        error,
    })?;
    match playlist {
        Playlist::Media(_) => Ok(ResolvedSource {
            requested_url: url.to_string(),
            main_media_playlist_url: final_url.to_string(),
            audio_media_playlist_url: None,
            choice: None,
            audio_only: options.quality == streambot_core::Quality::Audio,
        }),
        Playlist::Master(master) => {
            let choice = choose_variant(&master, options.quality).map_err(|error| match error {
                VariantSelectionError::NoVariants => RecorderError::NoVariants {
                    url: url.to_string(),
                },
            })?;
            let join = |uri: &str| -> Result<Url, RecorderError> {
                final_url.join(uri).map_err(|error| {
                    RecorderError::Hls(HlsError::Playlist {
                        url: final_url.to_string(),
                        error: streambot_hls::playlist::PlaylistParseError::InvalidTag {
                            line: 0,
                            tag: "variant URI".to_string(),
                            reason: format!("{uri:?}: {error}"),
                        },
                    })
                })
            };
            let main = join(&choice.main_uri)?;
            let audio = match choice
                .audio_rendition
                .as_ref()
                .and_then(|rendition| rendition.uri.as_deref())
            {
                Some(uri) => Some(join(uri)?.to_string()),
                None => None,
            };
            Ok(ResolvedSource {
                requested_url: url.to_string(),
                main_media_playlist_url: main.to_string(),
                audio_media_playlist_url: audio,
                audio_only: choice.audio_only,
                choice: Some(choice),
            })
        }
    }
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
}

impl RecordingSettings {
    pub fn new(output_directory: PathBuf) -> Self {
        RecordingSettings {
            output_directory,
            parallel_downloads: 3,
            live_edge_segments: 3,
            maximum_part_bytes: None,
            maximum_part_seconds: None,
            fsync_interval: Duration::from_secs(2),
            stop_grace: Duration::from_secs(15),
            maximum_download_bytes: progressive::MAXIMUM_PROGRESSIVE_DOWNLOAD_BYTES,
            ffmpeg_binaries: streambot_ffmpeg::FfmpegBinaries::default(),
        }
    }
}

/// What the recording reports while it runs.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
// Events are a few per second at most; boxing would only add allocations.
#[allow(clippy::large_enum_variant)]
pub enum RecorderEvent {
    Resolved { source: ResolvedSource },
    Track { event: TrackEvent },
}

/// A finished track, as written to `recording.json`.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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

/// Everything a recording left behind; also written as `recording.json`.
#[derive(Debug, Clone, Serialize)]
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
    // Engine choice: links that are clearly a single media stream (not a playlist) go to ffmpeg.
    if !streambot_ffmpeg::is_probably_hls(url_text)
        && ffmpeg_engine::looks_like_progressive_media(url_text)
    {
        return ffmpeg_engine::record_with_ffmpeg_engine(
            &client, url_text, options, settings, control, events,
        )
        .await;
    }
    record_with_native_engine(client, url_text, options, settings, control, events).await
}

/// The native HLS engine: resolve the playlist, record the main track and the audio rendition.
pub(crate) async fn record_with_native_engine(
    client: HlsHttpClient,
    url_text: &str,
    options: RecordingOptions,
    settings: RecordingSettings,
    control: watch::Receiver<DesiredState>,
    events: mpsc::UnboundedSender<RecorderEvent>,
) -> RecordingReport {
    let mut source = match resolve_source(&client, url_text, &options).await {
        Ok(source) => source,
        Err(error) => {
            let report = RecordingReport {
                outcome: RecordingOutcome::Failed {
                    message: error.user_message(),
                    retryable: error.is_retryable(),
                    failure: error.failure_kind(),
                },
                source: None,
                main: None,
                audio: None,
                output_directory: settings.output_directory.clone(),
            };
            write_report(&settings.output_directory, &report);
            return report;
        }
    };
    // Tracks beside the main one (tracks.rs: another audio language, every audio, subtitles).
    let track_plan = tracks::plan_tracks(&client, url_text, &options)
        .await
        .ok()
        .flatten();
    if let Some(plan) = &track_plan {
        tracks::apply_to_source(&mut source, plan);
        tracks::write_track_plan(&settings.output_directory, plan);
    }
    let _ = events.send(RecorderEvent::Resolved {
        source: source.clone(),
    });
    tracing::info!(main = %source.main_media_playlist_url, audio = ?source.audio_media_playlist_url, "recording source resolved");

    let track_config = |name: &str, url: &str| -> Result<TrackRecorderConfig, RecorderError> {
        let url = parse_and_check_url(url, client.policy()).map_err(HlsError::from)?;
        let mut config = TrackRecorderConfig::new(name, url, settings.output_directory.clone());
        config.stall_timeout = options.stall_timeout;
        config.maximum_duration = options.maximum_duration;
        config.parallel_downloads = settings.parallel_downloads;
        config.live_edge_segments = settings.live_edge_segments;
        config.maximum_part_bytes = settings.maximum_part_bytes;
        config.maximum_part_seconds = settings.maximum_part_seconds;
        config.fsync_interval = settings.fsync_interval;
        config.stop_grace = settings.stop_grace;
        Ok(config)
    };
    let main_config = match track_config("main", &source.main_media_playlist_url) {
        Ok(config) => config,
        Err(error) => {
            let report = RecordingReport {
                outcome: RecordingOutcome::Failed {
                    message: error.user_message(),
                    retryable: false,
                    failure: error.failure_kind(),
                },
                source: Some(source),
                main: None,
                audio: None,
                output_directory: settings.output_directory.clone(),
            };
            write_report(&settings.output_directory, &report);
            return report;
        }
    };
    let audio_config = source
        .audio_media_playlist_url
        .as_deref()
        .and_then(|url| track_config("audio", url).ok());

    let (track_events_sender, mut track_events) = mpsc::unbounded_channel::<TrackEvent>();
    let forwarder_events = events.clone();
    let forwarder = tokio::spawn(async move {
        while let Some(event) = track_events.recv().await {
            let _ = forwarder_events.send(RecorderEvent::Track { event });
        }
    });
    let extra_configs = tracks::extra_track_configs(track_plan.as_ref(), track_config);
    let (extra_control, extra_tracks_stop) = tracks::follow_control(control.clone());
    let extra_tracks = tracks::record_extra_tracks(
        client.clone(),
        extra_configs,
        extra_control,
        track_events_sender.clone(),
    );
    let main_future = record_track(
        client.clone(),
        main_config,
        control.clone(),
        track_events_sender.clone(),
    );
    let main_and_audio = async {
        let outcomes = match audio_config {
            Some(audio_config) => {
                let audio_future = record_track(
                    client.clone(),
                    audio_config,
                    control.clone(),
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
    let ((main_outcome, audio_outcome), _extra_outcomes) =
        tokio::join!(main_and_audio, extra_tracks);
    drop(track_events_sender);
    let _ = forwarder.await;

    let outcome = match &main_outcome.end {
        TrackEnd::Finished(reason) => RecordingOutcome::Finished {
            reason: reason.clone(),
        },
        TrackEnd::Failed(error) => RecordingOutcome::Failed {
            message: error.user_message(),
            retryable: error.is_retryable(),
            failure: error.failure_kind(),
        },
    };
    let mut main_report = track_report(&main_outcome, settings.maximum_part_bytes);
    main_report.parts = all_parts_of_track(&settings.output_directory, &main_outcome);
    let audio_report = audio_outcome.as_ref().map(|audio| {
        let mut report = track_report(audio, settings.maximum_part_bytes);
        report.parts = all_parts_of_track(&settings.output_directory, audio);
        report
    });
    let report = RecordingReport {
        outcome,
        source: Some(source),
        main: Some(main_report),
        audio: audio_report,
        output_directory: settings.output_directory.clone(),
    };
    write_report(&settings.output_directory, &report);
    report
}

/// Writes `recording.json` next to the parts (best effort: the ledger is the record of truth).
pub(crate) fn write_report(directory: &Path, report: &RecordingReport) {
    if std::fs::create_dir_all(directory).is_err() {
        return;
    }
    if let Ok(text) = serde_json::to_vec_pretty(report) {
        let temporary = directory.join("recording.json.tmp");
        if std::fs::write(&temporary, text).is_ok() {
            let _ = std::fs::rename(&temporary, directory.join("recording.json"));
        }
    }
}

/// A network policy from the usual setting.
pub fn network_policy(allow_private_networks: bool) -> NetworkPolicy {
    NetworkPolicy {
        allow_private_networks,
    }
}
