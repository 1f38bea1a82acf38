//! A live HLS origin on 127.0.0.1 with injectable faults.
//!
//! # Live model
//!
//! The origin's clock starts when the [`HlsOrigin`] is made. Segments have index `0, 1, 2, ...`;
//! index `i` has media sequence `first_media_sequence + i` and serves fixture segment `i % 90`.
//! At elapsed time `t` the indices `0 .. initial_segments + floor(t / 1 s)` are published (so the
//! newest index is `initial_segments + floor(t) - 1`), and a media playlist lists the last
//! `window_segments` of them. `total_segments` caps the index space: once index
//! `total_segments - 1` is published the playlist gets `#EXT-X-ENDLIST` and stops growing.
//!
//! `#EXT-X-DISCONTINUITY` stands before every index that is a multiple of 90 (the fixture wraps,
//! timestamps go back) and before every [`Fault::DiscontinuityAt`] media sequence; the tag is never
//! written on the first listed segment, and `#EXT-X-DISCONTINUITY-SEQUENCE` is the number of
//! discontinuities at or before the first listed index, so every segment keeps its discontinuity
//! number as the window slides.
//!
//! Segments stay downloadable until they are two windows behind the live edge (then 404), and are
//! 404 before they are published.
//!
//! # Paths
//!
//! `/master.m3u8`; media playlists `/live/media.m3u8`, `/v<i>/media.m3u8` (one per variant, same
//! media) and `/audio/media.m3u8` (audio-only rendition, same timeline, when enabled). Inside a
//! playlist directory: `seg-<media sequence>.ts|.m4s`, `init.mp4` (fMP4), `key.bin` (AES).
//!
//! # AES-128
//!
//! Segments are encrypted on the fly from the clear fixture bytes. Without `explicit_iv` the IV is
//! implicit, i.e. the media sequence number (128-bit big endian). With `explicit_iv` every segment
//! gets its own `#EXT-X-KEY:...,IV=0x...` line with IV = [`EXPLICIT_IV_HIGH_BITS`] in the high 64
//! bits and the media sequence in the low 64 bits, deliberately different from the implicit IV so
//! that a client ignoring the `IV` attribute fails to decrypt.

use std::collections::{BTreeSet, HashSet};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::fixtures::{
    FIXTURE_AUDIO_ONLY_CODECS, FIXTURE_AUDIO_VIDEO_CODECS, FIXTURE_SEGMENT_COUNT, FixtureError,
    MediaSet, SegmentKind, encrypt_segment, media_fixtures,
};

/// Live segment duration of the origin (the fixtures' duration).
pub const SEGMENT_DURATION: Duration = Duration::from_secs(1);
/// High 64 bits of the IV written with `explicit_iv` (ASCII "STREAMBT").
pub const EXPLICIT_IV_HIGH_BITS: u64 = 0x5354_5245_414d_4254;
/// Segments stay downloadable for this many windows behind the live edge.
const RETENTION_WINDOWS: u64 = 2;
/// How long a truncated body waits after its half before the connection is dropped.
const TRUNCATION_FLUSH_DELAY: Duration = Duration::from_millis(100);
/// Pacing step of slow bodies.
const SLOW_BODY_STEP: Duration = Duration::from_millis(50);

/// One injectable fault. Time windows are `[from, to)` measured from the origin's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Every request in the window has its TCP connection closed without any response.
    Outage { from: Duration, to: Duration },
    /// Segment requests in the window get this HTTP status.
    SegmentHttpStatus {
        from: Duration,
        to: Duration,
        status: u16,
    },
    /// The first request for every segment whose media sequence is a multiple of `n` gets 503.
    EveryNthSegmentFailsOnce { n: u64 },
    /// Media playlists keep returning the text they had at `from` until `to`.
    PlaylistStall { from: Duration, to: Duration },
    /// Segment responses announce the full Content-Length, send half the body, then close.
    TruncatedBodies { from: Duration, to: Duration },
    /// Segment bodies are paced to `bytes_per_second`.
    SlowBodies {
        from: Duration,
        to: Duration,
        bytes_per_second: u64,
    },
    /// At `at` the live edge skips `skipped_segments` segments that are never published; the first
    /// segment after the gap is published at once and the playlist restarts from it.
    MediaSequenceJump { at: Duration, skipped_segments: u64 },
    /// `#EXT-X-DISCONTINUITY` before this media sequence.
    DiscontinuityAt { media_sequence: u64 },
    /// Key requests in the window get this HTTP status.
    KeyHttpStatus {
        from: Duration,
        to: Duration,
        status: u16,
    },
    /// Master and media playlist requests in the window get this HTTP status.
    PlaylistHttpStatus {
        from: Duration,
        to: Duration,
        status: u16,
    },
    /// Every request under `/v<variant>/` (its media playlist and segments) gets this HTTP status,
    /// all the time: a master with one dead variant.
    VariantHttpStatus { variant: usize, status: u16 },
}

