//! One parser for commands and plain English. Pure: text in, intent out.
//!
//! `/record https://x/live.m3u8 2h high`, `record https://x/live.m3u8 for 2 hours high quality`,
//! `start recording https://… audio only`, `stop A3F2B1C9`, `pause it`, `what's recording?` and a
//! bare link all land here. Anything it cannot understand gets `NotUnderstood`, which the bot
//! answers with a hint and an example, never silence.

use std::time::Duration;

use streambot_core::schedule::{WEEKEND_WORDS, WORKING_DAY_WORDS, parse_weekday};
use streambot_core::{
    DEFAULT_CLIP_DURATION, DurationTextError, JobId, MAXIMUM_CLIP_DURATION, Quality, Recurrence,
    SubtitleChoice, TimeMeaning, TimeOfDay, find_schedule_words, find_time_phrases,
    language_code_from_name, parse_language_tag, parse_time_zone,
};

/// Which job a control command is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobTarget {
    /// The user named it.
    Id(JobId),
    /// "stop", "pause it": the user's only live job, or ask which.
    Unspecified,
}

/// When a request asks to start: "at 20:00", "tomorrow 21:30", "every Friday at 20:00".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedStart {
    pub time: TimeOfDay,
    pub recurrence: Recurrence,
    /// "today at 20:00", "tonight": a time that has passed is a mistake, not tomorrow.
    pub today: bool,
    /// A zone named in the message ("at 20:00 Europe/Berlin"), checked; else the user's zone.
    pub time_zone: Option<String>,
    /// "on Friday at 20:00": once, on the next Friday.
    pub on_weekday: Option<chrono::Weekday>,
}

/// A recording request as the user phrased it (the URL is checked later, by the recorder's rules).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordRequest {
    /// Every link in the message, in order, each with a scheme (`https://` added when missing).
    pub urls: Vec<String>,
    pub duration: Option<Duration>,
    pub quality: Quality,
    /// A time of day the message named ("at 20:00", "every Friday at 20:00"): a schedule.
    pub start: Option<RequestedStart>,
    /// "wait up to 6 h": how long a link that is not live yet is watched.
    pub wait_for_live: Option<Duration>,
    /// "from the start": the whole window the playlist still offers, then live.
    pub from_start: bool,
    /// "with subtitles", "subtitles en", "German subtitles".
    pub subtitles: SubtitleChoice,
    /// "in German", "audio de".
    pub audio_language: Option<String>,
    /// "all audio": every audio rendition as its own track.
    pub all_audio: bool,
}

/// Admin-only commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    Help,
    Overview,
    AllJobs,
    StopAny(JobId),
    AddVip(i64),
    RemoveVip(i64),
}

/// What the user wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BotCommand {
    Start,
    Help,
    Record(RecordRequest),
    Stop(JobTarget),
    Pause(JobTarget),
    Resume(JobTarget),
    Status(JobTarget),
    List,
    Cancel(JobTarget),
    /// Delete a finished recording's files (local and remote copies).
    Delete(JobTarget),
    /// `/language [code]`: show or choose the bot's language.
    Language(Option<String>),
    Admin(AdminCommand),
    /// `/schedule`: the user's scheduled recordings, each with a Cancel button.
    Schedules,
    /// `/timezone [Europe/Berlin]`: show or set the user's time zone.
    TimeZone(Option<String>),
    /// `/clip [ID] [5m]`: the last minutes of a live recording as a file.
    Clip {
        target: JobTarget,
        last: Duration,
    },
}

/// Why a message that looked like a command could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("record needs a link")]
    RecordWithoutUrl,
    #[error("{0}")]
    BadDuration(streambot_core::DurationTextError),
    #[error("{given:?} is not a quality")]
    BadQuality { given: String },
    #[error("{given:?} is not a job id; job ids are 8 characters like A3F2B1C9")]
    BadJobId { given: String },
    #[error("{given:?} is not a Telegram user id")]
    BadUserId { given: String },
    #[error("unknown admin command {given:?}")]
    UnknownAdminCommand { given: String },
    /// "at 25:00", "at 20:75", "at 13pm".
    #[error("{given:?} is not a time of day")]
    ImpossibleTime { given: String },
    #[error("{given:?} is not a time zone")]
    UnknownTimeZone { given: String },
    /// "every Friday" without "at 20:00".
    #[error("a repeating recording needs a time of day")]
    RepeatWithoutTime,
    /// "tomorrow" without a time.
    #[error("a day needs a time of day")]
    DayWithoutTime { given: String },
    /// Two different answers to one question ("at 20:00 … at 21:00", "in German … in French").
    #[error("{first:?} and {second:?} contradict each other")]
    Contradiction { first: String, second: String },
    /// A clip longer than the longest one, or zero.
    #[error("clips are 1 s to {maximum_minutes} min long")]
    ClipLength { maximum_minutes: u64 },
    /// "every Feb 30 at 20:00", "every 2 hours at 20:00": a repetition the bot cannot do.
    #[error("{given:?} is not a repetition the bot understands")]
    RepeatNotUnderstood { given: String },
    /// "in 5 minutes": a start later needs a clock time.
    #[error("{given:?}: a later start needs a time of day")]
    StartInNotSupported { given: String },
    /// "until 22:00" without a start time.
    #[error("{given:?} needs a start time")]
    EndWithoutStart { given: String },
}

/// The result of reading one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedMessage {
    Command(BotCommand),
    /// It was a command, but something in it is wrong: say what.
    Invalid(CommandError),
    /// A slash command that is one typo away from a real one (`/recrod <link>`).
    DidYouMean {
        command: &'static str,
        /// The links in the message, offered on buttons.
        urls: Vec<String>,
    },
    /// Not a command at all: answer with a hint.
    NotUnderstood,
}

/// The slash commands the bot knows, for "did you mean".
const KNOWN_COMMANDS: [&str; 15] = [
    "start", "help", "record", "stop", "pause", "resume", "status", "list", "cancel", "delete",
    "language", "admin", "schedule", "timezone", "clip",
];

const RECORD_WORDS: [&str; 8] = [
    "record", "rec", "capture", "save", "grab", "start", "download", "tape",
];
const STOP_WORDS: [&str; 4] = ["stop", "end", "finish", "halt"];
const PAUSE_WORDS: [&str; 2] = ["pause", "hold"];
const RESUME_WORDS: [&str; 4] = ["resume", "continue", "unpause", "restart"];
const STATUS_WORDS: [&str; 3] = ["status", "progress", "info"];
const LIST_WORDS: [&str; 3] = ["list", "jobs", "recordings"];

/// Splits off a leading `/command` (with an optional `@botname`) in lower case.
fn split_slash_command<'a>(text: &'a str, bot_username: Option<&str>) -> Option<(String, &'a str)> {
    let rest = text.strip_prefix('/')?;
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (word, arguments) = rest.split_at(end);
    let (name, addressed_to) = match word.split_once('@') {
        Some((name, target)) => (name, Some(target)),
        None => (word, None),
    };
    if let (Some(target), Some(username)) = (addressed_to, bot_username)
        && !target.eq_ignore_ascii_case(username.trim_start_matches('@'))
    {
        // A command for another bot in a group.
        return Some((String::new(), arguments));
    }
    Some((name.to_ascii_lowercase(), arguments))
}

fn looks_like_url(token: &str) -> bool {
    link_in_token(token).is_some()
}

/// Top-level domains a link without a scheme and without a path may end in.
const BARE_HOST_DOMAINS: [&str; 16] = [
    "com", "net", "org", "tv", "ru", "io", "me", "live", "be", "co", "uk", "de", "fm", "info",
    "su", "рф",
];

/// The link a token is, with a scheme: `https://` is added to `example.com/live.m3u8`.
pub fn link_in_token(token: &str) -> Option<String> {
    let token = trim_punctuation(token).trim_end_matches(['.', ':']);
    if token.contains("://") {
        return Some(token.to_string());
    }
    if token.contains('@') || token.starts_with('/') {
        return None;
    }
    let (host_and_port, path) = match token.find('/') {
        Some(slash) => token.split_at(slash),
        None => (token, ""),
    };
    let host = match host_and_port.rsplit_once(':') {
        Some((host, port))
            if !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit()) =>
        {
            host
        }
        Some(_) => return None,
        None => host_and_port,
    };
    let labels: Vec<&str> = host.split('.').collect();
    let top_level = labels.last().copied().unwrap_or("").to_lowercase();
    let labels_are_valid = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|character| character.is_alphanumeric() || character == '-')
        });
    let is_ipv4 = labels.len() == 4
        && labels
            .iter()
            .all(|label| !label.is_empty() && label.bytes().all(|byte| byte.is_ascii_digit()));
    let top_level_is_a_name =
        top_level.chars().count() >= 2 && top_level.chars().all(char::is_alphabetic);
    let plausible = is_ipv4
        || (labels_are_valid
            && top_level_is_a_name
            && (path.len() > 1
                || host.to_lowercase().starts_with("www.")
                || BARE_HOST_DOMAINS.contains(&top_level.as_str())));
    plausible.then(|| format!("https://{token}"))
}

/// Edit distance with adjacent transpositions (optimal string alignment).
fn edit_distance(left: &str, right: &str) -> usize {
    let left: Vec<char> = left.chars().collect();
    let right: Vec<char> = right.chars().collect();
    let width = right.len() + 1;
    let mut table = vec![0usize; (left.len() + 1) * width];
    for (row, cell) in table.iter_mut().step_by(width).enumerate() {
        *cell = row;
    }
    for (column, cell) in table.iter_mut().take(width).enumerate() {
        *cell = column;
    }
    for row in 1..=left.len() {
        for column in 1..=right.len() {
            let cost = usize::from(left[row - 1] != right[column - 1]);
            let mut best = (table[(row - 1) * width + column] + 1)
                .min(table[row * width + column - 1] + 1)
                .min(table[(row - 1) * width + column - 1] + cost);
            if row > 1
                && column > 1
                && left[row - 1] == right[column - 2]
                && left[row - 2] == right[column - 1]
            {
                best = best.min(table[(row - 2) * width + column - 2] + 1);
            }
            table[row * width + column] = best;
        }
    }
    table[left.len() * width + right.len()]
}

