//! The live state machine of one track, without IO (sans-IO, as quinn-proto is under quinn, or
//! mini-redis's frame parsing under its connection): which segments to take from a playlist, their
//! window deadlines, epochs and discontinuities, gap decisions, retries, the commit order, pause,
//! the reload schedule and the end conditions. It is driven by inputs, each with the time `now`
//! (a playlist was loaded, a download finished or failed, the owner paused or resumed, a timer
//! fired) and answers with decisions (these downloads start now, these segments are ready to be
//! committed in this order, a gap is known, reload after this long, wake at this instant, the
//! recording ends for this reason). It never reads the clock, the network or the disk:
//! [`crate::live`] is the IO driver around it (HTTP, decryption, the part writer, events).
//!
//! `B` is what a finished download holds (the driver's body and init; `()` in tests).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use streambot_core::RecordingEndReason;
use tokio::time::Instant;
use url::Url;

use crate::decrypt::initialization_vector_from_media_sequence;
use crate::error::HlsError;
use crate::ledger::{LedgerRecord, PartStartReason};
use crate::live::{StartFrom, TrackLimits};
use crate::playlist::{ByteRange, KeyMethod, MediaPlaylist, MediaSegment};
use crate::url_safety::redact_url_text;

/// Ordering key of a segment: epoch, then media sequence.
pub(crate) type SegmentKey = (u32, u64);

/// Longest span any deadline of this module is set ahead: durations from a playlist never make
/// an `Instant` overflow.
pub(crate) const LONGEST_DEADLINE: Duration = Duration::from_secs(86_400 * 7);

/// `base + seconds`, for seconds from outside: not finite or negative is 0, huge is capped.
pub(crate) fn instant_after_seconds(base: Instant, seconds: f64) -> Instant {
    let span = Duration::try_from_secs_f64(seconds.max(0.0))
        .unwrap_or(LONGEST_DEADLINE)
        .min(LONGEST_DEADLINE);
    instant_after(base, span)
}

/// `base + span`, capped so that it never overflows.
pub(crate) fn instant_after(base: Instant, span: Duration) -> Instant {
    base.checked_add(span.min(LONGEST_DEADLINE)).unwrap_or(base)
}

/// The first tick at or after `at` on a clock that ticks every `tick` from `origin`: reloads of
/// every recording in a process are aligned to one shared tick, so that a worker with hundreds of
/// recordings wakes a few times a second for all of them instead of once per reload (each
/// wake-up of an idle thread costs a context switch; BENCHMARKS.md, issue 14). A zero tick, or
/// an `at` before `origin`, leaves `at` as it is.
pub(crate) fn align_to_tick(at: Instant, origin: Instant, tick: Duration) -> Instant {
    let tick_nanos = tick.as_nanos();
    if tick_nanos == 0 || at < origin {
        return at;
    }
    let since_origin = at.duration_since(origin).as_nanos();
    let ticks = since_origin.div_ceil(tick_nanos);
    let aligned = ticks.saturating_mul(tick_nanos);
    match u64::try_from(aligned) {
        Ok(nanos) => origin
            .checked_add(Duration::from_nanos(nanos))
            .unwrap_or(at),
        Err(_) => at,
    }
}

/// A duration from a playlist as this module uses it: not finite or negative is 0 (the parser
/// already refuses what is over a day).
pub(crate) fn sane_duration(seconds: f64) -> f64 {
    if seconds.is_finite() && seconds > 0.0 {
        seconds.min(crate::playlist::MAXIMUM_BELIEVABLE_DURATION_SECONDS)
    } else {
        0.0
    }
}

#[derive(Debug, Clone)]
pub(crate) struct SegmentKeyInfo {
    pub(crate) key_url: Url,
    pub(crate) initialization_vector: [u8; 16],
}

#[derive(Debug, Clone)]
pub(crate) struct InitInfo {
    pub(crate) identity: String,
    pub(crate) url: Url,
    pub(crate) byte_range: Option<ByteRange>,
}

#[derive(Debug)]
pub(crate) enum SegmentStatus<B> {
    Waiting,
    InFlight,
    Done(B),
    Gap,
    Paused,
}

#[derive(Debug)]
pub(crate) struct TrackedSegment<B> {
    pub(crate) epoch: u32,
    pub(crate) media_sequence: u64,
    pub(crate) discontinuity_sequence: u64,
    pub(crate) url: Url,
    pub(crate) uri_text: String,
    pub(crate) duration_seconds: f64,
    pub(crate) byte_range: Option<ByteRange>,
    pub(crate) key: Option<SegmentKeyInfo>,
    pub(crate) init: Option<InitInfo>,
    pub(crate) deadline: Instant,
    pub(crate) next_attempt_at: Instant,
    pub(crate) failed_attempts: u32,
    pub(crate) status: SegmentStatus<B>,
    pub(crate) gap_counted: bool,
    /// Why the last attempt failed (the gap's reason when it comes to that).
    pub(crate) failure_reason: Option<String>,
    /// For a gap standing for a skipped range: its last media sequence.
    pub(crate) range_last_media_sequence: Option<u64>,
    /// The newest segment listed when a recording from the window's start began.
    pub(crate) live_edge_at_start: bool,
    /// `EXT-X-PROGRAM-DATE-TIME` of the segment, to find it in a backup numbered differently.
    pub(crate) program_date_time: Option<String>,
    /// The source (0: the original primary, 1..: its backups) whose playlist listed the
    /// segment: `url`, `key` and `init` are that playlist's.
    pub(crate) listed_by: usize,
    /// The source the next (or running) attempt asks.
    pub(crate) source: usize,
    /// The last failure on each source asked, by source (the gap's reason names them all).
    pub(crate) failures_by_source: Vec<(usize, String)>,
}

impl<B> TrackedSegment<B> {
    /// Media sequences this entry stands for.
    pub(crate) fn segment_count(&self) -> u64 {
        self.range_last_media_sequence.map_or(1, |last| {
            last.saturating_sub(self.media_sequence).saturating_add(1)
        })
    }
}

/// What a finished download holds in memory (for the buffer bound).
pub(crate) trait HeldBody {
    fn memory_bytes(&self) -> u64;
}

impl HeldBody for () {
    fn memory_bytes(&self) -> u64 {
        0
    }
}

/// The settings of a track the decisions depend on.
#[derive(Debug, Clone)]
pub(crate) struct CoreSettings {
    pub(crate) playlist_url: Url,
    pub(crate) live_edge_segments: usize,
    pub(crate) start_from: StartFrom,
    pub(crate) maximum_duration: Option<Duration>,
    pub(crate) parallel_downloads: usize,
    pub(crate) stall_timeout: Duration,
    pub(crate) limits: TrackLimits,
    /// Media playlists the segments can come from: 1 + the backups (redundant streams).
    pub(crate) source_count: usize,
}

/// The name of a source in the ledger and the events: `None` for the original primary (old
/// ledgers read the same), `backup-N` for the N-th backup.
pub(crate) fn source_name(source: usize) -> Option<String> {
    (source > 0).then(|| format!("backup-{source}"))
}

/// The name of a source in a gap's reason and a log line.
pub(crate) fn source_label(source: usize) -> String {
    source_name(source).unwrap_or_else(|| "primary".to_string())
}

/// The segment of a backup's playlist that is `media_sequence` of the primary: the one with the
/// same media sequence, unless both have a date-time (`EXT-X-PROGRAM-DATE-TIME`, carried forward
/// by the durations) and they disagree by more than half a segment (the backup numbers
/// differently): then the one whose date-time matches. `None` when the backup does not list it.
pub(crate) fn find_in_backup<'playlist>(
    backup: &'playlist MediaPlaylist,
    media_sequence: u64,
    program_date_time: Option<&str>,
    duration_seconds: f64,
) -> Option<&'playlist MediaSegment> {
    type Time = chrono::DateTime<chrono::FixedOffset>;
    let parse = |text: &str| chrono::DateTime::parse_from_rfc3339(text.trim()).ok();
    let wanted_time = program_date_time.and_then(parse);
    let tolerance_milliseconds = (sane_duration(duration_seconds).max(0.2) * 500.0) as i64;
    // Each segment's date-time: its own tag, or the previous one's plus its duration (RFC 8216
    // §4.4.4.6).
    let mut running: Option<Time> = None;
    let mut previous_duration = 0.0;
    let mut timed: Vec<(&MediaSegment, Option<Time>)> = Vec::with_capacity(backup.segments.len());
    for segment in &backup.segments {
        running = match segment.program_date_time.as_deref().and_then(parse) {
            Some(time) => Some(time),
            None => running.map(|time| {
                time + chrono::Duration::milliseconds((previous_duration * 1000.0) as i64)
            }),
        };
        previous_duration = sane_duration(segment.duration);
        timed.push((segment, running));
    }
    let time_matches = |offered: Option<Time>| -> Option<bool> {
        let wanted = wanted_time?;
        let offered = offered?;
        Some((offered - wanted).num_milliseconds().abs() <= tolerance_milliseconds)
    };
    if let Some((segment, offered)) = timed
        .iter()
        .find(|(segment, _)| segment.media_sequence == media_sequence)
        && time_matches(*offered) != Some(false)
    {
        return Some(segment);
    }
    wanted_time?;
    timed
        .iter()
        .find(|(_, offered)| time_matches(*offered) == Some(true))
        .map(|(segment, _)| *segment)
}

/// What the core decided that the driver must act on or tell.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CoreEvent {
    /// A segment (or a range) is lost: counted once, the moment it is known.
    GapKnown(KnownGap),
    /// The origin restarted its numbering: a new epoch (cached keys and inits are stale).
    NewEpoch {
        newest_media_sequence: u64,
        seen_media_sequence: u64,
    },
    /// A body failed in a way a stale key explains: fetch the key again.
    ForgetKey(Url),
    /// A body failed in a way a stale init explains: fetch the init again.
    ForgetInit(String),
}