impl Fault {
    /// Parses a command-line fault spec; times are seconds (decimals allowed) from origin start:
    /// `outage:FROM-TO`, `segment-status:FROM-TO:STATUS`, `nth:N`, `stall:FROM-TO`,
    /// `truncate:FROM-TO`, `slow:FROM-TO:BYTES_PER_SECOND`, `jump:AT:SKIPPED`,
    /// `discontinuity:MEDIA_SEQUENCE`, `key-status:FROM-TO:STATUS`, `playlist-status:FROM-TO:STATUS`,
    /// `variant-status:VARIANT:STATUS`.
    pub fn parse_spec(spec: &str) -> Result<Fault, String> {
        let parts: Vec<&str> = spec.trim().split(':').collect();
        let bad = || format!("bad fault spec {spec:?}");
        let seconds = |text: &str| -> Result<Duration, String> {
            text.parse::<f64>()
                .ok()
                .and_then(|value| Duration::try_from_secs_f64(value).ok())
                .ok_or_else(bad)
        };
        let span = |text: &str| -> Result<(Duration, Duration), String> {
            let (from, to) = text.split_once('-').ok_or_else(bad)?;
            Ok((seconds(from)?, seconds(to)?))
        };
        let number = |text: &str| -> Result<u64, String> { text.parse::<u64>().map_err(|_| bad()) };
        let status = |text: &str| -> Result<u16, String> {
            text.parse::<u16>()
                .ok()
                .filter(|status| (100..=599).contains(status))
                .ok_or_else(bad)
        };
        match parts.as_slice() {
            ["outage", window] => span(window).map(|(from, to)| Fault::Outage { from, to }),
            ["segment-status", window, code] => {
                let (from, to) = span(window)?;
                Ok(Fault::SegmentHttpStatus {
                    from,
                    to,
                    status: status(code)?,
                })
            }
            ["nth", n] => Ok(Fault::EveryNthSegmentFailsOnce { n: number(n)? }),
            ["stall", window] => span(window).map(|(from, to)| Fault::PlaylistStall { from, to }),
            ["truncate", window] => {
                span(window).map(|(from, to)| Fault::TruncatedBodies { from, to })
            }
            ["slow", window, rate] => {
                let (from, to) = span(window)?;
                Ok(Fault::SlowBodies {
                    from,
                    to,
                    bytes_per_second: number(rate)?,
                })
            }
            ["jump", at, skipped] => Ok(Fault::MediaSequenceJump {
                at: seconds(at)?,
                skipped_segments: number(skipped)?,
            }),
            ["discontinuity", media_sequence] => Ok(Fault::DiscontinuityAt {
                media_sequence: number(media_sequence)?,
            }),
            ["key-status", window, code] => {
                let (from, to) = span(window)?;
                Ok(Fault::KeyHttpStatus {
                    from,
                    to,
                    status: status(code)?,
                })
            }
            ["variant-status", variant, code] => Ok(Fault::VariantHttpStatus {
                variant: usize::try_from(number(variant)?).map_err(|_| bad())?,
                status: status(code)?,
            }),
            ["playlist-status", window, code] => {
                let (from, to) = span(window)?;
                Ok(Fault::PlaylistHttpStatus {
                    from,
                    to,
                    status: status(code)?,
                })
            }
            _ => Err(bad()),
        }
    }
}

/// One variant of the master playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantSpec {
    pub bandwidth: u64,
    pub resolution: Option<(u32, u32)>,
    /// `CODECS` attribute; `None` writes the fixtures' codecs.
    pub codecs: Option<String>,
}

impl VariantSpec {
    pub fn new(bandwidth: u64, width: u32, height: u32) -> VariantSpec {
        VariantSpec {
            bandwidth,
            resolution: Some((width, height)),
            codecs: None,
        }
    }

    /// The default ladder: 1280x720 @ 3 Mb/s, 640x360 @ 1.2 Mb/s, 320x180 @ 400 kb/s.
    pub fn default_ladder() -> Vec<VariantSpec> {
        vec![
            VariantSpec::new(3_000_000, 1280, 720),
            VariantSpec::new(1_200_000, 640, 360),
            VariantSpec::new(400_000, 320, 180),
        ]
    }
}

/// What the origin serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginConfig {
    pub kind: SegmentKind,
    /// Segments listed in a media playlist (default 10).
    pub window_segments: u64,
    /// Segments published at start; `None` = `window_segments`.
    pub initial_segments: Option<u64>,
    /// Media sequence of index 0 (default 1000).
    pub first_media_sequence: u64,
    /// Size of the index space; the playlist ends (`#EXT-X-ENDLIST`) after the last one.
    pub total_segments: Option<u64>,
    pub faults: Vec<Fault>,
    /// Master playlist variants (default [`VariantSpec::default_ladder`]).
    pub variants: Vec<VariantSpec>,
    /// Adds an audio rendition group `aud` at `/audio/media.m3u8` (AudioOnlyTs segments).
    pub audio_rendition: bool,
    /// Writes `IV=0x...` on every AES key line (see the module docs).
    pub explicit_iv: bool,
    /// Serves the whole playlist (`total_segments`, default 90) with ENDLIST at once.
    pub vod: bool,
}

impl Default for OriginConfig {
    fn default() -> OriginConfig {
        OriginConfig {
            kind: SegmentKind::MpegTs,
            window_segments: 10,
            initial_segments: None,
            first_media_sequence: 1000,
            total_segments: None,
            faults: Vec::new(),
            variants: VariantSpec::default_ladder(),
            audio_rendition: false,
            explicit_iv: false,
            vod: false,
        }
    }
}

impl OriginConfig {
    /// Defaults with this segment kind.
    pub fn new(kind: SegmentKind) -> OriginConfig {
        OriginConfig {
            kind,
            ..OriginConfig::default()
        }
    }

    pub fn with_window_segments(mut self, window_segments: u64) -> OriginConfig {
        self.window_segments = window_segments;
        self
    }

    pub fn with_initial_segments(mut self, initial_segments: u64) -> OriginConfig {
        self.initial_segments = Some(initial_segments);
        self
    }

    pub fn with_first_media_sequence(mut self, first_media_sequence: u64) -> OriginConfig {
        self.first_media_sequence = first_media_sequence;
        self
    }