/// The known command a mistyped one is closest to, if it is close (one or two edits).
fn closest_command(name: &str) -> Option<&'static str> {
    if name.chars().count() < 3 || name.chars().count() > 12 {
        return None;
    }
    let allowed = if name.chars().count() <= 4 { 1 } else { 2 };
    KNOWN_COMMANDS
        .iter()
        .map(|command| (edit_distance(name, command), *command))
        .filter(|(distance, _)| *distance <= allowed)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, command)| command)
}

fn trim_punctuation(token: &str) -> &str {
    token.trim_matches(|character: char| {
        matches!(
            character,
            ',' | '!' | '?' | ';' | '"' | '\'' | '(' | ')' | '<' | '>'
        )
    })
}

/// Words of a message, lower-cased, punctuation trimmed, contractions split ("what's" → "what").
fn words_of(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|token| {
            let trimmed = trim_punctuation(token);
            let lowered = trimmed.to_lowercase();
            match lowered.split_once('\'') {
                Some((head, _)) => head.to_string(),
                None => match lowered.split_once('’') {
                    Some((head, _)) => head.to_string(),
                    None => lowered,
                },
            }
        })
        .filter(|word| !word.is_empty())
        .collect()
}

/// Links read from one message; a post with more is cut there (one button each at most).
pub const MAXIMUM_LINKS_PER_MESSAGE: usize = 10;

/// Messages longer than this (outside the links) are posts, not requests: bare numbers and loose
/// quality words in them are not read as options.
const SHORT_REQUEST_WORDS: usize = 8;

/// Reads quality out of the words left after links and time phrases.
fn read_quality(words: &[String], short: bool) -> Result<Quality, CommandError> {
    let mut quality = Quality::Best;
    let mut index = 0;
    while let Some(word) = words.get(index).map(String::as_str) {
        let next = words.get(index + 1).map(String::as_str);
        index += 1;
        let audio_word = matches!(
            word,
            "audio" | "sound" | "music" | "audio-only" | "audioonly" | "звук" | "аудио"
        );
        if audio_word && (short || next == Some("only")) {
            quality = Quality::Audio;
            continue;
        }
        let starts_with_digit = word
            .chars()
            .next()
            .is_some_and(|first| first.is_ascii_digit());
        if let Ok(parsed) = word.parse::<Quality>() {
            let is_bare_number = word.bytes().all(|byte| byte.is_ascii_digit());
            if !is_bare_number && (short || starts_with_digit) {
                quality = parsed;
                continue;
            }
        }
        if starts_with_digit && short {
            if word.ends_with('p') {
                return Err(CommandError::BadQuality {
                    given: word.to_string(),
                });
            }
            return Err(CommandError::BadDuration(
                streambot_core::DurationTextError::Unrecognised {
                    given: word.to_string(),
                },
            ));
        }
    }
    Ok(quality)
}

/// A word with punctuation around it removed, lower case ("Start." → "start", "20:00" stays).
fn bare_word(token: &str) -> String {
    token
        .trim_matches(|character: char| !character.is_alphanumeric())
        .to_lowercase()
}

const WAIT_WORDS: [&str; 9] = [
    "wait",
    "waiting",
    "ждать",
    "жди",
    "подожди",
    "подождать",
    "ожидать",
    "ожидание",
    "ждём",
];
/// Words between "wait" and its duration: "wait up to 6 h", "wait for at most 1 h".
const WAIT_FILLER_WORDS: [&str; 13] = [
    "up",
    "to",
    "for",
    "until",
    "max",
    "maximum",
    "at",
    "most",
    "до",
    "на",
    "не",
    "более",
    "максимум",
];
const SUBTITLE_WORDS: [&str; 12] = [
    "subtitles",
    "subtitle",
    "subs",
    "sub",
    "captions",
    "cc",
    "субтитры",
    "субтитрами",
    "субтитров",
    "субтитр",
    "сабы",
    "сабами",
];
const AUDIO_WORDS: [&str; 9] = [
    "audio",
    "sound",
    "dub",
    "voice",
    "track",
    "аудио",
    "звук",
    "озвучка",
    "озвучкой",
];
/// Words that say the next words name a language: "in German", "на немецком".
const IN_WORDS: [&str; 3] = ["in", "на", "language"];
const ALL_WORDS: [&str; 6] = ["all", "every", "все", "всеми", "всех", "всё"];
const NO_WORDS: [&str; 5] = ["no", "without", "w/o", "без", "nosubs"];
/// Words before an end time: "from 20:00 to 22:00", "с 20:00 до 22:00".
const END_WORDS: [&str; 4] = ["to", "until", "till", "до"];
/// Words that say a clock reading is a time ("at 25:00").
const CLOCK_MARKERS: [&str; 13] = [
    "to",
    "until",
    "till",
    "до",
    "с",
    "at",
    "@",
    "в",
    "tomorrow",
    "today",
    "tonight",
    "завтра",
    "сегодня",
];
/// Words that start a repetition; left unread after the schedule words, they were not understood.
const EVERY_WORDS_FOR_REFUSAL: [&str; 7] = [
    "every",
    "each",
    "каждый",
    "каждую",
    "каждое",
    "каждая",
    "каждые",
];
const TODAY_WORDS: [&str; 4] = ["today", "tonight", "сегодня", "вечером"];
const DAY_NAME_WORDS: [&str; 5] = ["tomorrow", "today", "tonight", "завтра", "сегодня"];
/// Short words that are never language codes, though they look like one.
const NOT_LANGUAGE_CODES: [&str; 14] = [
    "in", "on", "at", "to", "of", "and", "the", "for", "all", "only", "a", "an", "or", "is",
];

/// Words whose misspellings are read as them: one edit away (six letters or more), two (eight or
/// more).
const WORDS_WITH_COMMON_TYPOS: [&str; 13] = [
    "tomorrow",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "subtitles",
    "minutes",
    "seconds",
    "beginning",
    "everyday",
];
/// Short misspellings, spelled out (an edit-distance rule would turn real words into keywords).
const SHORT_TYPOS: [(&str, &str); 8] = [
    ("evry", "every"),
    ("evrey", "every"),
    ("eveyr", "every"),
    ("tmrw", "tomorrow"),
    ("tmr", "tomorrow"),
    ("tomoro", "tomorrow"),
    ("tommorow", "tomorrow"),
    ("subs", "subtitles"),
];

/// The keyword a misspelt word means ("tomorow", "firday", "subtitels"), or the token as it was.
fn corrected_token(token: &str) -> String {
    let word = bare_word(token);
    if let Some((_, keyword)) = SHORT_TYPOS.iter().find(|(typo, _)| *typo == word) {
        return keyword.to_string();
    }
    let length = word.chars().count();
    if length < 6 || !word.chars().all(char::is_alphabetic) {
        return token.to_string();
    }
    let allowed = if length >= 8 { 2 } else { 1 };
    WORDS_WITH_COMMON_TYPOS
        .iter()
        .map(|keyword| (edit_distance(&word, keyword), *keyword))
        .filter(|(distance, _)| *distance > 0 && *distance <= allowed)
        .min_by_key(|(distance, _)| *distance)
        .map_or_else(|| token.to_string(), |(_, keyword)| keyword.to_string())
}

/// A language after "subtitles"/"audio": a name ("German", "немецком") or a short code ("de").
fn language_in_word(word: &str) -> Option<String> {
    if let Some(code) = language_code_from_name(word) {
        return Some(code.to_string());
    }
    let is_code_shaped =
        (2..=3).contains(&word.chars().count()) || (word.len() <= 8 && word.contains('-'));
    if is_code_shaped && !NOT_LANGUAGE_CODES.contains(&word) {
        return parse_language_tag(word);
    }
    None
}

/// "25:00", "20:75", "13pm": a clock reading that no day has.
fn impossible_clock(word: &str, next: Option<&str>) -> bool {
    let numbers: Vec<&str> = word.split(':').collect();
    if let [hour, minute] = numbers.as_slice()
        && let (Ok(hour), Ok(minute)) = (hour.parse::<u32>(), minute.parse::<u32>())
        && minute.to_string().len() <= 2
    {
        return hour >= 24 || minute >= 60;
    }
    let (digits, meridiem) = match word.find(|character: char| !character.is_ascii_digit()) {
        Some(split) => word.split_at(split),
        None => (word, next.unwrap_or("")),
    };
    matches!(meridiem, "am" | "pm")
        && digits
            .parse::<u32>()
            .is_ok_and(|hour| hour == 0 || hour > 12)
}

/// The first part of IANA zone names ("Europe/Berlin"): a token starting with one is a zone.
const ZONE_AREAS: [&str; 15] = [
    "africa",
    "america",
    "antarctica",
    "arctic",
    "asia",
    "atlantic",
    "australia",
    "europe",
    "indian",
    "pacific",
    "etc",
    "us",
    "canada",
    "brazil",
    "mexico",
];

/// A token that is meant as a time zone: `Europe/Berlin`, `America/New_York`, `UTC`.
fn time_zone_token(token: &str) -> Option<String> {
    let trimmed = token.trim_matches(|character: char| {
        matches!(
            character,
            ',' | '!' | '?' | ';' | '.' | '(' | ')' | '"' | '\''
        )
    });
    let area = trimmed.split('/').next().unwrap_or("").to_lowercase();
    let looks_like_zone = trimmed.contains('/')
        && ZONE_AREAS.contains(&area.as_str())
        && trimmed
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || "/_-+".contains(character));
    let lowered = trimmed.to_lowercase();
    // "UTC", "GMT+3", "utc-05:00".
    let is_utc = ["utc", "gmt"].contains(&lowered.as_str())
        || (["utc+", "utc-", "gmt+", "gmt-"]
            .iter()
            .any(|prefix| lowered.starts_with(prefix))
            && lowered
                .chars()
                .skip(4)
                .all(|character| character.is_ascii_digit() || character == ':'));
    (looks_like_zone || is_utc).then(|| trimmed.to_string())
}

/// Sets an answer once; a different second answer is a contradiction.
fn set_once<T: PartialEq + Clone>(
    slot: &mut Option<(T, String)>,
    value: T,
    said: String,
) -> Result<(), CommandError> {
    match slot {
        Some((existing, first)) if *existing != value => Err(CommandError::Contradiction {
            first: first.clone(),
            second: said,
        }),
        Some(_) => Ok(()),
        None => {
            *slot = Some((value, said));
            Ok(())
        }
    }
}

