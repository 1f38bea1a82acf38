//! Real packagers (issue 17 item 5): packagers nobody here wrote serve a live stream on 127.0.0.1
//! (nginx with the RTMP module, GStreamer `hlssink2`, ffmpeg's own HLS muxer in TS, fMP4 and
//! AES-128 modes, each behind a real nginx), the encoder is restarted the ways packagers restart in
//! production (same settings; another encode; a new key) or the origin goes away for a while, and
//! the real `streambot record` binary records through it. Each test asserts what a user cares about:
//! one decodable file per real change of the media (no spurious part), and a ledger that matches
//! what the packager published, read from its own folder by a poller that saw every playlist it
//! wrote: nothing recorded that was not published, nothing published inside the recording's span
//! missing.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streambot_hls::ledger::{LedgerEntry, SegmentState};
use support::{BINARY, files_with_extension, ledger_so_far, send_signal};

// Processes.

/// A packager, encoder or web server in its own process group: the whole group is killed and
/// reaped when it is dropped, however the test ends.
struct GroupChild {
    child: Option<Child>,
    what: String,
}

impl GroupChild {
    fn spawn(what: &str, command: &mut Command) -> GroupChild {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("{what} could not start: {error}"));
        GroupChild {
            child: Some(child),
            what: what.to_string(),
        }
    }

    /// SIGTERM to the group, then SIGKILL if it has not exited within 5 s.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = format!("-{}", child.id());
        send_signal_to(&group, "TERM");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        send_signal_to(&group, "KILL");
        let _ = child.wait();
    }

    /// SIGKILL to the group (an encoder that crashes: ffmpeg's HLS muxer writes no
    /// `#EXT-X-ENDLIST`, as it does when it is stopped cleanly).
    fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal_to(&format!("-{}", child.id()), "KILL");
            let _ = child.wait();
        }
    }

    fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal_to(&format!("-{}", child.id()), "KILL");
            let _ = child.wait();
            eprintln!("stopped {}", self.what);
        }
    }
}

fn send_signal_to(target: &str, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(target)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port on 127.0.0.1")
}

/// Whether every program runs (and, with `rtmp_module`, nginx's RTMP module is installed);
/// under `STREAMBOT_REQUIRE_ALL=1` a missing one fails the test instead.
fn packagers_available(programs: &[&str], rtmp_module: bool) -> bool {
    for program in programs {
        if !streambot_testkit::requirements::require_or_skip(program) {
            return false;
        }
    }
    !rtmp_module
        || streambot_testkit::requirements::require_path_or_skip(
            Path::new(NGINX_RTMP_MODULE),
            "nginx's RTMP module",
            "apt-get install -y libnginx-mod-rtmp",
        )
}

const NGINX_RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

// The origin: nginx serving a folder (and, for nginx-rtmp, packaging into it).

struct Nginx {
    folder: tempfile::TempDir,
    http_port: u16,
    rtmp_port: Option<u16>,
    process: Option<GroupChild>,
}

impl Nginx {
    /// nginx serving `folder/www` over HTTP on 127.0.0.1; with `rtmp`, also an RTMP application
    /// `live` that packages into `www/hls` (2 s fragments, a 20 s playlist).
    fn start(rtmp: bool) -> Nginx {
        let folder = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(folder.path().join("www/hls")).expect("www");
        std::fs::create_dir_all(folder.path().join("logs")).expect("logs");
        let http_port = free_port();
        let rtmp_port = rtmp.then(free_port);
        let mut nginx = Nginx {
            folder,
            http_port,
            rtmp_port,
            process: None,
        };
        nginx.write_config();
        nginx.resume();
        nginx
    }

