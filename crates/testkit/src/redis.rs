//! Redis for tests that need one: the URL of a Redis that answers, or `None` so the test skips,
//! and a random key prefix so tests sharing that Redis never see each other's keys.
//!
//! Plain `std` only (a TCP connect and a `PING`), so that test code of crates without this crate
//! as a dependency can include this file with `#[path]`.

use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

// By path, so that this file still works when included with `#[path]` elsewhere (in this crate
// it is also `crate::requirements`; the copy is the same code).
#[allow(clippy::duplicate_mod)]
#[path = "requirements.rs"]
mod requirements;

/// Where a Redis is looked for when `REDIS_URL` is not set.
const LOCAL_REDIS: ([u8; 4], u16) = ([127, 0, 0, 1], 6379);

/// `REDIS_URL`, else redis://127.0.0.1:6379 if it answers `PING` (a short TCP connect, then up to
/// half a second for the reply), else `None` after saying on stderr that the test is skipped (a
/// failure with `STREAMBOT_REQUIRE_ALL=1`).
pub fn redis_url_for_test() -> Option<String> {
    if let Ok(url) = std::env::var("REDIS_URL")
        && !url.trim().is_empty()
    {
        return Some(url);
    }
    if redis_answers_ping(SocketAddr::from(LOCAL_REDIS)) {
        Some("redis://127.0.0.1:6379/".to_string())
    } else {
        requirements::skip_or_fail(
            "a Redis (REDIS_URL is not set and none answers on 127.0.0.1:6379)",
            "scripts/test.sh starts a private redis-server",
        );
        None
    }
}

/// Whether a Redis at `address` answers `PING` with `+PONG` (300 ms to connect, 500 ms to reply).
pub fn redis_answers_ping(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(300)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = stream.set_write_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 16];
    stream.write_all(b"PING\r\n").is_ok()
        && stream
            .read(&mut reply)
            .is_ok_and(|read| reply[..read].starts_with(b"+PONG"))
}

/// `streambot-test-<16 hex digits>:`, different on every call.
pub fn random_key_prefix() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|duration| duration.as_nanos())
            .unwrap_or(0),
    );
    hasher.write_u32(std::process::id());
    format!("streambot-test-{:016x}:", hasher.finish())
}
