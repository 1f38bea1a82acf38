//! An HLS origin with several tracks (issue 16 item 4): a VOD master with one video variant, two
//! audio renditions (`en`, `de-DE`) and a WebVTT subtitle rendition (`en`), built from the
//! MPEG-TS and audio-only fixtures. The subtitle segments carry `X-TIMESTAMP-MAP` with a LOCAL
//! time far from zero (1000 s), so only a reader that honours the map times the cues right: the
//! first cue is [`FIRST_CUE_SECONDS`] into the recording.

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::fixtures::{MediaSet, SegmentKind, media_fixtures};
use crate::origin::OriginError;

/// Segments of every rendition.
pub const TRACKS_ORIGIN_SEGMENTS: usize = 8;
/// Where the first cue is, in seconds from the start of the video (segment 2, half a second in).
pub const FIRST_CUE_SECONDS: f64 = 2.5;
/// The MPEG-TS time of the fixtures' first video frame (ffmpeg's mpegts muxer starts at 1.4 s).
const FIXTURE_START_TICKS: u64 = 126_000;
/// The LOCAL time the subtitle segments' map pairs with [`FIXTURE_START_TICKS`].
const LOCAL_START_SECONDS: f64 = 1000.0;

/// How the subtitle rendition behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubtitleBehaviour {
    /// A VOD rendition like the others.
    #[default]
    Vod,
    /// The subtitle playlist never ends (no ENDLIST) while video and audio do.
    NeverEnding,
    /// Every subtitle segment is a web page, not WebVTT.
    NotWebVtt,
}

struct TracksOrigin {
    video: Arc<MediaSet>,
    audio: Arc<MediaSet>,
    subtitles: SubtitleBehaviour,
}

/// A running origin; stops when dropped.
pub struct TracksOriginHandle {
    pub base_url: String,
    shutdown: CancellationToken,
}

impl TracksOriginHandle {
    pub fn master_playlist_url(&self) -> String {
        format!("{}/master.m3u8", self.base_url)
    }
}

impl Drop for TracksOriginHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn timestamp(seconds: f64) -> String {
    let milliseconds = (seconds * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        milliseconds / 3_600_000,
        milliseconds / 60_000 % 60,
        milliseconds / 1000 % 60,
        milliseconds % 1000
    )
}

/// The WebVTT body of subtitle segment `index`: a cue half a second into it from segment 2 on.
pub fn subtitle_segment(index: usize) -> String {
    let mut text = format!(
        "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:{FIXTURE_START_TICKS},LOCAL:{}\n\n",
        timestamp(LOCAL_START_SECONDS)
    );
    if index >= 2 {
        let start = LOCAL_START_SECONDS + index as f64 + 0.5;
        text.push_str(&format!(
            "{} --> {}\ncue {index}\n\n",
            timestamp(start),
            timestamp(start + 0.4)
        ));
    }
    text
}

fn media_playlist(durations: &[f64], extension: &str) -> String {
    media_playlist_ending(durations, extension, true)
}

fn media_playlist_ending(durations: &[f64], extension: &str, ends: bool) -> String {
    let mut text = String::from(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n",
    );
    for (index, duration) in durations.iter().enumerate().take(TRACKS_ORIGIN_SEGMENTS) {
        text.push_str(&format!(
            "#EXTINF:{duration:.3},\nseg-{index}.{extension}\n"
        ));
    }
    if ends {
        text.push_str("#EXT-X-ENDLIST\n");
    }
    text
}

const MASTER: &str = "#EXTM3U
#EXT-X-VERSION:4
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"English\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,URI=\"audio/en/media.m3u8\"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"Deutsch\",LANGUAGE=\"de-DE\",AUTOSELECT=YES,URI=\"audio/de/media.m3u8\"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"English\",LANGUAGE=\"en\",AUTOSELECT=YES,URI=\"subs/en/media.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=1200000,AUDIO=\"aud\",SUBTITLES=\"subs\"
v0/media.m3u8
";

fn reply(content_type: &'static str, body: impl Into<axum::body::Body>) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body.into()).into_response()
}

fn segment_index(name: &str, extension: &str) -> Option<usize> {
    let index: usize = name
        .strip_prefix("seg-")?
        .strip_suffix(extension)?
        .parse()
        .ok()?;
    (index < TRACKS_ORIGIN_SEGMENTS).then_some(index)
}

impl TracksOrigin {
    fn answer(&self, path: &str) -> Response {
        let playlist = "application/vnd.apple.mpegurl";
        let segments = |set: &MediaSet, name: &str| match segment_index(name, ".ts")
            .and_then(|index| set.segments.get(index))
        {
            Some(body) => reply("video/mp2t", body.clone()),
            None => StatusCode::NOT_FOUND.into_response(),
        };
        match path
            .trim_start_matches('/')
            .split('/')
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["master.m3u8"] => reply(playlist, MASTER),
            ["v0", "media.m3u8"] => reply(
                playlist,
                media_playlist(&self.video.segment_durations_seconds, "ts"),
            ),
            ["v0", name] => segments(&self.video, name),
            ["audio", "en" | "de", "media.m3u8"] => reply(
                playlist,
                media_playlist(&self.audio.segment_durations_seconds, "ts"),
            ),
            ["audio", "en" | "de", name] => segments(&self.audio, name),
            ["subs", "en", "media.m3u8"] => reply(
                playlist,
                media_playlist_ending(
                    &self.video.segment_durations_seconds,
                    "vtt",
                    self.subtitles != SubtitleBehaviour::NeverEnding,
                ),
            ),
            ["subs", "en", name] => match segment_index(name, ".vtt") {
                Some(_) if self.subtitles == SubtitleBehaviour::NotWebVtt => {
                    reply("text/html", "<!DOCTYPE html><html><body>nope</body></html>")
                }
                Some(index) => reply("text/vtt", subtitle_segment(index)),
                None => StatusCode::NOT_FOUND.into_response(),
            },
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    }
}

/// Loads the fixtures and serves the origin on 127.0.0.1 in a background task.
pub async fn spawn_tracks_origin() -> Result<TracksOriginHandle, OriginError> {
    spawn_tracks_origin_with(SubtitleBehaviour::Vod).await
}

/// [`spawn_tracks_origin`] with the subtitle rendition behaving as `subtitles` says.
pub async fn spawn_tracks_origin_with(
    subtitles: SubtitleBehaviour,
) -> Result<TracksOriginHandle, OriginError> {
    let (video, audio) = tokio::task::spawn_blocking(|| {
        Ok::<_, crate::fixtures::FixtureError>((
            media_fixtures(SegmentKind::MpegTs)?,
            media_fixtures(SegmentKind::AudioOnlyTs)?,
        ))
    })
    .await
    .map_err(|error| OriginError::Join(error.to_string()))??;
    let origin = Arc::new(TracksOrigin {
        video,
        audio,
        subtitles,
    });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let router = Router::new().fallback(move |uri: Uri| {
        let origin = origin.clone();
        async move { origin.answer(uri.path()) }
    });
    crate::serve_until_cancelled(listener, router, &shutdown);
    Ok(TracksOriginHandle { base_url, shutdown })
}
