//! The ffmpeg engine inside a recording: for links that are not HLS (a live MPEG-TS or FLV over
//! HTTP, an mp4 file), streambot's own HTTP client fetches the link ([`crate::progressive`]: every
//! address and redirect checked, sizes and times bounded) and writes the bytes into ffmpeg's
//! stdin with the container named; ffmpeg never opens a connection (issue 11). An mp4 whose index
//! is at the end is downloaded to a file first and remuxed from there; a body that turns out to be
//! an HLS playlist goes to the native HLS engine; anything else is refused with the reason.
//!
//! ffmpeg writes `part-NNNN.ts` segment files; the report lists them as parts so finalize treats
//! them like the native engine's parts. Stop = the feeder stops and closes ffmpeg's stdin (ffmpeg
//! finishes the last segment by itself), then SIGTERM, then SIGKILL. Pause = the feeder keeps
//! reading the connection (so the origin does not drop it) and drops the bytes, whole MPEG-TS
//! packets at a time; ffmpeg idles on its stdin. For a downloaded file, pause is SIGSTOP. A live
//! MPEG-TS link whose connection breaks is opened again with backoff while media arrived within
//! the stall limit, fed from the new connection's first packet boundary (FLV and files are not
//! reconnected). There is no ledger: ffmpeg cannot say what it missed.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;
use tokio_util::sync::CancellationToken;

use streambot_core::{RecordingEndReason, RecordingOptions, RecordingProgress};
use streambot_ffmpeg::run::engine_segment_files;
use streambot_ffmpeg::{
    EngineInput, EngineOptions, EngineRecording, FfmpegRunner, InputFormat, MediaInput,
};
use streambot_hls::ledger::{PartStartReason, PartSummary};
use streambot_hls::url_safety::{
    check_url_and_resolved_addresses, parse_and_check_url, redact_url,
};
use streambot_hls::{DesiredState, HlsError, HlsHttpClient, TrackEvent};
use tokio::sync::{mpsc, watch};

use crate::live_wait::stop_requested;
use crate::progressive::{
    BodyKind, KEYFRAME_WAIT_MAXIMUM_BYTES, OpenedBody, TS_PACKET_BYTES, TS_RESYNC_SEARCH_BYTES,
    download_to_file, next_chunk, open_body, progressive_http_client, reconnect_backoff,
    ts_packet_boundary, ts_packet_starts_keyframe, ts_video_pid,
};
use crate::{
    RecorderError, RecorderEvent, RecordingOutcome, RecordingReport, RecordingSettings,
    ResolvedSource, TrackReport, write_report,
};

const PROGRESSIVE_MEDIA_EXTENSIONS: [&str; 9] = [
    ".ts", ".mp4", ".flv", ".mkv", ".webm", ".mp3", ".aac", ".m4a", ".mov",
];

/// Most bytes of a live MPEG-TS link read before ffmpeg starts, to see which streams its program
/// map declares carry packets (ffmpeg's own probe reads 5 MB): a declared stream without any
/// makes ffmpeg fail the whole recording ("sample rate not set"), so it is left out.
const STREAM_PROBE_BYTES: usize = 4 * 1024 * 1024;
/// Longest wait for those bytes (a live link arrives at its bitrate; ffmpeg gives up on a
/// stream after 5 s of media).
const STREAM_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads more of a TS link into its first bytes until every stream its program map declares has
/// begun a PES packet, [`STREAM_PROBE_BYTES`] are read, [`STREAM_PROBE_TIMEOUT`] passes, or the
/// body ends (or fails: the feeder then reconnects). Nothing read is lost: ffmpeg gets it all.
async fn read_until_every_declared_stream_is_seen(opened: &mut OpenedBody) {
    let reading = async {
        let mut checked_at = 0usize;
        loop {
            if opened.first_bytes.len() >= STREAM_PROBE_BYTES {
                return;
            }
            // Checked every 256 KiB: each check reads the whole buffer.
            if opened.first_bytes.len() >= checked_at {
                if streambot_ffmpeg::known_streams::ts_streams_without_packets(&opened.first_bytes)
                    .is_empty()
                {
                    return;
                }
                checked_at = opened.first_bytes.len() + 256 * 1024;
            }
            match opened.response.chunk().await {
                Ok(Some(chunk)) => opened.first_bytes.extend_from_slice(&chunk),
                Ok(None) | Err(_) => return,
            }
        }
    };
    let _ = tokio::time::timeout(STREAM_PROBE_TIMEOUT, reading).await;
}

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

