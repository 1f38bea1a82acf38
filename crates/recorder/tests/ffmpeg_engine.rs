//! Issue 11 item 2: the ffmpeg engine never touches the network. Real HTTP servers on 127.0.0.1
//! (written here, logging every request's User-Agent) serve .ts/.flv/.mp4 links, redirects, a
//! playlist behind a `.ts` link and a DASH manifest; streambot's own client fetches them and
//! ffmpeg reads only its stdin (or a downloaded file). No request from ffmpeg's own client
//! (User-Agent `Lavf/…`) may reach any server.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streambot_core::{Quality, RecordingEndReason, RecordingOptions};
use streambot_hls::{DesiredState, FetchLimits, HlsHttpClient, NetworkPolicy};
use streambot_recorder::{RecordingOutcome, RecordingReport, RecordingSettings, record};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

fn ffmpeg_available() -> bool {
    // Missing: skipped, or a failure under STREAMBOT_REQUIRE_ALL=1.
    streambot_testkit::requirements::require_or_skip("ffmpeg")
}

/// One route's answer.
#[derive(Clone)]
struct Answer {
    status: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Pieces the body is sent in, `interval` apart (a "live" source).
    chunks: usize,
    interval: Duration,
}

impl Answer {
    fn ok(content_type: &str, body: Vec<u8>) -> Self {
        Answer {
            status: "200 OK",
            headers: vec![("Content-Type".to_owned(), content_type.to_owned())],
            body,
            chunks: 1,
            interval: Duration::ZERO,
        }
    }

    fn redirect(location: &str) -> Self {
        Answer {
            status: "302 Found",
            headers: vec![("Location".to_owned(), location.to_owned())],
            body: Vec::new(),
            chunks: 1,
            interval: Duration::ZERO,
        }
    }

    fn slowly(mut self, chunks: usize, interval: Duration) -> Self {
        self.chunks = chunks;
        self.interval = interval;
        self
    }
}

/// A server on 127.0.0.1 answering by path and logging (path, User-Agent) of every request.
#[derive(Clone)]
struct Server {
    base: String,
    routes: Arc<Mutex<HashMap<String, Answer>>>,
    log: Arc<Mutex<Vec<(String, String)>>>,
}

impl Server {
    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let server = Server {
            base: format!("http://{address}"),
            routes: Arc::default(),
            log: Arc::default(),
        };
        let serving = server.clone();
        tokio::spawn(async move {
            while let Ok((connection, _)) = listener.accept().await {
                tokio::spawn(serving.clone().answer(connection));
            }
        });
        server
    }

    fn route(&self, path: &str, answer: Answer) {
        self.routes
            .lock()
            .expect("routes")
            .insert(path.to_owned(), answer);
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn user_agents(&self) -> Vec<String> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .map(|(_, agent)| agent.clone())
            .collect()
    }

    fn requested_paths(&self) -> Vec<String> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .map(|(path, _)| path.clone())
            .collect()
    }

    async fn answer(self, mut connection: TcpStream) {
        let mut request = Vec::new();
        let mut buffer = [0u8; 2048];
        while !request.windows(4).any(|window| window == b"\r\n\r\n") && request.len() < 16_384 {
            match connection.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => request.extend_from_slice(&buffer[..read]),
            }
        }
        let text = String::from_utf8_lossy(&request).into_owned();
        let path = text
            .lines()
            .next()
            .and_then(|line| line.split_whitespace().nth(1))
            .unwrap_or("/")
            .to_owned();
        let user_agent = text
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("user-agent")
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_default();
        self.log
            .lock()
            .expect("log")
            .push((path.clone(), user_agent));
        let answer = self.routes.lock().expect("routes").get(&path).cloned();
        let Some(answer) = answer else {
            let _ = connection
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
            return;
        };
        let mut head = format!(
            "HTTP/1.1 {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            answer.status,
            answer.body.len()
        );
        for (name, value) in &answer.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        if connection.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let piece = answer.body.len().div_ceil(answer.chunks.max(1)).max(1);
        for chunk in answer.body.chunks(piece) {
            if connection.write_all(chunk).await.is_err() {
                return;
            }
            tokio::time::sleep(answer.interval).await;
        }
    }
}

