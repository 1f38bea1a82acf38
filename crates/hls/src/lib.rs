//! HLS for streambot: the playlist parser (pure), variant selection, the live fetcher and the
//! segment ledger. See ARCHITECTURE.md for what this crate must not know.

pub mod decrypt;
pub mod error;
mod group_sync;
pub mod http;
pub mod ledger;
pub mod live;
mod live_core;
pub mod media_check;
pub mod playlist;
pub mod segment_body;
pub mod url_safety;
pub mod variant_selection;

pub use error::HlsError;
pub use http::{FetchLimits, HlsHttpClient};
pub use live::{
    DesiredState, StartFrom, TrackEnd, TrackEvent, TrackOutcome, TrackRecorderConfig, record_track,
};
pub use url_safety::NetworkPolicy;
