//! The live fetcher: records one media playlist (a "track") into parts and a ledger.
//!
//! - Reloads the playlist after the target duration, after half of it when nothing changed
//!   (RFC 8216 §6.3.4), on a schedule that does not drift; network errors back off.
//! - A segment is identified by (epoch, discontinuity sequence, media sequence); the epoch goes up
//!   when the origin restarts its numbering. Ordering and de-duplication use (epoch, media sequence).
//! - Each segment is retried with backoff until the moment it would leave the playlist window,
//!   then it is a gap. A few downloads run at once; commits happen strictly in order.
//! - Media sequences skipped between two playlists (an outage longer than the window, or an origin
//!   that jumps) are gaps too, counted the moment they are known.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use serde::Serialize;
use streambot_core::{RecordingEndReason, RecordingProgress};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use url::Url;

use crate::decrypt::{StreamDecryptionError, decrypt_aes128_cbc, decrypt_aes128_cbc_stream};
use crate::error::HlsError;
use crate::http::{BudgetCharge, BudgetedDownload, ByteBudget, HlsHttpClient, ResourceKind};
use crate::ledger::{
    LedgerEntry, LedgerRecord, PartContainer, PartStartReason, PartSummary, PartWriter,
    SegmentState, read_ledger_records,
};
use crate::live_core::{
    CoreEvent, CoreSettings, FailedAttempt, HeldBody, InitInfo, LiveCore, SegmentKey,
    SegmentKeyInfo, SegmentStatus, TrackedSegment, find_in_backup, segment_locations,
};
use crate::media_check::{
    MediaExpectation, MediaFormat, NotMediaReason, check_media_body, check_media_file,
};
use crate::playlist::{
    ByteRange, MediaPlaylist, MediaSegment, Playlist, PlaylistLimits, PlaylistParseError,
    parse_playlist_with_limits,
};
use crate::segment_body::{
    BodyAccumulator, SegmentBody, SpillBudget, SpillHead, SpillTarget, remove_leftover_spill_files,
};
use crate::url_safety::redact_url;

/// What the owner of a recording wants it to do. Sent through a `watch` channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    Record,
    Pause,
    /// Finish the downloads in flight, commit them, end.
    Stop,
    /// End at once; the part on disk stays playable.
    StopNow,
}

/// Where a live recording starts in the first playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StartFrom {
    /// `live_edge_segments` back from the newest segment (the default).
    #[default]
    LiveEdge,
    /// The whole window the playlist still offers (an EVENT playlist, a long DVR window), then
    /// on live; the ledger marks the segment that was the live edge (`live_edge_at_start`).
    WindowStart,
}

/// How often a live track fsyncs its part and ledger. Every byte and ledger line is written
/// (`write`) before its segment is reported committed, so a killed process (`kill -9`, a panic,
/// the OOM killer) loses nothing it reported: the page cache outlives it. A crash of the machine
/// loses at most the last interval's writes, which a resumed recording fetches again while the
/// live window still offers them. Each fsync is a journal commit in the kernel; with 2 s
/// segments, an fsync every segment was a third of a recording's CPU (BENCHMARKS.md, issue 14).
pub const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_secs(10);

/// The tick playlist reloads are aligned to ([`TrackRecorderConfig::reload_tick`]): a reload is
/// at most this much later than RFC 8216's schedule, which is nothing next to a segment, and the
/// reloads of all the recordings of a process are served by a few wake-ups a second.
pub const DEFAULT_RELOAD_TICK: Duration = Duration::from_millis(250);

/// The origin of the reload tick, shared by every track of the process.
fn reload_tick_origin() -> Instant {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Settings of one track recording.
#[derive(Debug, Clone)]
pub struct TrackRecorderConfig {
    /// "main" or "audio": prefixes the part files and the ledger, and names the track in events.
    pub track_name: String,
    pub media_playlist_url: Url,
    pub output_directory: PathBuf,
    pub stall_timeout: Duration,
    pub maximum_duration: Option<Duration>,
    pub parallel_downloads: usize,
    /// How many segments back from the live edge a live recording starts.
    pub live_edge_segments: usize,
    /// From the live edge or from the window's start (`--from-start`).
    pub start_from: StartFrom,
    /// The part and the ledger are fsync'd together at most this often (at a commit, and when a
    /// part closes): [`DEFAULT_FSYNC_INTERVAL`].
    pub fsync_interval: Duration,
    /// Playlist reloads happen on this process-wide tick (the first tick at or after when
    /// RFC 8216 would reload; zero: exactly then): [`DEFAULT_RELOAD_TICK`].
    pub reload_tick: Duration,
    pub maximum_part_bytes: Option<u64>,
    pub maximum_part_seconds: Option<f64>,
    /// How long a graceful stop waits for the downloads in flight.
    pub stop_grace: Duration,
    /// A subtitle track: WebVTT bodies are media too.
    pub subtitle_track: bool,
    /// Resource bounds against hostile or broken origins.
    pub limits: TrackLimits,
    /// Backups of `media_playlist_url` (redundant streams of the master: the same rendition on
    /// another host or path), in playlist order. A segment the primary cannot deliver is asked
    /// of them by media sequence (or date-time), and the recording switches to one when the
    /// primary's playlist is gone.
    pub backup_media_playlist_urls: Vec<Url>,
}

/// Every resource a track may use, each a named limit with a default. A hit is a specific error or
/// ledger reason, never unbounded memory or a panic.
#[derive(Debug, Clone, Copy)]
pub struct TrackLimits {
    /// Bounds of the playlist parser: text after `EXT-X-DEFINE` substitution, variable
    /// references, segments per playlist. A playlist over them ends the recording with
    /// [`HlsError::Playlist`] carrying the limit.
    pub playlist: PlaylistLimits,
    /// Media sequences skipped between two playlists that are recorded as one gap line each; a
    /// wider jump is a single range line ("N segments skipped"), in constant memory.
    pub maximum_listed_gap_segments: u64,
    /// Each segment counts at least this long toward the recording's duration limit, so that
    /// zero-length segments cannot make a recording endless.
    pub minimum_counted_segment_seconds: f64,
    /// Segments downloaded but not yet committed (waiting for an earlier one): past this, no new
    /// download starts until the head is committed or given up.
    pub maximum_buffered_segments: usize,
    /// Bytes of segment bodies a track holds in memory, downloading and downloaded but not yet
    /// committed: every chunk is charged to this budget before it is kept (a download waits for
    /// room), except the download at the head of the commit order, so a track holds at most this
    /// plus one segment (`maximum_segment_bytes`) and its head is never starved.
    pub maximum_buffered_bytes: u64,
    /// Most bytes of one segment body held in memory: a body that grows past it moves to a
    /// temporary file in the track's output directory (removed on commit or drop), so a track's
    /// memory is a few MiB per download whatever the segment size.
    pub maximum_in_memory_segment_bytes: u64,
    /// Shortest whole-request deadline of a segment download (its window deadline is used when
    /// longer).
    pub minimum_segment_request_time: Duration,
    /// Longest whole-request deadline of a segment download, whatever the window.
    pub maximum_segment_request_time: Duration,
    /// Bytes the track's spill files (segment bodies past `maximum_in_memory_segment_bytes`,
    /// downloading, decrypting or waiting to be committed) hold together: a body that does not
    /// fit is refused ([`HlsError::SpillBudget`], retried, a gap at its deadline). At least twice
    /// the segment size limit, so that one segment and its decrypted copy always fit.
    pub maximum_spilled_bytes: u64,
    /// AES keys kept in memory.
    pub maximum_cached_keys: usize,
    /// Init sections kept in memory.
    pub maximum_cached_inits: usize,
}

impl Default for TrackLimits {
    fn default() -> Self {
        TrackLimits {
            playlist: PlaylistLimits::default(),
            maximum_listed_gap_segments: 1_000,
            minimum_counted_segment_seconds: 0.1,
            maximum_buffered_segments: 6,
            maximum_buffered_bytes: 64 * 1024 * 1024,
            maximum_in_memory_segment_bytes: 4 * 1024 * 1024,
            maximum_spilled_bytes: 256 * 1024 * 1024,
            minimum_segment_request_time: Duration::from_secs(5),
            maximum_segment_request_time: Duration::from_secs(120),
            maximum_cached_keys: 16,
            maximum_cached_inits: 4,
        }
    }
}

/// Playlists longer than this are parsed on a blocking thread.
const PARSE_OFF_THREAD_ABOVE_BYTES: usize = 256 * 1024;

/// A media playlist up to this long is kept as text after its load, so that a reload returning
/// the same bytes (a reload of a live playlist before its next segment) is not parsed again.
const REMEMBERED_PLAYLIST_MAXIMUM_BYTES: usize = 64 * 1024;

impl TrackRecorderConfig {
    pub fn new(track_name: &str, media_playlist_url: Url, output_directory: PathBuf) -> Self {
        TrackRecorderConfig {
            track_name: track_name.to_string(),
            media_playlist_url,
            output_directory,
            stall_timeout: streambot_core::options::DEFAULT_STALL_TIMEOUT,
            maximum_duration: None,
            parallel_downloads: 3,
            live_edge_segments: 3,
            start_from: StartFrom::LiveEdge,
            fsync_interval: DEFAULT_FSYNC_INTERVAL,
            reload_tick: DEFAULT_RELOAD_TICK,
            maximum_part_bytes: None,
            maximum_part_seconds: None,
            stop_grace: Duration::from_secs(15),
            subtitle_track: false,
            limits: TrackLimits::default(),
            backup_media_playlist_urls: Vec::new(),
        }
    }
}

/// What a track reports while it runs.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrackEvent {
    PartStarted {
        track: String,
        part: PartSummary,
    },
    SegmentCommitted {
        track: String,
        entry: LedgerEntry,
        progress: RecordingProgress,
    },
    GapDetected {
        track: String,
        entry: LedgerEntry,
        progress: RecordingProgress,
    },
    PlaylistTrouble {
        track: String,
        error: String,
        consecutive_failures: u32,
    },
    StateChanged {
        track: String,
        state: DesiredState,
    },
    /// Every reload of the primary media playlist failed for longer than half its window: a
    /// backup (redundant stream) is the primary from now on. `from`/`to` are source names
    /// ("primary", "backup-1", ...), never URLs.
    SourceSwitched {
        track: String,
        from: String,
        to: String,
        seconds_without_playlist: u64,
    },
    /// Progress of a recording made without a ledger (the ffmpeg engine for non-HLS links).
    Progress {
        track: String,
        progress: RecordingProgress,
    },
}