/// `seconds` of 160x90 H.264 + AAC test media in `muxer`, with extra output options.
fn make_media(directory: &Path, name: &str, seconds: u32, muxer: &str, extra: &[&str]) -> Vec<u8> {
    let output = directory.join(name);
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25"])
        .args(["-f", "lavfi", "-i", "sine"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-c:a",
            "aac",
        ])
        .args(extra)
        .args(["-f", muxer])
        .arg(&output)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "making {name}");
    std::fs::read(&output).expect("read media")
}

fn client(policy: NetworkPolicy) -> HlsHttpClient {
    HlsHttpClient::new(policy, FetchLimits::default()).expect("client")
}

async fn record_link(
    url: &str,
    policy: NetworkPolicy,
    directory: &Path,
    control: watch::Receiver<DesiredState>,
) -> RecordingReport {
    let options = RecordingOptions {
        quality: Quality::Best,
        stall_timeout: Duration::from_secs(20),
        ..RecordingOptions::default()
    };
    let mut settings = RecordingSettings::new(directory.to_path_buf());
    settings.maximum_part_seconds = Some(2.0);
    let (events_sender, _events) = mpsc::unbounded_channel();
    tokio::time::timeout(
        Duration::from_secs(60),
        record(
            client(policy),
            url,
            options,
            settings,
            control,
            events_sender,
        ),
    )
    .await
    .expect("ends by itself")
}

async fn record_until_end(url: &str, directory: &Path) -> RecordingReport {
    let (_control_sender, control) = watch::channel(DesiredState::Record);
    record_link(url, NetworkPolicy::ALLOW_PRIVATE, directory, control).await
}

fn part_paths(report: &RecordingReport) -> Vec<PathBuf> {
    report
        .main
        .as_ref()
        .map(|main| main.parts.iter().map(|part| part.path.clone()).collect())
        .unwrap_or_default()
}

/// Total duration of `files` by ffprobe (each must have video).
fn probed_seconds(files: &[PathBuf]) -> f64 {
    files
        .iter()
        .map(|file| {
            let output = std::process::Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-show_entries",
                    "format=duration",
                    "-of",
                    "csv=p=0",
                ])
                .arg(file)
                .output()
                .expect("ffprobe");
            String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse::<f64>()
                .unwrap_or(0.0)
        })
        .sum()
}

fn assert_no_ffmpeg_client(servers: &[&Server]) {
    for server in servers {
        for agent in server.user_agents() {
            assert!(
                !agent.starts_with("Lavf"),
                "ffmpeg reached a server: {agent}"
            );
            assert!(
                agent.starts_with("streambot/"),
                "unexpected client {agent:?}"
            );
        }
    }
}

#[tokio::test]
async fn plain_ts_flv_and_mp4_links_are_fetched_by_streambot_and_piped_into_ffmpeg() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let media = tempfile::tempdir().expect("media");
    let server = Server::start().await;
    server.route(
        "/live.ts",
        Answer::ok(
            "video/mp2t",
            make_media(media.path(), "a.ts", 6, "mpegts", &[]),
        ),
    );
    server.route(
        "/live.flv",
        Answer::ok(
            "video/x-flv",
            make_media(media.path(), "a.flv", 6, "flv", &[]),
        ),
    );
    server.route(
        "/clip.mp4",
        Answer::ok(
            "video/mp4",
            make_media(
                media.path(),
                "a.mp4",
                6,
                "mp4",
                &["-movflags", "+faststart"],
            ),
        ),
    );
    // The index at the end: downloaded to a file, then remuxed from there.
    server.route(
        "/index-at-end.mp4",
        Answer::ok(
            "video/mp4",
            make_media(media.path(), "b.mp4", 6, "mp4", &[]),
        ),
    );
    for path in ["/live.ts", "/live.flv", "/clip.mp4", "/index-at-end.mp4"] {
        let directory = tempfile::tempdir().expect("tempdir");
        let report = record_until_end(&server.url(path), directory.path()).await;
        assert!(report.succeeded(), "{path}: {:?}", report.outcome);
        let parts = part_paths(&report);
        assert!(parts.len() >= 2, "{path}: {parts:?}");
        let seconds = probed_seconds(&parts);
        assert!((seconds - 6.0).abs() < 1.0, "{path}: {seconds} s recorded");
        assert!(
            !directory.path().join("download.mp4").exists(),
            "{path}: the download is removed"
        );
    }
    assert_no_ffmpeg_client(&[&server]);
}

