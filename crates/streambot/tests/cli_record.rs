//! `streambot record` and `streambot probe` as a user runs them: the real binary against the
//! project's HLS origin on 127.0.0.1, with Ctrl-C, bad input and exit statuses.

mod support;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use streambot_testkit::{Fault, OriginConfig, OriginHandle, SegmentKind, spawn_origin};
use support::{BINARY, ffmpeg_available, ffprobe_duration, send_signal};
use tokio::process::Command;

fn streambot() -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_remove("ALLOW_PRIVATE_NETWORKS")
        .env("LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// `streambot record URL --allow-private-networks OPTIONS -o OUTPUT`.
fn record(url: &str, options: &[&str], output: &Path) -> Command {
    let mut command = streambot();
    command
        .args(["record", url, "--allow-private-networks"])
        .args(options)
        .arg("-o")
        .arg(output);
    command
}

async fn run_to_end(command: &mut Command) -> Output {
    tokio::time::timeout(Duration::from_secs(90), command.output())
        .await
        .expect("streambot ends in time")
        .expect("streambot runs")
}

async fn ending_origin(total_segments: u64) -> OriginHandle {
    spawn_origin(
        OriginConfig::new(SegmentKind::MpegTs)
            .with_window_segments(10)
            .with_total_segments(total_segments)
            .with_audio_rendition(),
    )
    .await
    .expect("origin")
}

fn stderr_text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn files_named(directory: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(directory)
        .map(|listing| {
            listing
                .flatten()
                .map(|item| item.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(suffix))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn record_until_the_stream_ends_gives_a_finished_mp4_and_exit_zero() {
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return;
    }
    let origin = ending_origin(15).await;
    let directory = tempfile::tempdir().expect("tempdir");
    let output = run_to_end(&mut record(
        &origin.master_playlist_url(),
        &[],
        directory.path(),
    ))
    .await;
    let stderr = stderr_text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("ended: the stream ended"), "{stderr}");
    assert!(stderr.contains("0 gaps"), "{stderr}");
    assert_eq!(
        files_named(directory.path(), ".mp4"),
        vec!["recording-0001.mp4"]
    );
    assert!(directory.path().join("main-ledger.jsonl").exists());
    assert!(directory.path().join("recording.json").exists());
}

#[tokio::test]
async fn json_mode_prints_one_event_per_line_and_a_summary() {
    let origin = ending_origin(13).await;
    let directory = tempfile::tempdir().expect("tempdir");
    let output = run_to_end(&mut record(
        &origin.media_playlist_url(),
        &["--json", "--no-finalize"],
        directory.path(),
    ))
    .await;
    assert!(output.status.success(), "{}", stderr_text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut kinds = Vec::new();
    for line in stdout.lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("every line is JSON");
        kinds.push(value["kind"].as_str().unwrap_or_default().to_string());
        if value["kind"] == "summary" {
            assert_eq!(value["report"]["outcome"]["outcome"], "finished");
        }
    }
    assert_eq!(kinds.first().map(String::as_str), Some("resolved"));
    assert_eq!(kinds.last().map(String::as_str), Some("summary"));
    assert!(kinds.iter().filter(|kind| *kind == "track").count() > 5);
    assert_eq!(files_named(directory.path(), ".ts"), vec!["main-0001.ts"]);
}

#[tokio::test]
async fn several_async_threads_record_the_same_and_a_bad_thread_count_is_refused_at_start() {
    // The default is one async thread (the current-thread runtime); ASYNC_THREADS above one is
    // the multi-thread runtime, which must record the same way.
    let origin = ending_origin(13).await;
    let directory = tempfile::tempdir().expect("tempdir");
    let output = run_to_end(
        record(
            &origin.media_playlist_url(),
            &["--json", "--no-finalize"],
            directory.path(),
        )
        .env("ASYNC_THREADS", "4"),
    )
    .await;
    assert!(output.status.success(), "{}", stderr_text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout
            .lines()
            .any(|line| line.contains("\"summary\"") && line.contains("finished")),
        "{stdout}"
    );
    assert_eq!(files_named(directory.path(), ".ts"), vec!["main-0001.ts"]);

    for bad in ["0", "65", "many"] {
        let output = run_to_end(
            record(
                &origin.media_playlist_url(),
                &["--no-finalize"],
                directory.path(),
            )
            .env("ASYNC_THREADS", bad),
        )
        .await;
        let stderr = stderr_text(&output);
        assert_eq!(output.status.code(), Some(2), "{bad}: {stderr}");
        assert!(
            stderr.contains("ASYNC_THREADS") && stderr.contains("1 to 64"),
            "{bad}: {stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{bad}: {stderr}");
    }
}

/// Waits until the recording in `directory` has `segments` lines in its ledger (instead of a
/// fixed sleep): the recorder is then past start-up and writing.
async fn wait_for_ledger_lines(directory: &Path, segments: usize) {
    let ledger = directory.join("main-ledger.jsonl");
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let lines = std::fs::read_to_string(&ledger)
                .map(|text| text.lines().count())
                .unwrap_or(0);
            if lines >= segments {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "{} never reached {segments} lines",
        ledger.display()
    );
}

/// Polls `condition` every 50 ms until it holds, failing after `deadline`.
async fn wait_until(deadline: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(deadline, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what}: not seen within {deadline:?}");
}

/// A child's stderr read line by line into a shared text as it comes; the flag: it has ended.
type CollectedLines = std::sync::Arc<std::sync::Mutex<(String, bool)>>;

fn collect_lines(stream: tokio::process::ChildStderr) -> CollectedLines {
    use tokio::io::AsyncBufReadExt;
    let collected = CollectedLines::default();
    let writer = std::sync::Arc::clone(&collected);
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut text = writer.lock().expect("lines");
            text.0.push_str(&line);
            text.0.push('\n');
        }
        writer.lock().expect("lines").1 = true;
    });
    collected
}

