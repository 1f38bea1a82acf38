//! Issue 11: passwords in URLs. A playlist whose segment URIs carry `user:secret@` and a
//! `?token=secret…` query (one of them failing, one redirecting to `file:`) is recorded; the word
//! `secret` reaches no ledger line, no event, no log line and no error text.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, Uri, header};
use axum::response::Response;
use streambot_hls::{
    DesiredState, FetchLimits, HlsHttpClient, NetworkPolicy, TrackEnd, TrackRecorderConfig,
    record_track,
};
use streambot_testkit::{SegmentKind, media_fixtures};
use tokio::sync::{mpsc, watch};
use url::Url;

/// Log lines of the whole test process (the only test of this binary), for the search.
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

#[tokio::test]
async fn passwords_in_urls_reach_no_ledger_event_log_or_error() {
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let authority = format!("http://user:secret@127.0.0.1:{port}");
    let playlist = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXTINF:1.0,\n{authority}/seg-0.ts?token=secret-token&quality=hd\n\
         #EXTINF:1.0,\n{authority}/missing.ts?password=secret-password\n\
         #EXTINF:1.0,\n{authority}/to-file.ts\n\
         #EXTINF:1.0,\n//user:secret@127.0.0.1:{port}/seg-1.ts\n\
         #EXTINF:1.0,\nseg-2.ts?sig=secret-signature\n\
         #EXT-X-ENDLIST\n"
    );
    let segments = media.segments.clone();
    let router = axum::Router::new().fallback(move |uri: Uri| {
        let playlist = playlist.clone();
        let segments = segments.clone();
        async move {
            let path = uri.path();
            let segment = |index: usize| {
                Response::builder()
                    .header(header::CONTENT_TYPE, "video/mp2t")
                    .body(Body::from(segments[index].clone()))
            };
            let response = match path {
                "/live.m3u8" => Response::builder()
                    .header(header::CONTENT_TYPE, "application/vnd.apple.mpegurl")
                    .body(Body::from(playlist)),
                "/seg-0.ts" => segment(0),
                "/seg-1.ts" => segment(1),
                "/seg-2.ts" => segment(2),
                "/to-file.ts" => Response::builder()
                    .status(StatusCode::FOUND)
                    .header(header::LOCATION, "file://user:secret@localhost/etc/passwd")
                    .body(Body::empty()),
                _ => Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .body(Body::empty()),
            };
            response.unwrap_or_default()
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    let directory = tempfile::tempdir().expect("tempdir");
    let mut config = TrackRecorderConfig::new(
        "main",
        Url::parse(&format!("{authority}/live.m3u8?auth=secret-auth")).expect("url"),
        directory.path().to_path_buf(),
    );
    config.stall_timeout = Duration::from_secs(20);
    config.stop_grace = Duration::from_secs(2);
    let client =
        HlsHttpClient::new(NetworkPolicy::ALLOW_PRIVATE, FetchLimits::default()).expect("client");
    let (_control_sender, control) = watch::channel(DesiredState::Record);
    let (events_sender, mut events) = mpsc::unbounded_channel();
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        record_track(client, config, control, events_sender),
    )
    .await
    .expect("the recording ends by itself");

    let mut texts = Vec::new();
    match &outcome.end {
        TrackEnd::Finished(reason) => texts.push(format!("{reason:?}")),
        TrackEnd::Failed(error) => {
            texts.push(error.to_string());
            texts.push(error.user_message());
            texts.push(format!("{error:?}"));
        }
    }
    while let Ok(event) = events.try_recv() {
        texts.push(serde_json::to_string(&event).expect("event as json"));
        texts.push(format!("{event:?}"));
    }
    let ledger = std::fs::read_to_string(&outcome.ledger_path).expect("ledger");
    texts.push(ledger.clone());
    let log_text = String::from_utf8_lossy(&logs.0.lock().expect("logs")).into_owned();
    texts.push(log_text.clone());
    for text in &texts {
        assert!(!text.contains("secret"), "a secret leaked: {text}");
    }
    // The recording did happen, with the two failing segments as gaps with their reasons.
    let lines: Vec<&str> = ledger.lines().collect();
    assert_eq!(lines.len(), 5, "{ledger}");
    assert_eq!(
        lines.iter().filter(|line| line.contains("\"ok\"")).count(),
        3,
        "{ledger}"
    );
    assert!(ledger.contains("HTTP 404"), "{ledger}");
    assert!(
        ledger.contains("redirects to a refused address"),
        "{ledger}"
    );
    assert!(ledger.contains("127.0.0.1"), "hosts stay: {ledger}");
    assert!(ledger.contains("token=REDACTED"), "{ledger}");
    assert!(log_text.contains("segment attempt failed"), "{log_text}");
}