/// How a track ended.
#[derive(Debug)]
pub enum TrackEnd {
    Finished(RecordingEndReason),
    Failed(HlsError),
}

/// What a track left behind, whatever the way it ended.
#[derive(Debug)]
pub struct TrackOutcome {
    pub track_name: String,
    pub end: TrackEnd,
    pub parts: Vec<PartSummary>,
    pub progress: RecordingProgress,
    pub ledger_path: PathBuf,
    pub first_media_sequence: Option<u64>,
    pub last_media_sequence: Option<u64>,
}

/// A checked segment body and the init section it needs.
#[derive(Debug)]
struct DownloadedSegment {
    bytes: SegmentBody,
    /// The init section: its identity (URL, byte range and a hash of the bytes, so that an init
    /// rewritten behind the same URI is a change) and its bytes.
    init: Option<(String, Bytes)>,
    format: MediaFormat,
    /// The source it came from (0: the original primary).
    source: usize,
    /// The bytes this body holds of the track's budget, given back when it is committed or dropped.
    _budget_charge: BudgetCharge,
}

struct DownloadResult {
    key: SegmentKey,
    result: Result<DownloadedSegment, HlsError>,
    /// The key came from the origin during this attempt, not from the cache.
    fresh_key: bool,
    /// The init came from the origin during this attempt, not from the cache.
    fresh_init: bool,
}

/// A small cache that forgets its oldest entry past `capacity`.
struct BoundedCache<K, V> {
    capacity: usize,
    entries: VecDeque<(K, V)>,
}

impl<K: PartialEq, V: Clone> BoundedCache<K, V> {
    fn new(capacity: usize) -> Self {
        BoundedCache {
            capacity: capacity.max(1),
            entries: VecDeque::new(),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        self.entries
            .iter()
            .find(|(entry_key, _)| entry_key == key)
            .map(|(_, value)| value.clone())
    }

    fn insert(&mut self, key: K, value: V) {
        self.remove(&key);
        while self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back((key, value));
    }

    fn remove(&mut self, key: &K) {
        self.entries.retain(|(entry_key, _)| entry_key != key);
    }

    fn clear(&mut self) {
        self.entries.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Keys and init sections of one track, bounded; one fetch of each at a time, so parallel
/// downloads at the start fetch `init.mp4` and `key.bin` once.
struct SharedCaches {
    keys: Mutex<BoundedCache<Url, [u8; 16]>>,
    inits: Mutex<BoundedCache<String, Bytes>>,
    /// Init sections refused as too large, with the limit (until the next epoch): every later
    /// segment fails at once instead of downloading the same 16 MiB again.
    refused_inits: Mutex<BoundedCache<String, u64>>,
    key_fetch: tokio::sync::Mutex<()>,
    init_fetch: tokio::sync::Mutex<()>,
}

impl SharedCaches {
    fn new(limits: &TrackLimits) -> Self {
        SharedCaches {
            keys: Mutex::new(BoundedCache::new(limits.maximum_cached_keys)),
            inits: Mutex::new(BoundedCache::new(limits.maximum_cached_inits)),
            refused_inits: Mutex::new(BoundedCache::new(limits.maximum_cached_inits)),
            key_fetch: tokio::sync::Mutex::new(()),
            init_fetch: tokio::sync::Mutex::new(()),
        }
    }

    /// Forgets every key and init (a new epoch: the packager restarted).
    fn clear(&self) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.clear();
        }
        if let Ok(mut inits) = self.inits.lock() {
            inits.clear();
        }
        if let Ok(mut refused) = self.refused_inits.lock() {
            refused.clear();
        }
    }

    fn forget_key(&self, key_url: &Url) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.remove(key_url);
        }
    }

    fn forget_init(&self, identity: &str) {
        if let Ok(mut inits) = self.inits.lock() {
            inits.remove(&identity.to_string());
        }
    }

    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        (
            self.keys.lock().map_or(0, |keys| keys.len()),
            self.inits.lock().map_or(0, |inits| inits.len()),
        )
    }
}

/// Records one media playlist until it ends, is stopped, stalls or fails.
pub async fn record_track(
    client: HlsHttpClient,
    config: TrackRecorderConfig,
    mut control: watch::Receiver<DesiredState>,
    events: mpsc::UnboundedSender<TrackEvent>,
) -> TrackOutcome {
    let mut writer = match PartWriter::open(
        &config.output_directory,
        &config.track_name,
        config.fsync_interval,
    ) {
        Ok(writer) => writer,
        Err(error) => {
            return TrackOutcome {
                track_name: config.track_name.clone(),
                end: TrackEnd::Failed(error),
                parts: Vec::new(),
                progress: RecordingProgress::default(),
                ledger_path: config.output_directory.clone(),
                first_media_sequence: None,
                last_media_sequence: None,
            };
        }
    };
    let ledger_path = writer.ledger_path().to_path_buf();
    // Spill files a killed run left behind.
    remove_leftover_spill_files(&config.output_directory, &config.track_name);
    let resumed_from = read_ledger_records(&ledger_path)
        .ok()
        .and_then(|records| records.last().cloned());
    let mut state = TrackState::new(config, client, events, resumed_from.as_ref());
    let mut downloads: JoinSet<DownloadResult> = JoinSet::new();
    let end = state.run(&mut writer, &mut control, &mut downloads).await;
    // Aborted and waited for: a download's spill file is gone when the track returns.
    downloads.shutdown().await;
    let parts = match writer.finish() {
        Ok(parts) => parts,
        Err(error) => {
            return state.outcome(TrackEnd::Failed(error), Vec::new(), ledger_path);
        }
    };
    state.outcome(end, parts, ledger_path)
}

