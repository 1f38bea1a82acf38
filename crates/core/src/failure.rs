//! Why a recording failed, as a stable code: the bot turns it into a sentence in the user's
//! language with a next step; the error text beside it is for logs and operators.

use serde::{Deserialize, Serialize};

/// The class of a failure, as the person who asked for the recording should understand it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The link is not a valid http(s) URL.
    InvalidLink,
    /// The link points at a private or local address.
    PrivateAddress,
    /// HTTP 404/410: the stream may not have started yet, or has ended.
    NotFound,
    /// HTTP 401/403: the link may need the site's cookies, be geo-blocked, or have expired.
    Forbidden,
    /// Another HTTP error from the origin (5xx, 429 for too long).
    ServerError,
    /// The origin could not be reached (DNS, connection refused, TLS).
    Unreachable,
    /// The link is a web page (HTML), not a playlist or media stream.
    WebPage,
    /// A playlist that cannot be used (no variants, nested masters, broken syntax).
    NotAPlaylist,
    /// The stream is protected by DRM (SAMPLE-AES, Widevine, FairPlay…).
    Protected,
    /// The origin sent bodies that are not media.
    NotMedia,
    /// A resource limit was hit (playlist too large, too many segments, disk quota).
    LimitReached,
    /// The stream stopped sending anything for too long.
    Stalled,
    /// Our side failed (disk, ffmpeg, store).
    #[default]
    Internal,
}

impl FailureKind {
    /// A stable lowercase code (`not_found`, `web_page`…), as stored and logged.
    pub fn code(self) -> &'static str {
        match self {
            FailureKind::InvalidLink => "invalid_link",
            FailureKind::PrivateAddress => "private_address",
            FailureKind::NotFound => "not_found",
            FailureKind::Forbidden => "forbidden",
            FailureKind::ServerError => "server_error",
            FailureKind::Unreachable => "unreachable",
            FailureKind::WebPage => "web_page",
            FailureKind::NotAPlaylist => "not_a_playlist",
            FailureKind::Protected => "protected",
            FailureKind::NotMedia => "not_media",
            FailureKind::LimitReached => "limit_reached",
            FailureKind::Stalled => "stalled",
            FailureKind::Internal => "internal",
        }
    }
}
