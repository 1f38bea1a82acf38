//! Media fixtures made by ffmpeg once, cached in-process and on disk.
//!
//! Every kind is cut from one continuous encode of
//! `testsrc2=size=160x90:rate=25` + `sine=frequency=440:sample_rate=48000` (libx264 ultrafast,
//! one keyframe per second, AAC 64k), so the 90 segments of a set have continuous timestamps.
//!
//! On disk the sets live under `std::env::temp_dir()/streambot-testkit-fixtures-v1/<kind>/`
//! (or `$STREAMBOT_FIXTURE_CACHE/v1/<kind>/`; files `seg-<n>.ts|m4s`, `init.mp4`, `key.bin`, `index.m3u8`, `manifest.json`). A set is built in a
//! private temporary directory and renamed into place, so a concurrent test process never sees a
//! half-written set.
//!
//! AES-128: ffmpeg 5.1 encrypts every segment with IV 0 when the key info file names no IV
//! (checked by hand), which is not the RFC 8216 implicit IV. So the encrypted set is made here from
//! the clear MPEG-TS set: segment `n` is AES-128-CBC (PKCS#7) encrypted with the fixed
//! [`FIXTURE_AES_KEY`] and IV = `n` as a 128-bit big-endian number, i.e. exactly what a playlist with
//! `EXT-X-MEDIA-SEQUENCE:0` and no `IV` attribute means. The origin re-encrypts the clear bytes on
//! the fly with the IV of the media sequence it serves.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Number of segments in every fixture set.
pub const FIXTURE_SEGMENT_COUNT: usize = 90;
/// Nominal duration of every fixture segment, in seconds.
pub const FIXTURE_SEGMENT_DURATION_SECONDS: f64 = 1.0;
/// The AES-128 key of the [`SegmentKind::MpegTsAes128`] set.
pub const FIXTURE_AES_KEY: [u8; 16] = *b"streambot-testky";
/// `CODECS` attribute value matching the audio+video fixtures (H.264 Constrained Baseline 1.1, AAC-LC).
pub const FIXTURE_AUDIO_VIDEO_CODECS: &str = "avc1.42c00b,mp4a.40.2";
/// `CODECS` attribute value matching the audio-only fixtures.
pub const FIXTURE_AUDIO_ONLY_CODECS: &str = "mp4a.40.2";

const CACHE_DIRECTORY_NAME: &str = "streambot-testkit-fixtures-v1";
const MANIFEST_FILE_NAME: &str = "manifest.json";
const MANIFEST_VERSION: u32 = 1;

/// The container/encryption flavour of a fixture set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SegmentKind {
    /// MPEG-TS, H.264 + AAC.
    MpegTs,
    /// Fragmented MP4 (`init.mp4` + `.m4s` fragments), H.264 + AAC.
    Fmp4,
    /// MPEG-TS encrypted with AES-128-CBC, implicit IV = segment number.
    MpegTsAes128,
    /// MPEG-TS with AAC audio only.
    AudioOnlyTs,
}

impl SegmentKind {
    /// Every kind.
    pub const ALL: [SegmentKind; 4] = [
        SegmentKind::MpegTs,
        SegmentKind::Fmp4,
        SegmentKind::MpegTsAes128,
        SegmentKind::AudioOnlyTs,
    ];

    /// Name of the on-disk cache directory of this kind (also accepted by [`SegmentKind::parse`]).
    pub fn directory_name(self) -> &'static str {
        match self {
            SegmentKind::MpegTs => "mpegts",
            SegmentKind::Fmp4 => "fmp4",
            SegmentKind::MpegTsAes128 => "mpegts-aes128",
            SegmentKind::AudioOnlyTs => "audio-only-ts",
        }
    }

    /// File extension of a media segment of this kind, without the dot.
    pub fn segment_extension(self) -> &'static str {
        match self {
            SegmentKind::Fmp4 => "m4s",
            SegmentKind::MpegTs | SegmentKind::MpegTsAes128 | SegmentKind::AudioOnlyTs => "ts",
        }
    }

    /// Whether segments carry video.
    pub fn has_video(self) -> bool {
        !matches!(self, SegmentKind::AudioOnlyTs)
    }

    /// Parses `ts`, `mpegts`, `fmp4`, `aes`, `mpegts-aes128`, `audio`, `audio-only-ts`.
    pub fn parse(text: &str) -> Option<SegmentKind> {
        match text.trim().to_ascii_lowercase().as_str() {
            "ts" | "mpegts" => Some(SegmentKind::MpegTs),
            "fmp4" | "mp4" | "cmaf" => Some(SegmentKind::Fmp4),
            "aes" | "aes128" | "ts-aes" | "mpegts-aes128" => Some(SegmentKind::MpegTsAes128),
            "audio" | "audio-only" | "audio-only-ts" => Some(SegmentKind::AudioOnlyTs),
            _ => None,
        }
    }

    fn cache_slot(self) -> usize {
        match self {
            SegmentKind::MpegTs => 0,
            SegmentKind::Fmp4 => 1,
            SegmentKind::MpegTsAes128 => 2,
            SegmentKind::AudioOnlyTs => 3,
        }
    }
}