    pub fn with_total_segments(mut self, total_segments: u64) -> OriginConfig {
        self.total_segments = Some(total_segments);
        self
    }

    pub fn with_fault(mut self, fault: Fault) -> OriginConfig {
        self.faults.push(fault);
        self
    }

    pub fn with_variants(mut self, variants: Vec<VariantSpec>) -> OriginConfig {
        self.variants = variants;
        self
    }

    pub fn with_audio_rendition(mut self) -> OriginConfig {
        self.audio_rendition = true;
        self
    }

    pub fn with_explicit_iv(mut self) -> OriginConfig {
        self.explicit_iv = true;
        self
    }

    pub fn as_vod(mut self) -> OriginConfig {
        self.vod = true;
        self
    }

    fn effective_initial_segments(&self) -> u64 {
        self.initial_segments.unwrap_or(self.window_segments)
    }
}

/// What a logged request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum RequestKind {
    Master,
    Playlist,
    Segment,
    Init,
    Key,
    Other,
}

/// One request as the origin answered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServedRequest {
    /// When the request arrived, from the origin's start.
    pub at: Duration,
    pub path: String,
    pub kind: RequestKind,
    /// For segment requests: the media sequence in the path.
    pub media_sequence: Option<u64>,
    /// HTTP status sent; 0 when the connection was closed without a response (outage).
    pub status: u16,
    /// Body bytes handed to the connection.
    pub bytes_sent: u64,
    /// Whether the whole body was sent.
    pub complete: bool,
}