/// The words `first..end` of `tokens` as the user wrote them.
fn said(tokens: &[&str], first: usize, end: usize) -> String {
    tokens
        .get(first..end.min(tokens.len()))
        .unwrap_or(&[])
        .join(" ")
}

/// What the words other than links, durations and quality ask for.
#[derive(Default)]
struct RequestOptions {
    wait_for_live: Option<Duration>,
    from_start: bool,
    subtitles: Option<(SubtitleChoice, String)>,
    audio_language: Option<(String, String)>,
    all_audio: bool,
}

/// Reads "from the start", subtitles, audio language and "all audio" out of `lowered` (aligned
/// with the message's words), marking the words it used.
fn read_request_options(
    tokens: &[&str],
    lowered: &[String],
    covered: &mut [bool],
    options: &mut RequestOptions,
) -> Result<(), CommandError> {
    let word = |index: usize| lowered.get(index).map(String::as_str).unwrap_or("");
    let cover = |covered: &mut [bool], range: std::ops::Range<usize>| {
        for index in range {
            if let Some(flag) = covered.get_mut(index) {
                *flag = true;
            }
        }
    };
    for index in 0..lowered.len() {
        if covered.get(index).copied().unwrap_or(true) {
            continue;
        }
        let current = word(index);
        // "from the start", "from the beginning", "from start", "с начала", "сначала".
        let from_start_length = match (current, word(index + 1), word(index + 2)) {
            ("from", "the", "start" | "beginning") => 3,
            ("from", "start" | "beginning", _) | ("с", "начала", _) | ("от", "начала", _) => {
                2
            }
            ("сначала" | "from-start" | "fromstart", _, _) => 1,
            _ => 0,
        };
        if from_start_length > 0 {
            options.from_start = true;
            cover(covered, index..index + from_start_length);
            continue;
        }
        if SUBTITLE_WORDS.contains(&current) {
            let mut first = index;
            let mut end = index + 1;
            let mut choice = SubtitleChoice::All;
            let before = index.checked_sub(1).map(word).unwrap_or("");
            if NO_WORDS.contains(&before) {
                choice = SubtitleChoice::None;
                first = index - 1;
            } else if ALL_WORDS.contains(&before) {
                first = index - 1;
            } else if let Some(language) = language_code_from_name(before) {
                choice = SubtitleChoice::Language(language.to_string());
                first = index - 1;
            } else if ["with", "с", "plus", "+", "and"].contains(&before) {
                first = index - 1;
            }
            if choice == SubtitleChoice::All {
                let mut next = index + 1;
                if IN_WORDS.contains(&word(next)) {
                    next += 1;
                }
                if ALL_WORDS.contains(&word(next)) {
                    end = next + 1;
                } else if let Some(language) = language_in_word(word(next)) {
                    choice = SubtitleChoice::Language(language);
                    end = next + 1;
                }
            }
            set_once(&mut options.subtitles, choice, said(tokens, first, end))?;
            cover(covered, first..end);
            continue;
        }
        if AUDIO_WORDS.contains(&current) || current == "tracks" || current == "дорожки" {
            let before = index.checked_sub(1).map(word).unwrap_or("");
            let next = word(index + 1);
            if ALL_WORDS.contains(&before) {
                options.all_audio = true;
                let end = if ["tracks", "languages", "дорожки"].contains(&next) {
                    index + 2
                } else {
                    index + 1
                };
                cover(covered, index - 1..end);
                continue;
            }
            if let Some(language) = language_code_from_name(before) {
                set_once(
                    &mut options.audio_language,
                    language.to_string(),
                    said(tokens, index - 1, index + 1),
                )?;
                cover(covered, index - 1..index + 1);
                continue;
            }
            let mut language_at = index + 1;
            if IN_WORDS.contains(&word(language_at)) {
                language_at += 1;
            }
            if let Some(language) = language_in_word(word(language_at)) {
                set_once(
                    &mut options.audio_language,
                    language,
                    said(tokens, index, language_at + 1),
                )?;
                cover(covered, index..language_at + 1);
            }
            continue;
        }
        // "in German", "на немецком", "in english language".
        if IN_WORDS.contains(&current)
            && let Some(language) = language_code_from_name(word(index + 1))
        {
            let end = if ["language", "языке"].contains(&word(index + 2)) {
                index + 3
            } else {
                index + 2
            };
            set_once(
                &mut options.audio_language,
                language.to_string(),
                said(tokens, index, end),
            )?;
            cover(covered, index..end);
            continue;
        }
        if ALL_WORDS.contains(&current) && ["languages", "языки"].contains(&word(index + 1)) {
            options.all_audio = true;
            cover(covered, index..index + 2);
        }
    }
    Ok(())
}

fn parse_record(text_after_command: &str, linked_urls: &[String]) -> ParsedMessage {
    match read_record_request(text_after_command, linked_urls) {
        Ok(request) => ParsedMessage::Command(BotCommand::Record(request)),
        Err(error) => ParsedMessage::Invalid(error),
    }
}