/// A gap as the ledger and the events describe it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KnownGap {
    pub(crate) epoch: u32,
    pub(crate) media_sequence: u64,
    pub(crate) discontinuity_sequence: u64,
    pub(crate) duration_seconds: f64,
    pub(crate) uri_text: String,
    pub(crate) failed_attempts: u32,
    pub(crate) reason: Option<String>,
    pub(crate) segment_count: u64,
}

/// How a failed download attempt is classified (the driver knows the error; the core decides).
pub(crate) struct FailedAttempt<'a> {
    pub(crate) error: &'a HlsError,
    /// The key came from the origin during this attempt, not from the cache.
    pub(crate) fresh_key: bool,
    /// The init came from the origin during this attempt, not from the cache.
    pub(crate) fresh_init: bool,
}

/// The state machine of one track.
pub(crate) struct LiveCore<B> {
    pub(crate) settings: CoreSettings,
    pub(crate) pending: BTreeMap<SegmentKey, TrackedSegment<B>>,
    highest_seen: Option<SegmentKey>,
    resume_after: Option<SegmentKey>,
    current_epoch: u32,
    highest_discontinuity_sequence: u64,
    pub(crate) started_at: Instant,
    pub(crate) last_new_segment_at: Instant,
    pub(crate) end_list_seen: bool,
    pub(crate) taking_new_segments: bool,
    scheduled_media_seconds: f64,
    /// Discontinuities decided by identity: goes up by one for every new segment first seen with
    /// `EXT-X-DISCONTINUITY` before it (and on a new epoch), never because a tag slid out of the
    /// window or a packager does not write `EXT-X-DISCONTINUITY-SEQUENCE`. This is the
    /// `discontinuity_sequence` of the ledger.
    discontinuity_count: u64,
    /// When the last playlist was absorbed (bounds the seconds a skipped range can have lost).
    last_playlist_at: Instant,
    /// Why the next part starts, when the core knows it first (a new epoch, a resume).
    pub(crate) part_break_pending: Option<PartStartReason>,
    pub(crate) paused: bool,
    pub(crate) first_media_sequence: Option<u64>,
    target_duration_seconds: f64,
    events: Vec<CoreEvent>,
    /// The source whose playlist is loaded (0 until a switch).
    pub(crate) primary_source: usize,
    /// Since when every reload of the primary's playlist failed.
    playlist_failing_since: Option<Instant>,
    /// Seconds the last playlist listed (its window).
    window_seconds: f64,
    /// The identity (URI and byte range, hashed) of each segment the last accepted playlist
    /// listed once (its newest [`IDENTITY_WINDOW_SEGMENTS`]), with its media sequence there
    /// (`None`: listed twice). A reload whose newest
    /// segment is known here under another number is a lagging or differently numbered copy.
    last_listed_identities: HashMap<u64, Option<u64>>,
    /// A reload that would restart or jump the numbering, held back until the next reload says
    /// the same (a load balancer alternating between edges that number differently must not
    /// restart the recording on every reload).
    held_reload: Option<HeldReload>,
    /// The next playlist is a new source's (a switch to a backup): its numbering is taken as
    /// it comes.
    trust_next_playlist: bool,
}

/// A reload held back by [`LiveCore::absorb_playlist`] (see [`ReloadKind::Suspect`]).
struct HeldReload {
    playlist: MediaPlaylist,
    base_url: Url,
}

/// What a reload is, against what the recording has seen (players do the same: hls.js and
/// ExoPlayer ignore a playlist older than the one they hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReloadKind {
    /// Taken as it comes.
    Accepted,
    /// A lagging copy (a CDN edge behind another): nothing in it is new. Ignored: no new
    /// epoch, nothing fetched again, polled again.
    Stale,
    /// It would restart the numbering (far behind) or jump it forward further than the time
    /// since the last new segment explains: a real restart or jump says so again on the next
    /// reload, an edge numbering differently is followed by one that does not.
    Suspect,
}

/// How many segments more than twice the time since the last new segment explains a forward
/// jump may skip before the reload is [`ReloadKind::Suspect`].
const UNEXPLAINED_JUMP_SLACK_SEGMENTS: u64 = 3;

/// Segments at the end of a playlist compared by identity across reloads: a copy lagging
/// further than this is judged by its numbers alone (the work per reload stays small for a long
/// EVENT playlist).
const IDENTITY_WINDOW_SEGMENTS: usize = 256;

/// The newest [`IDENTITY_WINDOW_SEGMENTS`] segments of `playlist`, newest first.
fn recent_segments(playlist: &MediaPlaylist) -> impl Iterator<Item = &MediaSegment> {
    playlist
        .segments
        .iter()
        .rev()
        .take(IDENTITY_WINDOW_SEGMENTS)
}

/// The identity of a listed segment across reloads and edges: its URI and byte range, hashed.
fn segment_identity(segment: &MediaSegment) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    segment.uri.hash(&mut hasher);
    segment
        .byte_range
        .map(|range| (range.offset, range.length))
        .hash(&mut hasher);
    hasher.finish()
}

impl<B> LiveCore<B> {
    /// A track's state before its first playlist, continuing after `resumed_from` (the last
    /// ledger line of an earlier run in the same directory) when there is one.
    pub(crate) fn new(
        settings: CoreSettings,
        resumed_from: Option<&LedgerRecord>,
        now: Instant,
    ) -> Self {
        let resume_after =
            resumed_from.map(|record| (record.entry.epoch, record.last_media_sequence()));
        LiveCore {
            settings,
            pending: BTreeMap::new(),
            highest_seen: resume_after,
            resume_after,
            current_epoch: resume_after.map_or(0, |(epoch, _)| epoch),
            highest_discontinuity_sequence: 0,
            started_at: now,
            last_new_segment_at: now,
            end_list_seen: false,
            taking_new_segments: true,
            scheduled_media_seconds: 0.0,
            discontinuity_count: resumed_from
                .map_or(0, |record| record.entry.discontinuity_sequence),
            last_playlist_at: now,
            part_break_pending: None,
            paused: false,
            first_media_sequence: None,
            target_duration_seconds: 2.0,
            events: Vec::new(),
            primary_source: 0,
            playlist_failing_since: None,
            window_seconds: 0.0,
            last_listed_identities: HashMap::new(),
            held_reload: None,
            trust_next_playlist: false,
        }
    }

    /// The decisions made since the last call, in order.
    pub(crate) fn drain_events(&mut self) -> Vec<CoreEvent> {
        std::mem::take(&mut self.events)
    }

