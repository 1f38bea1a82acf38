//! `streambot probe URL`: what a link offers (variants, renditions, live or VOD, encryption) and
//! which variant each `--quality` would pick, as a table or `--json`.

use std::process::ExitCode;

use serde::Serialize;
use streambot_core::Quality;
use streambot_hls::playlist::RenditionType;
use streambot_hls::playlist::{
    KeyMethod, MediaPlaylist, Playlist, Rendition, Variant, parse_playlist,
};
use streambot_hls::url_safety::parse_and_check_url;
use streambot_hls::variant_selection::{
    TrackRequest, TrackSelection, choose_tracks, choose_variant,
};
use streambot_hls::{FetchLimits, HlsError, HlsHttpClient, NetworkPolicy};

#[derive(Debug, clap::Args)]
pub struct ProbeArguments {
    /// The HLS link: a master or media playlist (http or https).
    pub url: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Show which subtitle renditions `record --subs` would take: none, all, or a language.
    #[arg(long = "subs", default_value = "none", value_parser = crate::parse_subtitles_argument)]
    pub subtitles: streambot_core::SubtitleChoice,
    /// Show which audio rendition `record --audio-lang` would take.
    #[arg(long = "audio-lang", value_name = "LANGUAGE", value_parser = crate::parse_language_argument)]
    pub audio_language: Option<String>,
    /// Show the audio tracks `record --all-audio` would take.
    #[arg(long)]
    pub all_audio: bool,
    /// Allow links to loopback, private and link-local addresses (refused by default).
    #[arg(long, env = "ALLOW_PRIVATE_NETWORKS", default_value_t = false)]
    pub allow_private_networks: bool,
}

#[derive(Debug, Serialize)]
struct MediaSummary {
    url: String,
    live: bool,
    playlist_type: Option<String>,
    target_duration_seconds: f64,
    segments: usize,
    window_seconds: f64,
    first_media_sequence: Option<u64>,
    encryption: Option<String>,
    container: &'static str,
}

#[derive(Debug, Serialize)]
struct QualityPick {
    quality: String,
    uri: String,
    audio_rendition: Option<String>,
}

#[derive(Debug, Serialize)]
struct ProbeReport {
    url: String,
    kind: &'static str,
    variants: Vec<Variant>,
    renditions: Vec<Rendition>,
    picks: Vec<QualityPick>,
    /// Backups of the best pick: the same rendition on another host or path (redundant streams).
    backups: Vec<String>,
    /// Audio renditions (language, name, default), in playlist order.
    audio_renditions: Vec<RenditionLine>,
    /// Subtitle renditions (language, name, default), in playlist order.
    subtitle_renditions: Vec<RenditionLine>,
    /// The audio and subtitle tracks `record` would take for the best variant with the flags given.
    tracks: Option<TrackSelection>,
    media: Option<MediaSummary>,
}

/// One audio or subtitle rendition as `probe` lists it.
#[derive(Debug, Serialize)]
struct RenditionLine {
    group: String,
    language: Option<String>,
    name: String,
    default: bool,
    uri: Option<String>,
}

fn rendition_lines(renditions: &[Rendition], media_type: &RenditionType) -> Vec<RenditionLine> {
    renditions
        .iter()
        .filter(|rendition| &rendition.media_type == media_type)
        .map(|rendition| RenditionLine {
            group: rendition.group_id.clone(),
            language: rendition.language.clone(),
            name: rendition.name.clone(),
            default: rendition.default,
            uri: rendition.uri.clone(),
        })
        .collect()
}

fn summarize_media(url: &str, media: &MediaPlaylist) -> MediaSummary {
    let encryption = media
        .segments
        .iter()
        .filter_map(|segment| segment.key.as_ref())
        .map(|key| match &key.method {
            KeyMethod::None => "none".to_string(),
            KeyMethod::Aes128 => "AES-128".to_string(),
            KeyMethod::SampleAes => "SAMPLE-AES (not recordable)".to_string(),
            KeyMethod::SampleAesCtr => "SAMPLE-AES-CTR (not recordable)".to_string(),
            KeyMethod::Other(other) => format!("{other} (not recordable)"),
        })
        .next();
    MediaSummary {
        url: url.to_string(),
        live: !media.end_list,
        playlist_type: media.playlist_type.as_ref().map(|kind| format!("{kind:?}")),
        target_duration_seconds: media.target_duration,
        segments: media.segments.len(),
        window_seconds: media.total_duration(),
        first_media_sequence: media.segments.first().map(|segment| segment.media_sequence),
        encryption,
        container: if media.segments.iter().any(|segment| segment.map.is_some()) {
            "fMP4"
        } else {
            "MPEG-TS"
        },
    }
}

