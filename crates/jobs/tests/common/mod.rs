//! Backends for tests: a fresh SQLite file, or Redis under a random key prefix.
#![allow(dead_code)]

use std::time::Duration;

use streambot_jobs::{RedisBackend, SqliteBackend};

pub async fn sqlite_backend_for_test() -> (SqliteBackend, tempfile::TempDir) {
    let directory = tempfile::tempdir().expect("tempdir");
    let backend = SqliteBackend::open_in_data_directory(directory.path())
        .await
        .expect("open sqlite");
    (backend, directory)
}

/// `REDIS_URL`, else redis://127.0.0.1:6379 if it answers, else `None` (the test is skipped).
pub fn redis_url_for_test() -> Option<String> {
    if let Ok(url) = std::env::var("REDIS_URL")
        && !url.trim().is_empty()
    {
        return Some(url);
    }
    let answers = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:6379".parse().expect("address"),
        Duration::from_millis(300),
    )
    .is_ok();
    if answers {
        Some("redis://127.0.0.1:6379/".to_string())
    } else {
        eprintln!("skipped: REDIS_URL is not set and nothing answers on 127.0.0.1:6379");
        None
    }
}

pub fn random_prefix() -> String {
    format!("streambot-test-{:016x}:", rand::random::<u64>())
}

pub async fn redis_backend_for_test() -> Option<RedisBackend> {
    let url = redis_url_for_test()?;
    Some(
        RedisBackend::connect(&url, &random_prefix())
            .await
            .expect("connect to redis"),
    )
}
