//! Property tests of the playlist parser (issue 11 item 4): arbitrary text, HLS-shaped text made
//! of real tags with hostile values, and mutations of the repository's corpus fixtures (plus the
//! shared peer corpus when it is present, as in `playlist_corpus.rs`). The parser must never
//! panic, and what it returns must be within its limits: finite, non-negative durations of at most
//! a day, increasing media sequences, at most `maximum_segments` segments.
//!
//! Panics found by these or by `fuzz/` become regression tests at the end of this file.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use streambot_hls::playlist::{
    Playlist, PlaylistLimits, PlaylistParseError, parse_playlist, parse_playlist_with_limits,
};

fn check_invariants(text: &str, limits: &PlaylistLimits) {
    match parse_playlist_with_limits(text, &[("auth".to_string(), "x".to_string())], limits) {
        Ok(Playlist::Media(media)) => {
            assert!(media.segments.len() <= limits.maximum_segments);
            assert!(media.target_duration.is_finite());
            assert!((0.0..=86_400.0).contains(&media.target_duration));
            let mut previous: Option<u64> = None;
            for segment in &media.segments {
                assert!(
                    segment.duration.is_finite() && (0.0..=86_400.0).contains(&segment.duration),
                    "duration {}",
                    segment.duration
                );
                if let Some(previous) = previous {
                    assert!(
                        segment.media_sequence > previous || segment.media_sequence == u64::MAX
                    );
                }
                previous = Some(segment.media_sequence);
            }
            let _ = media.total_duration();
            let _ = media.next_media_sequence();
        }
        Ok(Playlist::Master(master)) => {
            assert!(master.variants.len() <= limits.maximum_segments);
        }
        Err(error) => {
            // Every error has a sentence.
            assert!(!error.to_string().is_empty());
        }
    }
}

const TAGS: &[&str] = &[
    "#EXTM3U",
    "#EXT-X-VERSION:",
    "#EXT-X-TARGETDURATION:",
    "#EXT-X-MEDIA-SEQUENCE:",
    "#EXT-X-DISCONTINUITY-SEQUENCE:",
    "#EXT-X-DISCONTINUITY",
    "#EXTINF:",
    "#EXT-X-BYTERANGE:",
    "#EXT-X-KEY:METHOD=AES-128,URI=\"k\",IV=",
    "#EXT-X-KEY:METHOD=",
    "#EXT-X-MAP:URI=\"init.mp4\",BYTERANGE=",
    "#EXT-X-DEFINE:NAME=\"v\",VALUE=",
    "#EXT-X-DEFINE:QUERYPARAM=\"auth\"",
    "#EXT-X-SKIP:SKIPPED-SEGMENTS=",
    "#EXT-X-STREAM-INF:BANDWIDTH=",
    "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=",
    "#EXT-X-PART:DURATION=",
    "#EXT-X-PROGRAM-DATE-TIME:",
    "#EXT-X-GAP",
    "#EXT-X-ENDLIST",
    "#EXT-X-PLAYLIST-TYPE:",
];

const VALUES: &[&str] = &[
    "",
    "0",
    "-1",
    "1e20",
    "1e308",
    "NaN",
    "inf",
    "-inf",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "4.5,title",
    "0x",
    "0xZZ",
    "0x00112233445566778899aabbccddeeff00",
    "100@",
    "@100",
    "18446744073709551615@18446744073709551615",
    "\"{$v}{$v}{$v}\"",
    "\"{$auth}\"",
    ",",
    "\"",
    "{$",
    "NONE",
    "SAMPLE-AES",
];

fn hls_line() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            proptest::sample::select(TAGS),
            proptest::sample::select(VALUES)
        )
            .prop_map(|(tag, value)| format!("{tag}{value}")),
        "[a-z0-9{}$/.:?=&-]{0,20}".prop_map(|uri| uri.to_string()),
        Just("{$v}{$v}{$v}{$v}".to_string()),
        Just(String::new()),
    ]
}

fn corpus_texts() -> &'static [String] {
    static TEXTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    TEXTS.get_or_init(read_corpus_texts)
}

