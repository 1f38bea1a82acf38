//! The playlist parser against the shared peer corpus (808 playlists from the test suites of
//! other HLS parsers) and against the small fixtures copied into `tests/fixtures/playlists/`.
//!
//! Corpus directory: `STREAMBOT_CORPUS_DIR`, else `<CARGO_MANIFEST_DIR>/../../../shared/corpus`.
//! When it is absent the corpus tests print a skip message and pass; the fixture tests always run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use streambot_hls::playlist::{
    ByteRange, KeyMethod, MasterPlaylist, MediaPlaylist, Playlist, PlaylistParseError,
    parse_playlist,
};

// ---------------------------------------------------------------------------------------------
// Independent line scan: what the parser must agree with, computed without the parser.
// ---------------------------------------------------------------------------------------------

/// Trimmed, non-blank lines; any of `\r\n`, `\r`, `\n` ends a line; a BOM is dropped.
fn scan_lines(text: &str) -> Vec<&str> {
    text.trim_start_matches('\u{feff}')
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect()
}

fn has_stream_inf_line(text: &str) -> bool {
    scan_lines(text)
        .iter()
        .any(|line| line.starts_with("#EXT-X-STREAM-INF"))
}

/// `#EXTINF` not continued by another tag-name character (so `#EXTINFO` is not one).
fn is_extinf_line(line: &str) -> bool {
    line.strip_prefix("#EXTINF").is_some_and(|rest| {
        !rest.starts_with(|character: char| character.is_ascii_alphanumeric() || character == '-')
    })
}

fn count_extinf_lines(text: &str) -> usize {
    scan_lines(text)
        .iter()
        .filter(|line| is_extinf_line(line))
        .count()
}

/// The number of `#EXTINF` lines followed (before the next `#EXTINF`) by a URI line.
fn count_extinf_lines_followed_by_uri(text: &str) -> usize {
    let mut count = 0;
    let mut extinf_waiting_for_uri = false;
    for line in scan_lines(text) {
        if is_extinf_line(line) {
            extinf_waiting_for_uri = true;
        } else if !line.starts_with('#') && extinf_waiting_for_uri {
            count += 1;
            extinf_waiting_for_uri = false;
        }
    }
    count
}

fn has_header_or_hls_tag(text: &str) -> bool {
    scan_lines(text).iter().any(|line| {
        line.starts_with("#EXTM3U") || line.starts_with("#EXTINF") || line.starts_with("#EXT-X-")
    })
}

// ---------------------------------------------------------------------------------------------
// Corpus access.
// ---------------------------------------------------------------------------------------------

fn corpus_directory() -> Option<PathBuf> {
    let directory = match std::env::var_os("STREAMBOT_CORPUS_DIR") {
        Some(directory) => PathBuf::from(directory),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
    };
    if directory.join("hls-playlists").is_dir() {
        Some(directory)
    } else {
        streambot_testkit::requirements::skip_or_fail(
            &format!("the playlist corpus at {}", directory.display()),
            "set STREAMBOT_CORPUS_DIR to /work/shared/corpus",
        );
        None
    }
}

fn collect_playlist_files(directory: &Path, playlist_files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_playlist_files(&path, playlist_files);
        } else if path
            .extension()
            .is_some_and(|extension| extension == "m3u8")
        {
            playlist_files.push(path);
        }
    }
}