#[tokio::test]
async fn redirects_are_followed_by_streambot_and_checked() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let media = tempfile::tempdir().expect("media");
    let first = Server::start().await;
    let second = Server::start().await;
    second.route(
        "/real.ts",
        Answer::ok(
            "video/mp2t",
            make_media(media.path(), "a.ts", 4, "mpegts", &[]),
        ),
    );
    first.route("/live.ts", Answer::redirect(&second.url("/real.ts")));
    first.route("/escape.ts", Answer::redirect("file:///etc/passwd"));
    first.route("/loop.ts", Answer::redirect("/loop.ts"));

    let directory = tempfile::tempdir().expect("tempdir");
    let report = record_until_end(&first.url("/live.ts"), directory.path()).await;
    assert!(report.succeeded(), "{:?}", report.outcome);
    assert!(!part_paths(&report).is_empty());
    assert_eq!(second.requested_paths(), ["/real.ts"]);

    for (path, expected) in [("/escape.ts", "file"), ("/loop.ts", "redirect")] {
        let directory = tempfile::tempdir().expect("tempdir");
        let report = record_until_end(&first.url(path), directory.path()).await;
        match &report.outcome {
            RecordingOutcome::Failed { message, .. } => {
                assert!(!message.is_empty(), "{path}");
            }
            other => panic!("{path}: expected a refusal ({expected}), got {other:?}"),
        }
        assert!(part_paths(&report).is_empty(), "{path}");
    }
    // A bounded number of hops.
    let loops = first
        .requested_paths()
        .iter()
        .filter(|path| *path == "/loop.ts")
        .count();
    assert!(
        loops <= FetchLimits::default().maximum_redirects + 1,
        "{loops}"
    );

    // Only public addresses: the loopback link is refused before any connection.
    let refused = tempfile::tempdir().expect("tempdir");
    let before = first.requested_paths().len();
    let (_control_sender, control) = watch::channel(DesiredState::Record);
    let report = record_link(
        &first.url("/live.ts"),
        NetworkPolicy::PUBLIC_ONLY,
        refused.path(),
        control,
    )
    .await;
    assert!(!report.succeeded(), "{:?}", report.outcome);
    assert_eq!(
        first.requested_paths().len(),
        before,
        "no request to a refused address"
    );
    assert_no_ffmpeg_client(&[&first, &second]);
}

