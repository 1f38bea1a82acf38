//! Issue 11: a long finalize is interrupted by a stop or a shutdown: the ffmpeg it runs ends at
//! once, nothing half-written stays, the part is untouched and can be finalized again.

use std::path::Path;
use std::time::Duration;

use streambot_core::{OutputFormat, Quality};
use streambot_ffmpeg::FfmpegRunner;
use streambot_hls::ledger::{PartStartReason, PartSummary};
use streambot_recorder::RecordingReport;
use streambot_recorder::finalize::FinalizeSettings;
use streambot_recorder::interruptible_finalize::{FinalizeEnd, finalize_recording_interruptible};
use tokio_util::sync::CancellationToken;

/// A 720p MPEG-TS part of `seconds` (a re-encode to 480p of it takes a while).
fn make_720p_part(path: &Path, seconds: u32) -> u64 {
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25"])
        .args(["-f", "lavfi", "-i", "sine"])
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25"])
        .args(["-c:a", "aac", "-f", "mpegts"])
        .arg(path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    std::fs::metadata(path).expect("part").len()
}

fn report_with_part(directory: &Path, part: PartSummary) -> RecordingReport {
    RecordingReport::of_main_parts(directory, vec![part])
}

/// The ids of running processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let id = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let command_line = std::fs::read(entry.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&command_line)
                .contains(needle)
                .then_some(id)
        })
        .filter(|id| {
            // A zombie not yet reaped is no running process.
            std::fs::read_to_string(format!("/proc/{id}/stat"))
                .is_ok_and(|stat| !stat.contains(") Z "))
        })
        .collect()
}

#[tokio::test]
async fn a_cancelled_finalize_stops_ffmpeg_at_once_and_keeps_the_part() {
    let directory = tempfile::tempdir().expect("tempdir");
    let part_path = directory.path().join("main-0001.ts");
    let bytes = make_720p_part(&part_path, 40);
    let original = std::fs::read(&part_path).expect("part");
    let part = PartSummary {
        number: 1,
        path: part_path.clone(),
        reason: PartStartReason::First,
        bytes,
        segments: 20,
        media_seconds: 40.0,
    };
    let report = report_with_part(directory.path(), part);
    let runner = FfmpegRunner::default();
    // `low` re-encodes the 720p part to 480p: a finalize that takes a while.
    let settings = FinalizeSettings::new(OutputFormat::Mp4, Quality::Low);
    let cancel = CancellationToken::new();
    let watcher = {
        let cancel = cancel.clone();
        let directory = directory.path().to_path_buf();
        tokio::spawn(async move {
            // Cancel once ffmpeg is writing its output: mid-way.
            loop {
                let writing = std::fs::read_dir(&directory).is_ok_and(|entries| {
                    entries.flatten().any(|entry| {
                        entry.file_name().to_string_lossy().ends_with(".partial")
                            && entry.metadata().is_ok_and(|metadata| metadata.len() > 0)
                    })
                });
                if writing {
                    cancel.cancel();
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let ended = tokio::time::timeout(
        Duration::from_secs(120),
        finalize_recording_interruptible(&runner, &report, &settings, &cancel),
    )
    .await
    .expect("finalize returns");
    watcher.await.expect("watcher");
    assert!(matches!(ended, FinalizeEnd::Interrupted), "{ended:?}");
    // SIGKILL went to ffmpeg's process group on cancellation; the kernel takes a moment to end it.
    let directory_text = directory.path().to_string_lossy().into_owned();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !processes_mentioning(&directory_text).is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("no ffmpeg left running on the job's files");
    assert_eq!(
        std::fs::read(&part_path).expect("the part is still there"),
        original,
        "the part is untouched"
    );
    let left: Vec<String> = std::fs::read_dir(directory.path())
        .expect("directory")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".partial") || name.starts_with("joined-"))
        .collect();
    assert!(left.is_empty(), "half-written outputs left: {left:?}");

    // The same report can be finalized again later (here without the re-encode).
    let again = finalize_recording_interruptible(
        &runner,
        &report,
        &FinalizeSettings::new(OutputFormat::Mp4, Quality::Best),
        &CancellationToken::new(),
    )
    .await;
    let FinalizeEnd::Finished(finalized) = again else {
        panic!("{again:?}");
    };
    assert!(finalized.failures.is_empty(), "{:?}", finalized.failures);
    assert_eq!(finalized.files.len(), 1);
    assert!(
        !part_path.exists(),
        "after a finalize that ran to its end the part is removed"
    );
}

#[tokio::test]
async fn a_finalize_cancelled_before_it_starts_touches_nothing() {
    let directory = tempfile::tempdir().expect("tempdir");
    let part_path = directory.path().join("main-0001.ts");
    std::fs::write(&part_path, b"not even media").expect("part");
    let report = report_with_part(
        directory.path(),
        PartSummary {
            number: 1,
            path: part_path.clone(),
            reason: PartStartReason::First,
            bytes: 14,
            segments: 1,
            media_seconds: 1.0,
        },
    );
    let cancel = CancellationToken::new();
    cancel.cancel();
    let ended = finalize_recording_interruptible(
        &FfmpegRunner::default(),
        &report,
        &FinalizeSettings::new(OutputFormat::Mp4, Quality::Best),
        &cancel,
    )
    .await;
    assert!(matches!(ended, FinalizeEnd::Interrupted));
    assert_eq!(std::fs::read(&part_path).expect("part"), b"not even media");
}