fn lines_contain(collected: &CollectedLines, needle: &str) -> bool {
    collected.lock().expect("lines").0.contains(needle)
}

/// The whole text once the stream has ended.
async fn wait_for_stderr_end(collected: &CollectedLines) -> String {
    wait_until(Duration::from_secs(10), "the end of stderr", || {
        collected.lock().expect("lines").1
    })
    .await;
    collected.lock().expect("lines").0.clone()
}

fn send_interrupt(process_id: u32) {
    assert!(send_signal(process_id, "INT"), "kill -INT {process_id}");
}

#[tokio::test]
async fn ctrl_c_stops_gracefully_and_keeps_a_playable_recording() {
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return;
    }
    let origin = ending_origin(200).await;
    let directory = tempfile::tempdir().expect("tempdir");
    let child = record(&origin.media_playlist_url(), &[], directory.path())
        .spawn()
        .expect("spawn");
    let process_id = child.id().expect("pid");
    wait_for_ledger_lines(directory.path(), 2).await;
    send_interrupt(process_id);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("stops in time")
        .expect("output");
    let stderr = stderr_text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("stopped on request"), "{stderr}");
    assert_eq!(
        files_named(directory.path(), ".mp4"),
        vec!["recording-0001.mp4"]
    );
}

#[tokio::test]
async fn a_second_ctrl_c_stops_at_once_and_the_part_stays_playable() {
    // Slow bodies keep downloads in flight so the first Ctrl-C has something to wait for.
    let origin = spawn_origin(
        OriginConfig::new(SegmentKind::MpegTs)
            .with_window_segments(10)
            .with_total_segments(200)
            .with_fault(Fault::SlowBodies {
                from: Duration::from_secs(3),
                to: Duration::from_secs(120),
                bytes_per_second: 2000,
            }),
    )
    .await
    .expect("origin");
    let directory = tempfile::tempdir().expect("tempdir");
    let mut child = record(
        &origin.media_playlist_url(),
        &["--no-finalize"],
        directory.path(),
    )
    .spawn()
    .expect("spawn");
    let process_id = child.id().expect("pid");
    let stderr_lines = collect_lines(child.stderr.take().expect("stderr"));
    // Recording, and the origin past the start of its slow bodies: segments are in flight.
    wait_for_ledger_lines(directory.path(), 1).await;
    wait_until(Duration::from_secs(60), "the origin's slow bodies", || {
        origin.elapsed() > Duration::from_secs(4)
    })
    .await;
    send_interrupt(process_id);
    wait_until(Duration::from_secs(30), "the graceful stop", || {
        lines_contain(&stderr_lines, "finishing the segments in flight")
    })
    .await;
    send_interrupt(process_id);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("stops at once")
        .expect("status");
    let stderr = wait_for_stderr_end(&stderr_lines).await;
    assert!(stderr.contains("stopping now"), "{status}: {stderr}");
    let parts = files_named(directory.path(), ".ts");
    assert_eq!(parts, vec!["main-0001.ts"]);
    if ffmpeg_available() {
        let duration = ffprobe_duration(&directory.path().join("main-0001.ts"))
            .expect("ffprobe reads a duration");
        assert!(duration > 1.0, "{duration}");
    }
}

