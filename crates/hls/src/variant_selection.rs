//! Which variant (and audio rendition) of a master playlist a `Quality` picks, and which audio
//! and subtitle renditions go beside it ([`choose_tracks`]). Pure.

use serde::Serialize;
use streambot_core::{Quality, SubtitleChoice};

use crate::playlist::{MasterPlaylist, Rendition, RenditionType, Variant};

/// What to record from a master playlist.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantChoice {
    /// The media playlist URI to record as the main track (relative to the master).
    pub main_uri: String,
    /// The chosen variant, when the main track is a variant (not an audio rendition).
    pub variant: Option<Variant>,
    /// An audio rendition to fetch beside the main track and mux in at finalize.
    pub audio_rendition: Option<Rendition>,
    /// True when the main track carries audio only.
    pub audio_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VariantSelectionError {
    #[error("the master playlist lists no variant streams")]
    NoVariants,
}

const AUDIO_CODEC_PREFIXES: [&str; 7] = ["mp4a", "ac-3", "ec-3", "opus", "mp3", "flac", "alac"];

/// True when a variant's CODECS name only audio codecs.
pub fn is_audio_only_variant(variant: &Variant) -> bool {
    if variant.resolution.is_some() {
        return false;
    }
    match &variant.codecs {
        Some(codecs) => {
            let names: Vec<&str> = codecs
                .split(',')
                .map(|name| name.trim())
                .filter(|name| !name.is_empty())
                .collect();
            !names.is_empty()
                && names.iter().all(|name| {
                    let lowered = name.to_ascii_lowercase();
                    AUDIO_CODEC_PREFIXES
                        .iter()
                        .any(|prefix| lowered.starts_with(prefix))
                })
        }
        None => false,
    }
}

fn audio_rendition_for(master: &MasterPlaylist, variant: &Variant) -> Option<Rendition> {
    let group = variant.audio_group.as_ref()?;
    let in_group: Vec<&Rendition> = master
        .renditions
        .iter()
        .filter(|rendition| {
            rendition.media_type == RenditionType::Audio
                && &rendition.group_id == group
                && rendition.uri.is_some()
        })
        .collect();
    in_group
        .iter()
        .find(|rendition| rendition.default)
        .or_else(|| in_group.iter().find(|rendition| rendition.autoselect))
        .or_else(|| in_group.first())
        .map(|rendition| (*rendition).clone())
}

/// Picks the variant for a quality. Variants are ordered by bandwidth; ties keep playlist order.
pub fn choose_variant(
    master: &MasterPlaylist,
    quality: Quality,
) -> Result<VariantChoice, VariantSelectionError> {
    let mut by_bandwidth: Vec<&Variant> = master.variants.iter().collect();
    if by_bandwidth.is_empty() {
        return Err(VariantSelectionError::NoVariants);
    }
    by_bandwidth.sort_by_key(|variant| variant.bandwidth);
    let with_video: Vec<&Variant> = by_bandwidth
        .iter()
        .copied()
        .filter(|variant| !is_audio_only_variant(variant))
        .collect();
    let video_or_all = if with_video.is_empty() {
        by_bandwidth.clone()
    } else {
        with_video.clone()
    };
    let highest = video_or_all[video_or_all.len() - 1];
    let chosen: &Variant = match quality {
        Quality::Best | Quality::High => highest,
        Quality::Medium => video_or_all[(video_or_all.len() - 1) / 2],
        Quality::Low => video_or_all[0],
        Quality::Worst => by_bandwidth[0],
        Quality::Height(height) => {
            let with_resolution: Vec<&Variant> = video_or_all
                .iter()
                .copied()
                .filter(|variant| variant.resolution.is_some())
                .collect();
            with_resolution
                .iter()
                .copied()
                .min_by_key(|variant| {
                    let variant_height = variant.resolution.as_ref().map_or(0, |r| r.height);
                    (
                        variant_height.abs_diff(height),
                        std::cmp::Reverse(variant.bandwidth),
                    )
                })
                .unwrap_or(highest)
        }
        Quality::Audio => {
            if let Some(audio_variant) = by_bandwidth
                .iter()
                .rev()
                .copied()
                .find(|variant| is_audio_only_variant(variant))
            {
                return Ok(VariantChoice {
                    main_uri: audio_variant.uri.clone(),
                    variant: Some(audio_variant.clone()),
                    audio_rendition: None,
                    audio_only: true,
                });
            }
            if let Some(rendition) = audio_rendition_for(master, highest)
                && let Some(uri) = &rendition.uri
            {
                return Ok(VariantChoice {
                    main_uri: uri.clone(),
                    variant: None,
                    audio_rendition: None,
                    audio_only: true,
                });
            }
            // Audio is muxed into the variants: record the smallest one; audio is kept at finalize.
            let smallest = video_or_all[0];
            return Ok(VariantChoice {
                main_uri: smallest.uri.clone(),
                variant: Some(smallest.clone()),
                audio_rendition: None,
                audio_only: false,
            });
        }
    };
    Ok(VariantChoice {
        main_uri: chosen.uri.clone(),
        variant: Some(chosen.clone()),
        audio_rendition: audio_rendition_for(master, chosen),
        audio_only: is_audio_only_variant(chosen),
    })
}

