//! Support for the `attack_*` tests: a hostile HTTP origin on 127.0.0.1 written on raw tokio
//! sockets (so it can send what no well-behaved server would: endless bodies, trickles, huge
//! headers, lying Content-Length), a log of every request it saw (path and User-Agent), and a way
//! to run the real `streambot record`/`probe` with a deadline while sampling its peak RSS.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio_util_shim::CancelOnDrop;

pub const BINARY: &str = env!("CARGO_BIN_EXE_streambot");

/// One answer of the hostile origin.
#[derive(Clone)]
pub enum Reply {
    /// A normal answer with a Content-Length.
    Full {
        status: u16,
        content_type: &'static str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// 200, no Content-Length, `chunk` repeated until the client goes away (or `max_bytes`).
    Endless {
        content_type: &'static str,
        chunk: Vec<u8>,
        max_bytes: u64,
    },
    /// 200 with a Content-Length of `announced`, `body` sent one byte every `step`.
    Trickle {
        content_type: &'static str,
        announced: u64,
        body: Vec<u8>,
        step: Duration,
    },
    /// 200, no Content-Length: `head` then `chunk` every `step`, up to `max_bytes`.
    Paced {
        content_type: &'static str,
        head: Vec<u8>,
        chunk: Vec<u8>,
        step: Duration,
        max_bytes: u64,
    },
    /// Close the connection without answering.
    Close,
}

impl Reply {
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply::Full {
            status: 200,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn playlist(text: impl Into<String>) -> Reply {
        Reply::ok("application/vnd.apple.mpegurl", text.into().into_bytes())
    }

    pub fn ts(body: impl Into<Vec<u8>>) -> Reply {
        Reply::ok("video/mp2t", body)
    }

    pub fn status(status: u16) -> Reply {
        Reply::Full {
            status,
            content_type: "text/plain",
            headers: Vec::new(),
            body: b"no".to_vec(),
        }
    }

    pub fn redirect(location: &str) -> Reply {
        Reply::Full {
            status: 302,
            content_type: "text/plain",
            headers: vec![("Location".to_string(), location.to_string())],
            body: Vec::new(),
        }
    }
}

/// What the origin saw: one line per request.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub user_agent: String,
}

type Routes = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

/// The hostile origin: answers by `routes(path)` (the path with its query), until dropped.
pub struct HostileServer {
    pub address: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    _stop: CancelOnDrop,
}

impl HostileServer {
    pub async fn start(routes: impl Fn(&str) -> Reply + Send + Sync + 'static) -> HostileServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let address = listener.local_addr().expect("local address");
        let hits = Arc::new(Mutex::new(Vec::new()));
        let routes: Routes = Arc::new(routes);
        let stop = CancelOnDrop::new();
        let token = stop.token();
        let server_hits = Arc::clone(&hits);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let routes = Arc::clone(&routes);
                        let hits = Arc::clone(&server_hits);
                        let token = token.clone();
                        tokio::spawn(async move {
                            tokio::select! {
                                _ = token.cancelled() => {}
                                _ = serve_connection(stream, routes, hits) => {}
                            }
                        });
                    }
                }
            }
        });
        HostileServer {
            address,
            hits,
            _stop: stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits
            .lock()
            .map(|hits| hits.clone())
            .unwrap_or_default()
    }

    pub fn hits_of(&self, prefix: &str) -> usize {
        self.hits()
            .iter()
            .filter(|hit| hit.path.starts_with(prefix))
            .count()
    }
}

