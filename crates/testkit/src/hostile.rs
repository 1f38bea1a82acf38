//! A hostile HLS origin on 127.0.0.1: a live stream whose playlists or bodies attack the
//! recorder (issue 11). Each [`Attack`] is a script of what the origin serves; the tests and the
//! `bench_hostile` example of the `hls` crate run the recorder against each one.
//!
//! # Live model
//!
//! Segment `i` (from 0) is published at `i * segment_seconds` after the start, `initial` of them
//! at once; a playlist lists the last `window` published, and gets `#EXT-X-ENDLIST` once segment
//! `total - 1` is published, so every recording ends by itself. The playlist is
//! `/live/media.m3u8`, segments `/live/seg-<i>.ts` (or `.m4s`), and they serve the real MPEG-TS
//! fixture segments (`media.segments[i % 90]`) unless the attack replaces them. The media
//! sequence of segment `i` is `i`, except where an attack says otherwise.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::fixtures::{MediaSet, encrypt_segment};

/// One attack the origin can play.
#[derive(Debug, Clone, PartialEq)]
pub enum Attack {
    /// No attack: the same live stream, clean (the comparison recording).
    None,
    /// One segment's body is an HLS playlist listing `file:///` and `../OTHER_JOB/` URIs.
    PlaylistAsSegment,
    /// One segment's body is a DASH manifest.
    DashAsSegment,
    /// One segment's body is an HTML error page with status 200.
    HtmlBody,
    /// `#EXT-X-DEFINE` with a 4 KiB value referenced 64 times on each of 2,000 lines
    /// (500 MiB after substitution if unbounded).
    DefineBomb,
    /// After a few segments the media sequence jumps by `skipped` (10^13 in the issue).
    SequenceJump { skipped: u64 },
    /// Every `#EXTINF` says this (`1e20`, `-1`, `NaN`, `inf`).
    HostileExtinf(String),
    /// One playlist of this many zero-length segments (500,000 in the issue).
    ZeroLengthSegments { count: u64 },
    /// The first segment requested (the first a live recording takes) trickles one byte every
    /// `step`, for ever.
    TricklingFirstSegment { step: Duration },
    /// Every segment is an endless MPEG-TS body (no Content-Length) sent at `bytes_per_second`:
    /// each one grows until the client's segment size limit, several of them at once.
    HugeSlowSegments { bytes_per_second: u64 },
    /// The stream is fMP4 and its `EXT-X-MAP` init is an endless body (no Content-Length).
    HugeInit,
    /// AES-128 with a new key URI on every segment.
    KeyRotation,
    /// AES-128 whose key changes behind the same URI (`key.bin`) from segment `from_index` on.
    KeyChangeBehindSameUri { from_index: u64 },
    /// fMP4 (give [`spawn_hostile_origin`] the fMP4 fixture set): at segment `at_index` the
    /// packager restarts, its numbering starts again from 0 and `init.mp4` is rewritten behind
    /// the same URI (another encode: see [`restarted_init`]).
    RestartWithNewInit { at_index: u64 },
    /// One segment's body is `header` (the first bytes of an MP3, AC-3 or ADTS frame, or of a TS
    /// packet) followed by [`FOREIGN_PLAYLIST_BODY`]: media by its first bytes only.
    PlaylistBehindMediaHeader { header: Vec<u8> },
    /// Two CDN edges behind a load balancer answer the playlist requests in turn: the first,
    /// third, ... request edge A (the stream as it is), the others edge B, which holds `lag`
    /// fewer segments and numbers segment `i` as `i + numbering_offset`, at `b/seg-<i>.ts` when
    /// `own_uris` (the same bytes) and at A's URIs otherwise.
    AlternatingEdges {
        lag: u64,
        numbering_offset: u64,
        own_uris: bool,
    },
}

/// The init section served after [`Attack::RestartWithNewInit`]'s restart: the fixture's, with
/// one byte of its last box changed (same boxes, other content).
pub fn restarted_init(original: &[u8]) -> Bytes {
    let mut changed = original.to_vec();
    if let Some(last) = changed.last_mut() {
        *last ^= 0x01;
    }
    Bytes::from(changed)
}