#[tokio::test]
async fn a_ts_link_that_serves_a_playlist_goes_to_the_native_engine() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let media = tempfile::tempdir().expect("media");
    let segments = Server::start().await;
    let link = Server::start().await;
    let mut playlist = String::from(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n",
    );
    for number in 0..3 {
        let name = format!("s{number}.ts");
        let bytes = make_media(
            media.path(),
            &name,
            2,
            "mpegts",
            &["-output_ts_offset", &(number * 2).to_string()],
        );
        segments.route(&format!("/{name}"), Answer::ok("video/mp2t", bytes));
        playlist.push_str(&format!(
            "#EXTINF:2.0,\n{}\n",
            segments.url(&format!("/{name}"))
        ));
    }
    playlist.push_str("#EXT-X-ENDLIST\n");
    link.route(
        "/live.ts",
        Answer::ok(
            "application/vnd.apple.mpegurl",
            playlist.clone().into_bytes(),
        ),
    );
    // The same playlist served as video/mp2t is told by its first bytes.
    link.route(
        "/disguised.ts",
        Answer::ok("video/mp2t", playlist.into_bytes()),
    );
    for path in ["/live.ts", "/disguised.ts"] {
        let directory = tempfile::tempdir().expect("tempdir");
        let report = record_until_end(&link.url(path), directory.path()).await;
        assert!(report.succeeded(), "{path}: {:?}", report.outcome);
        let main = report.main.as_ref().expect("main");
        assert_eq!(
            main.progress.segments_written, 3,
            "{path}: {:?}",
            main.progress
        );
        assert!(
            directory.path().join("main-ledger.jsonl").exists(),
            "{path}: recorded by the native engine"
        );
    }
    assert_no_ffmpeg_client(&[&segments, &link]);
}

#[tokio::test]
async fn a_dash_manifest_or_web_page_behind_a_media_link_is_refused_clearly() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let server = Server::start().await;
    server.route(
        "/video.mp4",
        Answer::ok(
            "application/dash+xml",
            b"<?xml version=\"1.0\"?><MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\"><Period><AdaptationSet><Representation><BaseURL>file:///etc/passwd</BaseURL></Representation></AdaptationSet></Period></MPD>".to_vec(),
        ),
    );
    server.route(
        "/page.ts",
        Answer::ok("text/html", b"<!DOCTYPE html><html></html>".to_vec()),
    );
    for (path, expected) in [
        ("/video.mp4", "DASH"),
        ("/page.ts", "does not lead to a stream"),
    ] {
        let directory = tempfile::tempdir().expect("tempdir");
        let report = record_until_end(&server.url(path), directory.path()).await;
        match &report.outcome {
            RecordingOutcome::Failed {
                message, retryable, ..
            } => {
                assert!(message.contains(expected), "{path}: {message}");
                assert!(!retryable);
            }
            other => panic!("{path}: expected a refusal, got {other:?}"),
        }
        assert!(part_paths(&report).is_empty());
    }
    assert_no_ffmpeg_client(&[&server]);
}

