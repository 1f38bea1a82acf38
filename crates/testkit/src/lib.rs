//! Test support for streambot: an HLS origin on 127.0.0.1 with injectable faults
//! ([`origin`]) and media fixtures made by ffmpeg ([`fixtures`]).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use streambot_testkit::{Fault, OriginConfig, SegmentKind, spawn_origin};
//!
//! let origin = spawn_origin(
//!     OriginConfig::new(SegmentKind::MpegTs)
//!         .with_window_segments(6)
//!         .with_fault(Fault::Outage { from: Duration::from_secs(2), to: Duration::from_secs(4) }),
//! )
//! .await?;
//! let playlist_url = origin.media_playlist_url();
//! // ... record playlist_url, then compare with origin.sequences_published()
//! # Ok(()) }
//! ```

pub mod fixtures;
pub mod hostile;
pub mod origin;
pub mod redis;
pub mod requirements;
pub mod telegram;
pub mod tracks_origin;

/// Serves `router` on `listener` in a task until `shutdown` is cancelled (the test servers).
pub fn serve_until_cancelled(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: &tokio_util::sync::CancellationToken,
) {
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
}

pub use fixtures::{
    FIXTURE_AES_KEY, FIXTURE_SEGMENT_COUNT, FIXTURE_SEGMENT_DURATION_SECONDS, FixtureError,
    MediaSet, SegmentKind, decrypt_segment, encrypt_segment, fixture_cache_root, fixture_directory,
    media_fixtures,
};
pub use hostile::{
    ATTACKED_SEGMENT_INDEX, Attack, FOREIGN_PLAYLIST_BODY, HostileOrigin, HostileTimeline,
    process_memory_kib, restarted_init, rotating_key, spawn_hostile_origin,
};
pub use origin::{
    EXPLICIT_IV_HIGH_BITS, Fault, HlsOrigin, LateOrigin, OriginConfig, OriginError, OriginHandle,
    OriginObserver, RequestKind, SEGMENT_DURATION, ServedRequest, VariantSpec, spawn_origin,
    spawn_origin_late, spawn_origin_on,
};
pub use redis::{random_key_prefix, redis_url_for_test};