impl Attack {
    /// A short name for tables.
    pub fn name(&self) -> String {
        match self {
            Attack::None => "clean".to_string(),
            Attack::PlaylistAsSegment => "playlist as segment".to_string(),
            Attack::DashAsSegment => "DASH manifest as segment".to_string(),
            Attack::HtmlBody => "HTML body".to_string(),
            Attack::DefineBomb => "DEFINE bomb".to_string(),
            Attack::SequenceJump { skipped } => format!("sequence jump +{skipped}"),
            Attack::HostileExtinf(value) => format!("EXTINF {value}"),
            Attack::ZeroLengthSegments { count } => format!("{count} zero-length segments"),
            Attack::TricklingFirstSegment { .. } => "trickling first segment".to_string(),
            Attack::HugeSlowSegments { .. } => "huge slow segments".to_string(),
            Attack::HugeInit => "huge init".to_string(),
            Attack::KeyRotation => "key rotation".to_string(),
            Attack::KeyChangeBehindSameUri { .. } => "new key behind the same URI".to_string(),
            Attack::RestartWithNewInit { .. } => "restart with a new init".to_string(),
            Attack::AlternatingEdges {
                lag,
                numbering_offset,
                own_uris,
            } => format!(
                "alternating edges (lag {lag}, numbering +{numbering_offset}{})",
                if *own_uris { ", own URIs" } else { "" }
            ),
            Attack::PlaylistBehindMediaHeader { header } => {
                let hex: Vec<String> = header.iter().map(|byte| format!("{byte:02x}")).collect();
                format!("playlist behind the header {}", hex.join(" "))
            }
        }
    }
}

/// The index of the segment an attack replaces with a foreign body.
pub const ATTACKED_SEGMENT_INDEX: u64 = 6;
/// The foreign playlist served as a segment by [`Attack::PlaylistAsSegment`].
pub const FOREIGN_PLAYLIST_BODY: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n#EXTINF:1,\n../OTHER_JOB/main-0001.ts\n#EXT-X-ENDLIST\n";
/// The foreign DASH manifest served by [`Attack::DashAsSegment`].
pub const FOREIGN_DASH_BODY: &str = "<?xml version=\"1.0\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\"><Period><AdaptationSet><Representation><BaseURL>file:///etc/passwd</BaseURL></Representation></AdaptationSet></Period></MPD>\n";
/// The HTML page served by [`Attack::HtmlBody`].
pub const FOREIGN_HTML_BODY: &str = "<!DOCTYPE html><html><body><h1>Welcome</h1><a href=\"file:///etc/passwd\">x</a></body></html>\n";

/// How a hostile live stream is laid out in time.
#[derive(Debug, Clone, Copy)]
pub struct HostileTimeline {
    pub segment_seconds: f64,
    pub window: u64,
    pub initial: u64,
    pub total: u64,
    /// Each segment is this many fixture segments back to back (still one valid MPEG-TS body),
    /// for attacks whose damage grows with the segment size.
    pub segment_copies: usize,
}

impl Default for HostileTimeline {
    fn default() -> Self {
        HostileTimeline {
            segment_seconds: 1.0,
            window: 5,
            initial: 5,
            total: 12,
            segment_copies: 1,
        }
    }
}

/// One key per index for [`Attack::KeyRotation`] (and the second key of
/// [`Attack::KeyChangeBehindSameUri`]).
pub fn rotating_key(index: u64) -> [u8; 16] {
    let mut key = *b"hostile-key-0000";
    for (position, byte) in index.to_be_bytes()[4..].iter().enumerate() {
        key[12 + position] ^= byte;
    }
    key
}

struct HostileState {
    attack: Attack,
    timeline: HostileTimeline,
    media: Arc<MediaSet>,
    started: Instant,
    requests: Mutex<Vec<String>>,
    /// The first segment index requested (the one [`Attack::TricklingFirstSegment`] trickles).
    first_requested_segment: Mutex<Option<u64>>,
    /// Playlist requests served so far ([`Attack::AlternatingEdges`] answers odd ones from B).
    playlist_requests: std::sync::atomic::AtomicU64,
}