/// The IO driver of one track around its [`LiveCore`]: loads playlists, runs the downloads,
/// commits to the part writer and tells the owner, feeding the core with what happened and the
/// time, and doing what it decides.
struct TrackState {
    config: TrackRecorderConfig,
    client: HlsHttpClient,
    events: mpsc::UnboundedSender<TrackEvent>,
    caches: Arc<SharedCaches>,
    core: LiveCore<DownloadedSegment>,
    progress: RecordingProgress,
    last_committed_discontinuity: Option<u64>,
    last_committed_epoch: Option<u32>,
    /// What the last committed body was: a raw part holds one format only (ADTS, MP3, AC-3).
    last_committed_format: Option<MediaFormat>,
    last_media_sequence: Option<u64>,
    playlist_base_url: Url,
    /// The last media playlist loaded, its text and where it came from (when it is at most
    /// [`REMEMBERED_PLAYLIST_MAXIMUM_BYTES`]): the same bytes from the same URL are the same
    /// playlist, absorbed again without parsing.
    last_loaded_playlist: Option<LoadedPlaylist>,
    /// Bytes of bodies in memory (see [`TrackLimits::maximum_buffered_bytes`]).
    byte_budget: ByteBudget,
    spill_budget: SpillBudget,
    /// The key at the head of the commit order, for the downloads: the head is not charged.
    head_of_commit_order: watch::Sender<Option<SegmentKey>>,
    /// The media playlists of the sources (0: the original primary, then the backups), loaded on
    /// demand when a segment is asked of a backup.
    backups: Arc<BackupPlaylists>,
}

/// A media playlist as loaded: its text, the URL it finally came from, and the parse of it.
struct LoadedPlaylist {
    final_url: Url,
    text: String,
    playlist: Arc<MediaPlaylist>,
}

/// A backup's playlist as last loaded.
struct LoadedBackup {
    loaded_at: Instant,
    base_url: Url,
    playlist: MediaPlaylist,
}

/// The playlists of the sources a segment may be asked of when the playlist that listed it
/// cannot deliver it: loaded when first needed, loaded again when the segment asked for is not
/// in the copy we have (at most every [`BACKUP_RELOAD_SPACING`]), one load at a time.
struct BackupPlaylists {
    sources: Vec<Url>,
    limits: PlaylistLimits,
    io_path: PathBuf,
    loaded: tokio::sync::Mutex<Vec<Option<LoadedBackup>>>,
}

/// Shortest time between two loads of a backup's playlist.
const BACKUP_RELOAD_SPACING: Duration = Duration::from_millis(250);

impl BackupPlaylists {
    /// The segment of source `source` that stands for `segment` of the playlist that listed it,
    /// and the URL its playlist came from.
    async fn locate(
        &self,
        client: &HlsHttpClient,
        source: usize,
        media_sequence: u64,
        program_date_time: Option<&str>,
        duration_seconds: f64,
    ) -> Result<(Url, MediaSegment), HlsError> {
        let Some(url) = self.sources.get(source) else {
            return Err(HlsError::NotListed {
                url: format!("source {source}"),
                media_sequence,
            });
        };
        let mut loaded = self.loaded.lock().await;
        if loaded.len() < self.sources.len() {
            loaded.resize_with(self.sources.len(), || None);
        }
        let Some(slot) = loaded.get_mut(source) else {
            return Err(HlsError::NotListed {
                url: redact_url(url),
                media_sequence,
            });
        };
        let find = |copy: &LoadedBackup| {
            find_in_backup(
                &copy.playlist,
                media_sequence,
                program_date_time,
                duration_seconds,
            )
            .map(|segment| (copy.base_url.clone(), segment.clone()))
        };
        if let Some(copy) = slot.as_ref() {
            if let Some(found) = find(copy) {
                return Ok(found);
            }
            if copy.loaded_at.elapsed() < BACKUP_RELOAD_SPACING {
                return Err(HlsError::NotListed {
                    url: redact_url(url),
                    media_sequence,
                });
            }
        }
        let (base_url, playlist) =
            fetch_media_playlist(client, url, self.limits, &self.io_path).await?;
        let copy = slot.insert(LoadedBackup {
            loaded_at: Instant::now(),
            base_url,
            playlist,
        });
        find(copy).ok_or_else(|| HlsError::NotListed {
            url: redact_url(url),
            media_sequence,
        })
    }
}

/// Loads and parses a media playlist; returns where it really came from (relative URIs resolve
/// against it) and the playlist.
async fn fetch_media_playlist(
    client: &HlsHttpClient,
    url: &Url,
    limits: PlaylistLimits,
    io_path: &std::path::Path,
) -> Result<(Url, MediaPlaylist), HlsError> {
    let (final_url, text) = client.fetch_playlist(url).await?;
    let media = parse_media_playlist(url, text, limits, io_path).await?;
    Ok((final_url, media))
}

/// Parses a loaded media playlist (`url`: the one asked for, named in errors).
async fn parse_media_playlist(
    url: &Url,
    text: String,
    limits: PlaylistLimits,
    io_path: &std::path::Path,
) -> Result<MediaPlaylist, HlsError> {
    // A large playlist is parsed off the async threads, so that one hostile stream's 8 MB of
    // segments or DEFINE expansion never holds up the other recordings of the process.
    let parsed = if text.len() > PARSE_OFF_THREAD_ABOVE_BYTES {
        tokio::task::spawn_blocking(move || parse_playlist_with_limits(&text, &[], &limits))
            .await
            .map_err(|_| HlsError::Io {
                path: io_path.to_path_buf(),
                source: std::io::Error::other("the playlist parser task failed"),
            })?
    } else {
        parse_playlist_with_limits(&text, &[], &limits)
    };
    match parsed {
        Ok(Playlist::Media(media)) => Ok(media),
        Ok(Playlist::Master(_)) => Err(HlsError::NestedMaster {
            url: redact_url(url),
        }),
        Err(error) => Err(HlsError::Playlist {
            url: redact_url(url),
            error,
        }),
    }
}

impl HeldBody for DownloadedSegment {
    fn memory_bytes(&self) -> u64 {
        self.bytes.memory_bytes()
    }
}

enum StopMode {
    Graceful(RecordingEndReason),
    Immediate(RecordingEndReason),
}

impl TrackState {
    /// A track's state before its first playlist, continuing after `resumed_from` (the last
    /// ledger line of an earlier run in the same directory) when there is one.
    fn new(
        config: TrackRecorderConfig,
        client: HlsHttpClient,
        events: mpsc::UnboundedSender<TrackEvent>,
        resumed_from: Option<&LedgerRecord>,
    ) -> TrackState {
        let settings = CoreSettings {
            playlist_url: config.media_playlist_url.clone(),
            live_edge_segments: config.live_edge_segments,
            start_from: config.start_from,
            maximum_duration: config.maximum_duration,
            parallel_downloads: config.parallel_downloads,
            stall_timeout: config.stall_timeout,
            limits: config.limits,
            source_count: 1 + config.backup_media_playlist_urls.len(),
        };
        let sources: Vec<Url> = std::iter::once(config.media_playlist_url.clone())
            .chain(config.backup_media_playlist_urls.iter().cloned())
            .collect();
        TrackState {
            caches: Arc::new(SharedCaches::new(&config.limits)),
            client,
            events,
            core: LiveCore::new(settings, resumed_from, Instant::now()),
            progress: RecordingProgress::default(),
            last_committed_discontinuity: None,
            last_committed_epoch: None,
            last_committed_format: None,
            last_media_sequence: None,
            playlist_base_url: config.media_playlist_url.clone(),
            last_loaded_playlist: None,
            byte_budget: ByteBudget::new(config.limits.maximum_buffered_bytes),
            spill_budget: SpillBudget::new(config.limits.maximum_spilled_bytes),
            head_of_commit_order: watch::Sender::new(None),
            backups: Arc::new(BackupPlaylists {
                sources,
                limits: config.limits.playlist,
                io_path: config.output_directory.clone(),
                loaded: tokio::sync::Mutex::new(Vec::new()),
            }),
            config,
        }
    }

    /// Tells the downloads which segment is at the head of the commit order now.
    fn publish_head_of_commit_order(&self) {
        let head = self.core.head();
        self.head_of_commit_order.send_if_modified(|published| {
            let changed = *published != head;
            *published = head;
            changed
        });
    }

    fn outcome(
        &self,
        end: TrackEnd,
        parts: Vec<PartSummary>,
        ledger_path: PathBuf,
    ) -> TrackOutcome {
        TrackOutcome {
            track_name: self.config.track_name.clone(),
            end,
            parts,
            progress: self.progress.clone(),
            ledger_path,
            first_media_sequence: self.core.first_media_sequence,
            last_media_sequence: self.last_media_sequence,
        }
    }

    fn emit(&self, event: TrackEvent) {
        let _ = self.events.send(event);
    }