    fn write_config(&self) {
        let root = self.folder.path();
        let rtmp_block = match self.rtmp_port {
            Some(port) => format!(
                "rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; hls on; \
                 hls_path {hls}; hls_fragment 2s; hls_playlist_length 20s; hls_cleanup off; }} }} }}\n",
                hls = root.join("www/hls").display()
            ),
            None => String::new(),
        };
        let load_module = if self.rtmp_port.is_some() {
            format!("load_module {NGINX_RTMP_MODULE};\n")
        } else {
            String::new()
        };
        let temporary = |name: &str| root.join(name).display().to_string();
        let config = format!(
            "{load_module}daemon off;\nmaster_process off;\nworker_processes 1;\n\
             error_log {error_log} warn;\npid {pid};\nevents {{ worker_connections 512; }}\n\
             {rtmp_block}\
             http {{ access_log off; client_body_temp_path {body}; proxy_temp_path {proxy}; \
             fastcgi_temp_path {fastcgi}; uwsgi_temp_path {uwsgi}; scgi_temp_path {scgi}; \
             types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; video/mp4 mp4 m4s; \
             application/octet-stream key; }} \
             server {{ listen 127.0.0.1:{http_port}; location / {{ root {www}; \
             add_header Cache-Control no-cache; }} }} }}\n",
            error_log = temporary("logs/error.log"),
            pid = temporary("nginx.pid"),
            body = temporary("body"),
            proxy = temporary("proxy"),
            fastcgi = temporary("fastcgi"),
            uwsgi = temporary("uwsgi"),
            scgi = temporary("scgi"),
            http_port = self.http_port,
            www = temporary("www"),
        );
        std::fs::write(root.join("nginx.conf"), config).expect("nginx.conf");
    }

