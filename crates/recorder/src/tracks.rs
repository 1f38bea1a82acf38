//! Audio and subtitle tracks beside the main one (issue 16 item 4): which renditions
//! (`--audio-lang`, `--all-audio`, `--subs`; chosen by [`choose_tracks`]), recorded as tracks of
//! their own (`audio2`, `subtitles1`, ...: names from counters, never from the playlist), listed
//! with their languages in `tracks.json` for finalize, which muxes them (see `finalize`).

use std::path::Path;

use serde::{Deserialize, Serialize};
use streambot_core::RecordingOptions;
use streambot_hls::playlist::{Playlist, Rendition, parse_playlist};
use streambot_hls::url_safety::parse_and_check_url;
use streambot_hls::variant_selection::{TrackRequest, choose_tracks, choose_variant};
use streambot_hls::{HlsError, HlsHttpClient};

/// The file in a job directory that lists the extra tracks.
pub use streambot_core::job_files::TRACKS_FILE_NAME;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtraTrackKind {
    Audio,
    Subtitles,
}

/// One track recorded beside the main track and the first audio rendition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtraTrack {
    /// The track's name: its ledger and part files' prefix (`audio2`, `subtitles1`).
    pub track_name: String,
    pub kind: ExtraTrackKind,
    pub language: Option<String>,
    pub title: Option<String>,
    pub media_playlist_url: String,
}

/// What the track options change about a recording.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrackPlan {
    /// The first audio rendition, when the options chose another than the default.
    pub first_audio_url: Option<String>,
    pub first_audio_language: Option<String>,
    pub first_audio_title: Option<String>,
    pub extra_tracks: Vec<ExtraTrack>,
    pub notes: Vec<String>,
}

/// True when the options ask for anything beyond the default tracks.
pub fn wants_tracks(options: &RecordingOptions) -> bool {
    options.subtitles != streambot_core::SubtitleChoice::None
        || options.audio_language.is_some()
        || options.all_audio
}

/// A playlist's label as it may be kept and shown: no control characters (a terminal escape, a
/// line break in a chat message), at most 64 characters; `None` when nothing printable is left.
fn printable_label(text: &str) -> Option<String> {
    let label: String = text
        .chars()
        .filter(|character| !character.is_control())
        .take(64)
        .collect();
    Some(label).filter(|label| !label.trim().is_empty())
}

fn label_of(rendition: &Rendition) -> (Option<String>, Option<String>) {
    (
        rendition.language.as_deref().and_then(printable_label),
        printable_label(&rendition.name),
    )
}

/// Reads the master playlist again and plans the tracks the options ask for; `None` when the
/// options ask for nothing more or the link is a media playlist.
pub async fn plan_tracks(
    client: &HlsHttpClient,
    url_text: &str,
    options: &RecordingOptions,
) -> Result<Option<TrackPlan>, HlsError> {
    if !wants_tracks(options) {
        return Ok(None);
    }
    let url = parse_and_check_url(url_text, client.policy())?;
    let (final_url, text) = client.fetch_playlist(&url).await?;
    let Ok(Playlist::Master(master)) = parse_playlist(&text) else {
        return Ok(None);
    };
    let Ok(choice) = choose_variant(&master, options.quality) else {
        return Ok(None);
    };
    let selection = choose_tracks(&master, &choice, &TrackRequest::from_options(options));
    let mut plan = TrackPlan {
        notes: selection.notes,
        ..TrackPlan::default()
    };
    let absolute = |rendition: &Rendition| -> Option<String> {
        let uri = rendition.uri.as_deref()?;
        let joined = final_url.join(uri).ok()?;
        parse_and_check_url(joined.as_str(), client.policy())
            .ok()
            .map(|url| url.to_string())
    };
    // Audio renditions, then subtitle renditions; the first audio one replaces the variant's.
    let renditions = (selection.audio.iter().enumerate())
        .map(|(index, rendition)| (ExtraTrackKind::Audio, index, rendition))
        .chain(
            (selection.subtitles.iter().enumerate())
                .map(|(index, rendition)| (ExtraTrackKind::Subtitles, index, rendition)),
        );
    for (kind, index, rendition) in renditions {
        let Some(url) = absolute(rendition) else {
            continue;
        };
        let (language, title) = label_of(rendition);
        if kind == ExtraTrackKind::Audio && index == 0 {
            plan.first_audio_url = Some(url);
            plan.first_audio_language = language;
            plan.first_audio_title = title;
            continue;
        }
        let name_prefix = match kind {
            ExtraTrackKind::Audio => "audio",
            ExtraTrackKind::Subtitles => "subtitles",
        };
        plan.extra_tracks.push(ExtraTrack {
            track_name: format!("{name_prefix}{}", index + 1),
            kind,
            language,
            title,
            media_playlist_url: url,
        });
    }
    Ok(Some(plan))
}