#[tokio::test]
async fn a_live_piped_recording_pauses_resumes_and_stops_cleanly() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let media = tempfile::tempdir().expect("media");
    let server = Server::start().await;
    // 20 s of media over about 10 s.
    server.route(
        "/live.ts",
        Answer::ok(
            "video/mp2t",
            make_media(media.path(), "a.ts", 20, "mpegts", &[]),
        )
        .slowly(100, Duration::from_millis(100)),
    );
    let directory = tempfile::tempdir().expect("tempdir");
    let (control_sender, control) = watch::channel(DesiredState::Record);
    let url = server.url("/live.ts");
    let path = directory.path().to_path_buf();
    let recording = tokio::spawn(async move {
        record_link(&url, NetworkPolicy::ALLOW_PRIVATE, &path, control).await
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    control_sender.send_replace(DesiredState::Pause);
    tokio::time::sleep(Duration::from_secs(2)).await;
    control_sender.send_replace(DesiredState::Record);
    tokio::time::sleep(Duration::from_secs(2)).await;
    control_sender.send_replace(DesiredState::Stop);
    let report = tokio::time::timeout(Duration::from_secs(20), recording)
        .await
        .expect("stops in time")
        .expect("no panic");
    match &report.outcome {
        RecordingOutcome::Finished {
            reason: RecordingEndReason::Stopped,
        } => {}
        other => panic!("expected a stop, got {other:?}"),
    }
    let parts = part_paths(&report);
    assert!(!parts.is_empty());
    let seconds = probed_seconds(&parts);
    // About 6 s of wall clock at 2x: about 8 s recorded (the paused 4 s of media dropped).
    assert!(seconds > 3.0 && seconds < 16.0, "{seconds} s recorded");
    assert_no_ffmpeg_client(&[&server]);
}

#[tokio::test]
async fn a_stop_while_the_link_trickles_its_first_bytes_ends_at_once() {
    let server = Server::start().await;
    let mut trickle = vec![0u8; 188 * 100];
    for packet in trickle.chunks_mut(188) {
        packet[0] = 0x47;
    }
    // 188 bytes, then 10 s of silence per packet: the format cannot be told for minutes.
    server.route(
        "/slow.ts",
        Answer::ok("video/mp2t", trickle).slowly(100, Duration::from_secs(10)),
    );
    let directory = tempfile::tempdir().expect("tempdir");
    let (control_sender, control) = watch::channel(DesiredState::Record);
    let url = server.url("/slow.ts");
    let path = directory.path().to_path_buf();
    let recording = tokio::spawn(async move {
        record_link(&url, NetworkPolicy::ALLOW_PRIVATE, &path, control).await
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    control_sender.send_replace(DesiredState::Stop);
    let report = tokio::time::timeout(Duration::from_secs(5), recording)
        .await
        .expect("the stop is not held up by the slow link")
        .expect("no panic");
    assert!(
        matches!(
            report.outcome,
            RecordingOutcome::Finished {
                reason: RecordingEndReason::Stopped
            }
        ),
        "{:?}",
        report.outcome
    );
    assert!(part_paths(&report).is_empty());
}

/// A live MPEG-TS origin on 127.0.0.1: the media plays out on a clock (about real time), every
/// connection gets the bytes from the live position on (not at a packet boundary), with no
/// length, and the first `drops` connections are cut off after `cut_after` bytes.
struct LiveTsOrigin {
    address: std::net::SocketAddr,
    connections: Arc<Mutex<u32>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LiveTsOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LiveTsOrigin {
    async fn start(media: Vec<u8>, media_seconds: f64, drops: u32, cut_after: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let connections = Arc::new(Mutex::new(0u32));
        let counter = Arc::clone(&connections);
        let media = Arc::new(media);
        let started = std::time::Instant::now();
        let bytes_per_second = media.len() as f64 / media_seconds;
        let task = tokio::spawn(async move {
            while let Ok((mut connection, _)) = listener.accept().await {
                let media = Arc::clone(&media);
                let number = {
                    let mut count = counter.lock().expect("lock");
                    *count += 1;
                    *count
                };
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = connection.read(&mut request).await;
                    let head =
                        "HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nConnection: close\r\n\r\n";
                    if connection.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let live_position = |now: std::time::Instant| {
                        ((now - started).as_secs_f64() * bytes_per_second) as usize
                    };
                    // The first connection starts at the beginning; later ones at the live
                    // position, wherever it is inside a packet.
                    let mut sent_up_to = if number == 1 {
                        0
                    } else {
                        live_position(std::time::Instant::now()).min(media.len())
                    };
                    let connection_start = sent_up_to;
                    loop {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let mut until =
                            (live_position(std::time::Instant::now()) + 16 * 1024).min(media.len());
                        if number <= drops {
                            until = until.min(connection_start + cut_after);
                        }
                        if until > sent_up_to {
                            let Some(piece) = media.get(sent_up_to..until) else {
                                return;
                            };
                            if connection.write_all(piece).await.is_err() {
                                return;
                            }
                            sent_up_to = until;
                        }
                        if sent_up_to >= media.len()
                            || (number <= drops && sent_up_to >= connection_start + cut_after)
                        {
                            // Cut off (or the media is over): the connection just closes.
                            return;
                        }
                    }
                });
            }
        });
        LiveTsOrigin {
            address,
            connections,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/live.ts", self.address)
    }
}

#[tokio::test]
async fn a_live_ts_link_whose_connection_drops_twice_is_reconnected_and_recorded_to_the_end() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let media = tempfile::tempdir().expect("media");
    let bytes = make_media(media.path(), "live.ts", 16, "mpegts", &[]);
    drop(media);
    // Cut the first two connections after about 2.5 s of media each, 1000 bytes off a packet.
    let cut_after = bytes.len() / 16 * 5 / 2 / 188 * 188 + 1000;
    let origin = LiveTsOrigin::start(bytes, 16.0, 2, cut_after).await;
    let directory = tempfile::tempdir().expect("tempdir");
    let options = RecordingOptions {
        quality: Quality::Best,
        maximum_duration: Some(Duration::from_secs(8)),
        stall_timeout: Duration::from_secs(20),
        ..RecordingOptions::default()
    };
    let mut settings = RecordingSettings::new(directory.path().to_path_buf());
    settings.maximum_part_seconds = Some(600.0);
    let (events_sender, _events) = mpsc::unbounded_channel();
    let (_control_sender, control) = watch::channel(DesiredState::Record);
    let report = tokio::time::timeout(
        Duration::from_secs(40),
        record(
            client(NetworkPolicy::ALLOW_PRIVATE),
            &origin.url(),
            options,
            settings,
            control,
            events_sender,
        ),
    )
    .await
    .expect("ends by itself");
    assert!(
        *origin.connections.lock().expect("lock") >= 3,
        "reconnected twice"
    );
    match &report.outcome {
        RecordingOutcome::Finished {
            reason: RecordingEndReason::DurationReached,
        } => {}
        other => panic!("expected the duration to be reached, got {other:?}"),
    }
    let parts = part_paths(&report);
    assert!(!parts.is_empty());
    let seconds = probed_seconds(&parts);
    // 8 s asked; the reconnect gaps are in the timestamps, so about 8 s of timeline.
    assert!(
        (6.5..=9.5).contains(&seconds),
        "{seconds} s recorded in {parts:?}: {:?}",
        std::fs::read_to_string(directory.path().join("ffmpeg.log")).unwrap_or_default()
    );
    for part in &parts {
        let errors = common::decode_errors(part);
        assert!(errors.is_empty(), "{}: {errors:?}", part.display());
    }
}

#[tokio::test]
async fn a_live_ts_link_that_never_comes_back_ends_with_what_was_recorded() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let media = tempfile::tempdir().expect("media");
    let bytes = make_media(media.path(), "live.ts", 6, "mpegts", &[]);
    drop(media);
    let cut_after = bytes.len() / 2;
    // Every connection is cut; the origin is then gone altogether.
    let origin = LiveTsOrigin::start(bytes, 6.0, u32::MAX, cut_after).await;
    let url = origin.url();
    let directory = tempfile::tempdir().expect("tempdir");
    let path = directory.path().to_path_buf();
    let recording = tokio::spawn(async move {
        let (_control_sender, control) = watch::channel(DesiredState::Record);
        let options = RecordingOptions {
            quality: Quality::Best,
            stall_timeout: Duration::from_secs(4),
            ..RecordingOptions::default()
        };
        let settings = RecordingSettings::new(path);
        let (events_sender, _events) = mpsc::unbounded_channel();
        record(
            client(NetworkPolicy::ALLOW_PRIVATE),
            &url,
            options,
            settings,
            control,
            events_sender,
        )
        .await
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    drop(origin);
    let report = tokio::time::timeout(Duration::from_secs(40), recording)
        .await
        .expect("ends within the stall limit")
        .expect("no panic");
    match &report.outcome {
        RecordingOutcome::Finished {
            reason: RecordingEndReason::StreamEnded,
        } => {}
        other => panic!("expected the stream to end with what was recorded, got {other:?}"),
    }
    let parts = part_paths(&report);
    assert!(!parts.is_empty());
    assert!(probed_seconds(&parts) > 1.0);
}
