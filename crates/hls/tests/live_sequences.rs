//! The live fetcher against scripted poll sequences: the k-th request of a playlist gets the k-th
//! text. Covers what a clock-driven origin cannot: media sequences that go back (a lagging CDN
//! node), restarts of the numbering, playlists that shrink, discontinuity sequences that misbehave.
//! The sequences from Eyevinn/hls-monitor (in `../shared/corpus`, skipped when absent) are served
//! with their 10 s durations scaled to 1 s; the assertions are ours: the recording ends, never
//! writes a media sequence twice, and writes each listed segment's bytes exactly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use streambot_hls::ledger::{LedgerEntry, SegmentState, read_ledger};
use streambot_hls::{
    DesiredState, FetchLimits, HlsHttpClient, NetworkPolicy, TrackEnd, TrackOutcome,
    TrackRecorderConfig, record_track,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use url::Url;

#[derive(Default)]
struct ScriptState {
    /// Playlist path → the texts of its successive polls.
    polls: HashMap<String, Vec<String>>,
    /// Playlist path → how many times it was requested.
    requests: HashMap<String, usize>,
}

type SharedScript = Arc<Mutex<ScriptState>>;

/// Deterministic bytes for a segment path: what the recording must contain for it. Ten MPEG-TS
/// packets (a 0x47 sync byte every 188 bytes, so the body check takes them for media) with
/// path-dependent payloads.
fn segment_bytes(path: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1880);
    let mut value: u32 = path.bytes().fold(2_166_136_261, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(16_777_619)
    });
    for index in 0..1880 {
        value = value.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        bytes.push(if index % 188 == 0 {
            0x47
        } else {
            (value >> 16) as u8
        });
    }
    bytes
}

async fn serve_script(State(script): State<SharedScript>, uri: Uri) -> Response {
    let path = uri.path().to_string();
    if path.ends_with(".m3u8") {
        let Ok(mut state) = script.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let count = state.requests.entry(path.clone()).or_insert(0);
        let index = *count;
        *count += 1;
        return match state.polls.get(&path) {
            Some(polls) if !polls.is_empty() => {
                let text = polls[index.min(polls.len() - 1)].clone();
                (StatusCode::OK, text).into_response()
            }
            _ => StatusCode::NOT_FOUND.into_response(),
        };
    }
    (StatusCode::OK, segment_bytes(&path)).into_response()
}

struct ScriptServer {
    base_url: String,
    shutdown: CancellationToken,
}

impl Drop for ScriptServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start_script_server(polls: HashMap<String, Vec<String>>) -> ScriptServer {
    let script: SharedScript = Arc::new(Mutex::new(ScriptState {
        polls,
        requests: HashMap::new(),
    }));
    let router = Router::new().fallback(serve_script).with_state(script);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let shutdown = CancellationToken::new();
    let server_shutdown = shutdown.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { server_shutdown.cancelled().await })
            .await;
    });
    ScriptServer {
        base_url: format!("http://{address}"),
        shutdown,
    }
}

async fn record_script(polls: Vec<String>, directory: &Path) -> (TrackOutcome, Vec<LedgerEntry>) {
    let server = start_script_server(HashMap::from([("/live.m3u8".to_string(), polls)])).await;
    let url = Url::parse(&format!("{}/live.m3u8", server.base_url)).expect("url");
    let mut config = TrackRecorderConfig::new("main", url, directory.to_path_buf());
    config.stall_timeout = Duration::from_secs(3);
    config.live_edge_segments = 10;
    let client =
        HlsHttpClient::new(NetworkPolicy::ALLOW_PRIVATE, FetchLimits::default()).expect("client");
    let (_control_sender, control) = watch::channel(DesiredState::Record);
    let (events_sender, _events) = mpsc::unbounded_channel();
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        record_track(client, config, control, events_sender),
    )
    .await
    .expect("the recording ends");
    let ledger = read_ledger(&outcome.ledger_path).expect("ledger");
    (outcome, ledger)
}