/// The backups of `chosen` (RFC 8216 §6.2.4 redundant streams): the other variants of the
/// master with the same BANDWIDTH, RESOLUTION and CODECS at another URI (another host or path),
/// each URI once, in playlist order. A variant with no BANDWIDTH has no backups (nothing says
/// two such entries are the same rendition).
pub fn redundant_backup_uris(master: &MasterPlaylist, chosen: &Variant) -> Vec<String> {
    let mut backups: Vec<String> = Vec::new();
    if chosen.bandwidth == 0 {
        return backups;
    }
    for variant in &master.variants {
        let same_rendition = variant.bandwidth == chosen.bandwidth
            && variant.resolution == chosen.resolution
            && variant.codecs == chosen.codecs;
        if same_rendition && variant.uri != chosen.uri && !backups.contains(&variant.uri) {
            backups.push(variant.uri.clone());
        }
    }
    backups
}

/// The audio and subtitle renditions a user asked for (from `RecordingOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackRequest {
    pub subtitles: SubtitleChoice,
    pub audio_language: Option<String>,
    pub all_audio: bool,
}

impl TrackRequest {
    pub fn from_options(options: &streambot_core::RecordingOptions) -> TrackRequest {
        TrackRequest {
            subtitles: options.subtitles.clone(),
            audio_language: options.audio_language.clone(),
            all_audio: options.all_audio,
        }
    }
}

/// The renditions to record beside the main track.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrackSelection {
    /// Audio renditions, each its own track, the preferred one first (the one finalize marks as
    /// default). Empty when the audio is in the main track.
    pub audio: Vec<Rendition>,
    /// WebVTT subtitle renditions, each its own track.
    pub subtitles: Vec<Rendition>,
    /// What the user should know: a language that was not offered, what was used instead.
    pub notes: Vec<String>,
}

/// How well a rendition's language matches a wanted tag: 2 exact (case-insensitive), 1 the same
/// primary language (`de` and `de-DE`, `de-AT` and `de-DE`), 0 not at all.
pub fn language_match(wanted: &str, offered: Option<&str>) -> u8 {
    let Some(offered) = offered else {
        return 0;
    };
    let normalize = |tag: &str| tag.trim().replace('_', "-").to_ascii_lowercase();
    let (wanted, offered) = (normalize(wanted), normalize(offered));
    if wanted.is_empty() || offered.is_empty() {
        return 0;
    }
    if wanted == offered {
        return 2;
    }
    let primary = |tag: &str| tag.split('-').next().unwrap_or_default().to_string();
    u8::from(primary(&wanted) == primary(&offered))
}

