//! The one error enum of the HLS boundary. Each error says whether trying again may help and what
//! to tell a user.

use std::path::PathBuf;

use crate::playlist::PlaylistParseError;
use crate::url_safety::UrlSafetyError;

#[derive(Debug, thiserror::Error)]
pub enum HlsError {
    #[error(transparent)]
    UrlRefused(#[from] UrlSafetyError),
    #[error("{url} answered HTTP {status}")]
    HttpStatus { url: String, status: u16 },
    #[error("could not reach {url}: {detail}")]
    Network { url: String, detail: String },
    #[error("{url} sent {received} of {expected} bytes before the connection ended")]
    ShortBody {
        url: String,
        expected: u64,
        received: u64,
    },
    #[error("{url} is larger than the limit of {limit_bytes} bytes for a {what}")]
    TooLarge {
        url: String,
        what: &'static str,
        limit_bytes: u64,
    },
    #[error("{url} is not a usable HLS playlist: {error}")]
    Playlist {
        url: String,
        error: PlaylistParseError,
    },
    #[error("the master playlist {url} lists no variant streams")]
    NoVariants { url: String },
    #[error("the master playlist {url} has no audio-only variant or audio rendition")]
    NoAudio { url: String },
    #[error("{url} points at another master playlist; refusing to follow nested masters")]
    NestedMaster { url: String },
    #[error("the stream is encrypted with {method}, which streambot cannot record (DRM)")]
    UnsupportedEncryption { method: String },
    #[error("the AES-128 key at {url} is {length} bytes long; it must be 16")]
    InvalidKey { url: String, length: usize },
    #[error("decrypting a segment of {url} failed: {detail}")]
    Decryption { url: String, detail: String },
    /// A segment request went past its whole-request deadline (however slowly it trickled).
    #[error("{url} did not arrive within its deadline of {seconds} s")]
    RequestDeadline { url: String, seconds: u64 },
    /// A body that should be media is something else (a playlist, a page): never written.
    #[error("{url} is not media: {reason}")]
    NotMedia { url: String, reason: String },
    /// A playlist went over one of the resource limits of [`crate::live::TrackLimits`].
    #[error("{url}: {what} ({value}) is over the limit of {limit}")]
    OverLimit {
        url: String,
        what: &'static str,
        value: u64,
        limit: u64,
    },
    #[error("could not write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A 206 answer to a byte-range request that does not hold the range asked for (its
    /// `Content-Range` starts elsewhere, or ends before it).
    #[error("{url} answered the byte range {asked} with bytes {served}")]
    RangeMismatch {
        url: String,
        asked: String,
        served: String,
    },
    /// A backup media playlist (a redundant stream) does not list the segment asked of it.
    #[error("{url} does not list media sequence {media_sequence}")]
    NotListed { url: String, media_sequence: u64 },
    #[error("could not build the HTTP client: {detail}")]
    ClientSetup { detail: String },
    /// A segment body did not fit in what the track's spill files may hold together
    /// ([`crate::live::TrackLimits::maximum_spilled_bytes`]): retried when the segments before it
    /// are committed, a gap at its deadline.
    #[error(
        "{url} is larger than the spill budget left (the track's spill files hold at most {limit_bytes} bytes)"
    )]
    SpillBudget { url: String, limit_bytes: u64 },
}

impl HlsError {
    /// True when the same request may succeed later (network trouble, 5xx, 429, short bodies).
    pub fn is_retryable(&self) -> bool {
        match self {
            HlsError::HttpStatus { status, .. } => {
                *status >= 500 || *status == 429 || *status == 408 || *status == 404
            }
            HlsError::Network { .. }
            | HlsError::ShortBody { .. }
            | HlsError::RangeMismatch { .. }
            | HlsError::RequestDeadline { .. } => true,
            HlsError::Playlist {
                error: crate::playlist::PlaylistParseError::OverLimit { .. },
                ..
            } => false,
            // A live origin can serve a half-written playlist for a moment.
            HlsError::Playlist { .. } => true,
            HlsError::Decryption { .. } => true,
            // A packager may serve a half-written or wrong body once; a gap comes after retries.
            HlsError::NotMedia { .. } => true,
            // The backup's window may list it at the next reload.
            HlsError::NotListed { .. } => true,
            // Room comes back when the segments before it are committed.
            HlsError::SpillBudget { .. } => true,
            HlsError::OverLimit { .. } => false,
            HlsError::UrlRefused(_)
            | HlsError::TooLarge { .. }
            | HlsError::NoVariants { .. }
            | HlsError::NoAudio { .. }
            | HlsError::NestedMaster { .. }
            | HlsError::UnsupportedEncryption { .. }
            | HlsError::InvalidKey { .. }
            | HlsError::Io { .. }
            | HlsError::ClientSetup { .. } => false,
        }
    }