/// Never the same (epoch, media sequence) twice, always in order; the parts hold exactly the
/// bytes of the `ok` entries.
fn assert_ledger_sound(outcome: &TrackOutcome, ledger: &[LedgerEntry], label: &str) {
    let keys: Vec<(u32, u64)> = ledger
        .iter()
        .map(|entry| (entry.epoch, entry.media_sequence))
        .collect();
    for pair in keys.windows(2) {
        assert!(
            pair[0] < pair[1],
            "{label}: ledger out of order or repeated: {keys:?}"
        );
    }
    let mut expected = Vec::new();
    for entry in ledger
        .iter()
        .filter(|entry| entry.state == SegmentState::Ok)
    {
        expected.extend(segment_bytes(&format!("/{}", entry.uri)));
    }
    let mut actual = Vec::new();
    let mut parts: Vec<PathBuf> = outcome.parts.iter().map(|part| part.path.clone()).collect();
    parts.sort();
    for part in parts {
        actual.extend(std::fs::read(part).expect("part"));
    }
    assert!(
        actual == expected,
        "{label}: part bytes differ from the segments listed"
    );
}

fn scaled(text: &str) -> String {
    text.replace("#EXT-X-TARGETDURATION:10", "#EXT-X-TARGETDURATION:1")
        .replace("#EXTINF:10.000,", "#EXTINF:1.000,")
}

/// One `#EXTINF` + URI per segment, with `#EXT-X-DISCONTINUITY` before those written `!uri`.
fn push_segment_lines(text: &mut String, segments: &[&str]) {
    for segment in segments {
        if let Some(uri) = segment.strip_prefix('!') {
            text.push_str("#EXT-X-DISCONTINUITY\n");
            text.push_str(&format!("#EXTINF:1.000,\n{uri}\n"));
        } else {
            text.push_str(&format!("#EXTINF:1.000,\n{segment}\n"));
        }
    }
}

fn playlist(media_sequence: u64, discontinuity_sequence: u64, segments: &[&str]) -> String {
    let mut text = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:{media_sequence}\n#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}\n"
    );
    push_segment_lines(&mut text, segments);
    text
}

#[tokio::test]
async fn a_restart_of_the_numbering_starts_a_new_epoch_and_part() {
    let directory = tempfile::tempdir().expect("tempdir");
    let polls = vec![
        playlist(100, 0, &["a100.ts", "a101.ts", "a102.ts"]),
        playlist(101, 0, &["a101.ts", "a102.ts", "a103.ts"]),
        // The encoder restarted: numbering from 0, discontinuity sequence moved on.
        playlist(0, 1, &["b0.ts", "b1.ts"]),
        playlist(0, 1, &["b0.ts", "b1.ts", "b2.ts"]),
        playlist(1, 1, &["b1.ts", "b2.ts", "b3.ts"]),
    ];
    let (outcome, ledger) = record_script(polls, directory.path()).await;
    assert!(
        matches!(outcome.end, TrackEnd::Finished(_)),
        "{:?}",
        outcome.end
    );
    let uris: Vec<&str> = ledger.iter().map(|entry| entry.uri.as_str()).collect();
    assert_eq!(
        uris,
        vec![
            "a100.ts", "a101.ts", "a102.ts", "a103.ts", "b0.ts", "b1.ts", "b2.ts", "b3.ts"
        ]
    );
    assert!(ledger[..4].iter().all(|entry| entry.epoch == 0));
    assert!(ledger[4..].iter().all(|entry| entry.epoch == 1));
    assert_eq!(outcome.parts.len(), 2, "a restart starts a new part");
    assert_ledger_sound(&outcome, &ledger, "restart");
}