/// Why the origin could not start.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    #[error(transparent)]
    Fixture(#[from] FixtureError),
    #[error("origin socket: {0}")]
    Io(#[from] io::Error),
    #[error("bad origin config: {0}")]
    Config(String),
    #[error("fixture loading task failed: {0}")]
    Join(String),
}

#[derive(Debug, Default)]
struct Records {
    served_log: Vec<ServedRequest>,
    sequences_published: BTreeSet<u64>,
    sequences_served_ok: BTreeSet<u64>,
    failed_once: HashSet<(String, u64)>,
}

#[derive(Debug)]
struct OriginState {
    config: OriginConfig,
    started_at: Instant,
    main_set: Arc<MediaSet>,
    audio_set: Option<Arc<MediaSet>>,
    /// Indices (not media sequences) with a configured discontinuity, wrap points excluded.
    configured_discontinuity_indices: BTreeSet<u64>,
    /// `(at, skipped_segments)`, sorted by time.
    jumps: Vec<(Duration, u64)>,
    records: Mutex<Records>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PublishedWindow {
    first_index: u64,
    end_index: u64,
    ended: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rendition {
    Main,
    Audio,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Master,
    MediaPlaylist(Rendition),
    Segment(Rendition, String, u64),
    Init(Rendition),
    Key(Rendition),
    NotFound,
}

impl Route {
    fn request_kind(&self) -> RequestKind {
        match self {
            Route::Master => RequestKind::Master,
            Route::MediaPlaylist(_) => RequestKind::Playlist,
            Route::Segment(..) => RequestKind::Segment,
            Route::Init(_) => RequestKind::Init,
            Route::Key(_) => RequestKind::Key,
            Route::NotFound => RequestKind::Other,
        }
    }
}

fn in_window(elapsed: Duration, from: Duration, to: Duration) -> bool {
    from <= elapsed && elapsed < to
}

impl OriginState {
    fn records(&self) -> MutexGuard<'_, Records> {
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn elapsed(&self) -> Duration {
        self.started_at.elapsed()
    }

    fn segment_set(&self, rendition: Rendition) -> Option<&Arc<MediaSet>> {
        match rendition {
            Rendition::Main => Some(&self.main_set),
            Rendition::Audio => self.audio_set.as_ref(),
        }
    }

    /// Published indices and the skipped ranges `[start, end)` at `elapsed`.
    fn timeline_at(&self, elapsed: Duration) -> (PublishedWindow, Vec<(u64, u64)>) {
        let config = &self.config;
        if config.vod {
            let total = config
                .total_segments
                .unwrap_or(FIXTURE_SEGMENT_COUNT as u64);
            let window = PublishedWindow {
                first_index: 0,
                end_index: total,
                ended: true,
            };
            return (window, Vec::new());
        }
        let ticks_of = |at: Duration| at.as_nanos() / SEGMENT_DURATION.as_nanos();
        let initial = config.effective_initial_segments();
        let mut offset: u64 = 0;
        let mut run_start: u64 = 0;
        let mut skipped_ranges = Vec::new();
        for (jump_at, skipped_segments) in &self.jumps {
            if *jump_at > elapsed {
                break;
            }
            let count_at_jump = initial
                .saturating_add(u64::try_from(ticks_of(*jump_at)).unwrap_or(u64::MAX))
                .saturating_add(offset);
            run_start = count_at_jump.saturating_add(*skipped_segments);
            skipped_ranges.push((count_at_jump, run_start));
            offset = offset.saturating_add(skipped_segments.saturating_add(1));
        }
        let natural_end = initial
            .saturating_add(u64::try_from(ticks_of(elapsed)).unwrap_or(u64::MAX))
            .saturating_add(offset);
        let end_index = match config.total_segments {
            Some(total) => natural_end.min(total),
            None => natural_end,
        };
        let ended = config
            .total_segments
            .is_some_and(|total| natural_end >= total);
        let first_index = run_start
            .max(end_index.saturating_sub(config.window_segments))
            .min(end_index);
        let window = PublishedWindow {
            first_index,
            end_index,
            ended,
        };
        (window, skipped_ranges)
    }

    fn is_discontinuity(&self, index: u64) -> bool {
        index > 0
            && (index.is_multiple_of(FIXTURE_SEGMENT_COUNT as u64)
                || self.configured_discontinuity_indices.contains(&index))
    }

    /// Number of discontinuities at indices `1 ..= index`.
    fn discontinuities_up_to(&self, index: u64) -> u64 {
        if index == 0 {
            return 0;
        }
        let wraps = index / FIXTURE_SEGMENT_COUNT as u64;
        let configured = self
            .configured_discontinuity_indices
            .range(1..=index)
            .count() as u64;
        wraps + configured
    }

    fn playlist_elapsed(&self, elapsed: Duration) -> Duration {
        self.config
            .faults
            .iter()
            .filter_map(|fault| match fault {
                Fault::PlaylistStall { from, to } if in_window(elapsed, *from, *to) => Some(*from),
                _ => None,
            })
            .min()
            .unwrap_or(elapsed)
    }

    fn explicit_iv_for(media_sequence: u64) -> u128 {
        (u128::from(EXPLICIT_IV_HIGH_BITS) << 64) | u128::from(media_sequence)
    }

    fn is_encrypted(&self, rendition: Rendition) -> bool {
        rendition == Rendition::Main && self.main_set.aes_key.is_some()
    }

    /// The media playlist text at `elapsed` and the media sequences it lists.
    fn media_playlist(
        &self,
        rendition: Rendition,
        elapsed: Duration,
    ) -> Option<(String, Vec<u64>)> {
        let media_set = self.segment_set(rendition)?;
        let kind = media_set.kind;
        let (window, _skipped) = self.timeline_at(self.playlist_elapsed(elapsed));
        let first_media_sequence = self.config.first_media_sequence;
        let version = if kind == SegmentKind::Fmp4 { 7 } else { 3 };
        let target_duration = media_set.segment_duration_seconds.ceil().max(1.0) as u64;
        let mut text =
            String::with_capacity(64 * (window.end_index - window.first_index) as usize + 256);
        text.push_str("#EXTM3U\n");
        text.push_str(&format!("#EXT-X-VERSION:{version}\n"));
        text.push_str(&format!("#EXT-X-TARGETDURATION:{target_duration}\n"));
        text.push_str(&format!(
            "#EXT-X-MEDIA-SEQUENCE:{}\n",
            first_media_sequence + window.first_index
        ));
        text.push_str(&format!(
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}\n",
            self.discontinuities_up_to(window.first_index)
        ));
        if self.config.vod {
            text.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
        }
        text.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        if media_set.init_segment.is_some() {
            text.push_str("#EXT-X-MAP:URI=\"init.mp4\"\n");
        }
        let encrypted = self.is_encrypted(rendition);
        if encrypted && !self.config.explicit_iv {
            text.push_str("#EXT-X-KEY:METHOD=AES-128,URI=\"key.bin\"\n");
        }
        let mut listed = Vec::with_capacity((window.end_index - window.first_index) as usize);
        for index in window.first_index..window.end_index {
            let media_sequence = first_media_sequence + index;
            if index != window.first_index && self.is_discontinuity(index) {
                text.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if encrypted && self.config.explicit_iv {
                text.push_str(&format!(
                    "#EXT-X-KEY:METHOD=AES-128,URI=\"key.bin\",IV=0x{:032x}\n",
                    OriginState::explicit_iv_for(media_sequence)
                ));
            }
            let fixture_index = (index % FIXTURE_SEGMENT_COUNT as u64) as usize;
            let duration = media_set
                .segment_durations_seconds
                .get(fixture_index)
                .copied()
                .unwrap_or(media_set.segment_duration_seconds);
            text.push_str(&format!(
                "#EXTINF:{duration:.6},\nseg-{media_sequence}.{}\n",
                kind.segment_extension()
            ));
            listed.push(media_sequence);
        }
        if window.ended {
            text.push_str("#EXT-X-ENDLIST\n");
        }
        Some((text, listed))
    }

    fn master_playlist(&self) -> String {
        let mut text = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
        if self.config.audio_rendition {
            text.push_str(
                "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"English\",LANGUAGE=\"en\",\
                 DEFAULT=YES,AUTOSELECT=YES,URI=\"/audio/media.m3u8\"\n",
            );
        }
        let default_codecs = if self.config.kind.has_video() {
            FIXTURE_AUDIO_VIDEO_CODECS
        } else {
            FIXTURE_AUDIO_ONLY_CODECS
        };
        for (variant_index, variant) in self.config.variants.iter().enumerate() {
            text.push_str(&format!(
                "#EXT-X-STREAM-INF:BANDWIDTH={}",
                variant.bandwidth
            ));
            if let Some((width, height)) = variant.resolution {
                text.push_str(&format!(",RESOLUTION={width}x{height}"));
            }
            let codecs = variant.codecs.as_deref().unwrap_or(default_codecs);
            text.push_str(&format!(",CODECS=\"{codecs}\""));
            if self.config.audio_rendition {
                text.push_str(",AUDIO=\"aud\"");
            }
            text.push_str(&format!("\n/v{variant_index}/media.m3u8\n"));
        }
        text
    }

    fn route(&self, path: &str) -> Route {
        if path == "/master.m3u8" {
            return Route::Master;
        }
        let Some(rest) = path.strip_prefix('/') else {
            return Route::NotFound;
        };
        let Some((directory, file_name)) = rest.split_once('/') else {
            return Route::NotFound;
        };
        let rendition = match directory {
            "live" => Rendition::Main,
            "audio" if self.audio_set.is_some() => Rendition::Audio,
            other => match other
                .strip_prefix('v')
                .and_then(|number| number.parse::<usize>().ok())
            {
                Some(variant_index) if variant_index < self.config.variants.len() => {
                    Rendition::Main
                }
                _ => return Route::NotFound,
            },
        };
        let Some(media_set) = self.segment_set(rendition) else {
            return Route::NotFound;
        };
        match file_name {
            "media.m3u8" => Route::MediaPlaylist(rendition),
            "init.mp4" if media_set.init_segment.is_some() => Route::Init(rendition),
            "key.bin" if media_set.aes_key.is_some() && rendition == Rendition::Main => {
                Route::Key(rendition)
            }
            _ => {
                let parsed = file_name
                    .strip_prefix("seg-")
                    .and_then(|rest| rest.strip_suffix(media_set.kind.segment_extension()))
                    .and_then(|rest| rest.strip_suffix('.'))
                    .and_then(|number| number.parse::<u64>().ok());
                match parsed {
                    Some(media_sequence) => {
                        Route::Segment(rendition, directory.to_string(), media_sequence)
                    }
                    None => Route::NotFound,
                }
            }
        }
    }

    fn segment_available(&self, index: u64, elapsed: Duration) -> bool {
        let (window, skipped_ranges) = self.timeline_at(elapsed);
        if index >= window.end_index {
            return false;
        }
        if skipped_ranges
            .iter()
            .any(|(start, end)| *start <= index && index < *end)
        {
            return false;
        }
        self.config.vod
            || index.saturating_add(RETENTION_WINDOWS * self.config.window_segments.max(1))
                >= window.end_index
    }

    fn status_fault(&self, elapsed: Duration, kind: RequestKind) -> Option<u16> {
        self.config
            .faults
            .iter()
            .find_map(|fault| match (fault, kind) {
                (Fault::SegmentHttpStatus { from, to, status }, RequestKind::Segment)
                | (Fault::KeyHttpStatus { from, to, status }, RequestKind::Key)
                | (
                    Fault::PlaylistHttpStatus { from, to, status },
                    RequestKind::Playlist | RequestKind::Master,
                ) if in_window(elapsed, *from, *to) => Some(*status),
                _ => None,
            })
    }

    /// The status of a [`Fault::VariantHttpStatus`] for a request of `path`.
    fn variant_status_fault(&self, path: &str) -> Option<u16> {
        let variant = path
            .strip_prefix("/v")?
            .split_once('/')?
            .0
            .parse::<usize>()
            .ok()?;
        self.config.faults.iter().find_map(|fault| match fault {
            Fault::VariantHttpStatus {
                variant: faulty,
                status,
            } if *faulty == variant => Some(*status),
            _ => None,
        })
    }

    fn outage_active(&self, elapsed: Duration) -> bool {
        self.config.faults.iter().any(
            |fault| matches!(fault, Fault::Outage { from, to } if in_window(elapsed, *from, *to)),
        )
    }

    fn fails_once(&self, directory: &str, media_sequence: u64) -> bool {
        let divides = self.config.faults.iter().any(|fault| {
            matches!(fault, Fault::EveryNthSegmentFailsOnce { n } if *n > 0 && media_sequence.is_multiple_of(*n))
        });
        divides
            && self
                .records()
                .failed_once
                .insert((directory.to_string(), media_sequence))
    }

    fn body_plan(&self, elapsed: Duration, data: Bytes) -> BodyPlan {
        let truncated = self.config.faults.iter().any(|fault| {
            matches!(fault, Fault::TruncatedBodies { from, to } if in_window(elapsed, *from, *to))
        });
        let bytes_per_second = self
            .config
            .faults
            .iter()
            .filter_map(|fault| match fault {
                Fault::SlowBodies {
                    from,
                    to,
                    bytes_per_second,
                } if in_window(elapsed, *from, *to) => Some((*bytes_per_second).max(1)),
                _ => None,
            })
            .min();
        let deliver_until = if truncated {
            data.len() / 2
        } else {
            data.len()
        };
        let chunk_size = match bytes_per_second {
            Some(rate) => {
                let per_step = rate.saturating_mul(SLOW_BODY_STEP.as_millis() as u64) / 1000;
                usize::try_from(per_step.max(1)).unwrap_or(usize::MAX)
            }
            None => data.len().max(1),
        };
        BodyPlan {
            data,
            offset: 0,
            deliver_until,
            chunk_size,
            pause: bytes_per_second.map(|_| SLOW_BODY_STEP),
            fail_at_end: truncated,
            first_chunk: true,
            finished: false,
        }
    }
}

struct BodyPlan {
    data: Bytes,
    offset: usize,
    deliver_until: usize,
    chunk_size: usize,
    pause: Option<Duration>,
    fail_at_end: bool,
    first_chunk: bool,
    finished: bool,
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>>;

fn plan_into_stream(plan: BodyPlan) -> ChunkStream {
    Box::pin(futures_util::stream::unfold(plan, |mut plan| async move {
        if plan.finished {
            return None;
        }
        if plan.offset >= plan.deliver_until {
            plan.finished = true;
            if plan.fail_at_end {
                // Let the half body reach the socket before the connection is dropped.
                tokio::time::sleep(TRUNCATION_FLUSH_DELAY).await;
                let error = io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "streambot-testkit: injected truncated body",
                );
                return Some((Err(error), plan));
            }
            return None;
        }
        if !plan.first_chunk
            && let Some(pause) = plan.pause
        {
            tokio::time::sleep(pause).await;
        }
        plan.first_chunk = false;
        let chunk_end = plan
            .offset
            .saturating_add(plan.chunk_size)
            .min(plan.deliver_until);
        let chunk = plan.data.slice(plan.offset..chunk_end);
        plan.offset = chunk_end;
        Some((Ok(chunk), plan))
    }))
}

enum Completion {
    Nothing,
    PublishesSequences(Vec<u64>),
    SegmentServed(u64),
}

struct DeliveryTracker {
    state: Arc<OriginState>,
    entry: ServedRequest,
    expected_bytes: u64,
    completion: Completion,
}

impl DeliveryTracker {
    fn record(self) {
        let mut records = self.state.records();
        if self.entry.complete {
            match self.completion {
                Completion::Nothing => {}
                Completion::PublishesSequences(sequences) => {
                    if self.entry.status == 200 {
                        records.sequences_published.extend(sequences);
                    }
                }
                Completion::SegmentServed(media_sequence) => {
                    if self.entry.status == 200 {
                        records.sequences_served_ok.insert(media_sequence);
                    }
                }
            }
        }
        records.served_log.push(self.entry);
    }
}

/// The response body: counts what it hands to the connection and logs the request when done.
pub struct ServedBody {
    chunks: ChunkStream,
    expected_bytes: u64,
    tracker: Option<DeliveryTracker>,
}

impl Body for ServedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.chunks.as_mut().poll_next(context) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                let mut finished_tracker = None;
                if let Some(tracker) = self.tracker.as_mut() {
                    tracker.entry.bytes_sent += chunk.len() as u64;
                    if tracker.entry.bytes_sent >= tracker.expected_bytes {
                        tracker.entry.complete = true;
                        finished_tracker = self.tracker.take();
                    }
                }
                if let Some(tracker) = finished_tracker {
                    tracker.record();
                }
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(error))) => {
                if let Some(tracker) = self.tracker.take() {
                    tracker.record();
                }
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                if let Some(mut tracker) = self.tracker.take() {
                    tracker.entry.complete = tracker.entry.bytes_sent >= tracker.expected_bytes;
                    tracker.record();
                }
                Poll::Ready(None)
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.expected_bytes)
    }
}