fn read_record_request(
    text_after_command: &str,
    linked_urls: &[String],
) -> Result<RecordRequest, CommandError> {
    let tokens: Vec<&str> = text_after_command.split_whitespace().collect();
    let mut urls: Vec<String> = Vec::new();
    let mut corrected: Vec<String> = Vec::new();
    for token in &tokens {
        match link_in_token(token) {
            Some(url) => urls.push(url),
            None => corrected.push(corrected_token(token)),
        }
    }
    let rest: Vec<&str> = corrected.iter().map(String::as_str).collect();
    for url in linked_urls {
        urls.push(url.clone());
    }
    let mut unique = Vec::new();
    for url in urls {
        if !unique.contains(&url) && unique.len() < MAXIMUM_LINKS_PER_MESSAGE {
            unique.push(url);
        }
    }
    if unique.is_empty() {
        return Err(CommandError::RecordWithoutUrl);
    }
    let rest_text = rest.join(" ");
    let short = words_of(&rest_text).len() <= SHORT_REQUEST_WORDS;
    let lowered: Vec<String> = rest.iter().map(|token| bare_word(token)).collect();
    let mut covered = vec![false; rest.len()];
    let cover = |covered: &mut Vec<bool>, range: std::ops::Range<usize>| {
        for index in range {
            if let Some(flag) = covered.get_mut(index) {
                *flag = true;
            }
        }
    };
    // Clock readings no day has, and time zones, before anything reads them as durations.
    let mut time_zone = None;
    for (index, token) in rest.iter().enumerate() {
        let previous = index.checked_sub(1).and_then(|before| lowered.get(before));
        let marked = previous.is_some_and(|word| CLOCK_MARKERS.contains(&word.as_str()));
        let next = lowered.get(index + 1).map(String::as_str);
        if (marked || token.ends_with("am") || token.ends_with("pm"))
            && impossible_clock(&bare_word(token), next)
        {
            return Err(CommandError::ImpossibleTime {
                given: bare_word(token),
            });
        }
        if let Some(zone) = time_zone_token(token) {
            let zone = parse_time_zone(&zone).map_err(|_| CommandError::UnknownTimeZone {
                given: zone.chars().take(64).collect(),
            })?;
            set_once(&mut time_zone, zone.name().to_string(), token.to_string())?;
            cover(&mut covered, index..index + 1);
        }
    }
    // "from 20:00 to 22:00", "at 20:00 until 22:00", "с 20:00 до 22:00": an end time, not 22
    // minutes.
    let mut ends_at: Option<(u32, String)> = None;
    for (index, word) in lowered.iter().enumerate() {
        let Some(reading) = lowered.get(index + 1) else {
            continue;
        };
        // "wait up to 1:30", "ждать до 1:30": how long to wait, read below.
        let after_wait = (index.saturating_sub(2)..index).any(|before| {
            lowered
                .get(before)
                .is_some_and(|word| WAIT_WORDS.contains(&word.as_str()) || word == "up")
        });
        if !END_WORDS.contains(&word.as_str()) || after_wait {
            continue;
        }
        if let Some((hour, minute)) = reading.split_once(':')
            && let (Ok(hour), Ok(minute)) = (hour.parse::<u32>(), minute.parse::<u32>())
            && hour < 24
            && minute < 60
        {
            set_once(
                &mut ends_at,
                hour * 60 + minute,
                said(&rest, index, index + 2),
            )?;
            cover(&mut covered, index..index + 2);
        }
    }
    let phrases = find_time_phrases(&rest_text);
    let mut options = RequestOptions::default();
    let mut duration: Option<(Duration, String)> = None;
    let mut starts_at: Option<(TimeOfDay, String)> = None;
    for phrase in &phrases {
        if covered.get(phrase.first_word).copied().unwrap_or(false) {
            continue;
        }
        let is_bare_number = phrase.end_word == phrase.first_word + 1
            && rest.get(phrase.first_word).is_some_and(|word| {
                trim_punctuation(word)
                    .bytes()
                    .all(|byte| byte.is_ascii_digit() || byte == b'.')
            });
        // "wait up to 6 h": the duration belongs to waiting, with the words before it.
        let mut wait_word = None;
        let mut before = phrase.first_word;
        while let Some(previous) = before.checked_sub(1) {
            let word = lowered.get(previous).map(String::as_str).unwrap_or("");
            if WAIT_WORDS.contains(&word) {
                wait_word = Some(previous);
                break;
            }
            if !WAIT_FILLER_WORDS.contains(&word) || phrase.first_word - previous > 4 {
                break;
            }
            before = previous;
        }
        if is_bare_number && !short && wait_word.is_none() {
            continue;
        }
        // "in 5 minutes", "через 10 минут": a start later, which needs a clock time; recording
        // five minutes now would be the wrong thing, silently.
        if wait_word.is_none()
            && matches!(phrase.meaning, TimeMeaning::Duration(_))
            && let Some(before) = phrase.first_word.checked_sub(1)
            && lowered
                .get(before)
                .is_some_and(|word| ["in", "через"].contains(&word.as_str()))
        {
            return Err(CommandError::StartInNotSupported {
                given: said(&rest, before, phrase.end_word),
            });
        }
        let first = wait_word.unwrap_or(phrase.first_word);
        cover(&mut covered, first..phrase.end_word);
        let phrase_text = said(&rest, phrase.first_word, phrase.end_word);
        match &phrase.meaning {
            TimeMeaning::Duration(found) if wait_word.is_some() => {
                options.wait_for_live = Some(*found);
            }
            TimeMeaning::Duration(found) => {
                if let Some((existing, first_said)) = &duration
                    && existing != found
                    && short
                    && !is_bare_number
                {
                    return Err(CommandError::Contradiction {
                        first: first_said.clone(),
                        second: phrase_text,
                    });
                }
                duration.get_or_insert((*found, phrase_text));
            }
            TimeMeaning::TimeOfDay(time) => {
                set_once(&mut starts_at, *time, phrase_text)?;
            }
            TimeMeaning::Invalid(error) if (duration.is_none() && short) || wait_word.is_some() => {
                return Err(CommandError::BadDuration(error.clone()));
            }
            TimeMeaning::Invalid(_) => {}
        }
    }
    // A bare "wait" (with the default wait) is understood too.
    for (index, word) in lowered.iter().enumerate() {
        if WAIT_WORDS.contains(&word.as_str()) {
            cover(&mut covered, index..index + 1);
        }
    }
    if let Some((end_minute, end_said)) = ends_at {
        let Some((start_time, _)) = &starts_at else {
            return Err(CommandError::EndWithoutStart { given: end_said });
        };
        let start_minute = u32::from(start_time.hour) * 60 + u32::from(start_time.minute);
        let minutes = (i64::from(end_minute) - i64::from(start_minute)).rem_euclid(24 * 60);
        if minutes == 0 {
            return Err(CommandError::BadDuration(DurationTextError::Zero {
                given: end_said,
            }));
        }
        let until_end = Duration::from_secs(minutes.unsigned_abs() * 60);
        if let Some((existing, first_said)) = &duration
            && *existing != until_end
        {
            return Err(CommandError::Contradiction {
                first: first_said.clone(),
                second: end_said,
            });
        }
        duration = Some((until_end, end_said));
    }
    read_request_options(&rest, &lowered, &mut covered, &mut options)?;
    let mut start = None;
    if let Some((time, _)) = starts_at {
        let mut on_weekday = None;
        let recurrence = match find_schedule_words(&rest_text) {
            Some(words) => {
                on_weekday = words.on_weekday;
                for index in &words.used_words {
                    // Only the weekday words: durations and times were read above.
                    if lowered.get(*index).is_some_and(|word| {
                        parse_weekday(word).is_some()
                            || [
                                "every",
                                "each",
                                "daily",
                                "everyday",
                                "day",
                                "ежедневно",
                                "каждый",
                                "каждую",
                                "каждое",
                                "каждая",
                                "по",
                                "день",
                                "дням",
                                "and",
                                "и",
                                "каждые",
                            ]
                            .contains(&word.as_str())
                            || WORKING_DAY_WORDS.contains(&word.as_str())
                            || WEEKEND_WORDS.contains(&word.as_str())
                    }) {
                        cover(&mut covered, *index..*index + 1);
                    }
                }
                words.recurrence
            }
            None => Recurrence::Once,
        };
        // "every Feb 30", "every 2 hours", "каждый месяц": a repetition that was not understood
        // is said, not silently recorded once.
        if let Some(index) = lowered.iter().enumerate().position(|(index, word)| {
            short
                && EVERY_WORDS_FOR_REFUSAL.contains(&word.as_str())
                && !covered.get(index).copied().unwrap_or(true)
        }) {
            return Err(CommandError::RepeatNotUnderstood {
                given: said(&rest, index, (index + 3).min(rest.len())),
            });
        }
        let today = lowered
            .iter()
            .any(|word| TODAY_WORDS.contains(&word.as_str()));
        // "today … tomorrow": two days, not whichever is read first.
        let day_named = |days: &[&str]| {
            lowered
                .iter()
                .position(|word| days.contains(&word.as_str()))
                .map(|index| said(&rest, index, index + 1))
        };
        if let (Some(today_said), Some(tomorrow_said)) = (
            day_named(&["today", "сегодня"]),
            day_named(&["tomorrow", "завтра"]),
        ) {
            return Err(CommandError::Contradiction {
                first: today_said,
                second: tomorrow_said,
            });
        }
        start = Some(RequestedStart {
            time,
            recurrence,
            today: today && !time.tomorrow,
            time_zone: time_zone.map(|(zone, _)| zone),
            on_weekday,
        });
    } else if short {
        // "every Friday", "tomorrow" without a time: say so rather than record now.
        for (index, word) in lowered.iter().enumerate() {
            let next = lowered.get(index + 1).map(String::as_str).unwrap_or("");
            let repeats = ["daily", "ежедневно"].contains(&word.as_str())
                || (EVERY_WORDS_FOR_REFUSAL.contains(&word.as_str())
                    && (parse_weekday(next).is_some()
                        || ["day", "день"].contains(&next)
                        || WORKING_DAY_WORDS.contains(&next)
                        || WEEKEND_WORDS.contains(&next)))
                || (word == "по"
                    && (WORKING_DAY_WORDS.contains(&next) || WEEKEND_WORDS.contains(&next)));
            if repeats {
                return Err(CommandError::RepeatWithoutTime);
            }
            // "every 2 hours": not a duration to record now.
            if EVERY_WORDS_FOR_REFUSAL.contains(&word.as_str())
                && next.starts_with(|character: char| character.is_ascii_digit())
            {
                return Err(CommandError::RepeatNotUnderstood {
                    given: said(&rest, index, (index + 3).min(rest.len())),
                });
            }
            if DAY_NAME_WORDS.contains(&word.as_str()) {
                return Err(CommandError::DayWithoutTime {
                    given: rest
                        .get(index)
                        .map_or(String::new(), |token| token.to_string()),
                });
            }
        }
    }
    let leftover: Vec<&str> = rest
        .iter()
        .zip(covered)
        .filter(|(_, covered)| !covered)
        .map(|(word, _)| *word)
        .collect();
    let quality = read_quality(&words_of(&leftover.join(" ")), short)?;
    Ok(RecordRequest {
        urls: unique,
        duration: duration.map(|(duration, _)| duration),
        quality,
        start,
        wait_for_live: options.wait_for_live,
        from_start: options.from_start,
        subtitles: options
            .subtitles
            .map(|(choice, _)| choice)
            .unwrap_or_default(),
        audio_language: options.audio_language.map(|(language, _)| language),
        all_audio: options.all_audio,
    })
}

/// `/clip [ID] [5m]`: which job, and how much of its end (default 5 min, at most an hour).
fn parse_clip(arguments: &str) -> ParsedMessage {
    let tokens: Vec<&str> = arguments.split_whitespace().collect();
    let id_position = tokens
        .iter()
        .position(|token| bare_word(token).parse::<JobId>().is_ok());
    let mut last = None;
    let mut in_phrase = vec![false; tokens.len()];
    for phrase in find_time_phrases(arguments) {
        if id_position
            .is_some_and(|position| (phrase.first_word..phrase.end_word).contains(&position))
        {
            continue;
        }
        for flag in in_phrase
            .iter_mut()
            .take(phrase.end_word)
            .skip(phrase.first_word)
        {
            *flag = true;
        }
        match phrase.meaning {
            TimeMeaning::Duration(found) => {
                last.get_or_insert(found);
            }
            // "/clip ID 0m", "/clip ID 99999m": the clip's own limits, not a recording's.
            TimeMeaning::Invalid(
                DurationTextError::Zero { .. } | DurationTextError::TooLong { .. },
            ) => {
                return ParsedMessage::Invalid(CommandError::ClipLength {
                    maximum_minutes: MAXIMUM_CLIP_DURATION.as_secs() / 60,
                });
            }
            TimeMeaning::Invalid(error) => {
                return ParsedMessage::Invalid(CommandError::BadDuration(error));
            }
            TimeMeaning::TimeOfDay(_) => {}
        }
    }
    let last = last.unwrap_or(DEFAULT_CLIP_DURATION);
    if last > MAXIMUM_CLIP_DURATION {
        return ParsedMessage::Invalid(CommandError::ClipLength {
            maximum_minutes: MAXIMUM_CLIP_DURATION.as_secs() / 60,
        });
    }
    let words: Vec<String> = tokens
        .iter()
        .enumerate()
        .filter(|(position, _)| !in_phrase.get(*position).copied().unwrap_or(false))
        .map(|(_, token)| bare_word(token))
        .collect();
    match parse_job_target(&words) {
        Ok(target) => ParsedMessage::Command(BotCommand::Clip { target, last }),
        Err(error) => ParsedMessage::Invalid(error),
    }
}

fn parse_job_target(words: &[String]) -> Result<JobTarget, CommandError> {
    for word in words {
        if let Ok(id) = word.parse::<JobId>() {
            return Ok(JobTarget::Id(id));
        }
    }
    // A word that looks like an attempt at an id (8 chars with digits) is a mistake worth naming.
    if let Some(attempt) = words.iter().find(|word| {
        word.len() >= 6 && word.len() <= 10 && word.chars().any(|c| c.is_ascii_digit())
    }) {
        return Err(CommandError::BadJobId {
            given: attempt.to_uppercase(),
        });
    }
    Ok(JobTarget::Unspecified)
}

fn control(words: &[String], make: fn(JobTarget) -> BotCommand) -> ParsedMessage {
    match parse_job_target(words) {
        Ok(target) => ParsedMessage::Command(make(target)),
        Err(error) => ParsedMessage::Invalid(error),
    }
}