#[tokio::test]
async fn a_stale_playlist_from_a_lagging_node_is_ignored() {
    let directory = tempfile::tempdir().expect("tempdir");
    let polls = vec![
        playlist(10, 0, &["s10.ts", "s11.ts", "s12.ts"]),
        playlist(12, 0, &["s12.ts", "s13.ts", "s14.ts"]),
        // An older copy: nothing in it may be written again.
        playlist(11, 0, &["s11.ts", "s12.ts", "s13.ts"]),
        playlist(13, 0, &["s13.ts", "s14.ts", "s15.ts"]),
    ];
    let (outcome, ledger) = record_script(polls, directory.path()).await;
    let uris: Vec<&str> = ledger.iter().map(|entry| entry.uri.as_str()).collect();
    assert_eq!(
        uris,
        vec!["s10.ts", "s11.ts", "s12.ts", "s13.ts", "s14.ts", "s15.ts"]
    );
    assert_eq!(outcome.parts.len(), 1);
    assert_ledger_sound(&outcome, &ledger, "stale");
}

#[tokio::test]
async fn an_empty_playlist_in_between_is_survived() {
    let directory = tempfile::tempdir().expect("tempdir");
    let polls = vec![
        playlist(5, 0, &["e5.ts", "e6.ts"]),
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n".to_string(),
        "<html>502 Bad Gateway</html>".to_string(),
        playlist(6, 0, &["e6.ts", "e7.ts", "!e8.ts"]),
    ];
    let (outcome, ledger) = record_script(polls, directory.path()).await;
    let uris: Vec<&str> = ledger.iter().map(|entry| entry.uri.as_str()).collect();
    assert_eq!(uris, vec!["e5.ts", "e6.ts", "e7.ts", "e8.ts"]);
    assert_eq!(outcome.parts.len(), 2, "the discontinuity starts a part");
    assert_ledger_sound(&outcome, &ledger, "empty");
}

fn corpus_directory() -> Option<PathBuf> {
    let directory = match std::env::var_os("STREAMBOT_CORPUS_DIR") {
        Some(directory) => PathBuf::from(directory),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
    };
    let sequences = directory.join("hls-playlists/live-sequences/hls-monitor");
    sequences.is_dir().then_some(sequences)
}

#[tokio::test]
async fn the_hls_monitor_poll_sequences_record_soundly() {
    let Some(sequences) = corpus_directory() else {
        streambot_testkit::requirements::skip_or_fail(
            "the corpus's hls-monitor poll sequences",
            "set STREAMBOT_CORPUS_DIR to /work/shared/corpus",
        );
        return;
    };
    let mut sequence_directories: Vec<PathBuf> = std::fs::read_dir(&sequences)
        .expect("listing")
        .flatten()
        .map(|item| item.path())
        .filter(|path| path.is_dir())
        .collect();
    sequence_directories.sort();
    assert!(!sequence_directories.is_empty());
    let mut runs = Vec::new();
    for sequence_directory in sequence_directories {
        runs.push(tokio::spawn(async move {
            let mut polls = Vec::new();
            for poll in 0.. {
                let path = sequence_directory.join(format!("level_0.poll{poll}.m3u8"));
                match std::fs::read_to_string(&path) {
                    Ok(text) => polls.push(scaled(&text)),
                    Err(_) => break,
                }
            }
            let label = sequence_directory.display().to_string();
            let directory = tempfile::tempdir().expect("tempdir");
            let (outcome, ledger) = record_script(polls, directory.path()).await;
            assert!(
                matches!(outcome.end, TrackEnd::Finished(_)),
                "{label}: {:?}",
                outcome.end
            );
            assert!(!ledger.is_empty(), "{label}: nothing recorded");
            assert_ledger_sound(&outcome, &ledger, &label);
            ledger.len()
        }));
    }
    let mut total = 0;
    for run in runs {
        total += run.await.expect("no panic");
    }
    eprintln!("hls-monitor sequences: {total} ledger entries, all sound");
}

