//! Issue 16 item 3, "from the start": `StartFrom::WindowStart` records the whole window an EVENT
//! playlist still offers, then goes on live; the ledger marks the segment that was the live edge
//! when the recording began. The origin here serves a growing EVENT playlist (6 segments at the
//! first request, one more per request, ENDLIST after a few).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, Uri, header};
use axum::response::Response;
use streambot_core::RecordingEndReason;
use streambot_hls::ledger::{LedgerRecord, SegmentState, read_ledger_records};
use streambot_hls::{
    DesiredState, FetchLimits, HlsHttpClient, NetworkPolicy, StartFrom, TrackEnd,
    TrackRecorderConfig, record_track,
};
use streambot_testkit::hostile::serve_on_loopback;
use streambot_testkit::{SegmentKind, media_fixtures};
use tokio::sync::{mpsc, watch};
use url::Url;

const FIRST_WINDOW: u64 = 6;
const REQUESTS_BEFORE_END: u64 = 4;

async fn event_origin(segments: Vec<bytes::Bytes>) -> String {
    let requests = Arc::new(AtomicU64::new(0));
    let router = axum::Router::new().fallback(move |uri: Uri| {
        let requests = Arc::clone(&requests);
        let segments = segments.clone();
        async move {
            let path = uri.path();
            let response = if path == "/event.m3u8" {
                let request = requests.fetch_add(1, Ordering::SeqCst);
                let last = FIRST_WINDOW - 1 + request.min(REQUESTS_BEFORE_END);
                let mut text = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:EVENT\n\
                                #EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n"
                    .to_string();
                for sequence in 0..=last {
                    text.push_str(&format!("#EXTINF:1.0,\nseg-{sequence}.ts\n"));
                }
                if request >= REQUESTS_BEFORE_END {
                    text.push_str("#EXT-X-ENDLIST\n");
                }
                Response::builder()
                    .header(header::CONTENT_TYPE, "application/vnd.apple.mpegurl")
                    .body(Body::from(text))
            } else {
                let index = path
                    .strip_prefix("/seg-")
                    .and_then(|rest| rest.strip_suffix(".ts"))
                    .and_then(|number| number.parse::<usize>().ok());
                match index.and_then(|index| segments.get(index % segments.len())) {
                    Some(body) => Response::builder()
                        .header(header::CONTENT_TYPE, "video/mp2t")
                        .body(Body::from(body.clone())),
                    None => Response::builder()
                        .status(StatusCode::NOT_FOUND)
                        .body(Body::empty()),
                }
            };
            response.unwrap_or_default()
        }
    });
    let address = serve_on_loopback(router).await.expect("origin");
    format!("http://{address}/event.m3u8")
}

async fn record(start_from: StartFrom) -> (TrackEnd, Vec<LedgerRecord>, tempfile::TempDir) {
    let media = media_fixtures(SegmentKind::MpegTs).expect("fixtures (ffmpeg)");
    let url = event_origin(media.segments.clone()).await;
    let directory = tempfile::tempdir().expect("tempdir");
    let mut config = TrackRecorderConfig::new(
        "main",
        Url::parse(&url).expect("url"),
        directory.path().to_path_buf(),
    );
    config.start_from = start_from;
    config.stall_timeout = Duration::from_secs(20);
    let client =
        HlsHttpClient::new(NetworkPolicy::ALLOW_PRIVATE, FetchLimits::default()).expect("client");
    let (_control_sender, control) = watch::channel(DesiredState::Record);
    let (events_sender, _events) = mpsc::unbounded_channel();
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        record_track(client, config, control, events_sender),
    )
    .await
    .expect("the recording ends by itself");
    let records = read_ledger_records(&outcome.ledger_path).expect("ledger");
    (outcome.end, records, directory)
}

fn ok_sequences(records: &[LedgerRecord]) -> Vec<u64> {
    records
        .iter()
        .filter(|record| record.entry.state == SegmentState::Ok)
        .map(|record| record.entry.media_sequence)
        .collect()
}

#[tokio::test]
async fn from_the_start_records_the_whole_event_window_then_goes_on_live() {
    let (end, records, _directory) = record(StartFrom::WindowStart).await;
    assert!(
        matches!(end, TrackEnd::Finished(RecordingEndReason::StreamEnded)),
        "{end:?}"
    );
    let last = FIRST_WINDOW - 1 + REQUESTS_BEFORE_END;
    assert_eq!(ok_sequences(&records), (0..=last).collect::<Vec<u64>>());
    let marked: Vec<u64> = records
        .iter()
        .filter(|record| record.live_edge_at_start == Some(true))
        .map(|record| record.entry.media_sequence)
        .collect();
    assert_eq!(
        marked,
        vec![FIRST_WINDOW - 1],
        "the newest of the first poll"
    );
}

#[tokio::test]
async fn from_the_live_edge_starts_three_back_and_marks_nothing() {
    let (end, records, _directory) = record(StartFrom::LiveEdge).await;
    assert!(
        matches!(end, TrackEnd::Finished(RecordingEndReason::StreamEnded)),
        "{end:?}"
    );
    let last = FIRST_WINDOW - 1 + REQUESTS_BEFORE_END;
    assert_eq!(
        ok_sequences(&records),
        (FIRST_WINDOW - 3..=last).collect::<Vec<u64>>()
    );
    assert!(
        records
            .iter()
            .all(|record| record.live_edge_at_start.is_none())
    );
}
