//! Upload throughput to the fake Drive server on 127.0.0.1: a resumable upload in 8 MiB chunks
//! (the real client, `GoogleDriveStore::upload_part`) against one plain HTTP PUT of the same file
//! to the same server, in the same run: the PUT streamed from the file (`reqwest::Body` from a
//! tokio `File`), and the PUT of the whole file read into memory first. The server counts the
//! bytes and keeps none. Every variant's time runs from the file on disk to the server's answer.
//!
//!     cargo run --release -p streambot-storage --example bench_upload
//!     BENCH_SIZE_MB=200 BENCH_RUNS=3 cargo run --release -p streambot-storage --example bench_upload

#[path = "../tests/support/fake_drive.rs"]
mod fake_drive;

use std::path::Path;
use std::time::{Duration, Instant};

use fake_drive::{
    FAKE_CLIENT_ID, FAKE_CLIENT_SECRET, FAKE_REFRESH_TOKEN, FakeDrive, FakeDriveBehaviour,
};
use streambot_core::JobId;
use streambot_storage::gdrive::DEFAULT_CHUNK_SIZE_BYTES;
use streambot_storage::{
    GoogleDriveConfig, GoogleDriveCredentials, GoogleDriveStore, PartMetadata,
};

fn environment_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(default)
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn megabytes_per_second(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

async fn plain_put(client: &reqwest::Client, url: &str, path: &Path, size: u64) -> Duration {
    let started = Instant::now();
    let file = tokio::fs::File::open(path).await.expect("open");
    let response = client
        .put(url)
        .header(reqwest::header::CONTENT_LENGTH, size)
        .body(reqwest::Body::from(file))
        .send()
        .await
        .expect("plain PUT");
    assert!(response.status().is_success(), "{}", response.status());
    let _ = response.bytes().await;
    started.elapsed()
}

async fn plain_put_from_memory(client: &reqwest::Client, url: &str, path: &Path) -> Duration {
    let started = Instant::now();
    let content = tokio::fs::read(path).await.expect("read");
    let response = client
        .put(url)
        .body(content)
        .send()
        .await
        .expect("plain PUT");
    assert!(response.status().is_success(), "{}", response.status());
    let _ = response.bytes().await;
    started.elapsed()
}

fn summary_row(label: &str, times: &mut [Duration], size_bytes: u64) -> (String, Duration) {
    let minimum = times.iter().min().copied().unwrap_or_default();
    let maximum = times.iter().max().copied().unwrap_or_default();
    let middle = median(times);
    (
        format!(
            "| {label} | {:.2} | {:.2}–{:.2} | {:.0} |",
            middle.as_secs_f64(),
            minimum.as_secs_f64(),
            maximum.as_secs_f64(),
            megabytes_per_second(size_bytes, middle)
        ),
        middle,
    )
}

#[tokio::main]
async fn main() {
    let size_bytes = environment_number("BENCH_SIZE_MB", 200) * 1_000_000;
    let runs = environment_number("BENCH_RUNS", 3).max(1) as usize;
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("part-0001.mp4");
    let content: Vec<u8> = (0..size_bytes)
        .map(|index| (index as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1])
        .collect();
    std::fs::write(&path, &content).expect("write the file");
    drop(content);

    let drive = FakeDrive::start(FakeDriveBehaviour {
        discard_bytes: true,
        ..FakeDriveBehaviour::default()
    })
    .await;
    let mut config = GoogleDriveConfig::new(
        GoogleDriveCredentials::OAuthRefreshToken {
            client_id: FAKE_CLIENT_ID.to_string(),
            client_secret: FAKE_CLIENT_SECRET.to_string(),
            refresh_token: FAKE_REFRESH_TOKEN.to_string(),
        },
        "root",
    );
    config.api_base_url = drive.base_url.clone();
    config.token_url = Some(drive.token_url.clone());
    config.chunk_size_bytes = DEFAULT_CHUNK_SIZE_BYTES;
    let store = GoogleDriveStore::new(config).expect("client");
    let metadata = PartMetadata {
        job_id: JobId::from_u32(0xBE_4C_00),
        user_id: 1,
        part_number: 1,
        part_count: 1,
        duration_seconds: 0.0,
        size_bytes,
        thumbnail: None,
        width: None,
        height: None,
    };
    let plain_client = reqwest::Client::new();
    let plain_url = format!("{}/plain-upload", drive.base_url);

    // Warm-up: token, folder, page cache, connections.
    store
        .upload_part(&path, "part-0001.mp4", &metadata)
        .await
        .expect("warm-up upload");
    plain_put(&plain_client, &plain_url, &path, size_bytes).await;

    let mut times: [Vec<Duration>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for run in 1..=runs {
        // Rotate the order so no variant always runs on a warmer machine.
        for step in 0..3 {
            let variant = (step + run) % 3;
            let elapsed = match variant {
                0 => {
                    let started = Instant::now();
                    store
                        .upload_part(&path, "part-0001.mp4", &metadata)
                        .await
                        .expect("resumable upload");
                    started.elapsed()
                }
                1 => plain_put(&plain_client, &plain_url, &path, size_bytes).await,
                _ => plain_put_from_memory(&plain_client, &plain_url, &path).await,
            };
            times[variant].push(elapsed);
        }
        println!(
            "run {run}: resumable {:.2} s, plain PUT streamed {:.2} s, plain PUT from memory {:.2} s",
            times[0][run - 1].as_secs_f64(),
            times[1][run - 1].as_secs_f64(),
            times[2][run - 1].as_secs_f64()
        );
    }
    let chunk_puts = drive.state().chunk_puts;
    let [resumable_times, streamed_times, memory_times] = &mut times;
    let (resumable_row, resumable_median) =
        summary_row("resumable, 8 MiB chunks", resumable_times, size_bytes);
    let (streamed_row, streamed_median) = summary_row(
        "plain PUT, streamed from the file",
        streamed_times,
        size_bytes,
    );
    let (memory_row, memory_median) =
        summary_row("plain PUT, file read into memory", memory_times, size_bytes);
    println!(
        "file {} MB, {runs} runs each after a warm-up, chunks of 8 MiB ({chunk_puts} chunk PUTs in all)",
        size_bytes / 1_000_000
    );
    println!("| variant | median s | min–max s | MB/s (median) |");
    println!("| --- | ---: | ---: | ---: |");
    println!("{resumable_row}\n{streamed_row}\n{memory_row}");
    println!(
        "resumable time / plain PUT streamed: {:.2}; resumable / plain PUT from memory: {:.2}",
        resumable_median.as_secs_f64() / streamed_median.as_secs_f64(),
        resumable_median.as_secs_f64() / memory_median.as_secs_f64()
    );
}