impl HostileState {
    fn published_count(&self) -> u64 {
        let elapsed = self.started.elapsed().as_secs_f64();
        let by_time = (elapsed / self.timeline.segment_seconds.max(0.01)).floor() as u64;
        (self.timeline.initial + by_time).min(self.timeline.total)
    }

    fn media_sequence_of(&self, index: u64) -> u64 {
        match self.attack {
            Attack::SequenceJump { skipped } if index >= ATTACKED_SEGMENT_INDEX => {
                index.saturating_add(skipped)
            }
            Attack::RestartWithNewInit { at_index } if index >= at_index => index - at_index,
            Attack::RestartWithNewInit { .. } => index + 1_000,
            _ => index,
        }
    }

    /// The first index of a new numbering (a restart or a jump), if any.
    fn renumbered_from(&self) -> Option<u64> {
        match self.attack {
            Attack::SequenceJump { .. } => Some(ATTACKED_SEGMENT_INDEX),
            Attack::RestartWithNewInit { at_index } => Some(at_index),
            _ => None,
        }
    }

    fn clear_segment(&self, index: u64) -> Bytes {
        let count = self.media.segments.len().max(1);
        let clear = self
            .media
            .clear_segments
            .as_ref()
            .unwrap_or(&self.media.segments);
        let one = clear
            .get(index as usize % count)
            .cloned()
            .unwrap_or_default();
        if self.timeline.segment_copies <= 1 {
            return one;
        }
        Bytes::from(one.repeat(self.timeline.segment_copies))
    }

    fn key_for(&self, index: u64) -> [u8; 16] {
        match self.attack {
            Attack::KeyRotation => rotating_key(index),
            Attack::KeyChangeBehindSameUri { from_index } if index >= from_index => rotating_key(1),
            _ => rotating_key(0),
        }
    }

    fn is_encrypted(&self) -> bool {
        matches!(
            self.attack,
            Attack::KeyRotation | Attack::KeyChangeBehindSameUri { .. }
        )
    }

    fn playlist(&self) -> String {
        if let Attack::AlternatingEdges {
            lag,
            numbering_offset,
            own_uris,
        } = self.attack
        {
            let request = self
                .playlist_requests
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if request % 2 == 1 {
                return self.edge_b_playlist(lag, numbering_offset, own_uris);
            }
        }
        let published = self.published_count();
        let first = published.saturating_sub(self.timeline.window);
        let mut text = String::from("#EXTM3U\n#EXT-X-VERSION:6\n");
        let target = self.timeline.segment_seconds.ceil().max(1.0) as u64;
        text.push_str(&format!("#EXT-X-TARGETDURATION:{target}\n"));
        match &self.attack {
            Attack::ZeroLengthSegments { count } => {
                text.push_str("#EXT-X-MEDIA-SEQUENCE:0\n");
                for _ in 0..*count {
                    text.push_str("#EXTINF:0,\nz.ts\n");
                }
                text.push_str("#EXT-X-ENDLIST\n");
                return text;
            }
            Attack::DefineBomb => {
                let value = "v".repeat(4096);
                text.push_str(&format!("#EXT-X-DEFINE:NAME=\"b\",VALUE=\"{value}\"\n"));
                let reference_line = "{$b}".repeat(64);
                for _ in 0..2000 {
                    text.push_str("#EXTINF:1,\n");
                    text.push_str(&reference_line);
                    text.push('\n');
                }
                return text;
            }
            _ => {}
        }
        text.push_str(&format!(
            "#EXT-X-MEDIA-SEQUENCE:{}\n",
            self.media_sequence_of(first)
        ));
        let is_fmp4 = matches!(
            self.attack,
            Attack::HugeInit | Attack::RestartWithNewInit { .. }
        );
        if is_fmp4 {
            text.push_str("#EXT-X-MAP:URI=\"init.mp4\"\n");
        }
        for index in first..published {
            if self.renumbered_from() == Some(index) && index > first {
                // A new media sequence for the rest of the window: the origin "restarted"
                // its numbering forwards. Written as a fresh playlist from here.
                text = String::from("#EXTM3U\n#EXT-X-VERSION:6\n");
                text.push_str(&format!("#EXT-X-TARGETDURATION:{target}\n"));
                text.push_str(&format!(
                    "#EXT-X-MEDIA-SEQUENCE:{}\n",
                    self.media_sequence_of(index)
                ));
                if is_fmp4 {
                    text.push_str("#EXT-X-MAP:URI=\"init.mp4\"\n");
                }
            }
            match &self.attack {
                Attack::KeyRotation => text.push_str(&format!(
                    "#EXT-X-KEY:METHOD=AES-128,URI=\"key-{index}.bin\",IV=0x{:032x}\n",
                    index
                )),
                Attack::KeyChangeBehindSameUri { .. } if index == first => {
                    text.push_str("#EXT-X-KEY:METHOD=AES-128,URI=\"key.bin\"\n")
                }
                _ => {}
            }
            let extinf = match &self.attack {
                Attack::HostileExtinf(value) => value.clone(),
                _ => format!("{:.3}", self.timeline.segment_seconds),
            };
            let extension = if is_fmp4 { "m4s" } else { "ts" };
            text.push_str(&format!("#EXTINF:{extinf},\nseg-{index}.{extension}\n"));
        }
        if published >= self.timeline.total {
            text.push_str("#EXT-X-ENDLIST\n");
        }
        text
    }
}

