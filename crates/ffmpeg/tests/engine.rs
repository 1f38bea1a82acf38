//! The ffmpeg engine with the real ffmpeg, reading from a local HTTP server.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    assert_no_progress_for_a_second, binaries, make_test_media, probe_all, wait_for_out_time,
};
use streambot_ffmpeg::{EngineOptions, EngineRecording, FfmpegError, StoppedBy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the test server answers.
#[derive(Clone)]
enum Answer {
    /// 200 with `body`, written in `chunks` pieces `interval` apart.
    Body {
        body: Vec<u8>,
        chunks: usize,
        interval: Duration,
    },
    NotFound,
}

/// Serve `answer` to every request on 127.0.0.1; returns the URL of `/live.ts`.
async fn serve(answer: Answer) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((connection, _)) = listener.accept().await {
            tokio::spawn(answer_request(connection, answer.clone()));
        }
    });
    format!("http://{address}/live.ts")
}

async fn answer_request(mut connection: TcpStream, answer: Answer) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") && request.len() < 8192 {
        match connection.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => request.extend_from_slice(&buffer[..read]),
        }
    }
    match answer {
        Answer::NotFound => {
            let _ = connection
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
        }
        Answer::Body {
            body,
            chunks,
            interval,
        } => {
            let header = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            if connection.write_all(header.as_bytes()).await.is_err() {
                return;
            }
            for chunk in body.chunks(body.len().div_ceil(chunks.max(1)).max(1)) {
                if connection.write_all(chunk).await.is_err() {
                    return;
                }
                tokio::time::sleep(interval).await;
            }
        }
    }
}

/// Serve `seconds` of test media (in `chunks` pieces `interval` apart) and start the engine on it
/// with 2-second segments.
async fn record_served_media(
    directory: &Path,
    seconds: u32,
    chunks: usize,
    interval: Duration,
) -> EngineRecording {
    let source = make_test_media(directory, "source.ts", seconds, "160x90").await;
    let body = std::fs::read(&source).expect("read source");
    let url = serve(Answer::Body {
        body,
        chunks,
        interval,
    })
    .await;
    let options = EngineOptions {
        segment_seconds: 2,
        rw_timeout: Duration::from_secs(5),
        ..EngineOptions::default()
    };
    EngineRecording::start(&binaries(), &url, &directory.join("recording"), &options)
        .await
        .expect("start")
}

#[tokio::test]
async fn engine_records_a_plain_http_stream_into_playable_segments() {
    let directory = tempfile::tempdir().expect("tempdir");
    let mut recording = record_served_media(directory.path(), 8, 1, Duration::ZERO).await;
    let outcome = recording
        .wait(Duration::from_secs(20))
        .await
        .expect("ends with the stream");
    assert!(outcome.last_progress.ended, "{:?}", outcome.last_progress);
    assert!(
        outcome.segment_files.len() >= 3,
        "{:?}",
        outcome.segment_files
    );
    assert!(outcome.segment_files[0].ends_with("part-0001.ts"));

    let total = probe_all(&outcome.segment_files, true).await;
    common::assert_close(total, Duration::from_secs(8), Duration::from_millis(600));
}

#[tokio::test]
async fn engine_pause_resume_and_graceful_stop() {
    let directory = tempfile::tempdir().expect("tempdir");
    // 20 s of media over about 10 s: a "live" source.
    let mut recording =
        record_served_media(directory.path(), 20, 100, Duration::from_millis(100)).await;
    let mut progress = recording.progress();
    wait_for_out_time(&mut progress, Duration::from_secs(1)).await;

    recording.pause().expect("pause");
    assert!(recording.is_paused());
    let paused_at = assert_no_progress_for_a_second(&mut progress).await;

    recording.resume().expect("resume");
    wait_for_out_time(&mut progress, paused_at + Duration::from_millis(500)).await;

    let outcome = recording.stop(Duration::from_secs(5)).await.expect("stop");
    let stop = outcome.stop.as_ref().expect("stop outcome");
    assert!(stop.clean, "{stop:?}");
    assert_ne!(stop.stopped_by, StoppedBy::Kill);
    assert!(!outcome.segment_files.is_empty());
    probe_all(&outcome.segment_files, false).await;
}

#[tokio::test]
async fn engine_failures_are_classified() {
    let directory = tempfile::tempdir().expect("tempdir");
    let options = EngineOptions {
        rw_timeout: Duration::from_secs(3),
        reconnect_delay_max: Duration::from_secs(1),
        ..EngineOptions::default()
    };

    let not_found = serve(Answer::NotFound).await;
    let mut recording = EngineRecording::start(
        &binaries(),
        &not_found,
        &directory.path().join("a"),
        &options,
    )
    .await
    .expect("start");
    let error = recording
        .wait(Duration::from_secs(15))
        .await
        .expect_err("404");
    assert!(
        matches!(
            error,
            FfmpegError::NetworkFailure {
                permanent: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!error.is_retryable());

    // A port nobody listens on.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let closed = format!("http://{}/live.ts", listener.local_addr().expect("address"));
    drop(listener);
    let mut recording =
        EngineRecording::start(&binaries(), &closed, &directory.path().join("b"), &options)
            .await
            .expect("start");
    let error = recording
        .wait(Duration::from_secs(15))
        .await
        .expect_err("refused");
    assert!(
        matches!(
            error,
            FfmpegError::NetworkFailure {
                permanent: false,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.is_retryable());
}