impl fmt::Display for SegmentKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.directory_name())
    }
}

/// One fixture set: 90 consecutive segments of one encode.
#[derive(Debug, Clone)]
pub struct MediaSet {
    /// What the segments are.
    pub kind: SegmentKind,
    /// The segment bodies as a client would download them (encrypted for AES, see the module docs).
    pub segments: Vec<Bytes>,
    /// Nominal duration of every segment: 1.0. Video kinds are exactly this long; audio-only AAC
    /// segments are cut on AAC frame boundaries (21.33 ms) and vary by up to one frame around it,
    /// while their cumulative timeline stays on the 1 s grid (see `segment_durations_seconds`).
    pub segment_duration_seconds: f64,
    /// Per-segment durations as ffmpeg reported them (`EXTINF`).
    pub segment_durations_seconds: Vec<f64>,
    /// `EXT-X-MAP` initialisation segment (fMP4 only).
    pub init_segment: Option<Bytes>,
    /// AES-128 key (AES kind only).
    pub aes_key: Option<[u8; 16]>,
    /// The clear MPEG-TS bodies behind the encrypted `segments` (AES kind only).
    pub clear_segments: Option<Vec<Bytes>>,
    /// Directory holding `seg-<n>.<ext>` files of this set (for ffprobe and friends).
    pub directory: PathBuf,
}

impl MediaSet {
    /// Path of fixture segment `index` (0-based) on disk.
    pub fn segment_path(&self, index: usize) -> PathBuf {
        self.directory
            .join(segment_file_name(self.kind, index % FIXTURE_SEGMENT_COUNT))
    }

    /// Total bytes of all segments.
    pub fn total_bytes(&self) -> u64 {
        self.segments
            .iter()
            .map(|segment| segment.len() as u64)
            .sum()
    }
}

/// Why a fixture set could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// ffmpeg is not on PATH.
    #[error("ffmpeg not found: install it with apt-get install ffmpeg")]
    FfmpegNotFound,
    /// ffmpeg ran and failed.
    #[error("ffmpeg failed making the {kind} fixtures ({status}): {stderr_tail}")]
    FfmpegFailed {
        kind: SegmentKind,
        status: String,
        stderr_tail: String,
    },
    /// Filesystem trouble.
    #[error("fixture file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// ffmpeg's output was not what was expected.
    #[error("unexpected fixture output for {kind}: {detail}")]
    Unexpected { kind: SegmentKind, detail: String },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> FixtureError + '_ {
    move |source| FixtureError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    kind: SegmentKind,
    segment_count: usize,
    segment_durations_seconds: Vec<f64>,
    has_init_segment: bool,
    aes_key_hex: Option<String>,
}

impl Manifest {
    fn for_fixture_set(
        kind: SegmentKind,
        segment_durations_seconds: Vec<f64>,
        aes_key: Option<&[u8; 16]>,
    ) -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            kind,
            segment_count: FIXTURE_SEGMENT_COUNT,
            segment_durations_seconds,
            has_init_segment: kind == SegmentKind::Fmp4,
            aes_key_hex: aes_key.map(key_to_hex),
        }
    }
}

static CACHED_SETS: [OnceLock<Arc<MediaSet>>; 4] = [
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
];
static BUILD_LOCKS: [Mutex<()>; 4] = [
    Mutex::new(()),
    Mutex::new(()),
    Mutex::new(()),
    Mutex::new(()),
];

/// Environment variable naming another cache root (`<it>/v1/<kind>/` is then used).
pub const FIXTURE_CACHE_ENVIRONMENT_VARIABLE: &str = "STREAMBOT_FIXTURE_CACHE";

/// The root of the on-disk fixture cache: `$STREAMBOT_FIXTURE_CACHE/v1` when that is set,
/// else `std::env::temp_dir()/streambot-testkit-fixtures-v1`.
pub fn fixture_cache_root() -> PathBuf {
    match std::env::var_os(FIXTURE_CACHE_ENVIRONMENT_VARIABLE) {
        Some(configured) if !configured.is_empty() => PathBuf::from(configured).join("v1"),
        _ => std::env::temp_dir().join(CACHE_DIRECTORY_NAME),
    }
}