async fn serve_connection(mut stream: TcpStream, routes: Routes, hits: Arc<Mutex<Vec<Hit>>>) {
    let mut buffer = Vec::new();
    loop {
        // Read one request head (bounded).
        let head_end = loop {
            if let Some(position) = find_head_end(&buffer) {
                break position;
            }
            if buffer.len() > 64 * 1024 {
                return;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(count) => buffer.extend_from_slice(&chunk[..count]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        buffer.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let mut words = request_line.split(' ');
        let method = words.next().unwrap_or_default().to_string();
        let path = words.next().unwrap_or_default().to_string();
        let mut headers = HashMap::new();
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
        if let Ok(mut log) = hits.lock() {
            log.push(Hit {
                path: path.clone(),
                user_agent: headers.get("user-agent").cloned().unwrap_or_default(),
            });
        }
        let reply = routes(&path);
        let keep_going = write_reply(&mut stream, &method, &headers, reply).await;
        if !keep_going {
            return;
        }
    }
}

fn find_head_end(buffer: &[u8]) -> Option<usize> {
    buffer.windows(4).position(|window| window == b"\r\n\r\n")
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Whatever",
    }
}

/// Writes the reply; whether the connection may serve another request.
async fn write_reply(
    stream: &mut TcpStream,
    method: &str,
    request_headers: &HashMap<String, String>,
    reply: Reply,
) -> bool {
    let _ = request_headers;
    match reply {
        Reply::Full {
            status,
            content_type,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
                reason(status),
                body.len()
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            if stream.write_all(head.as_bytes()).await.is_err() {
                return false;
            }
            if method != "HEAD" && stream.write_all(&body).await.is_err() {
                return false;
            }
            stream.flush().await.is_ok()
        }
        Reply::Endless {
            content_type,
            chunk,
            max_bytes,
        } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n"
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                return false;
            }
            let mut sent = 0u64;
            while sent < max_bytes {
                if stream.write_all(&chunk).await.is_err() {
                    return false;
                }
                sent += chunk.len() as u64;
            }
            false
        }
        Reply::Trickle {
            content_type,
            announced,
            body,
            step,
        } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {announced}\r\n\r\n"
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                return false;
            }
            for byte in body {
                if stream.write_all(&[byte]).await.is_err() || stream.flush().await.is_err() {
                    return false;
                }
                tokio::time::sleep(step).await;
            }
            false
        }
        Reply::Paced {
            content_type,
            head,
            chunk,
            step,
            max_bytes,
        } => {
            let response_head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n"
            );
            if stream.write_all(response_head.as_bytes()).await.is_err()
                || stream.write_all(&head).await.is_err()
            {
                return false;
            }
            let mut sent = head.len() as u64;
            while sent < max_bytes {
                if stream.write_all(&chunk).await.is_err() || stream.flush().await.is_err() {
                    return false;
                }
                sent += chunk.len() as u64;
                tokio::time::sleep(step).await;
            }
            false
        }
        Reply::Close => false,
    }
}

/// A tiny cancellation guard (the test crate has tokio-util only through the workspace).
mod tokio_util_shim {
    use std::sync::Arc;
    use tokio::sync::Notify;

    #[derive(Clone)]
    pub struct Token {
        notify: Arc<Notify>,
        flag: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Token {
        pub async fn cancelled(&self) {
            loop {
                let notified = self.notify.notified();
                if self.flag.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                notified.await;
            }
        }
    }

    pub struct CancelOnDrop {
        token: Token,
    }

    impl CancelOnDrop {
        pub fn new() -> CancelOnDrop {
            CancelOnDrop {
                token: Token {
                    notify: Arc::new(Notify::new()),
                    flag: Arc::new(std::sync::atomic::AtomicBool::new(false)),
                },
            }
        }

        pub fn token(&self) -> Token {
            self.token.clone()
        }
    }

    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            self.token
                .flag
                .store(true, std::sync::atomic::Ordering::SeqCst);
            self.token.notify.notify_waiters();
        }
    }
}

/// The clean MPEG-TS fixture segments (90 of 1 s each).
pub async fn ts_segments() -> Vec<Vec<u8>> {
    let set = tokio::task::spawn_blocking(|| {
        streambot_testkit::media_fixtures(streambot_testkit::SegmentKind::MpegTs)
    })
    .await
    .expect("fixture task")
    .expect("MPEG-TS fixtures (ffmpeg installed?)");
    set.segments
        .iter()
        .map(|segment| segment.to_vec())
        .collect()
}

