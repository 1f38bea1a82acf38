//! Reading the user's link once and deciding what to record: a media playlist as it is, or, for a
//! master playlist, the variant the quality asks for. A variant that cannot be used (a `file:` or
//! other refused URI, an address that may not be reached, one that answers 404, one that is not a
//! media playlist) is skipped for the next candidate of the same quality order (the choice made
//! again without it); only when none is usable does resolving fail, naming the user's link.

use streambot_core::{FailureKind, RecordingOptions};
use streambot_hls::playlist::{MasterPlaylist, Playlist, PlaylistParseError, parse_playlist};
use streambot_hls::url_safety::{parse_and_check_url, redact_url, redact_url_text};
use streambot_hls::variant_selection::{
    VariantChoice, VariantSelectionError, choose_variant, redundant_backup_uris,
};
use streambot_hls::{HlsError, HlsHttpClient};
use url::Url;

use crate::{RecorderError, ResolvedSource};

/// Variants tried at most before resolving gives up (each is one playlist request): a master
/// listing thousands of dead variants costs this many requests, not thousands.
pub const MAXIMUM_VARIANT_ATTEMPTS: usize = 8;

/// A resolved source and what its media playlist listed when it was read.
#[derive(Debug, Clone)]
pub struct LiveSource {
    pub source: ResolvedSource,
    /// Segments the main media playlist listed (0: not started yet, or between broadcasts).
    pub listed_segments: usize,
    /// The main media playlist is finished (`EXT-X-ENDLIST`).
    pub ended: bool,
}

/// The user's link as it may appear in a message: no user name, password, query or fragment
/// (they may carry secrets).
pub fn link_for_messages(link: &str) -> String {
    match Url::parse(link.trim()) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        Err(_) => "that link".to_string(),
    }
}

/// Why a variant could not be used, in words that name no URI.
pub fn variant_failure_reason(error: &HlsError) -> String {
    match error {
        HlsError::UrlRefused(_) => "its address may not be used".to_string(),
        HlsError::HttpStatus { status, .. } => format!("it answered HTTP {status}"),
        HlsError::Network { .. }
        | HlsError::ShortBody { .. }
        | HlsError::RequestDeadline { .. } => "it could not be reached".to_string(),
        HlsError::NestedMaster { .. } => {
            "it is another master playlist (nested masters are not followed)".to_string()
        }
        HlsError::Playlist { .. } | HlsError::NotMedia { .. } => "it is not a playlist".to_string(),
        HlsError::TooLarge { .. } | HlsError::OverLimit { .. } => {
            "it is over a safety limit".to_string()
        }
        _ => "it could not be read".to_string(),
    }
}

/// True when `error` says the link may simply not be live yet (or went away for a while): the
/// origin cannot be reached, answers 404/410, 401/403, 408, 429 or 5xx, or every variant of a
/// master failed that way. A refused address, a page, a broken playlist are not waited for.
pub fn is_not_live_yet(error: &RecorderError) -> bool {
    match error {
        RecorderError::Hls(error) => hls_error_is_not_live_yet(error),
        RecorderError::NoUsableVariant { errors, .. } => {
            !errors.is_empty() && errors.iter().all(hls_error_is_not_live_yet)
        }
        _ => false,
    }
}

/// [`is_not_live_yet`] for one HLS error.
pub fn hls_error_is_not_live_yet(error: &HlsError) -> bool {
    match error {
        HlsError::HttpStatus { status, .. } => {
            matches!(status, 401 | 403 | 404 | 408 | 410 | 429) || *status >= 500
        }
        HlsError::Network { .. }
        | HlsError::ShortBody { .. }
        | HlsError::RequestDeadline { .. } => true,
        _ => false,
    }
}

/// Reads the link once and decides what to record.
pub async fn resolve_source(
    client: &HlsHttpClient,
    url_text: &str,
    options: &RecordingOptions,
) -> Result<ResolvedSource, RecorderError> {
    resolve_live_source(client, url_text, options)
        .await
        .map(|live| live.source)
}