#[tokio::test]
async fn bad_input_gets_a_specific_one_line_reason_and_a_non_zero_status() {
    let origin = ending_origin(12).await;
    let directory = tempfile::tempdir().expect("tempdir");
    let missing = origin.url("/gone/live.m3u8");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["record".into(), origin.media_playlist_url()],
            "private or local address",
        ),
        (
            vec!["record".into(), missing, "--allow-private-networks".into()],
            "not found",
        ),
        (
            vec!["record".into(), "ftp://example.com/x.m3u8".into()],
            "only http and https",
        ),
        (
            vec![
                "record".into(),
                origin.media_playlist_url(),
                "--quality".into(),
                "ultra".into(),
            ],
            "is not a quality",
        ),
        (
            vec![
                "record".into(),
                origin.media_playlist_url(),
                "--for".into(),
                "soon".into(),
            ],
            "is not a duration",
        ),
    ];
    for (arguments, expected) in cases {
        let output = run_to_end(
            streambot()
                .args(&arguments)
                .arg("-o")
                .arg(directory.path().join("out")),
        )
        .await;
        let stderr = stderr_text(&output);
        assert!(!output.status.success(), "{arguments:?} succeeded");
        assert!(stderr.contains(expected), "{arguments:?}: {stderr}");
    }
}

#[tokio::test]
async fn a_stalled_stream_exits_with_status_three() {
    let origin = spawn_origin(
        OriginConfig::new(SegmentKind::MpegTs)
            .with_window_segments(10)
            .with_fault(Fault::PlaylistStall {
                from: Duration::from_secs(1),
                to: Duration::from_secs(300),
            }),
    )
    .await
    .expect("origin");
    let directory = tempfile::tempdir().expect("tempdir");
    let output = run_to_end(&mut record(
        &origin.media_playlist_url(),
        &["--stall-timeout", "3s", "--no-finalize"],
        directory.path(),
    ))
    .await;
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("stalled"), "{stderr}");
    assert_eq!(files_named(directory.path(), ".ts"), vec!["main-0001.ts"]);
}

#[tokio::test]
async fn probe_shows_variants_and_quality_picks() {
    let origin = ending_origin(30).await;
    let output = run_to_end(streambot().args([
        "probe",
        &origin.master_playlist_url(),
        "--allow-private-networks",
        "--json",
    ]))
    .await;
    assert!(output.status.success(), "{}", stderr_text(&output));
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("probe --json is JSON");
    assert_eq!(report["kind"], "master");
    assert_eq!(report["variants"].as_array().map(Vec::len), Some(3));
    assert_eq!(report["media"]["live"], true);
    let picks = report["picks"].as_array().expect("picks");
    let worst = picks
        .iter()
        .find(|pick| pick["quality"] == "worst")
        .expect("worst pick");
    assert_eq!(worst["uri"], "/v2/media.m3u8");
    let table = run_to_end(streambot().args([
        "probe",
        &origin.master_playlist_url(),
        "--allow-private-networks",
    ]))
    .await;
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("LIVE"), "{text}");
    assert!(text.contains("1280x720"), "{text}");
}