    /// Does what the core decided: counts and tells gaps, drops stale keys and inits.
    fn act_on_core_events(&mut self) {
        for event in self.core.drain_events() {
            match event {
                CoreEvent::GapKnown(gap) => {
                    self.progress.gap_segments =
                        self.progress.gap_segments.saturating_add(gap.segment_count);
                    self.progress.gap_seconds += gap.duration_seconds;
                    tracing::warn!(
                        track = %self.config.track_name,
                        media_sequence = gap.media_sequence,
                        segments = gap.segment_count,
                        reason = gap.reason.as_deref().unwrap_or("unknown"),
                        "media lost: gap"
                    );
                    let entry = self.ledger_entry(
                        gap.epoch,
                        gap.media_sequence,
                        gap.discontinuity_sequence,
                        gap.duration_seconds,
                        gap.failed_attempts,
                        &gap.uri_text,
                        SegmentState::Gap,
                    );
                    self.emit(TrackEvent::GapDetected {
                        track: self.config.track_name.clone(),
                        entry,
                        progress: self.progress_now(),
                    });
                }
                CoreEvent::NewEpoch {
                    newest_media_sequence,
                    seen_media_sequence,
                } => {
                    tracing::warn!(track = %self.config.track_name, newest_media_sequence, seen_media_sequence, "media sequence restarted; starting a new epoch");
                    // The packager restarted: its init and key may be new behind the same URIs.
                    self.caches.clear();
                }
                CoreEvent::ForgetKey(key_url) => self.caches.forget_key(&key_url),
                CoreEvent::ForgetInit(identity) => self.caches.forget_init(&identity),
            }
        }
    }