    pub(crate) fn target_duration(&self) -> Duration {
        let seconds = if self.target_duration_seconds.is_finite() {
            self.target_duration_seconds.clamp(0.1, 60.0)
        } else {
            2.0
        };
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::from_secs(2))
    }

    /// The key at the head of the commit order.
    pub(crate) fn head(&self) -> Option<SegmentKey> {
        self.pending.first_key_value().map(|(key, _)| *key)
    }

    /// When to load the playlist again after a load at its due time: the target duration when it
    /// listed something new, half of it when not (RFC 8216 §6.3.4).
    pub(crate) fn reload_interval(&self, listed_anything_new: bool) -> Duration {
        if listed_anything_new {
            self.target_duration()
        } else {
            self.target_duration() / 2
        }
    }

    /// How long to wait after the `consecutive_failures`-th failed reload.
    pub(crate) fn playlist_retry_after(&self, consecutive_failures: u32) -> Duration {
        streambot_core::backoff::ExponentialBackoff::new(
            Duration::from_millis(250),
            Duration::from_secs(16),
        )
        .delay_after_failed_attempt(consecutive_failures.saturating_add(1))
        .min(self.target_duration())
    }

    /// Takes in a freshly loaded playlist (relative URIs resolve against `base_url`, where it
    /// really came from). Returns whether it listed anything new.
    ///
    /// A stale reload (a lagging edge's copy) changes nothing; a reload that would restart or
    /// jump the numbering is held until the next reload confirms it (then both are taken in, in
    /// order), see [`ReloadKind`].
    pub(crate) fn absorb_playlist(
        &mut self,
        playlist: &MediaPlaylist,
        base_url: &Url,
        is_first: bool,
        now: Instant,
    ) -> Result<bool, HlsError> {
        self.playlist_failing_since = None;
        match self.classify_reload(playlist, is_first, now) {
            ReloadKind::Accepted => {
                self.held_reload = None;
                self.absorb_accepted_playlist(playlist, base_url, is_first, now)
            }
            ReloadKind::Stale => {
                self.held_reload = None;
                Ok(false)
            }
            ReloadKind::Suspect => {
                let confirmed = self
                    .held_reload
                    .as_ref()
                    .is_some_and(|held| reload_confirms(&held.playlist, playlist));
                if !confirmed {
                    self.held_reload = Some(HeldReload {
                        playlist: playlist.clone(),
                        base_url: base_url.clone(),
                    });
                    return Ok(false);
                }
                let mut listed_anything_new = false;
                if let Some(held) = self.held_reload.take() {
                    listed_anything_new |=
                        self.absorb_accepted_playlist(&held.playlist, &held.base_url, false, now)?;
                }
                listed_anything_new |=
                    self.absorb_accepted_playlist(playlist, base_url, false, now)?;
                Ok(listed_anything_new)
            }
        }
    }

    /// What a reload is against what the recording has seen (see [`ReloadKind`]).
    fn classify_reload(
        &self,
        playlist: &MediaPlaylist,
        is_first: bool,
        now: Instant,
    ) -> ReloadKind {
        if is_first || self.trust_next_playlist {
            return ReloadKind::Accepted;
        }
        let (Some(oldest), Some(newest)) = (playlist.segments.first(), playlist.segments.last())
        else {
            return ReloadKind::Accepted;
        };
        let Some((seen_epoch, seen_sequence)) = self.highest_seen else {
            return ReloadKind::Accepted;
        };
        if seen_epoch != self.current_epoch {
            return ReloadKind::Accepted;
        }
        // By identity: the newest segment was listed by the last accepted playlist under another
        // number, and every segment both list is off by the same amount (an edge numbering
        // differently, or lagging): nothing in it is new. Offsets that disagree are URIs reused
        // by the stream itself (a loop), not a copy: decided by the numbers below.
        let newest_identity = segment_identity(newest);
        if let Some(Some(known_sequence)) = self.last_listed_identities.get(&newest_identity)
            && recent_segments(playlist)
                .filter(|segment| segment_identity(segment) == newest_identity)
                .count()
                == 1
        {
            let offset = i128::from(*known_sequence) - i128::from(newest.media_sequence);
            let one_offset = recent_segments(playlist).all(|segment| {
                match self.last_listed_identities.get(&segment_identity(segment)) {
                    Some(Some(known)) => {
                        i128::from(*known) - i128::from(segment.media_sequence) == offset
                    }
                    _ => true,
                }
            });
            if one_offset && (offset != 0 || newest.media_sequence < seen_sequence) {
                return ReloadKind::Stale;
            }
        }
        if newest.media_sequence < seen_sequence {
            let far_behind = newest
                .media_sequence
                .saturating_add(playlist.segments.len() as u64)
                < seen_sequence;
            let discontinuity_advanced =
                newest.discontinuity_sequence > self.highest_discontinuity_sequence;
            return if far_behind || discontinuity_advanced {
                ReloadKind::Suspect
            } else {
                ReloadKind::Stale
            };
        }
        // A forward jump: the sequences skipped over must have been published since the last
        // new segment (at twice the rate the listed durations say, plus a few).
        if let Some(skipped) = oldest
            .media_sequence
            .checked_sub(seen_sequence.saturating_add(1))
            .filter(|skipped| *skipped > 0)
        {
            let listed_seconds: f64 = playlist
                .segments
                .iter()
                .map(|segment| sane_duration(segment.duration))
                .sum();
            let average_seconds = (listed_seconds / playlist.segments.len() as f64)
                .max(self.settings.limits.minimum_counted_segment_seconds)
                .max(0.1);
            let quiet_seconds = now.duration_since(self.last_new_segment_at).as_secs_f64();
            let explained = (2.0 * quiet_seconds / average_seconds).ceil().min(1e15) as u64
                + UNEXPLAINED_JUMP_SLACK_SEGMENTS;
            if skipped > explained {
                return ReloadKind::Suspect;
            }
        }
        ReloadKind::Accepted
    }

    /// Takes in a playlist that is not stale (or a held one, confirmed).
    fn absorb_accepted_playlist(
        &mut self,
        playlist: &MediaPlaylist,
        base_url: &Url,
        is_first: bool,
        now: Instant,
    ) -> Result<bool, HlsError> {
        self.trust_next_playlist = false;
        self.last_listed_identities.clear();
        for segment in recent_segments(playlist) {
            self.last_listed_identities
                .entry(segment_identity(segment))
                .and_modify(|known| *known = None)
                .or_insert(Some(segment.media_sequence));
        }
        if playlist.target_duration > 0.0 && playlist.target_duration.is_finite() {
            self.target_duration_seconds = playlist.target_duration;
        }
        if playlist.end_list {
            self.end_list_seen = true;
        }
        let previous_playlist_at = std::mem::replace(&mut self.last_playlist_at, now);
        self.window_seconds = playlist
            .segments
            .iter()
            .map(|segment| sane_duration(segment.duration))
            .sum();
        let Some(newest) = playlist.segments.last() else {
            return Ok(false);
        };
        let segment_count = playlist.segments.len();
        let newest_media_sequence = newest.media_sequence;
        let newest_discontinuity = newest.discontinuity_sequence;

        // Sequence reset: the whole window is older than what we had, or the discontinuity
        // sequence moved on while the media sequence went back.
        if let Some((seen_epoch, seen_sequence)) = self.highest_seen
            && seen_epoch == self.current_epoch
            && newest_media_sequence < seen_sequence
        {
            let far_behind =
                newest_media_sequence.saturating_add(segment_count as u64) < seen_sequence;
            let discontinuity_advanced = newest_discontinuity > self.highest_discontinuity_sequence;
            if far_behind || discontinuity_advanced {
                self.events.push(CoreEvent::NewEpoch {
                    newest_media_sequence,
                    seen_media_sequence: seen_sequence,
                });
                self.current_epoch = self.current_epoch.saturating_add(1);
                self.discontinuity_count = self.discontinuity_count.saturating_add(1);
                self.part_break_pending = Some(PartStartReason::Discontinuity);
            } else {
                // A stale copy of the playlist (a lagging CDN node): nothing new in it.
                return Ok(false);
            }
        }
        self.highest_discontinuity_sequence = self
            .highest_discontinuity_sequence
            .max(newest_discontinuity);

        // Which segments are new, and from where a fresh recording starts.
        let first_index_to_take = if is_first {
            match self.resume_after {
                Some((epoch, sequence)) if epoch == self.current_epoch => playlist
                    .segments
                    .iter()
                    .position(|segment| segment.media_sequence > sequence)
                    .unwrap_or(segment_count),
                _ if playlist.end_list => 0,
                _ if self.settings.start_from == StartFrom::WindowStart => 0,
                _ => segment_count.saturating_sub(self.settings.live_edge_segments.max(1)),
            }
        } else {
            0
        };
        // From the window's start: the newest segment listed now is where "live" began.
        let live_edge_index = (is_first
            && self.settings.start_from == StartFrom::WindowStart
            && self.resume_after.is_none()
            && !playlist.end_list)
            .then(|| segment_count.saturating_sub(1));

        // Remaining time in the window of each listed segment: the sum of durations up to it.
        let mut seconds_until_leaving = 0.0;
        let mut listed_anything_new = false;
        let mut previous_key_in_playlist: Option<u64> = None;
        let target = self.target_duration();
        for (index, segment) in playlist.segments.iter().enumerate() {
            seconds_until_leaving += sane_duration(segment.duration);
            let key = (self.current_epoch, segment.media_sequence);
            let deadline = instant_after(instant_after_seconds(now, seconds_until_leaving), target);
            if let Some(tracked) = self.pending.get_mut(&key) {
                // Still listed: it stays retrievable at least this long. Not in a finished
                // playlist (ENDLIST): nothing slides out of it, so every reload would push a
                // segment that always fails out again, for ever.
                if !playlist.end_list {
                    tracked.deadline = tracked.deadline.max(deadline);
                }
                previous_key_in_playlist = Some(segment.media_sequence);
                continue;
            }
            let is_new = match self.highest_seen {
                Some(seen) => key > seen,
                None => true,
            };
            if !is_new || index < first_index_to_take {
                previous_key_in_playlist = Some(segment.media_sequence);
                continue;
            }
            // Whether a discontinuity stands before this segment is decided now, once: by the
            // tag, for a segment after one already seen (not for the first one taken).
            let is_first_taken = self.highest_seen.is_none();
            if segment.discontinuity && !is_first_taken {
                self.discontinuity_count = self.discontinuity_count.saturating_add(1);
            }
            // Sequences between what we had and this one were never listed to us: gaps.
            let gap_from = match self.highest_seen {
                Some((epoch, sequence)) if epoch == self.current_epoch => {
                    Some(sequence.saturating_add(1))
                }
                _ => None,
            };
            let gap_from = match (gap_from, previous_key_in_playlist) {
                (Some(from), Some(previous)) => Some(from.max(previous.saturating_add(1))),
                (from, _) => from,
            };
            if let Some(from) = gap_from
                && from < segment.media_sequence
            {
                let missing = segment.media_sequence - from;
                if missing <= self.settings.limits.maximum_listed_gap_segments {
                    for missing_sequence in from..segment.media_sequence {
                        self.record_unlisted_gap(missing_sequence, missing_sequence, None, now);
                    }
                } else {
                    // One line for the whole range, whatever its width. Its seconds are what
                    // could have been lost: the wall time since the previous playlist.
                    let seconds = (missing as f64 * self.target_duration_seconds).min(
                        now.duration_since(previous_playlist_at).as_secs_f64()
                            + self.target_duration_seconds,
                    );
                    self.record_unlisted_gap(from, segment.media_sequence - 1, Some(seconds), now);
                }
            }
            previous_key_in_playlist = Some(segment.media_sequence);
            self.highest_seen = Some(key);
            listed_anything_new = true;
            self.last_new_segment_at = now;
            if !self.taking_new_segments {
                continue;
            }
            if let Some(maximum) = self.settings.maximum_duration
                && self.scheduled_media_seconds >= maximum.as_secs_f64()
            {
                self.taking_new_segments = false;
                continue;
            }
            let mut tracked = self.track_segment(segment, base_url, key, deadline, now)?;
            tracked.live_edge_at_start = live_edge_index == Some(index);
            // Zero-length segments still count: they cannot make a recording endless.
            self.scheduled_media_seconds += tracked
                .duration_seconds
                .max(self.settings.limits.minimum_counted_segment_seconds);
            if self.first_media_sequence.is_none() {
                self.first_media_sequence = Some(segment.media_sequence);
            }
            self.pending.insert(key, tracked);
        }
        Ok(listed_anything_new)
    }

    fn track_segment(
        &self,
        segment: &MediaSegment,
        base_url: &Url,
        key: SegmentKey,
        deadline: Instant,
        now: Instant,
    ) -> Result<TrackedSegment<B>, HlsError> {
        let (url, key_info, mut init) = segment_locations(segment, base_url)?;
        // An init is cached for one span between discontinuities: a packager that goes on with
        // its playlist after a restart rewrites `init.mp4` behind the same URI (issue 17).
        if let Some(init) = &mut init {
            init.identity = format!(
                "{}#span-{}-{}",
                init.identity, key.0, self.discontinuity_count
            );
        }
        Ok(TrackedSegment {
            epoch: key.0,
            media_sequence: segment.media_sequence,
            discontinuity_sequence: self.discontinuity_count,
            url,
            uri_text: redact_url_text(&segment.uri),
            duration_seconds: sane_duration(segment.duration),
            byte_range: segment.byte_range,
            key: key_info,
            init,
            deadline,
            next_attempt_at: now,
            failed_attempts: 0,
            status: if self.paused {
                SegmentStatus::Paused
            } else {
                SegmentStatus::Waiting
            },
            gap_counted: false,
            failure_reason: None,
            range_last_media_sequence: None,
            live_edge_at_start: false,
            program_date_time: segment.program_date_time.clone(),
            listed_by: self.primary_source,
            source: self.primary_source,
            failures_by_source: Vec::new(),
        })
    }

    /// Media sequences `first..=last` that were never listed to us: known lost now, committed in
    /// order later. One entry however wide the range (`seconds` then says what it lost).
    fn record_unlisted_gap(&mut self, first: u64, last: u64, seconds: Option<f64>, now: Instant) {
        let media_sequence = first;
        let segment_count = last.saturating_sub(first).saturating_add(1);
        let mut segment = TrackedSegment {
            epoch: self.current_epoch,
            media_sequence,
            discontinuity_sequence: self.discontinuity_count,
            url: self.settings.playlist_url.clone(),
            uri_text: String::new(),
            duration_seconds: seconds.unwrap_or(self.target_duration_seconds),
            byte_range: None,
            key: None,
            init: None,
            deadline: now,
            next_attempt_at: now,
            failed_attempts: 0,
            status: SegmentStatus::Gap,
            gap_counted: false,
            failure_reason: Some(if segment_count > 1 {
                format!("{segment_count} segments skipped")
            } else {
                "never listed in a playlist we loaded".to_string()
            }),
            range_last_media_sequence: (segment_count > 1).then_some(last),
            live_edge_at_start: false,
            program_date_time: None,
            listed_by: self.primary_source,
            source: self.primary_source,
            failures_by_source: Vec::new(),
        };
        if self.paused {
            segment.status = SegmentStatus::Paused;
        } else {
            self.count_gap(&mut segment);
        }
        self.pending
            .insert((self.current_epoch, media_sequence), segment);
    }

    /// Counts a gap the moment it is known (once per segment).
    pub(crate) fn count_gap(&mut self, segment: &mut TrackedSegment<B>) {
        if segment.gap_counted {
            return;
        }
        segment.gap_counted = true;
        self.events.push(CoreEvent::GapKnown(KnownGap {
            epoch: segment.epoch,
            media_sequence: segment.media_sequence,
            discontinuity_sequence: segment.discontinuity_sequence,
            duration_seconds: segment.duration_seconds,
            uri_text: segment.uri_text.clone(),
            failed_attempts: segment.failed_attempts,
            reason: segment.failure_reason.clone(),
            segment_count: segment.segment_count(),
        }));
    }

    /// A segment that failed and whose window deadline has passed is a gap.
    pub(crate) fn give_up_expired(&mut self, now: Instant) {
        let expired: Vec<SegmentKey> = self
            .pending
            .iter()
            .filter(|(_, segment)| {
                matches!(segment.status, SegmentStatus::Waiting)
                    && now >= segment.deadline
                    && segment.failed_attempts > 0
            })
            .map(|(key, _)| *key)
            .collect();
        for key in expired {
            if let Some(mut segment) = self.pending.remove(&key) {
                segment.status = SegmentStatus::Gap;
                self.count_gap(&mut segment);
                self.pending.insert(key, segment);
            }
        }
    }

    /// A download finished with a body: ready to be committed in order.
    pub(crate) fn download_succeeded(&mut self, key: SegmentKey, body: B) {
        if let Some(segment) = self.pending.get_mut(&key) {
            segment.status = SegmentStatus::Done(body);
        }
    }

    /// A download attempt failed: retried with backoff, at once after dropping a stale key or
    /// init, or a gap when trying again cannot help.
    pub(crate) fn download_failed(
        &mut self,
        key: SegmentKey,
        attempt: FailedAttempt<'_>,
        now: Instant,
    ) {
        let target = self.target_duration();
        let paused = self.paused;
        let Some(segment) = self.pending.get_mut(&key) else {
            return;
        };
        let error = attempt.error;
        segment.failed_attempts += 1;
        let failed_source = segment.source;
        segment
            .failures_by_source
            .retain(|(source, _)| *source != failed_source);
        segment
            .failures_by_source
            .push((failed_source, gap_reason(error)));
        segment
            .failures_by_source
            .sort_by_key(|(source, _)| *source);
        segment.failure_reason = Some(combined_reason(&segment.failures_by_source));
        // With backups, the next attempt asks the next source (by media sequence there): what
        // the primary cannot deliver before its deadline may come from a backup.
        let source_count = self.settings.source_count.max(1);
        segment.source = (failed_source + 1) % source_count;
        // With backups nothing is permanent: another source may deliver before the deadline.
        let mut permanent = source_count == 1
            && matches!(
                error,
                HlsError::UrlRefused(_)
                    | HlsError::TooLarge { .. }
                    | HlsError::InvalidKey { .. }
                    | HlsError::UnsupportedEncryption { .. }
            );
        let mut retry_at_once = false;
        // A body that does not decrypt or is not media may come from a stale key or init (the
        // packager restarted behind the same URIs): fetch them again. With fresh ones it is the
        // segment itself: a decryption failure is then a gap at once.
        let suspect = matches!(
            error,
            HlsError::Decryption { .. } | HlsError::NotMedia { .. }
        );
        if suspect {
            let mut refreshed = false;
            if let Some(key_info) = &segment.key
                && !attempt.fresh_key
            {
                self.events
                    .push(CoreEvent::ForgetKey(key_info.key_url.clone()));
                refreshed = true;
            }
            if let Some(init) = &segment.init
                && !attempt.fresh_init
            {
                self.events
                    .push(CoreEvent::ForgetInit(init.identity.clone()));
                refreshed = true;
            }
            if refreshed {
                retry_at_once = true;
            } else if matches!(error, HlsError::Decryption { .. }) && source_count == 1 {
                segment.failure_reason = Some("decryption failed".to_string());
                permanent = true;
            }
        }
        if permanent {
            segment.status = SegmentStatus::Gap;
            let Some(mut segment_to_count) = self.pending.remove(&key) else {
                return;
            };
            self.count_gap(&mut segment_to_count);
            self.pending.insert(key, segment_to_count);
            return;
        }
        let backoff = if retry_at_once {
            Duration::ZERO
        } else {
            streambot_core::backoff::ExponentialBackoff::new(
                Duration::from_millis(200),
                Duration::from_millis(6400),
            )
            .delay_after_failed_attempt(segment.failed_attempts.saturating_add(1))
            .min((target / 2).max(Duration::from_millis(500)))
        };
        segment.next_attempt_at = now + backoff;
        segment.status = if paused {
            SegmentStatus::Paused
        } else {
            SegmentStatus::Waiting
        };
    }

    /// A reload of the primary's playlist failed.
    pub(crate) fn playlist_load_failed(&mut self, now: Instant) {
        self.playlist_failing_since.get_or_insert(now);
    }

    /// How long every reload of the primary may fail before the recording switches to a backup:
    /// half the window the last playlist listed (at least one target duration), so that what
    /// was published during the outage is still in the backup's window at the switch.
    pub(crate) fn switch_after(&self) -> Duration {
        let half_window = Duration::try_from_secs_f64(self.window_seconds / 2.0)
            .unwrap_or(Duration::ZERO)
            .min(LONGEST_DEADLINE);
        half_window.max(self.target_duration())
    }

    /// The backup to switch to now, when the primary has been gone (every reload failed) for
    /// [`Self::switch_after`] and there is a backup.
    pub(crate) fn switch_due(&self, now: Instant) -> Option<usize> {
        let source_count = self.settings.source_count;
        let failing_since = self.playlist_failing_since?;
        (source_count > 1 && now.duration_since(failing_since) >= self.switch_after())
            .then(|| (self.primary_source + 1) % source_count)
    }

    /// The backup `to` becomes the primary: its playlist is loaded from now on, and the segments
    /// waiting on the old one are asked of it next. Another switch comes after the same span if
    /// it is gone too.
    pub(crate) fn switch_primary(&mut self, to: usize, now: Instant) {
        let previous = self.primary_source;
        self.primary_source = to;
        self.playlist_failing_since = Some(now);
        self.trust_next_playlist = true;
        for segment in self.pending.values_mut() {
            if segment.source == previous
                && matches!(
                    segment.status,
                    SegmentStatus::Waiting | SegmentStatus::Paused
                )
            {
                segment.source = to;
            }
        }
    }

    /// Takes every leading segment whose fate is known, in commit order.
    pub(crate) fn take_ready(&mut self) -> Vec<(TrackedSegment<B>, SegmentStatus<B>)> {
        let mut ready = Vec::new();
        while let Some(mut entry) = self.pending.first_entry() {
            let is_ready = matches!(
                entry.get().status,
                SegmentStatus::Done(_) | SegmentStatus::Gap | SegmentStatus::Paused
            );
            if !is_ready {
                break;
            }
            let status = std::mem::replace(&mut entry.get_mut().status, SegmentStatus::Gap);
            ready.push((entry.remove(), status));
        }
        ready
    }

    /// When the recording ends (stop, `--for`, stall): every segment it had taken, in order;
    /// those not downloaded are gaps with the reason, so that every sequence published inside the
    /// recording's span gets its ledger line.
    pub(crate) fn take_all_at_stop(&mut self) -> Vec<(TrackedSegment<B>, SegmentStatus<B>)> {
        let pending = std::mem::take(&mut self.pending);
        pending
            .into_values()
            .map(|mut segment| {
                let status = std::mem::replace(&mut segment.status, SegmentStatus::Gap);
                let status = match status {
                    SegmentStatus::Done(_) | SegmentStatus::Paused | SegmentStatus::Gap => status,
                    SegmentStatus::Waiting | SegmentStatus::InFlight => {
                        if segment.failure_reason.is_none() {
                            segment.failure_reason =
                                Some("the recording ended before it was downloaded".to_string());
                        }
                        SegmentStatus::Gap
                    }
                };
                (segment, status)
            })
            .collect()
    }

    /// The owner paused: segments not yet started are recorded as a pause.
    pub(crate) fn pause(&mut self) {
        if !self.paused {
            self.paused = true;
            for segment in self.pending.values_mut() {
                if matches!(segment.status, SegmentStatus::Waiting) {
                    segment.status = SegmentStatus::Paused;
                }
            }
        }
    }

    /// The owner resumed: returns true when it was paused (the driver closes the part).
    pub(crate) fn resume(&mut self, now: Instant) -> bool {
        if !self.paused {
            return false;
        }
        self.paused = false;
        self.part_break_pending = Some(PartStartReason::Resume);
        self.last_new_segment_at = now;
        true
    }

    /// Seconds without a new segment, when that is the stall timeout or more (not while paused).
    pub(crate) fn stalled(&self, now: Instant) -> Option<u64> {
        let quiet = now.duration_since(self.last_new_segment_at);
        (!self.paused && quiet >= self.settings.stall_timeout).then_some(quiet.as_secs())
    }

    /// The duration limit plus two target durations of slack has passed.
    pub(crate) fn duration_over(&self, now: Instant) -> bool {
        self.settings.maximum_duration.is_some_and(|maximum| {
            now.duration_since(self.started_at)
                >= maximum.saturating_add(self.target_duration() * 2)
        })
    }

    /// How the recording ends by itself once nothing is pending: the stream ended, or no new
    /// segment is taken (the duration limit).
    pub(crate) fn finished(&self) -> Option<RecordingEndReason> {
        let ends_by_itself = self.end_list_seen || !self.taking_new_segments;
        if !self.pending.is_empty() || !ends_by_itself {
            return None;
        }
        Some(if self.end_list_seen && self.taking_new_segments {
            RecordingEndReason::StreamEnded
        } else {
            RecordingEndReason::DurationReached
        })
    }

    /// The next instant something is due without any input: the reload, the stop grace, a
    /// segment's deadline or retry, the stall timeout, the duration limit.
    pub(crate) fn next_wake(
        &self,
        next_reload_at: Instant,
        stop_deadline: Option<Instant>,
        in_flight: usize,
    ) -> Instant {
        let mut wake = next_reload_at;
        if let Some(deadline) = stop_deadline {
            wake = wake.min(deadline);
        }
        for segment in self.pending.values() {
            if matches!(segment.status, SegmentStatus::Waiting) {
                wake = wake.min(segment.deadline);
                if in_flight < self.settings.parallel_downloads {
                    wake = wake.min(segment.next_attempt_at);
                }
            }
        }
        if !self.paused {
            wake = wake.min(instant_after(
                self.last_new_segment_at,
                self.settings.stall_timeout,
            ));
        }
        if let Some(maximum) = self.settings.maximum_duration {
            wake = wake.min(instant_after(
                self.started_at,
                maximum.saturating_add(self.target_duration() * 2),
            ));
        }
        wake
    }
}