impl HostileState {
    /// Edge B of [`Attack::AlternatingEdges`]: `lag` segments behind, its own numbering.
    fn edge_b_playlist(&self, lag: u64, numbering_offset: u64, own_uris: bool) -> String {
        let published = self.published_count().saturating_sub(lag);
        let first = published.saturating_sub(self.timeline.window);
        let target = self.timeline.segment_seconds.ceil().max(1.0) as u64;
        let mut text = format!(
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{}\n",
            first.saturating_add(numbering_offset)
        );
        let directory = if own_uris { "b/" } else { "" };
        for index in first..published {
            text.push_str(&format!(
                "#EXTINF:{:.3},\n{directory}seg-{index}.ts\n",
                self.timeline.segment_seconds
            ));
        }
        if published >= self.timeline.total {
            text.push_str("#EXT-X-ENDLIST\n");
        }
        text
    }
}

/// A running hostile origin; stops when dropped.
pub struct HostileOrigin {
    base_url: String,
    state: Arc<HostileState>,
    shutdown: CancellationToken,
}

impl Drop for HostileOrigin {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl HostileOrigin {
    /// The live media playlist.
    pub fn media_playlist_url(&self) -> String {
        format!("{}/live/media.m3u8", self.base_url)
    }

    /// Every request path served so far, in order.
    pub fn requested_paths(&self) -> Vec<String> {
        self.state
            .requests
            .lock()
            .map(|requests| requests.clone())
            .unwrap_or_default()
    }

    /// The clear media bytes of segment `index` (what a recording must hold for it).
    pub fn clear_segment(&self, index: u64) -> Bytes {
        self.state.clear_segment(index)
    }

    /// The media sequence segment `index` is published with.
    pub fn media_sequence_of(&self, index: u64) -> u64 {
        self.state.media_sequence_of(index)
    }

    /// The segment index of a media sequence (the inverse of [`HostileOrigin::media_sequence_of`]).
    pub fn index_of_media_sequence(&self, media_sequence: u64) -> u64 {
        self.index_of(0, media_sequence)
    }

    /// [`HostileOrigin::index_of_media_sequence`] for a ledger line of `epoch` (the restarts of
    /// the numbering the recorder saw; 0 before any).
    pub fn index_of(&self, epoch: u32, media_sequence: u64) -> u64 {
        match self.state.attack {
            Attack::SequenceJump { skipped } if media_sequence >= skipped => {
                media_sequence - skipped
            }
            Attack::RestartWithNewInit { at_index } if epoch > 0 => media_sequence + at_index,
            Attack::RestartWithNewInit { .. } => media_sequence.saturating_sub(1_000),
            _ => media_sequence,
        }
    }