    fn www(&self) -> PathBuf {
        self.folder.path().join("www")
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.http_port)
    }

    fn rtmp_url(&self) -> String {
        format!(
            "rtmp://127.0.0.1:{}/live/stream",
            self.rtmp_port.expect("an RTMP origin")
        )
    }

    /// Stops serving (the packager, if it is not nginx itself, goes on writing the folder).
    fn pause(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
    }

    /// Serves again on the same port (waits until it answers).
    fn resume(&mut self) {
        let root = self.folder.path();
        let mut process = GroupChild::spawn(
            "nginx",
            Command::new("nginx")
                .arg("-c")
                .arg(root.join("nginx.conf"))
                .arg("-p")
                .arg(root),
        );
        let started = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.http_port)).is_ok() {
                break;
            }
            assert!(
                process.is_running() && started.elapsed() < Duration::from_secs(10),
                "nginx did not start: {}",
                std::fs::read_to_string(root.join("logs/error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.process = Some(process);
    }
}

// Encoders and packagers.

/// The test picture and tone, live (`-re`), 25 fps with a keyframe every 2 s.
fn ffmpeg_source(size: &str) -> Vec<String> {
    [
        "-nostdin",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size={size}:rate=25"),
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "50",
        "-keyint_min",
        "50",
        "-sc_threshold",
        "0",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
    ]
    .iter()
    .map(|argument| argument.to_string())
    .collect()
}

/// ffmpeg pushing the test stream to nginx-rtmp.
fn rtmp_encoder(nginx: &Nginx, size: &str) -> GroupChild {
    GroupChild::spawn(
        "ffmpeg → rtmp",
        Command::new("ffmpeg")
            .args(ffmpeg_source(size))
            .args(["-f", "flv"])
            .arg(nginx.rtmp_url()),
    )
}

#[derive(Clone, Copy, PartialEq)]
enum HlsMode {
    Ts,
    Fmp4,
    /// fMP4 with `-hls_flags append_list`: a restarted packager goes on with the playlist it
    /// finds (numbering continues, `#EXT-X-DISCONTINUITY` before its first segment) and rewrites
    /// `init.mp4` behind the same URI without a new `#EXT-X-MAP`.
    Fmp4AppendList,
    Aes128,
    /// AES-128 with `append_list`: the new key is written behind the same key URI, the numbering
    /// goes on after a discontinuity tag.
    Aes128AppendList,
}

/// ffmpeg's own HLS muxer writing `www/live.m3u8` (2 s segments, 10 in the playlist, old
/// segments left on disk), segment files named after `run` so that a restart that starts the
/// numbering over is told apart on disk. AES-128: the key behind `key.key`, rewritten by each run.
fn ffmpeg_hls_packager(nginx: &Nginx, size: &str, mode: HlsMode, run: u32) -> GroupChild {
    let www = nginx.www();
    let mut command = Command::new("ffmpeg");
    command.current_dir(&www).args(ffmpeg_source(size)).args([
        "-f",
        "hls",
        "-hls_time",
        "2",
        "-hls_list_size",
        "10",
    ]);
    match mode {
        HlsMode::Ts => {
            command.args(["-hls_segment_filename", &format!("run{run}-%d.ts")]);
        }
        HlsMode::Fmp4 | HlsMode::Fmp4AppendList => {
            if mode == HlsMode::Fmp4AppendList {
                command.args(["-hls_flags", "append_list"]);
            }
            command.args([
                "-hls_segment_type",
                "fmp4",
                "-hls_fmp4_init_filename",
                "init.mp4",
                "-hls_segment_filename",
                &format!("run{run}-%d.m4s"),
            ]);
        }
        HlsMode::Aes128 | HlsMode::Aes128AppendList => {
            if mode == HlsMode::Aes128AppendList {
                command.args(["-hls_flags", "append_list"]);
            }
            let key: Vec<u8> = (0..16u8)
                .map(|index| index.wrapping_mul(17).wrapping_add(run as u8 * 31))
                .collect();
            std::fs::write(www.join("key.key"), &key).expect("key");
            let info = format!(
                "{}\n{}\n",
                nginx.url("key.key"),
                www.join("key.key").display()
            );
            std::fs::write(www.join("key-info.txt"), info).expect("key info");
            command.args([
                "-hls_key_info_file",
                "key-info.txt",
                "-hls_segment_filename",
                &format!("run{run}-%d.ts"),
            ]);
        }
    }
    command.arg("live.m3u8");
    GroupChild::spawn("ffmpeg hls muxer", &mut command)
}

/// GStreamer `hlssink2` writing `www/live.m3u8` (2 s target, 10 in the playlist).
fn gstreamer_packager(nginx: &Nginx, run: u32) -> GroupChild {
    let www = nginx.www();
    let pipeline = format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=180,framerate=25/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=50 ! h264parse \
         ! hlssink2 name=sink location={segments} playlist-location={playlist} target-duration=2 \
         max-files=1000 playlist-length=10 \
         audiotestsrc is-live=true ! audioconvert ! avenc_aac ! aacparse ! sink.audio",
        segments = www.join(format!("run{run}-%05d.ts")).display(),
        playlist = www.join("live.m3u8").display(),
    );
    let arguments: Vec<&str> = pipeline.split_whitespace().collect();
    GroupChild::spawn(
        "gst-launch-1.0 hlssink2",
        Command::new("gst-launch-1.0").arg("-q").args(arguments),
    )
}

// What the packager published: every segment URI of every playlist it wrote, with the time it
// was first seen.

#[derive(Clone, Default)]
struct Published {
    first_seen: Arc<Mutex<BTreeMap<String, Instant>>>,
}