    async fn run(
        &mut self,
        writer: &mut PartWriter,
        control: &mut watch::Receiver<DesiredState>,
        downloads: &mut JoinSet<DownloadResult>,
    ) -> TrackEnd {
        // First load: a dead or wrong link fails fast; transient trouble is retried for a while.
        let first_playlist = match self.first_load(control).await {
            Ok(Some(playlist)) => playlist,
            Ok(None) => return TrackEnd::Finished(RecordingEndReason::Stopped),
            Err(error) => return TrackEnd::Failed(error),
        };
        let mut reload_scheduled_at = Instant::now();
        if let Err(error) = self.absorb_playlist(&first_playlist, true) {
            return TrackEnd::Failed(error);
        }
        let mut next_reload_at =
            self.on_reload_tick(reload_scheduled_at + self.core.target_duration());
        let mut consecutive_playlist_failures: u32 = 0;
        let mut stop_mode: Option<StopMode> = None;
        let mut stop_deadline: Option<Instant> = None;
        let mut control_open = true;
        self.apply_desired_state(*control.borrow(), &mut stop_mode, writer);

        loop {
            // Progress the state machine as far as it goes without waiting.
            if stop_mode.is_none() {
                self.give_up_expired();
                self.start_downloads(downloads);
            }
            if let Err(error) = self.commit_ready(writer) {
                return TrackEnd::Failed(error);
            }
            self.publish_head_of_commit_order();

            // End conditions.
            if let Some(mode) = &stop_mode {
                let nothing_in_flight = downloads.is_empty();
                let grace_over = stop_deadline.is_some_and(|deadline| Instant::now() >= deadline);
                if matches!(mode, StopMode::Immediate(_)) || nothing_in_flight || grace_over {
                    let reason = match mode {
                        StopMode::Graceful(reason) | StopMode::Immediate(reason) => reason.clone(),
                    };
                    // Even at once: every taken sequence gets its ledger line (gaps are cheap).
                    if let Err(error) = self.commit_after_stop(writer) {
                        return TrackEnd::Failed(error);
                    }
                    return TrackEnd::Finished(reason);
                }
            } else if let Some(reason) = self.core.finished() {
                return TrackEnd::Finished(reason);
            } else {
                let now = Instant::now();
                if let Some(seconds) = self.core.stalled(now) {
                    stop_mode = Some(StopMode::Graceful(RecordingEndReason::Stalled {
                        seconds_without_new_segment: seconds,
                    }));
                    stop_deadline =
                        Some(now + self.config.stop_grace.min(self.core.target_duration() * 2));
                    continue;
                }
                if self.core.duration_over(now) {
                    stop_mode = Some(StopMode::Graceful(RecordingEndReason::DurationReached));
                    stop_deadline = Some(now + self.config.stop_grace);
                    continue;
                }
            }

            let wake_at = self
                .core
                .next_wake(next_reload_at, stop_deadline, downloads.len());
            tokio::select! {
                biased;
                changed = control.changed(), if control_open => {
                    // The owner gone (the sender dropped) means stop, once: the channel is not
                    // polled again (a closed one is always ready, and with `biased` it would keep
                    // the downloads below from ever being collected until the grace ran out).
                    control_open = changed.is_ok();
                    let desired = if changed.is_ok() { *control.borrow_and_update() } else { DesiredState::Stop };
                    let was_stopping = stop_mode.is_some();
                    self.apply_desired_state(desired, &mut stop_mode, writer);
                    if !was_stopping && stop_mode.is_some() {
                        stop_deadline = Some(Instant::now() + self.config.stop_grace);
                    }
                    if matches!(stop_mode, Some(StopMode::Immediate(_))) {
                        downloads.abort_all();
                    }
                }
                Some(joined) = downloads.join_next(), if !downloads.is_empty() => {
                    match joined {
                        Ok(result) => self.absorb_download(result),
                        Err(join_error) => {
                            if join_error.is_panic() {
                                return TrackEnd::Failed(HlsError::Io {
                                    path: self.config.output_directory.clone(),
                                    source: std::io::Error::other("a segment download panicked"),
                                });
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(wake_at) => {}
            }

            if stop_mode.is_none() && Instant::now() >= next_reload_at {
                match self.load_playlist().await {
                    Ok(playlist) => {
                        consecutive_playlist_failures = 0;
                        let changed = match self.absorb_playlist(&playlist, false) {
                            Ok(changed) => changed,
                            Err(error) => return TrackEnd::Failed(error),
                        };
                        reload_scheduled_at = next_reload_at;
                        next_reload_at = self.on_reload_tick(
                            (reload_scheduled_at + self.core.reload_interval(changed))
                                .max(Instant::now()),
                        );
                    }
                    Err(error) => {
                        if matches!(
                            error,
                            HlsError::UnsupportedEncryption { .. }
                                | HlsError::NestedMaster { .. }
                                | HlsError::Io { .. }
                                | HlsError::Playlist {
                                    error: PlaylistParseError::OverLimit { .. },
                                    ..
                                }
                        ) {
                            return TrackEnd::Failed(error);
                        }
                        consecutive_playlist_failures += 1;
                        tracing::warn!(track = %self.config.track_name, %error, consecutive_playlist_failures, "playlist reload failed");
                        self.emit(TrackEvent::PlaylistTrouble {
                            track: self.config.track_name.clone(),
                            error: error.to_string(),
                            consecutive_failures: consecutive_playlist_failures,
                        });
                        next_reload_at = if self.switch_source_when_due() {
                            consecutive_playlist_failures = 0;
                            Instant::now()
                        } else {
                            Instant::now()
                                + self
                                    .core
                                    .playlist_retry_after(consecutive_playlist_failures)
                        };
                    }
                }
            }
        }
    }

    /// `at`, moved to the next reload tick shared by the process's tracks.
    fn on_reload_tick(&self, at: Instant) -> Instant {
        crate::live_core::align_to_tick(at, reload_tick_origin(), self.config.reload_tick)
    }

    fn apply_desired_state(
        &mut self,
        desired: DesiredState,
        stop_mode: &mut Option<StopMode>,
        writer: &mut PartWriter,
    ) {
        self.emit(TrackEvent::StateChanged {
            track: self.config.track_name.clone(),
            state: desired,
        });
        match desired {
            DesiredState::Record => {
                if self.core.resume(Instant::now()) {
                    let _ = writer.close_part();
                }
            }
            DesiredState::Pause => self.core.pause(),
            DesiredState::Stop => {
                if stop_mode.is_none() {
                    *stop_mode = Some(StopMode::Graceful(RecordingEndReason::Stopped));
                }
            }
            DesiredState::StopNow => {
                *stop_mode = Some(StopMode::Immediate(RecordingEndReason::Stopped));
            }
        }
    }

    async fn first_load(
        &mut self,
        control: &mut watch::Receiver<DesiredState>,
    ) -> Result<Option<Arc<MediaPlaylist>>, HlsError> {
        let give_up_at = Instant::now() + self.config.stall_timeout.min(Duration::from_secs(30));
        let mut attempt: u32 = 0;
        loop {
            match self.load_playlist().await {
                Ok(playlist) => return Ok(Some(playlist)),
                Err(error) => {
                    attempt += 1;
                    let retry = error.is_retryable() && !error.is_dead_stream_at_start();
                    if !retry || Instant::now() >= give_up_at {
                        return Err(error);
                    }
                    tracing::warn!(track = %self.config.track_name, %error, attempt, "first playlist load failed; retrying");
                    self.emit(TrackEvent::PlaylistTrouble {
                        track: self.config.track_name.clone(),
                        error: error.to_string(),
                        consecutive_failures: attempt,
                    });
                    let backoff = streambot_core::backoff::ExponentialBackoff::new(
                        Duration::from_millis(500),
                        Duration::from_secs(8),
                    )
                    .delay_after_failed_attempt(attempt);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        changed = control.changed() => {
                            let desired = if changed.is_ok() { *control.borrow_and_update() } else { DesiredState::Stop };
                            if matches!(desired, DesiredState::Stop | DesiredState::StopNow) {
                                return Ok(None);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Loads the media playlist. The same bytes from the same URL as the last load are the same
    /// playlist: not parsed again, and absorbed again exactly as a parse of them would be (the
    /// core sees nothing new; deadlines, stall and duration clocks go on as before).
    async fn load_playlist(&mut self) -> Result<Arc<MediaPlaylist>, HlsError> {
        let url = self.config.media_playlist_url.clone();
        let (final_url, text) = self.client.fetch_playlist(&url).await?;
        if let Some(last) = &self.last_loaded_playlist
            && last.final_url == final_url
            && last.text == text
        {
            let playlist = Arc::clone(&last.playlist);
            self.playlist_base_url = final_url;
            return Ok(playlist);
        }
        let remembered_text =
            (text.len() <= REMEMBERED_PLAYLIST_MAXIMUM_BYTES).then(|| text.clone());
        self.last_loaded_playlist = None;
        let media = Arc::new(
            parse_media_playlist(
                &url,
                text,
                self.config.limits.playlist,
                &self.config.output_directory,
            )
            .await?,
        );
        if let Some(text) = remembered_text {
            self.last_loaded_playlist = Some(LoadedPlaylist {
                final_url: final_url.clone(),
                text,
                playlist: Arc::clone(&media),
            });
        }
        // Relative segment URIs resolve against where the playlist really came from.
        self.playlist_base_url = final_url;
        Ok(media)
    }

    /// Every reload failed for longer than [`LiveCore::switch_after`]: the next backup is the
    /// primary from now on (said at warn and as an event).
    fn switch_source_when_due(&mut self) -> bool {
        let now = Instant::now();
        self.core.playlist_load_failed(now);
        let Some(to) = self.core.switch_due(now) else {
            return false;
        };
        let Some(url) = self.backups.sources.get(to).cloned() else {
            return false;
        };
        let from = self.core.primary_source;
        let seconds_without_playlist = self.core.switch_after().as_secs();
        let name = |source: usize| {
            crate::live_core::source_name(source).unwrap_or_else(|| "primary".to_string())
        };
        tracing::warn!(
            track = %self.config.track_name,
            from = %name(from),
            to = %name(to),
            seconds_without_playlist,
            "the media playlist is gone; switching to its backup (redundant stream)"
        );
        self.core.switch_primary(to, now);
        self.config.media_playlist_url = url.clone();
        self.playlist_base_url = url;
        self.emit(TrackEvent::SourceSwitched {
            track: self.config.track_name.clone(),
            from: name(from),
            to: name(to),
            seconds_without_playlist,
        });
        true
    }

    /// Takes in a freshly loaded playlist. Returns whether it listed anything new.
    fn absorb_playlist(
        &mut self,
        playlist: &MediaPlaylist,
        is_first: bool,
    ) -> Result<bool, HlsError> {
        let base_url = self.playlist_base_url.clone();
        let result = self
            .core
            .absorb_playlist(playlist, &base_url, is_first, Instant::now());
        self.act_on_core_events();
        result
    }

    fn base_record(
        &self,
        segment: &TrackedSegment<DownloadedSegment>,
        state: SegmentState,
    ) -> LedgerRecord {
        let mut record = LedgerRecord::new(self.base_entry(segment, state));
        record.live_edge_at_start = segment.live_edge_at_start.then_some(true);
        if state == SegmentState::Gap {
            record.reason = segment.failure_reason.clone();
            record.range_last_media_sequence = segment.range_last_media_sequence;
        }
        record
    }

    fn base_entry(
        &self,
        segment: &TrackedSegment<DownloadedSegment>,
        state: SegmentState,
    ) -> LedgerEntry {
        self.ledger_entry(
            segment.epoch,
            segment.media_sequence,
            segment.discontinuity_sequence,
            segment.duration_seconds,
            segment.failed_attempts,
            &segment.uri_text,
            state,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn ledger_entry(
        &self,
        epoch: u32,
        media_sequence: u64,
        discontinuity_sequence: u64,
        duration_seconds: f64,
        failed_attempts: u32,
        uri_text: &str,
        state: SegmentState,
    ) -> LedgerEntry {
        LedgerEntry {
            track: self.config.track_name.clone(),
            part: 0,
            epoch,
            discontinuity_sequence,
            media_sequence,
            duration_seconds,
            bytes: 0,
            offset_in_part: 0,
            state,
            wall_time: Utc::now(),
            failed_attempts,
            uri: uri_text.to_string(),
        }
    }

    fn progress_now(&self) -> RecordingProgress {
        let mut progress = self.progress.clone();
        progress.elapsed = self.core.started_at.elapsed();
        progress
    }

    fn give_up_expired(&mut self) {
        self.core.give_up_expired(Instant::now());
        self.act_on_core_events();
    }

    /// Starts the downloads the core decides on.
    fn start_downloads(&mut self, downloads: &mut JoinSet<DownloadResult>) {
        self.publish_head_of_commit_order();
        let now = Instant::now();
        let to_start = self.core.downloads_to_start(now, downloads.len());
        for (key, deadline) in to_start {
            let Some(segment) = self.core.pending.get(&key) else {
                continue;
            };
            let client = self.client.clone();
            let caches = Arc::clone(&self.caches);
            let spill = SpillTarget {
                directory: self.config.output_directory.clone(),
                file_prefix: self.config.track_name.clone(),
                in_memory_limit: self.config.limits.maximum_in_memory_segment_bytes,
                budget: self.spill_budget.clone(),
                head: Some(SpillHead {
                    head: self.head_of_commit_order.subscribe(),
                    own_key: key,
                }),
            };
            let subtitle_track = self.config.subtitle_track;
            let budget = BudgetedDownload::new(
                self.byte_budget.clone(),
                self.head_of_commit_order.subscribe(),
                key,
            );
            let source = segment.source;
            if source == segment.listed_by {
                let request = SegmentRequest {
                    url: segment.url.clone(),
                    byte_range: segment.byte_range,
                    key: segment.key.clone(),
                    expectation: expectation_for(segment.init.as_ref(), subtitle_track),
                    init: segment.init.clone(),
                    deadline,
                    spill,
                };
                downloads.spawn(async move {
                    download_segment(&client, &caches, key, request, budget, source).await
                });
                continue;
            }
            // Asked of another source: found in its playlist by media sequence (or date-time).
            let backups = Arc::clone(&self.backups);
            let program_date_time = segment.program_date_time.clone();
            let duration_seconds = segment.duration_seconds;
            downloads.spawn(async move {
                let located = backups
                    .locate(
                        &client,
                        source,
                        key.1,
                        program_date_time.as_deref(),
                        duration_seconds,
                    )
                    .await
                    .and_then(|(base_url, listed)| {
                        segment_locations(&listed, &base_url)
                            .map(|(url, key_info, init)| (url, key_info, init, listed.byte_range))
                    });
                match located {
                    Ok((url, key_info, init, byte_range)) => {
                        let request = SegmentRequest {
                            url,
                            byte_range,
                            key: key_info,
                            expectation: expectation_for(init.as_ref(), subtitle_track),
                            init,
                            deadline,
                            spill,
                        };
                        download_segment(&client, &caches, key, request, budget, source).await
                    }
                    Err(error) => DownloadResult {
                        key,
                        result: Err(error),
                        fresh_key: false,
                        fresh_init: false,
                    },
                }
            });
        }
    }

    fn absorb_download(&mut self, download: DownloadResult) {
        match download.result {
            Ok(downloaded) => self.core.download_succeeded(download.key, downloaded),
            Err(error) => {
                let attempts = self
                    .core
                    .pending
                    .get(&download.key)
                    .map_or(0, |segment| segment.failed_attempts + 1);
                tracing::warn!(track = %self.config.track_name, media_sequence = download.key.1, %error, attempts, "segment attempt failed");
                self.core.download_failed(
                    download.key,
                    FailedAttempt {
                        error: &error,
                        fresh_key: download.fresh_key,
                        fresh_init: download.fresh_init,
                    },
                    Instant::now(),
                );
                self.act_on_core_events();
            }
        }
    }

    /// Commits, in order, every leading segment whose fate is known.
    fn commit_ready(&mut self, writer: &mut PartWriter) -> Result<(), HlsError> {
        for (segment, status) in self.core.take_ready() {
            self.commit_one(segment, status, writer)?;
        }
        Ok(())
    }

    /// When the recording ends (stop, `--for`, stall): what was downloaded is committed in order;
    /// every other segment it had taken is a gap line with the reason, so that every sequence
    /// published inside the recording's span is in the ledger.
    fn commit_after_stop(&mut self, writer: &mut PartWriter) -> Result<(), HlsError> {
        for (segment, status) in self.core.take_all_at_stop() {
            self.commit_one(segment, status, writer)?;
        }
        Ok(())
    }

    fn commit_one(
        &mut self,
        segment: TrackedSegment<DownloadedSegment>,
        status: SegmentStatus<DownloadedSegment>,
        writer: &mut PartWriter,
    ) -> Result<(), HlsError> {
        match status {
            SegmentStatus::Done(mut downloaded) => {
                self.ensure_part_for(&segment, &downloaded, writer)?;
                let entry = self.base_entry(&segment, SegmentState::Ok);
                let mut record = LedgerRecord::new(entry);
                record.live_edge_at_start = segment.live_edge_at_start.then_some(true);
                record.source = crate::live_core::source_name(downloaded.source);
                let entry = match &mut downloaded.bytes {
                    SegmentBody::Memory(bytes) => {
                        writer.append_segment_record_bytes(record, bytes)?
                    }
                    spilled @ SegmentBody::Spilled(_) => {
                        let length = spilled.len();
                        let mut reader = spilled.reader().map_err(|source| HlsError::Io {
                            path: self.config.output_directory.clone(),
                            source,
                        })?;
                        writer.append_segment_record(record, &mut reader, length)?
                    }
                };
                self.last_committed_discontinuity = Some(segment.discontinuity_sequence);
                self.last_committed_epoch = Some(segment.epoch);
                self.last_committed_format = Some(downloaded.format);
                self.last_media_sequence = Some(segment.media_sequence);
                self.progress.segments_written += 1;
                self.progress.bytes_written += entry.bytes;
                self.progress.media_seconds += entry.duration_seconds;
                self.progress.current_part = entry.part;
                self.emit(TrackEvent::SegmentCommitted {
                    track: self.config.track_name.clone(),
                    entry,
                    progress: self.progress_now(),
                });
            }
            SegmentStatus::Paused => {
                let record = self.base_record(&segment, SegmentState::Pause);
                writer.record_missing_with(record)?;
            }
            SegmentStatus::Gap | SegmentStatus::Waiting | SegmentStatus::InFlight => {
                let mut segment = segment;
                self.core.count_gap(&mut segment);
                self.act_on_core_events();
                let record = self.base_record(&segment, SegmentState::Gap);
                writer.record_missing_with(record)?;
            }
        }
        Ok(())
    }

    /// Starts a new part where the media really changes: a discontinuity decided by identity
    /// (a tag first seen before this segment, or a new epoch), another init section (by content,
    /// not only by URI), another container; and for the size and duration limits.
    fn ensure_part_for(
        &mut self,
        segment: &TrackedSegment<DownloadedSegment>,
        downloaded: &DownloadedSegment,
        writer: &mut PartWriter,
    ) -> Result<(), HlsError> {
        let container = match downloaded.format {
            MediaFormat::MpegTs => PartContainer::MpegTs,
            MediaFormat::FragmentedMp4 | MediaFormat::InitSegment => PartContainer::FragmentedMp4,
            MediaFormat::AdtsAac
            | MediaFormat::MpegAudio
            | MediaFormat::Ac3
            | MediaFormat::WebVtt => PartContainer::Raw,
        };
        let segment_length = downloaded.bytes.len();
        let init_identity = downloaded
            .init
            .as_ref()
            .map(|(identity, _)| identity.as_str());
        let reason =
            if !writer.has_open_part() {
                Some(
                    self.core
                        .part_break_pending
                        .take()
                        .unwrap_or(if writer.is_fresh() {
                            PartStartReason::First
                        } else if self.last_media_sequence.is_none() {
                            PartStartReason::Restart
                        } else {
                            PartStartReason::Resume
                        }),
                )
            } else if let Some(pending_reason) = self.core.part_break_pending.take() {
                Some(pending_reason)
            } else if self
                .last_committed_discontinuity
                .is_some_and(|previous| previous != segment.discontinuity_sequence)
                || self
                    .last_committed_epoch
                    .is_some_and(|previous| previous != segment.epoch)
            {
                Some(PartStartReason::Discontinuity)
            } else if writer.current_init_identity() != init_identity
                || writer.current_container() != Some(container)
                || (container == PartContainer::Raw
                    && self.last_committed_format != Some(downloaded.format))
            {
                Some(PartStartReason::InitChanged)
            } else if let Some(summary) = writer.current_part_summary() {
                if self.config.maximum_part_bytes.is_some_and(|limit| {
                    summary.segments > 0 && summary.bytes + segment_length > limit
                }) {
                    Some(PartStartReason::SizeLimit)
                } else if self.config.maximum_part_seconds.is_some_and(|limit| {
                    summary.segments > 0 && summary.media_seconds + segment.duration_seconds > limit
                }) {
                    Some(PartStartReason::DurationLimit)
                } else {
                    None
                }
            } else {
                None
            };
        if let Some(reason) = reason {
            let init = downloaded
                .init
                .as_ref()
                .map(|(identity, bytes)| (identity.as_str(), bytes.as_ref()));
            let summary = writer.start_part(reason, container, init)?.clone();
            tracing::info!(track = %self.config.track_name, part = summary.number, ?reason, "part started");
            self.emit(TrackEvent::PartStarted {
                track: self.config.track_name.clone(),
                part: summary,
            });
        }
        Ok(())
    }
}

/// What a segment body must be: a fragment after its init, a subtitle cue file, or a
/// self-contained segment.
fn expectation_for(init: Option<&InitInfo>, subtitle_track: bool) -> MediaExpectation {
    match (init, subtitle_track) {
        (Some(_), _) => MediaExpectation::FragmentAfterInit,
        (None, true) => MediaExpectation::Subtitle,
        (None, false) => MediaExpectation::SelfContainedSegment,
    }
}

struct SegmentRequest {
    url: Url,
    byte_range: Option<ByteRange>,
    key: Option<SegmentKeyInfo>,
    init: Option<InitInfo>,
    deadline: Instant,
    spill: SpillTarget,
    expectation: MediaExpectation,
}

async fn download_segment(
    client: &HlsHttpClient,
    caches: &SharedCaches,
    key: SegmentKey,
    request: SegmentRequest,
    mut budget: BudgetedDownload<SegmentKey>,
    source: usize,
) -> DownloadResult {
    let mut fresh_key = false;
    let mut fresh_init = false;
    let result = download_segment_body(
        client,
        caches,
        &request,
        &mut budget,
        &mut fresh_key,
        &mut fresh_init,
    )
    .await
    .map(|mut downloaded| {
        downloaded.source = source;
        downloaded
    });
    DownloadResult {
        key,
        result,
        fresh_key,
        fresh_init,
    }
}

async fn download_segment_body(
    client: &HlsHttpClient,
    caches: &SharedCaches,
    request: &SegmentRequest,
    budget: &mut BudgetedDownload<SegmentKey>,
    fresh_key: &mut bool,
    fresh_init: &mut bool,
) -> Result<DownloadedSegment, HlsError> {
    let init = match &request.init {
        None => None,
        Some(init) => {
            let (bytes, fresh) = fetch_init(client, caches, init, request.deadline).await?;
            *fresh_init = fresh;
            let identity = format!("{}#{:016x}", init.identity, content_hash(&bytes));
            Some((identity, bytes))
        }
    };
    let fetched = client
        .fetch_budgeted_until(
            &request.url,
            ResourceKind::Segment,
            request.byte_range,
            request.deadline,
            Some(&mut *budget),
            Some(&request.spill),
        )
        .await?;
    let mut body = match &request.key {
        None => fetched.body,
        Some(key_info) => {
            let (key, fresh) = fetch_key(client, caches, &key_info.key_url).await?;
            *fresh_key = fresh;
            decrypt_body(&key, key_info, fetched.body, request)?
        }
    };
    // The first wall: nothing that is not media of the expected kind reaches a part.
    let checked = match &mut body {
        SegmentBody::Memory(bytes) => check_media_body(bytes, request.expectation),
        spilled => match spilled.spilled_file() {
            Some(Ok(file)) => check_media_file(file, request.expectation),
            Some(Err(error)) => Err(NotMediaReason(format!(
                "the spilled body could not be read: {error}"
            ))),
            None => Err(NotMediaReason("the body is missing".to_string())),
        },
    };
    let format = checked.map_err(|reason| HlsError::NotMedia {
        url: redact_url(&request.url),
        reason: reason.0,
    })?;
    Ok(DownloadedSegment {
        bytes: body,
        init,
        format,
        source: 0,
        _budget_charge: budget.take_charge(),
    })
}

/// Decrypts a segment body: in memory as it is, a spilled one from its file into another one.
fn decrypt_body(
    key: &[u8; 16],
    key_info: &SegmentKeyInfo,
    body: SegmentBody,
    request: &SegmentRequest,
) -> Result<SegmentBody, HlsError> {
    let decryption_error = |detail: String| HlsError::Decryption {
        url: redact_url(&request.url),
        detail,
    };
    match body {
        SegmentBody::Memory(encrypted) => {
            decrypt_aes128_cbc(key, &key_info.initialization_vector, &encrypted)
                .map(|plain| SegmentBody::Memory(Bytes::from(plain)))
                .map_err(|error| decryption_error(error.to_string()))
        }
        mut spilled => {
            let length = spilled.len();
            let io_error = |source: std::io::Error| {
                crate::segment_body::spill_error(source, &request.spill.directory, &request.url)
            };
            let mut plain = BodyAccumulator::new(Some(request.spill.clone()));
            let mut encrypted = spilled.reader().map_err(io_error)?;
            let mut sink = AccumulatorWriter(&mut plain);
            decrypt_aes128_cbc_stream(
                key,
                &key_info.initialization_vector,
                &mut encrypted,
                length,
                &mut sink,
            )
            .map_err(|error| match error {
                StreamDecryptionError::Io(source) => io_error(source),
                StreamDecryptionError::Decryption(error) => decryption_error(error.to_string()),
            })?;
            plain.finish().map_err(io_error)
        }
    }
}

/// Writes into a [`BodyAccumulator`] (spilling past its threshold).
struct AccumulatorWriter<'a>(&'a mut BodyAccumulator);

impl std::io::Write for AccumulatorWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.push(bytes)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn content_hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// The init section, from the cache or the origin (then checked to be `ftyp`/`moov`). The bool
/// says it came from the origin.
async fn fetch_init(
    client: &HlsHttpClient,
    caches: &SharedCaches,
    init: &InitInfo,
    deadline: Instant,
) -> Result<(Bytes, bool), HlsError> {
    let cached = || {
        caches
            .inits
            .lock()
            .ok()
            .and_then(|cache| cache.get(&init.identity))
    };
    if let Some(bytes) = cached() {
        return Ok((bytes, false));
    }
    // One fetch at a time: parallel downloads at the start wait for the first one's result.
    let _fetching = caches.init_fetch.lock().await;
    if let Some(bytes) = cached() {
        return Ok((bytes, false));
    }
    let refused = caches
        .refused_inits
        .lock()
        .ok()
        .and_then(|refused| refused.get(&init.identity));
    if let Some(limit_bytes) = refused {
        return Err(HlsError::TooLarge {
            url: redact_url(&init.url),
            what: "init segment",
            limit_bytes,
        });
    }
    let fetched = match client
        .fetch_until(&init.url, ResourceKind::Init, init.byte_range, deadline)
        .await
    {
        Ok(fetched) => fetched,
        Err(error) => {
            if let HlsError::TooLarge { limit_bytes, .. } = &error
                && let Ok(mut refused) = caches.refused_inits.lock()
            {
                refused.insert(init.identity.clone(), *limit_bytes);
            }
            return Err(error);
        }
    };
    check_media_body(&fetched.body, MediaExpectation::InitSegment).map_err(|reason| {
        HlsError::NotMedia {
            url: redact_url(&init.url),
            reason: format!("init segment: {}", reason.0),
        }
    })?;
    if let Ok(mut cache) = caches.inits.lock() {
        cache.insert(init.identity.clone(), fetched.body.clone());
    }
    Ok((fetched.body, true))
}

/// The AES key, from the cache or the origin. The bool says it came from the origin.
async fn fetch_key(
    client: &HlsHttpClient,
    caches: &SharedCaches,
    key_url: &Url,
) -> Result<([u8; 16], bool), HlsError> {
    let cached = || caches.keys.lock().ok().and_then(|cache| cache.get(key_url));
    if let Some(key) = cached() {
        return Ok((key, false));
    }
    let _fetching = caches.key_fetch.lock().await;
    if let Some(key) = cached() {
        return Ok((key, false));
    }
    let fetched = client.fetch(key_url, ResourceKind::Key, None).await?;
    let key: [u8; 16] = fetched
        .body
        .as_ref()
        .try_into()
        .map_err(|_| HlsError::InvalidKey {
            url: redact_url(key_url),
            length: fetched.body.len(),
        })?;
    if let Ok(mut cache) = caches.keys.lock() {
        cache.insert(key_url.clone(), key);
    }
    Ok((key, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_stay_bounded_under_key_rotation() {
        let limits = TrackLimits::default();
        let caches = SharedCaches::new(&limits);
        for index in 0..10_000u32 {
            let url = Url::parse(&format!("http://127.0.0.1/key-{index}.bin")).expect("url");
            if let Ok(mut keys) = caches.keys.lock() {
                keys.insert(url, [0u8; 16]);
            }
            if let Ok(mut inits) = caches.inits.lock() {
                inits.insert(format!("init-{index}"), Bytes::from_static(b"init"));
            }
        }
        assert_eq!(
            caches.sizes(),
            (limits.maximum_cached_keys, limits.maximum_cached_inits)
        );
        caches.clear();
        assert_eq!(caches.sizes(), (0, 0));
    }

    /// A full buffer of downloaded segments never starves the segment in front of it (its
    /// retry is what lets the buffer drain).
    #[tokio::test]
    async fn a_full_buffer_still_retries_its_head() {
        let directory = tempfile::tempdir().expect("tempdir");
        let config = TrackRecorderConfig::new(
            "main",
            Url::parse("http://127.0.0.1:9/live/media.m3u8").expect("url"),
            directory.path().to_path_buf(),
        );
        let client = HlsHttpClient::new(
            crate::NetworkPolicy::ALLOW_PRIVATE,
            crate::FetchLimits::default(),
        )
        .expect("client");
        let (events, _receiver) = mpsc::unbounded_channel();
        let mut state = TrackState::new(config, client, events, None);
        let now = Instant::now();
        let limit = state.config.limits.maximum_buffered_segments as u64;
        for sequence in 0..=limit {
            let segment = TrackedSegment {
                epoch: 0,
                media_sequence: sequence,
                discontinuity_sequence: 0,
                url: Url::parse(&format!("http://127.0.0.1:9/seg-{sequence}.ts")).expect("url"),
                uri_text: format!("seg-{sequence}.ts"),
                duration_seconds: 1.0,
                byte_range: None,
                key: None,
                init: None,
                deadline: now + Duration::from_secs(30),
                next_attempt_at: now,
                failed_attempts: u32::from(sequence == 0),
                status: if sequence == 0 {
                    SegmentStatus::Waiting
                } else {
                    SegmentStatus::Done(DownloadedSegment {
                        bytes: SegmentBody::Memory(Bytes::from(vec![0x47u8; 188])),
                        init: None,
                        format: MediaFormat::MpegTs,
                        source: 0,
                        _budget_charge: BudgetCharge::default(),
                    })
                },
                gap_counted: false,
                failure_reason: None,
                range_last_media_sequence: None,
                live_edge_at_start: false,
                program_date_time: None,
                listed_by: 0,
                source: 0,
                failures_by_source: Vec::new(),
            };
            state.core.pending.insert((0, sequence), segment);
        }
        let mut downloads = JoinSet::new();
        state.start_downloads(&mut downloads);
        assert!(matches!(
            state
                .core
                .pending
                .get(&(0, 0))
                .map(|segment| &segment.status),
            Some(SegmentStatus::InFlight)
        ));
        downloads.abort_all();
    }
}

/// The live state machine driven without a server (issue 11 item 4): random playlist reload
/// sequences go through `absorb_playlist`, downloads are decided at random (media, a network
/// failure, a body that is not media), then the commit order and the ledger are checked.
#[cfg(test)]
mod state_machine_properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Reload {
        /// How the first media sequence moves from the previous playlist.
        step: SequenceStep,
        segments: Vec<(String, bool)>,
        target_duration: String,
        end_list: bool,
        outcomes: Vec<u8>,
    }

    #[derive(Debug, Clone)]
    enum SequenceStep {
        Forward(u64),
        Back(u64),
        Jump(u64),
        Reset,
    }

    fn reload() -> impl Strategy<Value = Reload> {
        let duration = proptest::sample::select(vec![
            "1", "2.5", "0", "-1", "NaN", "inf", "1e20", "86400", "junk",
        ])
        .prop_map(str::to_string);
        let step = prop_oneof![
            4 => (0u64..4).prop_map(SequenceStep::Forward),
            1 => (1u64..6).prop_map(SequenceStep::Back),
            1 => prop_oneof![Just(2_000u64), Just(10_000_000_000_000u64), Just(u64::MAX / 2)]
                .prop_map(SequenceStep::Jump),
            1 => Just(SequenceStep::Reset),
        ];
        (
            step,
            proptest::collection::vec((duration.clone(), proptest::bool::weighted(0.15)), 0..8),
            duration,
            proptest::bool::weighted(0.05),
            proptest::collection::vec(0u8..10, 8),
        )
            .prop_map(
                |(step, segments, target_duration, end_list, outcomes)| Reload {
                    step,
                    segments,
                    target_duration,
                    end_list,
                    outcomes,
                },
            )
    }

    fn playlist_text(first_sequence: u64, reload: &Reload) -> String {
        let mut text = format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{first_sequence}\n",
            reload.target_duration
        );
        for (offset, (duration, discontinuity)) in reload.segments.iter().enumerate() {
            if *discontinuity {
                text.push_str("#EXT-X-DISCONTINUITY\n");
            }
            text.push_str(&format!(
                "#EXTINF:{duration},\nseg-{}.ts\n",
                first_sequence.wrapping_add(offset as u64)
            ));
        }
        if reload.end_list {
            text.push_str("#EXT-X-ENDLIST\n");
        }
        text
    }

    fn ts_body(sequence: u64) -> Bytes {
        let mut body = vec![0u8; 188 * 2];
        body[0] = 0x47;
        body[188] = 0x47;
        body[1..9].copy_from_slice(&sequence.to_be_bytes());
        Bytes::from(body)
    }

    fn run_reloads(reloads: &[Reload], maximum_duration: Option<Duration>) {
        let directory = tempfile::tempdir().expect("tempdir");
        let mut config = TrackRecorderConfig::new(
            "main",
            Url::parse("http://127.0.0.1:9/live/media.m3u8").expect("url"),
            directory.path().to_path_buf(),
        );
        config.maximum_duration = maximum_duration;
        config.limits.maximum_listed_gap_segments = 100;
        static CLIENT: std::sync::OnceLock<HlsHttpClient> = std::sync::OnceLock::new();
        let client = CLIENT
            .get_or_init(|| {
                HlsHttpClient::new(
                    crate::NetworkPolicy::ALLOW_PRIVATE,
                    crate::FetchLimits::default(),
                )
                .expect("client")
            })
            .clone();
        let (events, _receiver) = mpsc::unbounded_channel();
        let mut writer =
            PartWriter::open(directory.path(), "main", Duration::from_secs(60)).expect("writer");
        let mut state = TrackState::new(config, client, events, None);
        let mut first_sequence: u64 = 1_000;
        for (index, reload) in reloads.iter().enumerate() {
            first_sequence = match reload.step {
                SequenceStep::Forward(by) => first_sequence.saturating_add(by),
                SequenceStep::Back(by) => first_sequence.saturating_sub(by),
                SequenceStep::Jump(by) => first_sequence.saturating_add(by),
                SequenceStep::Reset => 0,
            };
            let text = playlist_text(first_sequence, reload);
            let Ok(Playlist::Media(playlist)) = crate::playlist::parse_playlist(&text) else {
                continue;
            };
            state
                .absorb_playlist(&playlist, index == 0)
                .expect("absorb");
            // Decide the fate of every segment waiting for a download.
            let waiting: Vec<SegmentKey> = state
                .core
                .pending
                .iter()
                .filter(|(_, segment)| matches!(segment.status, SegmentStatus::Waiting))
                .map(|(key, _)| *key)
                .collect();
            for (position, key) in waiting.into_iter().enumerate() {
                let choice = reload.outcomes.get(position % 8).copied().unwrap_or(0);
                let result = match choice {
                    0 => Err(HlsError::Network {
                        url: "seg".to_string(),
                        detail: "reset".to_string(),
                    }),
                    1 => Err(HlsError::NotMedia {
                        url: "seg".to_string(),
                        reason: "the body is an HLS playlist".to_string(),
                    }),
                    2 => Err(HlsError::Decryption {
                        url: "seg".to_string(),
                        detail: "bad padding".to_string(),
                    }),
                    _ => Ok(DownloadedSegment {
                        bytes: SegmentBody::Memory(ts_body(key.1)),
                        init: None,
                        format: MediaFormat::MpegTs,
                        source: 0,
                        _budget_charge: BudgetCharge::default(),
                    }),
                };
                if let Some(segment) = state.core.pending.get_mut(&key) {
                    segment.status = SegmentStatus::InFlight;
                }
                state.absorb_download(DownloadResult {
                    key,
                    result,
                    fresh_key: true,
                    fresh_init: true,
                });
            }
            state.give_up_expired();
            state.commit_ready(&mut writer).expect("commit");
        }
        state
            .commit_after_stop(&mut writer)
            .expect("commit after stop");
        assert!(state.core.pending.is_empty());
        let ledger_path = writer.ledger_path().to_path_buf();
        let parts = writer.finish().expect("finish");
        let records = read_ledger_records(&ledger_path).expect("ledger");

        // Strictly increasing (epoch, sequence) ranges: nothing twice, nothing out of order.
        let mut previous_end: Option<(u32, u64)> = None;
        for record in &records {
            let start = (record.entry.epoch, record.entry.media_sequence);
            if let Some(previous) = previous_end {
                assert!(start > previous, "{start:?} after {previous:?}");
            }
            previous_end = Some((record.entry.epoch, record.last_media_sequence()));
            assert!(record.entry.duration_seconds.is_finite());
            assert!(record.entry.duration_seconds >= 0.0);
        }
        let gap_segments: u64 = records
            .iter()
            .filter(|record| record.entry.state == SegmentState::Gap)
            .map(LedgerRecord::segment_count)
            .fold(0, u64::saturating_add);
        assert_eq!(state.progress.gap_segments, gap_segments);
        let ok = records
            .iter()
            .filter(|record| record.entry.state == SegmentState::Ok)
            .count() as u64;
        assert_eq!(state.progress.segments_written, ok);
        // The parts hold exactly the committed bodies, in order.
        let mut expected_bytes: u64 = 0;
        for record in records
            .iter()
            .filter(|record| record.entry.state == SegmentState::Ok)
        {
            expected_bytes += ts_body(record.entry.media_sequence).len() as u64;
        }
        let written: u64 = parts.iter().map(|part| part.bytes).sum();
        assert_eq!(written, expected_bytes);
        // Without a reload sequence with jumps the line count stays small: every line is one
        // sequence taken or one range.
        assert!(records.len() <= reloads.len() * (8 + 100) + 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn random_reload_sequences_keep_the_ledger_true(reloads in proptest::collection::vec(reload(), 1..25)) {
            run_reloads(&reloads, None);
        }

        #[test]
        fn random_reload_sequences_with_a_duration_limit(reloads in proptest::collection::vec(reload(), 1..25)) {
            run_reloads(&reloads, Some(Duration::from_secs(5)));
        }
    }
}