/// The directory the set of `kind` lives in (once made).
pub fn fixture_directory(kind: SegmentKind) -> PathBuf {
    fixture_cache_root().join(kind.directory_name())
}

/// Returns the fixture set of `kind`, making it with ffmpeg the first time on this machine.
///
/// Blocking (runs ffmpeg for ~1.5 s per kind on a cold cache); call it from `spawn_blocking` in
/// async code, or before starting the runtime.
pub fn media_fixtures(kind: SegmentKind) -> Result<Arc<MediaSet>, FixtureError> {
    let slot = kind.cache_slot();
    if let Some(cached) = CACHED_SETS[slot].get() {
        return Ok(Arc::clone(cached));
    }
    // The AES set is derived from the clear one: get that first, outside this kind's lock.
    let clear_set_for_aes = if kind == SegmentKind::MpegTsAes128 {
        Some(media_fixtures(SegmentKind::MpegTs)?)
    } else {
        None
    };
    let _build_guard = BUILD_LOCKS[slot]
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(cached) = CACHED_SETS[slot].get() {
        return Ok(Arc::clone(cached));
    }
    let media_set = Arc::new(load_or_build(kind, clear_set_for_aes.as_deref())?);
    let stored = CACHED_SETS[slot].get_or_init(|| media_set);
    Ok(Arc::clone(stored))
}

fn load_or_build(
    kind: SegmentKind,
    clear_set: Option<&MediaSet>,
) -> Result<MediaSet, FixtureError> {
    let final_directory = fixture_directory(kind);
    if final_directory.exists() {
        match load_from_directory(kind, &final_directory) {
            Ok(media_set) => return Ok(media_set),
            Err(load_error) => {
                tracing::warn!(%kind, error = %load_error, "fixture cache unreadable, rebuilding it");
                let aside = fixture_cache_root().join(unique_name(".broken", kind));
                if std::fs::rename(&final_directory, &aside).is_ok() {
                    let _ignored = std::fs::remove_dir_all(&aside);
                }
            }
        }
    }
    let root = fixture_cache_root();
    std::fs::create_dir_all(&root).map_err(io_error(&root))?;
    let building_directory = root.join(unique_name(".building", kind));
    std::fs::create_dir_all(&building_directory).map_err(io_error(&building_directory))?;
    let build_result = match (kind, clear_set) {
        (SegmentKind::MpegTsAes128, Some(clear_set)) => {
            build_aes_from_clear(clear_set, &building_directory)
        }
        (SegmentKind::MpegTsAes128, None) => Err(FixtureError::Unexpected {
            kind,
            detail: "the AES set needs the clear MPEG-TS set".to_string(),
        }),
        _ => build_with_ffmpeg(kind, &building_directory),
    };
    if let Err(build_error) = build_result {
        let _ignored = std::fs::remove_dir_all(&building_directory);
        return Err(build_error);
    }
    match std::fs::rename(&building_directory, &final_directory) {
        Ok(()) => {}
        Err(rename_error) => {
            // Another process won the race: use its set, drop ours.
            let _ignored = std::fs::remove_dir_all(&building_directory);
            if !final_directory.exists() {
                return Err(FixtureError::Io {
                    path: final_directory,
                    source: rename_error,
                });
            }
        }
    }
    load_from_directory(kind, &final_directory)
}

fn unique_name(prefix: &str, kind: SegmentKind) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since_epoch| since_epoch.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{kind}-{}-{nanos}", std::process::id())
}

fn segment_file_name(kind: SegmentKind, index: usize) -> String {
    format!("seg-{index}.{}", kind.segment_extension())
}

