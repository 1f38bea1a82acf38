//! The ffmpeg engine with the real ffmpeg, reading its stdin (the recorder's HTTP client feeds it
//! in production; here the test writes a file into it, whole or slowly as a live source would).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    assert_no_progress_for_a_second, binaries, make_test_media, probe_all, wait_for_out_time,
};
use streambot_ffmpeg::{
    EngineInput, EngineOptions, EngineRecording, FfmpegError, InputFormat, StoppedBy,
};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

/// Start the engine with 2-second segments on a pipe and feed it `seconds` of test media in
/// `chunks` pieces `interval` apart; the feeder closes the pipe at the end.
async fn record_piped_media(
    directory: &Path,
    seconds: u32,
    chunks: usize,
    interval: Duration,
) -> (EngineRecording, JoinHandle<()>) {
    let source = make_test_media(directory, "source.ts", seconds, "160x90").await;
    let body = std::fs::read(&source).expect("read source");
    let options = EngineOptions {
        segment_seconds: 2,
        ..EngineOptions::default()
    };
    let mut recording = EngineRecording::start(
        &binaries(),
        &EngineInput::Pipe(InputFormat::MpegTs),
        &directory.join("recording"),
        &options,
    )
    .await
    .expect("start");
    let mut pipe = recording.take_input_pipe().expect("stdin");
    let feeder = tokio::spawn(async move {
        for chunk in body.chunks(body.len().div_ceil(chunks.max(1)).max(1)) {
            if pipe.write_all(chunk).await.is_err() {
                return;
            }
            tokio::time::sleep(interval).await;
        }
    });
    (recording, feeder)
}

#[tokio::test]
async fn engine_records_a_piped_stream_into_playable_segments() {
    let directory = tempfile::tempdir().expect("tempdir");
    let (mut recording, feeder) = record_piped_media(directory.path(), 8, 1, Duration::ZERO).await;
    feeder.await.expect("fed");
    let outcome = recording
        .wait(Duration::from_secs(20))
        .await
        .expect("ends with the input");
    assert!(outcome.last_progress.ended, "{:?}", outcome.last_progress);
    assert!(
        outcome.segment_files.len() >= 3,
        "{:?}",
        outcome.segment_files
    );
    assert!(outcome.segment_files[0].ends_with("part-0001.ts"));

    let total = probe_all(&outcome.segment_files, true).await;
    common::assert_close(total, Duration::from_secs(8), Duration::from_millis(600));
}

#[tokio::test]
async fn engine_pause_resume_and_stop_by_closing_the_pipe() {
    let directory = tempfile::tempdir().expect("tempdir");
    // 20 s of media over about 10 s: a "live" source.
    let (mut recording, feeder) =
        record_piped_media(directory.path(), 20, 100, Duration::from_millis(100)).await;
    let mut progress = recording.progress();
    wait_for_out_time(&mut progress, Duration::from_secs(1)).await;

    recording.pause().expect("pause");
    assert!(recording.is_paused());
    let paused_at = assert_no_progress_for_a_second(&mut progress).await;

    recording.resume().expect("resume");
    wait_for_out_time(&mut progress, paused_at + Duration::from_millis(500)).await;

    // The clean stop of a piped recording: end of input.
    feeder.abort();
    let _ = feeder.await;
    let outcome = recording.stop(Duration::from_secs(5)).await.expect("stop");
    let stop = outcome.stop.as_ref().expect("stop outcome");
    assert!(stop.clean, "{stop:?}");
    assert_ne!(stop.stopped_by, StoppedBy::Kill);
    assert!(!outcome.segment_files.is_empty());
    probe_all(&outcome.segment_files, false).await;
}

#[tokio::test]
async fn engine_input_in_the_wrong_container_is_invalid_input() {
    let directory = tempfile::tempdir().expect("tempdir");
    let source = make_test_media(directory.path(), "source.ts", 2, "160x90").await;
    let body = std::fs::read(&source).expect("read source");
    let mut recording = EngineRecording::start(
        &binaries(),
        &EngineInput::Pipe(InputFormat::Flv),
        &directory.path().join("recording"),
        &EngineOptions::default(),
    )
    .await
    .expect("start");
    let mut pipe = recording.take_input_pipe().expect("stdin");
    let _ = pipe.write_all(&body).await;
    drop(pipe);
    let error = recording
        .wait(Duration::from_secs(15))
        .await
        .expect_err("MPEG-TS is not FLV");
    assert!(
        matches!(
            error,
            FfmpegError::InvalidInput { .. } | FfmpegError::NonZeroExit { .. }
        ),
        "{error:?}"
    );
    assert!(!error.is_retryable());
}