#[tokio::test]
async fn a_killed_recording_leaves_a_playable_part_and_a_consistent_ledger() {
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return;
    }
    let origin = ending_origin(200).await;
    let directory = tempfile::tempdir().expect("tempdir");
    let mut child = record(&origin.media_playlist_url(), &[], directory.path())
        .spawn()
        .expect("spawn");
    wait_for_ledger_lines(directory.path(), 3).await;
    child.start_kill().expect("kill -9");
    let _ = child.wait().await;
    let part = directory.path().join("main-0001.ts");
    let part_bytes = std::fs::metadata(&part).expect("the part exists").len();
    // Every ledger line describes bytes that are in the part.
    let ledger =
        std::fs::read_to_string(directory.path().join("main-ledger.jsonl")).expect("ledger");
    let mut ledger_bytes = 0;
    for line in ledger.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).expect("complete lines");
        ledger_bytes += entry["bytes"].as_u64().unwrap_or(0);
    }
    assert!(ledger_bytes > 0);
    assert!(
        ledger_bytes <= part_bytes,
        "ledger claims {ledger_bytes} of {part_bytes} bytes"
    );
    let duration = ffprobe_duration(&part).expect("ffprobe reads a duration");
    assert!(duration >= 3.0, "{duration}");
}

#[tokio::test]
async fn a_link_to_a_single_media_file_is_recorded_by_the_ffmpeg_engine() {
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return;
    }
    let origin = ending_origin(30).await;
    let directory = tempfile::tempdir().expect("tempdir");
    // One TS segment served as a plain file: not HLS, so `auto` picks the ffmpeg engine.
    let output = run_to_end(&mut record(
        &origin.segment_url(1001),
        &[],
        directory.path(),
    ))
    .await;
    let stderr = stderr_text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("ffmpeg engine"), "{stderr}");
    assert_eq!(
        files_named(directory.path(), ".mp4"),
        vec!["recording-0001.mp4"]
    );
    // And the same URL-safety rule applies to it.
    let refused = run_to_end(
        streambot()
            .args(["record", &origin.segment_url(1001), "-o"])
            .arg(directory.path().join("refused")),
    )
    .await;
    assert!(!refused.status.success());
    assert!(stderr_text(&refused).contains("private or local address"));
}

/// Issue 12 item 5: `record` on a link the ffmpeg engine records takes the same path as HLS:
/// `--json` gives JSON lines and a summary, and `--max-part-size` (which the ffmpeg engine cannot
/// honour) is refused with a message before anything is fetched.
#[tokio::test]
async fn the_ffmpeg_engine_honours_json_and_refuses_a_part_size() {
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return;
    }
    let origin = ending_origin(30).await;
    let directory = tempfile::tempdir().expect("tempdir");
    let refused = run_to_end(&mut record(
        &origin.segment_url(1001),
        &["--max-part-size", "10"],
        &directory.path().join("refused"),
    ))
    .await;
    assert_eq!(refused.status.code(), Some(2), "{}", stderr_text(&refused));
    assert!(
        stderr_text(&refused).contains("--max-part-size is not supported"),
        "{}",
        stderr_text(&refused)
    );
    assert!(!directory.path().join("refused").exists());
    let output = run_to_end(&mut record(
        &origin.segment_url(1001),
        &["--json", "--engine", "ffmpeg", "--stall-timeout", "30s"],
        directory.path(),
    ))
    .await;
    assert!(output.status.success(), "{}", stderr_text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let kinds: Vec<String> = stdout
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            value["kind"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert!(kinds.contains(&"summary".to_string()), "{stdout}");
    assert!(
        !stderr_text(&output).contains("with the ffmpeg engine"),
        "--json keeps stderr free of progress text"
    );
}