/// [`resolve_source`], also saying what the chosen media playlist listed.
pub async fn resolve_live_source(
    client: &HlsHttpClient,
    url_text: &str,
    options: &RecordingOptions,
) -> Result<LiveSource, RecorderError> {
    let url = parse_and_check_url(url_text, client.policy()).map_err(HlsError::from)?;
    let (final_url, text) = client.fetch_playlist(&url).await?;
    let playlist = parse_playlist(&text).map_err(|error| HlsError::Playlist {
        url: redact_url(&url),
        error,
    })?;
    match playlist {
        Playlist::Media(media) => Ok(LiveSource {
            source: ResolvedSource {
                requested_url: url.to_string(),
                main_media_playlist_url: final_url.to_string(),
                audio_media_playlist_url: None,
                choice: None,
                audio_only: options.quality == streambot_core::Quality::Audio,
                backup_media_playlist_urls: Vec::new(),
            },
            listed_segments: media.segments.len(),
            ended: media.end_list,
        }),
        Playlist::Master(master) => {
            choose_usable_variant(client, url_text, &url, &final_url, master, options).await
        }
    }
}

fn join_uri(base: &Url, uri: &str) -> Result<Url, HlsError> {
    base.join(uri).map_err(|error| HlsError::Playlist {
        url: redact_url(base),
        error: PlaylistParseError::InvalidTag {
            line: 0,
            tag: "variant URI".to_string(),
            reason: format!("{:?}: {error}", redact_url_text(uri)),
        },
    })
}

/// The master without the candidate whose media playlist is `uri` (as a variant or an audio
/// rendition). False when nothing was removed.
fn without_candidate(master: &mut MasterPlaylist, uri: &str) -> bool {
    let before = master.variants.len() + master.renditions.len();
    master.variants.retain(|variant| variant.uri != uri);
    master
        .renditions
        .retain(|rendition| rendition.uri.as_deref() != Some(uri));
    master.variants.len() + master.renditions.len() < before
}

/// The main media playlist of `choice` fetched and parsed: usable when it is a media playlist.
async fn try_candidate(
    client: &HlsHttpClient,
    final_url: &Url,
    choice: &VariantChoice,
) -> Result<(Url, streambot_hls::playlist::MediaPlaylist), HlsError> {
    let joined = join_uri(final_url, &choice.main_uri)?;
    let checked = parse_and_check_url(joined.as_str(), client.policy())?;
    let (variant_final_url, text) = client.fetch_playlist(&checked).await?;
    match parse_playlist(&text) {
        Ok(Playlist::Media(media)) => Ok((variant_final_url, media)),
        Ok(Playlist::Master(_)) => Err(HlsError::NestedMaster {
            url: redact_url(&checked),
        }),
        Err(error) => Err(HlsError::Playlist {
            url: redact_url(&checked),
            error,
        }),
    }
}

/// The backups of the chosen variant ([`redundant_backup_uris`]) as absolute URLs, each one an
/// address that may be used (the others are left out). Variants already found unusable are no
/// longer in `master`.
fn backup_urls(
    client: &HlsHttpClient,
    final_url: &Url,
    master: &MasterPlaylist,
    choice: &VariantChoice,
) -> Vec<String> {
    let Some(variant) = &choice.variant else {
        return Vec::new();
    };
    redundant_backup_uris(master, variant)
        .iter()
        .filter_map(|uri| join_uri(final_url, uri).ok())
        .filter_map(|url| parse_and_check_url(url.as_str(), client.policy()).ok())
        .map(|url| url.to_string())
        .collect()
}