fn load_from_directory(kind: SegmentKind, directory: &Path) -> Result<MediaSet, FixtureError> {
    let manifest_path = directory.join(MANIFEST_FILE_NAME);
    let manifest_text =
        std::fs::read_to_string(&manifest_path).map_err(io_error(&manifest_path))?;
    let manifest: Manifest =
        serde_json::from_str(&manifest_text).map_err(|parse_error| FixtureError::Unexpected {
            kind,
            detail: format!("bad {}: {parse_error}", manifest_path.display()),
        })?;
    if manifest.version != MANIFEST_VERSION
        || manifest.kind != kind
        || manifest.segment_count != FIXTURE_SEGMENT_COUNT
        || manifest.segment_durations_seconds.len() != FIXTURE_SEGMENT_COUNT
    {
        return Err(FixtureError::Unexpected {
            kind,
            detail: format!("manifest {} does not match", manifest_path.display()),
        });
    }
    let read_bytes = |path: PathBuf| -> Result<Bytes, FixtureError> {
        std::fs::read(&path)
            .map(Bytes::from)
            .map_err(io_error(&path))
    };
    let segments = (0..FIXTURE_SEGMENT_COUNT)
        .map(|index| read_bytes(directory.join(segment_file_name(kind, index))))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(empty_index) = segments.iter().position(|segment| segment.is_empty()) {
        return Err(FixtureError::Unexpected {
            kind,
            detail: format!("segment {empty_index} is empty"),
        });
    }
    let init_segment = if manifest.has_init_segment {
        Some(read_bytes(directory.join("init.mp4"))?)
    } else {
        None
    };
    let aes_key = match &manifest.aes_key_hex {
        Some(key_hex) => Some(
            parse_key_hex(key_hex).ok_or_else(|| FixtureError::Unexpected {
                kind,
                detail: format!("bad AES key {key_hex:?} in the manifest"),
            })?,
        ),
        None => None,
    };
    let clear_segments = match (kind, aes_key) {
        (SegmentKind::MpegTsAes128, Some(key)) => Some(
            segments
                .iter()
                .enumerate()
                .map(|(index, segment)| decrypt_segment(segment, &key, index as u128))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| FixtureError::Unexpected {
                    kind,
                    detail: "an encrypted segment does not decrypt".to_string(),
                })?,
        ),
        _ => None,
    };
    Ok(MediaSet {
        kind,
        segments,
        segment_duration_seconds: FIXTURE_SEGMENT_DURATION_SECONDS,
        segment_durations_seconds: manifest.segment_durations_seconds,
        init_segment,
        aes_key,
        clear_segments,
        directory: directory.to_path_buf(),
    })
}

fn parse_key_hex(key_hex: &str) -> Option<[u8; 16]> {
    if key_hex.len() != 32 {
        return None;
    }
    let mut key = [0_u8; 16];
    for (index, byte) in key.iter_mut().enumerate() {
        let pair = key_hex.get(index * 2..index * 2 + 2)?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(key)
}

fn key_to_hex(key: &[u8; 16]) -> String {
    key.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// AES-128-CBC with PKCS#7 padding, as HLS `METHOD=AES-128` requires.
pub fn encrypt_segment(clear: &[u8], key: &[u8; 16], initialization_vector: u128) -> Bytes {
    let encryptor = cbc::Encryptor::<aes::Aes128>::new(
        &(*key).into(),
        &initialization_vector.to_be_bytes().into(),
    );
    Bytes::from(encryptor.encrypt_padded_vec_mut::<Pkcs7>(clear))
}

/// Inverse of [`encrypt_segment`]; `None` when the padding is wrong.
pub fn decrypt_segment(
    encrypted: &[u8],
    key: &[u8; 16],
    initialization_vector: u128,
) -> Option<Bytes> {
    use aes::cipher::BlockDecryptMut;
    let decryptor = cbc::Decryptor::<aes::Aes128>::new(
        &(*key).into(),
        &initialization_vector.to_be_bytes().into(),
    );
    decryptor
        .decrypt_padded_vec_mut::<Pkcs7>(encrypted)
        .ok()
        .map(Bytes::from)
}

fn ffmpeg_arguments(kind: SegmentKind) -> Vec<String> {
    let duration = FIXTURE_SEGMENT_COUNT.to_string();
    let mut arguments: Vec<&str> = vec!["-nostdin", "-y", "-hide_banner", "-loglevel", "error"];
    if kind.has_video() {
        arguments.extend(["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25"]);
    }
    arguments.extend([
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &duration,
    ]);
    if kind.has_video() {
        arguments.extend([
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "25",
            "-keyint_min",
            "25",
            "-sc_threshold",
            "0",
            "-preset",
            "ultrafast",
        ]);
    } else {
        arguments.push("-vn");
    }
    arguments.extend([
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        "-f",
        "hls",
        "-hls_time",
        "1",
        "-hls_list_size",
        "0",
        "-hls_playlist_type",
        "vod",
    ]);
    let segment_pattern = format!("seg-%d.{}", kind.segment_extension());
    if kind == SegmentKind::Fmp4 {
        arguments.extend([
            "-hls_segment_type",
            "fmp4",
            "-hls_fmp4_init_filename",
            "init.mp4",
        ]);
    }
    arguments.extend(["-hls_segment_filename", &segment_pattern, "index.m3u8"]);
    arguments.into_iter().map(str::to_string).collect()
}

fn build_with_ffmpeg(kind: SegmentKind, directory: &Path) -> Result<(), FixtureError> {
    let output = Command::new("ffmpeg")
        .args(ffmpeg_arguments(kind))
        .current_dir(directory)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|spawn_error| {
            if spawn_error.kind() == io::ErrorKind::NotFound {
                FixtureError::FfmpegNotFound
            } else {
                FixtureError::Io {
                    path: PathBuf::from("ffmpeg"),
                    source: spawn_error,
                }
            }
        })?;
    if !output.status.success() {
        let stderr_text = String::from_utf8_lossy(&output.stderr);
        let stderr_tail: String = stderr_text
            .lines()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" | ");
        return Err(FixtureError::FfmpegFailed {
            kind,
            status: output.status.to_string(),
            stderr_tail,
        });
    }
    let playlist_path = directory.join("index.m3u8");
    let playlist_text =
        std::fs::read_to_string(&playlist_path).map_err(io_error(&playlist_path))?;
    let all_durations: Vec<f64> = playlist_text
        .lines()
        .filter_map(|line| line.strip_prefix("#EXTINF:"))
        .filter_map(|rest| rest.split(',').next())
        .filter_map(|number| number.trim().parse::<f64>().ok())
        .collect();
    if all_durations.len() < FIXTURE_SEGMENT_COUNT {
        return Err(FixtureError::Unexpected {
            kind,
            detail: format!(
                "ffmpeg made {} segments, wanted {FIXTURE_SEGMENT_COUNT}",
                all_durations.len()
            ),
        });
    }
    // Audio-only AAC may leave a sliver of a 91st segment: drop anything past 90.
    for extra_index in FIXTURE_SEGMENT_COUNT..all_durations.len() {
        let extra_path = directory.join(segment_file_name(kind, extra_index));
        let _ignored = std::fs::remove_file(extra_path);
    }
    let segment_durations_seconds = all_durations[..FIXTURE_SEGMENT_COUNT].to_vec();
    let tolerance = if kind.has_video() { 0.001 } else { 0.025 };
    if let Some(bad_duration) = segment_durations_seconds
        .iter()
        .find(|duration| (**duration - FIXTURE_SEGMENT_DURATION_SECONDS).abs() > tolerance)
    {
        return Err(FixtureError::Unexpected {
            kind,
            detail: format!("a segment lasts {bad_duration} s, wanted 1.0 s"),
        });
    }
    write_manifest(
        directory,
        &Manifest::for_fixture_set(kind, segment_durations_seconds, None),
    )
}