async fn probe(
    client: &HlsHttpClient,
    url_text: &str,
    request: &TrackRequest,
) -> Result<ProbeReport, HlsError> {
    let url = parse_and_check_url(url_text, client.policy())?;
    let (final_url, text) = client.fetch_playlist(&url).await?;
    let playlist = parse_playlist(&text).map_err(|error| HlsError::Playlist {
        url: url.to_string(),
        error,
    })?;
    match playlist {
        Playlist::Media(media) => Ok(ProbeReport {
            url: url.to_string(),
            kind: "media",
            variants: Vec::new(),
            renditions: Vec::new(),
            picks: Vec::new(),
            backups: Vec::new(),
            audio_renditions: Vec::new(),
            subtitle_renditions: Vec::new(),
            tracks: None,
            media: Some(summarize_media(final_url.as_str(), &media)),
        }),
        Playlist::Master(master) => {
            let qualities = [
                Quality::Best,
                Quality::High,
                Quality::Medium,
                Quality::Low,
                Quality::Worst,
                Quality::Height(1080),
                Quality::Height(720),
                Quality::Height(480),
                Quality::Audio,
            ];
            let mut picks = Vec::new();
            for quality in qualities {
                if let Ok(choice) = choose_variant(&master, quality) {
                    picks.push(QualityPick {
                        quality: quality.to_string(),
                        uri: choice.main_uri.clone(),
                        audio_rendition: choice
                            .audio_rendition
                            .as_ref()
                            .and_then(|rendition| rendition.uri.clone()),
                    });
                }
            }
            let media = match picks.first() {
                Some(best) => match final_url.join(&best.uri) {
                    Ok(media_url) => match client.fetch_playlist(&media_url).await {
                        Ok((media_final_url, media_text)) => match parse_playlist(&media_text) {
                            Ok(Playlist::Media(media)) => {
                                Some(summarize_media(media_final_url.as_str(), &media))
                            }
                            _ => None,
                        },
                        Err(_) => None,
                    },
                    Err(_) => None,
                },
                None => None,
            };
            let best_choice = choose_variant(&master, Quality::Best).ok();
            let backups = best_choice
                .as_ref()
                .and_then(|choice| choice.variant.as_ref())
                .map(|variant| {
                    streambot_hls::variant_selection::redundant_backup_uris(&master, variant)
                })
                .unwrap_or_default();
            let tracks = best_choice.map(|choice| choose_tracks(&master, &choice, request));
            Ok(ProbeReport {
                url: url.to_string(),
                kind: "master",
                audio_renditions: rendition_lines(&master.renditions, &RenditionType::Audio),
                subtitle_renditions: rendition_lines(&master.renditions, &RenditionType::Subtitles),
                tracks,
                variants: master.variants,
                renditions: master.renditions,
                picks,
                backups,
                media,
            })
        }
    }
}