impl<B: HeldBody> LiveCore<B> {
    /// The downloads to start now, with `in_flight` running: each marked in flight, with its
    /// whole-request deadline (the moment it leaves the window, within bounds).
    pub(crate) fn downloads_to_start(
        &mut self,
        now: Instant,
        in_flight: usize,
    ) -> Vec<(SegmentKey, Instant)> {
        let mut started = Vec::new();
        if self.paused {
            return started;
        }
        let limits = self.settings.limits;
        // Bytes downloaded but not committed are bounded: while the head of the line is pending,
        // at most this much waits behind it, then no new download starts.
        // Segments before the last buffered one are what holds the buffer up: they may always
        // start (within `parallel_downloads`), or a full buffer would starve its own head.
        let (mut buffered_segments, mut buffered_bytes) = (0usize, 0u64);
        let mut last_buffered: Option<SegmentKey> = None;
        for (key, segment) in &self.pending {
            if let SegmentStatus::Done(body) = &segment.status {
                buffered_segments += 1;
                buffered_bytes = buffered_bytes.saturating_add(body.memory_bytes());
                last_buffered = Some(*key);
            }
        }
        let head_of_commit_order = self.head();
        let mut in_flight = in_flight;
        for (key, segment) in self.pending.iter_mut() {
            // The head may always start, even past `parallel_downloads`: the downloads in flight
            // behind it may be waiting for budget that only its commit gives back.
            let is_head = head_of_commit_order == Some(*key);
            if in_flight >= self.settings.parallel_downloads && !is_head {
                break;
            }
            let buffer_full = buffered_segments + in_flight
                >= limits.maximum_buffered_segments.max(1)
                || buffered_bytes >= limits.maximum_buffered_bytes;
            let holds_up_the_buffer = last_buffered.is_some_and(|last| *key < last);
            if buffer_full && !holds_up_the_buffer {
                break;
            }
            if !matches!(segment.status, SegmentStatus::Waiting) || segment.next_attempt_at > now {
                continue;
            }
            segment.status = SegmentStatus::InFlight;
            in_flight += 1;
            let request_deadline = segment
                .deadline
                .max(instant_after(now, limits.minimum_segment_request_time))
                .min(instant_after(now, limits.maximum_segment_request_time));
            started.push((*key, request_deadline));
        }
        started
    }
}