fn parse_admin(words: &[String]) -> ParsedMessage {
    let subcommand = words.first().map(String::as_str).unwrap_or("");
    let argument = words.get(1).map(String::as_str).unwrap_or("");
    let user_id = || {
        argument
            .parse::<i64>()
            .map_err(|_| CommandError::BadUserId {
                given: argument.to_string(),
            })
    };
    let command = match subcommand {
        "help" | "?" => Ok(AdminCommand::Help),
        "" | "stats" | "overview" => Ok(AdminCommand::Overview),
        "jobs" | "all" | "list" => Ok(AdminCommand::AllJobs),
        "stop" => argument
            .parse::<JobId>()
            .map(AdminCommand::StopAny)
            .map_err(|_| CommandError::BadJobId {
                given: argument.to_uppercase(),
            }),
        "vip" | "addvip" | "add-vip" => user_id().map(AdminCommand::AddVip),
        "unvip" | "removevip" | "remove-vip" => user_id().map(AdminCommand::RemoveVip),
        other => Err(CommandError::UnknownAdminCommand {
            given: other.to_string(),
        }),
    };
    match command {
        Ok(command) => ParsedMessage::Command(BotCommand::Admin(command)),
        Err(error) => ParsedMessage::Invalid(error),
    }
}

/// Reads one message. `bot_username` lets `/stop@OtherBot` in a group be ignored.
pub fn parse_message(text: &str, bot_username: Option<&str>) -> ParsedMessage {
    parse_message_with_links(text, &[], bot_username)
}

/// Reads one message whose entities carry links the text does not show (`text_link`).
pub fn parse_message_with_links(
    text: &str,
    linked_urls: &[String],
    bot_username: Option<&str>,
) -> ParsedMessage {
    let text = text.trim();
    if text.is_empty() {
        if !linked_urls.is_empty() {
            return parse_record("", linked_urls);
        }
        return ParsedMessage::NotUnderstood;
    }
    if let Some((name, arguments)) = split_slash_command(text, bot_username) {
        let words = words_of(arguments);
        return match name.as_str() {
            "" => ParsedMessage::NotUnderstood,
            "start" => ParsedMessage::Command(BotCommand::Start),
            "help" => ParsedMessage::Command(BotCommand::Help),
            "record" | "rec" => parse_record(arguments, linked_urls),
            "stop" => control(&words, BotCommand::Stop),
            "pause" => control(&words, BotCommand::Pause),
            "resume" => control(&words, BotCommand::Resume),
            "status" => control(&words, BotCommand::Status),
            "list" | "jobs" => ParsedMessage::Command(BotCommand::List),
            "cancel" => control(&words, BotCommand::Cancel),
            "delete" | "remove" => control(&words, BotCommand::Delete),
            "admin" => parse_admin(&words),
            "language" | "lang" | "язык" => {
                ParsedMessage::Command(BotCommand::Language(words.first().cloned()))
            }
            "schedule" | "schedules" | "scheduled" | "расписание" => {
                ParsedMessage::Command(BotCommand::Schedules)
            }
            "timezone" | "time_zone" | "tz" | "zone" | "пояс" => ParsedMessage::Command(
                BotCommand::TimeZone(arguments.split_whitespace().next().map(str::to_string)),
            ),
            "clip" | "клип" => parse_clip(arguments),
            other => match closest_command(other) {
                Some(command) => ParsedMessage::DidYouMean {
                    command,
                    urls: match parse_record(arguments, linked_urls) {
                        ParsedMessage::Command(BotCommand::Record(request)) => request.urls,
                        _ => Vec::new(),
                    },
                },
                None => ParsedMessage::NotUnderstood,
            },
        };
    }
    parse_plain_english(text, linked_urls)
}

