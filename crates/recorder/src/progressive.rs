//! The ffmpeg engine's network side (issue 11): streambot's own HTTP client fetches a link that
//! is not HLS (a live MPEG-TS or FLV over HTTP, an mp4 file...), so every address connected to and
//! every redirect is checked ([`url_safety::resolver_for`], [`url_safety::redirect_policy`]) and
//! sizes and times are bounded. ffmpeg only ever reads the bytes from its stdin (or, for an mp4
//! whose index is at the end, from a file downloaded here); it never opens a connection itself.
//!
//! What the body is decides where it goes ([`classify_body`]): media in a known container → ffmpeg
//! with that demuxer named; an HLS playlist (by content type or `#EXTM3U`) → the native HLS
//! engine; anything else (a DASH manifest, a web page, unknown bytes) is refused with the reason.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use streambot_ffmpeg::{InputFormat, NotMedia, sniff_media};
use streambot_hls::url_safety::{
    NetworkPolicy, UrlSafetyError, check_url, redact_url, redirect_policy, resolver_for,
};
use streambot_hls::{FetchLimits, HlsError};
use tokio::io::AsyncWriteExt;
use url::Url;

/// Bytes looked at before the container is decided (a few TS packets, an FLV header, the first
/// MP4 boxes).
pub const FIRST_BYTES_FOR_FORMAT: usize = 16 * 1024;
/// Longest wait for the first bytes of a body before the link counts as unreachable.
pub const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest progressive mp4 (index at the end) downloaded to a file before remuxing.
pub const MAXIMUM_PROGRESSIVE_DOWNLOAD_BYTES: u64 = 8 * 1024 * 1024 * 1024;
/// Longest time such a download may take.
pub const PROGRESSIVE_DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(2 * 60 * 60);

/// The HTTP client of the ffmpeg engine: the checking resolver and redirect policy, no proxy,
/// streambot's User-Agent, connect and between-chunks timeouts from `limits`.
pub fn progressive_http_client(
    policy: NetworkPolicy,
    limits: &FetchLimits,
) -> Result<reqwest::Client, HlsError> {
    reqwest::Client::builder()
        .dns_resolver(resolver_for(policy))
        .redirect(redirect_policy(policy, limits.maximum_redirects))
        .connect_timeout(limits.connect_timeout)
        .read_timeout(limits.read_timeout)
        .no_proxy()
        .user_agent(concat!("streambot/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| HlsError::ClientSetup {
            detail: error.to_string(),
        })
}

/// Content types that announce an HLS playlist.
pub fn is_hls_content_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "application/vnd.apple.mpegurl"
            | "application/x-mpegurl"
            | "audio/mpegurl"
            | "audio/x-mpegurl"
            | "application/mpegurl"
    )
}

/// Where a body goes, from its content type and first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// Media ffmpeg reads from its stdin with this demuxer.
    Streamable(InputFormat),
    /// An mp4 whose index (`moov`) comes after the media: downloaded to a file first.
    Mp4IndexAtEnd,
    /// An HLS playlist: the native engine records it.
    HlsPlaylist,
    /// Not something to record.
    Refused(NotMedia),
}

/// Decide what a body is (pure).
pub fn classify_body(content_type: Option<&str>, first_bytes: &[u8]) -> BodyKind {
    if content_type.is_some_and(is_hls_content_type) {
        return BodyKind::HlsPlaylist;
    }
    match sniff_media(first_bytes) {
        Ok(InputFormat::Mp4) if mp4_index_is_at_end(first_bytes) => BodyKind::Mp4IndexAtEnd,
        Ok(format) => BodyKind::Streamable(format),
        Err(NotMedia::HlsPlaylist) => BodyKind::HlsPlaylist,
        Err(other) => BodyKind::Refused(other),
    }
}

/// Whether the top-level boxes at the start of an mp4 reach `mdat` before `moov` (the index is at
/// the end, so a pipe cannot be demuxed). Fragmented mp4 (`moov` then `moof`) is streamable.
pub fn mp4_index_is_at_end(first_bytes: &[u8]) -> bool {
    let mut offset = 0usize;
    // Bounded by the sample: every step moves at least 8 bytes or stops.
    while let Some(header) = offset
        .checked_add(8)
        .and_then(|end| first_bytes.get(offset..end))
    {
        let size = u64::from(u32::from_be_bytes([
            header[0], header[1], header[2], header[3],
        ]));
        let box_type = &header[4..8];
        match box_type {
            b"moov" | b"moof" => return false,
            b"mdat" => return true,
            _ => {}
        }
        let size = match size {
            1 => match offset
                .checked_add(16)
                .and_then(|end| first_bytes.get(offset + 8..end))
            {
                Some(large) => u64::from_be_bytes(large.try_into().unwrap_or([0; 8])),
                None => return false,
            },
            0 => return false,
            size => size,
        };
        if size < 8 {
            return false;
        }
        match usize::try_from(size)
            .ok()
            .and_then(|size| offset.checked_add(size))
        {
            Some(next) => offset = next,
            None => return false,
        }
    }
    false
}