/// A suspect reload says the same as the one held before it: its numbering goes on from the held
/// one's (the same window, or the next segments), not from another edge's.
fn reload_confirms(held: &MediaPlaylist, current: &MediaPlaylist) -> bool {
    let (Some(held_newest), Some(current_oldest), Some(current_newest)) = (
        held.segments.last(),
        current.segments.first(),
        current.segments.last(),
    ) else {
        return false;
    };
    held_newest.media_sequence <= current_newest.media_sequence
        && current_oldest.media_sequence
            <= held_newest
                .media_sequence
                .saturating_add(1 + UNEXPLAINED_JUMP_SLACK_SEGMENTS)
}

/// Where a listed segment's bytes, key and init section are, against the URL its playlist came
/// from (the primary's, or a backup's).
pub(crate) fn segment_locations(
    segment: &MediaSegment,
    base_url: &Url,
) -> Result<(Url, Option<SegmentKeyInfo>, Option<InitInfo>), HlsError> {
    let url = base_url
        .join(&segment.uri)
        .map_err(|error| HlsError::Playlist {
            url: crate::url_safety::redact_url(base_url),
            error: crate::playlist::PlaylistParseError::InvalidTag {
                line: 0,
                tag: "segment URI".to_string(),
                reason: format!("{:?}: {error}", redact_url_text(&segment.uri)),
            },
        })?;
    let key_info = match &segment.key {
        None => None,
        Some(key) => match &key.method {
            KeyMethod::None => None,
            KeyMethod::Aes128 => {
                if let Some(format) = &key.key_format
                    && format != "identity"
                {
                    return Err(HlsError::UnsupportedEncryption {
                        method: format!("AES-128 with KEYFORMAT {format}"),
                    });
                }
                let Some(uri) = &key.uri else {
                    return Err(HlsError::UnsupportedEncryption {
                        method: "AES-128 without a key URI".to_string(),
                    });
                };
                let key_url = base_url
                    .join(uri)
                    .map_err(|_| HlsError::UnsupportedEncryption {
                        method: format!(
                            "AES-128 with an unusable key URI {:?}",
                            redact_url_text(uri)
                        ),
                    })?;
                Some(SegmentKeyInfo {
                    key_url,
                    initialization_vector: key.iv.unwrap_or_else(|| {
                        initialization_vector_from_media_sequence(segment.media_sequence)
                    }),
                })
            }
            KeyMethod::SampleAes => {
                return Err(HlsError::UnsupportedEncryption {
                    method: "SAMPLE-AES".to_string(),
                });
            }
            KeyMethod::SampleAesCtr => {
                return Err(HlsError::UnsupportedEncryption {
                    method: "SAMPLE-AES-CTR".to_string(),
                });
            }
            KeyMethod::Other(other) => {
                return Err(HlsError::UnsupportedEncryption {
                    method: other.clone(),
                });
            }
        },
    };
    let init = match &segment.map {
        None => None,
        Some(map) => {
            let init_url = base_url
                .join(&map.uri)
                .map_err(|error| HlsError::Playlist {
                    url: crate::url_safety::redact_url(base_url),
                    error: crate::playlist::PlaylistParseError::InvalidTag {
                        line: 0,
                        tag: "EXT-X-MAP".to_string(),
                        reason: format!("{:?}: {error}", redact_url_text(&map.uri)),
                    },
                })?;
            let identity = match &map.byte_range {
                Some(range) => format!("{init_url}@{}+{}", range.offset, range.length),
                None => init_url.to_string(),
            };
            Some(InitInfo {
                identity,
                url: init_url,
                byte_range: map.byte_range,
            })
        }
    };
    Ok((url, key_info, init))
}

