//! The body check accepts real media: the peer corpus (tests/fixtures/media, see its ORIGIN.md)
//! and every testkit fixture set made by ffmpeg; and it refuses the playlists of the corpus when
//! they are served as segments.

use std::path::{Path, PathBuf};

use streambot_hls::media_check::{MediaExpectation, MediaFormat, check_media_body};
use streambot_testkit::{SegmentKind, media_fixtures};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/media")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn corpus_cmaf_and_ts_media_pass() {
    for init in [
        "cmaf_video_init.mp4",
        "cmaf_audio_init.mp4",
        "fmp4_init.mp4",
    ] {
        assert_eq!(
            check_media_body(&fixture(init), MediaExpectation::InitSegment),
            Ok(MediaFormat::InitSegment),
            "{init}"
        );
    }
    for fragment in ["cmaf_video_1.m4s", "cmaf_audio_1.m4s"] {
        assert_eq!(
            check_media_body(&fixture(fragment), MediaExpectation::FragmentAfterInit),
            Ok(MediaFormat::FragmentedMp4),
            "{fragment}"
        );
    }
    assert_eq!(
        check_media_body(
            &fixture("ts_cea608_first_100_packets.ts"),
            MediaExpectation::SelfContainedSegment
        ),
        Ok(MediaFormat::MpegTs)
    );
}

#[test]
fn every_testkit_fixture_passes() {
    for kind in SegmentKind::ALL {
        let media = media_fixtures(kind).expect("fixtures (ffmpeg)");
        if let Some(init) = &media.init_segment {
            assert_eq!(
                check_media_body(init, MediaExpectation::InitSegment),
                Ok(MediaFormat::InitSegment)
            );
        }
        let bodies = media.clear_segments.as_ref().unwrap_or(&media.segments);
        for (index, body) in bodies.iter().enumerate() {
            let expectation = if media.init_segment.is_some() {
                MediaExpectation::FragmentAfterInit
            } else {
                MediaExpectation::SelfContainedSegment
            };
            let verdict = check_media_body(body, expectation);
            assert!(verdict.is_ok(), "{kind} segment {index}: {verdict:?}");
        }
    }
}

fn corpus_playlists() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/playlists");
    if let Ok(listing) = std::fs::read_dir(root) {
        for item in listing.flatten() {
            if item.path().extension().is_some_and(|ext| ext == "m3u8") {
                found.push(item.path());
            }
        }
    }
    found
}

#[test]
fn playlists_served_as_segments_are_not_media() {
    let playlists = corpus_playlists();
    assert!(!playlists.is_empty());
    for path in playlists {
        let body = std::fs::read(&path).expect("playlist");
        for expectation in [
            MediaExpectation::SelfContainedSegment,
            MediaExpectation::FragmentAfterInit,
            MediaExpectation::InitSegment,
            MediaExpectation::Subtitle,
        ] {
            assert!(
                check_media_body(&body, expectation).is_err(),
                "{} passed as {expectation:?}",
                path.display()
            );
        }
    }
}

mod properties {
    use proptest::prelude::*;
    use streambot_hls::media_check::{MediaExpectation, check_media_body};

    const EXPECTATIONS: [MediaExpectation; 4] = [
        MediaExpectation::SelfContainedSegment,
        MediaExpectation::FragmentAfterInit,
        MediaExpectation::Subtitle,
        MediaExpectation::InitSegment,
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        /// Arbitrary bytes, and bytes that start like media (sync bytes, box headers, ID3),
        /// never panic the check.
        #[test]
        fn arbitrary_bodies_never_panic(
            prefix in proptest::sample::select(vec![
                &b""[..], b"G", b"ID3\x04\x00\x10\x00\x00\x00\x05", b"\xFF\xF1", b"\xFF\xFB\x90",
                b"\x0B\x77", b"\x00\x00\x00\x01moof", b"\x00\x00\x00\x00mdat", b"WEBVTT",
                b"\xEF\xBB\xBF#EXTM3U", b"\x00\x00\x00\x08ftyp\x00\x00\x00\x08moov",
            ]),
            body in proptest::collection::vec(any::<u8>(), 0..2048),
        ) {
            let mut bytes = prefix.to_vec();
            bytes.extend_from_slice(&body);
            for expectation in EXPECTATIONS {
                let _ = check_media_body(&bytes, expectation);
            }
        }

        /// Real media cut or flipped anywhere never panics the check either.
        #[test]
        fn mutated_real_media_never_panics(
            pick in 0usize..3,
            cut in any::<prop::sample::Index>(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        ) {
            let name = ["cmaf_video_1.m4s", "cmaf_video_init.mp4", "ts_cea608_first_100_packets.ts"][pick];
            let mut bytes = super::fixture(name);
            for (position, value) in flips {
                let at = position.index(bytes.len());
                bytes[at] = value;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
            for expectation in EXPECTATIONS {
                let _ = check_media_body(&bytes, expectation);
            }
        }
    }
}
