//! Fuzz target for the HLS playlist parser: any bytes, read as text the way the fetcher reads a
//! playlist (lossy UTF-8), parsed within the default and within small limits. A panic, or a
//! result outside the limits, is a bug: add the input as a regression test in
//! `crates/hls/tests/playlist_properties.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streambot_hls::playlist::{Playlist, PlaylistLimits, parse_playlist_with_limits};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let small = PlaylistLimits {
        maximum_substituted_bytes: 64 * 1024,
        maximum_variable_references: 200,
        maximum_segments: 50,
    };
    for limits in [PlaylistLimits::default(), small] {
        let external = [("auth".to_string(), "token".to_string())];
        if let Ok(Playlist::Media(media)) = parse_playlist_with_limits(&text, &external, &limits) {
            assert!(media.segments.len() <= limits.maximum_segments);
            assert!((0.0..=86_400.0).contains(&media.target_duration));
            for segment in &media.segments {
                assert!((0.0..=86_400.0).contains(&segment.duration));
            }
        }
    }
});