/// The gap's reason from the last failure on each source: the single reason when one source was
/// asked (as without backups), else each named (`primary: HTTP 404; backup-1: HTTP 404`).
fn combined_reason(failures_by_source: &[(usize, String)]) -> String {
    match failures_by_source {
        [(_, reason)] => reason.clone(),
        failures => failures
            .iter()
            .map(|(source, reason)| format!("{}: {reason}", source_label(*source)))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// What the ledger says about a segment lost after this error.
pub(crate) fn gap_reason(error: &HlsError) -> String {
    match error {
        HlsError::NotMedia { reason, .. } => format!("not media: {reason}"),
        HlsError::Decryption { .. } => "decryption failed".to_string(),
        HlsError::RequestDeadline { seconds, .. } => {
            format!("the download took longer than its deadline of {seconds} s")
        }
        HlsError::HttpStatus { status, .. } => format!("HTTP {status}"),
        HlsError::NotListed { .. } => "not in its playlist".to_string(),
        HlsError::TooLarge {
            what, limit_bytes, ..
        } => format!("{what} larger than {limit_bytes} bytes"),
        HlsError::UrlRefused(refusal) => format!("address refused: {refusal}"),
        HlsError::SpillBudget { limit_bytes, .. } => format!(
            "segment larger than the spill budget left (the track's spill files hold at most {limit_bytes} bytes)"
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_from_hostile_durations_never_overflow() {
        let now = Instant::now();
        for seconds in [f64::NAN, f64::INFINITY, -1.0, 1e20, f64::MAX, 0.0] {
            let deadline = instant_after_seconds(now, seconds);
            assert!(deadline >= now && deadline <= now + LONGEST_DEADLINE);
            assert!(sane_duration(seconds) >= 0.0);
            assert!(sane_duration(seconds) <= crate::playlist::MAXIMUM_BELIEVABLE_DURATION_SECONDS);
        }
        assert!(instant_after(now, Duration::MAX) <= now + LONGEST_DEADLINE);
    }

    use crate::playlist::{Playlist, parse_playlist};

    /// What the core decided for one segment, in commit order.
    #[derive(Debug, Clone, PartialEq)]
    struct Decided {
        epoch: u32,
        media_sequence: u64,
        discontinuity_sequence: u64,
        /// "ok", "pause", or the gap's reason.
        fate: String,
        uri: String,
    }

    fn settings() -> CoreSettings {
        CoreSettings {
            playlist_url: Url::parse("http://127.0.0.1:9/live/level_0.m3u8").expect("url"),
            live_edge_segments: 3,
            start_from: StartFrom::LiveEdge,
            maximum_duration: None,
            parallel_downloads: 3,
            stall_timeout: Duration::from_secs(60),
            limits: TrackLimits::default(),
            source_count: 1,
        }
    }

    fn media_playlist(text: &str) -> MediaPlaylist {
        match parse_playlist(text) {
            Ok(Playlist::Media(media)) => media,
            other => panic!("not a media playlist: {other:?}"),
        }
    }

    fn decided(segment: &TrackedSegment<()>, status: &SegmentStatus<()>) -> Decided {
        Decided {
            epoch: segment.epoch,
            media_sequence: segment.media_sequence,
            discontinuity_sequence: segment.discontinuity_sequence,
            fate: match status {
                SegmentStatus::Done(()) => "ok".to_string(),
                SegmentStatus::Paused => "pause".to_string(),
                _ => segment.failure_reason.clone().unwrap_or_default(),
            },
            uri: segment.uri_text.clone(),
        }
    }

    /// A scripted run on a fake clock: the k-th poll is absorbed at `k * poll_interval`; after
    /// each, every download the core starts succeeds, and what is ready is committed.
    fn run_polls(
        core: &mut LiveCore<()>,
        polls: &[&str],
        start: Instant,
        poll_interval: Duration,
    ) -> (Vec<Decided>, Vec<CoreEvent>) {
        let base = core.settings.playlist_url.clone();
        let mut commits = Vec::new();
        let mut events = Vec::new();
        for (index, text) in polls.iter().enumerate() {
            let now = start + poll_interval * index as u32;
            core.absorb_playlist(&media_playlist(text), &base, index == 0, now)
                .expect("absorbed");
            for (key, _deadline) in core.downloads_to_start(now, 0) {
                core.download_succeeded(key, ());
            }
            commits.extend(
                core.take_ready()
                    .iter()
                    .map(|(segment, status)| decided(segment, status)),
            );
            events.extend(core.drain_events());
        }
        (commits, events)
    }

    /// The four polls of one hls-monitor sequence (see tests/fixtures/hls-monitor/ORIGIN.md).
    macro_rules! hls_monitor_polls {
        ($sequence:literal) => {
            [
                include_str!(concat!(
                    "../tests/fixtures/hls-monitor/",
                    $sequence,
                    "/level_0.poll0.m3u8"
                )),
                include_str!(concat!(
                    "../tests/fixtures/hls-monitor/",
                    $sequence,
                    "/level_0.poll1.m3u8"
                )),
                include_str!(concat!(
                    "../tests/fixtures/hls-monitor/",
                    $sequence,
                    "/level_0.poll2.m3u8"
                )),
                include_str!(concat!(
                    "../tests/fixtures/hls-monitor/",
                    $sequence,
                    "/level_0.poll3.m3u8"
                )),
            ]
        };
    }

    /// An hls-monitor sequence polled every 10 s (its target duration) from a fresh core.
    fn run_hls_monitor(polls: &[&str]) -> (LiveCore<()>, Vec<Decided>, Vec<CoreEvent>) {
        let start = Instant::now();
        let mut core = LiveCore::new(settings(), None, start);
        let (commits, events) = run_polls(&mut core, polls, start, Duration::from_secs(10));
        (core, commits, events)
    }

    fn ok(media_sequence: u64, discontinuity_sequence: u64, uri: &str) -> Decided {
        Decided {
            epoch: 0,
            media_sequence,
            discontinuity_sequence,
            fate: "ok".to_string(),
            uri: uri.to_string(),
        }
    }

    /// hls-monitor seq01: poll 2 lists `index_0_1.ts` as sequence 2. The recorder goes by media
    /// sequence: every sequence once, in order, with the URI the origin gave it; nothing lost.
    #[test]
    fn hls_monitor_seq01_a_window_starting_on_the_wrong_segment_records_each_sequence_once() {
        let (core, commits, events) = run_hls_monitor(&hls_monitor_polls!("seq01"));
        assert_eq!(
            commits,
            vec![
                ok(0, 0, "index_0_0.ts"),
                ok(1, 0, "index_0_1.ts"),
                ok(2, 0, "index_0_2.ts"),
                ok(3, 0, "index_0_2.ts"),
                ok(4, 0, "index_0_3.ts"),
            ]
        );
        assert!(events.is_empty(), "{events:?}");
        assert!(core.finished().is_none(), "a live stream goes on");
    }

    /// hls-monitor seq04: the last poll goes back from sequence 3 to 2 (a lagging CDN copy): it
    /// is ignored as stale, no new epoch, nothing twice.
    #[test]
    fn hls_monitor_seq04_a_playlist_going_back_is_stale_not_a_restart() {
        let (_, commits, events) = run_hls_monitor(&hls_monitor_polls!("seq04"));
        let sequences: Vec<u64> = commits.iter().map(|commit| commit.media_sequence).collect();
        assert_eq!(sequences, vec![0, 1, 2, 3, 4]);
        assert!(
            commits
                .iter()
                .all(|commit| commit.fate == "ok" && commit.epoch == 0)
        );
        assert!(events.is_empty(), "{events:?}");
    }

    /// hls-monitor seq05: `EXT-X-DISCONTINUITY-SEQUENCE` jumps from 10 to 12 where one tag was
    /// seen: the ledger's discontinuity goes up once, by identity, for the segment after the tag.
    #[test]
    fn hls_monitor_seq05_discontinuities_are_counted_by_tag_not_by_the_sequence_header() {
        let (_, commits, events) = run_hls_monitor(&hls_monitor_polls!("seq05"));
        assert_eq!(
            commits,
            vec![
                ok(0, 0, "index_0_0.ts"),
                ok(1, 0, "index_0_1.ts"),
                ok(2, 1, "other_0_1.ts"),
                ok(3, 1, "other_0_2.ts"),
                ok(4, 1, "other_0_3.ts"),
            ]
        );
        assert!(events.is_empty(), "{events:?}");
    }

    /// hls-monitor seq11: the live edge of the first poll, then a jump from 24 to 123: the 98
    /// sequences never listed are gap lines (known at once, in order), the recording goes on.
    /// The jump is more than 10 s explain: it is held until the next reload says it again (an
    /// edge numbering differently would not), poll 3 does; poll 3 once more lets the downloads
    /// (three per poll here) catch up.
    #[test]
    fn hls_monitor_seq11_a_jump_is_gaps_known_at_once_then_recording_goes_on() {
        let [poll0, poll1, poll2, poll3] = hls_monitor_polls!("seq11");
        let (_, commits, events) = run_hls_monitor(&[poll0, poll1, poll2, poll3, poll3]);
        let oks: Vec<(u64, u64)> = commits
            .iter()
            .filter(|commit| commit.fate == "ok")
            .map(|commit| (commit.media_sequence, commit.discontinuity_sequence))
            .collect();
        // Three back from the edge: slate (the first taken: no discontinuity before it), then
        // one discontinuity per tag; the jump's first segment carries a tag too.
        assert_eq!(
            oks,
            vec![
                (21, 0),
                (22, 1),
                (23, 2),
                (24, 2),
                (123, 3),
                (124, 3),
                (125, 3),
                (126, 3),
                (127, 3)
            ]
        );
        let gaps: Vec<&Decided> = commits
            .iter()
            .filter(|commit| commit.fate != "ok")
            .collect();
        assert_eq!(gaps.len(), 98);
        assert_eq!(gaps.first().map(|gap| gap.media_sequence), Some(25));
        assert_eq!(gaps.last().map(|gap| gap.media_sequence), Some(122));
        assert!(
            gaps.iter()
                .all(|gap| gap.fate == "never listed in a playlist we loaded")
        );
        let sequences: Vec<u64> = commits.iter().map(|commit| commit.media_sequence).collect();
        let mut sorted = sequences.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sequences, sorted, "in order, each once");
        // Each gap was told once, when the jump was seen.
        let known: Vec<u64> = events
            .iter()
            .filter_map(|event| match event {
                CoreEvent::GapKnown(gap) => Some(gap.media_sequence),
                _ => None,
            })
            .collect();
        assert_eq!(known, (25..=122).collect::<Vec<u64>>());
    }

    /// A segment that keeps failing is retried with backoff until it would leave the window,
    /// then it is a gap with the last reason; the segments around it commit in order. Driven by a
    /// fake clock in 100 ms steps, no reload in between (its deadline is not pushed out).
    #[test]
    fn a_failing_segment_is_retried_until_its_window_deadline_then_a_gap() {
        let playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n\
                        #EXTINF:2,\na.ts\n#EXTINF:2,\nb.ts\n#EXTINF:2,\nc.ts\n";
        let start = Instant::now();
        let mut core: LiveCore<()> = LiveCore::new(settings(), None, start);
        let base = core.settings.playlist_url.clone();
        core.absorb_playlist(&media_playlist(playlist), &base, true, start)
            .expect("absorbed");
        let error = HlsError::HttpStatus {
            url: "http://127.0.0.1:9/live/b.ts".to_string(),
            status: 404,
        };
        let mut commits = Vec::new();
        let mut attempts = 0;
        let mut gap_at = None;
        for step in 0..100u32 {
            let now = start + Duration::from_millis(100) * step;
            core.give_up_expired(now);
            for (key, request_deadline) in core.downloads_to_start(now, 0) {
                assert!(
                    request_deadline >= now + Duration::from_secs(5),
                    "at least 5 s"
                );
                if key.1 == 8 {
                    attempts += 1;
                    let attempt = FailedAttempt {
                        error: &error,
                        fresh_key: true,
                        fresh_init: true,
                    };
                    core.download_failed(key, attempt, now);
                } else {
                    core.download_succeeded(key, ());
                }
            }
            let ready = core.take_ready();
            if ready.iter().any(|(segment, _)| segment.media_sequence == 8) {
                gap_at = Some(now.duration_since(start));
            }
            commits.extend(
                ready
                    .iter()
                    .map(|(segment, status)| decided(segment, status)),
            );
        }
        // Its window: the durations up to it (2 + 2 s) plus one target duration.
        let gap_at = gap_at.expect("the failing segment became a gap");
        assert!(
            gap_at >= Duration::from_secs(6) && gap_at < Duration::from_millis(6_600),
            "{gap_at:?}"
        );
        assert!(
            (4..=12).contains(&attempts),
            "{attempts} attempts with backoff"
        );
        let fates: Vec<(u64, String)> = commits
            .iter()
            .map(|commit| (commit.media_sequence, commit.fate.clone()))
            .collect();
        assert_eq!(
            fates,
            vec![
                (7, "ok".to_string()),
                (8, "HTTP 404".to_string()),
                (9, "ok".to_string())
            ]
        );
        let gaps_told = core
            .drain_events()
            .into_iter()
            .filter(|event| matches!(event, CoreEvent::GapKnown(_)))
            .count();
        assert_eq!(gaps_told, 1);
        // No new segment for the stall timeout: the core says so, with the seconds.
        assert_eq!(core.stalled(start + Duration::from_secs(59)), None);
        assert_eq!(core.stalled(start + Duration::from_secs(61)), Some(61));
        // Reload schedule: a target duration after a change, half of it when nothing was new.
        assert_eq!(core.reload_interval(true), Duration::from_secs(2));
        assert_eq!(core.reload_interval(false), Duration::from_secs(1));
    }

    /// Paused: new segments are recorded as a pause, nothing starts; resumed: a part break.
    #[test]
    fn pause_records_new_segments_as_pause_and_resume_asks_for_a_new_part() {
        let start = Instant::now();
        let mut core: LiveCore<()> = LiveCore::new(settings(), None, start);
        let base = core.settings.playlist_url.clone();
        core.pause();
        let playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
                        #EXTINF:2,\na.ts\n#EXTINF:2,\nb.ts\n";
        core.absorb_playlist(&media_playlist(playlist), &base, true, start)
            .expect("absorbed");
        assert!(core.downloads_to_start(start, 0).is_empty());
        let fates: Vec<String> = core
            .take_ready()
            .iter()
            .map(|(segment, status)| decided(segment, status).fate)
            .collect();
        assert_eq!(fates, vec!["pause", "pause"]);
        assert!(core.resume(start + Duration::from_secs(3)));
        assert_eq!(core.part_break_pending, Some(PartStartReason::Resume));
        assert!(!core.resume(start + Duration::from_secs(4)), "once");
    }

    /// From the window's start: an EVENT playlist is taken whole, the newest segment of the
    /// first poll is marked as the live edge, and the recording goes on with what comes next.
    /// From the live edge (the default) the same poll starts three back.
    #[test]
    fn window_start_takes_the_whole_event_window_and_marks_the_live_edge() {
        let poll = |last: u64| {
            let mut text = "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-TARGETDURATION:2\n\
                            #EXT-X-MEDIA-SEQUENCE:0\n"
                .to_string();
            for sequence in 0..=last {
                text.push_str(&format!("#EXTINF:2,\nseg-{sequence}.ts\n"));
            }
            text
        };
        let polls = [poll(9), poll(10), poll(11)];
        let polls: Vec<&str> = polls.iter().map(String::as_str).collect();
        let start = Instant::now();
        let mut from_start = CoreSettings {
            start_from: StartFrom::WindowStart,
            ..settings()
        };
        from_start.live_edge_segments = 3;
        let mut core = LiveCore::new(from_start, None, start);
        let base = core.settings.playlist_url.clone();
        let mut marked = Vec::new();
        let mut committed = Vec::new();
        for (index, text) in polls.iter().enumerate() {
            let now = start + Duration::from_secs(2) * index as u32;
            core.absorb_playlist(&media_playlist(text), &base, index == 0, now)
                .expect("absorbed");
            for (key, _) in core.downloads_to_start(now, 0) {
                core.download_succeeded(key, ());
            }
            // Three downloads at a time: drain the window over a few rounds.
            for _ in 0..10 {
                for (key, _) in core.downloads_to_start(now, 0) {
                    core.download_succeeded(key, ());
                }
                for (segment, _) in core.take_ready() {
                    if segment.live_edge_at_start {
                        marked.push(segment.media_sequence);
                    }
                    committed.push(segment.media_sequence);
                }
            }
        }
        assert_eq!(committed, (0..=11).collect::<Vec<u64>>());
        assert_eq!(marked, vec![9]);

        let mut live_edge = LiveCore::<()>::new(settings(), None, start);
        live_edge
            .absorb_playlist(&media_playlist(polls[0]), &base, true, start)
            .expect("absorbed");
        let first_taken = live_edge.head().map(|(_, sequence)| sequence);
        assert_eq!(first_taken, Some(7));
        assert!(
            live_edge
                .pending
                .values()
                .all(|segment| !segment.live_edge_at_start)
        );
    }

    fn settings_with_backups(backups: usize) -> CoreSettings {
        CoreSettings {
            source_count: 1 + backups,
            ..settings()
        }
    }

    fn http_status(status: u16) -> HlsError {
        HlsError::HttpStatus {
            url: "u".to_string(),
            status,
        }
    }

    fn attempt(error: &HlsError) -> FailedAttempt<'_> {
        FailedAttempt {
            error,
            fresh_key: true,
            fresh_init: true,
        }
    }

    const FOUR_SEGMENTS: &str = "#EXTM3U
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:10
#EXTINF:2.0,
s10.ts
#EXTINF:2.0,
s11.ts
#EXTINF:2.0,
s12.ts
#EXTINF:2.0,
s13.ts
";

    #[test]
    fn a_failed_segment_is_asked_of_the_backup_then_the_primary_again() {
        let start = Instant::now();
        let mut core: LiveCore<()> = LiveCore::new(settings_with_backups(1), None, start);
        let base = core.settings.playlist_url.clone();
        core.absorb_playlist(&media_playlist(FOUR_SEGMENTS), &base, true, start)
            .expect("absorbed");
        let started = core.downloads_to_start(start, 0);
        let first = started.first().expect("started").0;
        assert_eq!(core.pending.get(&first).map(|s| s.source), Some(0));
        core.download_failed(first, attempt(&http_status(503)), start);
        let segment = core.pending.get(&first).expect("pending");
        assert_eq!((segment.source, segment.listed_by), (1, 0));
        assert_eq!(segment.failure_reason.as_deref(), Some("HTTP 503"));
        // The backup lacks it too: the reason names both, the next attempt asks the primary.
        let not_listed = HlsError::NotListed {
            url: "b".to_string(),
            media_sequence: first.1,
        };
        core.download_failed(first, attempt(&not_listed), start + Duration::from_secs(1));
        let segment = core.pending.get(&first).expect("pending");
        assert_eq!(segment.source, 0);
        let both = "primary: HTTP 503; backup-1: not in its playlist";
        assert_eq!(segment.failure_reason.as_deref(), Some(both));
        // Past the deadline it is a gap with that reason.
        core.give_up_expired(start + Duration::from_secs(60));
        let gap = core
            .drain_events()
            .into_iter()
            .find_map(|event| match event {
                CoreEvent::GapKnown(gap) => Some(gap),
                _ => None,
            });
        assert_eq!(gap.and_then(|gap| gap.reason).as_deref(), Some(both));
    }

    #[test]
    fn without_backups_the_reasons_and_the_source_are_as_before() {
        let start = Instant::now();
        let mut core: LiveCore<()> = LiveCore::new(settings(), None, start);
        let base = core.settings.playlist_url.clone();
        core.absorb_playlist(&media_playlist(FOUR_SEGMENTS), &base, true, start)
            .expect("absorbed");
        let first = core.downloads_to_start(start, 0)[0].0;
        core.download_failed(first, attempt(&http_status(404)), start);
        let segment = core.pending.get(&first).expect("pending");
        assert_eq!(segment.source, 0);
        assert_eq!(segment.failure_reason.as_deref(), Some("HTTP 404"));
        core.playlist_load_failed(start);
        assert_eq!(core.switch_due(start + Duration::from_secs(600)), None);
    }

    #[test]
    fn the_primary_is_switched_after_half_its_window_of_failed_reloads() {
        let start = Instant::now();
        let mut core: LiveCore<()> = LiveCore::new(settings_with_backups(2), None, start);
        let base = core.settings.playlist_url.clone();
        core.absorb_playlist(&media_playlist(FOUR_SEGMENTS), &base, true, start)
            .expect("absorbed");
        // Window 8 s: switch after 4 s of failed reloads.
        assert_eq!(core.switch_after(), Duration::from_secs(4));
        let failing_from = start + Duration::from_secs(2);
        core.playlist_load_failed(failing_from);
        core.playlist_load_failed(failing_from + Duration::from_secs(3));
        assert_eq!(core.switch_due(failing_from + Duration::from_secs(3)), None);
        let due_at = failing_from + Duration::from_secs(4);
        assert_eq!(core.switch_due(due_at), Some(1));
        let waiting: Vec<SegmentKey> = core.pending.keys().copied().collect();
        core.switch_primary(1, due_at);
        assert_eq!(core.primary_source, 1);
        for key in &waiting {
            assert_eq!(core.pending.get(key).map(|s| s.source), Some(1));
        }
        // Backup 1 gone too: backup 2 after the same span; a load resets the clock.
        assert_eq!(core.switch_due(due_at + Duration::from_secs(4)), Some(2));
        core.absorb_playlist(&media_playlist(FOUR_SEGMENTS), &base, false, due_at)
            .expect("absorbed");
        assert_eq!(core.switch_due(due_at + Duration::from_secs(60)), None);
    }

    #[test]
    fn a_backup_numbered_differently_is_matched_by_program_date_time() {
        let backup = media_playlist(
            "#EXTM3U
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:500
#EXT-X-PROGRAM-DATE-TIME:2026-12-04T10:00:00.000Z
#EXTINF:2.0,
b500.ts
#EXTINF:2.0,
b501.ts
#EXTINF:2.0,
b502.ts
",
        );
        let found = |sequence, time: Option<&str>| {
            find_in_backup(&backup, sequence, time, 2.0).map(|segment| segment.uri.clone())
        };
        // Same numbering, no date-time on our side: by media sequence.
        assert_eq!(found(501, None).as_deref(), Some("b501.ts"));
        // Another numbering: by date-time (within half a segment).
        assert_eq!(
            found(11, Some("2026-12-04T10:00:04.300+00:00")).as_deref(),
            Some("b502.ts")
        );
        // The same sequence at another moment: the date-time wins.
        assert_eq!(
            found(500, Some("2026-12-04T10:00:02.000Z")).as_deref(),
            Some("b501.ts")
        );
        assert_eq!(found(11, None), None);
        assert_eq!(found(11, Some("2026-12-04T11:00:00Z")), None);
        assert_eq!(found(11, Some("not a date")), None);
    }

    /// One CDN edge's playlist at the moment `published` segments exist: the last 5 of those it
    /// holds (`lag` fewer), segment `i` numbered `i + numbering` at `{prefix}seg-{i}.ts`.
    fn edge_playlist(published: u64, lag: u64, numbering: u64, prefix: &str) -> String {
        let newest_held = published.saturating_sub(lag);
        let first = newest_held.saturating_sub(5);
        let mut text = format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:{}\n",
            first + numbering
        );
        for index in first..newest_held {
            text.push_str(&format!("#EXTINF:1.0,\n{prefix}seg-{index}.ts\n"));
        }
        text
    }

    /// The segment index a committed URI stands for (`seg-7.ts`, `b/seg-7.ts`).
    fn index_of_uri(uri: &str) -> u64 {
        uri.rsplit("seg-")
            .next()
            .and_then(|rest| rest.strip_suffix(".ts"))
            .and_then(|number| number.parse().ok())
            .unwrap_or(u64::MAX)
    }

    /// One edge: (lag, numbering, URI prefix).
    type Edge = (u64, u64, &'static str);

    /// Polls once a second, one new segment a second, alternating between edge A and edge B
    /// (`(lag, numbering, prefix)` each), 30 polls: what was committed.
    fn alternating_edges(edge_a: Edge, edge_b: Edge) -> (Vec<Decided>, Vec<CoreEvent>) {
        let polls: Vec<String> = (0..30u64)
            .map(|poll| {
                let (lag, numbering, prefix) = if poll % 2 == 0 { edge_a } else { edge_b };
                edge_playlist(8 + poll, lag, numbering, prefix)
            })
            .collect();
        let poll_texts: Vec<&str> = polls.iter().map(String::as_str).collect();
        let start = Instant::now();
        let mut core = LiveCore::new(settings(), None, start);
        run_polls(&mut core, &poll_texts, start, Duration::from_secs(1))
    }

    /// Every committed segment is ok, in epoch 0, each media once and consecutive, no new epoch.
    fn assert_one_clean_run(commits: &[Decided], events: &[CoreEvent], case: &str) {
        assert!(
            commits.iter().all(|commit| commit.fate == "ok"
                && commit.epoch == 0
                && commit.discontinuity_sequence == 0),
            "{case}: {commits:?}"
        );
        assert!(events.is_empty(), "{case}: {events:?}");
        let indexes: Vec<u64> = commits
            .iter()
            .map(|commit| index_of_uri(&commit.uri))
            .collect();
        let first = indexes.first().copied().unwrap_or_default();
        let expected: Vec<u64> = (first..first + indexes.len() as u64).collect();
        assert_eq!(indexes, expected, "{case}: each segment once, in order");
        assert!(
            indexes.len() >= 25,
            "{case}: the recording went on: {indexes:?}"
        );
    }

    /// Issue 11 round 3: two CDN edges behind a load balancer answer the reloads in turn. Edge B
    /// lags 2 segments, or numbers its segments otherwise (a million ahead or behind, with the
    /// same URIs or its own). Every reload of B was a new epoch (or a jump) and its window was
    /// fetched again: the same media twice and a part per reload. Now a lagging or renumbered
    /// copy is stale (ignored) and a renumbering is only believed when the next reload says it
    /// again: one run, each segment once, nothing lost.
    #[test]
    fn alternating_edges_that_lag_or_number_differently_change_nothing() {
        let cases: [(&str, Edge, Edge); 6] = [
            ("B lags 2", (0, 0, ""), (2, 0, "")),
            ("B lags 3, 5-segment window", (0, 100, ""), (3, 100, "")),
            ("B numbers a million ahead", (0, 0, ""), (0, 1_000_000, "")),
            ("B numbers a million behind", (0, 1_000_000, ""), (0, 0, "")),
            (
                "B ahead with its own URIs",
                (0, 0, ""),
                (0, 1_000_000, "b/"),
            ),
            (
                "B behind with its own URIs",
                (0, 1_000_000, ""),
                (1, 0, "b/"),
            ),
        ];
        for (case, edge_a, edge_b) in cases {
            let (commits, events) = alternating_edges(edge_a, edge_b);
            assert_one_clean_run(&commits, &events, case);
        }
    }

    /// A real encoder restart (media sequence back to 0, new segments) is still a new epoch,
    /// one reload later than before: the reload after it says the same.
    #[test]
    fn reload_times_are_aligned_up_to_the_shared_tick_and_never_earlier() {
        let origin = Instant::now();
        let tick = Duration::from_millis(250);
        // On a tick: unchanged; between ticks: the next one; never earlier than asked.
        assert_eq!(align_to_tick(origin, origin, tick), origin);
        assert_eq!(
            align_to_tick(origin + Duration::from_millis(500), origin, tick),
            origin + Duration::from_millis(500)
        );
        assert_eq!(
            align_to_tick(origin + Duration::from_millis(501), origin, tick),
            origin + Duration::from_millis(750)
        );
        assert_eq!(
            align_to_tick(origin + Duration::from_nanos(1), origin, tick),
            origin + tick
        );
        // A reload interval that is a multiple of the tick stays on it: no drift.
        let mut at = align_to_tick(origin + Duration::from_millis(130), origin, tick);
        for _ in 0..1_000 {
            let next = align_to_tick(at + Duration::from_secs(2), origin, tick);
            assert_eq!(next - at, Duration::from_secs(2));
            at = next;
        }
        // An interval that is not (a target duration of 6.006 s) is late by less than a tick.
        let next = align_to_tick(at + Duration::from_millis(6_006), origin, tick);
        assert!(
            next - at >= Duration::from_millis(6_006) && next - at < Duration::from_millis(6_256)
        );
        // No tick, or a time before the origin: as asked.
        let before = origin
            .checked_sub(Duration::from_millis(10))
            .unwrap_or(origin);
        assert_eq!(align_to_tick(before, origin, tick), before);
        assert_eq!(
            align_to_tick(origin + Duration::from_millis(3), origin, Duration::ZERO),
            origin + Duration::from_millis(3)
        );
        // Far in the future: no overflow.
        let far = origin + LONGEST_DEADLINE;
        assert!(align_to_tick(far, origin, Duration::from_nanos(3)) >= far);
    }

    #[test]
    fn a_restart_to_zero_is_still_a_new_epoch_on_the_next_reload() {
        let mut polls: Vec<String> = (0..10u64)
            .map(|poll| edge_playlist(8 + poll, 0, 0, ""))
            .collect();
        // The restart: the numbering starts again at 0 with new segments.
        for published in 1..=6u64 {
            polls.push(edge_playlist(published, 0, 0, "r/"));
        }
        let poll_texts: Vec<&str> = polls.iter().map(String::as_str).collect();
        let start = Instant::now();
        let mut core = LiveCore::new(settings(), None, start);
        let base = core.settings.playlist_url.clone();
        let mut new_epoch_at = None;
        let mut commits = Vec::new();
        for (index, text) in poll_texts.iter().enumerate() {
            let now = start + Duration::from_secs(index as u64);
            core.absorb_playlist(&media_playlist(text), &base, index == 0, now)
                .expect("absorbed");
            for (key, _) in core.downloads_to_start(now, 0) {
                core.download_succeeded(key, ());
            }
            commits.extend(
                core.take_ready()
                    .iter()
                    .map(|(segment, status)| decided(segment, status)),
            );
            if core
                .drain_events()
                .iter()
                .any(|event| matches!(event, CoreEvent::NewEpoch { .. }))
            {
                new_epoch_at.get_or_insert(index);
            }
        }
        assert_eq!(
            new_epoch_at,
            Some(11),
            "the reload after the restart's first confirms it"
        );
        assert_eq!(
            core.part_break_pending,
            Some(PartStartReason::Discontinuity)
        );
        let after_restart: Vec<(u32, u64, String)> = commits
            .iter()
            .filter(|commit| commit.epoch == 1)
            .map(|commit| (commit.epoch, commit.media_sequence, commit.uri.clone()))
            .collect();
        assert_eq!(
            after_restart,
            (0..6u64)
                .map(|index| (1, index, format!("r/seg-{index}.ts")))
                .collect::<Vec<_>>(),
            "every segment after the restart, from its first"
        );
    }
}
