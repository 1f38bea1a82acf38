//! Issue 17 item 2 for fMP4: what joining two fMP4 parts costs at finalize. Two parts of
//! `MINUTES` (default 10) minutes each, 320x180 H.264 200 kb/s + AAC 64 kb/s from ffmpeg's HLS
//! muxer in fMP4 mode (the second from another run: decode times from zero, as after a packager
//! restart), made once into a temporary directory. Median of 3, wall seconds, decode check off
//! (it is the same for both):
//! - the byte-level join alone (`fmp4_join::join_fragmented_parts`),
//! - finalize of the two parts as one file (join + one remux to mp4),
//! - finalize of the two parts as two files (joining disabled by a 1-byte join limit).
//!
//! `cargo run --release -p streambot-recorder --example fmp4_join_cost`

use std::path::{Path, PathBuf};
use std::time::Instant;

use streambot_core::{OutputFormat, Quality};
use streambot_ffmpeg::FfmpegRunner;
use streambot_hls::ledger::{PartStartReason, PartSummary};
use streambot_recorder::RecordingReport;
use streambot_recorder::finalize::{FinalizeSettings, finalize_recording};

fn make_part(scratch: &Path, name: &str, minutes: u32) -> (PathBuf, f64) {
    let folder = scratch.join(name);
    std::fs::create_dir_all(&folder).expect("folder");
    let status = std::process::Command::new("ffmpeg")
        .current_dir(&folder)
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .args([
            "-i",
            "testsrc2=size=320x180:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine",
        ])
        .args(["-t", &(minutes * 60).to_string(), "-c:v", "libx264"])
        .args([
            "-preset",
            "ultrafast",
            "-g",
            "50",
            "-b:v",
            "200k",
            "-c:a",
            "aac",
        ])
        .args([
            "-b:a",
            "64k",
            "-f",
            "hls",
            "-hls_time",
            "2",
            "-hls_playlist_type",
            "vod",
        ])
        .args([
            "-hls_segment_type",
            "fmp4",
            "-hls_fmp4_init_filename",
            "init.mp4",
        ])
        .args(["-hls_segment_filename", "s-%d.m4s", "p.m3u8"])
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    let mut bytes = std::fs::read(folder.join("init.mp4")).expect("init");
    let mut index = 0;
    while let Ok(segment) = std::fs::read(folder.join(format!("s-{index}.m4s"))) {
        bytes.extend(segment);
        index += 1;
    }
    let part = scratch.join(format!("{name}.mp4"));
    std::fs::write(&part, bytes).expect("part");
    (part, f64::from(minutes * 60))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn finalize_copies(
    runner: &FfmpegRunner,
    parts: &[(PathBuf, f64)],
    join: bool,
) -> (f64, usize) {
    let directory = tempfile::tempdir().expect("tempdir");
    let mut summaries = Vec::new();
    for (index, (path, seconds)) in parts.iter().enumerate() {
        let number = index as u32 + 1;
        let copy = directory.path().join(format!("main-{number:04}.mp4"));
        std::fs::copy(path, &copy).expect("copy");
        summaries.push(PartSummary {
            number,
            bytes: std::fs::metadata(&copy).expect("part").len(),
            path: copy,
            reason: if index == 0 {
                PartStartReason::First
            } else {
                PartStartReason::Discontinuity
            },
            segments: (*seconds / 2.0) as u64,
            media_seconds: *seconds,
        });
    }
    let report = RecordingReport::of_main_parts(directory.path(), summaries);
    let mut settings = FinalizeSettings::new(OutputFormat::Mp4, Quality::Best);
    settings.check_decoding = false;
    if !join {
        settings.maximum_joined_bytes = Some(1);
    }
    let started = Instant::now();
    let finalized = finalize_recording(runner, &report, &settings).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert!(finalized.failures.is_empty(), "{:?}", finalized.failures);
    (elapsed, finalized.files.len())
}

#[tokio::main]
async fn main() {
    let minutes: u32 = std::env::var("MINUTES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(10);
    let scratch = tempfile::tempdir().expect("tempdir");
    let parts = vec![
        make_part(scratch.path(), "first", minutes),
        make_part(scratch.path(), "second", minutes),
    ];
    let runner = FfmpegRunner::default();
    let mut join_alone = Vec::new();
    let mut joined = Vec::new();
    let mut separate = Vec::new();
    for _ in 0..3 {
        let output = scratch.path().join("joined.mp4");
        let started = Instant::now();
        let paths: Vec<&Path> = parts.iter().map(|(path, _)| path.as_path()).collect();
        streambot_recorder::fmp4_join::join_fragmented_parts(&paths, &output).expect("joined");
        join_alone.push(started.elapsed().as_secs_f64());
        let _ = std::fs::remove_file(&output);
        let (seconds, files) = finalize_copies(&runner, &parts, true).await;
        assert_eq!(files, 1);
        joined.push(seconds);
        let (seconds, files) = finalize_copies(&runner, &parts, false).await;
        assert_eq!(files, 2);
        separate.push(seconds);
    }
    let megabytes = std::fs::metadata(&parts[0].0).map_or(0, |meta| meta.len() / 1_000_000);
    println!("two fMP4 parts of {minutes} min, {megabytes} MB each; medians of 3, wall seconds");
    println!("join alone (byte level)          {:.2}", median(join_alone));
    println!("finalize as one file (join+remux) {:.2}", median(joined));
    println!("finalize as two files (2 remuxes) {:.2}", median(separate));
}