fn build_aes_from_clear(clear_set: &MediaSet, directory: &Path) -> Result<(), FixtureError> {
    let kind = SegmentKind::MpegTsAes128;
    let mut playlist = String::from(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-KEY:METHOD=AES-128,URI=\"key.bin\"\n",
    );
    for (index, clear_segment) in clear_set.segments.iter().enumerate() {
        let encrypted = encrypt_segment(clear_segment, &FIXTURE_AES_KEY, index as u128);
        let segment_path = directory.join(segment_file_name(kind, index));
        std::fs::write(&segment_path, &encrypted).map_err(io_error(&segment_path))?;
        let duration = clear_set
            .segment_durations_seconds
            .get(index)
            .copied()
            .unwrap_or(FIXTURE_SEGMENT_DURATION_SECONDS);
        playlist.push_str(&format!(
            "#EXTINF:{duration:.6},\n{}\n",
            segment_file_name(kind, index)
        ));
    }
    playlist.push_str("#EXT-X-ENDLIST\n");
    let key_path = directory.join("key.bin");
    std::fs::write(&key_path, FIXTURE_AES_KEY).map_err(io_error(&key_path))?;
    let playlist_path = directory.join("index.m3u8");
    std::fs::write(&playlist_path, playlist).map_err(io_error(&playlist_path))?;
    write_manifest(
        directory,
        &Manifest::for_fixture_set(
            kind,
            clear_set.segment_durations_seconds.clone(),
            Some(&FIXTURE_AES_KEY),
        ),
    )
}

fn write_manifest(directory: &Path, manifest: &Manifest) -> Result<(), FixtureError> {
    let manifest_path = directory.join(MANIFEST_FILE_NAME);
    let manifest_text = serde_json::to_string_pretty(manifest).map_err(|encode_error| {
        FixtureError::Unexpected {
            kind: manifest.kind,
            detail: format!("manifest encoding: {encode_error}"),
        }
    })?;
    std::fs::write(&manifest_path, manifest_text).map_err(io_error(&manifest_path))
}