    /// The init section served before any restart.
    pub fn original_init(&self) -> Option<Bytes> {
        self.state.media.init_segment.clone()
    }
}

/// Starts a hostile origin playing `attack` over the MPEG-TS fixture `media`.
pub async fn spawn_hostile_origin(
    attack: Attack,
    timeline: HostileTimeline,
    media: Arc<MediaSet>,
) -> io::Result<HostileOrigin> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let address = listener.local_addr()?;
    let state = Arc::new(HostileState {
        attack,
        timeline,
        media,
        started: Instant::now(),
        requests: Mutex::new(Vec::new()),
        first_requested_segment: Mutex::new(None),
        playlist_requests: std::sync::atomic::AtomicU64::new(0),
    });
    let router = Router::new()
        .fallback(serve_hostile)
        .with_state(Arc::clone(&state));
    let shutdown = CancellationToken::new();
    crate::serve_until_cancelled(listener, router, &shutdown);
    Ok(HostileOrigin {
        base_url: format!("http://{address}"),
        state,
        shutdown,
    })
}

/// Serves `router` on a free loopback port for the rest of the test process (a one-off origin a
/// test builds itself: a playlist with secrets in its URIs, a growing EVENT playlist, ...).
pub async fn serve_on_loopback(router: Router) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(address)
}

fn segment_index_of(path: &str) -> Option<u64> {
    let name = path.rsplit('/').next()?;
    let number = name.strip_prefix("seg-")?.split('.').next()?;
    number.parse().ok()
}

fn key_index_of(path: &str) -> Option<u64> {
    let name = path.rsplit('/').next()?;
    let number = name.strip_prefix("key-")?.strip_suffix(".bin")?;
    number.parse().ok()
}