/// Audio renditions recorded at most (`--all-audio` on a master that lists hundreds must not
/// open hundreds of tracks, connections and ffmpeg inputs).
pub const MAXIMUM_AUDIO_TRACKS: usize = 8;
/// Subtitle renditions recorded at most.
pub const MAXIMUM_SUBTITLE_TRACKS: usize = 8;
/// Languages named at most in a note (it reaches a chat message).
const MAXIMUM_LANGUAGES_DESCRIBED: usize = 12;

/// A playlist's label as it may reach a note: no control characters, at most 40 characters.
fn printable_label(text: &str) -> String {
    text.chars()
        .filter(|character| !character.is_control())
        .take(40)
        .collect()
}

fn describe_languages(renditions: &[&Rendition]) -> String {
    let mut languages: Vec<String> = renditions
        .iter()
        .map(|rendition| match &rendition.language {
            Some(language) => printable_label(language),
            None => format!("{:?}", printable_label(&rendition.name)),
        })
        .collect();
    languages.dedup();
    if languages.is_empty() {
        return "none".to_string();
    }
    let more = languages.len().saturating_sub(MAXIMUM_LANGUAGES_DESCRIBED);
    languages.truncate(MAXIMUM_LANGUAGES_DESCRIBED);
    let mut text = languages.join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

/// Keeps the first `maximum` of `renditions`, with a note when some are left out.
fn keep_at_most(
    renditions: &mut Vec<Rendition>,
    maximum: usize,
    kind: &str,
    notes: &mut Vec<String>,
) {
    if renditions.len() > maximum {
        notes.push(format!(
            "the stream offers {} {kind} tracks: the first {maximum} are recorded",
            renditions.len()
        ));
        renditions.truncate(maximum);
    }
}

/// Renditions of `media_type` in `group` (every one of that type when the variant names no
/// group), with a URI, each URI once, in playlist order.
fn renditions_in_group<'master>(
    master: &'master MasterPlaylist,
    media_type: &RenditionType,
    group: Option<&String>,
) -> Vec<&'master Rendition> {
    let mut seen_uris: std::collections::HashSet<&str> = std::collections::HashSet::new();
    master
        .renditions
        .iter()
        .filter(|rendition| &rendition.media_type == media_type)
        .filter(|rendition| group.is_none_or(|group| &rendition.group_id == group))
        .filter(|rendition| {
            rendition
                .uri
                .as_deref()
                .is_some_and(|uri| seen_uris.insert(uri))
        })
        .collect()
}