async fn choose_usable_variant(
    client: &HlsHttpClient,
    link: &str,
    url: &Url,
    final_url: &Url,
    master: MasterPlaylist,
    options: &RecordingOptions,
) -> Result<LiveSource, RecorderError> {
    let mut remaining = master;
    let mut errors: Vec<HlsError> = Vec::new();
    while errors.len() < MAXIMUM_VARIANT_ATTEMPTS {
        let choice = match choose_variant(&remaining, options.quality) {
            Ok(choice) => choice,
            Err(VariantSelectionError::NoVariants) if errors.is_empty() => {
                return Err(RecorderError::NoVariants {
                    url: redact_url(url),
                });
            }
            Err(VariantSelectionError::NoVariants) => break,
        };
        match try_candidate(client, final_url, &choice).await {
            Ok((main_url, media)) => {
                if !errors.is_empty() {
                    tracing::warn!(
                        skipped = errors.len(),
                        chosen = %redact_url_text(&choice.main_uri),
                        "unusable variants skipped for the next candidate"
                    );
                }
                let audio = match choice
                    .audio_rendition
                    .as_ref()
                    .and_then(|rendition| rendition.uri.as_deref())
                {
                    Some(uri) => Some(join_uri(final_url, uri)?.to_string()),
                    None => None,
                };
                let backups = backup_urls(client, final_url, &remaining, &choice);
                return Ok(LiveSource {
                    source: ResolvedSource {
                        requested_url: url.to_string(),
                        main_media_playlist_url: main_url.to_string(),
                        audio_media_playlist_url: audio,
                        audio_only: choice.audio_only,
                        backup_media_playlist_urls: backups,
                        choice: Some(choice),
                    },
                    listed_segments: media.segments.len(),
                    ended: media.end_list,
                });
            }
            Err(error) => {
                tracing::warn!(uri = %redact_url_text(&choice.main_uri), %error, "variant unusable; trying the next candidate");
                errors.push(error);
                if !without_candidate(&mut remaining, &choice.main_uri) {
                    break;
                }
            }
        }
    }
    Err(RecorderError::NoUsableVariant {
        link: link_for_messages(link),
        errors,
    })
}

/// The failure class of a master none of whose variants could be used: a "not live yet" class
/// when any variant failed so (the stream may come), else the first variant's.
pub(crate) fn no_usable_variant_failure(errors: &[HlsError]) -> FailureKind {
    errors
        .iter()
        .find(|error| hls_error_is_not_live_yet(error))
        .or_else(|| errors.first())
        .map_or(FailureKind::NotAPlaylist, HlsError::failure_kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_in_messages_carry_no_secrets() {
        assert_eq!(
            link_for_messages("https://user:secret@example.com/live/master.m3u8?token=abc#x"),
            "https://example.com/live/master.m3u8"
        );
        assert_eq!(link_for_messages("not a link"), "that link");
    }

    #[test]
    fn only_absence_is_waited_for() {
        let status = |status| {
            RecorderError::Hls(HlsError::HttpStatus {
                url: "u".to_string(),
                status,
            })
        };
        for waited in [404, 403, 500, 503, 429] {
            assert!(is_not_live_yet(&status(waited)), "{waited}");
        }
        assert!(!is_not_live_yet(&status(400)));
        assert!(is_not_live_yet(&RecorderError::Hls(HlsError::Network {
            url: "u".to_string(),
            detail: "connection refused".to_string(),
        })));
        let refused = HlsError::UrlRefused(
            streambot_hls::url_safety::UrlSafetyError::SchemeNotAllowed {
                url: "file:///etc/passwd".to_string(),
                scheme: "file".to_string(),
            },
        );
        assert!(!is_not_live_yet(&RecorderError::NoUsableVariant {
            link: "l".to_string(),
            errors: vec![refused],
        }));
        assert!(is_not_live_yet(&RecorderError::NoUsableVariant {
            link: "l".to_string(),
            errors: vec![HlsError::HttpStatus {
                url: "u".to_string(),
                status: 404
            }],
        }));
    }
}