/// Writes `tracks.json` (atomically; best effort like `recording.json`), its URLs without
/// passwords or secret-looking query values (the file is only read for the tracks' names and
/// labels; the recorders use the plan in memory).
pub fn write_track_plan(directory: &Path, plan: &TrackPlan) {
    if std::fs::create_dir_all(directory).is_err() {
        return;
    }
    let redact = streambot_hls::url_safety::redact_url_text;
    let mut written = plan.clone();
    written.first_audio_url = written.first_audio_url.as_deref().map(redact);
    for track in &mut written.extra_tracks {
        track.media_playlist_url = redact(&track.media_playlist_url);
    }
    let path = directory.join(TRACKS_FILE_NAME);
    if let Err(error) = streambot_core::local_files::write_json_atomically(&path, &written) {
        tracing::warn!(%error, "could not write the track plan");
    }
}

/// Reads `tracks.json`; no file (or one that does not parse) is no extra tracks.
pub fn read_track_plan(directory: &Path) -> TrackPlan {
    std::fs::read(directory.join(TRACKS_FILE_NAME))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Points the source's audio at the rendition the options chose.
pub fn apply_to_source(source: &mut crate::ResolvedSource, plan: &TrackPlan) {
    if let Some(url) = &plan.first_audio_url {
        source.audio_media_playlist_url = Some(url.clone());
    }
}

/// Records the extra tracks side by side until each ends (the same control as the main track).
pub async fn record_extra_tracks(
    client: HlsHttpClient,
    configs: Vec<streambot_hls::TrackRecorderConfig>,
    control: tokio::sync::watch::Receiver<streambot_hls::DesiredState>,
    events: tokio::sync::mpsc::UnboundedSender<streambot_hls::TrackEvent>,
) -> Vec<streambot_hls::TrackOutcome> {
    let handles: Vec<_> = configs
        .into_iter()
        .map(|config| {
            tokio::spawn(streambot_hls::record_track(
                client.clone(),
                config,
                control.clone(),
                events.clone(),
            ))
        })
        .collect();
    let mut outcomes = Vec::with_capacity(handles.len());
    for handle in handles {
        match handle.await {
            Ok(outcome) => outcomes.push(outcome),
            Err(error) => tracing::warn!(%error, "an extra track's task ended abnormally"),
        }
    }
    outcomes
}

/// The recorder configs of the plan's extra tracks, made by `track_config` (the main track's
/// settings); a subtitle track accepts WebVTT bodies.
pub fn extra_track_configs<E>(
    plan: Option<&TrackPlan>,
    track_config: impl Fn(&str, &str) -> Result<streambot_hls::TrackRecorderConfig, E>,
) -> Vec<streambot_hls::TrackRecorderConfig> {
    plan.map_or(&[][..], |plan| plan.extra_tracks.as_slice())
        .iter()
        .filter_map(|track| {
            let mut config = track_config(&track.track_name, &track.media_playlist_url).ok()?;
            config.subtitle_track = track.kind == ExtraTrackKind::Subtitles;
            Some(config)
        })
        .collect()
}

/// Subtitle bytes read per track at most (WebVTT is a few kilobytes a segment).
const MAXIMUM_SUBTITLE_TRACK_BYTES: u64 = 64 * 1024 * 1024;
/// Subtitle bytes read for all the tracks of a part together: what finalize holds in memory at
/// once (8 hostile tracks of 64 MiB each would otherwise be half a GiB).
const MAXIMUM_SUBTITLE_BYTES: u64 = 128 * 1024 * 1024;

/// The extra tracks of a job directory as finalize muxes them into one main part.
#[derive(Debug, Clone, Default)]
pub struct PartExtras {
    pub first_audio: streambot_ffmpeg::TrackLabel,
    pub audio: Vec<(
        streambot_hls::ledger::PartSummary,
        streambot_ffmpeg::TrackLabel,
    )>,
    /// Per subtitle track: every recorded segment body, in order.
    pub subtitles: Vec<(Vec<Vec<u8>>, streambot_ffmpeg::TrackLabel)>,
}

impl PartExtras {
    pub fn is_empty(&self) -> bool {
        self.audio.is_empty() && self.subtitles.is_empty()
    }
}

/// The recorded segment bodies of a (subtitle) track, in ledger order, from its parts.
fn segment_bodies(directory: &Path, track_name: &str, budget: &mut u64) -> Vec<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let ledger = directory.join(streambot_core::job_files::ledger_file_name(track_name));
    let Ok(records) = streambot_hls::ledger::read_ledger_records(&ledger) else {
        return Vec::new();
    };
    let parts = streambot_hls::ledger::parts_recorded_in(directory, track_name).unwrap_or_default();
    let mut bodies = Vec::new();
    let mut total = 0u64;
    for record in records
        .iter()
        .filter(|record| record.entry.state == streambot_hls::ledger::SegmentState::Ok)
    {
        let entry = &record.entry;
        total = total.saturating_add(entry.bytes);
        if total > MAXIMUM_SUBTITLE_TRACK_BYTES || entry.bytes > *budget {
            break;
        }
        let Some(part) = parts.iter().find(|part| part.number == entry.part) else {
            continue;
        };
        let Ok(mut file) = std::fs::File::open(&part.path) else {
            continue;
        };
        let mut body = Vec::new();
        if file.seek(SeekFrom::Start(entry.offset_in_part)).is_ok()
            && (&mut file).take(entry.bytes).read_to_end(&mut body).is_ok()
            && body.len() as u64 == entry.bytes
        {
            *budget -= entry.bytes;
            bodies.push(body);
        }
    }
    bodies
}