fn print_table(report: &ProbeReport) {
    println!("{} ({} playlist)", report.url, report.kind);
    if !report.variants.is_empty() {
        println!();
        println!(
            "{:>12}  {:>11}  {:<28}  {:<8}  uri",
            "bandwidth", "resolution", "codecs", "audio"
        );
        for variant in &report.variants {
            let resolution = variant
                .resolution
                .as_ref()
                .map_or("-".to_string(), |resolution| {
                    format!("{}x{}", resolution.width, resolution.height)
                });
            println!(
                "{:>12}  {:>11}  {:<28}  {:<8}  {}",
                variant.bandwidth,
                resolution,
                variant.codecs.as_deref().unwrap_or("-"),
                variant.audio_group.as_deref().unwrap_or("-"),
                variant.uri
            );
        }
    }
    let other_renditions: Vec<&Rendition> = report
        .renditions
        .iter()
        .filter(|rendition| {
            !matches!(
                rendition.media_type,
                RenditionType::Audio | RenditionType::Subtitles
            )
        })
        .collect();
    if !other_renditions.is_empty() {
        println!();
        println!("other renditions:");
        for rendition in other_renditions {
            println!(
                "  {:?} group={} name={} language={} default={} uri={}",
                rendition.media_type,
                rendition.group_id,
                rendition.name,
                rendition.language.as_deref().unwrap_or("-"),
                rendition.default,
                rendition.uri.as_deref().unwrap_or("(in the variant)")
            );
        }
    }
    for (title, lines) in [
        ("audio", &report.audio_renditions),
        ("subtitles", &report.subtitle_renditions),
    ] {
        if lines.is_empty() {
            continue;
        }
        println!();
        println!("{title}:");
        for line in lines {
            println!(
                "  {:<10} {:<24} group={}{}",
                line.language.as_deref().unwrap_or("-"),
                line.name,
                line.group,
                if line.default { "  (default)" } else { "" }
            );
        }
    }
    if let Some(tracks) = &report.tracks {
        let describe = |renditions: &[Rendition]| -> String {
            let names: Vec<String> = renditions
                .iter()
                .map(|rendition| {
                    rendition
                        .language
                        .clone()
                        .unwrap_or_else(|| rendition.name.clone())
                })
                .collect();
            if names.is_empty() {
                "-".to_string()
            } else {
                names.join(", ")
            }
        };
        println!();
        println!(
            "tracks recorded (best): audio {}; subtitles {}",
            describe(&tracks.audio),
            describe(&tracks.subtitles)
        );
        for note in &tracks.notes {
            println!("  note: {note}");
        }
    }
    if !report.picks.is_empty() {
        println!();
        println!("--quality picks:");
        for pick in &report.picks {
            match &pick.audio_rendition {
                Some(audio) => println!("  {:<7} {} (+ audio {})", pick.quality, pick.uri, audio),
                None => println!("  {:<7} {}", pick.quality, pick.uri),
            }
        }
        if !report.backups.is_empty() {
            println!(
                "  backups of the best pick (redundant streams): {}",
                report.backups.join(", ")
            );
        }
    }
    if let Some(media) = &report.media {
        println!();
        println!(
            "{}: {}, {} segments of up to {} s ({:.0} s window), {}, encryption {}",
            media.url,
            if media.live { "LIVE" } else { "VOD (ended)" },
            media.segments,
            media.target_duration_seconds,
            media.window_seconds,
            media.container,
            media.encryption.as_deref().unwrap_or("none")
        );
    }
}

pub async fn run_probe_command(arguments: ProbeArguments) -> ExitCode {
    let policy = NetworkPolicy {
        allow_private_networks: arguments.allow_private_networks,
    };
    let client = match HlsHttpClient::new(policy, FetchLimits::default()) {
        Ok(client) => client,
        Err(error) => {
            eprintln!("streambot probe: {error}");
            return ExitCode::from(2);
        }
    };
    let request = TrackRequest {
        subtitles: arguments.subtitles.clone(),
        audio_language: arguments.audio_language.clone(),
        all_audio: arguments.all_audio,
    };
    match probe(&client, &arguments.url, &request).await {
        Ok(report) => {
            if arguments.json {
                if let Err(status) = print_pretty_json("probe", &report) {
                    return status;
                }
            } else {
                print_table(&report);
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("streambot probe: {}", error.user_message());
            ExitCode::from(1)
        }
    }
}

/// `value` as pretty JSON on stdout (`--json` of `probe` and `clip`); exit status 1 when it
/// cannot be encoded.
pub(crate) fn print_pretty_json<T: serde::Serialize>(
    command: &str,
    value: &T,
) -> Result<(), ExitCode> {
    match serde_json::to_string_pretty(value) {
        Ok(text) => {
            println!("{text}");
            Ok(())
        }
        Err(error) => {
            eprintln!("streambot {command}: {error}");
            Err(ExitCode::from(1))
        }
    }
}