impl Drop for ServedBody {
    fn drop(&mut self) {
        if let Some(tracker) = self.tracker.take() {
            tracker.record();
        }
    }
}

/// The origin server. Make it with [`HlsOrigin::new`], watch it through [`HlsOrigin::observer`],
/// run it with [`HlsOrigin::run`] (or do both with [`HlsOrigin::serve`] / [`spawn_origin`]).
pub struct HlsOrigin {
    state: Arc<OriginState>,
}

/// A cheap, cloneable view of an origin's records and clock.
#[derive(Clone)]
pub struct OriginObserver {
    state: Arc<OriginState>,
}

impl HlsOrigin {
    /// Loads the fixtures (blocking: may run ffmpeg) and starts the origin's clock.
    pub fn new(config: OriginConfig) -> Result<HlsOrigin, OriginError> {
        if config.window_segments == 0 {
            return Err(OriginError::Config(
                "window_segments must be at least 1".to_string(),
            ));
        }
        let main_set = media_fixtures(config.kind)?;
        let audio_set = if config.audio_rendition {
            Some(media_fixtures(SegmentKind::AudioOnlyTs)?)
        } else {
            None
        };
        let configured_discontinuity_indices = config
            .faults
            .iter()
            .filter_map(|fault| match fault {
                Fault::DiscontinuityAt { media_sequence } => {
                    media_sequence.checked_sub(config.first_media_sequence)
                }
                _ => None,
            })
            .filter(|index| *index > 0 && index % FIXTURE_SEGMENT_COUNT as u64 != 0)
            .collect();
        let mut jumps: Vec<(Duration, u64)> = config
            .faults
            .iter()
            .filter_map(|fault| match fault {
                Fault::MediaSequenceJump {
                    at,
                    skipped_segments,
                } => Some((*at, *skipped_segments)),
                _ => None,
            })
            .collect();
        jumps.sort();
        let state = OriginState {
            config,
            started_at: Instant::now(),
            main_set,
            audio_set,
            configured_discontinuity_indices,
            jumps,
            records: Mutex::new(Records::default()),
        };
        Ok(HlsOrigin {
            state: Arc::new(state),
        })
    }