/// Where an mp4 with its index at the end is downloaded (removed after the recording).
pub const PROGRESSIVE_DOWNLOAD_FILE_NAME: &str = "download.mp4";

/// What ffmpeg reads.
enum FeedSource {
    /// The body, fed into ffmpeg's stdin.
    Pipe {
        format: InputFormat,
        opened: Box<OpenedBody>,
    },
    /// A downloaded file.
    File(MediaInput),
}

/// How the feeding of ffmpeg's stdin ended.
#[derive(Debug, Default)]
pub struct FeedOutcome {
    pub bytes_fed: u64,
    pub bytes_dropped_while_paused: u64,
    /// Times a live MPEG-TS link was connected again after its connection broke.
    pub reconnects: u32,
    /// The network failed before the body ended (a stop or ffmpeg closing its input is no error).
    pub error: Option<HlsError>,
}

/// The part of a chunk (starting at `chunk_start` in the body) that is fed to ffmpeg. While paused
/// the bytes are dropped; with `packet_bytes` (MPEG-TS), the packet under way when the pause
/// began is completed first and feeding resumes at the next packet boundary, so ffmpeg only ever
/// sees whole packets. `dropping` carries the state from chunk to chunk.
pub fn bytes_to_feed(
    chunk_start: u64,
    chunk_length: usize,
    paused: bool,
    packet_bytes: Option<u64>,
    dropping: &mut bool,
) -> std::ops::Range<usize> {
    let to_boundary = || {
        packet_bytes.map_or(0, |packet| {
            let rest = (packet - chunk_start % packet) % packet;
            usize::try_from(rest)
                .unwrap_or(usize::MAX)
                .min(chunk_length)
        })
    };
    match (paused, *dropping) {
        (true, false) => {
            *dropping = true;
            0..to_boundary()
        }
        (true, true) => 0..0,
        (false, true) => {
            *dropping = false;
            to_boundary()..chunk_length
        }
        (false, false) => 0..chunk_length,
    }
}

/// Slack of the wall-clock limit over the duration asked for: ffmpeg's `-t` counts media time, so a
/// link that sends bytes without media (null packets, an mdat that never ends) would never reach
/// it. The recording is stopped once wall time (paused time left out) passes the duration plus
/// this, or plus a tenth of it when that is more.
pub const WALL_CLOCK_SLACK: Duration = Duration::from_secs(15);

/// The wall-clock limit of a recording asked to last `maximum_duration`.
pub fn wall_clock_limit(maximum_duration: Option<Duration>) -> Option<Duration> {
    maximum_duration.map(|duration| duration.saturating_add(WALL_CLOCK_SLACK.max(duration / 10)))
}

/// How a live MPEG-TS link is opened again after its connection broke.
#[derive(Debug, Clone)]
pub struct Reconnect {
    pub http: reqwest::Client,
    /// The link as the user gave it (redirects are followed again).
    pub url: url::Url,
    pub policy: streambot_hls::url_safety::NetworkPolicy,
    /// Reconnecting stops once no media arrived for this long (the recording's stall limit).
    pub stall_timeout: Duration,
}

/// Bytes at the start of the first connection compared with a new connection's: the same bytes
/// mean the link serves a file from its start again, not a live stream, and nothing is fed twice.
const START_OVER_COMPARED_BYTES: usize = 4096;

/// Attempts after a connection that ended cleanly (the stream may really have ended); after a
/// failed connection attempts go on until the stall limit.
const RECONNECT_ATTEMPTS_AFTER_CLEAN_END: u32 = 3;