fn read_playlist_text(path: &Path) -> String {
    let bytes =
        std::fs::read(path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    String::from_utf8_lossy(&bytes).into_owned()
}

fn relative_name(corpus: &Path, path: &Path) -> String {
    path.strip_prefix(corpus)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Parses inside `catch_unwind` so that a panic names the file.
fn parse_without_panic(name: &str, text: &str) -> Result<Playlist, PlaylistParseError> {
    match std::panic::catch_unwind(|| parse_playlist(text)) {
        Ok(result) => result,
        Err(_) => panic!("the parser panicked on {name}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The whole corpus: no panic, classification, segment counts, URIs.
// ---------------------------------------------------------------------------------------------

#[test]
fn every_corpus_playlist_parses_with_the_right_kind_and_segment_count() {
    let Some(corpus) = corpus_directory() else {
        return;
    };
    let mut playlist_files = Vec::new();
    collect_playlist_files(&corpus.join("hls-playlists"), &mut playlist_files);
    playlist_files.sort();
    assert!(
        playlist_files.len() >= 800,
        "expected the 808 corpus playlists, found {}",
        playlist_files.len()
    );

    let mut master_count = 0;
    let mut media_count = 0;
    let mut segment_count = 0;
    let mut rejected: BTreeMap<String, String> = BTreeMap::new();
    let mut failures = Vec::new();
    for path in &playlist_files {
        let name = relative_name(&corpus, path);
        let text = read_playlist_text(path);
        let expected_master = has_stream_inf_line(&text);
        match parse_without_panic(&name, &text) {
            Ok(Playlist::Master(master_playlist)) => {
                master_count += 1;
                if !expected_master && !only_master_tags_without_stream_inf(&text) {
                    failures.push(format!("{name}: parsed as master, has no EXT-X-STREAM-INF"));
                }
                check_master_uris(&name, &master_playlist, &mut failures);
            }
            Ok(Playlist::Media(media_playlist)) => {
                media_count += 1;
                segment_count += media_playlist.segments.len();
                if expected_master {
                    failures.push(format!("{name}: parsed as media, has EXT-X-STREAM-INF"));
                }
                check_media_segments(&name, &text, &media_playlist, &mut failures);
            }
            Err(error) => {
                if !matches!(
                    error,
                    PlaylistParseError::NotAPlaylist | PlaylistParseError::Empty
                ) || has_header_or_hls_tag(&text)
                {
                    rejected.insert(name, error.to_string());
                }
            }
        }
    }
    let unexpected_rejections: Vec<String> = rejected
        .iter()
        .filter(|(name, _)| {
            !EXPECTED_REJECTIONS
                .iter()
                .any(|(expected_name, _)| name.ends_with(expected_name))
        })
        .map(|(name, error)| format!("{name}: rejected: {error}"))
        .collect();
    failures.extend(unexpected_rejections);
    for (expected_name, reason) in EXPECTED_REJECTIONS {
        if !rejected.keys().any(|name| name.ends_with(expected_name)) {
            failures.push(format!(
                "{expected_name}: expected a rejection ({reason}), it parsed"
            ));
        }
    }
    eprintln!(
        "playlist corpus: {} files parsed, {master_count} master, {media_count} media, {segment_count} segments, {} rejected as intended",
        playlist_files.len(),
        rejected.len()
    );
    assert!(
        failures.is_empty(),
        "{} corpus failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Files the parser refuses on purpose, with why. Each must still be refused.
const EXPECTED_REJECTIONS: &[(&str, &str)] = &[(
    "globocom-m3u8/PLAYLIST_WITH_TAG_MEDIA_READY.m3u8",
    "its AES-128 key has the placeholder IV=[IV]: decrypting with a guessed IV would corrupt the \
     recording, so the playlist is refused with the line number",
)];

/// A master playlist may be recognised by `#EXT-X-MEDIA` / `#EXT-X-I-FRAME-STREAM-INF` /
/// `#EXT-X-SESSION-*` alone when it has no segment tags.
fn only_master_tags_without_stream_inf(text: &str) -> bool {
    let lines = scan_lines(text);
    let has_media_tags = lines
        .iter()
        .any(|line| line.starts_with("#EXTINF") || line.starts_with("#EXT-X-TARGETDURATION"));
    let has_master_only_tags = lines.iter().any(|line| {
        [
            "#EXT-X-MEDIA:",
            "#EXT-X-I-FRAME-STREAM-INF",
            "#EXT-X-SESSION-",
        ]
        .iter()
        .any(|prefix| line.starts_with(prefix))
    });
    !has_media_tags && has_master_only_tags
}

fn check_uri(name: &str, what: &str, uri: &str, failures: &mut Vec<String>) {
    if uri.is_empty() || uri.starts_with('#') {
        failures.push(format!("{name}: {what} has URI {uri:?}"));
    }
}

fn check_master_uris(name: &str, master_playlist: &MasterPlaylist, failures: &mut Vec<String>) {
    for variant in master_playlist
        .variants
        .iter()
        .chain(&master_playlist.i_frame_variants)
    {
        check_uri(name, "a variant", &variant.uri, failures);
    }
}

fn check_media_segments(
    name: &str,
    text: &str,
    media_playlist: &MediaPlaylist,
    failures: &mut Vec<String>,
) {
    let expected_segment_count = count_extinf_lines_followed_by_uri(text);
    if media_playlist.segments.len() != expected_segment_count {
        failures.push(format!(
            "{name}: {} segments, {expected_segment_count} EXTINF lines followed by a URI",
            media_playlist.segments.len()
        ));
    }
    for segment in &media_playlist.segments {
        check_uri(name, "a segment", &segment.uri, failures);
    }
}

// ---------------------------------------------------------------------------------------------
// video.js m3u8-parser: its expected parse, summarised in `*.expect.json`.
// ---------------------------------------------------------------------------------------------

/// Places where the peer's expectation is wrong and RFC 8216 is asserted instead:
/// (playlist, segment index, the key URI RFC 8216 gives).
/// `encrypted.m3u8`: video.js expects `r=52` for segment 3, but `#EXT-X-KEY ...r=53` stands right
/// before it and a key applies to every following segment (RFC 8216 4.3.2.4).
const VIDEOJS_KEY_URI_CORRECTIONS: &[(&str, usize, &str)] =
    &[("encrypted.m3u8", 3, "https://priv.example.com/key.php?r=53")];

/// Where this parser deliberately differs from video.js, with why. For these files the
/// segment list is not compared (the segment count rule is checked by the whole-corpus test);
/// the header values still are.
const VIDEOJS_SEGMENT_RULE_DIVERGENCES: &[(&str, &str)] = &[
    // video.js turns a URI line without #EXTINF into a segment with the target duration. Here a
    // segment is exactly an #EXTINF followed by its URI (RFC 8216 4.3.2.1: EXTINF is REQUIRED).
    (
        "extinf.m3u8",
        "last URI has #EXT-X-BYTERANGE but no #EXTINF",
    ),
    (
        "liveMissingSegmentDuration.m3u8",
        "two URI lines without #EXTINF",
    ),
    ("missingExtinf.m3u8", "one URI line without #EXTINF"),
    (
        "missingSegmentDuration.m3u8",
        "three URI lines without #EXTINF",
    ),
    (
        "multipleTargetDurations.m3u8",
        "three URI lines without #EXTINF",
    ),
];

#[test]
fn corpus_agrees_with_videojs_expectations() {
    let Some(corpus) = corpus_directory() else {
        return;
    };
    let videojs_directory = corpus.join("hls-playlists/videojs-m3u8-parser");
    let mut expectation_files: Vec<PathBuf> = std::fs::read_dir(&videojs_directory)
        .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
        .unwrap_or_default();
    expectation_files.retain(|path| path.to_string_lossy().ends_with(".expect.json"));
    expectation_files.sort();
    assert!(
        !expectation_files.is_empty(),
        "no video.js expectations found"
    );

    let mut failures = Vec::new();
    let mut compared_count = 0;
    for expectation_path in &expectation_files {
        let expectation_text = read_playlist_text(expectation_path);
        let expectation: Value = serde_json::from_str(&expectation_text)
            .unwrap_or_else(|error| panic!("{}: {error}", expectation_path.display()));
        let Some(summary) = expectation.get("summary") else {
            continue;
        };
        let playlist_name = expectation_path
            .file_name()
            .map(|file_name| file_name.to_string_lossy().replace(".expect.json", ".m3u8"))
            .unwrap_or_default();
        let playlist_path = videojs_directory.join(&playlist_name);
        if !playlist_path.is_file() {
            continue;
        }
        let text = read_playlist_text(&playlist_path);
        compared_count += 1;
        let parse_result = parse_without_panic(&playlist_name, &text);
        let mut comparison = VideojsComparison {
            playlist_name: playlist_name.clone(),
            failures: &mut failures,
        };
        match parse_result {
            Ok(Playlist::Media(media_playlist)) => {
                compare_videojs_media(&mut comparison, summary, &media_playlist)
            }
            Ok(Playlist::Master(master_playlist)) => {
                compare_videojs_master(&mut comparison, summary, &master_playlist)
            }
            // video.js returns an empty manifest for an empty text; ours is an error.
            Err(PlaylistParseError::Empty) if playlist_name == "empty.m3u8" => {}
            Err(error) => failures.push(format!("{playlist_name}: rejected: {error}")),
        }
    }
    eprintln!("video.js expectations: {compared_count} playlists compared");
    assert!(
        failures.is_empty(),
        "{} disagreements with video.js:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Records a disagreement between our parse and video.js's expectation.
struct VideojsComparison<'failures> {
    playlist_name: String,
    failures: &'failures mut Vec<String>,
}

impl VideojsComparison<'_> {
    fn expect_equal<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, ours: T, theirs: T) {
        if ours != theirs {
            self.failures.push(format!(
                "{}: {what}: ours {ours:?}, video.js {theirs:?}",
                self.playlist_name
            ));
        }
    }
}

fn json_strings(value: &Value) -> Option<Vec<&str>> {
    value
        .as_array()
        .map(|values| values.iter().filter_map(Value::as_str).collect())
}

fn compare_videojs_master(
    comparison: &mut VideojsComparison,
    summary: &Value,
    master_playlist: &MasterPlaylist,
) {
    comparison.expect_equal("type", "master", summary["type"].as_str().unwrap_or("?"));
    if let Some(variant_count) = summary["variant_count"].as_u64() {
        comparison.expect_equal(
            "variant count",
            master_playlist.variants.len() as u64,
            variant_count,
        );
    }
    if let Some(expected_uris) = json_strings(&summary["variant_uris"]) {
        let our_uris: Vec<&str> = master_playlist
            .variants
            .iter()
            .map(|variant| variant.uri.as_str())
            .collect();
        comparison.expect_equal("variant URIs", our_uris, expected_uris);
    }
}

fn compare_videojs_media(
    comparison: &mut VideojsComparison,
    summary: &Value,
    media_playlist: &MediaPlaylist,
) {
    comparison.expect_equal("type", "media", summary["type"].as_str().unwrap_or("?"));
    // video.js leaves an invalid TARGETDURATION undefined (null); ours is 0.
    if let Some(expected_target_duration) = summary.get("target_duration") {
        comparison.expect_equal(
            "target duration",
            media_playlist.target_duration,
            expected_target_duration.as_f64().unwrap_or(0.0),
        );
    }
    // Sequence numbers are unsigned here: a negative one (video.js keeps -11) falls back to 0.
    for (what, ours, key) in [
        (
            "media sequence",
            media_playlist.media_sequence,
            "media_sequence",
        ),
        (
            "discontinuity sequence",
            media_playlist.discontinuity_sequence,
            "discontinuity_sequence",
        ),
    ] {
        if let Some(expected) = summary[key].as_i64() {
            comparison.expect_equal(what, ours as i64, expected.max(0));
        }
    }
    let header_only = VIDEOJS_SEGMENT_RULE_DIVERGENCES
        .iter()
        .any(|(file, _)| *file == comparison.playlist_name);
    if header_only {
        return;
    }
    let segments = &media_playlist.segments;
    comparison.expect_equal(
        "segment count",
        Some(segments.len() as u64),
        summary["segment_count"].as_u64(),
    );
    if let Some(expected_uris) = json_strings(&summary["segment_uris"]) {
        let our_uris: Vec<&str> = segments
            .iter()
            .map(|segment| segment.uri.as_str())
            .collect();
        comparison.expect_equal("segment URIs", our_uris, expected_uris);
    }
    if let Some(expected_keys) = summary["keys"].as_array() {
        let our_keys: Vec<(Option<&str>, Option<String>)> = segments
            .iter()
            .map(|segment| {
                let key = segment.key.as_ref();
                (
                    key.and_then(|key| key.uri.as_deref()),
                    key.map(|key| videojs_method_name(&key.method)),
                )
            })
            .collect();
        let expected_keys: Vec<(Option<&str>, Option<String>)> = expected_keys
            .iter()
            .enumerate()
            .map(|(segment_index, expected_key)| {
                let correction = VIDEOJS_KEY_URI_CORRECTIONS
                    .iter()
                    .find(|(file, index, _)| {
                        *file == comparison.playlist_name && *index == segment_index
                    })
                    .map(|(_, _, rfc_uri)| *rfc_uri);
                (
                    correction.or_else(|| expected_key["uri"].as_str()),
                    expected_key["method"].as_str().map(str::to_string),
                )
            })
            .collect();
        comparison.expect_equal("keys (URI, method)", our_keys, expected_keys);
    }
    if let Some(expected_byte_ranges) = summary["byteranges"].as_array() {
        let our_byte_ranges: Vec<Option<ByteRange>> =
            segments.iter().map(|segment| segment.byte_range).collect();
        let expected_byte_ranges: Vec<Option<ByteRange>> = expected_byte_ranges
            .iter()
            .map(byte_range_from_json)
            .collect();
        comparison.expect_equal("byte ranges", our_byte_ranges, expected_byte_ranges);
    }
    if let Some(expected_maps) = summary["maps"].as_array() {
        let our_maps: Vec<Option<(&str, Option<ByteRange>)>> = segments
            .iter()
            .map(|segment| {
                segment
                    .map
                    .as_ref()
                    .map(|map| (map.uri.as_str(), map.byte_range))
            })
            .collect();
        let expected_maps: Vec<Option<(&str, Option<ByteRange>)>> = expected_maps
            .iter()
            .map(|expected_map| {
                expected_map["uri"]
                    .as_str()
                    .map(|uri| (uri, byte_range_from_json(&expected_map["byterange"])))
            })
            .collect();
        comparison.expect_equal("maps", our_maps, expected_maps);
    }
}

fn videojs_method_name(method: &KeyMethod) -> String {
    match method {
        KeyMethod::None => "NONE".to_string(),
        KeyMethod::Aes128 => "AES-128".to_string(),
        KeyMethod::SampleAes => "SAMPLE-AES".to_string(),
        KeyMethod::SampleAesCtr => "SAMPLE-AES-CTR".to_string(),
        KeyMethod::Other(method_name) => method_name.clone(),
    }
}

fn byte_range_from_json(value: &Value) -> Option<ByteRange> {
    Some(ByteRange {
        length: value.get("length")?.as_u64()?,
        offset: value.get("offset")?.as_u64()?,
    })
}

// ---------------------------------------------------------------------------------------------
// m3u8-rs 6.0.1: the 47 playlists whose segment count it got wrong.
// ---------------------------------------------------------------------------------------------

#[test]
fn playlists_that_m3u8_rs_miscounted_have_one_segment_per_extinf() {
    let Some(corpus) = corpus_directory() else {
        return;
    };
    let mismatch_list_path =
        corpus.join("hls-playlists/_m3u8-rs-6.0.1-segment-count-mismatches.tsv");
    let mismatch_list = read_playlist_text(&mismatch_list_path);
    let listed_files: Vec<&str> = mismatch_list
        .lines()
        .skip(1)
        .filter_map(|row| row.split('\t').next())
        .filter(|file| !file.trim().is_empty())
        .collect();
    assert_eq!(listed_files.len(), 47, "the m3u8-rs mismatch list changed");

    let mut failures = Vec::new();
    for listed_file in listed_files {
        let relative_path = listed_file
            .strip_prefix("playlists/")
            .unwrap_or(listed_file);
        let path = corpus.join("hls-playlists").join(relative_path);
        let text = read_playlist_text(&path);
        match parse_without_panic(listed_file, &text) {
            Ok(Playlist::Media(media_playlist)) => {
                let extinf_count = count_extinf_lines(&text);
                let segment_count = media_playlist.segments.len();
                // Two listed files end with an #EXTINF that has no URI line (dropped here).
                let expected_count = count_extinf_lines_followed_by_uri(&text);
                if segment_count != expected_count {
                    failures.push(format!(
                        "{listed_file}: {segment_count} segments, {extinf_count} EXTINF lines, {expected_count} followed by a URI"
                    ));
                }
            }
            Ok(Playlist::Master(_)) if has_stream_inf_line(&text) => {}
            Ok(Playlist::Master(_)) => {
                failures.push(format!("{listed_file}: master without STREAM-INF"))
            }
            Err(error) => failures.push(format!("{listed_file}: rejected: {error}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Fixtures copied from the corpus (see tests/fixtures/playlists/ORIGIN.md): always run.
// ---------------------------------------------------------------------------------------------

const FIXTURE_TITLE_WITH_HASH: &str =
    include_str!("fixtures/playlists/exoplayer_title_with_hash_and_byteranges.m3u8");
const FIXTURE_LLHLS_BYTE_RANGE: &str =
    include_str!("fixtures/playlists/videojs_llhls_byte_range.m3u8");
const FIXTURE_LLHLS_DELTA: &str = include_str!("fixtures/playlists/videojs_llhls_delta.m3u8");
const FIXTURE_MASTER_STRAY_TARGET_DURATION: &str =
    include_str!("fixtures/playlists/videojs_master_stray_targetduration.m3u8");
const FIXTURE_ENCRYPTED: &str = include_str!("fixtures/playlists/videojs_encrypted.m3u8");
const FIXTURE_TARGET_DURATION_DECIMAL: &str =
    include_str!("fixtures/playlists/hlsjs_targetduration_decimal.m3u8");

const ALL_FIXTURES: [&str; 6] = [
    FIXTURE_TITLE_WITH_HASH,
    FIXTURE_LLHLS_BYTE_RANGE,
    FIXTURE_LLHLS_DELTA,
    FIXTURE_MASTER_STRAY_TARGET_DURATION,
    FIXTURE_ENCRYPTED,
    FIXTURE_TARGET_DURATION_DECIMAL,
];

fn expect_media(text: &str) -> MediaPlaylist {
    match parse_playlist(text) {
        Ok(Playlist::Media(media_playlist)) => media_playlist,
        other => panic!("expected a media playlist, got {other:?}"),
    }
}

fn iv_from_hex(hex_digits: &str) -> [u8; 16] {
    let padded = format!("{hex_digits:0>32}");
    let mut initialization_vector = [0u8; 16];
    for (index, byte) in initialization_vector.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&padded[index * 2..index * 2 + 2], 16).expect("test hex");
    }
    initialization_vector
}

#[test]
fn fixture_title_with_hash_keys_and_byte_ranges() {
    let media_playlist = expect_media(FIXTURE_TITLE_WITH_HASH);
    let segments = &media_playlist.segments;
    assert_eq!(segments.len(), 6);
    assert_eq!(media_playlist.target_duration, 8.0);
    assert_eq!(
        media_playlist.playlist_type,
        Some(streambot_hls::playlist::PlaylistType::Vod)
    );
    assert!(media_playlist.end_list);
    let sequences: Vec<(u64, u64)> = segments
        .iter()
        .map(|segment| (segment.media_sequence, segment.discontinuity_sequence))
        .collect();
    assert_eq!(
        sequences,
        vec![
            (2679, 4),
            (2680, 4),
            (2681, 4),
            (2682, 5),
            (2683, 5),
            (2684, 5)
        ]
    );
    assert!(segments[3].discontinuity);
    assert_eq!(
        segments[2].title.as_deref(),
        Some("segment title .,:/# with interesting chars")
    );
    assert_eq!(
        segments[2].uri,
        "https://priv.example.com/fileSequence2681.ts"
    );
    for segment in segments {
        assert!(!segment.uri.starts_with('#') && !segment.uri.is_empty());
    }
    // Keys: none, AES-128 with a short IV (left-padded), NONE clears, then AES-128 without IV.
    assert_eq!(segments[0].key, None);
    let second_key = segments[1].key.as_ref().expect("key in force");
    assert_eq!(second_key.method, KeyMethod::Aes128);
    assert_eq!(
        second_key.uri.as_deref(),
        Some("https://priv.example.com/key.php?r=2680")
    );
    assert_eq!(second_key.iv, Some(iv_from_hex("1566B")));
    assert_eq!(segments[2].key, None);
    let fourth_key = segments[3].key.as_ref().expect("key in force");
    assert_eq!(
        fourth_key.uri.as_deref(),
        Some("https://priv.example.com/key.php?r=2682")
    );
    assert_eq!(fourth_key.iv, None);
    assert_eq!(segments[5].key, segments[3].key);
    // Byte ranges: a missing offset continues where the previous sub-range ended.
    let byte_ranges: Vec<Option<(u64, u64)>> = segments
        .iter()
        .map(|segment| segment.byte_range.map(|range| (range.length, range.offset)))
        .collect();
    assert_eq!(
        byte_ranges,
        vec![
            Some((51370, 0)),
            Some((51501, 2147483648)),
            Some((51501, 2147535149)),
            Some((51740, 2147586650)),
            None,
            None,
        ]
    );
    assert!((media_playlist.total_duration() - 41.843).abs() < 1e-9);
}

#[test]
fn fixture_byte_range_with_empty_offset_and_trailing_ll_hls_tags() {
    let media_playlist = expect_media(FIXTURE_LLHLS_BYTE_RANGE);
    let segments = &media_playlist.segments;
    assert_eq!(segments.len(), 17);
    assert_eq!(
        segments[0].byte_range,
        Some(ByteRange {
            length: 587500,
            offset: 0
        })
    );
    // `713084` without offset on another URI: continues after the previous segment (as hls.js and
    // video.js do; the playlist is out of spec there).
    assert_eq!(segments[2].uri, "hls_450k_video2.ts");
    assert_eq!(
        segments[2].byte_range,
        Some(ByteRange {
            length: 713084,
            offset: 1110328
        })
    );
    let last_segment = segments.last().expect("segments");
    assert_eq!(last_segment.uri, "hls_450k_video.ts");
    assert_eq!(last_segment.duration, 1.4167);
    assert!(segments.iter().all(|segment| segment.uri.ends_with(".ts")));
}

#[test]
fn fixture_ll_hls_delta_update() {
    let media_playlist = expect_media(FIXTURE_LLHLS_DELTA);
    assert_eq!(media_playlist.skipped_segments, 3);
    assert_eq!(media_playlist.part_target, Some(0.33334));
    assert_eq!(media_playlist.version, Some(9));
    let uris_and_sequences: Vec<(&str, u64)> = media_playlist
        .segments
        .iter()
        .map(|segment| (segment.uri.as_str(), segment.media_sequence))
        .collect();
    assert_eq!(
        uris_and_sequences,
        vec![
            ("fileSequence269.mp4", 269),
            ("fileSequence270.mp4", 270),
            ("fileSequence271.mp4", 271),
            ("fileSequence272.mp4", 272),
        ]
    );
    assert_eq!(
        media_playlist.segments[3].program_date_time.as_deref(),
        Some("2019-02-14T02:14:00.106Z")
    );
    assert_eq!(media_playlist.next_media_sequence(), 273);
}

#[test]
fn fixture_master_with_stray_target_duration() {
    let Ok(Playlist::Master(master_playlist)) =
        parse_playlist(FIXTURE_MASTER_STRAY_TARGET_DURATION)
    else {
        panic!("expected a master playlist");
    };
    let bandwidths: Vec<u64> = master_playlist
        .variants
        .iter()
        .map(|variant| variant.bandwidth)
        .collect();
    assert_eq!(bandwidths, vec![240000, 40000, 440000, 1928000]);
    assert!(
        master_playlist.variants[0]
            .uri
            .starts_with("http://c.brightcove.com/")
    );
    assert_eq!(
        master_playlist.variants[3].resolution,
        Some(streambot_hls::playlist::Resolution {
            width: 960,
            height: 540
        })
    );
}

#[test]
fn fixture_encrypted_keys_and_bom_crlf_variant() {
    let media_playlist = expect_media(FIXTURE_ENCRYPTED);
    let key_uris: Vec<Option<&str>> = media_playlist
        .segments
        .iter()
        .map(|segment| segment.key.as_ref().and_then(|key| key.uri.as_deref()))
        .collect();
    // RFC 8216 4.3.2.4: segment 3 carries r=53 (video.js's own fixture says r=52).
    assert_eq!(
        key_uris,
        vec![
            Some("https://priv.example.com/key.php?r=52"),
            Some("https://priv.example.com/key.php?r=52"),
            Some("https://priv.example.com/key.php?r=52"),
            Some("https://priv.example.com/key.php?r=53"),
            Some("https://priv.example.com/key.php?r=54"),
            None,
        ]
    );
    assert_eq!(
        media_playlist.segments[4]
            .key
            .as_ref()
            .and_then(|key| key.iv),
        Some(iv_from_hex("00000000000000000000014BB69D61E4"))
    );
    assert_eq!(media_playlist.media_sequence, 7794);

    let with_bom_and_crlf = format!("\u{feff}{}", FIXTURE_ENCRYPTED.replace('\n', "\r\n"));
    assert_eq!(expect_media(&with_bom_and_crlf), media_playlist);
    let with_cr_and_spaces = FIXTURE_ENCRYPTED
        .lines()
        .map(|line| format!("  {line}\t"))
        .collect::<Vec<_>>()
        .join("\r");
    assert_eq!(expect_media(&with_cr_and_spaces), media_playlist);
}

#[test]
fn fixture_decimal_target_duration() {
    let media_playlist = expect_media(FIXTURE_TARGET_DURATION_DECIMAL);
    assert_eq!(media_playlist.target_duration, 2.5);
    assert!(media_playlist.segments.is_empty());
    let five = expect_media("#EXTM3U\n#EXT-X-TARGETDURATION:5.0\n#EXTINF:4.5,\na.ts\n");
    assert_eq!(five.target_duration, 5.0);
    assert_eq!(five.segments.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Robustness: prefixes, shuffles and noise never panic, and segments never come from tags.
// ---------------------------------------------------------------------------------------------

/// A fixed-seed linear congruential generator (Knuth's MMIX constants): reproducible noise
/// without a dependency.
struct LinearCongruentialGenerator {
    state: u64,
}

impl LinearCongruentialGenerator {
    fn next_value(&mut self) -> u64 {
        self.state = self
            .state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.state >> 33
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next_value() % bound.max(1) as u64) as usize
    }
}

fn assert_sane_parse(text: &str) {
    let parse_result = parse_without_panic("generated input", text);
    if let Ok(Playlist::Media(media_playlist)) = parse_result {
        assert_eq!(
            media_playlist.segments.len(),
            count_extinf_lines_followed_by_uri(text),
            "segment count on generated input:\n{text}"
        );
        for segment in &media_playlist.segments {
            assert!(!segment.uri.is_empty() && !segment.uri.starts_with('#'));
        }
    }
}

#[test]
fn every_prefix_of_the_fixtures_parses_without_panic() {
    for fixture in ALL_FIXTURES {
        for (byte_index, _) in fixture.char_indices() {
            assert_sane_parse(&fixture[..byte_index]);
        }
        assert_sane_parse(fixture);
    }
}

#[test]
fn shuffled_lines_and_noise_parse_without_panic() {
    let mut generator = LinearCongruentialGenerator { state: 0x5eed };
    for fixture in ALL_FIXTURES {
        let lines: Vec<&str> = fixture.lines().collect();
        for _ in 0..200 {
            let mut shuffled = lines.clone();
            for index in (1..shuffled.len()).rev() {
                let swap_index = generator.below(index + 1);
                shuffled.swap(index, swap_index);
            }
            assert_sane_parse(&shuffled.join("\n"));
        }
        // Lines cut at random places and glued with random line ends.
        for _ in 0..200 {
            let mut mangled = String::new();
            for line in &lines {
                let cut = generator.below(line.len() + 1);
                mangled.push_str(line.get(..cut).unwrap_or(line));
                mangled.push_str(["\n", "\r\n", "\r", ",", "@", "\"", "="][generator.below(7)]);
            }
            assert_sane_parse(&mangled);
        }
    }
    let alphabet = b"#EXTINF:-X@=,\"0x19.\r\n \xef\xbb\xbfabc/STREAM-INFBYTERANGEKEYMAP";
    for _ in 0..2000 {
        let length = generator.below(120);
        let bytes: Vec<u8> = (0..length)
            .map(|_| {
                if generator.below(4) == 0 {
                    generator.next_value() as u8
                } else {
                    alphabet[generator.below(alphabet.len())]
                }
            })
            .collect();
        assert_sane_parse(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn prefixes_of_some_corpus_playlists_parse_without_panic() {
    let Some(corpus) = corpus_directory() else {
        return;
    };
    for relative_path in [
        "hls-playlists/videojs-m3u8-parser/llhls.m3u8",
        "hls-playlists/videojs-m3u8-parser/master-fmp4.m3u8",
        "hls-playlists/videojs-m3u8-parser/diff-init-key.m3u8",
    ] {
        let text = read_playlist_text(&corpus.join(relative_path));
        for (byte_index, _) in text.char_indices() {
            assert_sane_parse(&text[..byte_index]);
        }
    }
}