    /// A view of the records that outlives the server.
    pub fn observer(&self) -> OriginObserver {
        OriginObserver {
            state: Arc::clone(&self.state),
        }
    }

    /// Makes the origin and serves `listener` until `shutdown` is cancelled.
    pub async fn serve(
        config: OriginConfig,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), OriginError> {
        let origin = tokio::task::spawn_blocking(move || HlsOrigin::new(config))
            .await
            .map_err(|join_error| OriginError::Join(join_error.to_string()))??;
        origin.run(listener, shutdown).await
    }

    /// Serves `listener` until `shutdown` is cancelled; open connections are closed then too.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), OriginError> {
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                accepted = listener.accept() => accepted,
            };
            let (stream, _peer) = match accepted {
                Ok(accepted) => accepted,
                Err(accept_error) => {
                    tracing::warn!(error = %accept_error, "origin accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ignored = stream.set_nodelay(true);
            let state = Arc::clone(&self.state);
            let connection_shutdown = shutdown.child_token();
            tokio::spawn(serve_connection(state, stream, connection_shutdown));
        }
    }
}

async fn serve_connection(
    state: Arc<OriginState>,
    stream: tokio::net::TcpStream,
    connection_kill: CancellationToken,
) {
    let service_kill = connection_kill.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let state = Arc::clone(&state);
        let kill = service_kill.clone();
        async move { Ok::<_, Infallible>(handle_request(state, request, kill).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        () = connection_kill.cancelled() => {
            // Dropping the connection closes the socket without a response.
        }
        served = connection => {
            if let Err(connection_error) = served {
                tracing::debug!(error = %connection_error, "origin connection ended with an error");
            }
        }
    }
}

fn text_response(
    status: StatusCode,
    body: String,
    content_type: &'static str,
) -> (StatusCode, Bytes, &'static str) {
    (status, Bytes::from(body), content_type)
}

async fn handle_request(
    state: Arc<OriginState>,
    request: Request<Incoming>,
    connection_kill: CancellationToken,
) -> Response<ServedBody> {
    let elapsed = state.elapsed();
    let path = request.uri().path().to_string();
    let route = state.route(&path);
    let kind = route.request_kind();
    let mut entry = ServedRequest {
        at: elapsed,
        path,
        kind,
        media_sequence: match &route {
            Route::Segment(_, _, media_sequence) => Some(*media_sequence),
            _ => None,
        },
        status: 0,
        bytes_sent: 0,
        complete: false,
    };

    if state.outage_active(elapsed) {
        state.records().served_log.push(entry);
        connection_kill.cancel();
        return std::future::pending().await;
    }

    let mut completion = Completion::Nothing;
    let mut body_plan: Option<BodyPlan> = None;
    let plain_text = "text/plain; charset=utf-8";
    let injected_status = state
        .status_fault(elapsed, kind)
        .or_else(|| state.variant_status_fault(&entry.path));
    let (status, body, content_type) = match (&route, injected_status) {
        (Route::NotFound, _) => {
            text_response(StatusCode::NOT_FOUND, "not found\n".into(), plain_text)
        }
        (_, Some(status)) => text_response(
            StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            format!("streambot-testkit: injected status {status}\n"),
            plain_text,
        ),
        (Route::Master, None) => text_response(
            StatusCode::OK,
            state.master_playlist(),
            "application/vnd.apple.mpegurl",
        ),
        (Route::MediaPlaylist(rendition), None) => {
            match state.media_playlist(*rendition, elapsed) {
                Some((text, listed)) => {
                    completion = Completion::PublishesSequences(listed);
                    text_response(StatusCode::OK, text, "application/vnd.apple.mpegurl")
                }
                None => text_response(StatusCode::NOT_FOUND, "not found\n".into(), plain_text),
            }
        }
        (Route::Init(rendition), None) => match state
            .segment_set(*rendition)
            .and_then(|media_set| media_set.init_segment.clone())
        {
            Some(init_segment) => (StatusCode::OK, init_segment, "video/mp4"),
            None => text_response(StatusCode::NOT_FOUND, "not found\n".into(), plain_text),
        },
        (Route::Key(rendition), None) => match state
            .segment_set(*rendition)
            .and_then(|media_set| media_set.aes_key)
        {
            Some(key) => (
                StatusCode::OK,
                Bytes::copy_from_slice(&key),
                "application/octet-stream",
            ),
            None => text_response(StatusCode::NOT_FOUND, "not found\n".into(), plain_text),
        },
        (Route::Segment(rendition, directory, media_sequence), None) => {
            match segment_body(&state, *rendition, *media_sequence, elapsed) {
                None => text_response(
                    StatusCode::NOT_FOUND,
                    "segment not available\n".into(),
                    plain_text,
                ),
                Some(_) if state.fails_once(directory, *media_sequence) => text_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "streambot-testkit: injected first-request failure\n".into(),
                    plain_text,
                ),
                Some((data, content_type)) => {
                    completion = Completion::SegmentServed(*media_sequence);
                    body_plan = Some(state.body_plan(elapsed, data.clone()));
                    (StatusCode::OK, data, content_type)
                }
            }
        }
    };

    entry.status = status.as_u16();
    let expected_bytes = body.len() as u64;
    let chunks = match body_plan {
        Some(plan) => plan_into_stream(plan),
        None => {
            let whole: ChunkStream = Box::pin(futures_util::stream::once(async move {
                Ok::<Bytes, io::Error>(body)
            }));
            whole
        }
    };
    let served_body = ServedBody {
        chunks,
        expected_bytes,
        tracker: Some(DeliveryTracker {
            state: Arc::clone(&state),
            entry,
            expected_bytes,
            completion,
        }),
    };
    let mut response = Response::new(served_body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(expected_bytes));
    if kind == RequestKind::Playlist || kind == RequestKind::Master {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    response
}

fn segment_body(
    state: &OriginState,
    rendition: Rendition,
    media_sequence: u64,
    elapsed: Duration,
) -> Option<(Bytes, &'static str)> {
    let index = media_sequence.checked_sub(state.config.first_media_sequence)?;
    if !state.segment_available(index, elapsed) {
        return None;
    }
    let media_set = state.segment_set(rendition)?;
    let fixture_index = (index % FIXTURE_SEGMENT_COUNT as u64) as usize;
    let content_type = if media_set.kind == SegmentKind::Fmp4 {
        "video/iso.segment"
    } else {
        "video/mp2t"
    };
    let data = match (
        state.is_encrypted(rendition),
        &media_set.clear_segments,
        media_set.aes_key,
    ) {
        (true, Some(clear_segments), Some(key)) => {
            let initialization_vector = if state.config.explicit_iv {
                OriginState::explicit_iv_for(media_sequence)
            } else {
                u128::from(media_sequence)
            };
            encrypt_segment(
                clear_segments.get(fixture_index)?,
                &key,
                initialization_vector,
            )
        }
        _ => media_set.segments.get(fixture_index)?.clone(),
    };
    Some((data, content_type))
}

impl OriginObserver {
    /// Time since the origin started.
    pub fn elapsed(&self) -> Duration {
        self.state.elapsed()
    }

    /// Every request so far, in arrival order.
    pub fn served_log(&self) -> Vec<ServedRequest> {
        let mut log = self.state.records().served_log.clone();
        log.sort_by_key(|entry| entry.at);
        log
    }

    /// Every media sequence listed in a media playlist that was delivered whole with 200.
    pub fn sequences_published(&self) -> BTreeSet<u64> {
        self.state.records().sequences_published.clone()
    }

    /// Media sequences whose segment body was delivered whole with 200.
    pub fn sequences_served_ok(&self) -> BTreeSet<u64> {
        self.state.records().sequences_served_ok.clone()
    }

    /// Media sequences a live playlist lists right now (ignoring stalls), for assertions.
    pub fn live_window_now(&self) -> Vec<u64> {
        let (window, _skipped) = self.state.timeline_at(self.state.elapsed());
        (window.first_index..window.end_index)
            .map(|index| self.state.config.first_media_sequence + index)
            .collect()
    }

    /// The config being served.
    pub fn config(&self) -> &OriginConfig {
        &self.state.config
    }
}

/// A running origin on 127.0.0.1. Shuts the server down when dropped.
pub struct OriginHandle {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base_url: String,
    pub local_address: SocketAddr,
    observer: OriginObserver,
    shutdown: CancellationToken,
}

impl OriginHandle {
    /// `{base}/live/media.m3u8`.
    pub fn media_playlist_url(&self) -> String {
        format!("{}/live/media.m3u8", self.base_url)
    }

    /// `{base}/master.m3u8`.
    pub fn master_playlist_url(&self) -> String {
        format!("{}/master.m3u8", self.base_url)
    }

    /// `{base}/audio/media.m3u8` (served when `audio_rendition` is on).
    pub fn audio_playlist_url(&self) -> String {
        format!("{}/audio/media.m3u8", self.base_url)
    }

    /// `{base}/live/seg-<media sequence>.<ext>`.
    pub fn segment_url(&self, media_sequence: u64) -> String {
        format!(
            "{}/live/seg-{media_sequence}.{}",
            self.base_url,
            self.observer.state.main_set.kind.segment_extension()
        )
    }

    /// `{base}{path}`; `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn observer(&self) -> OriginObserver {
        self.observer.clone()
    }

    pub fn elapsed(&self) -> Duration {
        self.observer.elapsed()
    }

    pub fn served_log(&self) -> Vec<ServedRequest> {
        self.observer.served_log()
    }

    pub fn sequences_published(&self) -> BTreeSet<u64> {
        self.observer.sequences_published()
    }

    pub fn sequences_served_ok(&self) -> BTreeSet<u64> {
        self.observer.sequences_served_ok()
    }

    pub fn live_window_now(&self) -> Vec<u64> {
        self.observer.live_window_now()
    }

    /// Stops accepting and closes every open connection.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }
}