/// An opened body: its kind, the bytes already read, and the rest to come.
#[derive(Debug)]
pub struct OpenedBody {
    pub final_url: Url,
    pub kind: BodyKind,
    pub first_bytes: Vec<u8>,
    pub response: reqwest::Response,
}

fn network_error(url: &Url, error: &reqwest::Error) -> HlsError {
    if let Some(refusal) = url_refusal_in(error) {
        return HlsError::UrlRefused(refusal);
    }
    let mut detail = if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "connection failed".to_string()
    } else if error.is_redirect() {
        "redirect refused".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(error);
    for _ in 0..4 {
        let Some(cause) = source else { break };
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    HlsError::Network {
        url: redact_url(url),
        detail,
    }
}

fn url_refusal_in(error: &reqwest::Error) -> Option<UrlSafetyError> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(refusal) = cause.downcast_ref::<UrlSafetyError>() {
            return Some(refusal.clone());
        }
        source = cause.source();
    }
    None
}

/// GET `url` and read its first bytes (up to [`FIRST_BYTES_FOR_FORMAT`], or the whole body when
/// shorter) to tell what it is.
pub async fn open_body(
    client: &reqwest::Client,
    url: &Url,
    policy: NetworkPolicy,
) -> Result<OpenedBody, HlsError> {
    check_url(url, policy)?;
    let mut response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|error| network_error(url, &error))?;
    let status = response.status();
    if !status.is_success() {
        return Err(HlsError::HttpStatus {
            url: redact_url(url),
            status: status.as_u16(),
        });
    }
    let final_url = response.url().clone();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let mut first_bytes = Vec::with_capacity(FIRST_BYTES_FOR_FORMAT);
    if !content_type.as_deref().is_some_and(is_hls_content_type) {
        let reading = async {
            while first_bytes.len() < FIRST_BYTES_FOR_FORMAT {
                match response.chunk().await {
                    Ok(Some(chunk)) => first_bytes.extend_from_slice(&chunk),
                    Ok(None) => break,
                    Err(error) => return Err(network_error(url, &error)),
                }
            }
            Ok(())
        };
        match tokio::time::timeout(FIRST_BYTES_TIMEOUT, reading).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(HlsError::Network {
                    url: redact_url(url),
                    detail: format!("no media within {FIRST_BYTES_TIMEOUT:?}"),
                });
            }
        }
    }
    let kind = classify_body(content_type.as_deref(), &first_bytes);
    Ok(OpenedBody {
        final_url,
        kind,
        first_bytes,
        response,
    })
}

/// The next chunk of a body; `Ok(None)` at its end.
pub async fn next_chunk(
    response: &mut reqwest::Response,
    url: &Url,
) -> Result<Option<Bytes>, HlsError> {
    response
        .chunk()
        .await
        .map_err(|error| network_error(url, &error))
}

/// MPEG-TS packet size.
pub const TS_PACKET_BYTES: usize = 188;
/// Consecutive sync bytes (`0x47`, one packet apart) that mark a packet boundary in a new
/// connection's bytes.
const TS_SYNC_PACKETS_REQUIRED: usize = 3;
/// Bytes of a new connection searched for a packet boundary before it counts as not MPEG-TS.
pub const TS_RESYNC_SEARCH_BYTES: usize = 64 * 1024;

/// Where the first whole MPEG-TS packet starts in `bytes`: the first `0x47` followed by two more
/// one packet apart. `None` when there is none yet (more bytes may find one). Pure.
pub fn ts_packet_boundary(bytes: &[u8]) -> Option<usize> {
    let span = TS_PACKET_BYTES * (TS_SYNC_PACKETS_REQUIRED - 1);
    let last_start = bytes.len().checked_sub(span + 1)?;
    (0..=last_start).find(|&start| {
        (0..TS_SYNC_PACKETS_REQUIRED)
            .all(|packet| bytes.get(start + packet * TS_PACKET_BYTES) == Some(&0x47))
    })
}

/// The video stream's PID from the program map in `bytes` (the first bytes of a TS link).
pub fn ts_video_pid(bytes: &[u8]) -> Option<u16> {
    streambot_ffmpeg::known_streams::ts_program_streams(bytes)?
        .into_iter()
        .find(|stream| {
            streambot_ffmpeg::known_streams::ts_stream_codec(stream.stream_type)
                .is_some_and(|(_, is_video)| is_video)
        })
        .map(|stream| stream.pid)
}