fn parse_plain_english(text: &str, linked_urls: &[String]) -> ParsedMessage {
    let words = words_of(text);
    let has_url = !linked_urls.is_empty() || text.split_whitespace().any(looks_like_url);
    let contains =
        |candidates: &[&str]| words.iter().any(|word| candidates.contains(&word.as_str()));
    let first_word = words.first().map(String::as_str).unwrap_or("");

    if has_url {
        // A link with or without "record": record it (a link is what people send to this bot).
        return parse_record(text, linked_urls);
    }
    if contains(&["schedule", "schedules", "scheduled", "расписание"]) && !contains(&STOP_WORDS)
    {
        return ParsedMessage::Command(BotCommand::Schedules);
    }
    if matches!(first_word, "clip" | "клип") {
        let arguments = text
            .split_once(char::is_whitespace)
            .map_or("", |(_, rest)| rest);
        return parse_clip(arguments);
    }
    if contains(&["timezone", "часовой"]) || (contains(&["time"]) && contains(&["zone"])) {
        // Whatever looks like a zone name is checked by the handler, which names a wrong one.
        let zone = text
            .split_whitespace()
            .map(|token| token.trim_matches(|character: char| ",.!?;()\"'".contains(character)))
            .find(|token| token.contains('/') || time_zone_token(token).is_some())
            .map(str::to_string);
        return ParsedMessage::Command(BotCommand::TimeZone(zone));
    }
    // Questions about what is going on.
    let asks_what = contains(&["what", "which", "whats", "show"]);
    if (asks_what && contains(&["recording", "running", "jobs", "going"]))
        || (contains(&LIST_WORDS) && !contains(&STOP_WORDS))
    {
        return ParsedMessage::Command(BotCommand::List);
    }
    if STOP_WORDS.contains(&first_word) || (contains(&STOP_WORDS) && contains(&["recording", "it"]))
    {
        return control(&words, BotCommand::Stop);
    }
    if PAUSE_WORDS.iter().any(|word| contains(&[word])) {
        return control(&words, BotCommand::Pause);
    }
    if RESUME_WORDS.iter().any(|word| contains(&[word])) {
        return control(&words, BotCommand::Resume);
    }
    if STATUS_WORDS.iter().any(|word| contains(&[word]))
        || (contains(&["how"]) && contains(&["going", "doing"]))
    {
        return control(&words, BotCommand::Status);
    }
    if contains(&["help", "how", "commands"]) || contains(&["hi", "hello", "hey"]) {
        return ParsedMessage::Command(BotCommand::Help);
    }
    if first_word == "cancel" {
        return control(&words, BotCommand::Cancel);
    }
    if matches!(first_word, "delete" | "remove") {
        return control(&words, BotCommand::Delete);
    }
    if RECORD_WORDS.contains(&first_word) {
        return ParsedMessage::Invalid(CommandError::RecordWithoutUrl);
    }
    // A bare job id: its status.
    if words.len() == 1
        && let Ok(id) = first_word.parse::<JobId>()
    {
        return ParsedMessage::Command(BotCommand::Status(JobTarget::Id(id)));
    }
    ParsedMessage::NotUnderstood
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(url: &str, duration_seconds: Option<u64>, quality: Quality) -> ParsedMessage {
        ParsedMessage::Command(BotCommand::Record(RecordRequest {
            urls: vec![url.to_string()],
            duration: duration_seconds.map(Duration::from_secs),
            quality,
            ..RecordRequest::default()
        }))
    }

    fn id(text: &str) -> JobId {
        text.parse().expect("valid id")
    }

    #[test]
    fn slash_commands() {
        let url = "https://x.example/live.m3u8";
        assert_eq!(
            parse_message(&format!("/record {url} 2h high"), None),
            record(url, Some(7200), Quality::High)
        );
        assert_eq!(
            parse_message(&format!("/record {url}"), None),
            record(url, None, Quality::Best)
        );
        assert_eq!(
            parse_message(
                &format!("/record@StreamBot {url} 90 720p"),
                Some("StreamBot")
            ),
            record(url, Some(5400), Quality::Height(720))
        );
        assert_eq!(
            parse_message(&format!("/record {url} audio"), None),
            record(url, None, Quality::Audio)
        );
        assert_eq!(
            parse_message("/record@OtherBot https://a/b.m3u8", Some("StreamBot")),
            ParsedMessage::NotUnderstood
        );
        assert_eq!(
            parse_message("/stop a3f2b1c9", None),
            ParsedMessage::Command(BotCommand::Stop(JobTarget::Id(id("A3F2B1C9"))))
        );
        assert_eq!(
            parse_message("/stop", None),
            ParsedMessage::Command(BotCommand::Stop(JobTarget::Unspecified))
        );
        assert_eq!(
            parse_message("/pause A3F2B1C9", None),
            ParsedMessage::Command(BotCommand::Pause(JobTarget::Id(id("A3F2B1C9"))))
        );
        assert_eq!(
            parse_message("/list", None),
            ParsedMessage::Command(BotCommand::List)
        );
        assert_eq!(
            parse_message("/start", None),
            ParsedMessage::Command(BotCommand::Start)
        );
        assert_eq!(
            parse_message("/help", None),
            ParsedMessage::Command(BotCommand::Help)
        );
        assert_eq!(
            parse_message("/admin vip 12345", None),
            ParsedMessage::Command(BotCommand::Admin(AdminCommand::AddVip(12345)))
        );
        assert_eq!(
            parse_message("/admin stop deadbeef", None),
            ParsedMessage::Command(BotCommand::Admin(AdminCommand::StopAny(id("DEADBEEF"))))
        );
    }

    #[test]
    fn plain_english() {
        let url = "https://x.example/live.m3u8";
        assert_eq!(
            parse_message(&format!("record {url} for 2 hours high quality"), None),
            record(url, Some(7200), Quality::High)
        );
        assert_eq!(
            parse_message(&format!("start recording {url} audio only"), None),
            record(url, None, Quality::Audio)
        );
        assert_eq!(
            parse_message(&format!("record {url} 90 min"), None),
            record(url, Some(5400), Quality::Best)
        );
        assert_eq!(
            parse_message(&format!("please record {url} for an hour in 720p"), None),
            record(url, Some(3600), Quality::Height(720))
        );
        assert_eq!(parse_message(url, None), record(url, None, Quality::Best));
        assert_eq!(
            parse_message(&format!("Record this: {url}, 1h30m, low"), None),
            record(url, Some(5400), Quality::Low)
        );
        assert_eq!(
            parse_message("stop A3F2B1C9", None),
            ParsedMessage::Command(BotCommand::Stop(JobTarget::Id(id("A3F2B1C9"))))
        );
        assert_eq!(
            parse_message("pause it", None),
            ParsedMessage::Command(BotCommand::Pause(JobTarget::Unspecified))
        );
        assert_eq!(
            parse_message("resume it please", None),
            ParsedMessage::Command(BotCommand::Resume(JobTarget::Unspecified))
        );
        assert_eq!(
            parse_message("what's recording?", None),
            ParsedMessage::Command(BotCommand::List)
        );
        assert_eq!(
            parse_message("What is recording right now", None),
            ParsedMessage::Command(BotCommand::List)
        );
        assert_eq!(
            parse_message("how is A3F2B1C9 doing?", None),
            ParsedMessage::Command(BotCommand::Status(JobTarget::Id(id("A3F2B1C9"))))
        );
        assert_eq!(
            parse_message("a3f2b1c9", None),
            ParsedMessage::Command(BotCommand::Status(JobTarget::Id(id("A3F2B1C9"))))
        );
        assert_eq!(
            parse_message("hello", None),
            ParsedMessage::Command(BotCommand::Help)
        );
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(
            parse_message("/record", None),
            ParsedMessage::Invalid(CommandError::RecordWithoutUrl)
        );
        assert_eq!(
            parse_message("record the match tonight", None),
            ParsedMessage::Invalid(CommandError::RecordWithoutUrl)
        );
        assert!(matches!(
            parse_message("/record https://x/a.m3u8 99999h", None),
            ParsedMessage::Invalid(CommandError::BadDuration(_))
        ));
        assert!(matches!(
            parse_message("/record https://x/a.m3u8 5p", None),
            ParsedMessage::Invalid(CommandError::BadQuality { .. })
        ));
        assert!(matches!(
            parse_message("/stop A3F2B1", None),
            ParsedMessage::Invalid(CommandError::BadJobId { .. })
        ));
        assert!(matches!(
            parse_message("/admin vip bob", None),
            ParsedMessage::Invalid(CommandError::BadUserId { .. })
        ));
        assert_eq!(
            parse_message("the weather is nice", None),
            ParsedMessage::NotUnderstood
        );
        assert_eq!(
            parse_message("/frobnicate", None),
            ParsedMessage::NotUnderstood
        );
        assert_eq!(parse_message("   ", None), ParsedMessage::NotUnderstood);
    }

    fn record_request(text: &str) -> RecordRequest {
        match parse_message(text, None) {
            ParsedMessage::Command(BotCommand::Record(request)) => request,
            other => panic!("{text:?} is not a record request: {other:?}"),
        }
    }

    #[test]
    fn durations_as_people_write_them() {
        let url = "https://x.example/live.m3u8";
        for (text, seconds) in [
            (format!("record {url} for 1 hour 30 minutes"), 5400),
            (format!("record {url} 2 hours 15 minutes"), 8100),
            (format!("{url} 2h15m"), 8100),
            (format!("{url} 1:30:00"), 5400),
            (format!("{url} for an hour and a half"), 5400),
            (format!("{url} half an hour"), 1800),
            (format!("запиши {url} на 10 секунд"), 10),
            (format!("{url} полтора часа"), 5400),
            (format!("{url} 1 ч 30 мин"), 5400),
            (format!("{url} 90"), 5400),
        ] {
            assert_eq!(
                record_request(&text).duration,
                Some(Duration::from_secs(seconds)),
                "{text}"
            );
        }
        let forwarded = record_request(&format!("Tonight live: {url} starts at 20:00!"));
        assert_eq!(forwarded.duration, None);
        assert_eq!(
            forwarded.start.map(|start| start.time),
            Some(TimeOfDay {
                hour: 20,
                minute: 0,
                tomorrow: false
            })
        );
        let tomorrow = record_request(&format!("{url} tomorrow 21:30"));
        assert_eq!(tomorrow.duration, None);
        assert!(tomorrow.start.is_some_and(|start| start.time.tomorrow));
        // A long post: numbers in it are not durations.
        let post = record_request(&format!(
            "Match 2 of 5, the final stage, live from the arena with 18 teams: {url}"
        ));
        assert_eq!(post.duration, None);
    }

    #[test]
    fn links_as_people_send_them() {
        assert_eq!(
            record_request("example.com/live.m3u8 2h").urls,
            ["https://example.com/live.m3u8"]
        );
        assert_eq!(
            record_request("record cdn.example.tv/a/b.m3u8?x=1, please").urls,
            ["https://cdn.example.tv/a/b.m3u8?x=1"]
        );
        let two = record_request("https://a.example/1.m3u8 and https://b.example/2.m3u8 1h");
        assert_eq!(
            two.urls,
            ["https://a.example/1.m3u8", "https://b.example/2.m3u8"]
        );
        assert_eq!(two.duration, Some(Duration::from_secs(3600)));
        let many: Vec<String> = (0..50)
            .map(|index| format!("https://a.example/{index}.m3u8"))
            .collect();
        assert_eq!(
            record_request(&many.join(" ")).urls.len(),
            MAXIMUM_LINKS_PER_MESSAGE
        );
        assert!(link_in_token("1.5").is_none());
        assert!(link_in_token("file.mp4").is_none());
        assert!(link_in_token("me@example.com").is_none());
        assert!(link_in_token("e.g.").is_none());
        assert_eq!(
            parse_message_with_links(
                "watch this",
                &["https://t.example/x.m3u8".to_string()],
                None
            ),
            record("https://t.example/x.m3u8", None, Quality::Best)
        );
        assert_eq!(
            parse_message_with_links("", &["https://t.example/x.m3u8".to_string()], None),
            record("https://t.example/x.m3u8", None, Quality::Best)
        );
    }

    #[test]
    fn near_miss_commands_are_suggested() {
        assert_eq!(
            parse_message("/recrod https://x.example/a.m3u8", None),
            ParsedMessage::DidYouMean {
                command: "record",
                urls: vec!["https://x.example/a.m3u8".to_string()]
            }
        );
        assert_eq!(
            parse_message("/stpo", None),
            ParsedMessage::DidYouMean {
                command: "stop",
                urls: Vec::new()
            }
        );
        assert_eq!(
            parse_message("/staus", None),
            ParsedMessage::DidYouMean {
                command: "status",
                urls: Vec::new()
            }
        );
        assert_eq!(parse_message("/xyzzy", None), ParsedMessage::NotUnderstood);
        assert_eq!(
            parse_message("/admin help", None),
            ParsedMessage::Command(BotCommand::Admin(AdminCommand::Help))
        );
        assert_eq!(
            parse_message("/language ru", None),
            ParsedMessage::Command(BotCommand::Language(Some("ru".to_string())))
        );
    }

    fn start_of(text: &str) -> RequestedStart {
        record_request(text)
            .start
            .unwrap_or_else(|| panic!("{text:?} names no start"))
    }

    /// Finding (attack 16): "every weekday at 20:00", "по будням в 20:00" were scheduled once;
    /// "every Feb 30 at 20:00" became once with a 30 min duration; "every 2 hours" recorded two
    /// hours now; "every weekday" without a time recorded now.
    #[test]
    fn repetitions_are_understood_or_refused() {
        let url = "https://x.example/live.m3u8";
        let working_days = Recurrence::Weekly {
            weekdays: streambot_core::schedule::WORKING_DAYS.to_vec(),
        };
        for text in [
            format!("{url} every weekday at 20:00 for 2h"),
            format!("{url} по будням в 20:00"),
        ] {
            assert_eq!(start_of(&text).recurrence, working_days, "{text}");
            assert_eq!(record_request(&text).quality, Quality::Best, "{text}");
        }
        assert_eq!(
            start_of(&format!("{url} каждые выходные в 20:00")).recurrence,
            Recurrence::Weekly {
                weekdays: vec![chrono::Weekday::Sat, chrono::Weekday::Sun]
            }
        );
        for (text, given) in [
            (format!("{url} every Feb 30 at 20:00"), "every Feb 30"),
            (format!("{url} every 2 hours at 20:00"), "every 2 hours"),
            (format!("{url} every 2 hours"), "every 2 hours"),
            (format!("{url} каждый месяц в 20:00"), "каждый месяц в"),
        ] {
            assert_eq!(
                parse_message(&text, None),
                ParsedMessage::Invalid(CommandError::RepeatNotUnderstood {
                    given: given.to_string()
                }),
                "{text}"
            );
        }
        for text in [format!("{url} every weekday"), format!("{url} по выходным")] {
            assert_eq!(
                parse_message(&text, None),
                ParsedMessage::Invalid(CommandError::RepeatWithoutTime),
                "{text}"
            );
        }
    }

    /// Finding (attack 16): "/clip ID 99999m" answered "longer than the longest recording (168
    /// hours)" and "/clip ID 0m" a generic zero-duration error, though a clip is at most 60 min.
    #[test]
    fn clip_lengths_out_of_range_name_the_clip_limit() {
        let limit = ParsedMessage::Invalid(CommandError::ClipLength {
            maximum_minutes: MAXIMUM_CLIP_DURATION.as_secs() / 60,
        });
        for text in [
            "/clip A3F2B1C9 0m",
            "/clip A3F2B1C9 99999m",
            "/clip A3F2B1C9 99999999999999999999999999999m",
            "/clip 0",
            "/clip 61m",
            "clip 2h",
        ] {
            assert_eq!(parse_message(text, None), limit, "{text}");
        }
    }

    /// Finding (attack 16): "at 20:00 UTC+3" was read in the user's own zone, ignoring UTC+3.
    #[test]
    fn an_offset_in_the_message_is_its_time_zone() {
        let url = "https://x.example/live.m3u8";
        assert_eq!(
            start_of(&format!("{url} at 20:00 UTC+3"))
                .time_zone
                .as_deref(),
            Some("Etc/GMT-3")
        );
        assert_eq!(
            parse_message(&format!("{url} at 20:00 UTC+5:30"), None),
            ParsedMessage::Invalid(CommandError::UnknownTimeZone {
                given: "UTC+5:30".to_string()
            })
        );
    }

    /// Finding (attack 16): "on Friday at 20:00" was scheduled for today.
    #[test]
    fn a_named_day_is_carried_to_the_schedule() {
        let url = "https://x.example/live.m3u8";
        for text in [
            format!("{url} on Friday at 20:00 for 2h"),
            format!("{url} friday at 20:00"),
            format!("{url} в пятницу в 20:00"),
        ] {
            let start = start_of(&text);
            assert_eq!(start.on_weekday, Some(chrono::Weekday::Fri), "{text}");
            assert_eq!(start.recurrence, Recurrence::Once, "{text}");
        }
        assert_eq!(
            start_of(&format!("{url} every Friday at 20:00")).on_weekday,
            None
        );
    }

    /// Finding (attack 16): "from 20:00 to 22:00" and "at 20:00 until 22:00" recorded 22 minutes
    /// (the end read as mm:ss); "until 22:00" alone recorded 22 minutes now.
    #[test]
    fn an_end_time_gives_the_duration() {
        let url = "https://x.example/live.m3u8";
        for (text, minutes) in [
            (format!("{url} from 20:00 to 22:00"), 120),
            (format!("{url} at 20:00 until 22:00"), 120),
            (format!("{url} с 20:00 до 22:00"), 120),
            (format!("{url} at 23:30 till 01:00"), 90),
            (format!("{url} at 20:00 until 22:00 for 2h"), 120),
        ] {
            let request = record_request(&text);
            assert_eq!(
                request.duration,
                Some(Duration::from_secs(minutes * 60)),
                "{text}"
            );
            assert!(request.start.is_some(), "{text}");
        }
        assert_eq!(
            record_request(&format!("{url} wait up to 1:30")).wait_for_live,
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_message(&format!("{url} until 22:00"), None),
            ParsedMessage::Invalid(CommandError::EndWithoutStart {
                given: "until 22:00".to_string()
            })
        );
        assert!(matches!(
            parse_message(&format!("{url} at 20:00 until 22:00 for 1h"), None),
            ParsedMessage::Invalid(CommandError::Contradiction { .. })
        ));
        assert!(matches!(
            parse_message(&format!("{url} at 20:00 until 20:00"), None),
            ParsedMessage::Invalid(CommandError::BadDuration(DurationTextError::Zero { .. }))
        ));
        assert!(matches!(
            parse_message(&format!("{url} at 20:00 until 25:00"), None),
            ParsedMessage::Invalid(CommandError::ImpossibleTime { .. })
        ));
    }

    /// Finding (attack 16): "at 20:00 tomorrow today" was read as one of the two days.
    #[test]
    fn today_and_tomorrow_together_contradict() {
        let url = "https://x.example/live.m3u8";
        for text in [
            format!("{url} at 20:00 tomorrow today"),
            format!("{url} сегодня завтра в 20:00"),
        ] {
            assert!(
                matches!(
                    parse_message(&text, None),
                    ParsedMessage::Invalid(CommandError::Contradiction { .. })
                ),
                "{text}"
            );
        }
        let start = start_of(&format!("{url} завтра вечером в 8"));
        assert_eq!((start.time.hour, start.time.tomorrow), (20, true));
    }

    /// Finding (attack 16): "record <link> in 5 minutes" recorded five minutes at once.
    #[test]
    fn a_start_in_some_minutes_asks_for_the_clock_time() {
        let url = "https://x.example/live.m3u8";
        for (text, given) in [
            (format!("record {url} in 5 minutes"), "in 5 minutes"),
            (format!("{url} in 5 minutes for 1h"), "in 5 minutes"),
            (format!("{url} через 10 минут"), "через 10 минут"),
        ] {
            assert_eq!(
                parse_message(&text, None),
                ParsedMessage::Invalid(CommandError::StartInNotSupported {
                    given: given.to_string()
                }),
                "{text}"
            );
        }
        // A language after "in" is still a language.
        assert_eq!(
            record_request(&format!("{url} in German for 5 minutes")).duration,
            Some(Duration::from_secs(300))
        );
    }

    #[test]
    fn scheduled_requests_as_people_write_them() {
        use chrono::Weekday;
        let url = "https://x.example/live.m3u8";
        let friday = Recurrence::Weekly {
            weekdays: vec![Weekday::Fri],
        };
        // (message, hour, minute, tomorrow, recurrence, duration seconds)
        let table: Vec<(String, u8, u8, bool, Recurrence, Option<u64>)> = vec![
            (
                format!("record {url} at 20:00 for 2h"),
                20,
                0,
                false,
                Recurrence::Once,
                Some(7200),
            ),
            (
                format!("Record {url} AT 20:00 FOR 2H"),
                20,
                0,
                false,
                Recurrence::Once,
                Some(7200),
            ),
            (
                format!("/record {url} at 20:00 2h"),
                20,
                0,
                false,
                Recurrence::Once,
                Some(7200),
            ),
            (
                format!("{url} tomorrow 21:30 for 90 min"),
                21,
                30,
                true,
                Recurrence::Once,
                Some(5400),
            ),
            (
                format!("please record {url} tomorrow at 21:30 for 90 minutes, thanks"),
                21,
                30,
                true,
                Recurrence::Once,
                Some(5400),
            ),
            (
                format!("{url} every Friday at 20:00 for 2 hours"),
                20,
                0,
                false,
                friday.clone(),
                Some(7200),
            ),
            (
                format!("record {url} every friday at 8pm for 2h"),
                20,
                0,
                false,
                friday.clone(),
                Some(7200),
            ),
            (
                format!("record {url} each Fri at 20:00 for 2 hours"),
                20,
                0,
                false,
                friday.clone(),
                Some(7200),
            ),
            (
                format!("{url} every day at 7:00 for 30 min"),
                7,
                0,
                false,
                Recurrence::Daily,
                Some(1800),
            ),
            (
                format!("{url} daily at 07:30 for 1h"),
                7,
                30,
                false,
                Recurrence::Daily,
                Some(3600),
            ),
            (
                format!("{url} at 20:00"),
                20,
                0,
                false,
                Recurrence::Once,
                None,
            ),
            (
                format!("запиши {url} в 20:00 на 2 часа"),
                20,
                0,
                false,
                Recurrence::Once,
                Some(7200),
            ),
            (
                format!("запиши {url} завтра в 21:30 на 90 минут"),
                21,
                30,
                true,
                Recurrence::Once,
                Some(5400),
            ),
            (
                format!("{url} каждую пятницу в 20:00 на 2 часа"),
                20,
                0,
                false,
                friday.clone(),
                Some(7200),
            ),
            (
                format!("{url} every monday and friday at 20:00 for 1h"),
                20,
                0,
                false,
                Recurrence::Weekly {
                    weekdays: vec![Weekday::Mon, Weekday::Fri],
                },
                Some(3600),
            ),
        ];
        for (text, hour, minute, tomorrow, recurrence, seconds) in table {
            let request = record_request(&text);
            let start = request
                .start
                .clone()
                .unwrap_or_else(|| panic!("{text:?} names no start"));
            assert_eq!(
                (start.time.hour, start.time.minute, start.time.tomorrow),
                (hour, minute, tomorrow),
                "{text}"
            );
            assert_eq!(start.recurrence, recurrence, "{text}");
            assert_eq!(request.duration, seconds.map(Duration::from_secs), "{text}");
            assert_eq!(request.urls, [url], "{text}");
            assert_eq!(request.quality, Quality::Best, "{text}");
        }
        // Typos and capitals.
        for (text, hour, recurrence, tomorrow, seconds) in [
            (
                format!("record {url} tomorow at 21:30 for 90 minuts"),
                21,
                Recurrence::Once,
                true,
                5400,
            ),
            (
                format!("record {url} evry firday at 20:00 for 2 hours"),
                20,
                friday.clone(),
                false,
                7200,
            ),
            (
                format!("RECORD {url} EVERY FRIDAY AT 8PM FOR 2H"),
                20,
                friday.clone(),
                false,
                7200,
            ),
            (
                format!("record {url} tmrw 9pm 1h"),
                21,
                Recurrence::Once,
                true,
                3600,
            ),
        ] {
            let request = record_request(&text);
            let start = request.start.clone().unwrap_or_else(|| panic!("{text}"));
            assert_eq!(
                (start.time.hour, start.time.tomorrow, start.recurrence),
                (hour, tomorrow, recurrence),
                "{text}"
            );
            assert_eq!(
                request.duration,
                Some(Duration::from_secs(seconds)),
                "{text}"
            );
        }
        assert_eq!(
            record_request(&format!("{url} with subtitels")).subtitles,
            SubtitleChoice::All
        );
        assert!(record_request(&format!("{url} from the begining")).from_start);
        // Real words near a keyword stay what they are.
        assert_eq!(corrected_token("ever"), "ever");
        assert_eq!(corrected_token("house"), "house");
        assert_eq!(corrected_token("Monday,"), "Monday,");
        assert!(start_of(&format!("{url} today at 20:00 for 1h")).today);
        assert!(start_of(&format!("{url} tonight at 21:00")).today);
        assert!(!start_of(&format!("{url} at 21:00")).today);
        assert_eq!(
            start_of(&format!("{url} at 20:00 Europe/Berlin for 1h")).time_zone,
            Some("Europe/Berlin".to_string())
        );
        assert_eq!(
            start_of(&format!("{url} at 20:00 europe/berlin for 1h")).time_zone,
            Some("Europe/Berlin".to_string())
        );
        // Quality still reads beside a schedule.
        assert_eq!(
            record_request(&format!("{url} at 20:00 for 2h 720p")).quality,
            Quality::Height(720)
        );
    }

    #[test]
    fn request_options_as_people_write_them() {
        let url = "https://x.example/live.m3u8";
        for (text, wait_seconds) in [
            (format!("record {url} wait up to 6 h"), 6 * 3600),
            (format!("record {url} for 2h, wait up to 6 hours"), 6 * 3600),
            (format!("{url} Wait for 30 min"), 1800),
            (format!("{url} wait 1 min for 20s"), 60),
            (format!("{url} wait up to 1 min"), 60),
            (format!("{url} ждать до 2 часов"), 7200),
        ] {
            assert_eq!(
                record_request(&text).wait_for_live,
                Some(Duration::from_secs(wait_seconds)),
                "{text}"
            );
        }
        let both = record_request(&format!("record {url} for 20s wait up to 1 min"));
        assert_eq!(both.duration, Some(Duration::from_secs(20)));
        assert_eq!(both.wait_for_live, Some(Duration::from_secs(60)));
        let waiting = record_request(&format!("{url} wait for it to start"));
        assert_eq!(waiting.wait_for_live, None);
        assert_eq!(waiting.duration, None);

        for text in [
            format!("record {url} from the start"),
            format!("record {url} From The Beginning for 20s"),
            format!("{url} from start"),
            format!("запиши {url} с начала"),
            format!("{url} сначала"),
        ] {
            assert!(record_request(&text).from_start, "{text}");
        }
        assert!(!record_request(&format!("start recording {url}")).from_start);

        for (text, choice) in [
            (format!("{url} with subtitles"), SubtitleChoice::All),
            (format!("{url} with subs"), SubtitleChoice::All),
            (
                format!("{url} subtitles en"),
                SubtitleChoice::Language("en".to_string()),
            ),
            (
                format!("{url} English subtitles"),
                SubtitleChoice::Language("en".to_string()),
            ),
            (
                format!("{url} subtitles in German"),
                SubtitleChoice::Language("de".to_string()),
            ),
            (format!("{url} all subtitles"), SubtitleChoice::All),
            (format!("{url} no subtitles"), SubtitleChoice::None),
            (format!("{url} с субтитрами"), SubtitleChoice::All),
            (
                format!("{url} субтитры en"),
                SubtitleChoice::Language("en".to_string()),
            ),
        ] {
            let request = record_request(&text);
            assert_eq!(request.subtitles, choice, "{text}");
            assert_eq!(request.audio_language, None, "{text}");
            assert_eq!(request.quality, Quality::Best, "{text}");
        }

        for (text, language) in [
            (format!("{url} in German"), "de"),
            (format!("record {url} in german for 2h"), "de"),
            (format!("{url} German audio"), "de"),
            (format!("{url} audio de"), "de"),
            (format!("{url} audio in French"), "fr"),
            (format!("{url} на немецком"), "de"),
            (format!("{url} in English language"), "en"),
        ] {
            let request = record_request(&text);
            assert_eq!(request.audio_language.as_deref(), Some(language), "{text}");
            assert_eq!(request.quality, Quality::Best, "{text}");
        }
        for text in [
            format!("{url} all audio"),
            format!("{url} all audio tracks"),
            format!("{url} ALL AUDIO"),
            format!("{url} все дорожки"),
        ] {
            let request = record_request(&text);
            assert!(request.all_audio, "{text}");
            assert_eq!(request.quality, Quality::Best, "{text}");
        }
        // "audio only" is still a quality, "in 720p" is not a language.
        assert_eq!(
            record_request(&format!("{url} audio only")).quality,
            Quality::Audio
        );
        let in_720 = record_request(&format!("{url} in 720p"));
        assert_eq!(in_720.quality, Quality::Height(720));
        assert_eq!(in_720.audio_language, None);
        let everything = record_request(&format!(
            "record {url} tomorrow at 20:00 for 2h from the start in German with subtitles wait up to 6 h"
        ));
        assert!(everything.from_start);
        assert_eq!(everything.subtitles, SubtitleChoice::All);
        assert_eq!(everything.audio_language.as_deref(), Some("de"));
        assert_eq!(
            everything.wait_for_live,
            Some(Duration::from_secs(6 * 3600))
        );
        assert_eq!(everything.duration, Some(Duration::from_secs(7200)));
        assert!(everything.start.is_some_and(|start| start.time.tomorrow));
    }

    #[test]
    fn impossible_and_contradictory_requests_are_named() {
        let url = "https://x.example/live.m3u8";
        for (text, given) in [
            (format!("record {url} at 25:00 for 2h"), "25:00"),
            (format!("record {url} at 24:30"), "24:30"),
            (format!("{url} at 20:75 for 1h"), "20:75"),
            (format!("{url} at 13pm"), "13pm"),
            (format!("{url} tomorrow 26:00 for 1h"), "26:00"),
            (format!("{url} в 25:00 на 2 часа"), "25:00"),
        ] {
            assert_eq!(
                parse_message(&text, None),
                ParsedMessage::Invalid(CommandError::ImpossibleTime {
                    given: given.to_string()
                }),
                "{text}"
            );
        }
        assert_eq!(
            parse_message(&format!("{url} at 20:00 Europe/Atlantis for 1h"), None),
            ParsedMessage::Invalid(CommandError::UnknownTimeZone {
                given: "Europe/Atlantis".to_string()
            })
        );
        // Slashes that are not zones are left alone.
        assert_eq!(
            record_request(&format!("{url} at 20:00 w/o subtitles and/or audio"))
                .start
                .map(|start| start.time_zone),
            Some(None)
        );
        assert_eq!(
            parse_message(&format!("{url} every Friday for 2h"), None),
            ParsedMessage::Invalid(CommandError::RepeatWithoutTime)
        );
        assert_eq!(
            parse_message(&format!("{url} daily"), None),
            ParsedMessage::Invalid(CommandError::RepeatWithoutTime)
        );
        assert!(matches!(
            parse_message(&format!("{url} tomorrow for 2h"), None),
            ParsedMessage::Invalid(CommandError::DayWithoutTime { .. })
        ));
        for text in [
            format!("{url} at 20:00 and at 21:00"),
            format!("{url} in German in French"),
            format!("{url} for 2h for 3h"),
            format!("{url} no subtitles with subtitles"),
        ] {
            assert!(
                matches!(
                    parse_message(&text, None),
                    ParsedMessage::Invalid(CommandError::Contradiction { .. })
                ),
                "{text}: {:?}",
                parse_message(&text, None)
            );
        }
        // Saying the same thing twice is fine.
        assert!(
            record_request(&format!("{url} in German, German audio"))
                .audio_language
                .is_some()
        );
        assert!(matches!(
            parse_message(&format!("{url} wait up to 0 min"), None),
            ParsedMessage::Invalid(CommandError::BadDuration(_))
        ));
    }

    #[test]
    fn schedule_time_zone_and_clip_commands() {
        assert_eq!(
            parse_message("/schedule", None),
            ParsedMessage::Command(BotCommand::Schedules)
        );
        assert_eq!(
            parse_message("my schedules", None),
            ParsedMessage::Command(BotCommand::Schedules)
        );
        assert_eq!(
            parse_message("/timezone Europe/Berlin", None),
            ParsedMessage::Command(BotCommand::TimeZone(Some("Europe/Berlin".to_string())))
        );
        assert_eq!(
            parse_message("/timezone", None),
            ParsedMessage::Command(BotCommand::TimeZone(None))
        );
        assert_eq!(
            parse_message("set my time zone to America/New_York", None),
            ParsedMessage::Command(BotCommand::TimeZone(Some("America/New_York".to_string())))
        );
        assert_eq!(
            parse_message("/clip A3F2B1C9 5m", None),
            ParsedMessage::Command(BotCommand::Clip {
                target: JobTarget::Id(id("A3F2B1C9")),
                last: Duration::from_secs(300)
            })
        );
        assert_eq!(
            parse_message("/clip a3f2b1c9 last 10 minutes", None),
            ParsedMessage::Command(BotCommand::Clip {
                target: JobTarget::Id(id("A3F2B1C9")),
                last: Duration::from_secs(600)
            })
        );
        assert_eq!(
            parse_message("/clip", None),
            ParsedMessage::Command(BotCommand::Clip {
                target: JobTarget::Unspecified,
                last: DEFAULT_CLIP_DURATION
            })
        );
        assert_eq!(
            parse_message("/clip 12345678 2m", None),
            ParsedMessage::Command(BotCommand::Clip {
                target: JobTarget::Id(id("12345678")),
                last: Duration::from_secs(120)
            })
        );
        assert_eq!(
            parse_message("clip the last 3 min", None),
            ParsedMessage::Command(BotCommand::Clip {
                target: JobTarget::Unspecified,
                last: Duration::from_secs(180)
            })
        );
        assert_eq!(
            parse_message("/clip A3F2B1C9 2h", None),
            ParsedMessage::Invalid(CommandError::ClipLength {
                maximum_minutes: 60
            })
        );
        assert!(matches!(
            parse_message("/clip A3F2B1 5m", None),
            ParsedMessage::Invalid(CommandError::BadJobId { .. })
        ));
        assert_eq!(
            parse_message("/shedule", None),
            ParsedMessage::DidYouMean {
                command: "schedule",
                urls: Vec::new()
            }
        );
    }

    fn quality_strategy() -> impl Strategy<Value = Quality> {
        prop_oneof![
            Just(Quality::Best),
            Just(Quality::High),
            Just(Quality::Medium),
            Just(Quality::Low),
            Just(Quality::Worst),
            Just(Quality::Audio),
            (1u32..=9).prop_map(|index| Quality::Height(index * 120)),
        ]
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,300}") {
            let _ = parse_message(&text, Some("StreamBot"));
        }

        /// Whatever order a user puts link, duration and quality in, with either spelling of the
        /// command, the request comes out the same.
        #[test]
        fn record_requests_round_trip(
            path in "[a-z0-9]{1,12}",
            hours in 0u64..5,
            minutes in 0u64..60,
            quality in quality_strategy(),
            order in 0usize..3,
            slash in proptest::bool::ANY,
        ) {
            let url = format!("https://cdn.example/{path}/index.m3u8");
            let total_minutes = hours * 60 + minutes;
            let duration_text = if total_minutes == 0 { None } else if hours > 0 && minutes > 0 {
                Some(format!("{hours}h{minutes}m"))
            } else if hours > 0 { Some(format!("{hours}h")) } else { Some(format!("{minutes}min")) };
            let quality_text = quality.to_string();
            let mut pieces = vec![url.clone(), quality_text];
            if let Some(duration_text) = &duration_text { pieces.push(duration_text.clone()); }
            let piece_count = pieces.len();
            pieces.rotate_left(order % piece_count);
            let command = if slash { "/record" } else { "record" };
            let text = format!("{command} {}", pieces.join(" "));
            let expected = ParsedMessage::Command(BotCommand::Record(RecordRequest {
                urls: vec![url],
                duration: (total_minutes > 0).then(|| Duration::from_secs(total_minutes * 60)),
                quality,
                ..RecordRequest::default()
            }));
            prop_assert_eq!(parse_message(&text, None), expected, "{}", text);
        }

        #[test]
        fn job_ids_in_any_case_are_understood(value in proptest::num::u32::ANY, upper in proptest::bool::ANY) {
            let job = JobId::from_u32(value);
            let written = if upper { job.to_string() } else { job.to_string().to_lowercase() };
            prop_assert_eq!(
                parse_message(&format!("/stop {written}"), None),
                ParsedMessage::Command(BotCommand::Stop(JobTarget::Id(job)))
            );
        }
    }
}
