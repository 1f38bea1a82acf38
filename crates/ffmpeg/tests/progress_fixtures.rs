//! The `-progress` parser on output recorded from real ffmpeg 5.1 runs (tests/fixtures/*_progress.txt).

use std::path::PathBuf;
use std::time::Duration;

use streambot_ffmpeg::progress::{ProgressParser, parse_progress_blocks};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn remux_progress_has_a_start_block_and_an_end_block() {
    let blocks = parse_progress_blocks(&fixture("remux_progress.txt"));
    assert_eq!(blocks.len(), 2);
    let first = &blocks[0];
    assert_eq!(first.bitrate_kbps, None, "bitrate=N/A");
    assert_eq!(first.speed, Some(0.0), "speed=   0x");
    assert!(!first.ended);
    let last = &blocks[1];
    assert!(last.ended);
    assert_eq!(last.frame, Some(100));
    assert_eq!(last.total_size_bytes, Some(106_964));
    assert_eq!(last.out_time, Duration::from_micros(4_040_272));
    assert_eq!(last.bitrate_kbps, Some(211.8));
    assert_eq!(last.speed, Some(2700.0));
}

#[test]
fn transcode_progress_ends() {
    let blocks = parse_progress_blocks(&fixture("transcode_progress.txt"));
    let last = blocks.last().expect("at least one block");
    assert!(last.ended);
    assert_eq!(last.frame, Some(101));
    assert_eq!(last.bitrate_kbps, Some(130.9));
}

#[test]
fn realtime_progress_advances_monotonically_line_by_line() {
    let mut parser = ProgressParser::new();
    let blocks: Vec<_> = fixture("realtime_progress.txt")
        .lines()
        .filter_map(|line| parser.push_line(line))
        .collect();
    assert!(blocks.len() >= 4, "{blocks:?}");
    for pair in blocks.windows(2) {
        assert!(pair[1].out_time >= pair[0].out_time, "{pair:?}");
        assert!(pair[1].frame >= pair[0].frame, "{pair:?}");
    }
    assert!(
        blocks
            .iter()
            .any(|block| block.fps.is_some_and(|fps| fps > 20.0))
    );
    assert_eq!(blocks.iter().filter(|block| block.ended).count(), 1);
    let last = blocks.last().expect("blocks");
    assert!(last.ended);
    assert!(last.out_time > Duration::from_secs(2), "{last:?}");
}