async fn serve_hostile(State(state): State<Arc<HostileState>>, uri: Uri) -> Response {
    let path = uri.path().to_string();
    if let Ok(mut requests) = state.requests.lock() {
        requests.push(path.clone());
    }
    if path.ends_with(".m3u8") {
        return (
            [(header::CONTENT_TYPE, "application/vnd.apple.mpegurl")],
            state.playlist(),
        )
            .into_response();
    }
    if path.ends_with("/z.ts") {
        return (StatusCode::OK, state.clear_segment(0)).into_response();
    }
    if path.ends_with("/init.mp4") {
        if let Attack::RestartWithNewInit { at_index } = state.attack {
            let original = state.media.init_segment.clone().unwrap_or_default();
            let body = if state.published_count() > at_index {
                restarted_init(&original)
            } else {
                original
            };
            return ([(header::CONTENT_TYPE, "video/mp4")], body).into_response();
        }
        return endless_init_body();
    }
    if path.ends_with("/key.bin") {
        // The key of the newest published segment: behind the same URI it changes.
        let newest = state.published_count().saturating_sub(1);
        return (StatusCode::OK, state.key_for(newest).to_vec()).into_response();
    }
    if let Some(index) = key_index_of(&path) {
        return (StatusCode::OK, state.key_for(index).to_vec()).into_response();
    }
    let Some(index) = segment_index_of(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if index >= state.published_count() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let first_requested = state
        .first_requested_segment
        .lock()
        .map(|mut first| *first.get_or_insert(index))
        .unwrap_or(index);
    let foreign =
        |body: &'static str| ([(header::CONTENT_TYPE, "video/mp2t")], body).into_response();
    match &state.attack {
        Attack::PlaylistAsSegment if index == ATTACKED_SEGMENT_INDEX => {
            return foreign(FOREIGN_PLAYLIST_BODY);
        }
        Attack::DashAsSegment if index == ATTACKED_SEGMENT_INDEX => {
            return foreign(FOREIGN_DASH_BODY);
        }
        Attack::HtmlBody if index == ATTACKED_SEGMENT_INDEX => {
            return foreign(FOREIGN_HTML_BODY);
        }
        Attack::PlaylistBehindMediaHeader { header: prefix } if index == ATTACKED_SEGMENT_INDEX => {
            let mut body = prefix.clone();
            body.extend_from_slice(FOREIGN_PLAYLIST_BODY.as_bytes());
            return ([(header::CONTENT_TYPE, "video/mp2t")], body).into_response();
        }
        Attack::TricklingFirstSegment { step } if index == first_requested => {
            return trickling_body(state.clear_segment(index), *step);
        }
        Attack::HugeSlowSegments { bytes_per_second } => {
            return endless_slow_segment_body(state.clear_segment(index), *bytes_per_second);
        }
        Attack::HugeInit => {
            // Fragments are never reached: the init fails first.
            return StatusCode::NOT_FOUND.into_response();
        }
        _ => {}
    }
    let clear = state.clear_segment(index);
    if state.is_encrypted() {
        let key = state.key_for(index);
        let initialization_vector = match state.attack {
            Attack::KeyRotation => u128::from(index),
            _ => u128::from(state.media_sequence_of(index)),
        };
        return (
            StatusCode::OK,
            encrypt_segment(&clear, &key, initialization_vector),
        )
            .into_response();
    }
    ([(header::CONTENT_TYPE, "video/mp2t")], clear).into_response()
}

/// One byte every `step`, for ever (until the client gives up).
fn trickling_body(bytes: Bytes, step: Duration) -> Response {
    let stream = futures_util::stream::unfold(0usize, move |position| {
        let bytes = bytes.clone();
        async move {
            tokio::time::sleep(step).await;
            let byte = bytes
                .get(position % bytes.len().max(1))
                .copied()
                .unwrap_or(0x47);
            Some((
                Ok::<Bytes, Infallible>(Bytes::copy_from_slice(&[byte])),
                position + 1,
            ))
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "video/mp2t")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// MPEG-TS packets of `segment` over and over, 64 KiB every `64 KiB / bytes_per_second`, for
/// ever (chunked, no Content-Length).
fn endless_slow_segment_body(segment: Bytes, bytes_per_second: u64) -> Response {
    const CHUNK_BYTES: usize = 64 * 1024;
    let packets = if segment.len() >= 188 {
        segment.slice(..segment.len() - segment.len() % 188)
    } else {
        Bytes::from(vec![0x47u8; 188])
    };
    let mut chunk = Vec::with_capacity(CHUNK_BYTES + packets.len());
    while chunk.len() < CHUNK_BYTES {
        chunk.extend_from_slice(&packets);
    }
    let chunk = Bytes::from(chunk);
    let pause = Duration::from_secs_f64(chunk.len() as f64 / bytes_per_second.max(1) as f64);
    let stream = futures_util::stream::unfold((), move |()| {
        let chunk = chunk.clone();
        async move {
            tokio::time::sleep(pause).await;
            Some((Ok::<Bytes, Infallible>(chunk), ()))
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "video/mp2t")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// An `ftyp` box, then a `moov` box that claims 4 GiB and never ends (chunked, no
/// Content-Length), made lazily 64 KiB at a time.
fn endless_init_body() -> Response {
    let mut head = Vec::new();
    head.extend_from_slice(&20u32.to_be_bytes());
    head.extend_from_slice(b"ftypisom\0\0\0\x01isom");
    head.extend_from_slice(&u32::MAX.to_be_bytes());
    head.extend_from_slice(b"moov");
    let chunk = Bytes::from(vec![0u8; 64 * 1024]);
    let stream = futures_util::stream::unfold(Some(Bytes::from(head)), move |first| {
        let chunk = chunk.clone();
        async move {
            let next = first.unwrap_or(chunk);
            Some((Ok::<Bytes, Infallible>(next), None))
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "video/mp4")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Peak and current resident memory of this process in KiB (`VmHWM`, `VmRSS` of
/// `/proc/self/status`); `None` where that file does not exist.
pub fn process_memory_kib() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|line| line.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}