/// Open the link again with [`reconnect_backoff`] between attempts, while `stop` is not cancelled
/// and media arrived within the stall limit. Only an MPEG-TS body is taken, and not one that
/// starts with `first_connection_start` (the link serves a file from its start again).
async fn reopen_live_ts(
    reconnect: &Reconnect,
    last_media_at: Instant,
    clean_end: bool,
    first_connection_start: &[u8],
    stop: &CancellationToken,
) -> Option<OpenedBody> {
    for attempt in 1u32.. {
        if clean_end && attempt > RECONNECT_ATTEMPTS_AFTER_CLEAN_END {
            return None;
        }
        let remaining = reconnect
            .stall_timeout
            .checked_sub(last_media_at.elapsed())?;
        let wait = reconnect_backoff(attempt).min(remaining);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return None,
        }
        let remaining = reconnect
            .stall_timeout
            .checked_sub(last_media_at.elapsed())?;
        let opening = tokio::select! {
            opened = tokio::time::timeout(
                remaining,
                open_body(&reconnect.http, &reconnect.url, reconnect.policy),
            ) => opened,
            _ = stop.cancelled() => return None,
        };
        match opening {
            Ok(Ok(opened))
                if !first_connection_start.is_empty()
                    && opened.first_bytes.starts_with(first_connection_start) =>
            {
                tracing::info!(
                    "the link starts over from the beginning: not live, not reconnected"
                );
                return None;
            }
            // A live connection starts wherever the stream is, often inside a packet.
            Ok(Ok(opened))
                if opened.kind == BodyKind::Streamable(InputFormat::MpegTs)
                    || (opened.kind != BodyKind::HlsPlaylist
                        && ts_packet_boundary(&opened.first_bytes).is_some()) =>
            {
                tracing::info!(attempt, "the ffmpeg engine's live input is connected again");
                return Some(opened);
            }
            Ok(Ok(opened)) => {
                tracing::warn!(attempt, kind = ?opened.kind, "the link no longer serves MPEG-TS");
            }
            Ok(Err(error)) => {
                tracing::warn!(attempt, %error, "reconnecting the ffmpeg engine's input failed");
            }
            Err(_) => return None,
        }
    }
    None
}