/// Whether the TS packet `packet` starts a video keyframe on `video_pid`: the payload starts a
/// PES (`payload_unit_start`) and the adaptation field sets `random_access_indicator`. Pure.
pub fn ts_packet_starts_keyframe(packet: &[u8], video_pid: u16) -> bool {
    let (Some(&sync), Some(&flags_and_pid), Some(&pid_low), Some(&control)) =
        (packet.first(), packet.get(1), packet.get(2), packet.get(3))
    else {
        return false;
    };
    let pid = (u16::from(flags_and_pid & 0x1F) << 8) | u16::from(pid_low);
    let payload_unit_start = flags_and_pid & 0x40 != 0;
    let has_adaptation_field = (control >> 4) & 0x2 != 0;
    sync == 0x47
        && pid == video_pid
        && payload_unit_start
        && has_adaptation_field
        && packet.get(4).is_some_and(|&length| length > 0)
        && packet.get(5).is_some_and(|&flags| flags & 0x40 != 0)
}

/// Packets dropped after a reconnect while waiting for a video keyframe before feeding anyway.
pub const KEYFRAME_WAIT_MAXIMUM_BYTES: usize = 8 * 1024 * 1024;

/// The wait before reconnect attempt `attempt` (1-based) to a live link: 0.5 s doubled per
/// attempt, at most 8 s.
pub fn reconnect_backoff(attempt: u32) -> Duration {
    streambot_core::backoff::ExponentialBackoff::new(
        Duration::from_millis(500),
        Duration::from_secs(8),
    )
    .delay_after_failed_attempt(attempt)
}

