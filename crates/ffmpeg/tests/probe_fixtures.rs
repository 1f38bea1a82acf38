//! The ffprobe JSON parser on outputs recorded from real ffprobe 5.1 runs (tests/fixtures/ffprobe_*.json).

use std::path::PathBuf;
use std::time::Duration;

use streambot_ffmpeg::StreamInfo;
use streambot_ffmpeg::probe::parse_ffprobe_json;

fn parse_fixture(name: &str) -> StreamInfo {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let json = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    parse_ffprobe_json(&json).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn mpegts_part_with_h264_and_adts_aac() {
    let info = parse_fixture("ffprobe_ts.json");
    assert_eq!(info.container, "mpegts");
    assert!(info.is_mpegts());
    assert!(info.audio_is_adts_aac());
    assert_eq!(info.duration, Some(Duration::from_micros(4_023_222)));
    assert_eq!(info.size_bytes, Some(133_480));
    assert_eq!(info.bit_rate, Some(265_419));
    assert_eq!(info.stream_count, 2);
    let video = info.video.expect("video");
    assert_eq!(
        (video.codec.as_str(), video.width, video.height),
        ("h264", 160, 90)
    );
    assert_eq!(video.frame_rate, Some(25.0));
    assert_eq!(video.bit_rate, None, "MPEG-TS streams carry no bit rate");
    let audio = info.audio.expect("audio");
    assert_eq!(audio.codec, "aac");
    assert_eq!(audio.channels, Some(1));
    assert_eq!(audio.sample_rate, Some(44_100));
    assert_eq!(audio.bit_rate, Some(71_564));
}

#[test]
fn remuxed_mp4() {
    let info = parse_fixture("ffprobe_mp4.json");
    assert!(info.container_is("mp4") && info.container_is("mov"));
    assert!(!info.is_mpegts());
    assert!(!info.audio_is_adts_aac(), "AAC in MP4 is not ADTS");
    assert_eq!(info.duration, Some(Duration::from_millis(4_098)));
    assert_eq!(info.video.and_then(|video| video.bit_rate), Some(134_354));
    assert!(info.audio.is_some());
}

#[test]
fn cmaf_renditions_have_one_stream_each() {
    let video = parse_fixture("ffprobe_cmaf_video.json");
    assert_eq!(video.stream_count, 1);
    assert!(video.audio.is_none());
    let video_stream = video.video.expect("video");
    assert_eq!(
        (
            video_stream.width,
            video_stream.height,
            video_stream.frame_rate
        ),
        (640, 360, Some(30.0))
    );
    assert_eq!(video.duration, Some(Duration::from_secs(3)));

    let audio = parse_fixture("ffprobe_cmaf_audio.json");
    assert_eq!(audio.stream_count, 1);
    assert!(audio.video.is_none());
    assert_eq!(
        audio.audio.map(|stream| (stream.codec, stream.sample_rate)),
        Some(("aac".to_owned(), Some(44_100)))
    );
}

#[test]
fn stream_info_round_trips_through_json_for_the_cli() {
    let info = parse_fixture("ffprobe_ts.json");
    let json = serde_json::to_string(&info).expect("serialize");
    let back: StreamInfo = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, info);
}
