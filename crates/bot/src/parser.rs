//! One parser for commands and plain English. Pure: text in, intent out.
//!
//! `/record https://x/live.m3u8 2h high`, `record https://x/live.m3u8 for 2 hours high quality`,
//! `start recording https://… audio only`, `stop A3F2B1C9`, `pause it`, `what's recording?` and a
//! bare link all land here. Anything it cannot understand gets `NotUnderstood`, which the bot
//! answers with a hint and an example, never silence.

use std::time::Duration;

use streambot_core::{JobId, Quality, TimeMeaning, TimeOfDay, find_time_phrases};

/// Which job a control command is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobTarget {
    /// The user named it.
    Id(JobId),
    /// "stop", "pause it": the user's only live job, or ask which.
    Unspecified,
}

/// A recording request as the user phrased it (the URL is checked later, by the recorder's rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRequest {
    /// Every link in the message, in order, each with a scheme (`https://` added when missing).
    pub urls: Vec<String>,
    pub duration: Option<Duration>,
    pub quality: Quality,
    /// A time of day the message named ("starts at 20:00"): not a duration; scheduling is not
    /// supported yet, so the bot records now and says so.
    pub starts_at: Option<TimeOfDay>,
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
const KNOWN_COMMANDS: [&str; 12] = [
    "start", "help", "record", "stop", "pause", "resume", "status", "list", "cancel", "delete",
    "language", "admin",
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

fn parse_record(text_after_command: &str, linked_urls: &[String]) -> ParsedMessage {
    let tokens: Vec<&str> = text_after_command.split_whitespace().collect();
    let mut urls: Vec<String> = Vec::new();
    let mut rest: Vec<&str> = Vec::new();
    for token in &tokens {
        match link_in_token(token) {
            Some(url) => urls.push(url),
            None => rest.push(token),
        }
    }
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
        return ParsedMessage::Invalid(CommandError::RecordWithoutUrl);
    }
    let rest_text = rest.join(" ");
    let short = words_of(&rest_text).len() <= SHORT_REQUEST_WORDS;
    let mut duration = None;
    let mut starts_at = None;
    let mut covered = vec![false; rest.len()];
    for phrase in find_time_phrases(&rest_text) {
        let is_bare_number = phrase.end_word == phrase.first_word + 1
            && rest.get(phrase.first_word).is_some_and(|word| {
                trim_punctuation(word)
                    .bytes()
                    .all(|byte| byte.is_ascii_digit() || byte == b'.')
            });
        if is_bare_number && !short {
            continue;
        }
        for index in phrase.first_word..phrase.end_word {
            if let Some(flag) = covered.get_mut(index) {
                *flag = true;
            }
        }
        match phrase.meaning {
            TimeMeaning::Duration(found) => {
                duration.get_or_insert(found);
            }
            TimeMeaning::TimeOfDay(time) => {
                starts_at.get_or_insert(time);
            }
            TimeMeaning::Invalid(error) if duration.is_none() && short => {
                return ParsedMessage::Invalid(CommandError::BadDuration(error));
            }
            TimeMeaning::Invalid(_) => {}
        }
    }
    let leftover: Vec<&str> = rest
        .iter()
        .zip(covered)
        .filter(|(_, covered)| !covered)
        .map(|(word, _)| *word)
        .collect();
    match read_quality(&words_of(&leftover.join(" ")), short) {
        Ok(quality) => ParsedMessage::Command(BotCommand::Record(RecordRequest {
            urls: unique,
            duration,
            quality,
            starts_at,
        })),
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
            starts_at: None,
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
            forwarded.starts_at,
            Some(TimeOfDay {
                hour: 20,
                minute: 0,
                tomorrow: false
            })
        );
        let tomorrow = record_request(&format!("{url} tomorrow 21:30"));
        assert_eq!(tomorrow.duration, None);
        assert!(tomorrow.starts_at.is_some_and(|time| time.tomorrow));
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
                starts_at: None,
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
