//! Backends for tests: a fresh SQLite file, or Redis under a random key prefix.
#![allow(dead_code)]

use std::time::Duration;

use streambot_core::{JobOwner, JobPriority, NewJob};
use streambot_store::{RedisBackend, SqliteBackend};

/// The lease the store tests claim with.
pub const LEASE: Duration = Duration::from_secs(30);
/// Both queues, priority first.
pub const BOTH: [JobPriority; 2] = [JobPriority::Priority, JobPriority::Normal];

/// A job for `user_id` (chat `user_id * 10`) in the queue of `priority`.
pub fn request(user_id: i64, priority: JobPriority) -> NewJob {
    NewJob {
        owner: JobOwner {
            user_id,
            chat_id: user_id * 10,
        },
        url: format!("https://example.com/{user_id}/live.m3u8"),
        options: Default::default(),
        priority,
    }
}

pub mod counting;

pub async fn sqlite_backend_for_test() -> (SqliteBackend, tempfile::TempDir) {
    let directory = tempfile::tempdir().expect("tempdir");
    let backend = SqliteBackend::open_in_data_directory(directory.path())
        .await
        .expect("open sqlite");
    (backend, directory)
}

// The Redis helpers are streambot-testkit's, included by path rather than used from the crate:
// the dashboard's and the worker's tests include this file too; the store and the dashboard do
// not depend on streambot-testkit.
#[path = "../../../testkit/src/redis.rs"]
mod testkit_redis;

pub use testkit_redis::random_key_prefix as random_prefix;
pub use testkit_redis::redis_url_for_test;

pub async fn redis_backend_for_test() -> Option<RedisBackend> {
    let url = redis_url_for_test()?;
    Some(
        RedisBackend::connect(&url, &random_prefix())
            .await
            .expect("connect to redis"),
    )
}