/// The body length the response's headers declare (a file, not a live stream).
fn declared_length(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get(reqwest::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Copy the body into ffmpeg's stdin until the body ends, `stop` is cancelled, or ffmpeg closes
/// its input (`-t` reached, an error). While `paused` is true the bytes are read and dropped; for
/// MPEG-TS, feeding resumes at a packet boundary. A live MPEG-TS link whose connection breaks is
/// opened again ([`reopen_live_ts`]); ffmpeg only ever gets whole packets (the partial packet of
/// a broken connection is dropped and the new one is fed from its first packet boundary). The
/// pipe is closed on return (end of input).
async fn feed_pipe(
    mut opened: OpenedBody,
    mut pipe: ChildStdin,
    format: InputFormat,
    paused: watch::Receiver<bool>,
    stop: CancellationToken,
    reconnect: Option<Reconnect>,
) -> FeedOutcome {
    let mut outcome = FeedOutcome::default();
    let is_ts = format == InputFormat::MpegTs;
    let packet_bytes = is_ts.then_some(TS_PACKET_BYTES as u64);
    let mut url = opened.final_url.clone();
    // Position in what ffmpeg is given (whole packets for MPEG-TS), to find packet boundaries.
    let mut body_offset: u64 = 0;
    let mut pending = bytes::Bytes::from(std::mem::take(&mut opened.first_bytes));
    let first_connection_start = pending.slice(..pending.len().min(START_OVER_COMPARED_BYTES));
    // Bytes of this connection's body read so far, to tell a whole file (Content-Length) read.
    let mut connection_bytes = pending.len() as u64;
    // MPEG-TS bytes not yet making a whole packet (or, while resyncing, not yet at a boundary).
    let mut carry = bytes::BytesMut::new();
    let mut resyncing = is_ts;
    // After a reconnect, packets are dropped until a video keyframe starts (the frames between
    // would refer to pictures lost in the gap and not decode).
    let video_pid = if is_ts { ts_video_pid(&pending) } else { None };
    let mut waiting_for_keyframe = false;
    let mut dropped_waiting_for_keyframe = 0usize;
    let mut dropping = false;
    let mut last_media_at = Instant::now();
    loop {
        if !pending.is_empty() {
            let mut chunk = std::mem::take(&mut pending);
            if is_ts {
                carry.extend_from_slice(&chunk);
                if resyncing {
                    match ts_packet_boundary(&carry) {
                        Some(boundary) => {
                            let _ = carry.split_to(boundary);
                            resyncing = false;
                        }
                        None if carry.len() > TS_RESYNC_SEARCH_BYTES => {
                            outcome.error = Some(HlsError::Network {
                                url: redact_url(&url),
                                detail: "the link no longer serves MPEG-TS".to_string(),
                            });
                            break;
                        }
                        None => {}
                    }
                }
                let whole_packets = if resyncing {
                    0
                } else {
                    carry.len() / TS_PACKET_BYTES * TS_PACKET_BYTES
                };
                chunk = carry.split_to(whole_packets).freeze();
                if waiting_for_keyframe && let Some(video_pid) = video_pid {
                    let keyframe = chunk
                        .chunks(TS_PACKET_BYTES)
                        .position(|packet| ts_packet_starts_keyframe(packet, video_pid));
                    let dropped = keyframe.map_or(chunk.len(), |index| index * TS_PACKET_BYTES);
                    dropped_waiting_for_keyframe += dropped;
                    if keyframe.is_some()
                        || dropped_waiting_for_keyframe > KEYFRAME_WAIT_MAXIMUM_BYTES
                    {
                        waiting_for_keyframe = false;
                    }
                    chunk = chunk.slice(dropped..);
                }
            }
            let chunk_start = body_offset;
            body_offset += chunk.len() as u64;
            let kept = bytes_to_feed(
                chunk_start,
                chunk.len(),
                *paused.borrow(),
                packet_bytes,
                &mut dropping,
            );
            outcome.bytes_dropped_while_paused += (chunk.len() - kept.len()) as u64;
            let bytes = chunk.slice(kept);
            if !bytes.is_empty() {
                let writing = pipe.write_all(&bytes);
                tokio::select! {
                    written = writing => {
                        if written.is_err() {
                            // ffmpeg closed its input: it is done (duration reached, or failed).
                            break;
                        }
                        outcome.bytes_fed += bytes.len() as u64;
                    }
                    _ = stop.cancelled() => break,
                }
            }
        }
        let broke_off = tokio::select! {
            chunk = next_chunk(&mut opened.response, &url) => match chunk {
                Ok(Some(chunk)) => {
                    connection_bytes += chunk.len() as u64;
                    pending = chunk;
                    last_media_at = Instant::now();
                    continue;
                }
                // A body with a length read to its end is a file that ended: no reconnect.
                Ok(None) if declared_length(&opened.response) == Some(connection_bytes) => break,
                Ok(None) => None,
                Err(error) => {
                    tracing::warn!(%error, "the ffmpeg engine's input broke off");
                    Some(error)
                }
            },
            _ = stop.cancelled() => break,
        };
        let reopened = match &reconnect {
            Some(reconnect) => {
                reopen_live_ts(
                    reconnect,
                    last_media_at,
                    broke_off.is_none(),
                    &first_connection_start,
                    &stop,
                )
                .await
            }
            None => None,
        };
        match reopened {
            Some(mut again) => {
                outcome.reconnects += 1;
                url = again.final_url.clone();
                pending = bytes::Bytes::from(std::mem::take(&mut again.first_bytes));
                connection_bytes = pending.len() as u64;
                opened = again;
                carry.clear();
                resyncing = true;
                waiting_for_keyframe = video_pid.is_some();
                dropped_waiting_for_keyframe = 0;
                last_media_at = Instant::now();
            }
            None => {
                outcome.error = broke_off;
                break;
            }
        }
    }
    let _ = pipe.shutdown().await;
    outcome
}

/// Stopped before anything was recorded (while the link was opened or downloaded).
fn stopped_before_recording(settings: &RecordingSettings) -> RecordingReport {
    crate::report_without_tracks(
        settings,
        RecordingOutcome::Finished {
            reason: RecordingEndReason::Stopped,
        },
        None,
    )
}

fn failed(
    settings: &RecordingSettings,
    message: String,
    retryable: bool,
    failure: streambot_core::FailureKind,
) -> RecordingReport {
    crate::report_without_tracks(
        settings,
        RecordingOutcome::Failed {
            message,
            retryable,
            failure,
        },
        None,
    )
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

/// Ends ffmpeg's input (the feeder stops) and waits up to `grace` for the feeder's outcome:
/// `None` when no feeder runs any more, or it did not end in time.
async fn stop_feeder(
    feeder_stop: &CancellationToken,
    feeder: &mut Option<tokio::task::JoinHandle<FeedOutcome>>,
    grace: Duration,
) -> Option<FeedOutcome> {
    feeder_stop.cancel();
    let feeding = feeder.take()?;
    tokio::time::timeout(grace, feeding)
        .await
        .ok()
        .and_then(Result::ok)
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
    let http = match progressive_http_client(policy, &client.limits()) {
        Ok(http) => http,
        Err(error) => {
            return failed(&settings, error.user_message(), false, error.failure_kind());
        }
    };
    let opening = tokio::select! {
        opened = open_body(&http, &url, policy) => opened,
        _ = stop_requested(&mut control) => return stopped_before_recording(&settings),
    };
    let opened = match opening {
        Ok(opened) => opened,
        Err(error) => {
            return failed(
                &settings,
                error.user_message(),
                error.is_retryable(),
                error.failure_kind(),
            );
        }
    };
    let mut streams_left_out = Vec::new();
    let engine_input = match opened.kind {
        BodyKind::HlsPlaylist => {
            tracing::info!(url = %redact_url(&url), final_url = %redact_url(&opened.final_url), "the link is an HLS playlist: recording it with the native engine");
            let final_url = opened.final_url.to_string();
            drop(opened);
            return crate::record_with_native_engine(
                client.clone(),
                &final_url,
                options,
                settings,
                control,
                events,
            )
            .await;
        }
        BodyKind::Refused(what) => {
            let error = RecorderError::NotAStream {
                url: redact_url(&url),
                looks_like: what,
            };
            return failed(&settings, error.user_message(), false, error.failure_kind());
        }
        BodyKind::Streamable(format) => {
            let mut opened = opened;
            if format == InputFormat::MpegTs {
                tokio::select! {
                    () = read_until_every_declared_stream_is_seen(&mut opened) => {}
                    _ = stop_requested(&mut control) => return stopped_before_recording(&settings),
                }
                streams_left_out = streambot_ffmpeg::known_streams::ts_streams_without_packets(
                    &opened.first_bytes,
                )
                .iter()
                .map(|stream| stream.pid)
                .collect();
                if !streams_left_out.is_empty() {
                    tracing::warn!(streams = ?streams_left_out, "streams the program map declares carry no packet; left out");
                }
            }
            FeedSource::Pipe {
                format,
                opened: Box::new(opened),
            }
        }
        BodyKind::Mp4IndexAtEnd => {
            let download = settings
                .output_directory
                .join(PROGRESSIVE_DOWNLOAD_FILE_NAME);
            tracing::info!(url = %redact_url(&url), "an mp4 with its index at the end: downloading it before the remux");
            let downloading = tokio::select! {
                downloaded = download_to_file(opened, &download, settings.maximum_download_bytes) => downloaded,
                _ = stop_requested(&mut control) => {
                    let _ = std::fs::remove_file(&download);
                    return stopped_before_recording(&settings);
                }
                _ = sleep_or_forever(wall_clock_limit(options.maximum_duration)) => {
                    let _ = std::fs::remove_file(&download);
                    let error = HlsError::TooLarge {
                        url: redact_url(&url),
                        what: "progressive mp4 (its index is at the end, so all of it is needed) within the duration asked for",
                        limit_bytes: settings.maximum_download_bytes,
                    };
                    return failed(&settings, error.user_message(), false, error.failure_kind());
                }
            };
            if let Err(error) = downloading {
                return failed(
                    &settings,
                    error.user_message(),
                    error.is_retryable(),
                    error.failure_kind(),
                );
            }
            FeedSource::File(MediaInput::new(download, InputFormat::Mp4))
        }
    };
    let source = ResolvedSource {
        requested_url: url.to_string(),
        main_media_playlist_url: url.to_string(),
        audio_media_playlist_url: None,
        backup_media_playlist_urls: Vec::new(),
        choice: None,
        audio_only: options.quality == streambot_core::Quality::Audio,
    };
    let _ = events.send(RecorderEvent::Resolved {
        source: source.clone(),
    });
    let binaries = settings.ffmpeg_binaries.clone();
    let engine_options = EngineOptions {
        max_duration: options.maximum_duration,
        segment_seconds: settings
            .maximum_part_seconds
            .map_or(600, |seconds| seconds.clamp(1.0, 86_400.0) as u32),
        first_segment_number: next_segment_number(&settings.output_directory),
        streams_left_out,
    };
    let input = match &engine_input {
        FeedSource::Pipe { format, .. } => EngineInput::Pipe(*format),
        FeedSource::File(media) => EngineInput::File(media.clone()),
    };
    let mut recording = match EngineRecording::start(
        &binaries,
        &input,
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
    let (feeder_paused_sender, feeder_paused) = watch::channel(false);
    let feeder_stop = CancellationToken::new();
    let (mut feeder, downloaded_file) = match engine_input {
        FeedSource::Pipe { format, opened } => match recording.take_input_pipe() {
            Some(pipe) => (
                Some(tokio::spawn(feed_pipe(
                    *opened,
                    pipe,
                    format,
                    feeder_paused,
                    feeder_stop.clone(),
                    (format == InputFormat::MpegTs).then(|| Reconnect {
                        http: http.clone(),
                        url: url.clone(),
                        policy,
                        stall_timeout: options.stall_timeout,
                    }),
                ))),
                None,
            ),
            None => (None, None),
        },
        FeedSource::File(media) => (None, Some(media.path)),
    };
    let pause_by_signal = feeder.is_none();
    // A pause asked for while the link was being opened.
    if *control.borrow() == DesiredState::Pause {
        if pause_by_signal {
            if let Err(error) = recording.pause() {
                tracing::warn!(%error, "could not pause ffmpeg");
            }
        } else {
            feeder_paused_sender.send_replace(true);
        }
    }
    let mut feed_outcome: Option<FeedOutcome> = None;
    tracing::info!(url = %redact_url(&url), "recording with the ffmpeg engine (not an HLS link)");
    let started = Instant::now();
    let wall_limit = wall_clock_limit(options.maximum_duration);
    let mut paused_since: Option<Instant> =
        (*control.borrow() == DesiredState::Pause).then(Instant::now);
    let mut paused_total = Duration::ZERO;
    let mut progress_updates = recording.progress();
    // A closed progress channel (ffmpeg's output ended) is always ready: not polled again.
    let mut progress_open = true;
    let mut stop_requested = false;
    let ended = loop {
        if recording.has_exited() {
            break recording.wait(Duration::from_secs(5)).await;
        }
        let recording_wall_time = started
            .elapsed()
            .saturating_sub(paused_total)
            .saturating_sub(paused_since.map_or(Duration::ZERO, |since| since.elapsed()));
        if let Some(limit) = wall_limit
            && recording_wall_time > limit
        {
            tracing::warn!(
                ?limit,
                "the link sent no media for the duration asked; stopping by the wall clock"
            );
            let grace = settings.stop_grace.min(Duration::from_secs(10));
            feed_outcome = stop_feeder(&feeder_stop, &mut feeder, grace)
                .await
                .or(feed_outcome);
            break recording.stop(grace).await;
        }
        tokio::select! {
            changed = control.changed() => {
                let desired = if changed.is_ok() { *control.borrow_and_update() } else { DesiredState::Stop };
                match (desired, paused_since) {
                    (DesiredState::Pause, None) => paused_since = Some(Instant::now()),
                    (DesiredState::Record, Some(since)) => {
                        paused_total += since.elapsed();
                        paused_since = None;
                    }
                    _ => {}
                }
                match desired {
                    DesiredState::Pause if pause_by_signal => {
                        if let Err(error) = recording.pause() {
                            tracing::warn!(%error, "could not pause ffmpeg");
                        }
                    }
                    DesiredState::Record if pause_by_signal => {
                        if let Err(error) = recording.resume() {
                            tracing::warn!(%error, "could not resume ffmpeg");
                        }
                    }
                    DesiredState::Pause | DesiredState::Record => {
                        feeder_paused_sender.send_replace(desired == DesiredState::Pause);
                    }
                    DesiredState::Stop | DesiredState::StopNow => {
                        stop_requested = true;
                        let grace = if desired == DesiredState::StopNow {
                            Duration::from_millis(200)
                        } else {
                            settings.stop_grace.min(Duration::from_secs(10))
                        };
                        // End of input first: ffmpeg finishes the last segment by itself.
                        feed_outcome = stop_feeder(&feeder_stop, &mut feeder, grace).await.or(feed_outcome);
                        break recording.stop(grace).await;
                    }
                }
            }
            changed = progress_updates.changed(), if progress_open => {
                progress_open = changed.is_ok();
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
    feed_outcome = stop_feeder(&feeder_stop, &mut feeder, Duration::from_secs(5))
        .await
        .or(feed_outcome);
    let feed_error = feed_outcome.and_then(|outcome| {
        tracing::info!(
            bytes_fed = outcome.bytes_fed,
            bytes_dropped_while_paused = outcome.bytes_dropped_while_paused,
            reconnects = outcome.reconnects,
            "the ffmpeg engine's input ended"
        );
        outcome.error
    });
    if let Some(download) = &downloaded_file {
        let _ = std::fs::remove_file(download);
    }
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
            } else if settings.maximum_part_seconds.is_some() {
                PartStartReason::DurationLimit
            } else {
                // ffmpeg's own file rotation, no limit asked for: finalize joins them.
                PartStartReason::Restart
            },
            bytes,
            segments: 1,
            media_seconds,
        });
    }
    let (outcome, ended_text, error) = match &ended {
        Ok(_) if feed_error.is_some() && !stop_requested => match &feed_error {
            Some(error) if parts.is_empty() => (
                RecordingOutcome::Failed {
                    message: error.user_message(),
                    retryable: error.is_retryable(),
                    failure: error.failure_kind(),
                },
                "failed".to_string(),
                Some(error.user_message()),
            ),
            // The connection broke after something was recorded: deliver it, say why.
            _ => (
                RecordingOutcome::Finished {
                    reason: RecordingEndReason::StreamEnded,
                },
                RecordingEndReason::StreamEnded.describe(),
                feed_error.as_ref().map(HlsError::user_message),
            ),
        },
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
            maximum_part_bytes: settings.maximum_part_bytes,
        }),
        audio: None,
        output_directory: settings.output_directory.clone(),
    };
    write_report(&settings.output_directory, &report);
    report
}

/// Sleeps for `limit`, or for ever when there is none.
async fn sleep_or_forever(limit: Option<Duration>) {
    match limit {
        Some(limit) => tokio::time::sleep(limit).await,
        None => std::future::pending::<()>().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_bytes_are_dropped_in_whole_ts_packets() {
        let packet = Some(TS_PACKET_BYTES as u64);
        let mut dropping = false;
        // (offset, length, paused, the range fed), in order on one stream.
        let steps = [
            // Recording: everything.
            (0, 1000, false, 0..1000),
            // Pause at offset 1000 (packet 5 runs 940..1128): complete it, drop the rest.
            (1000, 500, true, 0..128),
            (1500, 500, true, 0..0),
            // Resume at offset 2000: from the next boundary, 2068.
            (2000, 500, false, 68..500),
            // And then whole chunks again, whatever their alignment.
            (2500, 333, false, 0..333),
        ];
        for (offset, length, paused, fed) in steps {
            assert_eq!(
                bytes_to_feed(offset, length, paused, packet, &mut dropping),
                fed,
                "at offset {offset}"
            );
        }
        // A chunk shorter than the rest of a packet.
        let mut dropping = true;
        assert_eq!(bytes_to_feed(1, 10, false, packet, &mut dropping), 10..10);
        // Other containers: no alignment.
        let mut dropping = false;
        assert_eq!(bytes_to_feed(7, 100, true, None, &mut dropping), 0..0);
        assert_eq!(bytes_to_feed(107, 100, false, None, &mut dropping), 0..100);
    }
}