impl Drop for OriginHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Loads fixtures, binds 127.0.0.1:0 and serves in a background task.
pub async fn spawn_origin(config: OriginConfig) -> Result<OriginHandle, OriginError> {
    let origin = tokio::task::spawn_blocking(move || HlsOrigin::new(config))
        .await
        .map_err(|join_error| OriginError::Join(join_error.to_string()))??;
    spawn_origin_on(origin, "127.0.0.1:0").await
}

/// An origin that is not there yet: its loopback address is reserved but closed (connections are
/// refused) until it starts serving, after a delay; its clock starts then. A stream announced
/// before it goes live.
pub struct LateOrigin {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base_url: String,
    started: tokio::task::JoinHandle<Result<OriginHandle, OriginError>>,
}

impl LateOrigin {
    /// `{base}{path}`; `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The running origin, once it started serving.
    pub async fn started(self) -> Result<OriginHandle, OriginError> {
        self.started
            .await
            .map_err(|join_error| OriginError::Join(join_error.to_string()))?
    }
}

/// [`LateOrigin`]: serves `config` on a reserved 127.0.0.1 port after `delay`.
pub async fn spawn_origin_late(
    config: OriginConfig,
    delay: Duration,
) -> Result<LateOrigin, OriginError> {
    let reserved = TcpListener::bind("127.0.0.1:0").await?;
    let address = reserved.local_addr()?;
    drop(reserved);
    let started = tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let origin = tokio::task::spawn_blocking(move || HlsOrigin::new(config))
            .await
            .map_err(|join_error| OriginError::Join(join_error.to_string()))??;
        spawn_origin_on(origin, &address.to_string()).await
    });
    Ok(LateOrigin {
        base_url: format!("http://{address}"),
        started,
    })
}

/// Serves an already made origin on `address` (e.g. `127.0.0.1:8080`) in a background task.
pub async fn spawn_origin_on(
    origin: HlsOrigin,
    address: &str,
) -> Result<OriginHandle, OriginError> {
    let listener = TcpListener::bind(address).await?;
    let local_address = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let observer = origin.observer();
    let server_shutdown = shutdown.clone();
    tokio::spawn(async move {
        if let Err(serve_error) = origin.run(listener, server_shutdown).await {
            tracing::warn!(error = %serve_error, "origin stopped");
        }
    });
    Ok(OriginHandle {
        base_url: format!("http://{local_address}"),
        local_address,
        observer,
        shutdown,
    })
}