impl Published {
    /// Polls `playlist` every 100 ms until the returned guard is dropped.
    fn watch(playlist: PathBuf) -> (Published, tokio_util_drop::StopOnDrop) {
        let published = Published::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = published.first_seen.clone();
        let stop_flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stop_flag.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(text) = std::fs::read_to_string(&playlist) {
                    let now = Instant::now();
                    let mut seen = seen.lock().expect("lock");
                    for line in text.lines().map(str::trim) {
                        if line.is_empty() || line.starts_with('#') {
                            continue;
                        }
                        seen.entry(base_name(line)).or_insert(now);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        (
            published,
            tokio_util_drop::StopOnDrop {
                stop,
                thread: Some(thread),
            },
        )
    }

    fn snapshot(&self) -> BTreeMap<String, Instant> {
        self.first_seen.lock().expect("lock").clone()
    }

    /// Waits until at least `count` segments were published.
    fn wait_for(&self, count: usize, limit: Duration) {
        let started = Instant::now();
        while self.first_seen.lock().expect("lock").len() < count {
            assert!(
                started.elapsed() < limit,
                "the packager published fewer than {count} segments in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

mod tokio_util_drop {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    pub struct StopOnDrop {
        pub stop: Arc<AtomicBool>,
        pub thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

fn base_name(uri: &str) -> String {
    let without_query = uri.split(['?', '#']).next().unwrap_or(uri);
    without_query
        .rsplit('/')
        .next()
        .unwrap_or(without_query)
        .to_string()
}

// Recording and checking.

struct Recording {
    directory: tempfile::TempDir,
    stderr: String,
    exit_code: Option<i32>,
    started: Instant,
    ended: Instant,
}

/// Starts `streambot record URL --for FOR` now; the returned task ends with the recording.
fn start_recording(url: String, for_duration: &str) -> tokio::task::JoinHandle<Recording> {
    let directory = tempfile::tempdir().expect("tempdir");
    let for_duration = for_duration.to_string();
    tokio::spawn(async move {
        let started = Instant::now();
        let output = tokio::time::timeout(
            Duration::from_secs(150),
            tokio::process::Command::new(BINARY)
                .args(["record", &url, "--allow-private-networks", "--for"])
                .arg(&for_duration)
                .arg("-o")
                .arg(directory.path())
                .env("LOG_LEVEL", "warn")
                .env_remove("ALLOW_PRIVATE_NETWORKS")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("streambot record ends in time")
        .expect("streambot record runs");
        Recording {
            directory,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            exit_code: output.status.code(),
            started,
            ended: Instant::now(),
        }
    })
}

/// `ffmpeg -v error -i FILE -f null -`: the error lines (empty: it decodes cleanly).
fn decode_errors(path: &Path) -> Vec<String> {
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_string)
        .collect()
}

fn picture_size(path: &Path) -> String {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=width,height", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The finished files, each decoding cleanly; their picture sizes in order.
fn finished_files_decode(recording: &Recording) -> Vec<String> {
    let files = files_with_extension(recording.directory.path(), "mp4");
    assert!(
        !files.is_empty(),
        "no finished file; stderr: {}",
        recording.stderr
    );
    let mut sizes = Vec::new();
    for file in &files {
        let errors = decode_errors(file);
        assert!(
            errors.is_empty(),
            "{} does not decode cleanly ({} error lines): {:?}",
            file.display(),
            errors.len(),
            errors.iter().take(5).collect::<Vec<_>>()
        );
        sizes.push(picture_size(file));
    }
    sizes
}

/// The ledger against what the packager published:
/// - every segment recorded as ok was published (nothing invented),
/// - every segment published after the recording's first one, and early enough to have been
///   fetched before the recording ended, is in the ledger as ok (`allowed_gaps`: none, unless the
///   test says so),
/// - no segment is there twice.
fn ledger_matches_published(recording: &Recording, published: &Published) -> Vec<LedgerEntry> {
    let ledger: Vec<LedgerEntry> = ledger_so_far(recording.directory.path())
        .into_iter()
        .filter(|entry| entry.track == "main")
        .collect();
    assert!(
        !ledger.is_empty(),
        "empty ledger; stderr: {}",
        recording.stderr
    );
    let published = published.snapshot();
    let recorded: Vec<String> = ledger
        .iter()
        .filter(|entry| entry.state == SegmentState::Ok)
        .map(|entry| base_name(&entry.uri))
        .collect();
    let mut once = BTreeSet::new();
    for name in &recorded {
        assert!(once.insert(name.clone()), "{name} recorded twice");
        assert!(
            published.contains_key(name),
            "{name} recorded but never published"
        );
    }
    let gaps: Vec<&LedgerEntry> = ledger
        .iter()
        .filter(|entry| entry.state != SegmentState::Ok)
        .collect();
    assert!(
        gaps.is_empty(),
        "gaps in the ledger: {:?}",
        gaps.iter()
            .map(|entry| (entry.media_sequence, entry.uri.clone()))
            .collect::<Vec<_>>()
    );
    let first_recorded = recorded
        .first()
        .and_then(|name| published.get(name))
        .copied()
        .expect("the first recorded segment was published");
    // A segment first seen within 6 s of the end may still have been on its way when `--for`
    // ended the recording.
    let last_expected = recording.ended - Duration::from_secs(6);
    let missing: Vec<&String> = published
        .iter()
        .filter(|(_, seen)| **seen > first_recorded && **seen < last_expected)
        .map(|(name, _)| name)
        .filter(|name| !once.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "published inside the recording's span but not recorded: {missing:?}; recorded {recorded:?}"
    );
    ledger
}

fn parts_in(ledger: &[LedgerEntry]) -> BTreeSet<u32> {
    ledger.iter().map(|entry| entry.part).collect()
}

fn assert_recorded_to_the_end(recording: &Recording) {
    assert_eq!(
        recording.exit_code,
        Some(0),
        "streambot record failed: {}",
        recording.stderr
    );
    assert!(
        recording.ended - recording.started >= Duration::from_secs(20),
        "the recording ended early, after {:?}: {}",
        recording.ended - recording.started,
        recording.stderr
    );
}

async fn sleep(seconds: u64) {
    tokio::time::sleep(Duration::from_secs(seconds)).await;
}

// The tests.

/// nginx-rtmp puts `#EXT-X-DISCONTINUITY` before the first fragment of every publish and writes
/// no `EXT-X-DISCONTINUITY-SEQUENCE`. The encoder is restarted with the same settings in the middle
/// of the recording (and the recording starts within 30 s of the first publish, so the tag slides
/// out of the window while we record): one file, every fragment published in the span recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_rtmp_encoder_restart_with_the_same_settings_gives_one_file() {
    if !packagers_available(&["nginx", "ffmpeg", "ffprobe"], true) {
        return;
    }
    let nginx = Nginx::start(true);
    let (published, _watching) = Published::watch(nginx.www().join("hls/stream.m3u8"));
    let mut encoder = rtmp_encoder(&nginx, "320x180");
    published.wait_for(3, Duration::from_secs(30));
    let recording = start_recording(nginx.url("hls/stream.m3u8"), "36s");
    sleep(14).await;
    encoder.stop();
    sleep(2).await;
    let _encoder = rtmp_encoder(&nginx, "320x180");
    let recording = recording.await.expect("recording task");
    assert_recorded_to_the_end(&recording);
    let ledger = ledger_matches_published(&recording, &published);
    let sizes = finished_files_decode(&recording);
    assert_eq!(
        sizes.len(),
        1,
        "one file expected for one encoder restart with the same settings: {sizes:?}; parts {:?}",
        parts_in(&ledger)
    );
}

/// The encoder comes back with another encode (320x180 → 480x270): two files, one per picture
/// size, each decoding cleanly; nothing published is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_rtmp_encoder_restart_with_another_encode_gives_one_file_per_encode() {
    if !packagers_available(&["nginx", "ffmpeg", "ffprobe"], true) {
        return;
    }
    let nginx = Nginx::start(true);
    let (published, _watching) = Published::watch(nginx.www().join("hls/stream.m3u8"));
    let mut encoder = rtmp_encoder(&nginx, "320x180");
    published.wait_for(3, Duration::from_secs(30));
    let recording = start_recording(nginx.url("hls/stream.m3u8"), "36s");
    sleep(14).await;
    encoder.stop();
    sleep(2).await;
    let _encoder = rtmp_encoder(&nginx, "480x270");
    let recording = recording.await.expect("recording task");
    assert_recorded_to_the_end(&recording);
    ledger_matches_published(&recording, &published);
    let sizes = finished_files_decode(&recording);
    assert_eq!(sizes, vec!["320,180".to_string(), "480,270".to_string()]);
}

/// GStreamer `hlssink2` restarted: its numbering starts over at 0 (a new epoch to the recorder).
/// One file, nothing published missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_hlssink2_restart_gives_one_file() {
    if !packagers_available(&["nginx", "ffmpeg", "ffprobe", "gst-launch-1.0"], false) {
        return;
    }
    let nginx = Nginx::start(false);
    let (published, _watching) = Published::watch(nginx.www().join("live.m3u8"));
    let mut packager = gstreamer_packager(&nginx, 1);
    published.wait_for(3, Duration::from_secs(30));
    let recording = start_recording(nginx.url("live.m3u8"), "36s");
    sleep(14).await;
    packager.stop();
    sleep(2).await;
    let _packager = gstreamer_packager(&nginx, 2);
    let recording = recording.await.expect("recording task");
    assert_recorded_to_the_end(&recording);
    ledger_matches_published(&recording, &published);
    let sizes = finished_files_decode(&recording);
    assert_eq!(sizes.len(), 1, "one file expected: {sizes:?}");
}

/// ffmpeg's HLS muxer in fMP4 mode crashes and is restarted with another encode: the new `init.mp4` is written
/// behind the same URI. The parts after the restart must use the new init (they decode cleanly),
/// and nothing published is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_fmp4_restart_with_a_new_init_behind_the_same_uri_decodes_cleanly() {
    if !packagers_available(&["nginx", "ffmpeg", "ffprobe"], false) {
        return;
    }
    let sizes = ffmpeg_packager_restart(HlsMode::Fmp4, "480x270").await;
    assert_eq!(sizes, vec!["320,180".to_string(), "480,270".to_string()]);
}

/// Records while ffmpeg's HLS muxer in `mode` (fMP4 or AES-128) crashes 14 s in and comes back
/// 2 s later with a picture of `size_after` (and, in AES-128 modes, a new key); returns the finished files' picture sizes (each checked to decode
/// cleanly) after checking the ledger against what the packager published.
async fn ffmpeg_packager_restart(mode: HlsMode, size_after: &str) -> Vec<String> {
    let nginx = Nginx::start(false);
    let (published, _watching) = Published::watch(nginx.www().join("live.m3u8"));
    let mut packager = ffmpeg_hls_packager(&nginx, "320x180", mode, 1);
    published.wait_for(3, Duration::from_secs(30));
    let recording = start_recording(nginx.url("live.m3u8"), "36s");
    sleep(14).await;
    packager.crash();
    sleep(2).await;
    let _packager = ffmpeg_hls_packager(&nginx, size_after, mode, 2);
    let recording = recording.await.expect("recording task");
    assert_recorded_to_the_end(&recording);
    let ledger = ledger_matches_published(&recording, &published);
    let sizes = finished_files_decode(&recording);
    eprintln!("parts {:?}, files {sizes:?}", parts_in(&ledger));
    sizes
}

/// Issue 17 item 2 for fMP4: the packager crashes and comes back with the same settings (the
/// same `init.mp4`, its numbering from 0: a new epoch, a new part). The parts are joined into one
/// file at finalize, which decodes cleanly, and nothing published is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_fmp4_restart_with_the_same_settings_gives_one_file() {
    if !packagers_available(&["nginx", "ffmpeg", "ffprobe"], false) {
        return;
    }
    let sizes = ffmpeg_packager_restart(HlsMode::Fmp4, "320x180").await;
    assert_eq!(sizes, vec!["320,180".to_string()], "one file expected");
}

/// A packager that goes on with its playlist after a restart (`append_list`): the numbering
/// continues, a discontinuity tag stands before the new encode's first segment, and `init.mp4` is
/// rewritten behind the same URI with no new `#EXT-X-MAP`. The init fetched before the
/// discontinuity must not be used after it: two files, one per picture size, each decoding
/// cleanly (before: the new fragments were written after the old init and did not decode).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_fmp4_append_list_restart_with_another_encode_uses_the_new_init() {
    if !packagers_available(&["nginx", "ffmpeg", "ffprobe"], false) {
        return;
    }
    let sizes = ffmpeg_packager_restart(HlsMode::Fmp4AppendList, "480x270").await;
    assert_eq!(sizes, vec!["320,180".to_string(), "480,270".to_string()]);
}

/// The same packager restarted with the same settings: the discontinuity splits the recording
/// into two parts, joined into one file at finalize.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_fmp4_append_list_restart_with_the_same_settings_gives_one_file() {
    if !packagers_available(&["nginx", "ffmpeg", "ffprobe"], false) {
        return;
    }
    let sizes = ffmpeg_packager_restart(HlsMode::Fmp4AppendList, "320x180").await;
    assert_eq!(sizes, vec!["320,180".to_string()], "one file expected");
}

/// A pre-made fMP4 encode (ffmpeg's HLS muxer, not live): `prefix-init.mp4` and
/// `prefix-N.m4s` (2 s each) in `folder`; the segment names in order.
fn fmp4_encode(folder: &Path, prefix: &str, size: &str, seconds: u32) -> Vec<String> {
    let mut command = Command::new("ffmpeg");
    let mut arguments = ffmpeg_source(size);
    arguments.retain(|argument| argument != "-re");
    let status = command
        .current_dir(folder)
        .args(arguments)
        .args(["-t", &seconds.to_string(), "-f", "hls", "-hls_time", "2"])
        .args(["-hls_playlist_type", "vod", "-hls_segment_type", "fmp4"])
        .args(["-hls_fmp4_init_filename", &format!("{prefix}-init.mp4")])
        .args(["-hls_segment_filename", &format!("{prefix}-%d.m4s")])
        .arg(format!("{prefix}.m3u8"))
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    (0..seconds / 2)
        .map(|index| format!("{prefix}-{index}.m4s"))
        .filter(|name| folder.join(name).exists())
        .collect()
}

fn write_atomically(path: &Path, bytes: &[u8]) {
    let temporary = path.with_extension("writing");
    std::fs::write(&temporary, bytes).expect("write");
    std::fs::rename(&temporary, path).expect("rename");
}

/// An origin that rewrites `init.mp4` with another encode's init in the middle of the stream and
/// says nothing else: the media sequence goes on, no `#EXT-X-DISCONTINUITY`, no new
/// `#EXT-X-MAP`, the new encode's decode times start again from zero. The recorder cannot tell
/// from the playlist, and the init it holds is stale: whatever it writes must not be reported as
/// a good file. Each finished file either decodes cleanly or is reported DAMAGED (with its error
/// count), nothing published is missing from the ledger, and the summary is not silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_swapped_behind_the_same_uri_without_a_tag_is_never_a_silent_good_file() {
    if !packagers_available(&["nginx", "ffmpeg", "ffprobe"], false) {
        return;
    }
    let nginx = Nginx::start(false);
    let www = nginx.www();
    let first = fmp4_encode(&www, "a", "320x180", 24);
    let second = fmp4_encode(&www, "b", "480x270", 24);
    let segments: Vec<String> = first.iter().take(9).chain(second.iter()).cloned().collect();
    let switch_at = 9;
    let (published, _watching) = Published::watch(www.join("live.m3u8"));
    write_atomically(
        &www.join("init.mp4"),
        &std::fs::read(www.join("a-init.mp4")).expect("init"),
    );
    let publisher = {
        let www = www.clone();
        let segments = segments.clone();
        std::thread::spawn(move || {
            for newest in 2..segments.len() {
                if newest == switch_at {
                    let init = std::fs::read(www.join("b-init.mp4")).expect("init");
                    write_atomically(&www.join("init.mp4"), &init);
                }
                let oldest = newest.saturating_sub(5);
                let mut playlist = format!(
                    "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n\
                     #EXT-X-MEDIA-SEQUENCE:{oldest}\n#EXT-X-MAP:URI=\"init.mp4\"\n"
                );
                for name in &segments[oldest..=newest] {
                    playlist.push_str(&format!("#EXTINF:2.000000,\n{name}\n"));
                }
                write_atomically(&www.join("live.m3u8"), playlist.as_bytes());
                std::thread::sleep(Duration::from_secs(2));
            }
        })
    };
    published.wait_for(3, Duration::from_secs(30));
    let recording = start_recording(nginx.url("live.m3u8"), "30s")
        .await
        .expect("recording task");
    let _ = publisher.join();
    assert_recorded_to_the_end(&recording);
    ledger_matches_published(&recording, &published);
    let files = files_with_extension(recording.directory.path(), "mp4");
    assert!(!files.is_empty(), "no finished file: {}", recording.stderr);
    for file in &files {
        let errors = decode_errors(file);
        let name = file
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        let summary_line = recording
            .stderr
            .lines()
            .find(|line| line.starts_with("finished:") && line.contains(name))
            .unwrap_or_default();
        eprintln!(
            "{name}: {} decode error lines; {summary_line}",
            errors.len()
        );
        assert!(
            errors.is_empty() || summary_line.contains("DAMAGED"),
            "{name} does not decode cleanly ({} error lines) and the summary says nothing: {}",
            errors.len(),
            recording.stderr
        );
    }
}

/// ffmpeg's HLS muxer with AES-128 crashes and is restarted with a new key behind the same key URI: the key is
/// fetched again, nothing is lost, and the file decodes cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_aes128_restart_with_a_new_key_loses_nothing() {
    if !packagers_available(&["nginx", "ffmpeg", "ffprobe"], false) {
        return;
    }
    let sizes = ffmpeg_packager_restart(HlsMode::Aes128, "320x180").await;
    assert_eq!(sizes.len(), 1, "one file expected: {sizes:?}");
}

