//! What a user asks of a recording: how long, which quality, which container.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which variant of a master playlist to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    /// The highest bandwidth variant.
    #[default]
    Best,
    /// Same pick as `Best`; with transcoding (issue 3) it caps at 1080p.
    High,
    /// The middle variant by bandwidth.
    Medium,
    /// The lowest bandwidth variant that has video.
    Low,
    /// The lowest bandwidth variant of all.
    Worst,
    /// The variant whose height is nearest to this many lines (`720p`).
    Height(u32),
    /// An audio-only variant, or the audio rendition of the best variant.
    Audio,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{given:?} is not a quality; use best, high, medium, low, worst, audio or a height like 720p"
)]
pub struct QualityParseError {
    pub given: String,
}

impl FromStr for Quality {
    type Err = QualityParseError;

    fn from_str(given: &str) -> Result<Self, Self::Err> {
        let text = given.trim().to_ascii_lowercase();
        let quality = match text.as_str() {
            "best" | "max" | "source" => Quality::Best,
            "high" | "hq" | "hd" => Quality::High,
            "medium" | "mid" | "med" | "sd" => Quality::Medium,
            "low" | "lq" => Quality::Low,
            "worst" | "min" => Quality::Worst,
            "audio" | "audio-only" | "audio_only" | "audioonly" | "mp3" | "m4a" => Quality::Audio,
            other => {
                let digits = other.strip_suffix('p').unwrap_or(other);
                match digits.parse::<u32>() {
                    Ok(height) if (100..=4320).contains(&height) => Quality::Height(height),
                    _ => {
                        return Err(QualityParseError {
                            given: given.to_string(),
                        });
                    }
                }
            }
        };
        Ok(quality)
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quality::Best => formatter.write_str("best"),
            Quality::High => formatter.write_str("high"),
            Quality::Medium => formatter.write_str("medium"),
            Quality::Low => formatter.write_str("low"),
            Quality::Worst => formatter.write_str("worst"),
            Quality::Height(height) => write!(formatter, "{height}p"),
            Quality::Audio => formatter.write_str("audio"),
        }
    }
}

/// The container of the finished file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    #[default]
    Mp4,
    Mkv,
    Ts,
}

impl FromStr for OutputFormat {
    type Err = String;
    fn from_str(given: &str) -> Result<Self, Self::Err> {
        match given.trim().to_ascii_lowercase().as_str() {
            "mp4" => Ok(OutputFormat::Mp4),
            "mkv" => Ok(OutputFormat::Mkv),
            "ts" => Ok(OutputFormat::Ts),
            _ => Err(format!("{given:?} is not a format; use mp4, mkv or ts")),
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            OutputFormat::Mp4 => "mp4",
            OutputFormat::Mkv => "mkv",
            OutputFormat::Ts => "ts",
        })
    }
}

/// Which subtitle renditions to record (`--subs en|all|none`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SubtitleChoice {
    /// No subtitles (the default).
    #[default]
    None,
    /// Every subtitle rendition the chosen variant offers.
    All,
    /// The renditions in this language (a BCP 47 tag or its prefix: `de` matches `de-DE`).
    Language(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not a subtitle choice; use none, all or a language like en or de-DE")]
pub struct SubtitleChoiceParseError {
    pub given: String,
}

impl FromStr for SubtitleChoice {
    type Err = SubtitleChoiceParseError;

    fn from_str(given: &str) -> Result<Self, Self::Err> {
        let text = given.trim();
        match text.to_ascii_lowercase().as_str() {
            "none" | "no" | "off" => Ok(SubtitleChoice::None),
            "all" => Ok(SubtitleChoice::All),
            _ => parse_language_tag(text)
                .map(SubtitleChoice::Language)
                .ok_or_else(|| SubtitleChoiceParseError {
                    given: given.to_string(),
                }),
        }
    }
}

impl fmt::Display for SubtitleChoice {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubtitleChoice::None => formatter.write_str("none"),
            SubtitleChoice::All => formatter.write_str("all"),
            SubtitleChoice::Language(language) => formatter.write_str(language),
        }
    }
}

/// A language tag as a user types it (`de`, `de-DE`, `pt_BR`): letters and digits in subtags of
/// 1 to 8 joined by `-` (an `_` is read as `-`), at most 35 characters. `None` for anything else.
pub fn parse_language_tag(given: &str) -> Option<String> {
    let text = given.trim().replace('_', "-");
    let valid = !text.is_empty()
        && text.len() <= 35
        && text.split('-').all(|subtag| {
            (1..=8).contains(&subtag.len()) && subtag.chars().all(|c| c.is_ascii_alphanumeric())
        })
        && text
            .split('-')
            .next()
            .is_some_and(|primary| primary.chars().all(|c| c.is_ascii_alphabetic()));
    valid.then_some(text)
}

/// Languages people name in words ("German", "Deutsch", "немецком"), as (code, English name,
/// native name, Russian stem). Used by the bot's "in German" and "German subtitles".
const NAMED_LANGUAGES: [(&str, &str, &str, &str); 20] = [
    ("en", "english", "english", "английск"),
    ("de", "german", "deutsch", "немецк"),
    ("fr", "french", "français", "французск"),
    ("es", "spanish", "español", "испанск"),
    ("it", "italian", "italiano", "итальянск"),
    ("pt", "portuguese", "português", "португальск"),
    ("ru", "russian", "русский", "русск"),
    ("uk", "ukrainian", "українська", "украинск"),
    ("pl", "polish", "polski", "польск"),
    ("nl", "dutch", "nederlands", "нидерландск"),
    ("tr", "turkish", "türkçe", "турецк"),
    ("ar", "arabic", "العربية", "арабск"),
    ("ja", "japanese", "日本語", "японск"),
    ("zh", "chinese", "中文", "китайск"),
    ("ko", "korean", "한국어", "корейск"),
    ("sv", "swedish", "svenska", "шведск"),
    ("fi", "finnish", "suomi", "финск"),
    ("cs", "czech", "čeština", "чешск"),
    ("hi", "hindi", "हिन्दी", "хинди"),
    ("el", "greek", "ελληνικά", "греческ"),
];