    /// True when an error at the very start means the stream is not there at all.
    pub fn is_dead_stream_at_start(&self) -> bool {
        matches!(self, HlsError::HttpStatus { status, .. } if (400..500).contains(status) && *status != 429 && *status != 408)
    }

    /// The class of this failure, for the bot's sentence with a next step.
    pub fn failure_kind(&self) -> streambot_core::FailureKind {
        use streambot_core::FailureKind;
        match self {
            HlsError::UrlRefused(UrlSafetyError::Malformed { .. })
            | HlsError::UrlRefused(UrlSafetyError::SchemeNotAllowed { .. }) => {
                FailureKind::InvalidLink
            }
            HlsError::UrlRefused(_) => FailureKind::PrivateAddress,
            HlsError::HttpStatus {
                status: 404 | 410, ..
            } => FailureKind::NotFound,
            HlsError::NotListed { .. } => FailureKind::NotFound,
            HlsError::HttpStatus {
                status: 401 | 403, ..
            } => FailureKind::Forbidden,
            HlsError::HttpStatus { .. } => FailureKind::ServerError,
            HlsError::Network { .. }
            | HlsError::ShortBody { .. }
            | HlsError::RequestDeadline { .. } => FailureKind::Unreachable,
            HlsError::RangeMismatch { .. } => FailureKind::ServerError,
            HlsError::TooLarge { .. }
            | HlsError::SpillBudget { .. }
            | HlsError::OverLimit { .. }
            | HlsError::Playlist {
                error: PlaylistParseError::OverLimit { .. },
                ..
            } => FailureKind::LimitReached,
            HlsError::NotMedia { .. } => FailureKind::NotMedia,
            HlsError::Playlist { .. }
            | HlsError::NoVariants { .. }
            | HlsError::NoAudio { .. }
            | HlsError::NestedMaster { .. } => FailureKind::NotAPlaylist,
            HlsError::UnsupportedEncryption { .. } => FailureKind::Protected,
            HlsError::InvalidKey { .. } | HlsError::Decryption { .. } => FailureKind::NotMedia,
            HlsError::Io { .. } | HlsError::ClientSetup { .. } => FailureKind::Internal,
        }
    }

    /// A short, specific sentence for the person who asked for the recording.
    pub fn user_message(&self) -> String {
        match self {
            HlsError::UrlRefused(error) => error.to_string(),
            HlsError::HttpStatus { status: 404, .. } | HlsError::HttpStatus { status: 410, .. } => {
                "The stream was not found (HTTP 404): check the link, or the stream has ended."
                    .to_string()
            }
            HlsError::HttpStatus { status: 401, .. } | HlsError::HttpStatus { status: 403, .. } => {
                "The stream refused access (HTTP 403): the link may have expired or be geo-blocked."
                    .to_string()
            }
            HlsError::HttpStatus { status, .. } => {
                format!("The stream's server answered with an error (HTTP {status}).")
            }
            HlsError::Network { .. } => "The stream's server could not be reached.".to_string(),
            HlsError::NotMedia { .. } => {
                "The stream sent something that is not audio or video where media belongs, so it was not recorded.".to_string()
            }
            HlsError::OverLimit { what, limit, .. } => {
                format!("The stream goes over a safety limit ({what}, at most {limit}), so it cannot be recorded.")
            }
            HlsError::Playlist { error, .. } => {
                format!("That link does not give a usable HLS playlist: {error}.")
            }
            other => {
                let mut text = other.to_string();
                if let Some(first) = text.get(0..1) {
                    let upper = first.to_uppercase();
                    text.replace_range(0..1, &upper);
                }
                text
            }
        }
    }
}
