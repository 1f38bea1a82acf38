//! Process control with the real ffmpeg: graceful stop with `q`, pause/resume with SIGSTOP/SIGCONT.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    arguments, assert_no_progress_for_a_second, binaries, probe_all, test_source_arguments,
    wait_for_out_time,
};
use streambot_ffmpeg::run::spawn_progress_watch;
use streambot_ffmpeg::{FfmpegProcess, StdoutMode, StoppedBy};

/// A long real-time ffmpeg (`-re`, lavfi test source, 60 s) writing mp4 with `-progress pipe:1`.
fn spawn_long_realtime_ffmpeg(output: &Path) -> FfmpegProcess {
    let mut argv = arguments(&[
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "warning",
        "-y",
        "-progress",
        "pipe:1",
        "-re",
    ]);
    argv.extend(test_source_arguments(60, "160x90", "mp4"));
    argv.push(output.as_os_str().to_owned());
    FfmpegProcess::spawn(&binaries().ffmpeg, &argv, StdoutMode::Piped).expect("spawn ffmpeg")
}

/// Stop gracefully; it must be clean and by the expected step; then the output must probe with
/// video (an mp4 without its trailer would not).
async fn stop_and_check_output(
    process: &mut FfmpegProcess,
    grace: Duration,
    expected: StoppedBy,
    output: &Path,
) {
    let stop = process.graceful_stop(grace).await.expect("stop");
    assert_eq!(stop.stopped_by, expected, "{stop:?}");
    assert!(stop.clean, "{stop:?}");
    probe_all(&[output.to_path_buf()], false).await;
}

#[tokio::test]
async fn graceful_stop_with_q_is_clean_and_the_output_plays() {
    let directory = tempfile::tempdir().expect("tempdir");
    let output = directory.path().join("live.mp4");
    let mut process = spawn_long_realtime_ffmpeg(&output);
    let (mut progress, _reader) = spawn_progress_watch(process.take_stdout().expect("stdout"));
    wait_for_out_time(&mut progress, Duration::from_millis(1_000)).await;

    let started = Instant::now();
    stop_and_check_output(
        &mut process,
        Duration::from_secs(5),
        StoppedBy::Quit,
        &output,
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5), "q is quick");
    let duration = probe_all(&[output], true).await;
    assert!(
        duration >= Duration::from_millis(900) && duration < Duration::from_secs(10),
        "{duration:?}"
    );
}

#[tokio::test]
async fn pause_stops_progress_and_resume_continues() {
    let directory = tempfile::tempdir().expect("tempdir");
    let output = directory.path().join("live.mp4");
    let mut process = spawn_long_realtime_ffmpeg(&output);
    let (mut progress, _reader) = spawn_progress_watch(process.take_stdout().expect("stdout"));
    wait_for_out_time(&mut progress, Duration::from_millis(500)).await;

    process.pause().expect("SIGSTOP");
    assert!(process.is_paused());
    let paused_at = assert_no_progress_for_a_second(&mut progress).await;
    assert!(
        process.try_exit_status().expect("status").is_none(),
        "still alive"
    );

    process.resume().expect("SIGCONT");
    assert!(!process.is_paused());
    let resumed_to = wait_for_out_time(&mut progress, paused_at + Duration::from_millis(400)).await;
    assert!(resumed_to > paused_at);

    // Stop while paused: graceful_stop resumes first, so `q` is read.
    process.pause().expect("SIGSTOP");
    stop_and_check_output(
        &mut process,
        Duration::from_secs(5),
        StoppedBy::Quit,
        &output,
    )
    .await;
}

#[tokio::test]
async fn stop_escalates_to_sigterm_when_q_is_not_read() {
    let directory = tempfile::tempdir().expect("tempdir");
    let output = directory.path().join("live.mp4");
    // Without stdin interaction (`-nostdin`) ffmpeg ignores `q`: SIGTERM must do it, exit 255 is clean.
    let mut argv = arguments(&[
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "warning",
        "-y",
        "-re",
    ]);
    argv.extend(test_source_arguments(60, "160x90", "mp4"));
    argv.push(output.as_os_str().to_owned());
    let mut process =
        FfmpegProcess::spawn(&binaries().ffmpeg, &argv, StdoutMode::Null).expect("spawn");
    // Until the muxer has started (mp4 header written), bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&output).map_or(0, |metadata| metadata.len()) == 0 {
        assert!(Instant::now() < deadline, "ffmpeg wrote nothing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_and_check_output(
        &mut process,
        Duration::from_millis(800),
        StoppedBy::Terminate,
        &output,
    )
    .await;
}

#[tokio::test]
async fn stderr_tail_is_carried_and_bounded() {
    // ffmpeg with an unknown option: a non-zero exit whose error names it.
    let argv = arguments(&["-hide_banner", "-no_such_option_here", "1"]);
    let mut process =
        FfmpegProcess::spawn(&binaries().ffmpeg, &argv, StdoutMode::Null).expect("spawn");
    let finished = process
        .wait_with_timeout(Duration::from_secs(10), "bad option")
        .await
        .expect("exits");
    assert!(!finished.success());
    assert!(
        finished.stderr_tail.contains("no_such_option_here"),
        "{}",
        finished.stderr_tail
    );
    assert!(finished.stderr_tail.len() <= streambot_ffmpeg::process::STDERR_TAIL_MAX_BYTES);
}

#[tokio::test]
async fn stop_escalates_to_sigkill_of_the_whole_group() {
    // A stand-in that ignores `q` and SIGTERM and has a child in its process group.
    let argv = arguments(&[
        "-c",
        "trap '' TERM; sleep 30 & while :; do sleep 0.05; done",
    ]);
    let mut process =
        FfmpegProcess::spawn(Path::new("/bin/sh"), &argv, StdoutMode::Null).expect("spawn sh");
    let process_group = process.id().expect("pid");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let stop = process
        .graceful_stop(Duration::from_millis(300))
        .await
        .expect("stop");
    assert_eq!(stop.stopped_by, StoppedBy::Kill, "{stop:?}");
    assert!(!stop.clean);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Nothing of the group is left (the background `sleep 30` included).
    let group = nix::unistd::Pid::from_raw(i32::try_from(process_group).expect("pid fits"));
    let deadline = Instant::now() + Duration::from_secs(3);
    while nix::sys::signal::killpg(group, None).is_ok() {
        assert!(
            Instant::now() < deadline,
            "process group {process_group} still alive"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