/// The language code of a language's name in English, in itself or in Russian (any case ending:
/// "немецком", "английские"); `None` for anything else (codes are read by `parse_language_tag`).
pub fn language_code_from_name(word: &str) -> Option<&'static str> {
    let word = word
        .trim_matches(|character: char| !character.is_alphanumeric())
        .to_lowercase();
    if word.chars().count() < 4 {
        return None;
    }
    NAMED_LANGUAGES
        .iter()
        .find(|(_, english, native, russian_stem)| {
            word == *english || word == *native || word.starts_with(russian_stem)
        })
        .map(|(code, ..)| *code)
}

/// Default time without a new segment after which a live recording ends as stalled.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Everything a user chose for one recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingOptions {
    /// Stop after this much wall-clock recording time; `None` records until the stream ends.
    pub maximum_duration: Option<Duration>,
    pub quality: Quality,
    pub format: OutputFormat,
    /// End the recording when no new segment appeared for this long.
    pub stall_timeout: Duration,
    /// Subtitle renditions to record beside the video (absent in older records: none).
    #[serde(default)]
    pub subtitles: SubtitleChoice,
    /// Preferred audio language (`de` matches `de-DE`); `None`: the playlist's default.
    #[serde(default)]
    pub audio_language: Option<String>,
    /// Record every audio rendition of the chosen variant, each as its own track.
    #[serde(default)]
    pub all_audio: bool,
    /// How long a link that is not live (yet) is watched before the recording fails: before the
    /// start (connection refused, HTTP 404/403/5xx, an empty playlist), and after the stream went
    /// away mid-recording (it then continues as a new part). Zero fails at once.
    #[serde(default)]
    pub wait_for_live: Duration,
    /// Record the whole window the playlist still offers (EVENT playlists, long DVR windows), then
    /// continue live; the ledger marks the segment that was the live edge at the start. Otherwise
    /// a live recording starts a few segments back from the live edge.
    #[serde(default)]
    pub from_start: bool,
}

impl Default for RecordingOptions {
    fn default() -> Self {
        RecordingOptions {
            maximum_duration: None,
            quality: Quality::Best,
            format: OutputFormat::Mp4,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            subtitles: SubtitleChoice::None,
            audio_language: None,
            all_audio: false,
            wait_for_live: Duration::ZERO,
            from_start: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualities_parse_from_what_people_type() {
        assert_eq!("best".parse(), Ok(Quality::Best));
        assert_eq!("HIGH".parse(), Ok(Quality::High));
        assert_eq!("720p".parse(), Ok(Quality::Height(720)));
        assert_eq!("1080".parse(), Ok(Quality::Height(1080)));
        assert_eq!("audio-only".parse(), Ok(Quality::Audio));
        assert!("ultra".parse::<Quality>().is_err());
        assert!("5p".parse::<Quality>().is_err());
        for quality in [
            Quality::Best,
            Quality::High,
            Quality::Medium,
            Quality::Low,
            Quality::Worst,
            Quality::Height(480),
            Quality::Audio,
        ] {
            assert_eq!(quality.to_string().parse(), Ok(quality));
        }
    }

    #[test]
    fn subtitle_choices_parse() {
        assert_eq!("none".parse(), Ok(SubtitleChoice::None));
        assert_eq!("ALL".parse(), Ok(SubtitleChoice::All));
        assert_eq!(
            "de_DE".parse(),
            Ok(SubtitleChoice::Language("de-DE".to_string()))
        );
        assert!("../etc".parse::<SubtitleChoice>().is_err());
        assert!("".parse::<SubtitleChoice>().is_err());
        assert!("en us".parse::<SubtitleChoice>().is_err());
        assert_eq!(language_code_from_name("German"), Some("de"));
        assert_eq!(language_code_from_name("немецком"), Some("de"));
        assert_eq!(language_code_from_name("Deutsch"), Some("de"));
        assert_eq!(language_code_from_name("de"), None);
        assert_eq!(language_code_from_name("germany"), None);
        for choice in [
            SubtitleChoice::None,
            SubtitleChoice::All,
            SubtitleChoice::Language("pt-BR".to_string()),
        ] {
            assert_eq!(choice.to_string().parse(), Ok(choice));
        }
    }

    #[test]
    fn options_written_before_tracks_existed_still_parse() {
        let old = r#"{"maximum_duration":null,"quality":"best","format":"mp4","stall_timeout":{"secs":120,"nanos":0}}"#;
        let options: RecordingOptions = serde_json::from_str(old).expect("old record parses");
        assert_eq!(options.subtitles, SubtitleChoice::None);
        assert_eq!(options.audio_language, None);
        assert!(!options.all_audio);
    }

    #[test]
    fn options_stored_before_wait_for_live_still_parse() {
        let stored = r#"{"maximum_duration":null,"quality":"best","format":"mp4","stall_timeout":{"secs":120,"nanos":0}}"#;
        let options: RecordingOptions = serde_json::from_str(stored).expect("old options parse");
        assert_eq!(options.wait_for_live, Duration::ZERO);
        assert!(!options.from_start);
    }

    #[test]
    fn formats_parse() {
        assert_eq!("MKV".parse(), Ok(OutputFormat::Mkv));
        assert!("avi".parse::<OutputFormat>().is_err());
    }
}