/// The same with a packager that goes on with its playlist (`append_list`): no new epoch, only a
/// discontinuity tag, and the key behind the same URI changed. The stale key fails to decrypt (or
/// gives a body that is not media), the key is fetched again: nothing lost, one clean file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_aes128_append_list_restart_with_a_new_key_loses_nothing() {
    if !packagers_available(&["nginx", "ffmpeg", "ffprobe"], false) {
        return;
    }
    let sizes = ffmpeg_packager_restart(HlsMode::Aes128AppendList, "320x180").await;
    assert_eq!(sizes.len(), 1, "one file expected: {sizes:?}");
}

/// The origin (nginx) goes away for 8 s while ffmpeg's HLS muxer keeps writing (a 20 s window):
/// nothing is lost, one file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_ts_origin_outage_shorter_than_the_window_loses_nothing() {
    if !packagers_available(&["nginx", "ffmpeg", "ffprobe"], false) {
        return;
    }
    let mut nginx = Nginx::start(false);
    let (published, _watching) = Published::watch(nginx.www().join("live.m3u8"));
    let _packager = ffmpeg_hls_packager(&nginx, "320x180", HlsMode::Ts, 1);
    published.wait_for(3, Duration::from_secs(30));
    let recording = start_recording(nginx.url("live.m3u8"), "36s");
    sleep(12).await;
    nginx.pause();
    sleep(8).await;
    nginx.resume();
    let recording = recording.await.expect("recording task");
    assert_recorded_to_the_end(&recording);
    ledger_matches_published(&recording, &published);
    let sizes = finished_files_decode(&recording);
    assert_eq!(sizes.len(), 1, "one file expected: {sizes:?}");
}

#[test]
fn base_names_drop_the_path_and_query() {
    assert_eq!(base_name("hls/stream-3.ts"), "stream-3.ts");
    assert_eq!(base_name("http://h/x/run1-4.m4s?token=1"), "run1-4.m4s");
    assert_eq!(base_name("seg.ts"), "seg.ts");
    let _ = send_signal;
}