fn read_corpus_texts() -> Vec<String> {
    let mut directories: Vec<PathBuf> =
        vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/playlists")];
    let shared = std::env::var_os("STREAMBOT_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"))
        .join("hls-playlists");
    directories.push(shared);
    let mut texts = Vec::new();
    let mut stack = directories;
    while let Some(directory) = stack.pop() {
        let Ok(listing) = std::fs::read_dir(&directory) else {
            continue;
        };
        for item in listing.flatten() {
            let path = item.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|ext| ext == "m3u8")
                && let Ok(text) = std::fs::read_to_string(&path)
            {
                texts.push(text);
            }
        }
    }
    texts.sort();
    texts
}

fn small_limits() -> PlaylistLimits {
    PlaylistLimits {
        maximum_substituted_bytes: 64 * 1024,
        maximum_variable_references: 200,
        maximum_segments: 50,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        check_invariants(&text, &PlaylistLimits::default());
        check_invariants(&text, &small_limits());
    }

    #[test]
    fn hls_shaped_text_never_panics_and_stays_in_limits(lines in proptest::collection::vec(hls_line(), 0..120)) {
        let text = lines.join("\n");
        check_invariants(&text, &PlaylistLimits::default());
        check_invariants(&text, &small_limits());
    }

    #[test]
    fn mutated_corpus_playlists_never_panic(
        pick in any::<prop::sample::Index>(),
        cuts in proptest::collection::vec((any::<prop::sample::Index>(), proptest::sample::select(VALUES)), 1..6),
    ) {
        let texts = corpus_texts();
        prop_assume!(!texts.is_empty());
        let mut text = pick.get(texts).clone();
        for (position, insertion) in cuts {
            let mut at = position.index(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            text.insert_str(at, insertion);
        }
        check_invariants(&text, &PlaylistLimits::default());
        check_invariants(&text, &small_limits());
    }
}

#[test]
fn the_segment_limit_is_an_error_not_a_truncation() {
    let mut text = String::from("#EXTM3U\n#EXT-X-TARGETDURATION:1\n");
    for _ in 0..51 {
        text.push_str("#EXTINF:1,\na.ts\n");
    }
    assert_eq!(
        parse_playlist_with_limits(&text, &[], &small_limits()).map(|_| ()),
        Err(PlaylistParseError::OverLimit {
            what: "segments",
            limit: 50
        })
    );
}

#[test]
fn durations_over_a_day_are_not_believed() {
    let Ok(Playlist::Media(media)) = parse_playlist(
        "#EXTM3U\n#EXT-X-TARGETDURATION:1e20\n#EXTINF:1e20,\na.ts\n#EXTINF:86401,\nb.ts\n#EXTINF:-1,\nc.ts\n#EXTINF:6,\nd.ts\n",
    ) else {
        panic!("a media playlist");
    };
    assert_eq!(media.target_duration, 0.0);
    let durations: Vec<f64> = media
        .segments
        .iter()
        .map(|segment| segment.duration)
        .collect();
    assert_eq!(durations, vec![0.0, 0.0, 0.0, 6.0]);
}

// Regression tests for panics found by the properties and the fuzz target go below.

#[test]
fn regression_skip_near_u64_max_does_not_overflow() {
    let text = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:18446744073709551615\n#EXT-X-SKIP:SKIPPED-SEGMENTS=18446744073709551615\n#EXTINF:1,\na.ts\n#EXTINF:1,\nb.ts\n";
    check_invariants(text, &PlaylistLimits::default());
}

/// Found by `hls_shaped_text_never_panics_and_stays_in_limits`: a sequence tag after the first
/// segment renumbered the rest of the playlist backwards.
#[test]
fn regression_a_sequence_tag_after_segments_cannot_make_sequences_go_back() {
    let text = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:100\n#EXTINF:1,\na.ts\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1,\nb.ts\n#EXT-X-SKIP:SKIPPED-SEGMENTS=5\n#EXTINF:1,\nc.ts\n#EXT-X-DISCONTINUITY-SEQUENCE:9\n#EXTINF:1,\nd.ts\n";
    let Ok(Playlist::Media(media)) = parse_playlist(text) else {
        panic!("a media playlist");
    };
    let sequences: Vec<u64> = media
        .segments
        .iter()
        .map(|segment| segment.media_sequence)
        .collect();
    assert_eq!(sequences, vec![100, 101, 102, 103]);
    assert!(
        media
            .segments
            .iter()
            .all(|segment| segment.discontinuity_sequence == 0)
    );
    check_invariants(text, &PlaylistLimits::default());
}