/// Reads the job directory's extra tracks for finalize (blocking IO: call off the async threads).
pub fn part_extras(directory: &Path, main_part_index: usize, main_part_count: usize) -> PartExtras {
    let plan = read_track_plan(directory);
    let label = |language: &Option<String>, title: &Option<String>| streambot_ffmpeg::TrackLabel {
        language: language.clone(),
        title: title.clone(),
    };
    let mut extras = PartExtras {
        first_audio: label(&plan.first_audio_language, &plan.first_audio_title),
        ..PartExtras::default()
    };
    let mut subtitle_budget = MAXIMUM_SUBTITLE_BYTES;
    for track in &plan.extra_tracks {
        match track.kind {
            ExtraTrackKind::Audio => {
                let parts = streambot_hls::ledger::parts_recorded_in(directory, &track.track_name)
                    .unwrap_or_default();
                if let Some(part) =
                    crate::finalize::audio_part_for(main_part_index, main_part_count, &parts)
                {
                    extras
                        .audio
                        .push((part.clone(), label(&track.language, &track.title)));
                }
            }
            ExtraTrackKind::Subtitles => {
                let bodies = segment_bodies(directory, &track.track_name, &mut subtitle_budget);
                if !bodies.is_empty() {
                    extras
                        .subtitles
                        .push((bodies, label(&track.language, &track.title)));
                }
            }
        }
    }
    extras
}

/// The part files of the extra tracks (removed after a successful finalize).
pub fn extra_track_part_files(directory: &Path) -> Vec<std::path::PathBuf> {
    read_track_plan(directory)
        .extra_tracks
        .iter()
        .flat_map(|track| {
            streambot_hls::ledger::parts_recorded_in(directory, &track.track_name)
                .unwrap_or_default()
        })
        .map(|part| part.path)
        .collect()
}

/// Stops the extra tracks when the main track has ended (a subtitle playlist that never ends
/// must not hold the recording open until its stall timeout).
pub struct ExtraTracksStop {
    sender: tokio::sync::watch::Sender<streambot_hls::DesiredState>,
    forwarder: tokio::task::JoinHandle<()>,
}

impl ExtraTracksStop {
    /// The main track ended: the extra tracks finish what is in flight and end.
    pub fn stop(self) {
        self.forwarder.abort();
        let current = *self.sender.borrow();
        if current != streambot_hls::DesiredState::StopNow {
            let _ = self.sender.send(streambot_hls::DesiredState::Stop);
        }
    }
}

/// A control for the extra tracks that follows the recording's own (pause, resume, stop) until
/// [`ExtraTracksStop::stop`].
pub fn follow_control(
    mut control: tokio::sync::watch::Receiver<streambot_hls::DesiredState>,
) -> (
    tokio::sync::watch::Receiver<streambot_hls::DesiredState>,
    ExtraTracksStop,
) {
    let (sender, receiver) = tokio::sync::watch::channel(*control.borrow_and_update());
    let forwarding = sender.clone();
    let forwarder = tokio::spawn(async move {
        while control.changed().await.is_ok() {
            let state = *control.borrow_and_update();
            if forwarding.send(state).is_err() {
                return;
            }
        }
    });
    (receiver, ExtraTracksStop { sender, forwarder })
}
