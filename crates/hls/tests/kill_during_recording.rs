//! What a `kill -9` of the recording process can lose: nothing it already reported committed.
//!
//! The ledger and the part are fsync'd in batches (`fsync_interval`, 10 s by default), but every
//! segment's bytes and its ledger line are written (`write`) before `SegmentCommitted` is sent,
//! and what a process wrote is in the kernel's page cache, which outlives the process. Only a
//! crash of the machine (power, kernel) can lose the writes of the last `fsync_interval`; a
//! resumed recording then starts after the last ledger line that survived and fetches again what
//! the live window still offers.
//!
//! The test runs the recorder in a child process (this test binary again, running
//! `child_records_until_killed`) with an fsync interval of an hour, so nothing it writes after its
//! start is fsync'd; the child prints every `SegmentCommitted` it receives; after a few the parent
//! sends SIGKILL and checks that every reported segment is in the ledger as `ok` with its part,
//! offset and size, and that the part holds those bytes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use streambot_hls::ledger::{PartContainer, SegmentState, part_file_name, read_ledger};
use streambot_hls::{
    DesiredState, FetchLimits, HlsHttpClient, NetworkPolicy, TrackEvent, TrackRecorderConfig,
    record_track,
};
use streambot_testkit::{OriginConfig, SegmentKind, spawn_origin};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, watch};
use url::Url;

const CHILD_URL_VARIABLE: &str = "STREAMBOT_KILL_TEST_URL";
const CHILD_DIRECTORY_VARIABLE: &str = "STREAMBOT_KILL_TEST_DIRECTORY";
const COMMITS_BEFORE_THE_KILL: usize = 4;

/// One segment the child reported committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReportedCommit {
    media_sequence: u64,
    part: u32,
    offset_in_part: u64,
    bytes: u64,
}

fn parse_reported_commit(line: &str) -> Option<ReportedCommit> {
    let mut words = line.strip_prefix("committed ")?.split(' ');
    let mut next_number = || words.next()?.parse::<u64>().ok();
    Some(ReportedCommit {
        media_sequence: next_number()?,
        part: u32::try_from(next_number()?).ok()?,
        offset_in_part: next_number()?,
        bytes: next_number()?,
    })
}

/// The child: records until it is killed, printing each commit. Does nothing when run on its own.
#[tokio::test]
async fn child_records_until_killed() {
    let (Ok(url), Ok(directory)) = (
        std::env::var(CHILD_URL_VARIABLE),
        std::env::var(CHILD_DIRECTORY_VARIABLE),
    ) else {
        return;
    };
    let mut config = TrackRecorderConfig::new(
        "main",
        Url::parse(&url).expect("url"),
        PathBuf::from(directory),
    );
    // Nothing written after the start is fsync'd before the kill.
    config.fsync_interval = Duration::from_secs(3600);
    config.stall_timeout = Duration::from_secs(60);
    let client =
        HlsHttpClient::new(NetworkPolicy::ALLOW_PRIVATE, FetchLimits::default()).expect("client");
    let (_control_sender, control) = watch::channel(DesiredState::Record);
    let (events_sender, mut events) = mpsc::unbounded_channel();
    let recording = tokio::spawn(record_track(client, config, control, events_sender));
    while let Some(event) = events.recv().await {
        if let TrackEvent::SegmentCommitted { entry, .. } = event {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            writeln!(
                stdout,
                "committed {} {} {} {}",
                entry.media_sequence, entry.part, entry.offset_in_part, entry.bytes
            )
            .expect("stdout");
            stdout.flush().expect("stdout");
        }
    }
    let _ = recording.await;
}

#[tokio::test]
async fn a_kill_9_loses_no_segment_already_reported_committed() {
    let origin = spawn_origin(
        OriginConfig::new(SegmentKind::MpegTs)
            .with_window_segments(6)
            .with_initial_segments(6)
            .with_first_media_sequence(500)
            .with_total_segments(600),
    )
    .await
    .expect("origin starts");
    let directory = tempfile::tempdir().expect("tempdir");
    let this_test_binary = std::env::current_exe().expect("current exe");
    let mut child = tokio::process::Command::new(this_test_binary)
        .args([
            "--exact",
            "child_records_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_URL_VARIABLE, origin.media_playlist_url())
        .env(CHILD_DIRECTORY_VARIABLE, directory.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("the child starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut reported = Vec::new();
    let read_commits = async {
        while reported.len() < COMMITS_BEFORE_THE_KILL {
            let Some(line) = lines.next_line().await.expect("read the child") else {
                break;
            };
            if let Some(commit) = parse_reported_commit(&line) {
                reported.push(commit);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read_commits)
        .await
        .expect("the child commits segments");
    assert_eq!(
        reported.len(),
        COMMITS_BEFORE_THE_KILL,
        "the child ended before it committed {COMMITS_BEFORE_THE_KILL} segments"
    );
    child.start_kill().expect("SIGKILL");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the child dies")
        .expect("wait");
    assert!(!status.success(), "the child was killed: {status:?}");

    let ledger = read_ledger(&directory.path().join("main-ledger.jsonl")).expect("ledger");
    for commit in &reported {
        let entry = ledger
            .iter()
            .find(|entry| entry.media_sequence == commit.media_sequence)
            .unwrap_or_else(|| panic!("{commit:?} is not in the ledger after the kill"));
        assert_eq!(entry.state, SegmentState::Ok, "{commit:?}");
        assert_eq!(
            (entry.part, entry.offset_in_part, entry.bytes),
            (commit.part, commit.offset_in_part, commit.bytes),
            "{commit:?}"
        );
        let part = part_path(directory.path(), commit.part);
        let part_bytes = std::fs::read(&part).expect("the part is there");
        let end = usize::try_from(commit.offset_in_part + commit.bytes).expect("size");
        assert!(
            part_bytes.len() >= end,
            "{commit:?}: the part has {} bytes",
            part_bytes.len()
        );
        let start = usize::try_from(commit.offset_in_part).expect("size");
        assert_eq!(
            part_bytes[start], 0x47,
            "{commit:?}: an MPEG-TS packet starts there"
        );
    }
}

fn part_path(directory: &Path, part: u32) -> PathBuf {
    directory.join(part_file_name("main", part, PartContainer::MpegTs))
}

#[test]
fn reported_commits_are_read_back() {
    assert_eq!(
        parse_reported_commit("committed 501 1 188 376"),
        Some(ReportedCommit {
            media_sequence: 501,
            part: 1,
            offset_in_part: 188,
            bytes: 376
        })
    );
    assert_eq!(parse_reported_commit("running 1 test"), None);
}