/// A VOD media playlist: `#EXTINF:1.0,` before each URI, ENDLIST at the end; `header` goes after
/// the target duration.
pub fn vod_playlist(header: &str, uris: &[String]) -> String {
    let mut text = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n{header}"
    );
    for uri in uris {
        text.push_str(&format!("#EXTINF:1.0,\n{uri}\n"));
    }
    text.push_str("#EXT-X-ENDLIST\n");
    text
}

/// What one run of the binary left.
#[derive(Debug)]
pub struct Run {
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// Highest VmHWM seen in /proc (KiB).
    pub peak_rss_kib: u64,
    /// Whether we had to kill it at the deadline.
    pub timed_out: bool,
}

impl Run {
    pub fn panicked(&self) -> bool {
        self.stderr.contains("panicked") || self.stdout.contains("panicked")
    }

    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

fn vm_hwm_kib(process_id: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{process_id}/status")).ok()?;
    status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Runs `streambot ARGS` with private networks allowed or not, killing it at `deadline`.
pub async fn run_streambot(args: &[&str], allow_private: bool, deadline: Duration) -> Run {
    let mut command = Command::new(BINARY);
    command
        .env_remove("ALLOW_PRIVATE_NETWORKS")
        .env("LOG_LEVEL", "warn")
        .env("NO_COLOR", "1")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if allow_private {
        command.env("ALLOW_PRIVATE_NETWORKS", "true");
    }
    let started = Instant::now();
    let mut child = command.spawn().expect("streambot starts");
    let process_id = child.id().unwrap_or(0);
    let mut stdout_pipe = child.stdout.take().expect("stdout");
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let stdout_task = tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = stdout_pipe.read_to_end(&mut text).await;
        String::from_utf8_lossy(&text).into_owned()
    });
    let stderr_task = tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut text).await;
        String::from_utf8_lossy(&text).into_owned()
    });
    let mut peak = 0u64;
    let mut timed_out = false;
    let status = loop {
        if let Some(kib) = vm_hwm_kib(process_id) {
            peak = peak.max(kib);
        }
        match tokio::time::timeout(Duration::from_millis(100), child.wait()).await {
            Ok(status) => break status.ok(),
            Err(_) => {
                if started.elapsed() > deadline {
                    timed_out = true;
                    let _ = child.start_kill();
                    break child.wait().await.ok();
                }
            }
        }
    };
    let elapsed = started.elapsed();
    let stdout = stdout_task.await.unwrap_or_default();
    let stderr = stderr_task.await.unwrap_or_default();
    Run {
        exit_code: status.and_then(|status| status.code()),
        stdout,
        stderr,
        elapsed,
        peak_rss_kib: peak,
        timed_out,
    }
}

/// `streambot record URL --for FOR -o DIR --json ARGS`.
pub async fn record(
    url: &str,
    for_duration: &str,
    output: &Path,
    extra: &[&str],
    allow_private: bool,
    deadline: Duration,
) -> Run {
    let output_text = output.to_string_lossy().into_owned();
    let mut args = vec![
        "record",
        url,
        "--for",
        for_duration,
        "-o",
        &output_text,
        "--json",
    ];
    args.extend_from_slice(extra);
    run_streambot(&args, allow_private, deadline).await
}

/// The ledger lines of the main track, as JSON values.
pub fn ledger(directory: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(directory.join("main-ledger.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

pub fn ledger_states(directory: &Path) -> Vec<(u64, String)> {
    ledger(directory)
        .iter()
        .map(|entry| {
            (
                entry["media_sequence"].as_u64().unwrap_or(u64::MAX),
                entry["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Every file under `directory`, recursively.
pub fn files_under(directory: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![directory.to_path_buf()];
    while let Some(next) = stack.pop() {
        let Ok(listing) = std::fs::read_dir(&next) else {
            continue;
        };
        for item in listing.flatten() {
            let path = item.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The bytes of every `main-*.ts` part in `directory`, concatenated in name order.
pub fn part_bytes(directory: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for path in files_under(directory) {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("main-") && (name.ends_with(".ts") || name.ends_with(".m4s")) {
            bytes.extend(std::fs::read(&path).unwrap_or_default());
        }
    }
    bytes
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

pub fn ffmpeg_available() -> bool {
    std::process::Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}
