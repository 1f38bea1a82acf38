//! Issue 11, second round: secrets in the URLs a master playlist lists. The first round kept them
//! out of the ledger, `tracks.json` and `recording.json`; resolving a master logged each unusable
//! variant's URI and error text whole (`?token=…`, `user:password@`), the resolved playlist URL
//! was logged whole, and the errors of resolving and of the ffmpeg engine's fetcher carried the
//! URL as given, and the ffmpeg engine logged the link whole. Here a master whose variants carry
//! secrets (a nested master, a page, a 404, then a good one), a link that is not a playlist, and
//! ffmpeg-engine links (a TS stream, a playlist, one answering 500) are recorded; the word
//! `secret` reaches no log line, no error text and no report.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use streambot_core::RecordingOptions;
use streambot_hls::{DesiredState, FetchLimits, HlsHttpClient, NetworkPolicy};
use streambot_recorder::resolve::resolve_source;
use streambot_recorder::{RecordingReport, RecordingSettings, record};
use streambot_testkit::hostile::serve_on_loopback;
use streambot_testkit::{SegmentKind, media_fixtures};
use tokio::sync::{mpsc, watch};

/// Log lines of the whole test process (the only test of this binary).
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A VOD of one segment whose URI carries a token.
const SEGMENT_PLAYLIST: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n\
    #EXTINF:1.0,\nseg-0.ts?token=secret-segment\n#EXT-X-ENDLIST\n";

fn client() -> HlsHttpClient {
    HlsHttpClient::new(NetworkPolicy::ALLOW_PRIVATE, FetchLimits::default()).expect("client")
}

async fn record_into(url: &str, directory: &std::path::Path) -> RecordingReport {
    let settings = RecordingSettings::new(directory.to_path_buf());
    let (_control_sender, control) = watch::channel(DesiredState::Record);
    let (events_sender, _events) = mpsc::unbounded_channel();
    tokio::time::timeout(
        Duration::from_secs(120),
        record(
            client(),
            url,
            RecordingOptions::default(),
            settings,
            control,
            events_sender,
        ),
    )
    .await
    .expect("the recording ends by itself")
}

#[tokio::test]
async fn secrets_in_a_masters_variants_reach_no_log_error_or_report() {
    let logs = CapturedLogs::default();
    let writer_logs = logs.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer_logs.clone())
            .finish(),
    )
    .expect("the only subscriber of this test binary");

    let media = media_fixtures(SegmentKind::MpegTs).expect("fixtures (ffmpeg)");
    let segment = media.segments[0].clone();
    let port_cell: Arc<Mutex<u16>> = Arc::default();
    let port_for_router = Arc::clone(&port_cell);
    let router = Router::new().fallback(move |uri: Uri| {
        let segment = segment.clone();
        let port = port_for_router.lock().map(|port| *port).unwrap_or_default();
        async move {
            let authority = format!("http://user:secret-password@127.0.0.1:{port}");
            let playlist = |text: String| -> Response {
                (
                    [(header::CONTENT_TYPE, "application/vnd.apple.mpegurl")],
                    text,
                )
                    .into_response()
            };
            match uri.path() {
                "/master.m3u8" => playlist(format!(
                    "#EXTM3U\n\
                     #EXT-X-STREAM-INF:BANDWIDTH=4000000,RESOLUTION=1920x1080\n\
                     nested.m3u8?token=secret-nested\n\
                     #EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720\n\
                     {authority}/page.m3u8?sig=secret-signature\n\
                     #EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=960x540\n\
                     gone.m3u8?auth=secret-auth\n\
                     #EXT-X-STREAM-INF:BANDWIDTH=1000000,RESOLUTION=640x360\n\
                     {authority}/good.m3u8?token=secret-good\n"
                )),
                "/nested.m3u8" => {
                    playlist("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nx.m3u8\n".to_string())
                }
                "/page.m3u8" | "/not-a-playlist.m3u8" => {
                    "<html><body>hello</body></html>".into_response()
                }
                "/good.m3u8" => playlist(SEGMENT_PLAYLIST.to_string()),
                "/seg-0.ts" | "/stream.ts" => {
                    ([(header::CONTENT_TYPE, "video/mp2t")], segment).into_response()
                }
                // A link the ffmpeg engine takes (`.ts`) that is an HLS playlist.
                "/playlist-as.ts" => playlist(SEGMENT_PLAYLIST.to_string()),
                _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
    });
    let address = serve_on_loopback(router).await.expect("origin");
    if let Ok(mut port) = port_cell.lock() {
        *port = address.port();
    }
    let base = format!(
        "http://user:secret-link-password@127.0.0.1:{}",
        address.port()
    );

    // A master whose unusable variants carry secrets: recorded from the good one.
    let directory = tempfile::tempdir().expect("tempdir");
    let report = record_into(
        &format!("{base}/master.m3u8?token=secret-link"),
        directory.path(),
    )
    .await;
    assert!(report.succeeded(), "{:?}", report.outcome);
    // Links the ffmpeg engine takes: a TS stream, and one that turns out to be a playlist.
    for link in [
        format!("{base}/stream.ts?token=secret-ts"),
        format!("{base}/playlist-as.ts?token=secret-ts"),
    ] {
        let directory = tempfile::tempdir().expect("tempdir");
        let report = record_into(&link, directory.path()).await;
        assert!(report.succeeded(), "{link}: {:?}", report.outcome);
    }

    // Errors that name a URL: a link that is not a playlist, a master none of whose variants
    // can be used, an ffmpeg-engine link answering 500.
    let options = RecordingOptions::default();
    let mut error_texts = Vec::new();
    for link in [
        format!("{base}/not-a-playlist.m3u8?token=secret-link"),
        format!("{base}/nested.m3u8?token=secret-link"),
    ] {
        let error = resolve_source(&client(), &link, &options)
            .await
            .expect_err("not recordable");
        error_texts.push(format!("{error} / {error:?} / {}", error.user_message()));
    }
    for link in [
        format!("{base}/live.ts?token=secret-ts"),
        format!("{base}/not-a-playlist.m3u8?token=secret-link"),
    ] {
        let directory = tempfile::tempdir().expect("tempdir");
        let report = record_into(&link, directory.path()).await;
        assert!(!report.succeeded(), "{link}");
        error_texts.push(format!("{:?}", report.outcome));
        let json =
            std::fs::read_to_string(directory.path().join("recording.json")).unwrap_or_default();
        error_texts.push(json);
    }
    for text in &error_texts {
        assert!(
            !text.contains("secret"),
            "an error carries a secret: {text}"
        );
    }
    let logged = logs
        .0
        .lock()
        .map(|buffer| String::from_utf8_lossy(&buffer).into_owned())
        .unwrap_or_default();
    assert!(logged.contains("variant unusable"), "{logged}");
    let leaking: Vec<&str> = logged
        .lines()
        .filter(|line| line.contains("secret"))
        .collect();
    assert!(
        leaking.is_empty(),
        "log lines carry a secret:\n{}",
        leaking.join("\n")
    );
}