/// Which audio and subtitle renditions to record beside `choice` (its variant's groups):
/// `all_audio` takes every audio rendition (the default one first); `audio_language` the best
/// language match, or the default rendition with a note when none matches; otherwise the
/// rendition [`choose_variant`] picked. Subtitles: none, all, or those matching the language
/// (no fallback to another language: a note says what is offered).
pub fn choose_tracks(
    master: &MasterPlaylist,
    choice: &VariantChoice,
    request: &TrackRequest,
) -> TrackSelection {
    let mut selection = TrackSelection::default();
    let variant = choice.variant.as_ref();
    let audio_group = variant.and_then(|variant| variant.audio_group.as_ref());
    let audio_offered: Vec<&Rendition> = match audio_group {
        Some(group) if !choice.audio_only => {
            renditions_in_group(master, &RenditionType::Audio, Some(group))
        }
        _ => Vec::new(),
    };
    if choice.audio_only && (request.audio_language.is_some() || request.all_audio) {
        selection
            .notes
            .push("audio only: the audio language options do not apply".to_string());
    }
    if request.all_audio && !audio_offered.is_empty() {
        let mut all: Vec<Rendition> = audio_offered.iter().map(|r| (*r).clone()).collect();
        // The default rendition first (stable: the others keep playlist order).
        all.sort_by_key(|rendition| !rendition.default);
        if let Some(wanted) = &request.audio_language {
            all.sort_by_key(|rendition| {
                std::cmp::Reverse(language_match(wanted, rendition.language.as_deref()))
            });
        }
        selection.audio = all;
    } else if let Some(wanted) = request
        .audio_language
        .as_ref()
        .filter(|_| !choice.audio_only)
    {
        let best = audio_offered
            .iter()
            .copied()
            .map(|rendition| {
                (
                    language_match(wanted, rendition.language.as_deref()),
                    rendition,
                )
            })
            .filter(|(score, _)| *score > 0)
            .max_by_key(|(score, rendition)| (*score, rendition.default, rendition.autoselect));
        match best {
            Some((_, rendition)) => selection.audio.push(rendition.clone()),
            None => {
                let fallback = choice.audio_rendition.clone();
                selection.notes.push(match &fallback {
                    Some(rendition) => format!(
                        "no audio in {wanted:?} (offered: {}); recording {} instead",
                        describe_languages(&audio_offered),
                        describe_languages(&[rendition])
                    ),
                    None => {
                        format!("no separate audio in {wanted:?}; the stream's own audio is kept")
                    }
                });
                selection.audio.extend(fallback);
            }
        }
    } else {
        selection.audio.extend(choice.audio_rendition.clone());
    }

    let subtitle_group = variant.and_then(|variant| variant.subtitles_group.as_ref());
    let subtitles_offered = renditions_in_group(master, &RenditionType::Subtitles, subtitle_group);
    match &request.subtitles {
        SubtitleChoice::None => {}
        SubtitleChoice::All => {
            selection.subtitles = subtitles_offered.iter().map(|r| (*r).clone()).collect();
            if selection.subtitles.is_empty() {
                selection
                    .notes
                    .push("the stream offers no subtitles".to_string());
            }
        }
        SubtitleChoice::Language(wanted) => {
            let best_score = subtitles_offered
                .iter()
                .map(|rendition| language_match(wanted, rendition.language.as_deref()))
                .max()
                .unwrap_or(0);
            if best_score == 0 {
                selection.notes.push(format!(
                    "no subtitles in {wanted:?} (offered: {})",
                    describe_languages(&subtitles_offered)
                ));
            } else {
                selection.subtitles = subtitles_offered
                    .iter()
                    .filter(|rendition| {
                        language_match(wanted, rendition.language.as_deref()) == best_score
                    })
                    .map(|rendition| (*rendition).clone())
                    .collect();
            }
        }
    }
    keep_at_most(
        &mut selection.audio,
        MAXIMUM_AUDIO_TRACKS,
        "audio",
        &mut selection.notes,
    );
    keep_at_most(
        &mut selection.subtitles,
        MAXIMUM_SUBTITLE_TRACKS,
        "subtitle",
        &mut selection.notes,
    );
    selection
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playlist::{Playlist, parse_playlist};

    const MASTER: &str = "#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"English\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,URI=\"audio/en.m3u8\"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"Deutsch\",LANGUAGE=\"de-DE\",AUTOSELECT=YES,URI=\"audio/de.m3u8\"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"English\",LANGUAGE=\"en-US\",DEFAULT=YES,URI=\"subs/en.m3u8\"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"Francais\",LANGUAGE=\"fr\",URI=\"subs/fr.m3u8\"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"other\",NAME=\"Espanol\",LANGUAGE=\"es\",URI=\"subs/es.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720,AUDIO=\"aud\",SUBTITLES=\"subs\"
v0/media.m3u8
";

    fn master() -> MasterPlaylist {
        match parse_playlist(MASTER) {
            Ok(Playlist::Master(master)) => master,
            other => panic!("{other:?}"),
        }
    }

    fn select(request: TrackRequest) -> TrackSelection {
        let master = master();
        let choice = choose_variant(&master, Quality::Best).expect("variant");
        choose_tracks(&master, &choice, &request)
    }

    fn uris(renditions: &[Rendition]) -> Vec<&str> {
        renditions
            .iter()
            .filter_map(|rendition| rendition.uri.as_deref())
            .collect()
    }

    #[test]
    fn languages_match_by_tag_and_prefix() {
        assert_eq!(language_match("de", Some("de-DE")), 1);
        assert_eq!(language_match("DE-de", Some("de-DE")), 2);
        assert_eq!(language_match("de_AT", Some("de-DE")), 1);
        assert_eq!(language_match("de", Some("dan")), 0);
        assert_eq!(language_match("de", None), 0);
        assert_eq!(language_match("", Some("")), 0);
    }

    #[test]
    fn by_default_one_audio_and_no_subtitles() {
        let selection = select(TrackRequest::default());
        assert_eq!(uris(&selection.audio), vec!["audio/en.m3u8"]);
        assert!(selection.subtitles.is_empty() && selection.notes.is_empty());
    }

    #[test]
    fn an_audio_language_picks_its_rendition_by_prefix() {
        let selection = select(TrackRequest {
            audio_language: Some("de".to_string()),
            ..TrackRequest::default()
        });
        assert_eq!(uris(&selection.audio), vec!["audio/de.m3u8"]);
        assert!(selection.notes.is_empty());
    }

    #[test]
    fn a_language_not_offered_falls_back_to_the_default_with_a_note() {
        let selection = select(TrackRequest {
            audio_language: Some("ja".to_string()),
            ..TrackRequest::default()
        });
        assert_eq!(uris(&selection.audio), vec!["audio/en.m3u8"]);
        assert_eq!(selection.notes.len(), 1);
        assert!(
            selection.notes[0].contains("en, de-DE"),
            "{:?}",
            selection.notes
        );
    }

    #[test]
    fn all_audio_takes_every_rendition_preferred_first() {
        let selection = select(TrackRequest {
            all_audio: true,
            ..TrackRequest::default()
        });
        assert_eq!(
            uris(&selection.audio),
            vec!["audio/en.m3u8", "audio/de.m3u8"]
        );
        let selection = select(TrackRequest {
            all_audio: true,
            audio_language: Some("de".to_string()),
            ..TrackRequest::default()
        });
        assert_eq!(
            uris(&selection.audio),
            vec!["audio/de.m3u8", "audio/en.m3u8"]
        );
    }

    #[test]
    fn subtitles_follow_the_variant_group() {
        let all = select(TrackRequest {
            subtitles: SubtitleChoice::All,
            ..TrackRequest::default()
        });
        assert_eq!(uris(&all.subtitles), vec!["subs/en.m3u8", "subs/fr.m3u8"]);
        let english = select(TrackRequest {
            subtitles: SubtitleChoice::Language("en".to_string()),
            ..TrackRequest::default()
        });
        assert_eq!(uris(&english.subtitles), vec!["subs/en.m3u8"]);
        let spanish = select(TrackRequest {
            subtitles: SubtitleChoice::Language("es".to_string()),
            ..TrackRequest::default()
        });
        assert!(spanish.subtitles.is_empty());
        assert!(
            spanish.notes[0].contains("en-US, fr"),
            "{:?}",
            spanish.notes
        );
    }

    #[test]
    fn renditions_without_a_uri_or_listed_twice_are_not_tracks() {
        let text = MASTER.replace(
            "#EXT-X-STREAM-INF",
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"Muxed\",LANGUAGE=\"it\"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"Again\",LANGUAGE=\"en\",URI=\"audio/en.m3u8\"
#EXT-X-STREAM-INF",
        );
        let Ok(Playlist::Master(master)) = parse_playlist(&text) else {
            panic!("master");
        };
        let choice = choose_variant(&master, Quality::Best).expect("variant");
        let selection = choose_tracks(
            &master,
            &choice,
            &TrackRequest {
                all_audio: true,
                ..TrackRequest::default()
            },
        );
        assert_eq!(
            uris(&selection.audio),
            vec!["audio/en.m3u8", "audio/de.m3u8"]
        );
    }

    #[test]
    fn hundreds_of_renditions_are_capped_and_the_note_stays_short_and_printable() {
        let mut text = String::from("#EXTM3U\n");
        for index in 0..500 {
            text.push_str(&format!(
                "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"a{index}\",LANGUAGE=\"x\u{1b}[31m{index}/../\",URI=\"a/{index}.m3u8\"\n\
                 #EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"s{index}\",LANGUAGE=\"en\",URI=\"s/{index}.m3u8\"\n"
            ));
        }
        text.push_str(
            "#EXT-X-STREAM-INF:BANDWIDTH=1000,AUDIO=\"aud\",SUBTITLES=\"subs\"\nv.m3u8\n",
        );
        let Ok(Playlist::Master(master)) = parse_playlist(&text) else {
            panic!("a master");
        };
        let choice = choose_variant(&master, Quality::Best).expect("variant");
        let all = choose_tracks(
            &master,
            &choice,
            &TrackRequest {
                subtitles: SubtitleChoice::All,
                audio_language: None,
                all_audio: true,
            },
        );
        assert_eq!(all.audio.len(), MAXIMUM_AUDIO_TRACKS);
        assert_eq!(all.subtitles.len(), MAXIMUM_SUBTITLE_TRACKS);
        assert!(
            all.notes.iter().any(|note| note.contains("500 audio")),
            "{:?}",
            all.notes
        );
        let missing = choose_tracks(
            &master,
            &choice,
            &TrackRequest {
                subtitles: SubtitleChoice::Language("ja".to_string()),
                audio_language: Some("ja".to_string()),
                all_audio: false,
            },
        );
        for note in &missing.notes {
            assert!(note.len() < 1000, "{note}");
            assert!(!note.chars().any(char::is_control), "{note:?}");
        }
    }

    /// Redundant streams as Apple's authoring guide and RFC 8216 §6.2.4 show them: every
    /// rendition on a primary and a backup host, interleaved, plus an audio-only entry.
    const REDUNDANT_MASTER: &str = "#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=1280000,RESOLUTION=640x360,CODECS=\"avc1.4d401e,mp4a.40.2\"
https://primary.example.com/live/low/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2560000,RESOLUTION=1280x720,CODECS=\"avc1.4d401f,mp4a.40.2\"
https://primary.example.com/live/mid/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=1280000,RESOLUTION=640x360,CODECS=\"avc1.4d401e,mp4a.40.2\"
https://backup.example.com/live/low/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2560000,RESOLUTION=1280x720,CODECS=\"avc1.4d401f,mp4a.40.2\"
https://backup.example.com/live/mid/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2560000,RESOLUTION=1280x720,CODECS=\"avc1.4d401f,mp4a.40.2\"
backup2/mid/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2560000,RESOLUTION=1280x720,CODECS=\"hvc1.1.6.L93.B0,mp4a.40.2\"
https://primary.example.com/live/mid-hevc/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2560000,RESOLUTION=1280x720,CODECS=\"avc1.4d401f,mp4a.40.2\"
https://primary.example.com/live/mid/index.m3u8
";

    #[test]
    fn redundant_streams_are_the_backups_of_the_chosen_variant() {
        let master = match parse_playlist(REDUNDANT_MASTER) {
            Ok(Playlist::Master(master)) => master,
            other => panic!("not a master: {other:?}"),
        };
        let best = choose_variant(&master, Quality::Best).expect("choice");
        assert_eq!(
            best.main_uri,
            "https://primary.example.com/live/mid/index.m3u8"
        );
        let chosen = best.variant.as_ref().expect("variant");
        // Same BANDWIDTH, RESOLUTION and CODECS elsewhere; not the HEVC entry, not itself twice.
        assert_eq!(
            redundant_backup_uris(&master, chosen),
            vec![
                "https://backup.example.com/live/mid/index.m3u8".to_string(),
                "backup2/mid/index.m3u8".to_string(),
            ]
        );
        let low = choose_variant(&master, Quality::Low).expect("choice");
        assert_eq!(
            redundant_backup_uris(&master, low.variant.as_ref().expect("variant")),
            vec!["https://backup.example.com/live/low/index.m3u8".to_string()]
        );
        // An ordinary ladder has none.
        let plain = master_without_backups();
        let choice = choose_variant(&plain, Quality::Best).expect("choice");
        assert!(
            redundant_backup_uris(&plain, choice.variant.as_ref().expect("variant")).is_empty()
        );
    }

    fn master_without_backups() -> MasterPlaylist {
        master()
    }
}