/// Write the whole body (first bytes included) to `path`, at most `maximum_bytes`, within
/// [`PROGRESSIVE_DOWNLOAD_TIMEOUT`]. A partial file is removed on failure.
pub async fn download_to_file(
    mut body: OpenedBody,
    path: &Path,
    maximum_bytes: u64,
) -> Result<u64, HlsError> {
    let url = body.final_url.clone();
    let io_error = |source: std::io::Error| HlsError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(expected) = body.response.content_length()
        && expected > maximum_bytes
    {
        return Err(HlsError::TooLarge {
            url: redact_url(&url),
            what: "progressive mp4",
            limit_bytes: maximum_bytes,
        });
    }
    let mut file = tokio::fs::File::create(path).await.map_err(io_error)?;
    let copying = async {
        file.write_all(&body.first_bytes).await.map_err(io_error)?;
        let mut written = body.first_bytes.len() as u64;
        while let Some(chunk) = next_chunk(&mut body.response, &url).await? {
            written += chunk.len() as u64;
            if written > maximum_bytes {
                return Err(HlsError::TooLarge {
                    url: redact_url(&url),
                    what: "progressive mp4",
                    limit_bytes: maximum_bytes,
                });
            }
            file.write_all(&chunk).await.map_err(io_error)?;
        }
        file.flush().await.map_err(io_error)?;
        Ok(written)
    };
    let result = match tokio::time::timeout(PROGRESSIVE_DOWNLOAD_TIMEOUT, copying).await {
        Ok(result) => result,
        Err(_) => Err(HlsError::Network {
            url: redact_url(&url),
            detail: format!("download took longer than {PROGRESSIVE_DOWNLOAD_TIMEOUT:?}"),
        }),
    };
    if result.is_err() {
        let _ = tokio::fs::remove_file(path).await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp4_box(box_type: &[u8; 4], payload_bytes: usize) -> Vec<u8> {
        let mut bytes = ((payload_bytes + 8) as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(box_type);
        bytes.extend(std::iter::repeat_n(0u8, payload_bytes));
        bytes
    }

    #[test]
    fn hls_content_types_are_recognised() {
        assert!(is_hls_content_type("application/vnd.apple.mpegurl"));
        assert!(is_hls_content_type("Application/X-MpegURL; charset=utf-8"));
        assert!(is_hls_content_type("audio/mpegurl"));
        assert!(!is_hls_content_type("video/mp2t"));
        assert!(!is_hls_content_type("application/dash+xml"));
    }

    #[test]
    fn bodies_are_routed_by_content_type_then_bytes() {
        let mut ts = vec![0u8; 188 * 4];
        for packet in ts.chunks_mut(188) {
            packet[0] = 0x47;
        }
        let mut faststart = mp4_box(b"ftyp", 16);
        faststart.extend(mp4_box(b"moov", 100));
        faststart.extend(mp4_box(b"mdat", 100));
        let mut index_at_end = mp4_box(b"ftyp", 16);
        index_at_end.extend(mp4_box(b"free", 8));
        index_at_end.extend(mp4_box(b"mdat", 100));
        let cases: [(Option<&str>, &[u8], BodyKind); 8] = [
            (
                Some("application/vnd.apple.mpegurl"),
                &ts,
                BodyKind::HlsPlaylist,
            ),
            (
                Some("video/mp2t"),
                &ts,
                BodyKind::Streamable(InputFormat::MpegTs),
            ),
            (
                Some("video/mp2t"),
                b"#EXTM3U\n#EXTINF:2,\na.ts\n",
                BodyKind::HlsPlaylist,
            ),
            (
                None,
                b"<?xml version=\"1.0\"?><MPD>",
                BodyKind::Refused(NotMedia::XmlDocument),
            ),
            (
                Some("text/html"),
                b"<!DOCTYPE html>",
                BodyKind::Refused(NotMedia::WebPage),
            ),
            (
                None,
                b"FLV\x01\x05\x00\x00\x00\x09",
                BodyKind::Streamable(InputFormat::Flv),
            ),
            (
                Some("video/mp4"),
                &faststart,
                BodyKind::Streamable(InputFormat::Mp4),
            ),
            (Some("video/mp4"), &index_at_end, BodyKind::Mp4IndexAtEnd),
        ];
        for (content_type, first_bytes, expected) in cases {
            assert_eq!(
                classify_body(content_type, first_bytes),
                expected,
                "{content_type:?}"
            );
        }
    }

    #[test]
    fn a_new_connection_resyncs_at_the_next_whole_ts_packet() {
        let mut stream = vec![0u8; 188 * 5];
        for packet in stream.chunks_mut(188) {
            packet[0] = 0x47;
            packet[1..].fill(0x11);
        }
        // A connection that starts 100 bytes into a packet, with a stray 0x47 in the payload.
        let mut joined = stream[100..].to_vec();
        joined[5] = 0x47;
        assert_eq!(ts_packet_boundary(&joined), Some(88));
        assert_eq!(ts_packet_boundary(&stream), Some(0));
        // Too few bytes to be sure: wait for more.
        assert_eq!(ts_packet_boundary(&stream[100..500]), None);
        assert_eq!(ts_packet_boundary(&[]), None);
        assert_eq!(ts_packet_boundary(&[0x47; 10]), None);
        assert_eq!(ts_packet_boundary(&vec![0x22; 4096]), None);
    }

    #[test]
    fn keyframe_starts_are_told_from_the_packet_header() {
        let mut packet = [0xFFu8; 188];
        packet[..6].copy_from_slice(&[0x47, 0x41, 0x00, 0x30, 0x07, 0x50]);
        assert!(ts_packet_starts_keyframe(&packet, 0x100));
        assert!(!ts_packet_starts_keyframe(&packet, 0x101));
        // No random access indicator, no payload start, no adaptation field, too short.
        let mut other = packet;
        other[5] = 0x10;
        assert!(!ts_packet_starts_keyframe(&other, 0x100));
        let mut other = packet;
        other[1] = 0x01;
        assert!(!ts_packet_starts_keyframe(&other, 0x100));
        let mut other = packet;
        other[3] = 0x10;
        assert!(!ts_packet_starts_keyframe(&other, 0x100));
        assert!(!ts_packet_starts_keyframe(&packet[..5], 0x100));
        assert!(!ts_packet_starts_keyframe(&[], 0x100));
    }

    #[test]
    fn reconnect_backoff_doubles_and_is_capped() {
        assert_eq!(reconnect_backoff(1), Duration::from_millis(500));
        assert_eq!(reconnect_backoff(2), Duration::from_secs(1));
        assert_eq!(reconnect_backoff(4), Duration::from_secs(4));
        assert_eq!(reconnect_backoff(5), Duration::from_secs(8));
        assert_eq!(reconnect_backoff(u32::MAX), Duration::from_secs(8));
        assert_eq!(reconnect_backoff(0), Duration::from_millis(500));
    }

    #[test]
    fn the_box_walk_never_panics_on_hostile_sizes() {
        for bytes in [
            b"\x00\x00\x00\x00ftyp".to_vec(),
            b"\x00\x00\x00\x01ftyp\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF".to_vec(),
            b"\x00\x00\x00\x01ftyp".to_vec(),
            b"\x00\x00\x00\x04ftyp".to_vec(),
            b"\xFF\xFF\xFF\xFFftyp".to_vec(),
            Vec::new(),
        ] {
            assert!(!mp4_index_is_at_end(&bytes), "{bytes:?}");
        }
    }
}