/// nginx-rtmp style: `#EXT-X-DISCONTINUITY` before the first fragment of every publish, never an
/// `EXT-X-DISCONTINUITY-SEQUENCE`, numbering that keeps going across a publish.
fn nginx_rtmp_playlist(media_sequence: u64, segments: &[&str], end: bool) -> String {
    let mut text = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:{media_sequence}\n"
    );
    push_segment_lines(&mut text, segments);
    if end {
        text.push_str("#EXT-X-ENDLIST\n");
    }
    text
}

/// Issue 17: the tag before the first fragment of the publish slides out of the window; the
/// discontinuity sequence computed from the playlist drops from 1 to 0. Nothing splits.
#[tokio::test]
async fn a_discontinuity_tag_sliding_out_of_the_window_splits_nothing() {
    let directory = tempfile::tempdir().expect("tempdir");
    let polls = vec![
        nginx_rtmp_playlist(0, &["!s0.ts", "s1.ts", "s2.ts", "s3.ts"], false),
        nginx_rtmp_playlist(1, &["s1.ts", "s2.ts", "s3.ts", "s4.ts"], false),
        nginx_rtmp_playlist(2, &["s2.ts", "s3.ts", "s4.ts", "s5.ts"], false),
        nginx_rtmp_playlist(3, &["s3.ts", "s4.ts", "s5.ts", "s6.ts"], true),
    ];
    let (outcome, ledger) = record_script(polls, directory.path()).await;
    assert!(
        matches!(outcome.end, TrackEnd::Finished(_)),
        "{:?}",
        outcome.end
    );
    assert_eq!(outcome.parts.len(), 1, "{:?}", outcome.parts);
    assert_eq!(
        ledger
            .iter()
            .filter(|entry| entry.state == SegmentState::Ok)
            .count(),
        7
    );
    assert_ledger_sound(&outcome, &ledger, "nginx-rtmp slide-out");
}

/// Issue 17: an encoder restart on nginx-rtmp (a tag first seen before the new publish's first
/// fragment) is one split, labelled a discontinuity in the outcome and in what the ledger says
/// about the parts (recording.json); the tag sliding out later splits nothing more.
#[tokio::test]
async fn an_nginx_rtmp_restart_is_one_discontinuity_split() {
    let directory = tempfile::tempdir().expect("tempdir");
    let polls = vec![
        nginx_rtmp_playlist(0, &["!s0.ts", "s1.ts", "s2.ts"], false),
        nginx_rtmp_playlist(1, &["s1.ts", "s2.ts", "!r0.ts"], false),
        nginx_rtmp_playlist(2, &["s2.ts", "!r0.ts", "r1.ts"], false),
        nginx_rtmp_playlist(3, &["!r0.ts", "r1.ts", "r2.ts"], false),
        nginx_rtmp_playlist(4, &["r1.ts", "r2.ts", "r3.ts"], false),
        nginx_rtmp_playlist(5, &["r2.ts", "r3.ts", "r4.ts"], true),
    ];
    let (outcome, ledger) = record_script(polls, directory.path()).await;
    assert!(
        matches!(outcome.end, TrackEnd::Finished(_)),
        "{:?}",
        outcome.end
    );
    assert_eq!(outcome.parts.len(), 2, "{:?}", outcome.parts);
    assert_eq!(
        outcome.parts[1].reason,
        streambot_hls::ledger::PartStartReason::Discontinuity
    );
    let from_ledger =
        streambot_hls::ledger::parts_recorded_in(directory.path(), "main").expect("parts");
    assert_eq!(from_ledger.len(), 2);
    assert_eq!(
        from_ledger[1].reason,
        streambot_hls::ledger::PartStartReason::Discontinuity,
        "recording.json must say discontinuity, not resume"
    );
    let first_part: Vec<&str> = ledger
        .iter()
        .filter(|entry| entry.part == outcome.parts[0].number)
        .map(|entry| entry.uri.as_str())
        .collect();
    assert_eq!(first_part, vec!["s0.ts", "s1.ts", "s2.ts"]);
    assert_ledger_sound(&outcome, &ledger, "nginx-rtmp restart");
}
